//! Companies for a batch: resolve each DUNS with one batch read, create the
//! missing ones SEED/FULL_PRODUCT may create, and write every company's merged
//! property changes in one batch update.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::{HubSpotExecutor, Work};
use crate::hubspot::client::BATCH_LIMIT;
use crate::hubspot::error::HubSpotError;
use crate::hubspot::executor::Execution;
use crate::hubspot::model::{BatchAnswer, CreateInput, SimpleObject, UpdateInput};
use crate::journal::{ActionRecord, ActionState};
use crate::mapping::render::{CompanyView, SuccessorView};
use crate::mapping::{Action, ActionKind};

/// The successor DUNS a TRANSFER names in an `organization.duns` element.
fn successor_duns(work: &Work<'_>) -> Option<String> {
    work.planned
        .notification
        .elements
        .iter()
        .find(|change| change.element == "organization.duns")
        .and_then(|change| change.current.as_str())
        .filter(|duns| duns.len() == 9 && duns.bytes().all(|byte| byte.is_ascii_digit()))
        .map(str::to_string)
}

fn creatable_properties<'a>(work: &Work<'a>) -> Option<&'a BTreeMap<String, String>> {
    work.planned
        .plan
        .actions
        .iter()
        .find_map(|action| match action {
            Action::UpdateCompany {
                properties,
                create_if_missing: true,
            } if properties.contains_key("name") => Some(properties),
            _ => None,
        })
}

fn done_record(kind: ActionKind, company_id: &str, detail: Value) -> ActionRecord {
    ActionRecord {
        key: kind.as_str().to_string(),
        kind: kind.as_str().to_string(),
        state: ActionState::Done,
        object_type: Some("companies".into()),
        object_id: Some(company_id.to_string()),
        detail: detail.to_string(),
    }
}

/// Resolves every notification's company (the oldest when several carry the DUNS) and the
/// TRANSFER successors; notifications with no company that may not create one end `no_company`.
pub(super) async fn resolve(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
) -> Result<(), HubSpotError> {
    let mut dunses = BTreeSet::new();
    for item in work.iter() {
        dunses.insert(item.planned.notification.duns.to_string());
        dunses.extend(successor_duns(item));
    }
    let dunses: Vec<String> = dunses.into_iter().collect();
    let property = &executor.duns_property;
    let wanted = vec![property.clone(), "name".into(), "hubspot_owner_id".into()];
    let found = match executor
        .client
        .read_companies_by(property, &dunses, &wanted)
        .await
    {
        Ok(found) => found,
        // A DUNS property without unique values cannot be read by; search finds it instead.
        Err(HubSpotError::Rejected { message, .. })
            if message.to_lowercase().contains("unique") =>
        {
            executor
                .client
                .search_in("companies", property, &dunses, &wanted)
                .await?
        }
        Err(error) => return Err(error),
    };
    let mut by_duns: HashMap<String, Vec<SimpleObject>> = HashMap::new();
    for company in found {
        if let Some(duns) = company.property(property) {
            by_duns.entry(duns.to_string()).or_default().push(company);
        }
    }
    for companies in by_duns.values_mut() {
        // The oldest company is the one acted on; ids break ties between equal times.
        companies.sort_by(|left, right| {
            (&left.created_at, &left.id).cmp(&(&right.created_at, &right.id))
        });
    }

    for item in work.iter_mut() {
        let duns = item.planned.notification.duns.to_string();
        match by_duns.get(&duns).and_then(|companies| companies.first()) {
            Some(primary) => {
                item.owner = primary.property("hubspot_owner_id").map(str::to_string);
                item.company = Some(CompanyView {
                    id: primary.id.clone(),
                    name: primary.property("name").map(str::to_string),
                    duns: duns.clone(),
                    other_ids_with_same_duns: by_duns[&duns][1..]
                        .iter()
                        .map(|other| other.id.clone())
                        .collect(),
                });
            }
            None if creatable_properties(item).is_some() => {}
            None => {
                item.ended = Some(Execution::Skipped {
                    reason: "no_company".into(),
                    actions: Vec::new(),
                })
            }
        }
        if let Some(successor) = successor_duns(item) {
            let holder = by_duns
                .get(&successor)
                .and_then(|companies| companies.first());
            let own_id = item.company.as_ref().map(|company| company.id.clone());
            item.successor = match holder {
                Some(holder) if Some(&holder.id) != own_id.as_ref() => SuccessorView::TakenBy {
                    duns: successor,
                    company_id: holder.id.clone(),
                    company_name: holder.property("name").map(str::to_string),
                },
                _ => SuccessorView::Free { duns: successor },
            };
        }
    }
    Ok(())
}

/// Creates missing companies, then writes each company's merged property changes.
pub(super) async fn write(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
) -> Result<(), HubSpotError> {
    create_missing(executor, work).await?;
    update(executor, work).await
}

async fn create_missing(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
) -> Result<(), HubSpotError> {
    let mut inputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in work
        .iter()
        .filter(|item| item.ended.is_none() && item.company.is_none())
    {
        if let Some(properties) = creatable_properties(item) {
            inputs
                .entry(item.planned.notification.duns.to_string())
                .or_default()
                .extend(properties.clone());
        }
    }
    if inputs.is_empty() {
        return Ok(());
    }
    let mut created: HashMap<String, String> = HashMap::new();
    // A company this bridge created earlier may not show in search yet (when the DUNS property is
    // not unique, lookups go through search): the journal remembers it.
    let dunses: Vec<String> = inputs.keys().cloned().collect();
    let remembered = executor
        .journal
        .created_companies(&dunses)
        .await
        .unwrap_or_default();
    let mut reused: HashMap<String, String> = HashMap::new();
    if !remembered.is_empty() {
        let ids: Vec<String> = remembered.iter().map(|(_, id)| id.clone()).collect();
        let still_there = executor
            .client
            .read_companies(&ids, std::slice::from_ref(&executor.duns_property))
            .await?;
        for (duns, id) in remembered {
            if still_there.iter().any(|company| company.id == id) {
                inputs.remove(&duns);
                reused.insert(duns, id);
            }
        }
    }
    let mut refused: HashMap<String, String> = HashMap::new();
    let all: Vec<CreateInput> = inputs
        .into_iter()
        .map(|(duns, properties)| CreateInput {
            properties,
            associations: Vec::new(),
            object_write_trace_id: format!("company-{duns}"),
        })
        .collect();
    for chunk in all.chunks(BATCH_LIMIT) {
        let (answer, failures) = isolate(chunk.to_vec(), |inputs| {
            executor.client.create("companies", inputs)
        })
        .await?;
        for company in answer.results {
            if let Some(duns) = company.property(&executor.duns_property) {
                created.insert(duns.to_string(), company.id.clone());
            }
        }
        for error in answer.errors {
            for trace in error.trace_ids() {
                if let Some(duns) = trace.strip_prefix("company-") {
                    refused.insert(
                        duns.to_string(),
                        format!("{}: {}", error.category, error.message),
                    );
                }
            }
        }
        for (input, error) in failures {
            if let Some(duns) = input.object_write_trace_id.strip_prefix("company-") {
                refused.insert(duns.to_string(), error.to_string());
            }
        }
    }
    // A refused create may be a company made by an earlier attempt whose answer was lost
    // (the unique DUNS property refuses a second one): read those back.
    let retry: Vec<String> = refused.keys().cloned().collect();
    if !retry.is_empty() {
        let wanted = vec![executor.duns_property.clone(), "name".into()];
        for company in executor
            .client
            .read_companies_by(&executor.duns_property, &retry, &wanted)
            .await?
        {
            if let Some(duns) = company.property(&executor.duns_property) {
                refused.remove(duns);
                created.insert(duns.to_string(), company.id.clone());
            }
        }
    }
    executor.metrics.hubspot_companies_created(created.len());
    for item in work
        .iter_mut()
        .filter(|item| item.ended.is_none() && item.company.is_none())
    {
        let duns = item.planned.notification.duns.to_string();
        if let Some(id) = reused.get(&duns) {
            // Found, not created: its fields are written by the update step.
            let name =
                creatable_properties(item).and_then(|properties| properties.get("name").cloned());
            item.company = Some(CompanyView {
                id: id.clone(),
                name,
                duns,
                other_ids_with_same_duns: Vec::new(),
            });
        } else if let Some(id) = created.get(&duns) {
            let name =
                creatable_properties(item).and_then(|properties| properties.get("name").cloned());
            item.records.push(done_record(
                ActionKind::UpdateCompany,
                id,
                serde_json::json!({"created": true, "duns": duns}),
            ));
            item.company = Some(CompanyView {
                id: id.clone(),
                name,
                duns,
                other_ids_with_same_duns: Vec::new(),
            });
        } else if let Some(error) = refused.get(&duns) {
            item.fail(
                format!("HubSpot refused to create the company: {error}"),
                true,
            );
        }
    }
    Ok(())
}

/// The property changes a notification asks for that are not yet checkpointed, by action kind.
fn pending_changes(item: &Work<'_>) -> Vec<(ActionKind, BTreeMap<String, String>)> {
    let mut changes = Vec::new();
    for action in &item.planned.plan.actions {
        let (kind, properties) = match action {
            Action::UpdateProperty { properties } => {
                (ActionKind::UpdateProperty, properties.clone())
            }
            Action::UpdateCompany { properties, .. } => {
                (ActionKind::UpdateCompany, properties.clone())
            }
            _ => continue,
        };
        let already = item.done(kind.as_str()).is_some()
            || item
                .records
                .iter()
                .any(|record| record.key == kind.as_str());
        if !already {
            changes.push((kind, properties));
        }
    }
    changes
}

async fn update(executor: &HubSpotExecutor, work: &mut [Work<'_>]) -> Result<(), HubSpotError> {
    // Merge each company's changes in batch order (later notifications win); the same
    // id twice in one batch update would fail the whole request.
    let mut merged: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in work.iter().filter(|item| item.ended.is_none()) {
        let Some(company) = &item.company else {
            continue;
        };
        let mut properties = BTreeMap::new();
        for (_, changes) in pending_changes(item) {
            properties.extend(changes);
        }
        // The DUNS moves only by a TRANSFER to a free successor; other writes leave it alone.
        properties.remove(&executor.duns_property);
        match &item.successor {
            SuccessorView::Free { duns } if !pending_changes(item).is_empty() => {
                properties.insert(executor.duns_property.clone(), duns.clone());
                properties.insert("dnb_previous_duns".into(), company.duns.clone());
            }
            SuccessorView::TakenBy { duns, .. } if !pending_changes(item).is_empty() => {
                properties.insert("dnb_successor_duns".into(), duns.clone());
            }
            _ => {}
        }
        if !properties.is_empty() {
            // Companies sharing the DUNS with this older one are flagged as its duplicates.
            for other in &company.other_ids_with_same_duns {
                merged
                    .entry(other.clone())
                    .or_default()
                    .insert("dnb_duplicate_of".into(), company.id.clone());
            }
            merged
                .entry(company.id.clone())
                .or_default()
                .extend(properties);
        }
    }
    if merged.is_empty() {
        return Ok(());
    }
    let all: Vec<UpdateInput> = merged
        .into_iter()
        .map(|(id, properties)| UpdateInput {
            object_write_trace_id: format!("company-{id}"),
            id,
            properties,
        })
        .collect();
    let mut refused: HashMap<String, String> = HashMap::new();
    let mut written = 0;
    for chunk in all.chunks(BATCH_LIMIT) {
        let (answer, failures) = isolate(chunk.to_vec(), |inputs| {
            executor.client.update_companies(inputs)
        })
        .await?;
        written += answer.results.len();
        for error in answer.errors {
            for trace in error.trace_ids().iter().chain(error.ids()) {
                let id = trace.strip_prefix("company-").unwrap_or(trace);
                refused.insert(
                    id.to_string(),
                    format!("{}: {}", error.category, error.message),
                );
            }
        }
        for (input, error) in failures {
            refused.insert(input.id.clone(), error.to_string());
        }
    }
    executor.metrics.hubspot_companies_updated(written);
    for item in work.iter_mut().filter(|item| item.ended.is_none()) {
        let Some(company) = item.company.clone() else {
            continue;
        };
        if let Some(error) = refused.get(&company.id) {
            item.fail(format!("HubSpot refused the company update: {error}"), true);
            continue;
        }
        for (kind, properties) in pending_changes(item) {
            let names: Vec<&String> = properties.keys().collect();
            item.records.push(done_record(
                kind,
                &company.id,
                serde_json::json!({"properties": names}),
            ));
        }
    }
    Ok(())
}

/// Sends `inputs`; when HubSpot refuses a whole batch (400), halves it until the refused
/// inputs are found, so one bad input fails only its own notification. Failures of HubSpot
/// as a whole are returned as `Err`.
pub(super) async fn isolate<T, F, Fut>(
    inputs: Vec<T>,
    send: F,
) -> Result<(BatchAnswer, Vec<(T, HubSpotError)>), HubSpotError>
where
    T: Clone,
    F: Fn(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<BatchAnswer, HubSpotError>>,
{
    let mut answer = BatchAnswer::default();
    let mut failures = Vec::new();
    let mut pending = vec![inputs];
    while let Some(mut part) = pending.pop() {
        if part.is_empty() {
            continue;
        }
        match send(part.clone()).await {
            Ok(partial) => {
                answer.results.extend(partial.results);
                answer.errors.extend(partial.errors);
            }
            Err(error @ HubSpotError::Rejected { .. }) if part.len() == 1 => {
                failures.push((part.remove(0), error))
            }
            Err(HubSpotError::Rejected { .. }) => {
                let second = part.split_off(part.len() / 2);
                pending.push(second);
                pending.push(part);
            }
            Err(error) => return Err(error),
        }
    }
    Ok((answer, failures))
}
