//! The object batch endpoints: read (by id or by a unique `idProperty`),
//! and create (tasks and notes with inline associations to companies), plus
//! the helpers update and upsert share.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use super::batch::{self, InputError, Properties};
use super::errors::{self, Reply};
use super::routes::ObjectType;
use super::state::{Association, Store};

/// What the object handlers need.
pub struct Ctx<'a> {
    /// The portal.
    pub store: &'a mut Store,
    /// Search index delay for new records.
    pub search_lag: Duration,
    /// Whether batch results come back in reverse input order.
    pub reverse: bool,
}

/// The association type id HubSpot defines from `object` to companies.
pub fn company_association_type(object: ObjectType) -> Option<i64> {
    match object {
        ObjectType::Tasks => Some(192),
        ObjectType::Notes => Some(190),
        ObjectType::Companies => None,
    }
}

fn requested(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// 400 unless `name` may identify records (`hs_object_id` or a unique property).
pub(super) fn check_id_property(
    store: &Store,
    object: ObjectType,
    name: &str,
    action: &str,
) -> Result<(), Reply> {
    if name == "hs_object_id" || store.is_unique(object, name) {
        return Ok(());
    }
    let message = match store.property(object, name) {
        None => format!("Property \"{name}\" does not exist"),
        Some(_) => format!("Unable to perform {action} by non-unique 0-2 property {name}"),
    };
    Err(errors::error(400, "VALIDATION_ERROR", &message))
}

/// The record an input names, by `idProperty` (or record id).
pub(super) fn locate<'s>(
    store: &'s Store,
    object: ObjectType,
    id_property: Option<&str>,
    id: &str,
) -> Option<&'s str> {
    let record = match id_property {
        Some(name) if name != "hs_object_id" => store.find_by(object, name, id),
        _ => store.get(object, id),
    };
    record.map(|record| record.id.as_str())
}

/// Unique values must be free in the portal and within the batch.
pub(super) fn claim(
    store: &Store,
    object: ObjectType,
    properties: &BTreeMap<String, String>,
    except: Option<&str>,
    claimed: &mut HashSet<(String, String)>,
) -> Result<(), InputError> {
    if let Some((name, value, holder)) = store.unique_conflict(object, properties, except) {
        return Err(batch::conflict(object, &name, &value, &holder));
    }
    for (name, value) in properties {
        if !value.is_empty()
            && store.is_unique(object, name)
            && !claimed.insert((name.clone(), value.clone()))
        {
            return Err(batch::conflict(
                object,
                name,
                value,
                "another input of this batch",
            ));
        }
    }
    Ok(())
}

fn associations(
    store: &Store,
    object: ObjectType,
    input: &Value,
) -> Result<Vec<Association>, InputError> {
    let Some(expected) = company_association_type(object) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for association in input["associations"].as_array().into_iter().flatten() {
        let to_id = association["to"]["id"].as_str().unwrap_or_default();
        if store.get(ObjectType::Companies, to_id).is_none() {
            let message = format!("No company with id {to_id} exists to associate with");
            return Err(InputError::invalid("OBJECT_NOT_FOUND", message));
        }
        let types = association["types"].as_array().cloned().unwrap_or_default();
        if types.is_empty() {
            return Err(InputError::invalid(
                "INVALID_ASSOCIATION",
                "association without types".into(),
            ));
        }
        for kind in types {
            let category = kind["associationCategory"].as_str().unwrap_or_default();
            let type_id = kind["associationTypeId"].as_i64().unwrap_or_default();
            if category != "HUBSPOT_DEFINED" || type_id != expected {
                let message = format!(
                    "association {category}/{type_id} is not valid from {} to companies (expected HUBSPOT_DEFINED/{expected})",
                    object.segment()
                );
                return Err(InputError::invalid("INVALID_ASSOCIATION", message));
            }
            found.push(Association {
                to_type: ObjectType::Companies,
                to_id: to_id.to_owned(),
                category: category.to_owned(),
                type_id,
            });
        }
    }
    Ok(found)
}

/// Applies the outcome of pass 1 unless an invalid input must fail the batch.
pub(super) fn settle<T>(
    inputs: &[Value],
    checked: &[Result<T, InputError>],
) -> Result<Vec<Value>, Reply> {
    let traceable = batch::traceable(inputs);
    let mut errors = Vec::new();
    for (input, outcome) in inputs.iter().zip(checked) {
        if let Err(error) = outcome {
            if !traceable {
                return Err(batch::whole_failure(error));
            }
            errors.push(batch::per_input(
                error,
                &batch::trace_id(input).unwrap_or_default(),
            ));
        }
    }
    Ok(errors)
}

/// `POST …/batch/read`: 200, or 207 listing ids that match nothing.
pub fn batch_read(ctx: &mut Ctx<'_>, object: ObjectType, body: &Value) -> Reply {
    let inputs = match batch::inputs(body) {
        Ok(inputs) => inputs,
        Err(reply) => return reply,
    };
    let id_property = body["idProperty"].as_str();
    if let Some(name) = id_property
        && let Err(reply) = check_id_property(ctx.store, object, name, "read")
    {
        return reply;
    }
    let properties = requested(body, "properties");
    let (mut results, mut missing, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
    for id in inputs.iter().filter_map(|input| input["id"].as_str()) {
        match locate(ctx.store, object, id_property, id) {
            Some(found) if seen.insert(found.to_owned()) => {
                let record = ctx.store.get(object, found).expect("located");
                results.push(record.to_json(Some(&properties)));
            }
            Some(_) => {}
            None => missing.push(id.to_owned()),
        }
    }
    let errors = if missing.is_empty() {
        vec![]
    } else {
        vec![batch::not_found(object, &missing)]
    };
    batch::envelope(200, results, errors, ctx.reverse)
}

/// `POST …/batch/create`: 201, 207 with per-input errors, or a whole failure.
pub fn batch_create(ctx: &mut Ctx<'_>, object: ObjectType, body: &Value) -> Reply {
    let inputs = match batch::inputs(body) {
        Ok(inputs) => inputs,
        Err(reply) => return reply,
    };
    let mut claimed = HashSet::new();
    let checked: Vec<Result<(Properties, Vec<Association>), InputError>> = inputs
        .iter()
        .map(|input| {
            let properties = batch::properties(input);
            batch::check_properties(ctx.store, object, &properties, true)?;
            let associations = associations(ctx.store, object, input)?;
            claim(ctx.store, object, &properties, None, &mut claimed)?;
            Ok((properties, associations))
        })
        .collect();
    let errors = match settle(inputs, &checked) {
        Ok(errors) => errors,
        Err(reply) => return reply,
    };
    let mut results = Vec::new();
    for (input, outcome) in inputs.iter().zip(checked) {
        if let Ok((properties, associations)) = outcome {
            let trace = batch::trace_id(input);
            let id = ctx.store.insert(
                object,
                properties,
                associations,
                trace,
                Utc::now(),
                ctx.search_lag,
            );
            results.push(ctx.store.get(object, &id).expect("inserted").to_json(None));
        }
    }
    batch::envelope(201, results, errors, ctx.reverse)
}
