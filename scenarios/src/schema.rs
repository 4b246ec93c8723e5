//! The JSON Schema of the scenario format, generated from the format's types, for editors
//! (Taplo / Even Better TOML, or any JSON Schema–aware TOML tool) to complete and check files.
//!
//! The committed copy is `scenarios/schema/scenario.schema.json`; a test fails when it is
//! stale (regenerate with `REHEARSAL_UPDATE_SCHEMA=1 cargo test -p rehearsal-scenarios`).
//! The schema describes the shapes; consistency rules (known clients, capabilities…) are the
//! loader's.
use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use serde_json::Value;

use crate::format::Scenario;

/// Where the committed schema lives, relative to the crate.
pub const SCHEMA_FILE: &str = "schema/scenario.schema.json";

/// The schema of a scenario file (JSON Schema draft 2020-12).
pub fn scenario_schema() -> Schema {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .with_transform(RecursiveTransform(drop_null))
        .into_generator()
        .into_root_schema_for::<Scenario>()
}

/// TOML has no null: an optional key is simply absent. Schemars writes `Option<T>` as "T or
/// null"; keep only T so that editors do not offer null.
fn drop_null(schema: &mut Schema) {
    let Some(obj) = schema.as_object_mut() else { return };
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".into(), only);
        }
    }
    let is_null = |v: &Value| {
        v.as_object()
            .is_some_and(|o| o.len() == 1 && o.get("type").is_some_and(|t| t == "null"))
    };
    if let Some(Value::Array(options)) = obj.get_mut("anyOf") {
        options.retain(|o| !is_null(o));
        if options.len() == 1 {
            let Some(Value::Object(only)) = options.pop() else { return };
            obj.remove("anyOf");
            for (k, v) in only {
                obj.entry(k).or_insert(v);
            }
        }
    }
}

/// [`scenario_schema`] as the committed file's text (pretty JSON and a final newline).
pub fn scenario_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&scenario_schema()).expect("a schema is JSON");
    text.push('\n');
    text
}
