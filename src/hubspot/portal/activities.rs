//! Tasks and notes for a batch, created without ever duplicating one.
//!
//! Each create is journaled as `unknown` before it is sent. An `unknown` left by
//! an earlier attempt (the answer was lost, or the process died mid-call) is
//! reconciled first: once search has had time to index it, the marker the
//! body carries is searched for (an exact match of the notification id), and
//! the create is sent again only when several looks, `reconcile_after` apart,
//! did not find it: search can lag writes for minutes.
//!
//! A task is created only where the company's state calls for one (one open
//! task per company and type, none for an alert already reversed); a planned
//! task called off is recorded with its reason.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::companies::isolate;
use super::{HubSpotExecutor, Reconcile, Work, look_again, looks, reconcile_due};
use crate::hubspot::client::BATCH_LIMIT;
use crate::hubspot::error::HubSpotError;
use crate::hubspot::model::{
    Association, CreateInput, NOTE_TO_COMPANY, SimpleObject, TASK_TO_COMPANY,
};
use crate::journal::{ActionRecord, ActionState};
use crate::mapping::lifecycle::{TaskDecision, TaskRef};
use crate::mapping::render::{
    NoteEntry, carries_marker, marker, next_business_day, note_html, task_text,
};
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

fn record(
    kind: &Kind,
    item: &Work<'_>,
    state: ActionState,
    object_id: Option<String>,
    mut detail: Value,
) -> ActionRecord {
    if let Some(company) = &item.company {
        detail["company"] = json!(company.id);
    }
    ActionRecord {
        key: kind.action.as_str().to_string(),
        kind: kind.action.as_str().to_string(),
        state,
        object_type: Some(kind.object.to_string()),
        object_id,
        detail: detail.to_string(),
    }
}

/// Whether the notification still needs this object created: it plans it, has no
/// checkpoint for it and, for tasks, the company's state calls for one.
fn wants(item: &Work<'_>, kind: &Kind) -> bool {
    item.active()
        && item.done(kind.action.as_str()).is_none()
        && item
            .planned
            .plan
            .actions
            .iter()
            .any(|action| action.kind() == kind.action)
        && (kind.action != ActionKind::CreateTask
            || item
                .decision
                .as_ref()
                .is_some_and(|decision| decision.task == TaskDecision::Create))
}

/// The object whose body carries the marker of notification `id`.
fn marked<'o>(objects: &'o [SimpleObject], kind: &Kind, id: i64) -> Option<&'o SimpleObject> {
    objects.iter().find(|object| {
        object
            .property(kind.body_property)
            .is_some_and(|body| carries_marker(body, id))
    })
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
        if let Reconcile::Wait(wait) = reconcile_due(&earlier, executor.reconcile_after) {
            let unknown = record(
                kind,
                item,
                ActionState::Unknown,
                None,
                json!({"looks": looks(&earlier)}),
            );
            item.records.push(unknown);
            item.reconcile_wait = Some(wait);
            continue;
        }
        let id = item.planned.id;
        let found = executor
            .client
            .search_token(
                kind.object,
                kind.body_property,
                &marker(id),
                &[kind.body_property.to_string()],
            )
            .await?;
        match (
            marked(&found, kind, id),
            look_again(&earlier, executor.reconcile_after),
        ) {
            (Some(object), _) => {
                let done = record(
                    kind,
                    item,
                    ActionState::Done,
                    Some(object.id.clone()),
                    json!({}),
                );
                item.records.push(done);
            }
            // Search may still lag: look again later rather than risk a second object.
            (None, Some((looks, wait))) => {
                let unknown = record(
                    kind,
                    item,
                    ActionState::Unknown,
                    None,
                    json!({"looks": looks}),
                );
                item.records.push(unknown);
                item.reconcile_wait = Some(wait);
            }
            (None, None) => to_create.push(position),
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
                let item = &work[*position];
                (
                    item.planned.id,
                    record(kind, item, ActionState::Unknown, None, json!({"looks": 0})),
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
    let markers: Vec<(Vec<usize>, i64)> = groups
        .iter()
        .map(|(positions, _)| (positions.clone(), work[positions[0]].planned.id))
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
                            let unknown =
                                record(kind, item, ActionState::Unknown, None, json!({"looks": 0}));
                            item.records.push(unknown);
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
    for (positions, id) in markers {
        let object = marked(&results, kind, id);
        let trace = format!("{}-{}", kind.object, work[positions[0]].planned.id);
        for position in &positions {
            let item = &mut work[*position];
            match (object, refused.get(&trace)) {
                (Some(object), _) => {
                    let done = record(
                        kind,
                        item,
                        ActionState::Done,
                        Some(object.id.clone()),
                        json!({}),
                    );
                    item.records.push(done);
                }
                (None, Some(error)) => {
                    // HubSpot answered that it created nothing: the intent goes back to planned.
                    let planned = record(kind, item, ActionState::Planned, None, json!({}));
                    item.records.push(planned);
                    item.fail(
                        format!("HubSpot refused the {}: {error}", kind.object),
                        true,
                    );
                }
                (None, None) => {
                    let unknown =
                        record(kind, item, ActionState::Unknown, None, json!({"looks": 0}));
                    item.records.push(unknown);
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
    let created = create_decided_tasks(executor, work, positions).await;
    // A planned task the company's state called off is recorded with its reason.
    for position in 0..work.len() {
        let item = &work[position];
        if !item.active() || item.done(TASKS.action.as_str()).is_some() {
            continue;
        }
        let (object_id, reason) = match item.decision.as_ref().map(|decision| &decision.task) {
            Some(TaskDecision::AlreadyOpen(open)) => (task_id(work, open), "task_already_open"),
            Some(TaskDecision::Reversed(..)) => (None, "reversed_by_newer_alert"),
            _ => continue,
        };
        let skipped = record(
            &TASKS,
            item,
            ActionState::Done,
            object_id,
            json!({"reason": reason}),
        );
        work[position].records.push(skipped);
    }
    created
}

/// The HubSpot id of a task the company's state refers to, once it exists.
pub(super) fn task_id(work: &[Work<'_>], task: &TaskRef) -> Option<String> {
    match task {
        TaskRef::Existing(id) => Some(id.clone()),
        TaskRef::New(position) => work[*position]
            .recorded(TASKS.action.as_str())
            .and_then(|record| record.object_id.clone()),
    }
}

async fn create_decided_tasks(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
    positions: Vec<usize>,
) -> Result<(), HubSpotError> {
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

/// One note per company per batch, covering every notification of it that asks for one,
/// in delivery order; each paragraph is worded from its own notification and says what the
/// company's state made of it.
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
    for (company_id, mut positions) in by_company {
        positions
            .sort_by_key(|position| (work[*position].planned.notification.delivered_at, *position));
        let entries: Vec<NoteEntry<'_>> = positions
            .iter()
            .map(|position| {
                let item = &work[*position];
                NoteEntry {
                    id: item.planned.id,
                    notification: &item.planned.notification,
                    successor: item.successor.clone(),
                    remarks: item
                        .decision
                        .as_ref()
                        .map(|decision| decision.remarks(item.completed))
                        .unwrap_or_default(),
                }
            })
            .collect();
        let first = &work[positions[0]];
        let body = note_html(
            &entries,
            first.company.as_ref().expect("grouped by company"),
        );
        let latest = entries
            .iter()
            .map(|entry| entry.notification.delivered_at)
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
