//! The company properties the bridge writes, and how `bootstrap` creates them.
//!
//! The DUNS property (a unique string, so companies can be read by it) and the
//! alert-tracking properties live in one property group. Creating them is
//! idempotent: existing properties are left alone, a 409 means another run was
//! first.

use serde::Serialize;

use super::client::HubSpotClient;
use super::error::HubSpotError;

/// The property group the bridge's properties are created in.
pub const GROUP_NAME: &str = "dnb_bridge";
/// Its label.
pub const GROUP_LABEL: &str = "D&B monitoring";

/// One option of an enumeration or bool property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    /// Shown in HubSpot.
    pub label: String,
    /// Written through the API.
    pub value: String,
    /// Position.
    pub display_order: i32,
    /// Hidden options are not shown.
    pub hidden: bool,
}

/// Body of `POST …/properties/companies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    /// Internal name.
    pub name: String,
    /// Label shown in HubSpot.
    pub label: String,
    /// `string`, `datetime`, `bool`, `enumeration`.
    #[serde(rename = "type")]
    pub property_type: String,
    /// `text`, `date`, `booleancheckbox`, `select`.
    pub field_type: String,
    /// The group.
    pub group_name: String,
    /// Help text.
    pub description: String,
    /// Unique values across companies (cannot be changed later).
    pub has_unique_value: bool,
    /// Options of `bool` and `enumeration` properties.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PropertyOption>,
}

fn options(pairs: &[(&str, &str)]) -> Vec<PropertyOption> {
    pairs
        .iter()
        .enumerate()
        .map(|(order, (label, value))| PropertyOption {
            label: label.to_string(),
            value: value.to_string(),
            display_order: order as i32,
            hidden: false,
        })
        .collect()
}

fn property(name: &str, label: &str, kind: (&str, &str), description: &str) -> PropertyCreate {
    PropertyCreate {
        name: name.into(),
        label: label.into(),
        property_type: kind.0.into(),
        field_type: kind.1.into(),
        group_name: GROUP_NAME.into(),
        description: description.into(),
        has_unique_value: false,
        options: Vec::new(),
    }
}

/// Every company property the bridge writes, the DUNS property first.
pub fn required(duns_property: &str) -> Vec<PropertyCreate> {
    const TEXT: (&str, &str) = ("string", "text");
    vec![
        PropertyCreate {
            has_unique_value: true,
            ..property(
                duns_property,
                "D-U-N-S Number",
                TEXT,
                "The company's 9-digit D&B D-U-N-S number.",
            )
        },
        property(
            "dnb_last_alert_type",
            "Last D&B alert",
            TEXT,
            "Type of the last D&B monitoring alert.",
        ),
        property(
            "dnb_last_alert_at",
            "Last D&B alert time",
            ("datetime", "date"),
            "When D&B delivered the last alert.",
        ),
        PropertyCreate {
            options: options(&[("Yes", "true"), ("No", "false")]),
            ..property(
                "dnb_critical_alert",
                "Critical D&B alert",
                ("bool", "booleancheckbox"),
                "Whether the last alert was critical.",
            )
        },
        PropertyCreate {
            options: options(&[
                ("Monitored", "monitored"),
                ("Coverage lost (left D&B monitoring)", "coverage_lost"),
                ("Deleted by D&B", "deleted"),
                ("Transferred to another D-U-N-S", "transferred"),
                ("Under review by D&B", "under_review"),
            ]),
            ..property(
                "dnb_monitoring_status",
                "D&B monitoring status",
                ("enumeration", "select"),
                "What D&B monitoring last said about this company.",
            )
        },
        property(
            "dnb_previous_duns",
            "Previous D-U-N-S",
            TEXT,
            "The D-U-N-S this company had before a D&B transfer.",
        ),
        property(
            "dnb_successor_duns",
            "Successor D-U-N-S",
            TEXT,
            "A D-U-N-S D&B transferred this company to that another company holds.",
        ),
        property(
            "dnb_duplicate_of",
            "Duplicate of (D&B)",
            TEXT,
            "Set on companies sharing a D-U-N-S with an older one: the record id the bridge acts on.",
        ),
    ]
}

/// What `bootstrap` found or did for one property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyState {
    /// It exists (unique when it must be).
    Present,
    /// It exists but is not unique, which HubSpot cannot change afterwards.
    PresentNotUnique,
    /// It is missing (and, unless dry-run, was created).
    Missing,
}

/// Checks every required property; creates the missing ones unless `dry_run`.
pub async fn bootstrap(
    client: &HubSpotClient,
    duns_property: &str,
    dry_run: bool,
) -> Result<Vec<(PropertyCreate, PropertyState)>, HubSpotError> {
    let mut report = Vec::new();
    let mut group_ready = dry_run;
    for wanted in required(duns_property) {
        let state = match client.company_property(&wanted.name).await? {
            Some(found) if wanted.has_unique_value && !found.has_unique_value => {
                PropertyState::PresentNotUnique
            }
            Some(_) => PropertyState::Present,
            None => PropertyState::Missing,
        };
        if state == PropertyState::Missing && !dry_run {
            if !group_ready {
                client
                    .ensure_company_property_group(GROUP_NAME, GROUP_LABEL)
                    .await?;
                group_ready = true;
            }
            client.create_company_property(&wanted).await?;
        }
        report.push((wanted, state));
    }
    Ok(report)
}
