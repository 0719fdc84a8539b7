//! Tasks and notes for a batch, created without ever duplicating one.
//!
//! Each create is journaled as `unknown` before it is sent. An `unknown` left by
//! an earlier attempt (the answer was lost, or the process died mid-call) is
//! reconciled first: once search has had time to index it, the marker the
//! body carries is searched for, and the create is sent again only if absent.

use std::collections::BTreeMap;
use std::time::Duration;

use super::companies::isolate;
use super::{HubSpotExecutor, Work};
use crate::hubspot::client::BATCH_LIMIT;
use crate::hubspot::error::HubSpotError;
use crate::hubspot::model::{
    Association, CreateInput, NOTE_TO_COMPANY, SimpleObject, TASK_TO_COMPANY,
};
use crate::journal::{ActionRecord, ActionState, now_ms};
use crate::mapping::render::{marker, next_business_day, note_html, task_text};
use crate::mapping::{Action, ActionKind, TaskPriority};

/// One HubSpot object type's create step.
struct Kind {
    action: ActionKind,
    object: &'static str,
    body_property: &'static str,
}

const TASKS: Kind = Kind {
    action: ActionKind::CreateTask,
    object: "tasks",
    body_property: "hs_task_body",
};
const NOTES: Kind = Kind {
    action: ActionKind::CreateNote,
    object: "notes",
    body_property: "hs_note_body",
};

fn record(kind: &Kind, state: ActionState, object_id: Option<String>) -> ActionRecord {
    ActionRecord {
        key: kind.action.as_str().to_string(),
        kind: kind.action.as_str().to_string(),
        state,
        object_type: Some(kind.object.to_string()),
        object_id,
        detail: "{}".into(),
    }
}

fn wants(item: &Work<'_>, kind: &Kind) -> bool {
    item.ended.is_none()
        && item.company.is_some()
        && item.done(kind.action.as_str()).is_none()
        && item
            .planned
            .plan
            .actions
            .iter()
            .any(|action| action.kind() == kind.action)
}

/// Settles creates an earlier attempt may have made. Returns the positions still to create.
async fn reconcile(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
    kind: &Kind,
) -> Result<Vec<usize>, HubSpotError> {
    let mut to_create = Vec::new();
    for (position, item) in work.iter_mut().enumerate() {
        if !wants(item, kind) {
            continue;
        }
        let Some(earlier) = item.earlier.get(kind.action.as_str()).cloned() else {
            to_create.push(position);
            continue;
        };
        let age = Duration::from_millis((now_ms() - earlier.updated_at_ms).max(0) as u64);
        if age < executor.reconcile_after {
            item.reconcile_wait = Some(executor.reconcile_after - age);
            continue;
        }
        let token = marker(item.planned.id);
        let found = executor
            .client
            .search_token(
                kind.object,
                kind.body_property,
                &token,
                &[kind.body_property.to_string()],
            )
            .await?;
        match found.iter().find(|object| {
            object
                .property(kind.body_property)
                .is_some_and(|body| body.contains(&token))
        }) {
            Some(object) => {
                item.records
                    .push(record(kind, ActionState::Done, Some(object.id.clone())))
            }
            None => to_create.push(position),
        }
    }
    Ok(to_create)
}

/// Creates one object per group of positions: journal the intent, send in batches,
/// and record the outcome on every notification of the group.
async fn create(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
    kind: &Kind,
    groups: Vec<(Vec<usize>, CreateInput)>,
) -> Result<(), HubSpotError> {
    if groups.is_empty() {
        return Ok(());
    }
    let intents = groups
        .iter()
        .flat_map(|(positions, _)| {
            positions.iter().map(|position| {
                (
                    work[*position].planned.id,
                    record(kind, ActionState::Unknown, None),
                )
            })
        })
        .collect();
    // One batch is one claim; a refused record (the lease was lost) sends nothing.
    let claim = work[0].planned.claim;
    if let Err(error) = executor.journal.record_actions(claim, intents).await {
        for (positions, _) in &groups {
            for position in positions {
                work[*position].fail(
                    format!("could not journal the create before sending it: {error}"),
                    false,
                );
            }
        }
        return Ok(());
    }
    let markers: Vec<(Vec<usize>, String)> = groups
        .iter()
        .map(|(positions, _)| (positions.clone(), marker(work[positions[0]].planned.id)))
        .collect();
    let inputs: Vec<CreateInput> = groups.into_iter().map(|(_, input)| input).collect();
    let mut results: Vec<SimpleObject> = Vec::new();
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    for chunk in inputs.chunks(BATCH_LIMIT) {
        let outcome = isolate(chunk.to_vec(), |inputs| {
            executor.client.create(kind.object, inputs)
        })
        .await;
        let (answer, failures) = match outcome {
            Ok(done) => done,
            Err(error) => {
                // Lost answers stay `unknown` and are reconciled on the next attempt.
                for (positions, _) in &markers {
                    for position in positions {
                        let item = &mut work[*position];
                        if !item
                            .records
                            .iter()
                            .any(|record| record.key == kind.action.as_str())
                        {
                            item.records.push(record(kind, ActionState::Unknown, None));
                            item.reconcile_wait = Some(executor.reconcile_after);
                        }
                    }
                }
                return Err(error);
            }
        };
        results.extend(answer.results);
        for error in answer.errors {
            for trace in error.trace_ids() {
                refused.insert(
                    trace.clone(),
                    format!("{}: {}", error.category, error.message),
                );
            }
        }
        for (input, error) in failures {
            refused.insert(input.object_write_trace_id, error.to_string());
        }
    }
    let mut created = 0;
    for (positions, token) in markers {
        let object = results.iter().find(|object| {
            object
                .property(kind.body_property)
                .is_some_and(|body| body.contains(&token))
        });
        let trace = format!("{}-{}", kind.object, work[positions[0]].planned.id);
        for position in &positions {
            let item = &mut work[*position];
            match (object, refused.get(&trace)) {
                (Some(object), _) => {
                    item.records
                        .push(record(kind, ActionState::Done, Some(object.id.clone())))
                }
                (None, Some(error)) => {
                    // HubSpot answered that it created nothing: the intent goes back to planned.
                    item.records.push(record(kind, ActionState::Planned, None));
                    item.fail(
                        format!("HubSpot refused the {}: {error}", kind.object),
                        true,
                    );
                }
                (None, None) => {
                    item.records.push(record(kind, ActionState::Unknown, None));
                    item.reconcile_wait = Some(executor.reconcile_after);
                }
            }
        }
        created += usize::from(object.is_some());
    }
    match kind.action {
        ActionKind::CreateTask => executor.metrics.hubspot_tasks_created(created),
        _ => executor.metrics.hubspot_notes_created(created),
    }
    Ok(())
}

/// One task per notification that asks for one.
pub(super) async fn create_tasks(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
) -> Result<(), HubSpotError> {
    let positions = reconcile(executor, work, &TASKS).await?;
    if positions.is_empty() {
        return Ok(());
    }
    let due = next_business_day(chrono::Utc::now(), &executor.time_zone().await?);
    let default_owner = executor.default_owner().await?;
    let mut groups = Vec::new();
    for position in positions {
        let item = &work[position];
        let Some(Action::CreateTask { priority, .. }) = item
            .planned
            .plan
            .actions
            .iter()
            .find(|action| action.kind() == ActionKind::CreateTask)
        else {
            continue;
        };
        let company = item.company.as_ref().expect("wanted tasks have a company");
        let text = task_text(
            item.planned.id,
            &item.planned.notification,
            company,
            &item.successor,
        );
        let mut properties = BTreeMap::from([
            (
                "hs_timestamp".to_string(),
                due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            ("hs_task_subject".to_string(), text.subject),
            ("hs_task_body".to_string(), text.body_html),
            ("hs_task_status".to_string(), "NOT_STARTED".to_string()),
            ("hs_task_type".to_string(), "TODO".to_string()),
            (
                "hs_task_priority".to_string(),
                match priority {
                    TaskPriority::High => "HIGH",
                    TaskPriority::Medium => "MEDIUM",
                }
                .to_string(),
            ),
        ]);
        if let Some(owner) = item.owner.clone().or_else(|| default_owner.clone()) {
            properties.insert("hubspot_owner_id".into(), owner);
        }
        let input = CreateInput {
            properties,
            associations: vec![Association::to_company(&company.id, TASK_TO_COMPANY)],
            object_write_trace_id: format!("tasks-{}", item.planned.id),
        };
        groups.push((vec![position], input));
    }
    create(executor, work, &TASKS, groups).await
}

/// One note per company per batch, covering every notification of it that asks for one.
pub(super) async fn create_notes(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
) -> Result<(), HubSpotError> {
    let positions = reconcile(executor, work, &NOTES).await?;
    let mut by_company: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for position in positions {
        let company = work[position]
            .company
            .as_ref()
            .expect("wanted notes have a company");
        by_company
            .entry(company.id.clone())
            .or_default()
            .push(position);
    }
    let mut groups = Vec::new();
    for (company_id, positions) in by_company {
        let covered: Vec<(i64, &crate::dnb::Notification)> = positions
            .iter()
            .map(|position| {
                (
                    work[*position].planned.id,
                    &work[*position].planned.notification,
                )
            })
            .collect();
        let first = &work[positions[0]];
        let body = note_html(
            &covered,
            first.company.as_ref().expect("grouped by company"),
            &first.successor,
        );
        let latest = covered
            .iter()
            .map(|(_, notification)| notification.delivered_at)
            .max()
            .unwrap_or_default();
        let input = CreateInput {
            properties: BTreeMap::from([
                (
                    "hs_timestamp".to_string(),
                    latest.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ),
                ("hs_note_body".to_string(), body),
            ]),
            associations: vec![Association::to_company(&company_id, NOTE_TO_COMPANY)],
            object_write_trace_id: format!("notes-{}", first.planned.id),
        };
        groups.push((positions, input));
    }
    create(executor, work, &NOTES, groups).await
}
