//! The committed JSON Schema is the generated one, and it accepts every library scenario.
use std::path::Path;

use rehearsal_scenarios::Library;
use rehearsal_scenarios::schema::{SCHEMA_FILE, scenario_schema, scenario_schema_text};

#[test]
fn the_committed_schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_FILE);
    let generated = scenario_schema_text();
    if std::env::var_os("REHEARSAL_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: the format's types changed. Regenerate it with\n\n    REHEARSAL_UPDATE_SCHEMA=1 cargo test -p rehearsal-scenarios --test it schema\n\nand commit the result.",
        path.display()
    );
}

/// The schema describes what the loader accepts: every library file, read as TOML and seen as
/// JSON, is valid against it (editors will not flag correct files).
#[test]
fn the_schema_accepts_the_library() {
    let schema = scenario_schema().to_value();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    let library = Library::load_embedded().expect("the library loads");
    for loaded in &library {
        let instance = serde_json::to_value(toml::from_str::<toml::Value>(&loaded.scenario.to_toml()).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {}", loaded.path.display(), errors.join("\n"));
    }
}

/// And it refuses what the format refuses.
#[test]
fn the_schema_refuses_format_errors() {
    let schema = scenario_schema().to_value();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let base = serde_json::json!({
        "id": "connection.x", "title": "t", "area": "connection", "checks": "c", "reference": "protocol §2.8",
        "rationale": "r", "requires": ["events", "connect"], "clients": [{ "name": "alice" }],
        "steps": [{ "command": "connect", "client": "alice", "label": "hello" }],
        "expect": [{ "expect": "event", "event": "connection_state", "client": "alice", "grade": "should" }]
    });
    assert!(
        validator.is_valid(&base),
        "{:?}",
        validator.iter_errors(&base).map(|e| e.to_string()).collect::<Vec<_>>()
    );
    for (pointer, bad) in [
        ("/steps/0/command", serde_json::json!("dance")),
        ("/steps/0/clinet", serde_json::json!("alice")),
        ("/expect/0/grade", serde_json::json!("may")),
        ("/expect/0/within", serde_json::json!("5 sec")),
        ("/titel", serde_json::json!("typo")),
    ] {
        let mut instance = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        instance
            .pointer_mut(if parent.is_empty() { "" } else { parent })
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.into(), bad);
        assert!(!validator.is_valid(&instance), "the schema accepts {pointer}");
    }
}
