//! Request validation against HubSpot's official OpenAPI files, read at test
//! time from `../shared/reference/hubspot-openapi/` (never copied into the
//! repository: they are not licensed for redistribution).
//!
//! `/crm/v3/…` and `/account-info/v3/…` requests are checked against the
//! top-level files, date-versioned ones against `2026-03/`. A request body is
//! validated against its operation's request-body schema (draft 4 semantics,
//! `$ref`s resolved inside the same file's `components`; OpenAPI 3.0
//! `nullable` is ignored, and no request schema we use has it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::routes::Family;

/// Fields the spec marks required that HubSpot does not enforce (README "Spec
/// quirks" and reference §10 pitfall 13): search `after`, `sorts` and `limit`,
/// create inputs' `associations`, batch read's `propertiesWithHistory`.
/// Exactly these are relaxed; every other `required` is enforced.
const NOT_ENFORCED: &[(&str, &[&str])] = &[
    ("PublicObjectSearchRequest", &["after", "sorts", "limit"]),
    ("SimplePublicObjectInputForCreate", &["associations"]),
    ("SimplePublicObjectBatchInputForCreate", &["associations"]),
    (
        "BatchReadInputSimplePublicObjectId",
        &["propertiesWithHistory"],
    ),
];

/// A request the spec rejects (or the fake could not place).
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// `file METHOD template` of the operation, or why none applies.
    pub operation: String,
    /// What is wrong, one line each.
    pub problems: Vec<String>,
    /// The body as sent (JSON), if it parsed.
    pub body: Option<Value>,
}

/// One operation of a spec file.
struct Operation {
    file: String,
    method: String,
    template: String,
    segments: Vec<String>,
    body_schema: Option<Value>,
    components: Arc<Value>,
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

impl Operation {
    fn literal_segments(&self) -> usize {
        self.segments.iter().filter(|s| !s.starts_with('{')).count()
    }

    fn matches(&self, method: &str, segments: &[&str]) -> bool {
        self.method.eq_ignore_ascii_case(method)
            && self.segments.len() == segments.len()
            && self
                .segments
                .iter()
                .zip(segments)
                .all(|(template, actual)| template.starts_with('{') || template == actual)
    }

    fn validator(&self) -> &Result<jsonschema::Validator, String> {
        self.validator.get_or_init(|| {
            let schema = self.body_schema.clone().unwrap_or(json!({}));
            let root = json!({"allOf": [schema], "components": self.components.as_ref().clone()});
            jsonschema::draft4::options()
                .build(&root)
                .map_err(|error| format!("schema of {} does not compile: {error}", self.template))
        })
    }
}

/// The operations of both path families.
pub struct Specs {
    families: HashMap<Family, Vec<Operation>>,
}

/// The spec directory: env `HUBSPOT_OPENAPI_DIR`, else beside the project in `shared/`.
pub fn spec_dir() -> PathBuf {
    std::env::var_os("HUBSPOT_OPENAPI_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/hubspot-openapi"),
        PathBuf::from,
    )
}

/// The loaded specs, or `None` when the directory is missing outside CI
/// (a notice is printed once). Panics under `CI=true` when it is missing.
pub fn specs() -> Option<&'static Specs> {
    static SPECS: OnceLock<Option<Specs>> = OnceLock::new();
    SPECS
        .get_or_init(|| {
            let dir = spec_dir();
            if !dir.join("companies.json").is_file() {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "fake HubSpot: the OpenAPI specs are missing at {} (set HUBSPOT_OPENAPI_DIR); CI requires them",
                    dir.display()
                );
                eprintln!(
                    "notice: fake HubSpot skips request validation: no OpenAPI specs at {} (set HUBSPOT_OPENAPI_DIR)",
                    dir.display()
                );
                return None;
            }
            let mut families = HashMap::new();
            families.insert(Family::V3, load_dir(&dir));
            families.insert(Family::Dated, load_dir(&dir.join(super::routes::DATED_VERSION)));
            Some(Specs { families })
        })
        .as_ref()
}

fn load_dir(dir: &std::path::Path) -> Vec<Operation> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("fake HubSpot: cannot list {}: {error}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files.iter().flat_map(|path| load_file(path)).collect()
}

fn load_file(path: &std::path::Path) -> Vec<Operation> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("fake HubSpot: cannot read {}: {error}", path.display()));
    let mut spec: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("fake HubSpot: {} is not JSON: {error}", path.display()));
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut components = spec["components"].take();
    relax(&mut components["schemas"]);
    let components = Arc::new(components);
    let mut operations = Vec::new();
    for (template, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            if method == "parameters" {
                continue;
            }
            operations.push(Operation {
                file: file.clone(),
                method: method.to_uppercase(),
                template: template.clone(),
                segments: template.split('/').skip(1).map(str::to_owned).collect(),
                body_schema: operation
                    .pointer("/requestBody/content/application~1json/schema")
                    .cloned(),
                components: Arc::clone(&components),
                validator: OnceLock::new(),
            });
        }
    }
    operations
}

/// Applies `NOT_ENFORCED`, and lets search `sorts` items be the guide's
/// `{propertyName, direction}` objects as well as the spec's strings (the
/// spec types them `string[]`, HubSpot's guide and API use objects).
fn relax(schemas: &mut Value) {
    for (schema, fields) in NOT_ENFORCED {
        if let Some(required) = schemas[*schema]["required"].as_array_mut() {
            required.retain(|field| !fields.iter().any(|f| field == f));
        }
    }
    if let Some(sorts) = schemas.pointer_mut("/PublicObjectSearchRequest/properties/sorts") {
        sorts["items"] = json!({"anyOf": [
            {"type": "string"},
            {"type": "object", "required": ["propertyName"], "properties": {
                "propertyName": {"type": "string"},
                "direction": {"enum": ["ASCENDING", "DESCENDING"]},
            }},
        ]});
    }
}

impl Specs {
    /// The violation of a request, `None` when it conforms. `body` is the raw body.
    pub fn check(
        &self,
        family: Family,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Option<Violation> {
        let trimmed = path.trim_end_matches('/');
        let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
        let operation = self.families[&family]
            .iter()
            .filter(|op| op.matches(method, &segments))
            .max_by_key(|op| op.literal_segments());
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let violation = |operation: String, problems: Vec<String>| Violation {
            method: method.to_owned(),
            path: path.to_owned(),
            operation,
            problems,
            body: parsed.clone(),
        };
        let Some(operation) = operation else {
            let problem = format!("no {method} {path} operation in the {family:?} spec files");
            return Some(violation("none".into(), vec![problem]));
        };
        let name = format!(
            "{} {} {}",
            operation.file, operation.method, operation.template
        );
        // Operations without a request body (GETs) have nothing more to check.
        operation.body_schema.as_ref()?;
        let Some(instance) = parsed.as_ref() else {
            let problem = "request body is missing or not JSON".to_owned();
            return Some(violation(name, vec![problem]));
        };
        let validator = match operation.validator() {
            Ok(validator) => validator,
            Err(error) => panic!("fake HubSpot: {error}"),
        };
        let problems: Vec<String> = validator
            .iter_errors(instance)
            .map(|error| format!("at '{}': {error}", error.instance_path()))
            .collect();
        (!problems.is_empty()).then(|| violation(name, problems))
    }
}
