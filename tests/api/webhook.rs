//! `POST /webhooks/dnb`: signatures, body shapes, rejected items, duplicates and refusals.

use serde_json::{Value, json};

use crate::helpers::*;

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

fn journal_rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM notifications")
}

async fn rejected_metric(app: &TestApp, reason: &str) -> f64 {
    let (_, text) = app.get("/metrics").await;
    metric(
        &text,
        &format!("bridge_webhook_rejected_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn valid_signature_is_accepted_and_journaled_before_the_answer() {
    // Arrange
    let app = spawn_app().await;
    // Act
    let answer = app.accept(sample("delete.json"), JSON).await;
    // Assert
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["duplicates"], 0);
    assert_eq!(answer["rejected"], json!([]));
    let id: i64 = answer["ids"][0].as_str().unwrap().parse().unwrap();
    assert_eq!(app.count(&format!("SELECT count(*) FROM notifications WHERE id = {id} AND type = 'DELETE' AND duns = '735019482'")), 1);
}

#[tokio::test]
async fn second_secret_of_a_rotation_is_accepted() {
    let app = spawn_app().await;
    let response = app
        .post_webhook_as(
            sample("exit.json"),
            JSON,
            &new_webhook_id(),
            now_secs(),
            ROTATED_SECRET,
        )
        .await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn bad_signatures_are_401_store_nothing_and_are_counted() {
    let app = spawn_app().await;
    let body = sample("exit.json");
    let wrong_secret = "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==";

    let cases: Vec<(&str, reqwest::Response)> = vec![
        (
            "invalid_signature",
            app.post_webhook_as(
                body.clone(),
                JSON,
                &new_webhook_id(),
                now_secs(),
                wrong_secret,
            )
            .await,
        ),
        (
            "timestamp_out_of_tolerance",
            app.post_webhook_as(
                body.clone(),
                JSON,
                &new_webhook_id(),
                now_secs() - 301,
                SECRET,
            )
            .await,
        ),
        (
            "timestamp_out_of_tolerance",
            app.post_webhook_as(
                body.clone(),
                JSON,
                &new_webhook_id(),
                now_secs() + 301,
                SECRET,
            )
            .await,
        ),
    ];
    for (reason, response) in cases {
        assert_eq!(response.status(), 401, "{reason}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "unauthorized");
    }

    // A body changed after signing.
    let id = new_webhook_id();
    let timestamp = now_secs();
    let signature = sign(SECRET, &id, timestamp, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let response = app
        .client
        .post(app.url("/webhooks/dnb"))
        .header("content-type", JSON)
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Missing headers.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let id = new_webhook_id();
        let mut request = app
            .client
            .post(app.url("/webhooks/dnb"))
            .header("content-type", JSON)
            .body(body.clone());
        for (name, value) in [
            ("webhook-id", id.clone()),
            ("webhook-timestamp", now_secs().to_string()),
            ("webhook-signature", sign(SECRET, &id, now_secs(), &body)),
        ] {
            if name != missing {
                request = request.header(name, value);
            }
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            401,
            "without {missing}"
        );
    }

    assert_eq!(journal_rows(&app), 0);
    assert_eq!(rejected_metric(&app, "invalid_signature").await, 2.0);
    assert_eq!(
        rejected_metric(&app, "timestamp_out_of_tolerance").await,
        2.0
    );
    assert_eq!(
        rejected_metric(&app, "missing_signature_headers").await,
        3.0
    );
}

#[tokio::test]
async fn every_body_shape_is_accepted() {
    let app = spawn_app().await;
    let pull: Value = serde_json::from_slice(&sample("update.json")).unwrap();

    let answer = app
        .accept(sample("update.json"), "application/json; charset=utf-8")
        .await;
    assert_eq!(answer["accepted"], 2, "pull response");

    let single = serde_json::to_vec(
        &serde_json::from_slice::<Value>(&sample("reviewed.json")).unwrap()["notifications"][0],
    )
    .unwrap();
    assert_eq!(
        app.accept(single, JSON).await["accepted"],
        1,
        "single object"
    );

    let array = serde_json::to_vec(
        &serde_json::from_slice::<Value>(&sample("transfer.json")).unwrap()["notifications"],
    )
    .unwrap();
    assert_eq!(app.accept(array, JSON).await["accepted"], 2, "array");

    let answer = app
        .accept(sample(NDJSON_SAMPLE), "application/x-ndjson; charset=utf-8")
        .await;
    assert_eq!(answer["ids"].as_array().unwrap().len(), 21, "ndjson");
    assert_eq!(
        answer["accepted"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap(),
        21
    );
    assert_eq!(pull["notifications"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn both_ndjson_seeds_of_one_duns_are_accepted() {
    // The sample has two SEEDs for 735019482 that differ only in deliveryTimeStamp.
    let app = spawn_app().await;
    let answer = app.accept(sample(NDJSON_SAMPLE), NDJSON).await;
    assert_eq!(answer["accepted"], 21);
    assert_eq!(answer["duplicates"], 0);
    assert_eq!(
        app.count("SELECT count(*) FROM notifications WHERE type = 'SEED' AND duns = '735019482'"),
        2
    );
}

#[tokio::test]
async fn invalid_items_are_kept_as_rejected_while_the_others_are_accepted() {
    let app = spawn_app().await;
    let body = json!({"notifications": [
        notification("DELETE", "123456789", "2024-05-13T08:00:00.000Z"),
        notification("DELETE", "12345", "2024-05-13T08:00:00.000Z"),
        notification("MERGE", "123456789", "2024-05-13T08:00:00.000Z"),
        {"type": "UPDATE", "deliveryTimeStamp": "2024-05-13T08:00:00.000Z"},
        notification("EXIT", "987654321", "2024-05-13T08:00:00.000Z"),
    ]});
    let answer = app.accept(serde_json::to_vec(&body).unwrap(), JSON).await;

    assert_eq!(answer["accepted"], 2);
    let reasons: Vec<(u64, &str)> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["index"].as_u64().unwrap(),
                item["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (1, "invalid_duns"),
            (2, "unknown_type"),
            (3, "missing_organization")
        ]
    );
    assert!(
        answer["ids"][1].is_null() && answer["ids"][0].is_string() && answer["ids"][4].is_string()
    );
    assert_eq!(app.count("SELECT count(*) FROM notifications WHERE status = 'rejected' AND reason IS NOT NULL AND last_error IS NOT NULL"), 3);
    assert_eq!(rejected_metric(&app, "invalid_duns").await, 1.0);
}

#[tokio::test]
async fn an_unparsable_ndjson_line_is_rejected_by_index() {
    let app = spawn_app().await;
    let good = serde_json::to_string(&notification(
        "EXIT",
        "111222333",
        "2024-05-13T08:00:00.000Z",
    ))
    .unwrap();
    let body = format!("{good}\n{{\"type\": \"EXIT\", oops\n");
    let answer = app.accept(body, NDJSON).await;
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["index"], 1);
    assert_eq!(answer["rejected"][0]["reason"], "invalid_json");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM notifications WHERE status = 'rejected' AND raw LIKE '%oops%'"
        ),
        1
    );
}

#[tokio::test]
async fn redelivered_webhook_id_is_counted_as_duplicate_with_the_same_ids() {
    let app = spawn_app().await;
    let id = new_webhook_id();
    let first: Value = app
        .post_webhook_as(sample("update.json"), JSON, &id, now_secs(), SECRET)
        .await
        .json()
        .await
        .unwrap();
    let again = app
        .post_webhook_as(sample("update.json"), JSON, &id, now_secs(), SECRET)
        .await;
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["accepted"], 0);
    assert_eq!(again["duplicates"], 2);
    assert_eq!(again["ids"], first["ids"]);
    assert_eq!(journal_rows(&app), 2);
}

/// Posts `body` signed with the test secret, its headers named `{prefix}id`,
/// `{prefix}timestamp` and `{prefix}signature`.
async fn post_with_headers(app: &TestApp, prefix: &str, id: &str, body: &[u8]) -> Value {
    let timestamp = now_secs();
    let response = app
        .client
        .post(app.url("/webhooks/dnb"))
        .header("content-type", JSON)
        .header(format!("{prefix}id"), id)
        .header(format!("{prefix}timestamp"), timestamp.to_string())
        .header(
            format!("{prefix}signature"),
            sign(SECRET, id, timestamp, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{prefix} headers");
    response.json().await.unwrap()
}

#[tokio::test]
async fn svix_header_aliases_are_verified_alike_and_redeliveries_are_duplicates() {
    let app = spawn_app().await;
    let body = sample("update.json");
    let id = new_webhook_id();

    let first = post_with_headers(&app, "svix-", &id, &body).await;
    assert_eq!(first["accepted"], 2);
    assert_eq!(first["duplicates"], 0);

    // The same svix-id again, and the same id under its webhook- spelling: redeliveries.
    for prefix in ["svix-", "webhook-"] {
        let again = post_with_headers(&app, prefix, &id, &body).await;
        assert_eq!(again["accepted"], 0, "{prefix}");
        assert_eq!(again["duplicates"], 2, "{prefix}");
        assert_eq!(again["ids"], first["ids"], "{prefix}");
    }
    assert_eq!(journal_rows(&app), 2);

    // A bad signature under the alias is refused like any other.
    let other = new_webhook_id();
    let timestamp = now_secs();
    let response = app
        .client
        .post(app.url("/webhooks/dnb"))
        .header("content-type", JSON)
        .header("svix-id", &other)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", sign(SECRET, &other, timestamp, b"{}"))
        .body(sample("exit.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Both spellings present with different ids: refused, nothing stored.
    let body = sample("exit.json");
    let response = app
        .client
        .post(app.url("/webhooks/dnb"))
        .header("content-type", JSON)
        .header("webhook-id", &other)
        .header("svix-id", new_webhook_id())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(SECRET, &other, timestamp, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "unauthorized");
    assert_eq!(journal_rows(&app), 2);
    assert_eq!(rejected_metric(&app, "invalid_signature").await, 2.0);
}

#[tokio::test]
async fn same_content_under_a_new_webhook_id_is_a_duplicate() {
    let app = spawn_app().await;
    let first = app.accept(sample("seed.json"), JSON).await;
    let second = app.accept(sample("seed.json"), JSON).await;
    assert_eq!(second["accepted"], 0);
    assert_eq!(second["duplicates"], 1);
    assert_eq!(second["ids"], first["ids"]);
    // Whitespace and key order do not make new content.
    let value: Value = serde_json::from_slice(&sample("seed.json")).unwrap();
    let third = app
        .accept(serde_json::to_vec(&value["notifications"]).unwrap(), JSON)
        .await;
    assert_eq!(third["duplicates"], 1);
    assert_eq!(journal_rows(&app), 1);
}

#[tokio::test]
async fn concurrent_redeliveries_store_once() {
    let app = spawn_app().await;
    let id = new_webhook_id();
    let timestamp = now_secs();
    let body = sample("transfer.json");
    let requests = (0..8).map(|_| app.post_webhook_as(body.clone(), JSON, &id, timestamp, SECRET));
    let answers = futures::future::join_all(requests).await;
    let mut accepted = 0;
    for response in answers {
        assert_eq!(response.status(), 202);
        accepted += response.json::<Value>().await.unwrap()["accepted"]
            .as_u64()
            .unwrap();
    }
    assert_eq!(accepted, 2);
    assert_eq!(journal_rows(&app), 2);
}

#[tokio::test]
async fn bodies_of_no_accepted_shape_are_400_and_store_nothing() {
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge_string = format!("\"{}\"", "x".repeat(5_000_000));
    for (body, expect) in [
        (b"{not json".to_vec(), "not valid JSON"),
        (b"\xff\xfe{}".to_vec(), "UTF-8"),
        (b"42".to_vec(), "expected"),
        (b"{\"hello\": 1}".to_vec(), "expected"),
        (deep.into_bytes(), "recursion limit"),
        (huge_string.into_bytes(), "expected"),
    ] {
        let response = app.post_signed_webhook(body, JSON).await;
        assert_eq!(response.status(), 400);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "malformed_body");
        assert!(
            answer["message"].as_str().unwrap().contains(expect),
            "{answer}"
        );
    }
    assert_eq!(journal_rows(&app), 0);
    assert_eq!(app.count("SELECT count(*) FROM deliveries"), 0);
}

#[tokio::test]
async fn an_empty_list_is_accepted_with_nothing_in_it() {
    let app = spawn_app().await;
    for body in [&b"{\"notifications\": []}"[..], b"[]"] {
        let answer = app.accept(body.to_vec(), JSON).await;
        assert_eq!(
            answer,
            json!({"accepted": 0, "duplicates": 0, "rejected": [], "ids": []})
        );
    }
    assert_eq!(app.accept(Vec::new(), NDJSON).await["accepted"], 0);
}

#[tokio::test]
async fn unsupported_content_type_is_415() {
    let app = spawn_app().await;
    for content_type in ["text/plain", "application/xml"] {
        let response = app
            .post_signed_webhook(sample("exit.json"), content_type)
            .await;
        assert_eq!(response.status(), 415);
    }
    let response = app
        .client
        .post(app.url("/webhooks/dnb"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(journal_rows(&app), 0);
}

#[tokio::test]
async fn a_body_limit_above_axums_default_is_honoured() {
    // axum's default limit is 2 MiB; the configured one must apply instead.
    let limit = 3 * 1024 * 1024;
    let app = spawn_app_with(
        |settings| settings.webhook.max_body_bytes = limit,
        std::sync::Arc::new(dnb_hubspot_bridge::hubspot::DryRunExecutor),
    )
    .await;
    let mut big = notification("UPDATE", "123456789", "2024-05-13T08:00:00.000Z");
    big["elements"] = json!([{"element": "organization.primaryName", "previous": "a", "current": "x".repeat(2_600_000)}]);
    let body = serde_json::to_vec(&big).unwrap();
    assert!(body.len() > 2 * 1024 * 1024 && body.len() < limit);
    assert_eq!(app.accept(body, JSON).await["accepted"], 1);

    big["elements"][0]["current"] = json!("x".repeat(limit));
    let response = app
        .post_signed_webhook(serde_json::to_vec(&big).unwrap(), JSON)
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "body_too_large"
    );
    assert_eq!(journal_rows(&app), 1);
}
