//! The fake portal's data: companies, tasks, notes, owners, property
//! definitions and groups, with HubSpot's unique-value rule.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::routes::ObjectType;

/// An association stored on a task or note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// The associated object's type (always companies in this fake).
    pub to_type: ObjectType,
    /// The associated record id.
    pub to_id: String,
    /// `associationCategory`, e.g. `HUBSPOT_DEFINED`.
    pub category: String,
    /// `associationTypeId`, e.g. 192 (task → company).
    pub type_id: i64,
}

/// A stored CRM record.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmRecord {
    /// Record id (`hs_object_id`).
    pub id: String,
    /// Property values, including `hs_object_id`, `createdate`, `hs_lastmodifieddate`.
    pub properties: BTreeMap<String, String>,
    /// Associations given at creation.
    pub associations: Vec<Association>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last write time.
    pub updated_at: DateTime<Utc>,
    /// The `objectWriteTraceId` of the creating input, if any.
    pub trace_id: Option<String>,
    /// When search starts seeing the record (creation + search lag).
    pub(crate) searchable_from: Instant,
}

impl CrmRecord {
    /// A property value.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// The record as a `SimplePublicObject`; `requested` adds those properties (null when unset).
    pub fn to_json(&self, requested: Option<&[String]>) -> Value {
        let mut properties = Map::new();
        match requested {
            Some(names) => {
                for name in names {
                    let value = self.properties.get(name).map_or(Value::Null, |v| json!(v));
                    properties.insert(name.clone(), value);
                }
                for name in ["hs_object_id", "createdate", "hs_lastmodifieddate"] {
                    properties.insert(name.to_owned(), json!(self.properties[name]));
                }
            }
            None => {
                for (name, value) in &self.properties {
                    properties.insert(name.clone(), json!(value));
                }
            }
        }
        json!({
            "id": self.id,
            "properties": properties,
            "createdAt": timestamp(self.created_at),
            "updatedAt": timestamp(self.updated_at),
            "archived": false,
        })
    }
}

/// A stored owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Owner id (what goes into `hubspot_owner_id`).
    pub id: String,
    /// Email address as seeded.
    pub email: String,
    /// The user id (not for ownership).
    pub user_id: i64,
}

impl Owner {
    /// The owner as a `PublicOwner`.
    pub fn to_json(&self) -> Value {
        let at = timestamp(Utc::now());
        json!({
            "id": self.id, "email": self.email, "type": "PERSON",
            "firstName": "Fake", "lastName": "Owner", "userId": self.user_id,
            "userIdIncludingInactive": self.user_id, "archived": false,
            "createdAt": at, "updatedAt": at, "teams": [],
        })
    }
}

/// RFC 3339 with milliseconds, as HubSpot writes times.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Everything the fake portal holds.
#[derive(Debug, Default)]
pub struct Store {
    next_id: u64,
    /// Records per object type, in creation order.
    pub records: BTreeMap<ObjectType, Vec<CrmRecord>>,
    /// Owners in seeding order.
    pub owners: Vec<Owner>,
    /// Property definitions (HubSpot `Property` bodies) per object type, by name.
    pub properties: BTreeMap<ObjectType, BTreeMap<String, Value>>,
    /// Property groups per object type, by name.
    pub groups: BTreeMap<ObjectType, BTreeMap<String, Value>>,
}

impl Store {
    /// A fresh numeric id (ids are unique across types, as strings).
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        (10_000_000 + self.next_id).to_string()
    }

    /// The records of one type.
    pub fn list(&self, object: ObjectType) -> &[CrmRecord] {
        self.records.get(&object).map_or(&[], Vec::as_slice)
    }

    /// One record by id.
    pub fn get(&self, object: ObjectType, id: &str) -> Option<&CrmRecord> {
        self.list(object).iter().find(|record| record.id == id)
    }

    /// One record by id, for writing.
    pub fn get_mut(&mut self, object: ObjectType, id: &str) -> Option<&mut CrmRecord> {
        self.records
            .get_mut(&object)?
            .iter_mut()
            .find(|record| record.id == id)
    }

    /// The record whose `property` equals `value`.
    pub fn find_by(&self, object: ObjectType, property: &str, value: &str) -> Option<&CrmRecord> {
        self.list(object)
            .iter()
            .find(|record| record.property(property) == Some(value))
    }

    /// A property definition.
    pub fn property(&self, object: ObjectType, name: &str) -> Option<&Value> {
        self.properties.get(&object)?.get(name)
    }

    /// Whether the property exists and has `hasUniqueValue: true`.
    pub fn is_unique(&self, object: ObjectType, name: &str) -> bool {
        self.property(object, name)
            .is_some_and(|p| p["hasUniqueValue"] == json!(true))
    }

    /// The first unique property whose value in `properties` another record (not `except`) holds.
    pub fn unique_conflict(
        &self,
        object: ObjectType,
        properties: &BTreeMap<String, String>,
        except: Option<&str>,
    ) -> Option<(String, String, String)> {
        properties.iter().find_map(|(name, value)| {
            if value.is_empty() || !self.is_unique(object, name) {
                return None;
            }
            let holder = self.find_by(object, name, value)?;
            (Some(holder.id.as_str()) != except)
                .then(|| (name.clone(), value.clone(), holder.id.clone()))
        })
    }

    /// Stores a new record created at `created_at`, searchable after `lag`; returns its id.
    pub fn insert(
        &mut self,
        object: ObjectType,
        mut properties: BTreeMap<String, String>,
        associations: Vec<Association>,
        trace_id: Option<String>,
        created_at: DateTime<Utc>,
        lag: Duration,
    ) -> String {
        let id = self.new_id();
        let at = timestamp(created_at);
        properties.insert("hs_object_id".into(), id.clone());
        properties.insert("createdate".into(), at.clone());
        properties.insert("hs_lastmodifieddate".into(), at);
        let age = (Utc::now() - created_at).to_std().unwrap_or_default();
        let created_instant = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let record = CrmRecord {
            id: id.clone(),
            properties,
            associations,
            created_at,
            updated_at: created_at,
            trace_id,
            searchable_from: created_instant + lag,
        };
        self.records.entry(object).or_default().push(record);
        id
    }

    /// Writes `properties` onto a record (an empty string clears a value).
    pub fn update(&mut self, object: ObjectType, id: &str, properties: &BTreeMap<String, String>) {
        let now = Utc::now();
        if let Some(record) = self.get_mut(object, id) {
            for (name, value) in properties {
                if value.is_empty() {
                    record.properties.remove(name);
                } else {
                    record.properties.insert(name.clone(), value.clone());
                }
            }
            record.updated_at = now;
            record
                .properties
                .insert("hs_lastmodifieddate".into(), timestamp(now));
        }
    }
}
