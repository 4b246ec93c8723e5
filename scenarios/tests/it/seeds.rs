//! The seeds the library names (files and inline ones) are seeds the mock server accepts: they
//! parse with its seed parser and apply to a fresh domain. (The format crate does not depend on
//! the server; this test holds the two together.)
use rehearsal_mock_server::clock::Clock;
use rehearsal_mock_server::domain::Domain;
use rehearsal_mock_server::domain::limits::Limits;
use rehearsal_mock_server::domain::seed::Seed;
use rehearsal_scenarios::Library;

#[test]
fn library_seeds_apply_on_the_mock_server() {
    let library = Library::load_embedded().expect("the library loads");
    let mut checked = 0;
    for loaded in library.iter().filter(|l| l.seed.is_some()) {
        let text = loaded.seed.as_ref().unwrap().to_string();
        let seed = Seed::parse(&text).unwrap_or_else(|e| panic!("{}: the server refuses its seed: {e}", loaded.path.display()));
        let domain = Domain::new(Clock::system(), Limits::default());
        seed.apply(&domain)
            .unwrap_or_else(|e| panic!("{}: the seed does not apply: {e}", loaded.path.display()));
        checked += 1;
    }
    assert!(checked >= 2, "the library has scenarios with a seed file and with an inline seed");
}
