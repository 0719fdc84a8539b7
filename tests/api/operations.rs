//! Probes, metrics and backpressure.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::executors::Gated;
use crate::helpers::*;

#[tokio::test]
async fn health_and_ready_answer_200_with_their_bodies() {
    let app = spawn_app().await;
    let (status, body) = app.get("/health").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

    let (status, body) = app.get("/ready").await;
    assert_eq!(status, 200);
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["journal"]["writable"], true);
    assert_eq!(ready["hubspot"]["state"], "disabled");
}

#[tokio::test]
async fn metrics_are_described_and_count_received_and_processed_notifications() {
    let app = spawn_app().await;
    let (_, before) = app.get("/metrics").await;
    for name in [
        "bridge_notifications_received_total",
        "bridge_notifications_processed_total",
        "bridge_webhook_rejected_total",
        "bridge_journal_notifications",
        "bridge_queue_depth",
        "bridge_backlog_oldest_age_seconds",
        "bridge_processing_seconds",
        "bridge_hubspot_paused",
    ] {
        assert!(
            before.contains(&format!("# HELP {name} ")),
            "{name} not described"
        );
        assert!(
            before.contains(&format!("# TYPE {name} ")),
            "{name} has no type"
        );
    }

    app.accept(sample("update.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        2,
    )
    .await;
    let (status, after) = app.get("/metrics").await;

    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &after,
            "bridge_notifications_received_total{type=\"UPDATE\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &after,
            "bridge_notifications_processed_total{type=\"UPDATE\",outcome=\"done\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(&after, "bridge_journal_notifications{status=\"done\"}"),
        2.0
    );
    assert_eq!(metric(&after, "bridge_queue_depth"), 0.0);
    assert_eq!(metric(&after, "bridge_processing_seconds_count"), 2.0);
    assert!(after.contains(
        "bridge_http_requests_total{method=\"POST\",path=\"/webhooks/dnb\",status=\"202\"} 1"
    ));
}

#[tokio::test]
async fn over_the_high_water_mark_the_webhook_answers_503_and_stores_nothing() {
    // Arrange: one worker holding one notification behind a closed gate, high water 2.
    let gate = Arc::new(Semaphore::new(0));
    let app = spawn_app_with(
        |settings| {
            settings.queue.high_water = 2;
            settings.workers.count = 1;
            settings.workers.batch_size = 1;
        },
        Arc::new(Gated(gate.clone())),
    )
    .await;
    let items: Vec<_> = (0..4)
        .map(|index| {
            notification(
                "EXIT",
                &format!("40000000{index}"),
                "2024-05-13T08:00:00.000Z",
            )
        })
        .collect();
    app.accept(serde_json::to_vec(&items).unwrap(), "application/json")
        .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'pending'",
        3,
    )
    .await;

    // Act
    let response = app
        .post_signed_webhook(sample("exit.json"), "application/json")
        .await;

    // Assert
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "overloaded"
    );
    assert_eq!(app.count("SELECT count(*) FROM notifications"), 4);
    let (status, body) = app.get("/ready").await;
    assert_eq!(status, 503, "{body}");

    // Draining brings readiness back.
    gate.add_permits(100);
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        4,
    )
    .await;
    let _ = app
        .accept(sample("reviewed.json"), "application/json")
        .await;
    let (status, _) = app.get("/ready").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn retention_purges_finished_notifications_but_never_dead_ones() {
    let app = spawn_app_with(
        |settings| {
            settings.storage.retention = std::time::Duration::from_secs(1);
            settings.storage.purge_interval_secs = 1;
            settings.workers.dead_after = std::time::Duration::ZERO;
        },
        Arc::new(crate::executors::PanicsOn("666666666")),
    )
    .await;
    let items = serde_json::json!([
        notification("EXIT", "111111111", "2024-05-13T08:00:00.000Z"),
        notification("DELETE", "666666666", "2024-05-13T08:00:00.000Z"),
        notification("DELETE", "12", "2024-05-13T08:00:00.000Z"),
    ]);
    app.accept(serde_json::to_vec(&items).unwrap(), "application/json")
        .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status IN ('done', 'dead')",
        2,
    )
    .await;

    app.wait_for_count("SELECT count(*) FROM notifications", 1)
        .await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM notifications WHERE status = 'dead' AND duns = '666666666'"
        ),
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM attempts WHERE notification_id NOT IN (SELECT id FROM notifications)"), 0);
    assert_eq!(app.count("SELECT count(*) FROM actions WHERE notification_id NOT IN (SELECT id FROM notifications)"), 0);
    assert_eq!(app.count("SELECT count(*) FROM deliveries"), 0);
    let (_, metrics) = app.get("/metrics").await;
    assert_eq!(metric(&metrics, "bridge_journal_purged_total"), 2.0);
    assert!(metric(&metrics, "bridge_journal_size_bytes") > 0.0);
}
