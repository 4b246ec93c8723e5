//! Test support: validate Rehearsal's REST responses against Twilio's own
//! OpenAPI description of Conversations v1.
//!
//! The spec is read from the npm package `@twilio-alpha/mcp` (pinned to
//! [`EXPECTED_PACKAGE_VERSION`]) installed in `e2e/node_modules`, or from the
//! file named by the environment variable [`SPEC_ENV`]. It is loaded once per
//! test binary:
//!
//! ```ignore
//! let spec = openapi::Spec::get();
//! spec.assert_response("GET", "/v1/Conversations/CH...", 200, &body);
//! spec.assert_has_all_properties("GET", "/v1/Conversations/CH...", 200, &body);
//! ```
//!
//! OpenAPI 3.0 schemas are converted to JSON Schema 2020-12 (see
//! [`convert_schema`]): `nullable: true` admits `null`, `$ref`s to
//! `#/components/schemas/X` point into a root `$defs`, `format`, `x-*`
//! extensions and annotations are dropped, `additionalProperties` is kept as
//! given (absent means extra properties are allowed).

// Helpers here are used by other modules of the test binary; not every one
// is used by every build of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

/// Environment variable that, when set, names the spec file to use.
pub const SPEC_ENV: &str = "REHEARSAL_OPENAPI_SPEC";

/// Where the spec lives relative to the workspace root.
pub const SPEC_RELATIVE_PATH: &str = "e2e/node_modules/@twilio-alpha/mcp/twilio-oai/spec/json/twilio_conversations_v1.json";

/// The `@twilio-alpha/mcp` version whose spec these tests are written against.
pub const EXPECTED_PACKAGE_VERSION: &str = "0.7.0";

const COMPONENT_PREFIX: &str = "#/components/schemas/";

/// Twilio's OpenAPI description of Conversations v1, with helpers to check
/// responses against it.
pub struct Spec {
    source: PathBuf,
    doc: Value,
    /// `components.schemas`, converted to JSON Schema, keyed by name.
    defs: Map<String, Value>,
    templates: Vec<PathTemplate>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

#[derive(Debug)]
struct PathTemplate {
    template: String,
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Param,
}

/// The response an operation documents for one status.
struct ResponseSpec<'a> {
    template: &'a str,
    /// The key it was found under: the status itself, `4XX`-style, or `default`.
    status_key: &'a str,
    /// `None` when the spec documents no body (e.g. 204).
    schema: Option<&'a Value>,
}

impl ResponseSpec<'_> {
    fn describe(&self, method: &str) -> String {
        let schema = match self.schema {
            Some(s) => match s.get("$ref").and_then(Value::as_str) {
                Some(r) => r.trim_start_matches(COMPONENT_PREFIX).to_owned(),
                None => s.get("title").and_then(Value::as_str).unwrap_or("inline schema").to_owned(),
            },
            None => "no content".to_owned(),
        };
        format!(
            "{} {} response {} ({schema})",
            method.to_ascii_uppercase(),
            self.template,
            self.status_key
        )
    }
}

impl Spec {
    /// The spec, loaded on first use. Panics (with instructions) if the file is
    /// missing or unusable: tests must never skip silently for lack of it.
    pub fn get() -> &'static Spec {
        static SPEC: OnceLock<Spec> = OnceLock::new();
        SPEC.get_or_init(|| {
            let path = spec_path();
            Spec::load(&path).unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// Load and prepare the spec at `path`.
    pub fn load(path: &Path) -> Result<Spec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| missing_spec_message(path, &e))?;
        check_package_version(path)?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("OpenAPI spec {} is not valid JSON: {e}", path.display()))?;
        Spec::from_document(doc, path.to_path_buf())
    }

    /// Prepare an already parsed OpenAPI 3.0 document.
    pub fn from_document(doc: Value, source: PathBuf) -> Result<Spec, String> {
        let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
        if !version.starts_with("3.0") {
            return Err(format!(
                "{}: expected an OpenAPI 3.0 document, found openapi = {version:?}",
                source.display()
            ));
        }
        let mut defs = Map::new();
        if let Some(schemas) = doc.pointer("/components/schemas").and_then(Value::as_object) {
            for (name, schema) in schemas {
                let converted = convert_schema(schema).map_err(|e| format!("components.schemas.{name}: {e}"))?;
                defs.insert(name.clone(), converted);
            }
        }
        let templates = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{}: no `paths` object", source.display()))?
            .keys()
            .map(|t| PathTemplate::parse(t))
            .collect();
        Ok(Spec {
            source,
            doc,
            defs,
            templates,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// The file the spec was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The raw OpenAPI document.
    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// A raw (unconverted) `components.schemas` entry, e.g.
    /// `"conversations.v1.conversation"` or `"conversation_enum_state"`.
    pub fn component_schema(&self, name: &str) -> Option<&Value> {
        self.doc.pointer("/components/schemas")?.get(name)
    }

    /// The `enum` values of a component schema, e.g. `conversation_enum_state`.
    pub fn enum_values(&self, name: &str) -> Option<Vec<String>> {
        let values = self.component_schema(name)?.get("enum")?.as_array()?;
        Some(
            values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
        )
    }

    /// The property names, in spec order, of the object the operation returns
    /// for `status` (after following `$ref`s). Empty if it documents no body.
    pub fn response_property_names(&self, method: &str, path: &str, status: u16) -> Result<Vec<String>, String> {
        let response = self.response(method, path, status)?;
        let Some(schema) = response.schema else {
            return Ok(Vec::new());
        };
        let schema = self.resolve(schema)?;
        Ok(schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Map a concrete request path (query string, fragment, scheme and host
    /// ignored) to the spec's path template. Literal segments win over
    /// parameters, comparing segment by segment from the left.
    pub fn path_template(&self, path: &str) -> Option<&str> {
        let segments = split_path(path);
        self.templates
            .iter()
            .filter_map(|t| t.match_rank(&segments).map(|rank| (rank, t)))
            // `max_by` keeps the last of equal elements; reverse so that the
            // first template in document order wins a tie.
            .rev()
            .max_by(|(a, _), (b, _)| a.cmp(b))
            .map(|(_, t)| t.template.as_str())
    }

    /// Check `body` against the schema the spec gives for `method path` and
    /// `status`. Use `Value::Null` for an empty body.
    ///
    /// Status lookup: the exact code, then its range (`2XX`), then `default`;
    /// a status the operation does not document is an error. (This spec has
    /// no range or `default` responses and documents no error statuses at all.)
    /// If the spec documents no content for the status (204), the body must be
    /// `Value::Null`.
    pub fn validate_response(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), Vec<String>> {
        let response = self.response(method, path, status).map_err(|e| vec![e])?;
        let Some(schema) = response.schema else {
            return if body.is_null() {
                Ok(())
            } else {
                Err(vec![format!(
                    "{} documents no body, but the response has one",
                    response.describe(method)
                )])
            };
        };
        let validator = self.validator(method, &response, schema).map_err(|e| vec![e])?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| {
                let pointer = e.instance_path().as_str();
                let pointer = if pointer.is_empty() { "(root)" } else { pointer };
                format!("at {pointer}: {e} (schema: {})", e.evaluation_path().as_str())
            })
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Panic, listing every validation error with its JSON pointer, unless
    /// `body` matches the spec's schema (see [`Spec::validate_response`]).
    #[track_caller]
    pub fn assert_response(&self, method: &str, path: &str, status: u16, body: &Value) {
        if let Err(errors) = self.validate_response(method, path, status, body) {
            panic!(
                "{}",
                self.failure_message("does not match Twilio's OpenAPI spec", method, path, status, body, &errors)
            );
        }
    }

    /// Check that every property the spec lists for the response object is
    /// present in `body` (`null` is fine), recursing into present objects and
    /// into every array item. The spec marks no property `required`, but the
    /// helper libraries read them all. Errors are JSON pointers of missing
    /// properties.
    pub fn check_has_all_properties(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), Vec<String>> {
        let response = self.response(method, path, status).map_err(|e| vec![e])?;
        let Some(schema) = response.schema else {
            return Ok(());
        };
        let mut missing = Vec::new();
        self.collect_missing(schema, body, &mut String::new(), &mut missing, 0)
            .map_err(|e| vec![e])?;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.into_iter().map(|p| format!("missing property {p}")).collect())
        }
    }

    /// Panic unless [`Spec::check_has_all_properties`] passes.
    #[track_caller]
    pub fn assert_has_all_properties(&self, method: &str, path: &str, status: u16, body: &Value) {
        if let Err(errors) = self.check_has_all_properties(method, path, status, body) {
            panic!(
                "{}",
                self.failure_message("lacks properties Twilio's OpenAPI spec lists", method, path, status, body, &errors)
            );
        }
    }

    /// [`Spec::assert_response`] and [`Spec::assert_has_all_properties`],
    /// reporting both kinds of failure at once.
    #[track_caller]
    pub fn assert_response_strict(&self, method: &str, path: &str, status: u16, body: &Value) {
        let mut errors = self.validate_response(method, path, status, body).err().unwrap_or_default();
        if let Err(missing) = self.check_has_all_properties(method, path, status, body) {
            errors.extend(missing);
        }
        if !errors.is_empty() {
            panic!(
                "{}",
                self.failure_message("does not strictly match Twilio's OpenAPI spec", method, path, status, body, &errors)
            );
        }
    }

    fn failure_message(&self, what: &str, method: &str, path: &str, status: u16, body: &Value, errors: &[String]) -> String {
        let mut msg = format!(
            "{} {path} -> {status}: response {what} ({}):\n",
            method.to_ascii_uppercase(),
            self.source.display()
        );
        if let Ok(r) = self.response(method, path, status) {
            let _ = writeln!(msg, "  checked against {}", r.describe(method));
        }
        for e in errors {
            let _ = writeln!(msg, "  - {e}");
        }
        let mut shown = serde_json::to_string_pretty(body).unwrap_or_default();
        if shown.len() > 4000 {
            let mut cut = 4000;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("\n  ...(truncated)");
        }
        let _ = write!(msg, "body:\n{shown}");
        msg
    }

    fn response(&self, method: &str, path: &str, status: u16) -> Result<ResponseSpec<'_>, String> {
        let template = self
            .path_template(path)
            .ok_or_else(|| format!("no path template in the spec matches {path:?}"))?;
        let ops = &self.doc["paths"][template];
        let method_key = method.to_ascii_lowercase();
        let op = ops.get(&method_key).filter(|o| o.is_object()).ok_or_else(|| {
            let methods: Vec<String> = ops
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| matches!(k.as_str(), "get" | "post" | "put" | "patch" | "delete" | "head"))
                .map(|(k, _)| k.to_ascii_uppercase())
                .collect();
            format!(
                "the spec has no {} operation on {template} (it has: {})",
                method.to_ascii_uppercase(),
                methods.join(", ")
            )
        })?;
        let responses = op
            .get("responses")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{method_key} {template} has no responses"))?;
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        let (status_key, response) = [exact.as_str(), range.as_str(), "default"]
            .into_iter()
            .find_map(|k| responses.get_key_value(k))
            .ok_or_else(|| {
                let documented: Vec<&str> = responses.keys().map(String::as_str).collect();
                format!(
                    "{} {template} does not document status {status} (documented: {})",
                    method.to_ascii_uppercase(),
                    documented.join(", ")
                )
            })?;
        let response = self.resolve(response)?;
        let schema = response
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.get("application/json").or_else(|| c.values().next()))
            .and_then(|media| media.get("schema"));
        Ok(ResponseSpec {
            template,
            status_key,
            schema,
        })
    }

    fn validator(&self, method: &str, response: &ResponseSpec<'_>, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let key = format!("{} {} {}", method.to_ascii_lowercase(), response.template, response.status_key);
        let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache.get(&key) {
            return Ok(Arc::clone(v));
        }
        let root = self.root_schema(schema)?;
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(false)
            .build(&root)
            .map_err(|e| format!("{}: cannot compile schema: {e}", response.describe(method)))?;
        let validator = Arc::new(validator);
        cache.insert(key, Arc::clone(&validator));
        Ok(validator)
    }

    /// A JSON Schema document for one OpenAPI schema, with every component in
    /// `$defs`.
    fn root_schema(&self, schema: &Value) -> Result<Value, String> {
        let converted = convert_schema(schema)?;
        let mut root = Map::new();
        root.insert("$defs".to_owned(), Value::Object(self.defs.clone()));
        match converted {
            Value::Object(m) => root.extend(m),
            Value::Bool(true) => {}
            other => {
                root.insert("allOf".to_owned(), json!([other]));
            }
        }
        Ok(Value::Object(root))
    }

    /// Follow `$ref`s (to components) until a schema without one.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..32 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return Ok(value);
            };
            let pointer = reference
                .strip_prefix('#')
                .ok_or_else(|| format!("external $ref {reference:?} is not supported"))?;
            value = self.doc.pointer(pointer).ok_or_else(|| format!("dangling $ref {reference:?}"))?;
        }
        Err("$ref chain too long".to_owned())
    }

    fn collect_missing(
        &self,
        schema: &Value,
        body: &Value,
        pointer: &mut String,
        missing: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 64 {
            return Ok(());
        }
        let schema = self.resolve(schema)?;
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.collect_missing(s, body, pointer, missing, depth + 1)?;
            }
        }
        match body {
            Value::Object(obj) => {
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    for (name, prop_schema) in props {
                        let len = pointer.len();
                        pointer.push('/');
                        pointer.push_str(&escape_pointer(name));
                        match obj.get(name) {
                            None => missing.push(pointer.clone()),
                            Some(Value::Null) => {}
                            Some(value) => self.collect_missing(prop_schema, value, pointer, missing, depth + 1)?,
                        }
                        pointer.truncate(len);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let len = pointer.len();
                        let _ = write!(pointer, "/{i}");
                        self.collect_missing(item_schema, item, pointer, missing, depth + 1)?;
                        pointer.truncate(len);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl PathTemplate {
    fn parse(template: &str) -> PathTemplate {
        let segments = split_path(template)
            .into_iter()
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        PathTemplate {
            template: template.to_owned(),
            segments,
        }
    }

    /// `None` if `path` does not match; else one flag per segment, `true` for
    /// a literal (compared lexicographically, so more literals to the left wins).
    fn match_rank(&self, path: &[&str]) -> Option<Vec<bool>> {
        if path.len() != self.segments.len() {
            return None;
        }
        self.segments
            .iter()
            .zip(path)
            .map(|(seg, actual)| match seg {
                Segment::Literal(lit) => (lit == actual).then_some(true),
                Segment::Param => (!actual.is_empty()).then_some(false),
            })
            .collect()
    }
}

/// Split a path (or URL) into segments, dropping scheme and host, query string,
/// fragment and a trailing slash.
fn split_path(path: &str) -> Vec<&str> {
    let mut p = path;
    if let Some(i) = p.find(['?', '#']) {
        p = &p[..i];
    }
    if let Some(rest) = p.strip_prefix("https://").or_else(|| p.strip_prefix("http://")) {
        p = rest.find('/').map_or("", |i| &rest[i..]);
    }
    let p = p.trim_start_matches('/');
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.is_empty() { Vec::new() } else { p.split('/').collect() }
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Keywords carried over unchanged from an OpenAPI 3.0 schema object.
const KEPT_KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "required",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];

/// Convert an OpenAPI 3.0 schema object to JSON Schema 2020-12.
///
/// - validation keywords in [`KEPT_KEYWORDS`] are kept; `properties`,
///   `additionalProperties` (as given; absent = allowed), `items`, `allOf`,
///   `anyOf`, `oneOf` and `not` are converted recursively;
/// - `$ref: "#/components/schemas/X"` becomes `"#/$defs/X"`; per OpenAPI 3.0,
///   other keys beside a `$ref` are ignored, except `nullable`; refs elsewhere
///   are an error;
/// - `nullable: true` admits `null`: `"null"` is added to `type` and `null`
///   to `enum`; a schema without `type` or `enum` that uses `$ref`/`allOf`/
///   `anyOf`/`oneOf`/`not` becomes `anyOf: [it, {type: null}]`; a schema with
///   none of these already admits `null`;
/// - boolean `exclusiveMinimum`/`exclusiveMaximum` become numeric;
/// - everything else is dropped: `format` (not asserted), `x-*` extensions
///   (e.g. `x-twilio`), `description`, `title`, `default`, `example`,
///   `readOnly`, `writeOnly`, `deprecated`, `discriminator`, `xml`,
///   `externalDocs`.
pub fn convert_schema(schema: &Value) -> Result<Value, String> {
    let obj = match schema {
        Value::Object(obj) => obj,
        Value::Bool(_) => return Ok(schema.clone()),
        other => return Err(format!("a schema must be an object, found {other}")),
    };
    let nullable = obj.get("nullable").and_then(Value::as_bool) == Some(true);

    if let Some(reference) = obj.get("$ref") {
        let reference = reference
            .as_str()
            .ok_or_else(|| format!("$ref must be a string, found {reference}"))?;
        let name = reference
            .strip_prefix(COMPONENT_PREFIX)
            .ok_or_else(|| format!("unsupported $ref {reference:?}"))?;
        let converted = json!({ "$ref": format!("#/$defs/{name}") });
        return Ok(if nullable { or_null(converted) } else { converted });
    }

    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            k if KEPT_KEYWORDS.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            "properties" => {
                let props = value.as_object().ok_or_else(|| "`properties` must be an object".to_owned())?;
                let mut converted = Map::new();
                for (name, s) in props {
                    let c = convert_schema(s).map_err(|e| format!("properties.{name}: {e}"))?;
                    converted.insert(name.clone(), c);
                }
                out.insert(key.clone(), Value::Object(converted));
            }
            "additionalProperties" | "items" | "not" => {
                let c = convert_schema(value).map_err(|e| format!("{key}: {e}"))?;
                out.insert(key.clone(), c);
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = value.as_array().ok_or_else(|| format!("`{key}` must be an array"))?;
                let converted = list
                    .iter()
                    .enumerate()
                    .map(|(i, s)| convert_schema(s).map_err(|e| format!("{key}[{i}]: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert(key.clone(), Value::Array(converted));
            }
            "exclusiveMinimum" | "exclusiveMaximum" => {
                let bound = if key == "exclusiveMinimum" { "minimum" } else { "maximum" };
                match value {
                    Value::Bool(true) => {
                        if let Some(limit) = obj.get(bound) {
                            out.insert(key.clone(), limit.clone());
                        }
                    }
                    Value::Bool(false) => {}
                    number => {
                        out.insert(key.clone(), number.clone());
                    }
                }
            }
            _ => {} // nullable (below), format, x-*, annotations
        }
    }
    // A boolean exclusive bound replaces the inclusive one.
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if obj.get(exclusive) == Some(&Value::Bool(true)) {
            out.remove(bound);
        }
    }

    if nullable {
        let mut handled = false;
        if let Some(values) = out.get_mut("enum").and_then(Value::as_array_mut) {
            if !values.contains(&Value::Null) {
                values.push(Value::Null);
            }
            handled = true;
        }
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert("type".to_owned(), json!([t, "null"]));
                handled = true;
            }
            Some(Value::Array(types)) => {
                if !types.iter().any(|t| t == "null") {
                    types.push(json!("null"));
                }
                handled = true;
            }
            _ => {}
        }
        let composite = ["allOf", "anyOf", "oneOf", "not"].iter().any(|k| out.contains_key(*k));
        if !handled && composite {
            return Ok(or_null(Value::Object(out)));
        }
    }
    Ok(Value::Object(out))
}

fn or_null(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

/// The spec file: `$REHEARSAL_OPENAPI_SPEC` if set, else the npm package in
/// `e2e/node_modules`.
pub fn spec_path() -> PathBuf {
    match std::env::var_os(SPEC_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(SPEC_RELATIVE_PATH),
    }
}

fn missing_spec_message(path: &Path, err: &std::io::Error) -> String {
    format!(
        "cannot read Twilio's OpenAPI spec for Conversations v1 at {} ({err}).\n\
         It comes from the npm package @twilio-alpha/mcp@{EXPECTED_PACKAGE_VERSION} installed in \
         e2e/node_modules: run the test command from the README (it runs `npm ci` in e2e/ \
         first), or set {SPEC_ENV} to the path of twilio_conversations_v1.json.",
        path.display()
    )
}

/// If the spec sits in an npm package directory, insist on the pinned version
/// so that tests do not silently run against another revision of the spec.
fn check_package_version(spec: &Path) -> Result<(), String> {
    // <pkg>/twilio-oai/spec/json/<file>
    let Some(pkg_dir) = spec.ancestors().nth(4) else {
        return Ok(());
    };
    let manifest = pkg_dir.join("package.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        return Ok(());
    };
    let Ok(manifest_json) = serde_json::from_str::<Value>(&text) else {
        return Ok(());
    };
    if manifest_json["name"] != "@twilio-alpha/mcp" {
        return Ok(());
    }
    match manifest_json["version"].as_str() {
        Some(EXPECTED_PACKAGE_VERSION) => Ok(()),
        other => Err(format!(
            "{} is @twilio-alpha/mcp version {}, but these tests expect {EXPECTED_PACKAGE_VERSION}: \
             run the test command from the README (it runs `npm ci` in e2e/), or update \
             EXPECTED_PACKAGE_VERSION after reviewing the spec changes.",
            manifest.display(),
            other.unwrap_or("(none)")
        )),
    }
}

#[cfg(test)]
mod self_tests {
    use super::*;

    const CH: &str = "CHaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const IS: &str = "ISbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const AC: &str = "AC00000000000000000000000000000000";

    fn conversation() -> Value {
        json!({
            "account_sid": AC,
            "chat_service_sid": IS,
            "messaging_service_sid": "MG0123456789abcdef0123456789abcdef",
            "sid": CH,
            "friendly_name": "Home Repair Visit",
            "unique_name": null,
            "attributes": "{}",
            "state": "active",
            "date_created": "2015-12-16T22:18:37Z",
            "date_updated": "2015-12-16T22:18:38Z",
            "timers": {},
            "url": format!("https://conversations.twilio.com/v1/Conversations/{CH}"),
            "links": {
                "participants": format!("https://conversations.twilio.com/v1/Conversations/{CH}/Participants"),
                "messages": format!("https://conversations.twilio.com/v1/Conversations/{CH}/Messages"),
                "webhooks": format!("https://conversations.twilio.com/v1/Conversations/{CH}/Webhooks")
            },
            "bindings": null
        })
    }

    fn meta(key: &str) -> Value {
        json!({
            "page": 0,
            "page_size": 50,
            "first_page_url": "https://conversations.twilio.com/v1/Conversations?PageSize=50&Page=0",
            "previous_page_url": null,
            "url": "https://conversations.twilio.com/v1/Conversations?PageSize=50&Page=0",
            "next_page_url": null,
            "key": key
        })
    }

    fn errors_of(result: Result<(), Vec<String>>) -> Vec<String> {
        result.expect_err("expected validation errors")
    }

    #[test]
    fn valid_conversation_passes() {
        let spec = Spec::get();
        let body = conversation();
        let path = format!("/v1/Conversations/{CH}");
        spec.assert_response("GET", &path, 200, &body);
        spec.assert_response("post", &path, 200, &body);
        spec.assert_response("POST", "/v1/Conversations", 201, &body);
        spec.assert_has_all_properties("GET", &path, 200, &body);
        spec.assert_response_strict("GET", &path, 200, &body);
    }

    #[test]
    fn wrong_type_fails_with_pointer() {
        let spec = Spec::get();
        let mut body = conversation();
        body["date_created"] = json!(5);
        let errors = errors_of(spec.validate_response("GET", &format!("/v1/Conversations/{CH}"), 200, &body));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with("at /date_created: "), "{errors:#?}");
        assert!(errors[0].contains("5"), "{errors:#?}");
    }

    #[test]
    fn every_error_is_reported() {
        let spec = Spec::get();
        let mut body = conversation();
        body["date_created"] = json!(5);
        body["state"] = json!("sleeping");
        body["sid"] = json!("CHnot-a-sid");
        body["links"] = json!("nope");
        let errors = errors_of(spec.validate_response("GET", &format!("/v1/Conversations/{CH}"), 200, &body));
        for pointer in ["/date_created", "/state", "/sid", "/links"] {
            assert!(
                errors.iter().any(|e| e.starts_with(&format!("at {pointer}: "))),
                "no error for {pointer}: {errors:#?}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "at /date_created: ")]
    fn assert_response_panics_with_pointer() {
        let mut body = conversation();
        body["date_created"] = json!(5);
        Spec::get().assert_response("GET", &format!("/v1/Conversations/{CH}"), 200, &body);
    }

    #[test]
    fn state_enum_and_nullable() {
        let spec = Spec::get();
        let path = format!("/v1/Conversations/{CH}");
        let states = spec.enum_values("conversation_enum_state").unwrap();
        assert!(states.contains(&"active".to_owned()), "{states:?}");
        for state in &states {
            let mut body = conversation();
            body["state"] = json!(state);
            spec.assert_response("GET", &path, 200, &body);
        }
        // `state` is a bare $ref to a non-nullable enum: null is rejected.
        let mut body = conversation();
        body["state"] = Value::Null;
        let errors = errors_of(spec.validate_response("GET", &path, 200, &body));
        assert!(errors[0].starts_with("at /state: "), "{errors:#?}");
        // nullable strings accept null; untyped `timers`/`bindings` accept anything.
        let mut body = conversation();
        for key in ["friendly_name", "attributes", "date_updated", "url", "links"] {
            body[key] = Value::Null;
        }
        body["timers"] = json!({"date_inactive": "2015-12-16T22:19:38Z"});
        body["bindings"] = json!({});
        spec.assert_response("GET", &path, 200, &body);
        // format is not asserted.
        body["date_created"] = json!("yesterday");
        spec.assert_response("GET", &path, 200, &body);
        // extra properties are allowed (no additionalProperties in the spec).
        body["rehearsal_extra"] = json!(true);
        spec.assert_response("GET", &path, 200, &body);
    }

    #[test]
    fn list_responses_have_key_and_meta() {
        let spec = Spec::get();
        for (path, key) in [
            ("/v1/Conversations".to_owned(), "conversations"),
            (
                "/v1/Users/US00000000000000000000000000000000/Conversations".to_owned(),
                "conversations",
            ),
            ("/v1/ParticipantConversations?Identity=alice".to_owned(), "conversations"),
            (format!("/v1/Conversations/{CH}/Messages"), "messages"),
            (format!("/v1/Conversations/{CH}/Participants"), "participants"),
            ("/v1/Roles".to_owned(), "roles"),
            ("/v1/Users".to_owned(), "users"),
            ("/v1/Services".to_owned(), "services"),
        ] {
            assert_eq!(
                spec.response_property_names("GET", &path, 200).unwrap(),
                vec![key.to_owned(), "meta".to_owned()],
                "{path}"
            );
            let empty = json!({ key: [], "meta": meta(key) });
            spec.assert_response_strict("GET", &path, 200, &empty);
        }

        let path = "/v1/Conversations?PageSize=50";
        let mut list = json!({ "conversations": [conversation(), conversation()], "meta": meta("conversations") });
        spec.assert_response_strict("GET", path, 200, &list);

        list["conversations"][1]["state"] = json!(7);
        list["meta"]["page"] = json!("0");
        let errors = errors_of(spec.validate_response("GET", path, 200, &list));
        assert!(errors.iter().any(|e| e.starts_with("at /conversations/1/state: ")), "{errors:#?}");
        assert!(errors.iter().any(|e| e.starts_with("at /meta/page: ")), "{errors:#?}");

        let mut list = json!({ "conversations": [conversation()], "meta": meta("conversations") });
        list["conversations"][0].as_object_mut().unwrap().remove("timers");
        list["meta"].as_object_mut().unwrap().remove("key");
        spec.assert_response("GET", path, 200, &list);
        let missing = errors_of(spec.check_has_all_properties("GET", path, 200, &list));
        assert_eq!(
            missing,
            vec![
                "missing property /conversations/0/timers".to_owned(),
                "missing property /meta/key".to_owned()
            ]
        );
    }

    #[test]
    #[should_panic(expected = "missing property /bindings")]
    fn assert_has_all_properties_panics() {
        let mut body = conversation();
        body.as_object_mut().unwrap().remove("bindings");
        Spec::get().assert_has_all_properties("GET", &format!("/v1/Conversations/{CH}"), 200, &body);
    }

    #[test]
    fn path_matching() {
        let spec = Spec::get();
        let cases = [
            (
                format!("/v1/Services/{IS}/Conversations/{CH}/Participants/MB00000000000000000000000000000000"),
                "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}",
            ),
            (
                format!("/v1/Services/{IS}/Conversations/{CH}/Messages/IM00000000000000000000000000000000?x=1"),
                "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Messages/{Sid}",
            ),
            (format!("/v1/Conversations/{CH}"), "/v1/Conversations/{Sid}"),
            ("/v1/Conversations/my-unique-name/".to_owned(), "/v1/Conversations/{Sid}"),
            (
                format!("https://conversations.twilio.com/v1/Conversations/{CH}?a=b"),
                "/v1/Conversations/{Sid}",
            ),
            ("/v1/Conversations".to_owned(), "/v1/Conversations"),
            ("/v1/Users/alice/Conversations".to_owned(), "/v1/Users/{UserSid}/Conversations"),
            (
                format!("/v1/Users/alice/Conversations/{CH}"),
                "/v1/Users/{UserSid}/Conversations/{ConversationSid}",
            ),
            (
                "/v1/ParticipantConversations?Identity=bob".to_owned(),
                "/v1/ParticipantConversations",
            ),
            ("/v1/Roles".to_owned(), "/v1/Roles"),
            ("/v1/Roles/RL00000000000000000000000000000000".to_owned(), "/v1/Roles/{Sid}"),
            ("/v1/Configuration".to_owned(), "/v1/Configuration"),
            ("/v1/Configuration/Webhooks".to_owned(), "/v1/Configuration/Webhooks"),
            ("/v1/Configuration/Addresses".to_owned(), "/v1/Configuration/Addresses"),
            (format!("/v1/Services/{IS}"), "/v1/Services/{Sid}"),
            (
                format!("/v1/Services/{IS}/Configuration"),
                "/v1/Services/{ChatServiceSid}/Configuration",
            ),
            (
                format!("/v1/Services/{IS}/Configuration/Notifications"),
                "/v1/Services/{ChatServiceSid}/Configuration/Notifications",
            ),
        ];
        for (path, template) in &cases {
            assert_eq!(spec.path_template(path), Some(*template), "{path}");
        }
        for path in ["/v1/Nope", "/v2/Conversations", "/v1", "/", "", "/v1/Conversations//Messages"] {
            assert_eq!(spec.path_template(path), None, "{path:?}");
        }
    }

    #[test]
    fn literal_segments_beat_parameters() {
        let doc = json!({
            "openapi": "3.0.1",
            "paths": {
                "/v1/A/{Sid}": {},
                "/v1/A/Special": {},
                "/v1/{X}/Special": {},
                "/v1/A/{Sid}/B": {}
            }
        });
        let spec = Spec::from_document(doc, PathBuf::from("inline")).unwrap();
        assert_eq!(spec.path_template("/v1/A/Special"), Some("/v1/A/Special"));
        assert_eq!(spec.path_template("/v1/A/Other"), Some("/v1/A/{Sid}"));
        assert_eq!(spec.path_template("/v1/Z/Special"), Some("/v1/{X}/Special"));
        assert_eq!(spec.path_template("/v1/A/x/B"), Some("/v1/A/{Sid}/B"));
    }

    #[test]
    fn statuses_methods_and_empty_bodies() {
        let spec = Spec::get();
        let path = format!("/v1/Conversations/{CH}");
        spec.assert_response("DELETE", &path, 204, &Value::Null);
        let errors = errors_of(spec.validate_response("DELETE", &path, 204, &json!({})));
        assert!(errors[0].contains("documents no body"), "{errors:#?}");

        let errors = errors_of(spec.validate_response("GET", &path, 404, &json!({})));
        assert!(errors[0].contains("does not document status 404"), "{errors:#?}");

        let errors = errors_of(spec.validate_response("PUT", &path, 200, &conversation()));
        assert!(errors[0].contains("no PUT operation"), "{errors:#?}");

        let errors = errors_of(spec.validate_response("GET", "/v1/Nope", 200, &json!({})));
        assert!(errors[0].contains("no path template"), "{errors:#?}");

        // A JSON body is required where the spec documents one.
        assert!(spec.validate_response("GET", &path, 200, &Value::Null).is_err());
    }

    #[test]
    fn every_documented_example_validates() {
        // The spec's own examples are real Twilio responses: they must pass
        // our conversion, and each lists every property its schema lists.
        // Known exception to the schema check: Twilio returns `"method": null` for an unset
        // service webhook configuration, but the spec's `method` is a bare
        // `$ref` to a non-nullable enum.
        const KNOWN_SPEC_QUIRKS: &[&str] = &["get /v1/Services/{ChatServiceSid}/Configuration/Webhooks 200 fetchEmpty"];
        let spec = Spec::get();
        let mut checked = 0;
        let mut failures = Vec::new();
        for (template, ops) in spec.document()["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                    continue;
                };
                for (status, response) in responses {
                    let status: u16 = status.parse().unwrap();
                    let examples = response.pointer("/content/application~1json/examples").and_then(Value::as_object);
                    for (name, example) in examples.into_iter().flatten() {
                        checked += 1;
                        // A template matches itself (`{Param}` is a non-empty segment).
                        let result = spec.validate_response(method, template, status, &example["value"]);
                        let id = format!("{method} {template} {status} {name}");
                        match (KNOWN_SPEC_QUIRKS.contains(&id.as_str()), result) {
                            (false, Err(e)) => failures.push(format!("{id}: {e:#?}")),
                            (true, Ok(())) => failures.push(format!("{id}: expected to fail")),
                            _ => {}
                        }
                        let all = spec.check_has_all_properties(method, template, status, &example["value"]);
                        if let Err(e) = all {
                            failures.push(format!("{id}: {e:#?}"));
                        }
                    }
                }
            }
        }
        assert!(checked > 50, "only {checked} examples found");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn conversion_rules() {
        let c = |s: Value| convert_schema(&s).unwrap();
        assert_eq!(
            c(json!({"type": "string", "nullable": true, "format": "date-time", "x-twilio": {"pii": {}}, "description": "d"})),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            c(json!({"type": "string", "enum": ["a", "b"], "nullable": true})),
            json!({"type": ["string", "null"], "enum": ["a", "b", null]})
        );
        assert_eq!(
            c(json!({"$ref": "#/components/schemas/x.y_z", "nullable": true, "description": "ignored"})),
            json!({"anyOf": [{"$ref": "#/$defs/x.y_z"}, {"type": "null"}]})
        );
        assert_eq!(c(json!({"$ref": "#/components/schemas/a"})), json!({"$ref": "#/$defs/a"}));
        assert!(convert_schema(&json!({"$ref": "#/components/parameters/a"})).is_err());
        assert_eq!(
            c(
                json!({"type": "object", "additionalProperties": {"type": "integer", "nullable": true},
                      "properties": {"a": {"type": "array", "items": {"type": "boolean"}}}})
            ),
            json!({"type": "object", "additionalProperties": {"type": ["integer", "null"]},
                   "properties": {"a": {"type": "array", "items": {"type": "boolean"}}}})
        );
        assert_eq!(
            c(json!({"type": "object", "additionalProperties": false})),
            json!({"type": "object", "additionalProperties": false})
        );
        assert_eq!(
            c(json!({"type": "number", "minimum": 1, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false})),
            json!({"type": "number", "maximum": 9, "exclusiveMinimum": 1})
        );
        assert_eq!(
            c(json!({"oneOf": [{"type": "string"}], "nullable": true})),
            json!({"anyOf": [{"oneOf": [{"type": "string"}]}, {"type": "null"}]})
        );
        assert_eq!(c(json!({"nullable": true, "description": "timers"})), json!({}));
    }

    #[test]
    fn missing_spec_message_explains_what_to_run() {
        let err = Spec::load(Path::new("/nonexistent/twilio_conversations_v1.json")).err().unwrap();
        assert!(err.contains("README"), "{err}");
        assert!(err.contains("npm ci"), "{err}");
        assert!(err.contains(SPEC_ENV), "{err}");
    }

    #[test]
    fn wrong_package_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("mcp");
        let json_dir = pkg.join("twilio-oai/spec/json");
        std::fs::create_dir_all(&json_dir).unwrap();
        std::fs::write(pkg.join("package.json"), r#"{"name": "@twilio-alpha/mcp", "version": "9.9.9"}"#).unwrap();
        let file = json_dir.join("twilio_conversations_v1.json");
        std::fs::write(&file, r#"{"openapi": "3.0.1", "paths": {}}"#).unwrap();
        let err = Spec::load(&file).err().unwrap();
        assert!(err.contains("9.9.9") && err.contains(EXPECTED_PACKAGE_VERSION), "{err}");
    }
}
