//! The journal contract, against each backend directly: leases, their renewal and
//! fencing, recovery, per-DUNS exclusivity, retries holding back a DUNS and dead
//! releasing it. Time is a manual clock the tests move forward. The tests listed in
//! `on_every_backend!` run once on SQLite and once on PostgreSQL (skipped with a
//! notice outside CI when no server answers); the rest are about SQLite's files.

use std::sync::Arc;
use std::time::Duration;

use dnb_hubspot_bridge::config::{StorageSettings, WorkerSettings};
use dnb_hubspot_bridge::dnb::{BodyFormat, parse_body};
use dnb_hubspot_bridge::journal::{
    self, ActionRecord, ActionState, Clock, Completion, DeadReason, DeferReason, Delivery, Journal,
    JournalError, JournalOptions, ManualClock, Outcome, now_ms,
};
use dnb_hubspot_bridge::worker::RetryPolicy;
use serde_json::json;

use crate::helpers::*;

/// Which journal a test runs against.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` as one test per backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod on_postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
    };
}

on_every_backend!(
    an_expired_lease_is_taken_back_by_another_worker,
    a_duns_is_claimed_whole_in_delivery_order_and_never_by_two_workers,
    a_batch_larger_than_one_write_slice_is_claimed_and_completed_whole_in_order,
    a_webhook_id_is_recognised_after_reopening_the_journal_until_its_record_is_purged,
    dead_notifications_release_their_duns,
    a_due_retry_is_claimed_before_the_later_notifications_of_its_duns,
    a_deferral_keeps_the_run_of_failures_so_dead_after_counts_from_its_start,
    a_journal_opened_beside_a_serving_process_leaves_its_claims_alone,
    a_claim_taken_over_can_no_longer_record_outcomes_or_actions,
    a_renewal_extends_a_held_lease_and_reports_a_lost_one,
);

struct Fixture {
    journal: Arc<dyn Journal>,
    clock: Arc<ManualClock>,
    settings: StorageSettings,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Storage settings for a new, empty journal on `backend` (and the folder a SQLite one lives
/// in), or `None` when the backend is not there to test.
async fn storage(
    backend: Backend,
    settings: StorageSettings,
) -> Option<(StorageSettings, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("journal.db").display()),
        Backend::Postgres => crate::postgres::fresh_url("journal").await?,
    };
    Some((StorageSettings { url, ..settings }, dir))
}

impl Fixture {
    /// Opens the journal again, as the next process that runs the workers would.
    async fn reopen(&self) -> Arc<dyn Journal> {
        owned(&self.settings, self.clock.clone()).await
    }
}

/// Opens the journal as the process that runs the workers does, on `clock`.
async fn owned(settings: &StorageSettings, clock: Arc<ManualClock>) -> Arc<dyn Journal> {
    let options = JournalOptions {
        clock,
        take_back_claims: true,
    };
    journal::connect_with(settings, options).await.unwrap()
}

/// A new journal on `backend`, or `None` when the backend is not there to test.
async fn open(backend: Backend) -> Option<Fixture> {
    open_with(backend, StorageSettings::default()).await
}

/// A new SQLite journal.
async fn open_sqlite() -> Fixture {
    open(Backend::Sqlite).await.expect("SQLite is always there")
}

/// A new journal with `settings`, but for its location.
async fn open_with(backend: Backend, settings: StorageSettings) -> Option<Fixture> {
    let (settings, dir) = storage(backend, settings).await?;
    let path = dir.path().join("journal.db");
    let clock = Arc::new(ManualClock::new());
    Some(Fixture {
        journal: owned(&settings, clock.clone()).await,
        clock,
        settings,
        path,
        _dir: dir,
    })
}

async fn append(journal: &Arc<dyn Journal>, items: serde_json::Value) {
    let body = serde_json::to_vec(&items).unwrap();
    let delivery = Delivery {
        webhook_id: new_webhook_id(),
        received_at: chrono::Utc::now(),
        items: parse_body(BodyFormat::Json, &body).unwrap(),
        checkpoint: None,
    };
    journal.append(delivery).await.unwrap();
}

fn done(id: i64) -> Completion {
    Completion {
        id,
        started_at_ms: now_ms(),
        outcome: Outcome::Done { dry_run: true },
        actions: Vec::new(),
    }
}

/// A task create journaled before it is sent.
fn task_intent() -> ActionRecord {
    ActionRecord {
        key: "create_task".into(),
        kind: "create_task".into(),
        state: ActionState::Unknown,
        object_type: Some("tasks".into()),
        object_id: None,
        detail: "{}".into(),
    }
}

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(5);

async fn an_expired_lease_is_taken_back_by_another_worker(backend: Backend) {
    let Some(fixture) = open(backend).await else {
        return;
    };
    append(
        &fixture.journal,
        json!([notification("EXIT", "123456789", "2024-05-13T08:00:00Z")]),
    )
    .await;

    let first = fixture.journal.claim("worker-a", 10, SHORT).await.unwrap();
    assert_eq!(first.len(), 1);
    fixture.clock.advance(SHORT - Duration::from_millis(1));
    assert!(
        fixture
            .journal
            .claim("worker-b", 10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "a live lease holds the row"
    );

    fixture.clock.advance(Duration::from_millis(1));
    let second = fixture.journal.claim("worker-b", 10, LONG).await.unwrap();
    assert_eq!(
        second.iter().map(|c| c.id).collect::<Vec<_>>(),
        [first[0].id]
    );
    assert!(
        second[0].claim > first[0].claim,
        "a new claim, a greater id"
    );

    // The first worker's late outcome does not overwrite the new owner's lease.
    fixture
        .journal
        .complete("worker-a", first[0].claim, vec![done(first[0].id)])
        .await
        .unwrap();
    let stats = fixture.journal.stats().await.unwrap();
    assert_eq!(stats.counts[&journal::Status::Processing], 1);
    fixture
        .journal
        .complete("worker-b", second[0].claim, vec![done(first[0].id)])
        .await
        .unwrap();
    assert_eq!(
        fixture.journal.stats().await.unwrap().counts[&journal::Status::Done],
        1
    );
}

async fn a_duns_is_claimed_whole_in_delivery_order_and_never_by_two_workers(backend: Backend) {
    let Some(fixture) = open(backend).await else {
        return;
    };
    append(
        &fixture.journal,
        json!([
            notification("UPDATE", "111111111", "2024-05-13T10:00:00Z"),
            notification("DELETE", "111111111", "2024-05-13T08:00:00Z"),
            notification("EXIT", "222222222", "2024-05-13T09:00:00Z"),
            notification("UNDELETE", "111111111", "2024-05-13T09:00:00Z"),
        ]),
    )
    .await;

    let first = fixture.journal.claim("worker-a", 2, LONG).await.unwrap();
    let kinds: Vec<_> = first
        .iter()
        .map(|c| (c.duns.clone(), c.notification_type.unwrap().as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("111111111".to_string(), "DELETE"),
            ("111111111".to_string(), "UNDELETE")
        ]
    );

    // The third notification of 111111111 stays behind worker-a's lease.
    let second = fixture.journal.claim("worker-b", 10, LONG).await.unwrap();
    assert_eq!(
        second.iter().map(|c| c.duns.as_str()).collect::<Vec<_>>(),
        ["222222222"]
    );

    fixture
        .journal
        .complete(
            "worker-a",
            first[0].claim,
            first.iter().map(|c| done(c.id)).collect(),
        )
        .await
        .unwrap();
    let third = fixture.journal.claim("worker-b", 10, LONG).await.unwrap();
    assert_eq!(third[0].notification_type.unwrap().as_str(), "UPDATE");
}

async fn a_batch_larger_than_one_write_slice_is_claimed_and_completed_whole_in_order(
    backend: Backend,
) {
    let Some(fixture) = open(backend).await else {
        return;
    };
    // 150 notifications over 50 DUNS, each DUNS's three delivered newest first.
    let items: Vec<_> = (0..150)
        .map(|index| {
            let duns = format!("{:09}", 100_000_000 + index % 50);
            let hour = 20 - index / 50;
            notification("UPDATE", &duns, &format!("2024-05-13T{hour:02}:00:00Z"))
        })
        .collect();
    append(&fixture.journal, json!(items)).await;

    let claimed = fixture.journal.claim("worker-a", 200, LONG).await.unwrap();
    assert_eq!(claimed.len(), 150);
    let mut last_hour = std::collections::HashMap::new();
    for notification in &claimed {
        let stored: serde_json::Value = serde_json::from_str(&notification.raw).unwrap();
        let delivered = stored["deliveryTimeStamp"].as_str().unwrap().to_string();
        if let Some(previous) = last_hour.insert(notification.duns.clone(), delivered.clone()) {
            assert!(previous < delivered, "{} out of order", notification.duns);
        }
    }
    assert!(
        fixture
            .journal
            .claim("worker-b", 200, LONG)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        claimed.iter().all(|c| c.claim == claimed[0].claim),
        "every write slice joins the one claim"
    );
    fixture
        .journal
        .complete(
            "worker-a",
            claimed[0].claim,
            claimed.iter().map(|c| done(c.id)).collect(),
        )
        .await
        .unwrap();
    let stats = fixture.journal.stats().await.unwrap();
    assert_eq!(stats.counts.get(&journal::Status::Done), Some(&150));
}

async fn a_webhook_id_is_recognised_after_reopening_the_journal_until_its_record_is_purged(
    backend: Backend,
) {
    let Some((settings, _dir)) = storage(backend, StorageSettings::default()).await else {
        return;
    };
    let delivery = |webhook_id: &str, delivered: &str| {
        let body = serde_json::to_vec(&json!([
            notification("UPDATE", "111111111", delivered),
            {"type": "UPDATE", "organization": {"duns": "12"}},
        ]))
        .unwrap();
        Delivery {
            webhook_id: webhook_id.to_string(),
            received_at: chrono::Utc::now(),
            items: parse_body(BodyFormat::Json, &body).unwrap(),
            checkpoint: None,
        }
    };
    let journal = journal::connect(&settings).await.unwrap();
    let first = journal
        .append(delivery("msg_kept", "2024-05-13T08:00:00Z"))
        .await
        .unwrap();
    assert!(!first.redelivery);
    journal.close().await;

    // Reopened: the same webhook-id, even with other content, is the first delivery again.
    let journal = journal::connect(&settings).await.unwrap();
    let again = journal
        .append(delivery("msg_kept", "2024-05-13T09:00:00Z"))
        .await
        .unwrap();
    assert!(again.redelivery);
    let ids = |outcome: &journal::AppendOutcome| {
        outcome
            .items
            .iter()
            .map(|fate| fate.id())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&again), ids(&first));
    assert_eq!(again.accepted(), 0);
    assert_eq!(again.rejected, first.rejected);

    // Purged: the webhook-id is forgotten, so the new content is journaled.
    journal.purge(now_ms() + 1, 100).await.unwrap();
    let after = journal
        .append(delivery("msg_kept", "2024-05-13T10:00:00Z"))
        .await
        .unwrap();
    assert!(!after.redelivery);
    assert_eq!(after.accepted(), 1);
}

async fn dead_notifications_release_their_duns(backend: Backend) {
    let Some(fixture) = open(backend).await else {
        return;
    };
    append(
        &fixture.journal,
        json!([
            notification("DELETE", "111111111", "2024-05-13T08:00:00Z"),
            notification("UNDELETE", "111111111", "2024-05-13T09:00:00Z"),
        ]),
    )
    .await;
    let claimed = fixture.journal.claim("worker-a", 1, LONG).await.unwrap();
    let dead = Outcome::Dead {
        reason: DeadReason::FailedTooLong,
        error: "boom".into(),
    };
    fixture
        .journal
        .complete(
            "worker-a",
            claimed[0].claim,
            vec![Completion {
                id: claimed[0].id,
                started_at_ms: now_ms(),
                outcome: dead,
                actions: Vec::new(),
            }],
        )
        .await
        .unwrap();
    let next = fixture.journal.claim("worker-b", 10, LONG).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].notification_type.unwrap().as_str(), "UNDELETE");
}

async fn a_due_retry_is_claimed_before_the_later_notifications_of_its_duns(backend: Backend) {
    let Some(fixture) = open(backend).await else {
        return;
    };
    append(
        &fixture.journal,
        json!([
            notification("DELETE", "111111111", "2024-05-13T08:00:00Z"),
            notification("UNDELETE", "111111111", "2024-05-13T09:00:00Z"),
        ]),
    )
    .await;
    let claimed = fixture.journal.claim("worker-a", 1, LONG).await.unwrap();
    let now = fixture.clock.now_ms();
    let retry = Outcome::Retry {
        error: "boom".into(),
        next_attempt_at_ms: now + 100,
        first_failed_at_ms: now,
    };
    fixture
        .journal
        .complete(
            "worker-a",
            claimed[0].claim,
            vec![Completion {
                id: claimed[0].id,
                started_at_ms: now_ms(),
                outcome: retry,
                actions: Vec::new(),
            }],
        )
        .await
        .unwrap();
    assert!(
        fixture
            .journal
            .claim("worker-b", 10, LONG)
            .await
            .unwrap()
            .is_empty()
    );
    fixture.clock.advance(Duration::from_millis(100));
    let again = fixture.journal.claim("worker-b", 10, LONG).await.unwrap();
    let kinds: Vec<_> = again
        .iter()
        .map(|c| c.notification_type.unwrap().as_str())
        .collect();
    assert_eq!(kinds, ["DELETE", "UNDELETE"]);
    assert_eq!(again[0].attempts, 1);
}

async fn a_deferral_keeps_the_run_of_failures_so_dead_after_counts_from_its_start(
    backend: Backend,
) {
    let Some(fixture) = open(backend).await else {
        return;
    };
    append(
        &fixture.journal,
        json!([notification("DELETE", "111111111", "2024-05-13T08:00:00Z")]),
    )
    .await;
    let policy = RetryPolicy::from_settings(&WorkerSettings {
        dead_after: Duration::from_secs(3600),
        ..WorkerSettings::default()
    });
    let now = fixture.clock.now_ms();
    let first_failed_at_ms = now - 3_600_000;
    let outcomes = [
        Outcome::Retry {
            error: "HTTP 400".into(),
            next_attempt_at_ms: now - 1,
            first_failed_at_ms,
        },
        // HubSpot paused (an outage or a rate limit) between two failures of its own.
        Outcome::Deferred {
            reason: DeferReason::Outage,
            next_attempt_at_ms: now - 1,
        },
    ];
    for outcome in outcomes {
        let claimed = fixture.journal.claim("worker-a", 1, LONG).await.unwrap();
        fixture
            .journal
            .complete(
                "worker-a",
                claimed[0].claim,
                vec![Completion {
                    id: claimed[0].id,
                    started_at_ms: now,
                    outcome,
                    actions: Vec::new(),
                }],
            )
            .await
            .unwrap();
    }

    let claimed = fixture.journal.claim("worker-a", 1, LONG).await.unwrap();
    assert_eq!(claimed[0].first_failed_at_ms, Some(first_failed_at_ms));
    assert_eq!(claimed[0].attempts, 1, "the deferral spent no attempt");
    let outcome = policy.after_failure(&claimed[0], "HTTP 400".into(), false, now);
    assert!(
        matches!(
            outcome,
            Outcome::Dead {
                reason: DeadReason::FailedTooLong,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn the_wal_is_restarted_and_trimmed_while_appends_keep_coming() {
    let cap = 64 * 1024;
    let fixture = open_with(
        Backend::Sqlite,
        StorageSettings {
            wal_max_bytes: cap,
            ..StorageSettings::default()
        },
    )
    .await
    .expect("SQLite is always there");
    let journal = &fixture.journal;
    let wal = fixture.path.with_extension("db-wal");
    let wal_bytes = || std::fs::metadata(&wal).map(|meta| meta.len()).unwrap_or(0);

    // A steady stream for a second and a half: several checkpoint ticks, none idle.
    let mut grown = 0;
    for round in 0..30u32 {
        let items: Vec<_> = (0..20u32)
            .map(|n| {
                notification(
                    "UPDATE",
                    &format!("{:09}", round * 100 + n),
                    "2024-05-13T08:00:00Z",
                )
            })
            .collect();
        append(journal, json!(items)).await;
        grown = grown.max(wal_bytes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(grown > cap, "the stream outgrew the cap ({grown} bytes)");
    // After a restart the next commit starts over at the WAL's beginning and trims the file:
    // a commit after one of the checkpoint thread's next ticks finds it back under the cap.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for n in 0u32.. {
        append(
            journal,
            json!([notification(
                "EXIT",
                &format!("{:09}", 987_000_000 + n),
                "2024-05-13T09:00:00Z"
            )]),
        )
        .await;
        if wal_bytes() <= cap {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL was never trimmed back to the cap: {} bytes",
            wal_bytes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    journal.close().await;
}

#[tokio::test]
async fn a_long_read_does_not_hold_appends_back() {
    let fixture = open_sqlite().await;
    append(
        &fixture.journal,
        json!([notification("EXIT", "123456789", "2024-05-13T08:00:00Z")]),
    )
    .await;
    // A reader that keeps its snapshot of the WAL for the whole test, as a long query would.
    let reader = rusqlite::Connection::open(&fixture.path).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM notifications;")
        .unwrap();

    let mut slowest = Duration::ZERO;
    for round in 0..20u32 {
        let started = std::time::Instant::now();
        append(
            &fixture.journal,
            json!([notification(
                "UPDATE",
                &format!("{:09}", 200_000_000 + round),
                "2024-05-13T08:00:00Z"
            )]),
        )
        .await;
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader.execute_batch("COMMIT").unwrap();
    // Checkpoint ticks came and went while the reader held the WAL; none held an append for long.
    assert!(
        slowest < Duration::from_secs(1),
        "an append waited {slowest:?}"
    );
    fixture.journal.close().await;
}

#[tokio::test]
async fn claims_left_processing_by_a_dead_process_are_pending_again_at_open() {
    let fixture = open_sqlite().await;
    append(
        &fixture.journal,
        json!([
            notification("EXIT", "111111111", "2024-05-13T08:00:00Z"),
            notification("EXIT", "222222222", "2024-05-13T08:00:00Z"),
        ]),
    )
    .await;
    let claimed = fixture.journal.claim("worker-a", 10, LONG).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // The process ends without recording outcomes; its lease would run for a minute more.
    fixture.journal.close().await;

    let journal = fixture.reopen().await;
    let stats = journal.stats().await.unwrap();
    assert_eq!(stats.counts.get(&journal::Status::Processing), Some(&0));
    assert_eq!(stats.counts.get(&journal::Status::Pending), Some(&2));
    let again = journal.claim("worker-b", 10, LONG).await.unwrap();
    assert_eq!(again.len(), 2, "taken back at open, not after the lease");
    assert!(
        again[0].claim > claimed[0].claim,
        "claim ids outlive the process"
    );
    // The dead process's claim holds nothing any more.
    assert!(!journal.renew(claimed[0].claim, LONG).await.unwrap());
}

async fn a_journal_opened_beside_a_serving_process_leaves_its_claims_alone(backend: Backend) {
    let Some(fixture) = open(backend).await else {
        return;
    };
    append(
        &fixture.journal,
        json!([notification("EXIT", "111111111", "2024-05-13T08:00:00Z")]),
    )
    .await;
    let claimed = fixture.journal.claim("worker-a", 10, LONG).await.unwrap();

    // As the `replay` command opens it.
    let visitor = journal::connect(&fixture.settings).await.unwrap();
    visitor.close().await;

    let stats = fixture.journal.stats().await.unwrap();
    assert_eq!(stats.counts.get(&journal::Status::Processing), Some(&1));
    assert!(fixture.journal.renew(claimed[0].claim, LONG).await.unwrap());
}

async fn a_claim_taken_over_can_no_longer_record_outcomes_or_actions(backend: Backend) {
    // Arrange: worker-a's lease runs out and the same worker claims the notification anew,
    // as a worker does after its batch outlived its lease.
    let Some(fixture) = open(backend).await else {
        return;
    };
    append(
        &fixture.journal,
        json!([notification("EXIT", "123456789", "2024-05-13T08:00:00Z")]),
    )
    .await;
    let first = fixture.journal.claim("worker-a", 10, SHORT).await.unwrap();
    fixture.clock.advance(SHORT);
    let second = fixture.journal.claim("worker-a", 10, LONG).await.unwrap();
    assert_eq!(second.len(), 1);
    let id = first[0].id;

    // Act: the first claim's late writes.
    let intent = fixture
        .journal
        .record_actions(first[0].claim, vec![(id, task_intent())])
        .await;
    fixture
        .journal
        .complete("worker-a", first[0].claim, vec![done(id)])
        .await
        .unwrap();

    // Assert: refused, and the notification is still the second claim's.
    assert!(matches!(intent, Err(JournalError::LeaseLost)), "{intent:?}");
    let detail = fixture.journal.detail(id).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, journal::Status::Processing);
    assert!(detail.actions.is_empty(), "no action of the stale claim");
    assert!(detail.attempts.is_empty(), "no attempt of the stale claim");
    assert!(!fixture.journal.renew(first[0].claim, LONG).await.unwrap());

    // The second claim's writes go through.
    fixture
        .journal
        .record_actions(second[0].claim, vec![(id, task_intent())])
        .await
        .unwrap();
    fixture
        .journal
        .complete("worker-a", second[0].claim, vec![done(id)])
        .await
        .unwrap();
    let detail = fixture.journal.detail(id).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, journal::Status::Done);
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(detail.actions.len(), 1);
}

async fn a_renewal_extends_a_held_lease_and_reports_a_lost_one(backend: Backend) {
    let Some(fixture) = open(backend).await else {
        return;
    };
    append(
        &fixture.journal,
        json!([
            notification("EXIT", "111111111", "2024-05-13T08:00:00Z"),
            notification("EXIT", "222222222", "2024-05-13T08:00:00Z"),
        ]),
    )
    .await;
    let held = fixture.journal.claim("worker-a", 10, SHORT).await.unwrap();
    assert_eq!(held.len(), 2);
    let claim = held[0].claim;

    // Renewed just before it runs out, the lease holds another SHORT from then.
    fixture.clock.advance(SHORT - Duration::from_millis(1));
    assert!(fixture.journal.renew(claim, SHORT).await.unwrap());
    fixture.clock.advance(SHORT - Duration::from_millis(1));
    assert!(
        fixture
            .journal
            .claim("worker-b", 10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "the renewed lease still holds both notifications"
    );

    // Not renewed in time, it is lost, even before another claim takes the notifications.
    fixture.clock.advance(Duration::from_millis(1));
    assert!(!fixture.journal.renew(claim, SHORT).await.unwrap());
    let taken = fixture.journal.claim("worker-b", 10, LONG).await.unwrap();
    assert_eq!(taken.len(), 2, "an expired lease is taken back whole");
    assert!(!fixture.journal.renew(claim, SHORT).await.unwrap());
    assert!(fixture.journal.renew(taken[0].claim, LONG).await.unwrap());
}

/// Two processes sharing one PostgreSQL journal, as two replicas do: two pools on one schema.
async fn two_processes(test: &str) -> Option<(Arc<dyn Journal>, Arc<dyn Journal>)> {
    let url = crate::postgres::fresh_url(test).await?;
    let settings = StorageSettings {
        url,
        ..StorageSettings::default()
    };
    let options = JournalOptions {
        clock: journal::clock::system(),
        take_back_claims: true,
    };
    Some((
        journal::connect_with(&settings, options.clone())
            .await
            .unwrap(),
        journal::connect_with(&settings, options).await.unwrap(),
    ))
}

#[tokio::test]
async fn workers_of_two_processes_never_hold_one_duns_together_and_keep_its_order() {
    let Some((first, second)) =
        two_processes("workers_of_two_processes_never_hold_one_duns_together").await
    else {
        return;
    };
    // 150 DUNS with 4 notifications each, delivered at rising times but arriving in another
    // order, spread over deliveries to both processes.
    let dunses: Vec<String> = (0..150)
        .map(|n| format!("{:09}", 300_000_000 + n))
        .collect();
    let times = [
        "2024-05-13T08:00:00Z",
        "2024-05-13T09:00:00Z",
        "2024-05-13T10:00:00Z",
        "2024-05-13T11:00:00Z",
    ];
    for (round, time) in [3, 0, 2, 1].into_iter().map(|t| (t, times[t])) {
        let items: Vec<serde_json::Value> = dunses
            .iter()
            .map(|duns| notification("UPDATE", duns, time))
            .collect();
        let target = if round % 2 == 0 { &first } else { &second };
        append(target, json!(items)).await;
    }

    let held = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let order = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        Vec<i64>,
    >::new()));
    let total = dunses.len() * times.len();
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for (index, journal) in [&first, &second, &first, &second].into_iter().enumerate() {
        let (journal, held, order, finished) = (
            journal.clone(),
            held.clone(),
            order.clone(),
            finished.clone(),
        );
        workers.push(tokio::spawn(async move {
            let name = format!("worker-{index}");
            while finished.load(std::sync::atomic::Ordering::SeqCst) < total {
                let claimed = journal.claim(&name, 25, LONG).await.unwrap();
                if claimed.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                let mine: std::collections::HashSet<String> =
                    claimed.iter().map(|c| c.duns.clone()).collect();
                for duns in &mine {
                    assert!(
                        held.lock().unwrap().insert(duns.clone()),
                        "{duns} claimed while another worker held it"
                    );
                }
                for claimed in &claimed {
                    let detail = journal.detail(claimed.id).await.unwrap().unwrap();
                    order
                        .lock()
                        .unwrap()
                        .entry(claimed.duns.clone())
                        .or_default()
                        .push(detail.delivered_at_ms.unwrap());
                }
                for duns in &mine {
                    held.lock().unwrap().remove(duns);
                }
                let completions = claimed.iter().map(|c| done(c.id)).collect();
                journal
                    .complete(&name, claimed[0].claim, completions)
                    .await
                    .unwrap();
                finished.fetch_add(claimed.len(), std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(workers))
        .await
        .expect("every notification is processed")
        .into_iter()
        .for_each(|worker| worker.unwrap());

    let order = std::mem::take(&mut *order.lock().unwrap());
    assert_eq!(order.len(), dunses.len());
    for (duns, delivered) in order.iter() {
        assert_eq!(delivered.len(), times.len(), "{duns} processed once each");
        assert!(
            delivered.is_sorted(),
            "{duns} in delivery order: {delivered:?}"
        );
    }
    let stats = first.stats().await.unwrap();
    assert_eq!(
        stats.counts.get(&journal::Status::Done),
        Some(&(total as u64))
    );
}

#[tokio::test]
async fn one_webhook_id_sent_to_two_processes_at_once_is_stored_once() {
    let Some((first, second)) = two_processes("one_webhook_id_sent_to_two_processes_at_once").await
    else {
        return;
    };
    for round in 0..20 {
        let body = serde_json::to_vec(&json!([
            notification("UPDATE", "111111111", &format!("2024-05-13T08:00:{round:02}Z")),
            notification("EXIT", "222222222", &format!("2024-05-13T08:00:{round:02}Z")),
            {"type": "UPDATE", "organization": {"duns": "12"}},
        ]))
        .unwrap();
        let delivery = Delivery {
            webhook_id: new_webhook_id(),
            received_at: chrono::Utc::now(),
            items: parse_body(BodyFormat::Json, &body).unwrap(),
            checkpoint: None,
        };
        let (a, b) = tokio::join!(first.append(delivery.clone()), second.append(delivery));
        let (a, b) = (a.unwrap(), b.unwrap());
        let ids = |outcome: &journal::AppendOutcome| {
            outcome
                .items
                .iter()
                .map(|fate| fate.id())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b), "both answer with the same ids");
        assert!(
            a.redelivery ^ b.redelivery,
            "one stored it, the other found it"
        );
        assert_eq!(a.accepted() + b.accepted(), 2);
        assert_eq!(a.rejected, b.rejected);
    }
    let stats = second.stats().await.unwrap();
    assert_eq!(stats.counts.get(&journal::Status::Pending), Some(&40));
    assert_eq!(stats.counts.get(&journal::Status::Rejected), Some(&20));
}

#[tokio::test]
async fn work_committed_by_one_process_wakes_the_workers_of_another() {
    let Some((first, second)) = two_processes("work_committed_by_one_process_wakes").await else {
        return;
    };
    let (rang, mut rings) = tokio::sync::mpsc::unbounded_channel();
    second.on_work(Arc::new(move || {
        let _ = rang.send(());
    }));
    // The listener may still be connecting; the append is repeated until a ring arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut round = 0;
    loop {
        round += 1;
        append(
            &first,
            json!([notification(
                "EXIT",
                "123456789",
                &format!("2024-05-13T08:00:{round:02}Z")
            )]),
        )
        .await;
        match tokio::time::timeout(Duration::from_millis(200), rings.recv()).await {
            Ok(Some(())) => break,
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "no ring from the other process"
            ),
        }
    }
}
