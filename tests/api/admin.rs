//! Operator endpoints: auth, listing with filters and cursors, detail, replay.

use secrecy::SecretString;
use serde_json::{Value, json};

use crate::fake_hubspot::FakeConfig;
use crate::helpers::*;

const TOKEN: &str = "admin-token-for-tests";

async fn admin_app() -> TestApp {
    spawn_configured_app(|settings| settings.admin.token = SecretString::from(TOKEN)).await
}

async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin_replay(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/replay"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admin_endpoints_are_404_without_a_configured_token_and_401_without_the_right_one() {
    let closed = spawn_app().await;
    for path in ["/notifications", "/notifications/1"] {
        assert_eq!(
            closed
                .client
                .get(closed.url(path))
                .bearer_auth("x")
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    let app = admin_app().await;
    app.accept(sample("exit.json"), "application/json").await;
    let missing = app
        .client
        .get(app.url("/notifications"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let wrong = app
        .client
        .get(app.url("/notifications"))
        .bearer_auth("admin-token-for-test")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let replay = app
        .client
        .post(app.url("/replay"))
        .bearer_auth("nope")
        .json(&json!({"filter": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    assert_eq!(app.count("SELECT count(*) FROM replays"), 0);
}

#[tokio::test]
async fn listing_filters_and_pages_through_a_few_hundred_notifications() {
    let app = admin_app().await;
    let items: Vec<Value> = (0..300)
        .map(|index| {
            notification(
                if index % 3 == 0 { "DELETE" } else { "UPDATE" },
                &format!("{:09}", 100 + index % 50),
                &format!("2024-05-13T08:{:02}:{:02}.000Z", index / 60, index % 60),
            )
        })
        .collect();
    app.accept(serde_json::to_vec(&items).unwrap(), "application/json")
        .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        300,
    )
    .await;

    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/notifications?type=DELETE&limit=30&cursor={cursor}"),
            None => "/notifications?type=DELETE&limit=30".to_string(),
        };
        let (status, page) = admin_get(&app, &path).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["type"], "DELETE");
            assert_eq!(item["status"], "done");
            assert!(seen.insert(item["id"].as_str().unwrap().to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (100, 4));

    let (_, one_duns) = admin_get(&app, "/notifications?duns=000000100&limit=1000").await;
    assert_eq!(one_duns["items"].as_array().unwrap().len(), 6);
    let (_, future) = admin_get(&app, "/notifications?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["items"], json!([]));
    let (_, past) = admin_get(&app, "/notifications?until=2000-01-01T00:00:00Z").await;
    assert_eq!(past["items"], json!([]));
    let (_, default_page) = admin_get(&app, "/notifications").await;
    assert_eq!(default_page["items"].as_array().unwrap().len(), 100);
    let (status, empty_cursor) = admin_get(&app, "/notifications?cursor=").await;
    assert_eq!((status, &empty_cursor), (200, &default_page));

    for (query, parameter) in [
        ("limit=1001", "limit"),
        ("limit=0", "limit"),
        ("status=finished", "status"),
        ("since=yesterday", "since"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("duns=12", "duns"),
        ("type=MERGE", "type"),
        ("limit=", "limit"),
        ("status=", "status"),
        ("since=", "since"),
        ("until=", "until"),
        ("duns=", "duns"),
        ("type=", "type"),
    ] {
        let (status, body) = admin_get(&app, &format!("/notifications?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["message"].as_str().unwrap().contains(parameter),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn a_notification_shows_its_payload_history_attempts_and_planned_objects() {
    let app = admin_app().await;
    let answer = app.accept(sample("delete.json"), "application/json").await;
    let id = answer["ids"][0].as_str().unwrap().to_string();
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;

    let (status, detail) = admin_get(&app, &format!("/notifications/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["id"], id.as_str());
    assert_eq!(detail["notification"]["type"], "DELETE");
    assert_eq!(detail["dry_run"], true);
    let statuses: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "done"]);
    assert_eq!(detail["attempt_log"][0]["outcome"], "done");
    let actions: Vec<&str> = detail["hubspot_objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create_task", "create_note", "update_property"]);
    assert!(
        detail["hubspot_objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|object| object["state"] == "planned")
    );
    assert_eq!(admin_get(&app, "/notifications/999999").await.0, 404);
    assert_eq!(admin_get(&app, "/notifications/not-an-id").await.0, 404);
}

#[tokio::test]
async fn replay_by_ids_and_by_filter_counts_first_and_is_idempotent() {
    let app = admin_app().await;
    let answer = app.accept(sample("update.json"), "application/json").await;
    let ids: Vec<String> = answer["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        2,
    )
    .await;

    let (status, dry) =
        admin_replay(&app, json!({"filter": {"type": "UPDATE"}, "dry_run": true})).await;
    assert_eq!(status, 200);
    assert_eq!(
        dry,
        json!({"matched": 2, "enqueued": 0, "unknown_ids": [], "dry_run": true})
    );
    assert_eq!(app.count("SELECT count(*) FROM replays"), 0);
    // Null fields are fields left out: no bound, no ids, no filter.
    let (status, unbounded) = admin_replay(
        &app,
        json!({"ids": null, "filter": {"type": "UPDATE", "status": null, "duns": null,
            "since": null, "until": null}, "dry_run": true}),
    )
    .await;
    assert_eq!((status, &unbounded), (200, &dry));
    let numeric: i64 = ids[0].parse().unwrap();
    let (status, by_number) = admin_replay(
        &app,
        json!({"ids": [numeric, numeric as f64], "filter": null, "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{by_number}");
    assert_eq!(
        (
            by_number["matched"].as_u64(),
            by_number["unknown_ids"].clone()
        ),
        (Some(1), json!([]))
    );
    assert_eq!(app.count("SELECT count(*) FROM replays"), 0);

    let (_, replayed) = admin_replay(&app, json!({"ids": [ids[0], "424242", "x-1"]})).await;
    assert_eq!(replayed["matched"], 1);
    assert_eq!(replayed["enqueued"], 1);
    assert_eq!(replayed["unknown_ids"], json!(["424242", "x-1"]));
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        2,
    )
    .await;
    app.wait_for_count(
        &format!("SELECT attempts FROM notifications WHERE id = {}", ids[0]),
        2,
    )
    .await;

    // Two replays of the same notification before a worker takes it enqueue it once.
    let first = app
        .client
        .post(app.url("/replay"))
        .bearer_auth(TOKEN)
        .json(&json!({"ids": [ids[1]]}));
    let second = app
        .client
        .post(app.url("/replay"))
        .bearer_auth(TOKEN)
        .json(&json!({"ids": [ids[1]]}));
    let (first, second) = tokio::join!(first.send(), second.send());
    let enqueued = first.unwrap().json::<Value>().await.unwrap()["enqueued"]
        .as_u64()
        .unwrap()
        + second.unwrap().json::<Value>().await.unwrap()["enqueued"]
            .as_u64()
            .unwrap();
    assert!(enqueued >= 1);
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        2,
    )
    .await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM replays WHERE notification_id = {}",
            ids[1]
        )),
        enqueued as i64
    );

    for (body, named) in [
        (json!({}), "body"),
        (json!({"ids": ["1"], "filter": {}}), "body"),
        (json!({"ids": null, "filter": null}), "body"),
        (json!({"filter": {"status": "nope"}}), "filter.status"),
        (json!({"filter": {"since": ""}}), "filter.since"),
        (json!({"ids": ["1", null]}), "ids[1]"),
        (json!({"ids": [1.5]}), "ids[0]"),
        (json!({"ids": [{"id": "1"}]}), "ids[0]"),
    ] {
        let (status, answer) = admin_replay(&app, body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(named),
            "{body} → {answer}"
        );
    }
}

#[tokio::test]
async fn a_replayed_dead_notification_reaches_done_without_duplicating_hubspot_objects() {
    let fake = crate::hubspot::portal(FakeConfig::default()).await;
    fake.add_company([("name", "Delete Co"), ("duns_number", "735019482")]);
    // HubSpot refuses the task once: the notification is dead (invalid), its company update done.
    fake.fail_next(
        crate::fake_hubspot::Endpoint::BatchCreate(crate::fake_hubspot::ObjectType::Tasks),
        1,
        crate::fake_hubspot::Fault::validation_error("Property values were not valid"),
    );
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    let app = spawn_configured_app(move |settings| {
        settings.admin.token = SecretString::from(TOKEN);
        crate::hubspot::point_at(settings, &base_url, &token);
    })
    .await;
    app.accept(sample("delete.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'dead'",
        1,
    )
    .await;
    let updates_before = fake.calls(crate::fake_hubspot::Endpoint::BatchUpdate(
        crate::fake_hubspot::ObjectType::Companies,
    ));

    let (_, replayed) = admin_replay(&app, json!({"filter": {"status": "dead"}})).await;
    assert_eq!(
        (replayed["matched"].as_u64(), replayed["enqueued"].as_u64()),
        (Some(1), Some(1))
    );
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;

    assert_eq!((fake.tasks().len(), fake.notes().len()), (1, 1));
    assert_eq!(
        fake.calls(crate::fake_hubspot::Endpoint::BatchUpdate(
            crate::fake_hubspot::ObjectType::Companies
        )),
        updates_before,
        "the company update was a checkpoint and was not sent again"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_replayed_notification_reaches_done_again_without_duplicating_hubspot_objects() {
    let fake = crate::hubspot::portal(FakeConfig::default()).await;
    fake.add_company([("name", "Exit Co"), ("duns_number", "350126679")]);
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    let app = spawn_configured_app(move |settings| {
        settings.admin.token = SecretString::from(TOKEN);
        crate::hubspot::point_at(settings, &base_url, &token);
    })
    .await;
    let id = app.accept(sample("exit.json"), "application/json").await["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;

    let (_, replayed) = admin_replay(&app, json!({"ids": [id]})).await;
    assert_eq!(replayed["enqueued"], 1);
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done' AND attempts = 2",
        1,
    )
    .await;
    assert_eq!((fake.tasks().len(), fake.notes().len()), (1, 1));
    fake.assert_no_violations();
}
