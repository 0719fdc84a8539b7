//! What each notification does to its company: the company's state from the
//! batch read, the tasks and reversals the journal recorded for it, and the
//! current status of those tasks (one batch read: a person may have completed
//! or deleted them), run through the pure rules of
//! [`crate::mapping::lifecycle`] in delivery order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::DateTime;
use serde_json::Value;

use super::companies::CompanyFacts;
use super::{Halt, HubSpotExecutor, Work};
use crate::dnb::NotificationType;
use crate::journal::CompanyEvent;
use crate::mapping::Action;
use crate::mapping::lifecycle::{
    CompanyState, MONITORING_STATUS, OpenTask, TaskRef, reversed_type,
};
use crate::mapping::status_after;

/// The `hs_task_status` of a finished task.
pub(super) const COMPLETED: &str = "COMPLETED";

/// Decides every active notification, company by company in delivery order.
pub(super) async fn decide(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
    facts: &HashMap<String, CompanyFacts>,
) -> Result<(), Halt> {
    let mut by_company: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (position, item) in work.iter().enumerate().filter(|(_, item)| item.active()) {
        let company = item.company.as_ref().expect("active work has a company");
        by_company
            .entry(company.id.clone())
            .or_default()
            .push(position);
    }
    if by_company.is_empty() {
        return Ok(());
    }
    let companies: Vec<String> = by_company.keys().cloned().collect();
    let batch: Vec<i64> = work.iter().map(|item| item.planned.id).collect();
    let history = executor
        .journal
        .company_history(&companies, &batch)
        .await
        .map_err(|error| {
            Halt::Journal(format!("could not read the companies' history: {error}"))
        })?;
    let mut states = states_from(&history);

    // Only the tasks a rule may act on need their current status: those of a type the batch
    // plans a task for, or reverses, on the same company.
    let mut relevant: HashSet<(&String, NotificationType)> = HashSet::new();
    for (company, positions) in &by_company {
        for position in positions {
            let item = &work[*position];
            let kind = item.planned.notification.notification_type;
            relevant.extend(reversed_type(kind).map(|reversed| (company, reversed)));
            if item
                .planned
                .plan
                .actions
                .iter()
                .any(|action| matches!(action, Action::CreateTask { .. }))
            {
                relevant.insert((company, kind));
            }
        }
    }
    let wanted: Vec<String> = states
        .iter()
        .flat_map(|(company, state)| state.open_tasks.iter().map(move |open| (company, open)))
        .filter(|(company, open)| relevant.contains(&(*company, open.alert)))
        .filter_map(|(_, open)| match &open.task {
            TaskRef::Existing(id) => Some(id.clone()),
            TaskRef::New(_) => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let open: HashSet<String> = if wanted.is_empty() {
        HashSet::new()
    } else {
        executor
            .client
            .read_tasks(&wanted, &["hs_task_status".to_string()])
            .await?
            .into_iter()
            .filter(|task| task.property("hs_task_status") != Some(COMPLETED))
            .map(|task| task.id)
            .collect()
    };

    for (company, mut positions) in by_company {
        let mut state = states.remove(&company).unwrap_or_default();
        // Tasks a person completed or deleted, or not read, are not this batch's to touch.
        state
            .open_tasks
            .retain(|task| matches!(&task.task, TaskRef::Existing(id) if open.contains(id)));
        if let Some(facts) = facts.get(&company) {
            state.last_alert_at = facts.last_alert_at;
            state.monitoring_status = facts.monitoring_status.clone();
        }
        positions
            .sort_by_key(|position| (work[*position].planned.notification.delivered_at, *position));
        for position in positions {
            let item = &mut work[position];
            item.decision =
                Some(state.apply(position, &item.planned.notification, &item.planned.plan));
        }
    }
    Ok(())
}

/// Each company's open tasks (as the journal knows them), reversals and the newest writer of
/// each property, from its history.
fn states_from(history: &[CompanyEvent]) -> HashMap<String, CompanyState> {
    let completed: HashSet<String> = history
        .iter()
        .filter(|event| event.kind == "complete_task")
        .filter_map(|event| serde_json::from_str::<Value>(&event.detail).ok())
        .flat_map(|mut detail| match detail["tasks"].take() {
            Value::Array(tasks) => tasks,
            _ => Vec::new(),
        })
        .filter_map(|task| task.as_str().map(str::to_string))
        .collect();
    let mut states: HashMap<String, CompanyState> = HashMap::new();
    let mut seen_reversals = HashSet::new();
    for event in history {
        let (Some(kind), Some(at)) = (
            event.notification_type,
            DateTime::from_timestamp_millis(event.delivered_at_ms),
        ) else {
            continue;
        };
        let state = states.entry(event.company_id.clone()).or_default();
        if reversed_type(kind).is_some() && seen_reversals.insert(event.notification_id) {
            state.reversals.push((kind, at));
        }
        if matches!(event.kind.as_str(), "update_property" | "update_company")
            && let Ok(detail) = serde_json::from_str::<Value>(&event.detail)
        {
            for name in detail["properties"].as_array().into_iter().flatten() {
                // A type that sets no status only filled a gap with `monitored` (see
                // `CompanyState::apply`): that is no newer status.
                let filled = name == MONITORING_STATUS && status_after(kind).is_none();
                if let Some(name) = name.as_str().filter(|_| !filled) {
                    let newest = state.written.entry(name.to_string()).or_insert(at);
                    *newest = (*newest).max(at);
                }
            }
        }
        if event.kind == "create_task"
            && let Some(task) = &event.object_id
            && !completed.contains(task)
            && !state
                .open_tasks
                .iter()
                .any(|open| open.task == TaskRef::Existing(task.clone()))
        {
            state.open_tasks.push(OpenTask {
                task: TaskRef::Existing(task.clone()),
                alert: kind,
                delivered_at: at,
            });
        }
    }
    states
}
