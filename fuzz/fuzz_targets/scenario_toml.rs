//! Scenario files: any text through the loader, as the embedded library loads its own files
//! (files a scenario names resolve among the embedded ones; the disk is never read).
//!
//! Properties: nothing panics; a refusal lists at least one error, each at a line and column
//! inside the text, with a message, and renders; an accepted scenario names where it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rehearsal_scenarios::fuzzing::{PATH, load_in_library};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match load_in_library(text) {
        Ok(loaded) => {
            assert_eq!(loaded.path.to_str(), Some(PATH));
            let _ = loaded.scenario.summary_line();
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal without an error");
            let lines = text.split('\n').count();
            for e in &errors {
                assert!(!e.message.is_empty(), "an error without a message: {e:?}");
                assert!((1..=lines).contains(&e.line), "line {} outside 1..={lines}: {e:?}", e.line);
                assert!(e.column >= 1, "column 0: {e:?}");
                let _ = e.render();
            }
        }
    }
});
