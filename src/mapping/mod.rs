//! The D&B-to-HubSpot mapper: a pure function from a notification and the
//! configured action table to a [`Plan`]. The server's workers and `simulate`
//! share it, so what an operator previews is what the service does.

pub mod action;
pub mod labels;
pub mod lifecycle;
pub mod plain;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

pub use action::{Action, ActionKind, TaskPriority};

use crate::dnb::{Notification, NotificationType};

/// The action table and the switches that shape a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRules {
    table: BTreeMap<NotificationType, Vec<ActionKind>>,
    critical: BTreeSet<NotificationType>,
    create_missing_companies: bool,
    duns_property: String,
    company_fields: BTreeMap<String, String>,
}

/// The contract's defaults: its action table and critical types, missing companies created,
/// the DUNS in `duns_number`, the default company fields.
impl Default for ActionRules {
    fn default() -> Self {
        Self::new(
            &BTreeMap::new(),
            &Self::DEFAULT_CRITICAL_TYPES,
            true,
            "duns_number",
            &BTreeMap::new(),
        )
    }
}

impl ActionRules {
    /// The contract's default types whose tasks are HIGH priority.
    pub const DEFAULT_CRITICAL_TYPES: [NotificationType; 4] = [
        NotificationType::Delete,
        NotificationType::Transfer,
        NotificationType::UnderReview,
        NotificationType::Exit,
    ];

    /// The contract's default actions for a type.
    pub fn default_actions(notification_type: NotificationType) -> Vec<ActionKind> {
        use ActionKind::*;
        use NotificationType::*;
        match notification_type {
            Delete | Transfer | UnderReview | Exit | Removed => {
                vec![CreateTask, CreateNote, UpdateProperty]
            }
            Update | Undelete | Reviewed => vec![CreateNote, UpdateProperty],
            Seed | FullProduct => vec![UpdateCompany, CreateNote, UpdateProperty],
        }
    }

    /// The rules for an action table (types it leaves out keep their
    /// [defaults](Self::default_actions)), the types whose tasks are HIGH priority, whether
    /// SEED and FULL_PRODUCT create missing companies, the company property holding the
    /// DUNS, and the D&B element path → company property map of `update_company` (empty
    /// means [`DEFAULT_COMPANY_FIELDS`]).
    pub fn new(
        actions: &BTreeMap<NotificationType, Vec<ActionKind>>,
        critical_types: &[NotificationType],
        create_missing_companies: bool,
        duns_property: &str,
        company_fields: &BTreeMap<String, String>,
    ) -> Self {
        let mut table: BTreeMap<NotificationType, Vec<ActionKind>> = NotificationType::ALL
            .iter()
            .map(|&kind| (kind, Self::default_actions(kind)))
            .collect();
        table.extend(actions.clone());
        Self {
            table,
            critical: critical_types.iter().copied().collect(),
            create_missing_companies,
            duns_property: duns_property.to_string(),
            company_fields: if company_fields.is_empty() {
                DEFAULT_COMPANY_FIELDS
                    .iter()
                    .map(|(path, property)| (path.to_string(), property.to_string()))
                    .collect()
            } else {
                company_fields.clone()
            },
        }
    }

    /// The actions configured for a type.
    pub fn actions_for(&self, notification_type: NotificationType) -> &[ActionKind] {
        self.table
            .get(&notification_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether a type's tasks are HIGH priority.
    pub fn is_critical(&self, notification_type: NotificationType) -> bool {
        self.critical.contains(&notification_type)
    }
}

/// What one notification asks HubSpot to do, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The actions, at most one of each kind.
    pub actions: Vec<Action>,
}

/// Plans the HubSpot actions of one notification. Pure: no I/O, no clock. Task
/// and note texts are previews rendered without the HubSpot company (dry-run,
/// `simulate`); the executor renders them again once the company is known.
pub fn plan(notification_id: i64, notification: &Notification, rules: &ActionRules) -> Plan {
    let kind = notification.notification_type;
    let company = preview_company(notification);
    let successor = preview_successor(notification);
    let actions = rules
        .actions_for(kind)
        .iter()
        .map(|action| match action {
            ActionKind::CreateTask => {
                let text = render::task_text(notification_id, notification, &company, &successor);
                Action::CreateTask {
                    subject: text.subject,
                    body: text.body_html,
                    priority: if rules.is_critical(kind) {
                        TaskPriority::High
                    } else {
                        TaskPriority::Medium
                    },
                }
            }
            ActionKind::CreateNote => Action::CreateNote {
                body: note_preview(notification_id, notification, render::Remarks::default()),
            },
            ActionKind::UpdateProperty => {
                let mut properties = BTreeMap::from([
                    ("dnb_last_alert_type".to_string(), kind.as_str().to_string()),
                    (
                        "dnb_last_alert_at".to_string(),
                        notification
                            .delivered_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    ),
                    (
                        "dnb_critical_alert".to_string(),
                        rules.is_critical(kind).to_string(),
                    ),
                ]);
                if let Some(status) = status_after(kind) {
                    properties.insert(lifecycle::MONITORING_STATUS.to_string(), status.to_string());
                }
                Action::UpdateProperty { properties }
            }
            ActionKind::UpdateCompany => Action::UpdateCompany {
                properties: company_fields(notification, rules),
                create_if_missing: rules.create_missing_companies
                    && matches!(kind, NotificationType::Seed | NotificationType::FullProduct),
            },
        })
        .collect();
    Plan { actions }
}

/// The note of one notification as far as the notification alone tells (no HubSpot
/// company yet), saying what `remarks` say became of it.
pub fn note_preview(
    notification_id: i64,
    notification: &Notification,
    remarks: render::Remarks,
) -> String {
    render::note_html(
        &[render::NoteEntry {
            id: notification_id,
            notification,
            successor: preview_successor(notification),
            remarks,
        }],
        &preview_company(notification),
    )
}

/// The company as far as the notification alone tells (no HubSpot id yet).
fn preview_company(notification: &Notification) -> render::CompanyView {
    render::CompanyView {
        id: String::new(),
        name: notification
            .organization
            .get("primaryName")
            .and_then(Value::as_str)
            .map(str::to_string),
        duns: notification.duns.to_string(),
        other_ids_with_same_duns: Vec::new(),
    }
}

/// The successor a TRANSFER names, before HubSpot says whether another company holds it.
fn preview_successor(notification: &Notification) -> render::SuccessorView {
    notification
        .elements
        .iter()
        .find(|change| change.element == "organization.duns")
        .and_then(|change| change.current.as_str())
        .map_or(render::SuccessorView::Unknown, |duns| {
            render::SuccessorView::Free {
                duns: duns.to_string(),
            }
        })
}

/// The `dnb_monitoring_status` a type sets; `None` for the types that leave it as it is
/// (UPDATE, SEED, FULL_PRODUCT). EXIT and REMOVED mean coverage was lost, not that the
/// company closed.
pub fn status_after(kind: NotificationType) -> Option<&'static str> {
    use NotificationType::*;
    match kind {
        Exit | Removed => Some("coverage_lost"),
        Delete => Some("deleted"),
        Transfer => Some("transferred"),
        UnderReview => Some("under_review"),
        Undelete | Reviewed => Some(lifecycle::MONITORED),
        Update | Seed | FullProduct => None,
    }
}

/// The default `hubspot.company_fields`: D&B element path → HubSpot company property.
pub const DEFAULT_COMPANY_FIELDS: [(&str, &str); 11] = [
    ("organization.primaryName", "name"),
    ("organization.telephone", "phone"),
    ("organization.primaryAddress.streetAddress.line1", "address"),
    ("organization.primaryAddress.addressLocality.name", "city"),
    ("organization.primaryAddress.addressRegion.name", "state"),
    ("organization.primaryAddress.postalCode", "zip"),
    ("organization.primaryAddress.addressCountry.name", "country"),
    ("organization.websiteAddress.0.url", "website"),
    ("organization.websiteAddress.0.domainName", "domain"),
    (
        "organization.numberOfEmployees.0.value",
        "numberofemployees",
    ),
    (
        "organization.financials.0.yearlyRevenue.0.value",
        "annualrevenue",
    ),
];

/// Follows dotted segments (numbers index arrays) into a JSON value.
fn walk<'a>(mut value: &'a Value, path: &str) -> Option<&'a Value> {
    for segment in path.split('.').filter(|segment| !segment.is_empty()) {
        value = match value {
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            Value::Object(map) => map.get(segment)?,
            _ => return None,
        };
    }
    Some(value)
}

/// A HubSpot property value for a D&B value: scalars as text, anything else rendered readably.
fn property_value(path: &str, value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) if text.is_empty() => None,
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Array(items) if items.is_empty() => None,
        other => Some(labels::render_value(path, other)),
    }
}

/// Company properties from the notification: the full organization block of a SEED or
/// FULL_PRODUCT, and the current values of changed elements, through the field map.
fn company_fields(notification: &Notification, rules: &ActionRules) -> BTreeMap<String, String> {
    let mut properties =
        BTreeMap::from([(rules.duns_property.clone(), notification.duns.to_string())]);
    for (path, property) in &rules.company_fields {
        if let Some(relative) = path.strip_prefix("organization.")
            && let Some(value) = walk(&notification.organization, relative)
                .and_then(|value| property_value(path, value))
        {
            properties.insert(property.clone(), value);
        }
        for change in &notification.elements {
            // A changed element is the mapped path itself or an object that contains it.
            let inner = if *path == change.element {
                Some(&change.current)
            } else {
                path.strip_prefix(&format!("{}.", change.element))
                    .and_then(|rest| walk(&change.current, rest))
            };
            if let Some(value) = inner.and_then(|value| property_value(path, value)) {
                properties.insert(property.clone(), value);
            }
        }
    }
    properties
}

/// Escapes text for insertion into a HubSpot HTML body.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(kind: &str, extra: Value) -> Notification {
        let mut value = json!({"type": kind, "organization": {"duns": "021258997"},
                               "deliveryTimeStamp": "2024-05-13T08:01:46.951Z"});
        if let (Value::Object(target), Value::Object(source)) = (&mut value, extra) {
            target.extend(source);
        }
        Notification::from_value(&value).unwrap()
    }

    fn kinds(plan: &Plan) -> Vec<ActionKind> {
        plan.actions.iter().map(Action::kind).collect()
    }

    /// The rules of `hubspot.*` left at its defaults but for the action table `actions`.
    fn rules(actions: &[(NotificationType, Vec<ActionKind>)]) -> ActionRules {
        ActionRules::new(
            &actions.iter().cloned().collect(),
            &ActionRules::DEFAULT_CRITICAL_TYPES,
            true,
            "duns_number",
            &BTreeMap::new(),
        )
    }

    #[test]
    fn default_table_matches_the_contract() {
        let rules = rules(&[]);
        use ActionKind::*;
        for (types, actions) in [
            (
                &["DELETE", "TRANSFER", "UNDER_REVIEW", "EXIT", "REMOVED"][..],
                &[CreateTask, CreateNote, UpdateProperty][..],
            ),
            (
                &["UPDATE", "UNDELETE", "REVIEWED"],
                &[CreateNote, UpdateProperty],
            ),
            (
                &["SEED", "FULL_PRODUCT"],
                &[UpdateCompany, CreateNote, UpdateProperty],
            ),
        ] {
            for kind in types {
                assert_eq!(
                    kinds(&plan(1, &notification(kind, json!({})), &rules)),
                    actions,
                    "{kind}"
                );
            }
        }
    }

    #[test]
    fn configured_table_overrides_one_type_and_keeps_the_others() {
        let rules = rules(&[(NotificationType::Reviewed, vec![ActionKind::CreateTask])]);
        assert_eq!(
            kinds(&plan(1, &notification("REVIEWED", json!({})), &rules)),
            [ActionKind::CreateTask]
        );
        assert_eq!(
            rules.actions_for(NotificationType::Exit),
            ActionRules::default_actions(NotificationType::Exit)
        );
    }

    #[test]
    fn critical_types_get_high_priority_tasks() {
        let rules = rules(&[]);
        let Action::CreateTask {
            priority, subject, ..
        } = &plan(1, &notification("DELETE", json!({})), &rules).actions[0]
        else {
            panic!()
        };
        assert_eq!(*priority, TaskPriority::High);
        assert!(subject.contains("021258997"));
        let Action::CreateTask { priority, .. } =
            &plan(1, &notification("REMOVED", json!({})), &rules).actions[0]
        else {
            panic!()
        };
        assert_eq!(*priority, TaskPriority::Medium);
    }

    #[test]
    fn note_bodies_escape_inserted_text() {
        let rules = rules(&[]);
        let elements = json!({"elements": [{"element": "organization.primaryName", "previous": "A&B <Ltd>", "current": "C"}]});
        let Action::CreateNote { body } =
            &plan(1, &notification("UPDATE", elements), &rules).actions[0]
        else {
            panic!()
        };
        assert!(body.contains("A&amp;B &lt;Ltd&gt; → C"), "{body}");
    }

    #[test]
    fn seed_syncs_company_fields_and_may_create() {
        let rules = rules(&[]);
        let organization = json!({"organization": {"duns": "021258997", "primaryName": "Northwind",
            "telephone": [{"telephoneNumber": "5555551000", "isdCode": "86"}]}});
        let Action::UpdateCompany {
            properties,
            create_if_missing,
        } = &plan(1, &notification("SEED", organization), &rules).actions[0]
        else {
            panic!()
        };
        assert!(create_if_missing);
        assert_eq!(properties["name"], "Northwind");
        assert_eq!(properties["phone"], "+86 5555551000");
        assert_eq!(properties["duns_number"], "021258997");
    }

    #[test]
    fn changed_elements_sync_through_the_field_map_when_the_table_asks() {
        let rules = rules(&[(NotificationType::Update, vec![ActionKind::UpdateCompany])]);
        let elements = json!({"elements": [
            {"element": "organization.primaryAddress", "previous": {"postalCode": "94110"},
             "current": {"postalCode": "94107", "addressLocality": {"name": "San Francisco"}}},
            {"element": "organization.primaryName", "previous": "A", "current": "B"}]});
        let Action::UpdateCompany {
            properties,
            create_if_missing,
        } = &plan(1, &notification("UPDATE", elements), &rules).actions[0]
        else {
            panic!()
        };
        assert!(!create_if_missing);
        assert_eq!(properties["zip"], "94107");
        assert_eq!(properties["city"], "San Francisco");
        assert_eq!(properties["name"], "B");
    }
}
