//! Everything but records: owners, property definitions and groups, and
//! account details.

use serde_json::{Value, json};

use super::FakeConfig;
use super::errors::{self, Reply};
use super::routes::{Endpoint, ObjectType};
use super::seed;
use super::state::Store;

/// At most this many unique-value properties per object (§2.2 of the reference).
const MAX_UNIQUE: usize = 10;

/// `GET …/owners/?email=…&limit=…&after=…`: case-insensitive email match.
pub fn owners(store: &Store, query: &str) -> Reply {
    let param = |key: &str| {
        url_params(query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    };
    let email = param("email");
    let limit: usize = param("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let offset: usize = param("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let matching: Vec<Value> = store
        .owners
        .iter()
        .filter(|owner| {
            email
                .as_deref()
                .is_none_or(|e| owner.email.eq_ignore_ascii_case(e))
        })
        .map(|owner| owner.to_json())
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).cloned().collect();
    let mut answer = json!({"results": page});
    if offset + limit < matching.len() {
        answer["paging"] = json!({"next": {"after": (offset + limit).to_string()}});
    }
    Reply::json(200, answer)
}

/// Decoded `key=value` pairs of a query string.
pub fn url_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn property_missing(object: ObjectType, name: &str) -> Reply {
    let message = format!(
        "Unable to find property named '{name}' for object type {}",
        object.segment()
    );
    errors::error(404, "OBJECT_NOT_FOUND", &message)
}

/// The property endpoints and account details.
pub fn handle(
    store: &mut Store,
    config: &FakeConfig,
    endpoint: Endpoint,
    name: Option<&str>,
    body: &Value,
) -> Reply {
    match endpoint {
        Endpoint::PropertiesList(object) => {
            let all: Vec<Value> = store
                .properties
                .get(&object)
                .into_iter()
                .flat_map(|p| p.values().cloned())
                .collect();
            Reply::json(200, json!({"results": all}))
        }
        Endpoint::PropertyGet(object) => {
            let name = name.unwrap_or_default();
            match store.property(object, name) {
                Some(property) => Reply::json(200, property.clone()),
                None => property_missing(object, name),
            }
        }
        Endpoint::PropertyCreate(object) => create_property(store, object, body),
        Endpoint::PropertiesBatchRead(object) => {
            let (mut results, mut missing) = (Vec::new(), Vec::new());
            for input in body["inputs"].as_array().into_iter().flatten() {
                let name = input["name"].as_str().unwrap_or_default();
                match store.property(object, name) {
                    Some(property) => results.push(property.clone()),
                    None => missing.push(name.to_owned()),
                }
            }
            let errors: Vec<Value> = missing
                .iter()
                .map(|name| {
                    let message = format!("Unable to find property named '{name}'");
                    errors::standard_error(
                        "OBJECT_NOT_FOUND",
                        &message,
                        json!({"properties": [name]}),
                    )
                })
                .collect();
            super::batch::envelope(200, results, errors, false)
        }
        Endpoint::GroupsList(object) => {
            let all: Vec<Value> = store
                .groups
                .get(&object)
                .into_iter()
                .flat_map(|g| g.values().cloned())
                .collect();
            Reply::json(200, json!({"results": all}))
        }
        Endpoint::GroupCreate(object) => {
            let name = body["name"].as_str().unwrap_or_default();
            let groups = store.groups.entry(object).or_default();
            if groups.contains_key(name) {
                let message = format!("A property group named '{name}' already exists.");
                return errors::error(409, "CONFLICT", &message);
            }
            let order = body["displayOrder"].as_i64().unwrap_or(-1);
            let group = seed::group_body(name, body["label"].as_str().unwrap_or(name), order);
            groups.insert(name.to_owned(), group.clone());
            Reply::json(201, group)
        }
        Endpoint::AccountDetails => Reply::json(
            200,
            json!({
                "portalId": config.portal_id, "accountType": "STANDARD",
                "timeZone": config.time_zone, "companyCurrency": "USD",
                "additionalCurrencies": [], "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18_000_000, "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }),
        ),
        other => errors::error(
            500,
            "ERROR",
            &format!("fake HubSpot: {other} is not a meta endpoint"),
        ),
    }
}

fn create_property(store: &mut Store, object: ObjectType, body: &Value) -> Reply {
    let name = body["name"].as_str().unwrap_or_default();
    if store.property(object, name).is_some() {
        let message = format!("Property named '{name}' already exists.");
        return errors::error(409, "CONFLICT", &message);
    }
    let group = body["groupName"].as_str().unwrap_or_default();
    if !store
        .groups
        .get(&object)
        .is_some_and(|g| g.contains_key(group))
    {
        let message = format!("Property group '{group}' does not exist");
        return errors::validation_error(&message, &[]);
    }
    let (kind, field_type) = (
        body["type"].as_str().unwrap_or_default(),
        body["fieldType"].as_str().unwrap_or_default(),
    );
    if !seed::field_type_fits(kind, field_type) {
        let message = format!("fieldType '{field_type}' is not valid for type '{kind}'");
        return errors::validation_error(&message, &[]);
    }
    let unique = body["hasUniqueValue"] == json!(true);
    let unique_count = store.properties.get(&object).map_or(0, |p| {
        p.values()
            .filter(|p| p["hasUniqueValue"] == json!(true))
            .count()
    });
    if unique && unique_count >= MAX_UNIQUE {
        let message = format!("At most {MAX_UNIQUE} unique-value properties per object");
        return errors::validation_error(&message, &[]);
    }
    let property = seed::property_body(body, false, false);
    store
        .properties
        .entry(object)
        .or_default()
        .insert(name.to_owned(), property.clone());
    Reply::json(201, property).with_header(
        "Location",
        format!("/crm/v3/properties/{}/{name}", object.segment()),
    )
}
