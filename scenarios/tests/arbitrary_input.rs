//! "Arbitrary text never panics, always answers": the scenario loader, on stable, in every
//! `cargo test` — the entry point of the `scenario_toml` fuzz target in `fuzz/`
//! (`rehearsal_scenarios::fuzzing`), which explores further on nightly.
//!
//! Any text, and the library's own files mutated (characters deleted, inserted, lines swapped),
//! loads or is refused with errors that point inside the text.
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rehearsal_scenarios::fuzzing::{PATH, load_in_library};
use rehearsal_scenarios::library::embedded_files;

fn library_texts() -> Vec<String> {
    embedded_files()
        .filter(|(name, _)| name.ends_with(".toml"))
        .map(|(_, bytes)| String::from_utf8(bytes.to_vec()).expect("the library is UTF-8"))
        .collect()
}

fn check(text: &str) -> Result<(), TestCaseError> {
    match load_in_library(text) {
        Ok(loaded) => prop_assert_eq!(loaded.path.to_str(), Some(PATH)),
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            let lines = text.split('\n').count();
            for e in &errors {
                prop_assert!(!e.message.is_empty(), "{:?}", e);
                prop_assert!((1..=lines).contains(&e.line), "line {} outside 1..={}: {:?}", e.line, lines, e);
                prop_assert!(e.column >= 1, "{:?}", e);
                prop_assert!(!e.render().is_empty());
            }
        }
    }
    Ok(())
}

/// An edit of a library file: delete a range, insert text, or swap two lines.
#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, String),
    SwapLines(prop::sample::Index, prop::sample::Index),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                ".{0,12}",
                prop::sample::select(vec![
                    "[",
                    "]",
                    "[[steps]]\n",
                    "\"",
                    "'''",
                    "=",
                    " = 1\n",
                    "{",
                    "}",
                    "\n",
                    "#",
                    "after = \"-1ms\"\n",
                    "client = \"zed\"\n",
                    "count = 18446744073709551615\n",
                    "1e999",
                    "\\u{0}",
                    "inf",
                    "nan",
                ])
                .prop_map(str::to_owned),
            ]
        )
            .prop_map(|(i, s)| Edit::Insert(i, s)),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    match edit {
        Edit::Delete(at, n) => {
            let start = at.index(chars.len() + 1);
            let end = (start + n).min(chars.len());
            chars[..start].iter().chain(&chars[end..]).collect()
        }
        Edit::Insert(at, s) => {
            let i = at.index(chars.len() + 1);
            let mut out: String = chars[..i].iter().collect();
            out.push_str(s);
            out.extend(&chars[i..]);
            out
        }
        Edit::SwapLines(a, b) => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
            lines.join("\n")
        }
    }
}

#[test]
fn every_library_file_loads_in_the_fuzzing_context() {
    // The seeds of the fuzz target are these files; they must reach past the syntax checks.
    let texts = library_texts();
    assert!(texts.len() > 40, "the library has its scenarios");
    let loaded = texts.iter().filter(|t| load_in_library(t).is_ok()).count();
    assert!(
        loaded * 10 >= texts.len() * 8,
        "only {loaded} of {} library files load",
        texts.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_answers(text in prop_oneof![".{0,200}", "[\\[\\]a-z_=\"{}., \n0-9]{0,200}"]) {
        check(&text)?;
    }

    #[test]
    fn mutated_library_files_answer(which in any::<prop::sample::Index>(), edits in prop::collection::vec(arb_edit(), 1..4)) {
        let texts = library_texts();
        let mut text = texts[which.index(texts.len())].clone();
        for edit in &edits {
            text = apply(&text, edit);
        }
        check(&text)?;
    }
}
