//! What one notification does to a company, given what the company already
//! shows: the contract's processing rules as a pure function, shared by the
//! HubSpot executor (which reads the state from HubSpot and the journal) and
//! `simulate` (which keeps it in memory).
//!
//! - Older never overwrites newer: a notification older than the company's
//!   last alert writes no alert-tracking property and no company field that
//!   a newer notification wrote (the last-alert properties never; the
//!   monitoring status and company fields only where no newer one set them).
//! - Reversals close the work they reverse: UNDELETE completes the open tasks
//!   of older DELETE notifications, REVIEWED those of UNDER_REVIEW.
//! - One open task per company and type; no task for an alert that a newer
//!   notification already reversed.
//! - `dnb_monitoring_status` changes only with the types that set it; the
//!   others leave it (`monitored` on a company that has none).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::action::Action;
use super::render::Remarks;
use super::{Plan, status_after};
use crate::dnb::{Notification, NotificationType};

/// The alert-tracking property holding the monitoring status.
pub const MONITORING_STATUS: &str = "dnb_monitoring_status";
/// The status of a company whose notifications never set one.
pub const MONITORED: &str = "monitored";

/// The type whose work a type reverses (UNDELETE → DELETE, REVIEWED → UNDER_REVIEW).
pub fn reversed_type(notification_type: NotificationType) -> Option<NotificationType> {
    match notification_type {
        NotificationType::Undelete => Some(NotificationType::Delete),
        NotificationType::Reviewed => Some(NotificationType::UnderReview),
        _ => None,
    }
}

/// A task this service created, known by id or by the batch position creating it now.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskRef {
    /// A task that exists in HubSpot.
    Existing(String),
    /// The task the notification at this batch position creates.
    New(usize),
}

/// An open task this service created on the company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTask {
    /// Which task.
    pub task: TaskRef,
    /// The type of the notification that created it.
    pub alert: NotificationType,
    /// That notification's delivery time.
    pub delivered_at: DateTime<Utc>,
}

/// What the company shows before (and, as notifications apply, during) a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompanyState {
    /// `dnb_last_alert_at`.
    pub last_alert_at: Option<DateTime<Utc>>,
    /// `dnb_monitoring_status`.
    pub monitoring_status: Option<String>,
    /// Open tasks this service created.
    pub open_tasks: Vec<OpenTask>,
    /// Reversing notifications that acted on the company: type and delivery time.
    pub reversals: Vec<(NotificationType, DateTime<Utc>)>,
    /// The newest delivery time of a notification that wrote each property.
    pub written: BTreeMap<String, DateTime<Utc>>,
}

/// The alert-tracking properties every notification writes: `dnb_last_alert_at` dates them.
const LAST_ALERT: [&str; 3] = [
    "dnb_last_alert_type",
    "dnb_last_alert_at",
    "dnb_critical_alert",
];

/// What to do about a planned task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskDecision {
    /// The type plans no task.
    NotPlanned,
    /// Create it.
    Create,
    /// A task for this type is already open: add to the note instead.
    AlreadyOpen(TaskRef),
    /// A newer notification reversed this alert: no task.
    Reversed(NotificationType, DateTime<Utc>),
}

/// What one notification does to the company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Set when the company already shows a newer alert (its time).
    pub late_behind: Option<DateTime<Utc>>,
    /// Alert-tracking properties to write (none a newer notification wrote).
    pub tracking: BTreeMap<String, String>,
    /// Company fields (`update_company`) to write (none a newer notification wrote).
    pub fields: BTreeMap<String, String>,
    /// Its task.
    pub task: TaskDecision,
    /// Open tasks it completes.
    pub completes: Vec<TaskRef>,
}

impl Decision {
    /// What the note says about it; `completed` is how many of [`Decision::completes`] were.
    pub fn remarks(&self, completed: usize) -> Remarks {
        Remarks {
            late_behind: self.late_behind,
            task_already_open: matches!(self.task, TaskDecision::AlreadyOpen(_)),
            reversed_by: match self.task {
                TaskDecision::Reversed(by, at) => Some((by, at)),
                _ => None,
            },
            completed_tasks: completed,
        }
    }
}

impl CompanyState {
    /// Applies the notification at batch `position` with its plan and says what it does.
    pub fn apply(&mut self, position: usize, notification: &Notification, plan: &Plan) -> Decision {
        let kind = notification.notification_type;
        let at = notification.delivered_at;
        let late_behind = self.last_alert_at.filter(|last| at < *last);

        let mut tracking = BTreeMap::new();
        if let Some(properties) = plan.actions.iter().find_map(|action| match action {
            Action::UpdateProperty { properties } => Some(properties),
            _ => None,
        }) {
            tracking = properties.clone();
            match status_after(kind) {
                Some(status) => {
                    tracking.insert(MONITORING_STATUS.into(), status.into());
                }
                None if self.monitoring_status.as_deref().is_none_or(str::is_empty) => {
                    tracking.insert(MONITORING_STATUS.into(), MONITORED.into());
                }
                None => {
                    tracking.remove(MONITORING_STATUS);
                }
            }
            if late_behind.is_some() {
                tracking.retain(|name, _| !LAST_ALERT.contains(&name.as_str()));
            }
            // `monitored` on a company with no status only fills a gap: it is not a status a
            // newer notification set, and an older one that sets a status may still write it.
            let filled = status_after(kind)
                .is_none()
                .then(|| tracking.remove(MONITORING_STATUS))
                .flatten();
            self.keep_unwritten_since(&mut tracking, at);
            if let Some(filled) = filled {
                tracking.insert(MONITORING_STATUS.into(), filled);
            }
            if let Some(status) = tracking.get(MONITORING_STATUS) {
                self.monitoring_status = Some(status.clone());
            }
        }
        let mut fields = plan
            .actions
            .iter()
            .find_map(|action| match action {
                Action::UpdateCompany { properties, .. } => Some(properties.clone()),
                _ => None,
            })
            .unwrap_or_default();
        self.keep_unwritten_since(&mut fields, at);
        if late_behind.is_none() {
            self.last_alert_at = Some(at);
        }

        let mut completes = Vec::new();
        if let Some(reversed) = reversed_type(kind) {
            self.reversals.push((kind, at));
            self.open_tasks.retain(|open| {
                let closes = open.alert == reversed && open.delivered_at < at;
                if closes {
                    completes.push(open.task.clone());
                }
                !closes
            });
        }

        let plans_task = plan
            .actions
            .iter()
            .any(|action| matches!(action, Action::CreateTask { .. }));
        let reversal = self
            .reversals
            .iter()
            .filter(|(reverser, when)| reversed_type(*reverser) == Some(kind) && *when > at)
            .max_by_key(|(_, when)| *when)
            .copied();
        let task = if !plans_task {
            TaskDecision::NotPlanned
        } else if let Some((by, when)) = reversal {
            TaskDecision::Reversed(by, when)
        } else if let Some(open) = self.open_tasks.iter().find(|open| open.alert == kind) {
            TaskDecision::AlreadyOpen(open.task.clone())
        } else {
            self.open_tasks.push(OpenTask {
                task: TaskRef::New(position),
                alert: kind,
                delivered_at: at,
            });
            TaskDecision::Create
        };

        Decision {
            late_behind,
            tracking,
            fields,
            task,
            completes,
        }
    }

    /// Drops the properties a notification newer than `at` wrote, and notes the rest as
    /// written at `at`.
    fn keep_unwritten_since(
        &mut self,
        properties: &mut BTreeMap<String, String>,
        at: DateTime<Utc>,
    ) {
        properties.retain(|name, _| self.written.get(name).is_none_or(|newest| *newest <= at));
        for name in properties.keys() {
            self.written.insert(name.clone(), at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{ActionRules, plan};
    use serde_json::json;

    fn notification(kind: &str, delivered: &str) -> Notification {
        Notification::from_value(&json!({"type": kind, "organization": {"duns": "804735132"},
                                         "deliveryTimeStamp": delivered}))
        .unwrap()
    }

    fn apply(state: &mut CompanyState, position: usize, kind: &str, delivered: &str) -> Decision {
        let notification = notification(kind, delivered);
        let rules = ActionRules::default();
        state.apply(
            position,
            &notification,
            &plan(position as i64, &notification, &rules),
        )
    }

    #[test]
    fn an_older_notification_writes_nothing_and_says_it_is_late() {
        let mut state = CompanyState::default();
        let undelete = apply(&mut state, 0, "UNDELETE", "2024-05-13T09:00:00Z");
        assert_eq!(undelete.tracking["dnb_last_alert_type"], "UNDELETE");
        let delete = apply(&mut state, 1, "DELETE", "2024-05-13T08:00:00Z");
        assert!(
            delete.tracking.is_empty(),
            "the newer UNDELETE wrote every alert property: {:?}",
            delete.tracking
        );
        assert_eq!(
            delete.late_behind.unwrap().to_rfc3339(),
            "2024-05-13T09:00:00+00:00"
        );
        assert!(matches!(
            delete.task,
            TaskDecision::Reversed(NotificationType::Undelete, _)
        ));
        assert_eq!(state.monitoring_status.as_deref(), Some("monitored"));
    }

    #[test]
    fn a_late_notification_writes_only_what_no_newer_one_wrote() {
        let mut state = CompanyState {
            monitoring_status: Some("monitored".into()),
            ..CompanyState::default()
        };
        // A newer UPDATE leaves the status alone, so a late DELETE still sets it.
        apply(&mut state, 0, "UPDATE", "2024-05-13T09:00:00Z");
        let delete = apply(&mut state, 1, "DELETE", "2024-05-13T08:00:00Z");
        assert!(delete.late_behind.is_some());
        assert_eq!(
            delete.tracking,
            BTreeMap::from([(MONITORING_STATUS.to_string(), "deleted".to_string())])
        );
        assert_eq!(delete.task, TaskDecision::Create, "nothing reversed it");

        // Fields: a late FULL_PRODUCT keeps the phone a newer notification wrote.
        let mut state = CompanyState {
            last_alert_at: Some("2024-05-13T09:00:00Z".parse().unwrap()),
            written: BTreeMap::from([(
                "phone".to_string(),
                "2024-05-13T09:00:00Z".parse().unwrap(),
            )]),
            ..CompanyState::default()
        };
        let profile = Notification::from_value(&json!({"type": "FULL_PRODUCT",
            "organization": {"duns": "804735132", "primaryName": "Acme",
                             "telephone": [{"telephoneNumber": "5550100"}]},
            "deliveryTimeStamp": "2024-05-13T08:00:00Z"}))
        .unwrap();
        let decision = state.apply(0, &profile, &plan(1, &profile, &ActionRules::default()));
        assert_eq!(
            decision.fields.get("name").map(String::as_str),
            Some("Acme")
        );
        assert!(
            !decision.fields.contains_key("phone"),
            "{:?}",
            decision.fields
        );
        assert!(!decision.tracking.contains_key("dnb_last_alert_type"));
    }

    /// The company's properties after applying `arrivals` (indexes into `alerts`) in order.
    fn run_in_arrival_order(
        alerts: &[(NotificationType, DateTime<Utc>)],
        arrivals: &[usize],
    ) -> (CompanyState, BTreeMap<String, String>) {
        let mut state = CompanyState::default();
        let mut company = BTreeMap::new();
        for (position, index) in arrivals.iter().enumerate() {
            let (kind, at) = alerts[*index];
            let notification = Notification::from_value(&json!({"type": kind.as_str(),
                "organization": {"duns": "804735132"}, "deliveryTimeStamp": at.to_rfc3339()}))
            .unwrap();
            let planned = plan(*index as i64, &notification, &ActionRules::default());
            let decision = state.apply(position, &notification, &planned);
            company.extend(decision.tracking);
        }
        (state, company)
    }

    #[test]
    fn whatever_the_arrival_order_the_company_ends_as_the_delivery_order_says() {
        use rand::seq::SliceRandom;
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(20_241_205);
        let start: DateTime<Utc> = "2024-05-13T08:00:00Z".parse().unwrap();
        for _ in 0..2_000 {
            let count = rng.random_range(1..12);
            let alerts: Vec<(NotificationType, DateTime<Utc>)> = (0..count)
                .map(|minute| {
                    let kind =
                        NotificationType::ALL[rng.random_range(0..NotificationType::ALL.len())];
                    (kind, start + chrono::TimeDelta::minutes(minute as i64))
                })
                .collect();
            let mut arrivals: Vec<usize> = (0..alerts.len()).collect();
            let (_, expected) = run_in_arrival_order(&alerts, &arrivals);
            arrivals.shuffle(&mut rng);
            let (state, company) = run_in_arrival_order(&alerts, &arrivals);

            let newest = alerts.last().unwrap();
            assert_eq!(
                company["dnb_last_alert_type"],
                newest.0.as_str(),
                "{alerts:?} {arrivals:?}"
            );
            assert_eq!(state.last_alert_at, Some(newest.1));
            let status = alerts
                .iter()
                .rev()
                .find_map(|(kind, _)| status_after(*kind))
                .unwrap_or(MONITORED);
            assert_eq!(
                company[MONITORING_STATUS], status,
                "{alerts:?} {arrivals:?}"
            );
            assert_eq!(
                company, expected,
                "arrival order changed the company: {alerts:?} {arrivals:?}"
            );
            for kind in NotificationType::ALL {
                let open = state
                    .open_tasks
                    .iter()
                    .filter(|open| open.alert == *kind)
                    .count();
                assert!(
                    open <= 1,
                    "{open} open {kind} tasks: {alerts:?} {arrivals:?}"
                );
            }
            // No task stays open for an alert that a newer notification reversed.
            for open in &state.open_tasks {
                let reversed = alerts.iter().any(|(kind, at)| {
                    reversed_type(*kind) == Some(open.alert) && *at > open.delivered_at
                });
                assert!(!reversed, "{open:?} stays open: {alerts:?} {arrivals:?}");
            }
        }
    }

    #[test]
    fn a_reversal_completes_older_open_tasks_of_the_type_it_reverses() {
        let mut state = CompanyState::default();
        assert_eq!(
            apply(&mut state, 0, "DELETE", "2024-05-13T08:00:00Z").task,
            TaskDecision::Create
        );
        apply(&mut state, 1, "UNDER_REVIEW", "2024-05-13T08:01:00Z");
        let undelete = apply(&mut state, 2, "UNDELETE", "2024-05-13T08:02:00Z");
        assert_eq!(undelete.completes, vec![TaskRef::New(0)]);
        assert_eq!(state.open_tasks.len(), 1, "the review task stays open");
        assert_eq!(undelete.remarks(1).completed_tasks, 1);
    }

    #[test]
    fn a_second_alert_of_a_type_with_an_open_task_creates_none() {
        let mut state = CompanyState {
            open_tasks: vec![OpenTask {
                task: TaskRef::Existing("77".into()),
                alert: NotificationType::UnderReview,
                delivered_at: "2024-05-01T00:00:00Z".parse().unwrap(),
            }],
            ..CompanyState::default()
        };
        let again = apply(&mut state, 0, "UNDER_REVIEW", "2024-05-13T08:00:00Z");
        assert_eq!(
            again.task,
            TaskDecision::AlreadyOpen(TaskRef::Existing("77".into()))
        );
        assert!(again.remarks(0).task_already_open);
    }

    #[test]
    fn updates_keep_the_monitoring_status_and_set_one_where_there_is_none() {
        let mut state = CompanyState::default();
        let update = apply(&mut state, 0, "UPDATE", "2024-05-13T08:00:00Z");
        assert_eq!(update.tracking[MONITORING_STATUS], "monitored");
        apply(&mut state, 1, "UNDER_REVIEW", "2024-05-13T08:01:00Z");
        let update = apply(&mut state, 2, "UPDATE", "2024-05-13T08:02:00Z");
        assert!(!update.tracking.contains_key(MONITORING_STATUS));
        assert_eq!(state.monitoring_status.as_deref(), Some("under_review"));
        let exit = apply(&mut state, 3, "EXIT", "2024-05-13T08:03:00Z");
        assert_eq!(exit.tracking[MONITORING_STATUS], "coverage_lost");
    }
}
