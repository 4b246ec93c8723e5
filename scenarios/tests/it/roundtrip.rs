//! Loading what `to_toml` wrote gives back an equal scenario, for every library file.
use rehearsal_scenarios::{Library, load_str};

#[test]
fn load_serialize_load_is_identity() {
    let library = Library::load_embedded().expect("the library loads");
    for loaded in &library {
        let text = loaded.scenario.to_toml();
        let again = match load_str(&loaded.path, &text) {
            Ok(l) => l,
            Err(errors) => panic!(
                "{} does not load back:\n{text}\n{}",
                loaded.path.display(),
                errors.iter().map(|e| e.render()).collect::<String>()
            ),
        };
        assert_eq!(again.scenario, loaded.scenario, "{}:\n{text}", loaded.path.display());
    }
}
