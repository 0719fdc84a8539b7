//! The worker pool: dry-run processing, per-DUNS order and exclusivity, panics, leases
//! that run out mid-batch, shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use dnb_hubspot_bridge::journal::ManualClock;

use crate::executors::{OutlivesItsLease, PanicsOn, Slow};
use crate::helpers::*;

#[tokio::test]
async fn dry_run_records_planned_actions_and_marks_done() {
    let app = spawn_app().await;
    app.accept(sample("delete.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done' AND dry_run = 1",
        1,
    )
    .await;

    let db = app.db();
    let mut statement = db
        .prepare("SELECT kind, state FROM actions ORDER BY id")
        .unwrap();
    let actions: Vec<(String, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        actions,
        [
            ("create_task", "planned"),
            ("create_note", "planned"),
            ("update_property", "planned")
        ]
        .map(|(kind, state)| (kind.to_string(), state.to_string()))
    );
    assert_eq!(
        app.count("SELECT count(*) FROM attempts WHERE outcome = 'done'"),
        1
    );
    assert_eq!(app.count("SELECT attempts FROM notifications"), 1);
}

#[tokio::test]
async fn notifications_of_one_duns_are_processed_in_delivery_order_by_one_worker_at_a_time() {
    // Arrange: four workers with small batches, 120 notifications over 4 DUNS in one commit,
    // delivery times shuffled against body order.
    let app = spawn_app_with(
        |settings| {
            settings.workers.count = 4;
            settings.workers.batch_size = 3;
        },
        Arc::new(Slow(Duration::from_millis(3))),
    )
    .await;
    let dunses = ["100000001", "100000002", "100000003", "100000004"];
    let mut items = Vec::new();
    for index in 0..120u32 {
        let minute = (index * 37) % 120;
        let delivered = format!(
            "2024-05-13T{:02}:{:02}:00.000Z",
            8 + minute / 60,
            minute % 60
        );
        items.push(notification(
            "UPDATE",
            dunses[(index % 4) as usize],
            &delivered,
        ));
    }
    // Act
    app.accept(
        serde_json::to_vec(&json!({ "notifications": items })).unwrap(),
        "application/json",
    )
    .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        120,
    )
    .await;

    // Assert: per DUNS, completion order follows delivery order and two workers never overlap.
    let db = app.db();
    let mut statement = db
        .prepare(
            "SELECT n.duns, n.delivered_at, a.worker, a.started_at, a.finished_at
             FROM attempts a JOIN notifications n ON n.id = a.notification_id ORDER BY a.id",
        )
        .unwrap();
    let mut per_duns: HashMap<String, Vec<(i64, String, i64, i64)>> = HashMap::new();
    for row in statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .unwrap()
    {
        let (duns, delivered, worker, started, finished): (String, i64, String, i64, i64) =
            row.unwrap();
        per_duns
            .entry(duns)
            .or_default()
            .push((delivered, worker, started, finished));
    }
    let mut workers_seen = std::collections::HashSet::new();
    for (duns, attempts) in per_duns {
        assert_eq!(attempts.len(), 30);
        for pair in attempts.windows(2) {
            let ((delivered_a, worker_a, _, finished_a), (delivered_b, worker_b, started_b, _)) =
                (&pair[0], &pair[1]);
            assert!(
                delivered_a <= delivered_b,
                "{duns} processed out of delivery order"
            );
            if worker_a != worker_b {
                assert!(
                    started_b >= finished_a,
                    "{duns} held by {worker_a} and {worker_b} at once"
                );
            }
            workers_seen.insert(worker_b.clone());
        }
    }
    assert!(
        workers_seen.len() > 1,
        "the test should exercise several workers"
    );
}

#[tokio::test]
async fn a_panic_fails_only_its_notification_and_the_worker_lives_on() {
    let app = spawn_app_with(
        |settings| {
            settings.workers.count = 1;
            settings.workers.retry_initial_ms = 60_000;
        },
        Arc::new(PanicsOn("666666666")),
    )
    .await;
    let body = json!([
        notification("EXIT", "666666666", "2024-05-13T08:00:00.000Z"),
        notification("EXIT", "111111111", "2024-05-13T08:00:00.000Z"),
    ]);
    app.accept(serde_json::to_vec(&body).unwrap(), "application/json")
        .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE duns = '666666666' AND status = 'pending'
         AND attempts = 1 AND next_attempt_at IS NOT NULL AND last_error LIKE '%panic%simulated bug%'",
        1,
    )
    .await;

    // The single worker still processes new work.
    app.accept(
        serde_json::to_vec(&notification(
            "EXIT",
            "222222222",
            "2024-05-13T08:00:00.000Z",
        ))
        .unwrap(),
        "application/json",
    )
    .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        2,
    )
    .await;
}

#[tokio::test]
async fn a_later_notification_waits_while_an_earlier_one_of_its_duns_awaits_a_retry() {
    let app = spawn_app_with(
        |settings| settings.workers.retry_initial_ms = 60_000,
        Arc::new(PanicsOn("666666666")),
    )
    .await;
    let first = notification("DELETE", "666666666", "2024-05-13T08:00:00.000Z");
    app.accept(serde_json::to_vec(&first).unwrap(), "application/json")
        .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE next_attempt_at IS NOT NULL",
        1,
    )
    .await;

    // The later notification arrives in one commit with one of another DUNS: once a worker
    // has processed that one, a claim has looked at both and left the later one.
    let later = notification("UNDELETE", "666666666", "2024-05-13T09:00:00.000Z");
    let other = notification("EXIT", "111111111", "2024-05-13T09:00:00.000Z");
    app.accept(
        serde_json::to_vec(&json!([later, other])).unwrap(),
        "application/json",
    )
    .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE duns = '111111111' AND status = 'done'",
        1,
    )
    .await;
    assert_eq!(app.count("SELECT count(*) FROM notifications WHERE type = 'UNDELETE' AND status = 'pending' AND attempts = 0"), 1);
}

#[tokio::test]
async fn a_batch_that_outlives_its_lease_is_told_and_only_the_new_owners_outcome_counts() {
    // Arrange: two workers on a clock that stands still; the first batch works on until its
    // lease is lost and another worker has taken the notification over.
    let clock = Arc::new(ManualClock::new());
    let executor = Arc::new(OutlivesItsLease::new());
    let app = spawn_app_on_clock(
        |settings| {
            settings.workers.count = 2;
            settings.workers.lease_secs = 5;
        },
        Some(executor.clone()),
        clock.clone(),
    )
    .await;
    app.accept(
        serde_json::to_vec(&notification(
            "EXIT",
            "111111111",
            "2024-05-13T08:00:00.000Z",
        ))
        .unwrap(),
        "application/json",
    )
    .await;
    executor.wait_for_batches(1).await;

    // Act: the lease runs out unrenewed.
    clock.advance(Duration::from_secs(5));

    // Assert: the first batch was told (it waits for that), a second worker took the
    // notification over, and only that worker's attempt is recorded.
    executor.wait_for_batches(2).await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    // Stopping waits for the first batch's late outcome, which the journal refuses.
    let stopped = app.stop().await;
    assert_eq!(stopped.count("SELECT count(*) FROM attempts"), 1);
    assert_eq!(
        stopped.count("SELECT count(*) FROM notifications WHERE status = 'done' AND attempts = 1"),
        1
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_batch_in_hand_and_leaves_the_rest_pending() {
    let app = spawn_app_with(
        |settings| {
            settings.workers.count = 1;
            settings.workers.batch_size = 2;
            settings.workers.batch_max_wait_ms = 0;
        },
        Arc::new(Slow(Duration::from_millis(700))),
    )
    .await;
    let items: Vec<_> = (0..6)
        .map(|index| {
            notification(
                "EXIT",
                &format!("30000000{index}"),
                "2024-05-13T08:00:00.000Z",
            )
        })
        .collect();
    app.accept(serde_json::to_vec(&items).unwrap(), "application/json")
        .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'processing'",
        2,
    )
    .await;

    let stopped = app.stop().await;

    assert_eq!(
        stopped.count("SELECT count(*) FROM notifications WHERE status = 'processing'"),
        0
    );
    assert_eq!(
        stopped.count("SELECT count(*) FROM notifications WHERE status = 'done'"),
        2
    );
    assert_eq!(
        stopped.count("SELECT count(*) FROM notifications WHERE status = 'pending'"),
        4
    );
}
