//! The default portal: HubSpot's built-in company, task and note properties,
//! the custom unique `duns_number`, and the default property groups.

use chrono::Utc;
use serde_json::{Value, json};

use super::routes::ObjectType;
use super::state::{Store, timestamp};

/// Built-in company properties: (name, type, fieldType, read-only).
const COMPANY_BUILTINS: &[(&str, &str, &str, bool)] = &[
    ("name", "string", "text", false),
    ("domain", "string", "text", false),
    ("website", "string", "text", false),
    ("phone", "string", "phonenumber", false),
    ("address", "string", "text", false),
    ("city", "string", "text", false),
    ("state", "string", "text", false),
    ("zip", "string", "text", false),
    ("country", "string", "text", false),
    ("industry", "enumeration", "select", false),
    ("description", "string", "textarea", false),
    ("numberofemployees", "number", "number", false),
    ("annualrevenue", "number", "number", false),
    ("lifecyclestage", "enumeration", "radio", false),
    ("hubspot_owner_id", "enumeration", "select", false),
    ("hs_object_id", "number", "number", true),
    ("createdate", "datetime", "date", true),
    ("hs_lastmodifieddate", "datetime", "date", true),
];

/// Built-in task properties.
const TASK_BUILTINS: &[(&str, &str, &str, bool)] = &[
    ("hs_timestamp", "datetime", "date", false),
    ("hs_task_subject", "string", "text", false),
    ("hs_task_body", "string", "html", false),
    ("hs_task_status", "enumeration", "select", false),
    ("hs_task_priority", "enumeration", "select", false),
    ("hs_task_type", "enumeration", "select", false),
    ("hs_task_reminders", "string", "text", false),
    ("hubspot_owner_id", "enumeration", "select", false),
    ("hs_object_id", "number", "number", true),
    ("createdate", "datetime", "date", true),
    ("hs_lastmodifieddate", "datetime", "date", true),
];

/// Built-in note properties.
const NOTE_BUILTINS: &[(&str, &str, &str, bool)] = &[
    ("hs_timestamp", "datetime", "date", false),
    ("hs_note_body", "string", "html", false),
    ("hs_attachment_ids", "enumeration", "checkbox", false),
    ("hubspot_owner_id", "enumeration", "select", false),
    ("hs_object_id", "number", "number", true),
    ("createdate", "datetime", "date", true),
    ("hs_lastmodifieddate", "datetime", "date", true),
];

/// Options of the task enumerations (third-party lists, see §6.1 of the reference).
pub const TASK_ENUMS: &[(&str, &[&str])] = &[
    (
        "hs_task_status",
        &[
            "NOT_STARTED",
            "IN_PROGRESS",
            "WAITING",
            "COMPLETED",
            "DEFERRED",
        ],
    ),
    ("hs_task_priority", &["NONE", "LOW", "MEDIUM", "HIGH"]),
    ("hs_task_type", &["EMAIL", "CALL", "TODO"]),
];

/// Which types go with which field types (§2.2 of the reference).
pub fn field_type_fits(kind: &str, field_type: &str) -> bool {
    let allowed: &[&str] = match kind {
        "string" => &[
            "text",
            "textarea",
            "html",
            "phonenumber",
            "file",
            "calculation_equation",
        ],
        "number" => &["number", "calculation_equation"],
        "date" | "datetime" => &["date"],
        "bool" => &["booleancheckbox"],
        "enumeration" => &["select", "radio", "checkbox", "booleancheckbox"],
        "phone_number" => &["phonenumber"],
        _ => &[],
    };
    allowed.contains(&field_type)
}

/// A HubSpot `Property` body built from a create input plus server fields.
pub fn property_body(input: &Value, hubspot_defined: bool, read_only: bool) -> Value {
    let at = timestamp(Utc::now());
    let mut body = json!({
        "name": input["name"], "label": input["label"], "type": input["type"],
        "fieldType": input["fieldType"], "groupName": input["groupName"],
        "description": input.get("description").cloned().unwrap_or(json!("")),
        "options": input.get("options").cloned().unwrap_or(json!([])),
        "displayOrder": input.get("displayOrder").cloned().unwrap_or(json!(-1)),
        "hasUniqueValue": input.get("hasUniqueValue").cloned().unwrap_or(json!(false)),
        "hidden": input.get("hidden").cloned().unwrap_or(json!(false)),
        "formField": input.get("formField").cloned().unwrap_or(json!(false)),
        "calculated": false, "externalOptions": false, "archived": false,
        "createdAt": at, "updatedAt": at,
        "modificationMetadata": {
            "archivable": !hubspot_defined, "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
    });
    if hubspot_defined {
        body["hubspotDefined"] = json!(true);
    }
    body
}

/// The `duns_number` definition of the default seed (unique string).
pub fn duns_property(name: &str, unique: bool) -> Value {
    property_body(
        &json!({
            "name": name, "label": name, "type": "string", "fieldType": "text",
            "groupName": "companyinformation", "hasUniqueValue": unique,
        }),
        false,
        false,
    )
}

/// A HubSpot `PropertyGroup` body.
pub fn group_body(name: &str, label: &str, display_order: i64) -> Value {
    json!({"name": name, "label": label, "displayOrder": display_order, "archived": false})
}

fn builtin(name: &str, kind: &str, field_type: &str, read_only: bool) -> Value {
    let options: Vec<Value> = TASK_ENUMS
        .iter()
        .find(|(enum_name, _)| *enum_name == name)
        .map(|(_, values)| {
            values.iter().enumerate().map(|(order, value)| {
            json!({"label": value, "value": value, "hidden": false, "displayOrder": order})
        }).collect()
        })
        .unwrap_or_default();
    let input = json!({
        "name": name, "label": name, "type": kind, "fieldType": field_type,
        "groupName": "default", "options": options,
    });
    property_body(&input, true, read_only)
}

/// Fills a store with the default portal.
pub fn default_portal(store: &mut Store) {
    for (object, builtins, group) in [
        (
            ObjectType::Companies,
            COMPANY_BUILTINS,
            "companyinformation",
        ),
        (ObjectType::Tasks, TASK_BUILTINS, "task"),
        (ObjectType::Notes, NOTE_BUILTINS, "engagement"),
    ] {
        let properties = store.properties.entry(object).or_default();
        for &(name, kind, field_type, read_only) in builtins {
            let mut body = builtin(name, kind, field_type, read_only);
            body["groupName"] = json!(group);
            properties.insert(name.to_owned(), body);
        }
        let groups = store.groups.entry(object).or_default();
        groups.insert(group.to_owned(), group_body(group, group, 0));
    }
    let companies = store.properties.entry(ObjectType::Companies).or_default();
    companies.insert("duns_number".into(), duns_property("duns_number", true));
    let groups = store.groups.entry(ObjectType::Companies).or_default();
    groups.insert(
        "companyinformation".into(),
        group_body("companyinformation", "Company information", 0),
    );
}
