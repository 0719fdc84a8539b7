//! The D&B Direct+ monitoring notification: parse, don't validate.
//!
//! A [`Notification`] can only be built from JSON that has a known type, an
//! `organization` with a 9-digit DUNS and a `deliveryTimeStamp`; anything else
//! becomes a [`Rejection`] with a short reason word and a readable detail.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The ten D&B monitoring notification types. Their D&B spellings (`FULL_PRODUCT`) are the
/// one name table of the types: stored in the journal, shown in labels and answers, and the
/// keys of `hubspot.actions` and entries of `hubspot.critical_types` in the config.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE", ascii_case_insensitive)]
pub enum NotificationType {
    /// Monitored elements changed.
    Update,
    /// The DUNS was deleted (out of business or a duplicate record).
    Delete,
    /// The DUNS was transferred to another DUNS.
    Transfer,
    /// First full data block after registration.
    Seed,
    /// A full data block on request.
    FullProduct,
    /// A deleted DUNS was restored.
    Undelete,
    /// A review of the record finished.
    Reviewed,
    /// The record is under review.
    UnderReview,
    /// The DUNS left the monitoring portfolio.
    Exit,
    /// The DUNS was removed from the registration.
    Removed,
}

impl NotificationType {
    /// Every type, in the contract's order.
    pub const ALL: &'static [NotificationType] = <Self as strum::VariantArray>::VARIANTS;

    /// The D&B spelling, e.g. `FULL_PRODUCT`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the D&B spelling (case-insensitive, so config keys may be lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl<'de> Deserialize<'de> for NotificationType {
    /// From the D&B spelling, as [`NotificationType::parse`] reads it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::unknown_variant(&name, <Self as strum::VariantNames>::VARIANTS)
        })
    }
}

/// A D-U-N-S number: exactly nine ASCII digits, leading zeros kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duns(String);

impl Duns {
    /// Accepts exactly nine ASCII digits.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 9 && text.bytes().all(|byte| byte.is_ascii_digit()))
            .then(|| Self(text.to_string()))
    }

    /// The nine digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Duns {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// One changed element: a dotted path with its previous and current value.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementChange {
    /// Dotted path such as `organization.primaryName`.
    pub element: String,
    /// Value before the change (any JSON).
    pub previous: Value,
    /// Value after the change (any JSON).
    pub current: Value,
    /// When D&B saw the change, as sent.
    pub timestamp: Option<String>,
}

/// A valid monitoring notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Its type.
    pub notification_type: NotificationType,
    /// The monitored company.
    pub duns: Duns,
    /// D&B's `deliveryTimeStamp`, which orders a DUNS's notifications.
    pub delivered_at: DateTime<Utc>,
    /// The changed elements; empty for types that carry none.
    pub elements: Vec<ElementChange>,
    /// The `organization` block as sent (full for SEED and FULL_PRODUCT).
    pub organization: Value,
}

/// Why an item is not a valid notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// An NDJSON line that is not JSON.
    InvalidJson,
    /// JSON that is not an object.
    NotAnObject,
    /// `type` absent or not a string.
    MissingType,
    /// `type` is not one of the ten types.
    UnknownType,
    /// `organization` absent or not an object.
    MissingOrganization,
    /// `organization.duns` is not nine digits.
    InvalidDuns,
    /// `deliveryTimeStamp` absent or not RFC 3339.
    InvalidDeliveryTimestamp,
    /// `elements` is not a list of `{element, previous, current}` objects.
    InvalidElements,
}

impl RejectReason {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [RejectReason; 8] = [
        Self::InvalidJson,
        Self::NotAnObject,
        Self::MissingType,
        Self::UnknownType,
        Self::MissingOrganization,
        Self::InvalidDuns,
        Self::InvalidDeliveryTimestamp,
        Self::InvalidElements,
    ];

    /// The snake_case word used in answers, the journal and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingType => "missing_type",
            Self::UnknownType => "unknown_type",
            Self::MissingOrganization => "missing_organization",
            Self::InvalidDuns => "invalid_duns",
            Self::InvalidDeliveryTimestamp => "invalid_delivery_timestamp",
            Self::InvalidElements => "invalid_elements",
        }
    }
}

/// An item that is not a valid notification, with a readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The short reason word.
    pub reason: RejectReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Longest piece of an offending value quoted in a rejection detail.
const QUOTE_LIMIT: usize = 40;

fn quote(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > QUOTE_LIMIT {
        let mut end = QUOTE_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl Notification {
    /// Builds a notification from one JSON item, or says why it is not one.
    pub fn from_value(value: &Value) -> Result<Self, Rejection> {
        let Value::Object(object) = value else {
            return Err(Rejection::new(
                RejectReason::NotAnObject,
                "a notification must be a JSON object",
            ));
        };
        let type_value = object.get("type").and_then(Value::as_str).ok_or_else(|| {
            Rejection::new(
                RejectReason::MissingType,
                "\"type\" is missing or not a string",
            )
        })?;
        let notification_type = NotificationType::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == type_value)
            .ok_or_else(|| {
                Rejection::new(
                    RejectReason::UnknownType,
                    format!(
                        "\"type\" {} is not a D&B monitoring type",
                        quote(&Value::from(type_value))
                    ),
                )
            })?;
        let organization = object
            .get("organization")
            .filter(|organization| organization.is_object())
            .ok_or_else(|| {
                Rejection::new(
                    RejectReason::MissingOrganization,
                    "\"organization\" is missing or not an object",
                )
            })?;
        let duns_value = organization.get("duns").unwrap_or(&Value::Null);
        let duns = duns_value.as_str().and_then(Duns::parse).ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidDuns,
                format!(
                    "organization.duns must be a string of 9 digits, got {}",
                    quote(duns_value)
                ),
            )
        })?;
        let timestamp_value = object.get("deliveryTimeStamp").unwrap_or(&Value::Null);
        let delivered_at = timestamp_value
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc))
            .ok_or_else(|| {
                Rejection::new(
                    RejectReason::InvalidDeliveryTimestamp,
                    format!(
                        "deliveryTimeStamp must be an RFC 3339 time, got {}",
                        quote(timestamp_value)
                    ),
                )
            })?;
        let elements = match object.get("elements") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| parse_element(index, item))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(Rejection::new(
                    RejectReason::InvalidElements,
                    format!("\"elements\" must be a list, got {}", quote(other)),
                ));
            }
        };
        Ok(Self {
            notification_type,
            duns,
            delivered_at,
            elements,
            organization: organization.clone(),
        })
    }
}

fn parse_element(index: usize, item: &Value) -> Result<ElementChange, Rejection> {
    let element = item
        .get("element")
        .and_then(Value::as_str)
        .filter(|path| !path.is_empty())
        .ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidElements,
                format!("elements[{index}] has no \"element\" path"),
            )
        })?;
    Ok(ElementChange {
        element: element.to_string(),
        previous: item.get("previous").cloned().unwrap_or(Value::Null),
        current: item.get("current").cloned().unwrap_or(Value::Null),
        timestamp: item
            .get("timestamp")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"type": "UPDATE", "organization": {"duns": "021258997"},
               "elements": [{"element": "organization.primaryName", "previous": "A", "current": "B",
                             "timestamp": "2024-05-13T02:01:46Z"}],
               "deliveryTimeStamp": "2024-05-13T08:01:46.951Z"})
    }

    fn reason_of(value: Value) -> RejectReason {
        Notification::from_value(&value).unwrap_err().reason
    }

    #[test]
    fn a_valid_update_parses_with_leading_zero_duns() {
        let notification = Notification::from_value(&base()).unwrap();
        assert_eq!(notification.notification_type, NotificationType::Update);
        assert_eq!(notification.duns.as_str(), "021258997");
        assert_eq!(notification.elements[0].current, json!("B"));
        assert_eq!(
            notification.delivered_at.timestamp_millis(),
            1_715_587_306_951
        );
    }

    #[test]
    fn missing_elements_mean_none() {
        let mut value = base();
        value.as_object_mut().unwrap().remove("elements");
        assert!(
            Notification::from_value(&value)
                .unwrap()
                .elements
                .is_empty()
        );
    }

    #[test]
    fn each_defect_has_its_reason() {
        let mut value = base();
        value["organization"]["duns"] = json!(21258997);
        assert_eq!(reason_of(value), RejectReason::InvalidDuns);
        let mut value = base();
        value["organization"]["duns"] = json!("12345678X");
        assert_eq!(reason_of(value), RejectReason::InvalidDuns);
        let mut value = base();
        value["type"] = json!("MERGE");
        assert_eq!(reason_of(value), RejectReason::UnknownType);
        let mut value = base();
        value["type"] = json!("update");
        assert_eq!(reason_of(value), RejectReason::UnknownType);
        let mut value = base();
        value.as_object_mut().unwrap().remove("organization");
        assert_eq!(reason_of(value), RejectReason::MissingOrganization);
        let mut value = base();
        value["deliveryTimeStamp"] = json!("yesterday");
        assert_eq!(reason_of(value), RejectReason::InvalidDeliveryTimestamp);
        let mut value = base();
        value["elements"] = json!([{"previous": 1}]);
        assert_eq!(reason_of(value), RejectReason::InvalidElements);
        assert_eq!(reason_of(json!([1])), RejectReason::NotAnObject);
        assert_eq!(
            reason_of(json!({"organization": {}})),
            RejectReason::MissingType
        );
    }

    #[test]
    fn long_offending_values_are_cut_in_the_detail() {
        let mut value = base();
        value["type"] = json!("X".repeat(10_000));
        let rejection = Notification::from_value(&value).unwrap_err();
        assert!(rejection.detail.len() < 120, "{}", rejection.detail);
    }

    #[test]
    fn type_names_round_trip() {
        for &kind in NotificationType::ALL {
            assert_eq!(NotificationType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            NotificationType::parse("full_product"),
            Some(NotificationType::FullProduct)
        );
    }
}
