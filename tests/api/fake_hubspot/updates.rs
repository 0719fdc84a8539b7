//! `POST …/batch/update` (by record id or a per-input unique `idProperty`)
//! and `POST …/batch/upsert` (create or update by a unique `idProperty`).
//! The same id twice fails the whole request, as HubSpot does.

use std::collections::HashSet;

use chrono::Utc;
use serde_json::{Value, json};

use super::batch::{self, InputError, Properties};
use super::errors::Reply;
use super::objects::{Ctx, check_id_property, claim, locate, settle};
use super::routes::ObjectType;

/// Where an input goes: the existing record's id (`None`: create it) and the values.
type Target = (Option<String>, Properties);

/// `POST …/batch/update`: by record id (or per-input `idProperty`); 200 or 207.
pub fn batch_update(ctx: &mut Ctx<'_>, object: ObjectType, body: &Value) -> Reply {
    write_existing(ctx, object, body, false)
}

/// `POST …/batch/upsert`: by unique `idProperty`; results carry `new`.
pub fn batch_upsert(ctx: &mut Ctx<'_>, object: ObjectType, body: &Value) -> Reply {
    write_existing(ctx, object, body, true)
}

fn write_existing(ctx: &mut Ctx<'_>, object: ObjectType, body: &Value, upsert: bool) -> Reply {
    let inputs = match batch::inputs(body) {
        Ok(inputs) => inputs,
        Err(reply) => return reply,
    };
    if let Some(reply) = batch::duplicate_ids(inputs) {
        return reply;
    }
    for name in inputs
        .iter()
        .filter_map(|input| input["idProperty"].as_str())
    {
        if let Err(reply) = check_id_property(ctx.store, object, name, "update/upsert") {
            return reply;
        }
    }
    let (mut claimed, mut missing) = (HashSet::new(), Vec::new());
    let checked: Vec<Result<Option<Target>, InputError>> = inputs
        .iter()
        .map(|input| {
            let id = input["id"].as_str().unwrap_or_default();
            let id_property = input["idProperty"].as_str();
            let existing = locate(ctx.store, object, id_property, id).map(str::to_owned);
            let mut properties = batch::properties(input);
            if existing.is_none() && !upsert {
                missing.push(id.to_owned());
                return Ok(None);
            }
            if existing.is_none()
                && let Some(name) = id_property.filter(|name| *name != "hs_object_id")
            {
                properties
                    .entry(name.to_owned())
                    .or_insert_with(|| id.to_owned());
            }
            batch::check_properties(ctx.store, object, &properties, existing.is_none())?;
            claim(
                ctx.store,
                object,
                &properties,
                existing.as_deref(),
                &mut claimed,
            )?;
            Ok(Some((existing, properties)))
        })
        .collect();
    let mut errors = match settle(inputs, &checked) {
        Ok(errors) => errors,
        Err(reply) => return reply,
    };
    let mut results = Vec::new();
    for (input, outcome) in inputs.iter().zip(checked) {
        let Ok(Some((existing, properties))) = outcome else {
            continue;
        };
        let (id, new) = match existing {
            Some(id) => {
                ctx.store.update(object, &id, &properties);
                (id, false)
            }
            None => {
                let trace = batch::trace_id(input);
                let id = ctx.store.insert(
                    object,
                    properties,
                    vec![],
                    trace,
                    Utc::now(),
                    ctx.search_lag,
                );
                (id, true)
            }
        };
        let mut result = ctx.store.get(object, &id).expect("written").to_json(None);
        if upsert {
            result["new"] = json!(new);
        }
        results.push(result);
    }
    if !missing.is_empty() {
        errors.push(batch::not_found(object, &missing));
    }
    batch::envelope(200, results, errors, ctx.reverse)
}
