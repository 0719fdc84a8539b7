//! `POST …/{type}/search`: filter groups (OR of ANDed filters), one sort
//! rule, `limit`/`after` paging, HubSpot's documented limits, and the search
//! index delay (records created less than `search_lag` ago are invisible).

use std::cmp::Ordering;
use std::time::Instant;

use serde_json::{Value, json};

use super::errors::{self, Reply};
use super::routes::ObjectType;
use super::state::{CrmRecord, Store};

/// Request body limit (characters).
pub const MAX_BODY: usize = 3000;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 6;
const MAX_FILTERS: usize = 18;
const MAX_LIMIT: u64 = 200;
const MAX_TOTAL: usize = 10_000;

/// HubSpot's documented search limits; `Err` is the 400 message.
pub fn check_limits(body: &Value, raw_len: usize) -> Result<(), String> {
    if raw_len > MAX_BODY {
        return Err(format!(
            "Search request body has {raw_len} characters; at most {MAX_BODY}"
        ));
    }
    let groups = body["filterGroups"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let counts: Vec<usize> = groups
        .iter()
        .map(|g| g["filters"].as_array().map_or(0, Vec::len))
        .collect();
    if groups.len() > MAX_GROUPS
        || counts.iter().any(|n| *n > MAX_FILTERS_PER_GROUP)
        || counts.iter().sum::<usize>() > MAX_FILTERS
    {
        return Err(format!(
            "Too many filters: at most {MAX_GROUPS} filterGroups, {MAX_FILTERS_PER_GROUP} filters per group, {MAX_FILTERS} in total"
        ));
    }
    if body["limit"]
        .as_u64()
        .is_some_and(|limit| limit > MAX_LIMIT)
    {
        return Err(format!("limit must be at most {MAX_LIMIT}"));
    }
    Ok(())
}

fn default_properties(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Companies => &["name", "domain"],
        ObjectType::Tasks => &[
            "hs_task_subject",
            "hs_task_status",
            "hs_task_priority",
            "hs_timestamp",
        ],
        ObjectType::Notes => &["hs_note_body", "hs_timestamp"],
    }
}

/// Lowercase alphanumeric tokens of a text.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `token` matches `pattern` (lowercase; `*` is a wildcard).
fn glob(pattern: &str, token: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == token,
        Some((head, tail)) => {
            token.starts_with(head)
                && (0..=token.len() - head.len()).any(|skip| {
                    token.is_char_boundary(head.len() + skip)
                        && glob(tail, &token[head.len() + skip..])
                })
        }
    }
}

fn contains_token(stored: Option<&str>, value: &str) -> bool {
    let Some(stored) = stored else { return false };
    let have = tokens(stored);
    let wanted: Vec<String> = value
        .split(|c: char| !c.is_alphanumeric() && c != '*')
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    !wanted.is_empty() && wanted.iter().all(|w| have.iter().any(|h| glob(w, h)))
}

/// A number for range comparisons: numbers as is, RFC 3339 times as epoch ms.
fn numeric(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.timestamp_millis() as f64)
    })
}

fn compare(stored: Option<&str>, value: &str) -> Option<Ordering> {
    let stored = stored?;
    match (numeric(stored), numeric(value)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(stored.to_lowercase().cmp(&value.to_lowercase())),
    }
}

fn matches(record: &CrmRecord, filter: &Value) -> bool {
    let stored = filter["propertyName"]
        .as_str()
        .and_then(|name| record.property(name));
    let value = filter["value"].as_str().unwrap_or_default();
    let values: Vec<&str> = filter["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // IN compares the lowercased stored value with the values as sent: HubSpot
    // requires lowercase values for IN/NOT_IN on strings.
    let in_values = stored.is_some_and(|s| values.contains(&s.to_lowercase().as_str()));
    let equal = stored.is_some_and(|s| s.eq_ignore_ascii_case(value));
    match filter["operator"].as_str().unwrap_or_default() {
        "EQ" => equal,
        "NEQ" => !equal,
        "IN" => in_values,
        "NOT_IN" => !in_values,
        "HAS_PROPERTY" => stored.is_some_and(|s| !s.is_empty()),
        "NOT_HAS_PROPERTY" => stored.is_none_or(str::is_empty),
        "CONTAINS_TOKEN" => contains_token(stored, value),
        "NOT_CONTAINS_TOKEN" => !contains_token(stored, value),
        "GT" => compare(stored, value) == Some(Ordering::Greater),
        "GTE" => matches!(
            compare(stored, value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        "LT" => compare(stored, value) == Some(Ordering::Less),
        "LTE" => matches!(
            compare(stored, value),
            Some(Ordering::Less | Ordering::Equal)
        ),
        "BETWEEN" => {
            let high = filter["highValue"].as_str().unwrap_or_default();
            matches!(
                compare(stored, value),
                Some(Ordering::Greater | Ordering::Equal)
            ) && matches!(
                compare(stored, high),
                Some(Ordering::Less | Ordering::Equal)
            )
        }
        _ => false,
    }
}

fn selected(record: &CrmRecord, body: &Value) -> bool {
    let groups = body["filterGroups"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let by_filters = groups.is_empty()
        || groups.iter().any(|group| {
            group["filters"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|f| matches(record, f))
        });
    let by_query = body["query"].as_str().is_none_or(|query| {
        let query = query.to_lowercase();
        record
            .properties
            .values()
            .any(|v| v.to_lowercase().contains(&query))
    });
    by_filters && by_query
}

/// The sort rule: `{propertyName, direction}` or the spec's string form (`-name` descends).
fn sort_rule(body: &Value) -> (String, bool) {
    match body["sorts"].get(0) {
        Some(Value::String(rule)) => match rule.strip_prefix('-') {
            Some(name) => (name.to_owned(), true),
            None => (rule.clone(), false),
        },
        Some(rule) => (
            rule["propertyName"]
                .as_str()
                .unwrap_or("hs_object_id")
                .to_owned(),
            rule["direction"] == json!("DESCENDING"),
        ),
        None => ("hs_object_id".to_owned(), false),
    }
}

/// Runs a search over the records the index already sees.
pub fn search(store: &Store, object: ObjectType, body: &Value) -> Reply {
    let now = Instant::now();
    let mut found: Vec<&CrmRecord> = store
        .list(object)
        .iter()
        .filter(|record| record.searchable_from <= now && selected(record, body))
        .collect();
    let (sort_by, descending) = sort_rule(body);
    found.sort_by(|a, b| {
        let order = compare(
            a.property(&sort_by),
            b.property(&sort_by).unwrap_or_default(),
        )
        .unwrap_or(Ordering::Less);
        if descending { order.reverse() } else { order }
    });
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    let offset = match body["after"].as_str().filter(|a| !a.is_empty()) {
        None => 0,
        Some(after) => match after.parse::<usize>() {
            Ok(offset) => offset,
            Err(_) => {
                return errors::validation_error("after must be an integer-formatted string", &[]);
            }
        },
    };
    if offset + limit > MAX_TOTAL {
        return errors::validation_error("Search results are limited to 10,000 per query", &[]);
    }
    let mut properties: Vec<String> = body["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    if properties.is_empty() {
        properties = default_properties(object)
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
    }
    let results: Vec<Value> = found
        .iter()
        .skip(offset)
        .take(limit)
        .map(|record| record.to_json(Some(&properties)))
        .collect();
    let mut answer = json!({"total": found.len(), "results": results});
    if offset + limit < found.len() {
        answer["paging"] = json!({"next": {"after": (offset + limit).to_string()}});
    }
    Reply::json(200, answer)
}
