//! The embedded library: it loads, it is laid out by area, and it covers what it must.
use std::collections::BTreeSet;
use std::path::Path;

use rehearsal_scenarios::format::duration;
use rehearsal_scenarios::{Area, Library, Mode};

fn library() -> Library {
    match Library::load_embedded() {
        Ok(library) => library,
        Err(errors) => panic!("{}", errors.iter().map(|e| e.render()).collect::<String>()),
    }
}

#[test]
fn the_embedded_library_loads() {
    let library = library();
    assert!(library.len() >= 40, "the library has at least 40 scenarios, not {}", library.len());
}

/// The folder on disk and the embedded copy are the same library.
#[test]
fn the_library_folder_loads_the_same() {
    let from_disk = Library::load_dir(rehearsal_scenarios::library::LIBRARY_DIR).unwrap_or_else(|e| panic!("{e:?}"));
    let embedded = library();
    assert_eq!(from_disk.len(), embedded.len());
    for (d, e) in from_disk.iter().zip(&embedded) {
        assert_eq!(d.scenario, e.scenario);
        assert_eq!(d.seed, e.seed);
        assert_eq!(d.fixtures, e.fixtures);
    }
    assert!(rehearsal_scenarios::validate_path(rehearsal_scenarios::library::LIBRARY_DIR).is_empty());
}

#[test]
fn files_are_named_after_their_ids() {
    for loaded in &library() {
        let s = &loaded.scenario;
        let name = s.id.split_once('.').map(|(_, n)| n).unwrap();
        assert_eq!(
            loaded.path,
            Path::new("library").join(s.area.as_str()).join(format!("{name}.toml")),
            "{}",
            s.id
        );
    }
}

#[test]
fn every_area_is_covered_and_some_scenarios_need_no_driver() {
    let library = library();
    for area in Area::ALL {
        assert!(library.area(area).count() >= 2, "area {area} has fewer than two scenarios");
    }
    let observed: BTreeSet<Area> = library.observed().map(|l| l.scenario.area).collect();
    assert!(library.observed().count() >= 8, "at least eight observed-mode scenarios");
    assert!(observed.contains(&Area::Connection) && observed.contains(&Area::Token));
}

/// Scenarios are meant to run in seconds: the real time a scenario spends in `wait` steps stays
/// well inside its budget.
#[test]
fn scenarios_stay_within_their_budget() {
    for loaded in &library() {
        let s = &loaded.scenario;
        let waits: std::time::Duration = s
            .steps
            .iter()
            .filter_map(|st| match st {
                rehearsal_scenarios::format::Step::Wait(w) => Some(w.wait),
                _ => None,
            })
            .sum();
        assert!(
            waits < s.timeout(),
            "{}: waits {} reach the timeout {}",
            s.id,
            duration::format(waits),
            duration::format(s.timeout())
        );
        assert!(s.timeout() <= std::time::Duration::from_secs(15), "{}: keep scenarios short", s.id);
    }
}

/// The index of the library, for review: id, mode and title of every scenario.
#[test]
fn library_index() {
    let library = library();
    let index: Vec<String> = library.iter().map(|l| l.scenario.summary_line().trim_end().to_owned()).collect();
    insta::assert_snapshot!(index.join("\n"));
    let modes: Vec<Mode> = library.iter().map(|l| l.scenario.mode()).collect();
    assert!(modes.contains(&Mode::Driven) && modes.contains(&Mode::Observed));
}

/// The README's annotated scenario is a valid scenario.
#[test]
fn the_readme_example_loads() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block");
    if let Err(errors) = rehearsal_scenarios::load_str("README.md", example) {
        panic!("{}", errors.iter().map(|e| e.render()).collect::<String>());
    }
}
