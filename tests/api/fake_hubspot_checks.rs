//! Tests of the fake HubSpot itself, over real HTTP with reqwest.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_hubspot::{Endpoint, FakeConfig, FakeHubSpot, Fault, ObjectType, RateLimit};

const COMPANIES_V3: &str = "/crm/v3/objects/companies";
const COMPANIES_DATED: &str = "/crm/objects/2026-03/companies";

/// A request with the fake's token.
fn request(fake: &FakeHubSpot, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", fake.base_url());
    reqwest::Client::new()
        .request(method, url)
        .bearer_auth(fake.token())
}

/// POSTs `body`; status and JSON body (null when the body is not JSON).
async fn post(fake: &FakeHubSpot, path: &str, body: Value) -> (u16, Value) {
    let response = request(fake, reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// GETs `path`; the raw response.
async fn get(fake: &FakeHubSpot, path: &str) -> reqwest::Response {
    request(fake, reqwest::Method::GET, path)
        .send()
        .await
        .unwrap()
}

fn read_by_duns(duns: &[&str]) -> Value {
    let inputs: Vec<Value> = duns.iter().map(|d| json!({"id": d})).collect();
    json!({"idProperty": "duns_number", "inputs": inputs,
           "properties": ["name", "duns_number", "hubspot_owner_id"], "propertiesWithHistory": []})
}

fn company_input(name: &str, duns: &str, trace: &str) -> Value {
    json!({"properties": {"name": name, "duns_number": duns}, "associations": [], "objectWriteTraceId": trace})
}

fn sorted_duns(answer: &Value) -> Vec<&str> {
    let results = answer["results"].as_array().unwrap();
    let mut duns: Vec<&str> = results
        .iter()
        .map(|r| r["properties"]["duns_number"].as_str().unwrap())
        .collect();
    duns.sort_unstable();
    duns
}

#[tokio::test]
async fn a_batch_read_by_duns_finds_seeded_companies_on_both_path_families() {
    // Arrange
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    let acme = fake.add_company([("name", "Acme"), ("duns_number", "081466849")]);
    fake.add_company([("name", "Globex"), ("duns_number", "150483782")]);
    let body = read_by_duns(&["081466849", "150483782"]);

    // Act
    let (v3_status, v3) = post(&fake, &format!("{COMPANIES_V3}/batch/read"), body.clone()).await;
    let (dated_status, dated) = post(&fake, &format!("{COMPANIES_DATED}/batch/read"), body).await;
    let partial = read_by_duns(&["081466849", "999999999"]);
    let (partial_status, partial) =
        post(&fake, &format!("{COMPANIES_V3}/batch/read"), partial).await;

    // Assert
    assert_eq!((v3_status, dated_status), (200, 200), "{v3} {dated}");
    assert_eq!(sorted_duns(&v3), ["081466849", "150483782"]);
    assert_eq!(sorted_duns(&dated), ["081466849", "150483782"]);
    let first = v3["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == json!(acme))
        .unwrap();
    assert_eq!(first["properties"]["hs_object_id"], json!(acme));
    assert_eq!(first["properties"]["hubspot_owner_id"], Value::Null);
    assert_eq!(
        (first["archived"].as_bool(), v3["status"].as_str()),
        (Some(false), Some("COMPLETE"))
    );
    assert_eq!(partial_status, 207);
    assert_eq!(sorted_duns(&partial), ["081466849"]);
    assert_eq!(partial["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(partial["errors"][0]["context"]["ids"], json!(["999999999"]));
    assert_eq!(fake.calls(Endpoint::BatchRead(ObjectType::Companies)), 3);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_create_input_without_properties_is_recorded_as_a_violation() {
    // Arrange
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    if !fake.validating() {
        eprintln!("skipped: no OpenAPI specs, so no validation");
        return;
    }
    let body = json!({"inputs": [{"associations": []}]});

    // Act
    let (status, answer) = post(&fake, &format!("{COMPANIES_V3}/batch/create"), body).await;

    // Assert
    assert_eq!(
        (status, answer["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    let violations = fake.violations();
    assert_eq!(violations.len(), 1);
    let problem = &violations[0].problems[0];
    assert!(
        problem.contains("\"properties\" is a required property"),
        "{problem}"
    );
    assert!(fake.companies().is_empty());
    assert!(std::panic::catch_unwind(|| fake.assert_no_violations()).is_err());
}

#[tokio::test]
async fn a_note_created_without_the_relaxed_fields_conforms_and_is_found_by_token() {
    // Arrange
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Acme")]);
    let note = json!({"inputs": [{"properties": {"hs_timestamp": "2026-08-21T10:00:00Z",
        "hs_note_body": "D&B UPDATE (ref n7f3a)"}, "associations": [{"to": {"id": company},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 190}]}]}]});
    let search = json!({"filterGroups": [{"filters": [{"propertyName": "hs_note_body",
        "operator": "CONTAINS_TOKEN", "value": "N7F3A"}]}], "properties": ["hs_note_body"],
        "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}]});
    let read = json!({"inputs": [{"id": company}], "properties": []});

    // Act
    let (note_status, _) = post(&fake, "/crm/objects/2026-03/notes/batch/create", note).await;
    let (search_status, found) = post(&fake, "/crm/v3/objects/notes/search", search).await;
    let (read_status, _) = post(&fake, &format!("{COMPANIES_V3}/batch/read"), read).await;

    // Assert
    assert_eq!((note_status, search_status, read_status), (201, 200, 200));
    assert_eq!(found["total"], 1);
    assert_eq!(fake.notes()[0].associations[0].type_id, 190);
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_rolling_window_answers_429_past_the_limit() {
    // Arrange
    let limit = RateLimit {
        max: 3,
        interval: Duration::from_secs(10),
    };
    let fake = FakeHubSpot::start(FakeConfig {
        rate_limit: limit,
        ..FakeConfig::default()
    })
    .await;
    let mut remaining = Vec::new();

    // Act
    for _ in 0..3 {
        let response = get(&fake, "/account-info/v3/details").await;
        assert_eq!(response.status(), 200);
        remaining.push(response.headers()["x-hubspot-ratelimit-remaining"].clone());
    }
    let refused = get(&fake, "/account-info/2026-03/details").await;

    // Assert
    assert_eq!(remaining, ["2", "1", "0"]);
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(
        body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(fake.throttled(), 1);
}

#[tokio::test]
async fn search_does_not_see_a_company_until_the_lag_has_passed() {
    // Arrange
    let lag = Duration::from_millis(300);
    let fake = FakeHubSpot::start(FakeConfig {
        search_lag: lag,
        ..FakeConfig::default()
    })
    .await;
    let create = json!({"inputs": [company_input("Acme", "081466849", "t1")]});
    let search = json!({"filterGroups": [{"filters": [{"propertyName": "duns_number",
        "operator": "IN", "values": ["081466849"]}]}], "properties": ["duns_number"], "limit": 100});
    let (created, _) = post(&fake, &format!("{COMPANIES_V3}/batch/create"), create).await;

    // Act
    let (_, early) = post(&fake, &format!("{COMPANIES_V3}/search"), search.clone()).await;
    tokio::time::sleep(lag + Duration::from_millis(50)).await;
    let (_, late) = post(&fake, &format!("{COMPANIES_DATED}/search"), search).await;

    // Assert
    assert_eq!(created, 201);
    assert_eq!(early["total"], 0);
    assert_eq!(late["total"], 1);
    assert_eq!(late["results"][0]["properties"]["duns_number"], "081466849");
    fake.assert_no_violations();
}

#[tokio::test]
async fn apply_then_drop_applies_the_write_without_answering() {
    // Arrange
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    fake.fail_next(
        Endpoint::BatchCreate(ObjectType::Companies),
        1,
        Fault::ApplyThenDrop,
    );
    let create = json!({"inputs": [company_input("Acme", "081466849", "t1")]});
    let path = format!("{COMPANIES_DATED}/batch/create");

    // Act
    let outcome = request(&fake, reqwest::Method::POST, &path)
        .timeout(Duration::from_secs(5))
        .json(&create)
        .send()
        .await;

    // Assert
    let error = outcome.expect_err("no answer");
    assert!(
        !error.is_timeout(),
        "the connection is closed, not left hanging: {error}"
    );
    let stored = fake
        .company_by("duns_number", "081466849")
        .expect("write applied");
    assert_eq!(stored.property("name"), Some("Acme"));
    assert_eq!(fake.requests()[0].status, None);
}

#[tokio::test]
async fn delayed_and_garbled_answers_still_apply_the_write() {
    // Arrange
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    let create = Endpoint::BatchCreate(ObjectType::Companies);
    fake.fail_next(create, 1, Fault::Delay(Duration::from_millis(500)));
    fake.fail_next(create, 1, Fault::InvalidJson);
    let path = format!("{COMPANIES_V3}/batch/create");
    let body = |duns: &str| json!({"inputs": [company_input("Acme", duns, "t1")]});

    // Act
    let delayed = request(&fake, reqwest::Method::POST, &path)
        .timeout(Duration::from_millis(100))
        .json(&body("081466849"))
        .send()
        .await;
    let garbled = request(&fake, reqwest::Method::POST, &path)
        .json(&body("150483782"))
        .send()
        .await;

    // Assert
    assert!(delayed.expect_err("client gave up").is_timeout());
    let garbled = garbled.unwrap();
    assert_eq!(garbled.status(), 200);
    assert!(garbled.json::<Value>().await.is_err());
    assert_eq!(fake.companies().len(), 2);
}

#[tokio::test]
async fn the_same_id_twice_in_a_batch_update_fails_the_whole_request() {
    // Arrange
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    let id = fake.add_company([("name", "Acme")]);
    let update = json!({"inputs": [{"id": id, "properties": {"name": "A"}},
                                   {"id": id, "properties": {"name": "B"}}]});

    // Act
    let (status, answer) = post(&fake, &format!("{COMPANIES_V3}/batch/update"), update).await;

    // Assert
    assert_eq!(status, 400);
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.starts_with("Duplicate IDs found in batch input"),
        "{message}"
    );
    assert_eq!(answer["context"]["ids"], json!([id]));
    assert_eq!(fake.company(&id).unwrap().property("name"), Some("Acme"));
}

#[tokio::test]
async fn a_taken_duns_and_a_wrong_association_type_are_per_input_errors() {
    // Arrange
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Acme"), ("duns_number", "081466849")]);
    let companies = json!({"inputs": [company_input("Dup", "081466849", "c1"),
                                      company_input("New", "150483782", "c2")]});
    let task = |type_id: i64, trace: &str| {
        json!({"properties": {"hs_timestamp": "2026-08-28T09:00:00Z", "hs_task_subject": "s"},
            "associations": [{"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": type_id}]}], "objectWriteTraceId": trace})
    };
    let tasks = json!({"inputs": [task(192, "t1"), task(190, "t2")]});

    // Act
    let (company_status, companies) =
        post(&fake, &format!("{COMPANIES_V3}/batch/create"), companies).await;
    let (task_status, tasks) = post(&fake, "/crm/v3/objects/tasks/batch/create", tasks).await;

    // Assert
    assert_eq!((company_status, task_status), (207, 207));
    assert_eq!(companies["errors"][0]["category"], "CONFLICT");
    assert_eq!(
        companies["errors"][0]["context"]["objectWriteTraceId"],
        json!(["c1"])
    );
    assert_eq!(
        tasks["errors"][0]["context"]["objectWriteTraceId"],
        json!(["t2"])
    );
    assert_eq!((fake.companies().len(), fake.tasks().len()), (2, 1));
    assert_eq!(fake.tasks()[0].associations[0].to_id, company);
}

#[tokio::test]
async fn auth_scopes_owners_properties_and_account_details_answer_like_hubspot() {
    // Arrange
    let scopes = vec!["crm.objects.owners.read".to_owned()];
    let fake = FakeHubSpot::start(FakeConfig {
        missing_scopes: scopes,
        ..FakeConfig::default()
    })
    .await;
    let open = FakeHubSpot::start(FakeConfig::default()).await;
    let owner = open.add_owner("rep@acme.com");
    fake.fail_next(Endpoint::AccountDetails, 1, Fault::rate_limited(Some(3)));
    let property = json!({"name": "dnb_last_alert_type", "label": "Last D&B alert",
        "type": "string", "fieldType": "text", "groupName": "companyinformation"});

    // Act
    let anonymous = reqwest::get(format!("{}/crm/v3/owners/", fake.base_url()))
        .await
        .unwrap();
    let denied = get(&fake, "/crm/owners/2026-03/?email=rep%40acme.com").await;
    let owners: Value = get(&open, "/crm/v3/owners/?email=Rep%40Acme.com")
        .await
        .json()
        .await
        .unwrap();
    let limited = get(&fake, "/account-info/v3/details").await;
    let details: Value = get(&fake, "/account-info/v3/details")
        .await
        .json()
        .await
        .unwrap();
    let (created, _) = post(&open, "/crm/v3/properties/companies", property.clone()).await;
    let (again, conflict) = post(&open, "/crm/properties/2026-03/companies", property).await;
    let missing = get(&open, "/crm/v3/properties/companies/nope")
        .await
        .status();

    // Assert
    assert_eq!(
        (anonymous.status().as_u16(), denied.status().as_u16()),
        (401, 403)
    );
    let denied: Value = denied.json().await.unwrap();
    assert_eq!(denied["category"], "MISSING_SCOPES");
    assert_eq!(owners["results"][0]["id"], json!(owner));
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers()["retry-after"], "3");
    assert_eq!(
        (details["portalId"].as_i64(), details["timeZone"].as_str()),
        (Some(12_345_678), Some("US/Eastern"))
    );
    assert_eq!((created, again, missing.as_u16()), (201, 409, 404));
    assert_eq!(conflict["category"], "CONFLICT");
    assert!(open.property("dnb_last_alert_type").is_some());
    fake.assert_no_violations();
    open.assert_no_violations();
}
