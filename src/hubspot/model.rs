//! Request and answer bodies of the HubSpot endpoints the bridge calls (serde only).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Association type id of task → company.
pub const TASK_TO_COMPANY: u32 = 192;
/// Association type id of note → company.
pub const NOTE_TO_COMPANY: u32 = 190;

/// A CRM record as HubSpot returns it. Property values may be null.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleObject {
    /// Record id.
    pub id: String,
    /// Requested properties.
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
}

impl SimpleObject {
    /// A property's value, when set and not empty.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(|value| value.as_deref())
            .filter(|value| !value.is_empty())
    }
}

/// One per-input error of a batch answer (207).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchError {
    /// HubSpot's status word for the error.
    pub status: String,
    /// Error category, e.g. `VALIDATION_ERROR`, `OBJECT_NOT_FOUND`.
    pub category: String,
    /// What went wrong.
    pub message: String,
    /// Context lists, e.g. `objectWriteTraceId` or `ids`.
    pub context: HashMap<String, Vec<String>>,
}

impl BatchError {
    /// The `objectWriteTraceId`s the error is about.
    pub fn trace_ids(&self) -> &[String] {
        self.context
            .get("objectWriteTraceId")
            .map_or(&[], Vec::as_slice)
    }

    /// The input ids the error is about (batch read misses).
    pub fn ids(&self) -> &[String] {
        self.context.get("ids").map_or(&[], Vec::as_slice)
    }
}

/// A batch answer: 200/201 or 207 with per-input errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchAnswer {
    /// Objects read or written.
    pub results: Vec<SimpleObject>,
    /// Per-input errors (207).
    pub errors: Vec<BatchError>,
}

/// `{"id": …}` inputs of batch read.
#[derive(Debug, Clone, Serialize)]
pub struct IdInput {
    /// Record id, or the `idProperty` value.
    pub id: String,
}

/// Body of `…/batch/read`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReadRequest {
    /// Read by this unique property instead of the record id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_property: Option<String>,
    /// At most 100.
    pub inputs: Vec<IdInput>,
    /// Properties to return.
    pub properties: Vec<String>,
    /// Marked required by the spec; always empty here.
    pub properties_with_history: Vec<String>,
}

/// Where an association points and with which type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    /// The target record.
    pub to: AssociationTarget,
    /// The association types (one HubSpot-defined type here).
    pub types: Vec<AssociationType>,
}

/// `associations[].to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssociationTarget {
    /// Target record id.
    pub id: String,
}

/// `associations[].types[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationType {
    /// Always `HUBSPOT_DEFINED` here.
    pub association_category: String,
    /// 192 (task → company) or 190 (note → company).
    pub association_type_id: u32,
}

impl Association {
    /// A HubSpot-defined association to `company_id`.
    pub fn to_company(company_id: &str, type_id: u32) -> Self {
        Self {
            to: AssociationTarget {
                id: company_id.to_string(),
            },
            types: vec![AssociationType {
                association_category: "HUBSPOT_DEFINED".into(),
                association_type_id: type_id,
            }],
        }
    }
}

/// One input of `…/batch/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateInput {
    /// Property values.
    pub properties: BTreeMap<String, String>,
    /// Associations made with the record.
    pub associations: Vec<Association>,
    /// Distinct per input, so errors come back per input (207).
    pub object_write_trace_id: String,
}

/// One input of `…/batch/update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInput {
    /// Record id.
    pub id: String,
    /// Property values to set.
    pub properties: BTreeMap<String, String>,
    /// Distinct per input.
    pub object_write_trace_id: String,
}

/// Body of a batch write.
#[derive(Debug, Clone, Serialize)]
pub struct BatchInputs<T> {
    /// At most 100.
    pub inputs: Vec<T>,
}

/// One filter of a search.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Property filtered on.
    pub property_name: String,
    /// `IN`, `EQ`, `CONTAINS_TOKEN`, …
    pub operator: String,
    /// Single value operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `IN` values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// `filterGroups[]`.
#[derive(Debug, Clone, Serialize)]
pub struct FilterGroup {
    /// ANDed filters.
    pub filters: Vec<Filter>,
}

/// Body of `…/search`. No `sorts`: the spec and the guide disagree on their
/// shape, so results are ordered by the caller.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// ORed groups.
    pub filter_groups: Vec<FilterGroup>,
    /// Properties to return.
    pub properties: Vec<String>,
    /// Page size, at most 200.
    pub limit: u32,
    /// Paging cursor from the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Answer of `…/search`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SearchAnswer {
    /// Matching records.
    pub results: Vec<SimpleObject>,
    /// The next page, when there is one.
    pub paging: Option<Paging>,
}

/// `paging`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Paging {
    /// `paging.next`.
    pub next: Option<NextPage>,
}

/// `paging.next`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NextPage {
    /// Cursor for `after`.
    pub after: String,
}

/// One owner of `GET …/owners`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Owner {
    /// The id to use as `hubspot_owner_id`.
    pub id: String,
    /// The owner's email.
    pub email: Option<String>,
}

/// Answer of `GET …/owners`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OwnersAnswer {
    /// Matching owners.
    pub results: Vec<Owner>,
}

/// Answer of `GET …/account-info/…/details`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccountDetails {
    /// Portal (hub) id.
    pub portal_id: u64,
    /// The portal's time zone, e.g. `US/Eastern`.
    pub time_zone: String,
}

/// A property definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Property {
    /// Internal name.
    pub name: String,
    /// Label shown in HubSpot.
    pub label: String,
    /// `string`, `datetime`, `bool`, `enumeration`, …
    #[serde(rename = "type")]
    pub property_type: String,
    /// `text`, `date`, `booleancheckbox`, `select`, …
    pub field_type: String,
    /// Property group.
    pub group_name: String,
    /// Whether values are unique across records.
    pub has_unique_value: bool,
    /// Help text.
    pub description: String,
}
