//! What every batch write shares: reading inputs, checking property values,
//! and HubSpot's rule for invalid inputs (§10 pitfall 5 of the reference):
//! when every input carries a distinct `objectWriteTraceId`, the valid inputs
//! are applied and the invalid ones come back as per-input errors in a 207;
//! otherwise one invalid input fails the whole request and nothing is written.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use serde_json::{Value, json};

use super::errors::{self, Reply};
use super::routes::ObjectType;
use super::seed::TASK_ENUMS;
use super::state::{Store, timestamp};

/// Property values of one input, by name.
pub type Properties = BTreeMap<String, String>;

/// HubSpot's cap on batch inputs.
pub const MAX_INPUTS: usize = 100;

/// Why one input was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The whole-request status it maps to when the batch fails (400 or 409).
    pub status: u16,
    /// `VALIDATION_ERROR`, `CONFLICT`, …
    pub category: String,
    /// Human-readable message.
    pub message: String,
    /// Error details (`ErrorDetail`s).
    pub details: Vec<Value>,
}

impl InputError {
    /// A 400 `VALIDATION_ERROR`.
    pub fn invalid(code: &str, message: String) -> Self {
        Self {
            status: 400,
            category: "VALIDATION_ERROR".into(),
            details: vec![json!({"message": message, "code": code})],
            message,
        }
    }
}

/// The `inputs` array, or a 400 when it is absent or too long.
pub fn inputs(body: &Value) -> Result<&[Value], Reply> {
    let inputs = body["inputs"]
        .as_array()
        .ok_or_else(|| errors::validation_error("Invalid input JSON: inputs is required", &[]))?;
    if inputs.len() > MAX_INPUTS {
        let message = format!(
            "Batch input has {} inputs; at most {MAX_INPUTS}",
            inputs.len()
        );
        return Err(errors::validation_error(&message, &[]));
    }
    Ok(inputs)
}

/// An input's `properties` as strings (non-strings are stringified, nulls dropped).
pub fn properties(input: &Value) -> BTreeMap<String, String> {
    input["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((name.clone(), text))
        })
        .collect()
}

/// An input's `objectWriteTraceId`.
pub fn trace_id(input: &Value) -> Option<String> {
    input["objectWriteTraceId"].as_str().map(str::to_owned)
}

/// Whether every input has a distinct trace id (so errors can be per input).
pub fn traceable(inputs: &[Value]) -> bool {
    let ids: Vec<Option<String>> = inputs.iter().map(trace_id).collect();
    let distinct: HashSet<&Option<String>> = ids.iter().collect();
    ids.iter().all(Option::is_some) && distinct.len() == ids.len()
}

/// Checks property values for a write: companies must use defined, writable
/// properties; tasks need `hs_timestamp` on create and valid enum options.
pub fn check_properties(
    store: &Store,
    object: ObjectType,
    properties: &BTreeMap<String, String>,
    creating: bool,
) -> Result<(), InputError> {
    for name in properties.keys() {
        match store.property(object, name) {
            None if object == ObjectType::Companies => {
                let message =
                    format!("Property values were not valid: Property \"{name}\" does not exist");
                return Err(InputError::invalid("PROPERTY_DOESNT_EXIST", message));
            }
            Some(definition)
                if definition["modificationMetadata"]["readOnlyValue"] == json!(true) =>
            {
                let message = format!(
                    "Property values were not valid: \"{name}\" is a read only property; its value cannot be set"
                );
                return Err(InputError::invalid("READ_ONLY_VALUE", message));
            }
            _ => {}
        }
    }
    if creating && object != ObjectType::Companies && !properties.contains_key("hs_timestamp") {
        let message = "Property values were not valid: hs_timestamp is required".to_owned();
        return Err(InputError::invalid("REQUIRED_PROPERTY", message));
    }
    if object == ObjectType::Tasks {
        for (name, options) in TASK_ENUMS {
            if let Some(value) = properties.get(*name).filter(|v| !v.is_empty())
                && !options.contains(&value.as_str())
            {
                let message = format!(
                    "Property values were not valid: {value} was not one of the allowed options for {name}: {options:?}"
                );
                return Err(InputError::invalid("INVALID_OPTION", message));
            }
        }
    }
    Ok(())
}

/// A 409 `CONFLICT` for a unique value another record holds.
pub fn conflict(object: ObjectType, name: &str, value: &str, holder: &str) -> InputError {
    InputError {
        status: 409,
        category: "CONFLICT".into(),
        message: format!(
            "A {} with {name} \"{value}\" already exists (record {holder}); {name} has unique values",
            object.segment()
        ),
        details: vec![
            json!({"message": "Duplicate unique value", "code": "CONFLICTING_UNIQUE_VALUE",
            "context": {"propertyName": [name], "existingObjectId": [holder]}}),
        ],
    }
}

/// The per-input error of a 207.
pub fn per_input(error: &InputError, trace_id: &str) -> Value {
    let mut body = errors::standard_error(
        &error.category,
        &error.message,
        json!({"objectWriteTraceId": [trace_id]}),
    );
    body["errors"] = json!(error.details);
    body
}

/// A whole-request failure from the first invalid input (nothing was written).
pub fn whole_failure(error: &InputError) -> Reply {
    let mut body = errors::error_body(&error.category, &error.message);
    body["errors"] = json!(error.details);
    Reply::json(error.status, body)
}

/// 400 when the same id appears twice (HubSpot fails the whole request).
pub fn duplicate_ids(inputs: &[Value]) -> Option<Reply> {
    let mut seen = HashSet::new();
    let mut duplicates: Vec<String> = Vec::new();
    for id in inputs.iter().filter_map(|input| input["id"].as_str()) {
        if !seen.insert(id) && !duplicates.iter().any(|d| d == id) {
            duplicates.push(id.to_owned());
        }
    }
    (!duplicates.is_empty()).then(|| {
        let message = format!(
            "Duplicate IDs found in batch input: [{}]. IDs must be unique",
            duplicates.join(", ")
        );
        errors::error_with_context(
            400,
            "VALIDATION_ERROR",
            &message,
            json!({"ids": duplicates}),
        )
    })
}

/// The batch envelope: `ok_status` without errors, else 207 with `errors` and `numErrors`.
pub fn envelope(ok_status: u16, results: Vec<Value>, errors: Vec<Value>, reverse: bool) -> Reply {
    let mut results = results;
    if reverse {
        results.reverse();
    }
    let now = timestamp(Utc::now());
    let mut body =
        json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now});
    if errors.is_empty() {
        return Reply::json(ok_status, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = json!(errors);
    Reply::json(207, body)
}

/// `OBJECT_NOT_FOUND` for ids that match nothing, as one error listing them.
pub fn not_found(object: ObjectType, ids: &[String]) -> Value {
    let kind = match object {
        ObjectType::Companies => "COMPANY",
        ObjectType::Tasks => "TASK",
        ObjectType::Notes => "NOTE",
    };
    let message = format!(
        "Could not get some {kind} objects, they may be deleted or not exist. Check that ids are valid."
    );
    errors::standard_error("OBJECT_NOT_FOUND", &message, json!({"ids": ids}))
}
