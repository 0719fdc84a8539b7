//! Seeding, fault scripting and inspection: what tests call on a running
//! [`FakeHubSpot`] to arrange a portal and assert on what the bridge did.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::limits::{self, Fault};
use super::routes::{Endpoint, EndpointMatcher, ObjectType};
use super::spec::Violation;
use super::state::{CrmRecord, Owner};
use super::{FakeHubSpot, RecordedRequest, seed};

impl FakeHubSpot {
    /// Seeds a company created now (so subject to `search_lag`); returns its id.
    /// Panics when a unique value is already taken.
    pub fn add_company<K: Into<String>, V: Into<String>>(
        &self,
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> String {
        self.add_company_created_at(properties, Utc::now())
    }

    /// Seeds a company created at `created_at` (in the past: already searchable).
    pub fn add_company_created_at<K: Into<String>, V: Into<String>>(
        &self,
        properties: impl IntoIterator<Item = (K, V)>,
        created_at: DateTime<Utc>,
    ) -> String {
        let properties: BTreeMap<String, String> = properties
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let mut inner = self.inner();
        let conflict = inner
            .store
            .unique_conflict(ObjectType::Companies, &properties, None);
        assert!(
            conflict.is_none(),
            "add_company: unique value taken: {conflict:?}"
        );
        let lag = self.shared.config.search_lag;
        inner.store.insert(
            ObjectType::Companies,
            properties,
            vec![],
            None,
            created_at,
            lag,
        )
    }

    /// Seeds an owner; returns the owner id.
    pub fn add_owner(&self, email: &str) -> String {
        let mut inner = self.inner();
        let id = inner.store.new_id();
        let user_id = 9_000_000 + inner.store.owners.len() as i64;
        inner.store.owners.push(Owner {
            id: id.clone(),
            email: email.to_owned(),
            user_id,
        });
        id
    }

    /// Defines (or redefines) a company string property; `unique` sets `hasUniqueValue`.
    /// `add_property("duns_number", false)` simulates a portal whose DUNS is not unique.
    pub fn add_property(&self, name: &str, unique: bool) {
        let property = seed::duns_property(name, unique);
        let mut inner = self.inner();
        let companies = inner
            .store
            .properties
            .entry(ObjectType::Companies)
            .or_default();
        companies.insert(name.to_owned(), property);
    }

    /// Makes the next `n` requests matching `matcher` suffer `fault`
    /// (scripts are consumed in the order given; the first match wins).
    pub fn fail_next(&self, matcher: impl Into<EndpointMatcher>, n: usize, fault: Fault) {
        let scripted = limits::ScriptedFault {
            matcher: matcher.into(),
            remaining: n,
            fault,
        };
        self.inner().faults.push(scripted);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner().log.clone()
    }

    /// The requests `matcher` selects.
    pub fn requests_to(&self, matcher: impl Into<EndpointMatcher>) -> Vec<RecordedRequest> {
        let matcher = matcher.into();
        let log = self.inner().log.clone();
        log.into_iter()
            .filter(|r| matcher.matches(r.route.as_ref(), &r.path))
            .collect()
    }

    /// How many requests `matcher` selects.
    pub fn calls(&self, matcher: impl Into<EndpointMatcher>) -> usize {
        self.requests_to(matcher).len()
    }

    /// Request counts per served endpoint (both families together).
    pub fn call_counts(&self) -> BTreeMap<Endpoint, usize> {
        let mut counts = BTreeMap::new();
        for route in self.inner().log.iter().filter_map(|r| r.route.as_ref()) {
            *counts.entry(route.endpoint).or_default() += 1;
        }
        counts
    }

    /// How many requests the rate limiters refused with 429 (injected 429s not included).
    pub fn throttled(&self) -> usize {
        self.inner().throttled
    }

    /// Recorded violations (spec, search limits, unserved endpoints).
    pub fn violations(&self) -> Vec<Violation> {
        self.inner().violations.clone()
    }

    /// Panics listing every recorded violation.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        let listing: Vec<String> = violations
            .iter()
            .map(|v| {
                format!(
                    "{} {} [{}]: {}",
                    v.method,
                    v.path,
                    v.operation,
                    v.problems.join("; ")
                )
            })
            .collect();
        assert!(
            listing.is_empty(),
            "fake HubSpot saw {} violation(s):\n{}",
            listing.len(),
            listing.join("\n")
        );
    }

    /// Stored companies, in creation order.
    pub fn companies(&self) -> Vec<CrmRecord> {
        self.inner().store.list(ObjectType::Companies).to_vec()
    }

    /// One company by id.
    pub fn company(&self, id: &str) -> Option<CrmRecord> {
        self.inner().store.get(ObjectType::Companies, id).cloned()
    }

    /// The company whose `property` equals `value`.
    pub fn company_by(&self, property: &str, value: &str) -> Option<CrmRecord> {
        self.inner()
            .store
            .find_by(ObjectType::Companies, property, value)
            .cloned()
    }

    /// Stored tasks, in creation order.
    pub fn tasks(&self) -> Vec<CrmRecord> {
        self.inner().store.list(ObjectType::Tasks).to_vec()
    }

    /// Writes properties onto a stored record, as a person editing it in HubSpot would.
    pub fn edit(&self, object: ObjectType, id: &str, properties: &[(&str, &str)]) {
        let properties: BTreeMap<String, String> = properties
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let mut inner = self.inner();
        assert!(
            inner.store.get(object, id).is_some(),
            "edit: no {object:?} {id}"
        );
        inner.store.update(object, id, &properties);
    }

    /// Deletes a stored record, as a person deleting it in HubSpot would.
    pub fn delete(&self, object: ObjectType, id: &str) {
        let mut inner = self.inner();
        let records = inner.store.records.entry(object).or_default();
        let before = records.len();
        records.retain(|record| record.id != id);
        assert_eq!(records.len() + 1, before, "delete: no {object:?} {id}");
    }

    /// Stored notes, in creation order.
    pub fn notes(&self) -> Vec<CrmRecord> {
        self.inner().store.list(ObjectType::Notes).to_vec()
    }

    /// A company property definition (HubSpot `Property` body).
    pub fn property(&self, name: &str) -> Option<Value> {
        self.inner()
            .store
            .property(ObjectType::Companies, name)
            .cloned()
    }

    /// Company property group names.
    pub fn groups(&self) -> Vec<String> {
        let inner = self.inner();
        inner
            .store
            .groups
            .get(&ObjectType::Companies)
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default()
    }
}
