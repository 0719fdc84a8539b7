//! Reversals close the work they reverse: the open tasks a notification's
//! decision completes are set to `COMPLETED` in batch updates, and each
//! reversing notification records which tasks it completed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::activities::task_id;
use super::companies::send_updates;
use super::decide::COMPLETED;
use super::{HubSpotExecutor, Work};
use crate::hubspot::error::HubSpotError;
use crate::hubspot::model::UpdateInput;
use crate::journal::{ActionRecord, ActionState};

/// The journal key (and kind) of a notification's task completions.
pub(super) const COMPLETE_TASK: &str = "complete_task";

/// Completes the open tasks the batch's reversals decided to complete.
pub(super) async fn complete(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
) -> Result<(), HubSpotError> {
    let mut wanted: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for item in work.iter_mut() {
        // An earlier attempt completed them: its note still says how many.
        if let Some(done) = item.done(COMPLETE_TASK) {
            item.completed = serde_json::from_str::<serde_json::Value>(&done.detail)
                .ok()
                .and_then(|detail| detail["tasks"].as_array().map(Vec::len))
                .unwrap_or(0);
        }
    }
    for (position, item) in work.iter().enumerate() {
        if !item.active() || item.done(COMPLETE_TASK).is_some() {
            continue;
        }
        let Some(decision) = &item.decision else {
            continue;
        };
        let tasks: Vec<String> = decision
            .completes
            .iter()
            .filter_map(|task| task_id(work, task))
            .collect();
        if !tasks.is_empty() {
            wanted.insert(position, tasks);
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let ids: BTreeSet<String> = wanted.values().flatten().cloned().collect();
    let inputs: Vec<UpdateInput> = ids
        .into_iter()
        .map(|id| UpdateInput {
            object_write_trace_id: format!("tasks-{id}"),
            properties: BTreeMap::from([("hs_task_status".to_string(), COMPLETED.to_string())]),
            id,
        })
        .collect();
    // A task deleted in the meantime is refused; it needs no completing.
    let (confirmed, _refused) = send_updates(executor, "tasks", inputs).await?;
    executor.metrics.hubspot_tasks_completed(confirmed.len());
    for (position, tasks) in wanted {
        let item = &mut work[position];
        let completed: Vec<&String> = tasks.iter().filter(|id| confirmed.contains(*id)).collect();
        item.completed = completed.len();
        let company = item.company.as_ref().expect("active work has a company");
        item.records.push(ActionRecord {
            key: COMPLETE_TASK.into(),
            kind: COMPLETE_TASK.into(),
            state: ActionState::Done,
            object_type: Some("tasks".into()),
            object_id: completed.first().map(|id| id.to_string()),
            detail: json!({"company": company.id, "tasks": completed}).to_string(),
        });
    }
    Ok(())
}
