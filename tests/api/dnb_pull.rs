//! The Direct+ pull loop against the fake Direct+: every pulled notification is
//! journaled exactly once, a page commits with its checkpoint, an interrupted pull
//! is replayed at the next start (in process, and after a real `kill -9` of the
//! built binary), and `serve` runs the loop and reports it on `/ready` and `/metrics`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dnb_hubspot_bridge::config::{DnbSettings, StorageSettings};
use dnb_hubspot_bridge::dnb::direct_plus::DirectPlusClient;
use dnb_hubspot_bridge::dnb::pull::Puller;
use dnb_hubspot_bridge::journal::{self, Journal};
use dnb_hubspot_bridge::telemetry::Metrics;
use secrecy::SecretString;

use crate::dnb_client::assert_rate_respected;
use crate::fake_dnb::{
    DnbFault, FAKE_KEY, FAKE_SECRET, FakeDnb, FakeDnbConfig, base, notifications,
};
use crate::helpers::*;

const REG: &str = "REG_PULL";

fn dnb_settings(fake: &FakeDnb, rate: u32) -> DnbSettings {
    let mut settings = DnbSettings {
        base_url: fake.base_url(),
        client_key: SecretString::from(FAKE_KEY),
        client_secret: SecretString::from(FAKE_SECRET),
        registrations: vec![REG.into()],
        rate_limit_per_sec: rate,
        ..DnbSettings::default()
    };
    settings.pull.interval_secs = 1;
    settings
}

fn puller(fake: &FakeDnb, journal: &Arc<dyn Journal>, rate: u32) -> Puller {
    let client = DirectPlusClient::new(&dnb_settings(fake, rate))
        .unwrap()
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200));
    Puller {
        client: Arc::new(client),
        journal: journal.clone(),
        doorbell: None,
        metrics: Arc::new(Metrics::new()),
        max_notifications: 100,
        interval: Duration::from_secs(1),
    }
}

async fn journal_in(dir: &Path) -> Arc<dyn Journal> {
    let settings = StorageSettings {
        url: format!("sqlite://{}", dir.join("journal.db").display()),
        ..StorageSettings::default()
    };
    journal::connect(&settings).await.unwrap()
}

fn count(path: &Path, sql: &str) -> i64 {
    open_read_only(path)
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_of_10000_notifications_over_pages_journals_each_exactly_once() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_in(dir.path()).await;
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(10_000));
    let puller = puller(&fake, &journal, 50);

    // Act: drain, then a second round finds nothing.
    let first = puller.once(REG, None).await.unwrap();
    let second = puller.once(REG, None).await.unwrap();

    // Assert
    assert_eq!(
        (first.pulled, first.accepted, first.duplicates),
        (10_000, 10_000, 0)
    );
    assert_eq!(second.pulled, 0);
    assert_eq!(fake.pending(REG), 0);
    let db = dir.path().join("journal.db");
    assert_eq!(count(&db, "SELECT count(*) FROM notifications"), 10_000);
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT duns) FROM notifications WHERE status = 'pending'"
        ),
        10_000
    );
    assert_eq!(fake.count("pull"), 102, "100 pages, then a 404 per round");
    assert_eq!(fake.count("token"), 1);
    assert_rate_respected(&fake.calls(), 50);
    let state = journal.registrations().await.unwrap();
    assert_eq!(state.len(), 1);
    assert!(!state[0].in_flight);
    assert_eq!(state[0].last_transaction_id.as_deref(), Some("fake-100"));
    // The last notification: the base time plus 9,999 × 50 ms.
    assert_eq!(
        state[0].last_delivered_at_ms,
        Some(base().timestamp_millis() + 9_999 * 50)
    );
    journal.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_interrupted_after_d_and_b_answered_is_replayed_at_the_next_start() {
    // Arrange: 100 notifications pulled and committed; then a pull whose page D&B hands out
    // (it leaves the pending set) but whose answer never completes, and the puller is gone.
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_in(dir.path()).await;
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    let all = notifications(300);
    fake.add_pending(REG, all[..100].to_vec());
    puller(&fake, &journal, 100).once(REG, None).await.unwrap();
    fake.add_pending(REG, all[100..].to_vec());
    fake.fail_next([DnbFault::AnswerThenStall]);
    let interrupted = puller(&fake, &journal, 100);
    let stalled = tokio::spawn(async move { interrupted.once(REG, None).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.pulled(REG) < 200 {
        assert!(Instant::now() < deadline, "the stalled pull never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stalled.abort();
    let _ = stalled.await;
    let marked = journal.registrations().await.unwrap();

    // Act: the next start.
    let report = puller(&fake, &journal, 100).once(REG, None).await.unwrap();

    // Assert
    assert!(marked[0].in_flight, "the interrupted call left its mark");
    assert_eq!(fake.pending(REG), 0);
    assert!(fake.count("replay") >= 1);
    // Replay pages overlap by a second, so some come back more than once.
    assert!(
        report.replayed >= 200,
        "the overlap and the lost page: {report:?}"
    );
    assert_eq!(report.pulled, 100);
    assert_eq!(report.accepted, 200, "the lost page and the last one");
    assert_eq!(report.duplicates, report.replayed - 100);
    let db = dir.path().join("journal.db");
    assert_eq!(count(&db, "SELECT count(*) FROM notifications"), 300);
    assert!(!journal.registrations().await.unwrap()[0].in_flight);
    journal.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_a_time_re_reads_the_window_and_dedupes() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_in(dir.path()).await;
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(250));
    let puller = puller(&fake, &journal, 100);
    puller.once(REG, None).await.unwrap();

    // Act: from the base time; pages overlap by a second.
    let report = puller.once(REG, Some(base())).await.unwrap();

    // Assert: every notification but the first (the base time itself is not after the start)
    // came back.
    assert!(report.replayed >= 249, "{report:?}");
    assert_eq!(report.accepted, 0);
    let db = dir.path().join("journal.db");
    assert_eq!(count(&db, "SELECT count(*) FROM notifications"), 250);
    journal.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pulls_processes_and_reports_each_registration() {
    // Arrange
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(150));
    let settings = dnb_settings(&fake, 50);
    let app = spawn_configured_app(move |configured| {
        configured.dnb = settings;
        configured.dnb.pull.enabled = true;
    })
    .await;

    // Act + Assert: pulled and processed like webhook deliveries.
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        150,
    )
    .await;
    fake.add_pending(REG, notifications(160)[150..].to_vec());
    app.wait_for_count("SELECT count(*) FROM notifications", 160)
        .await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let (status, body) = app.get("/ready").await;
        assert_eq!(status, 200, "{body}");
        let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
        if ready["dnb"]["registrations"][0]["in_flight"] == false {
            break ready;
        }
        assert!(Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let registration = &ready["dnb"]["registrations"][0];
    assert_eq!(ready["dnb"]["pull_enabled"], true);
    assert_eq!(registration["registration"], REG);
    assert!(registration["last_success_at"].is_string(), "{ready}");
    assert!(
        registration["age_seconds"].as_i64().unwrap() < 60,
        "{ready}"
    );
    let (_, metrics) = app.get("/metrics").await;
    let series = |name: &str| metric(&metrics, name);
    assert_eq!(
        series(&format!(
            "bridge_dnb_notifications_pulled_total{{registration=\"{REG}\"}}"
        )),
        160.0
    );
    assert!(
        series(&format!(
            "bridge_dnb_pulls_total{{registration=\"{REG}\",outcome=\"drained\"}}"
        )) >= 1.0,
        "{metrics}"
    );
    assert!(
        series(&format!(
            "bridge_dnb_last_pull_success_timestamp_seconds{{registration=\"{REG}\"}}"
        )) > 1.7e9
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_d_and_b_refuses_does_not_stop_the_pulls() {
    // Arrange: an interrupted pull on record, and D&B answers the replay 400.
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_in(dir.path()).await;
    journal
        .update_registration(dnb_hubspot_bridge::journal::PullCheckpoint {
            registration: REG.into(),
            delivered_at_ms: Some(base().timestamp_millis()),
            succeeded_at_ms: None,
            transaction_id: None,
            in_flight: true,
        })
        .await
        .unwrap();
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(50));
    fake.fail_next([DnbFault::BadRequest]);

    // Act
    let report = puller(&fake, &journal, 100).once(REG, None).await.unwrap();

    // Assert
    assert_eq!(fake.count("replay"), 1);
    assert_eq!(
        (report.replayed, report.pulled, report.accepted),
        (0, 50, 50)
    );
    assert!(!journal.registrations().await.unwrap()[0].in_flight);
    journal.close().await;
}

#[tokio::test]
async fn ready_lists_configured_registrations_that_never_pulled_and_stays_ready() {
    let app = spawn_configured_app(|settings| {
        settings.dnb.registrations = vec!["B_REG".into(), "A_REG".into()];
    })
    .await;
    let (status, body) = app.get("/ready").await;
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(ready["dnb"]["pull_enabled"], false);
    let registrations = ready["dnb"]["registrations"].as_array().unwrap();
    assert_eq!(registrations.len(), 2);
    assert_eq!(registrations[0]["registration"], "A_REG");
    assert!(registrations[0]["last_success_at"].is_null());
    assert!(registrations[0]["age_seconds"].is_null());
    assert_eq!(registrations[0]["in_flight"], false);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_with_the_same_transaction_id_are_both_journaled() {
    // Arrange: D&B's transaction id is not trusted to be unique per answer.
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_in(dir.path()).await;
    let fake = FakeDnb::start(FakeDnbConfig {
        transaction_id: Some("rrt-always-the-same".into()),
        ..FakeDnbConfig::default()
    })
    .await;
    fake.add_pending(REG, notifications(20));
    let puller = puller(&fake, &journal, 100);

    // Act: two pages of 10 whose envelopes carry the same transaction id.
    let mut small = puller.clone();
    small.max_notifications = 10;
    small.once(REG, None).await.unwrap();

    // Assert
    let db = dir.path().join("journal.db");
    assert_eq!(count(&db, "SELECT count(*) FROM notifications"), 20);
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries"), 2);
    journal.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_survives_a_failed_round_and_replays_before_pulling_on() {
    // Arrange: D&B answers 500 to every try of the first call.
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_in(dir.path()).await;
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(30));
    fake.fail_next(std::iter::repeat_n(DnbFault::ServerError, 6));
    let puller = puller(&fake, &journal, 100);
    let metrics = puller.metrics.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = {
        let stop = stop.clone();
        tokio::spawn(async move { puller.run(REG, None, stop).await })
    };

    // Act: the loop waits out the interval and tries again.
    let db = dir.path().join("journal.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&db, "SELECT count(*) FROM notifications") < 30 {
        assert!(Instant::now() < deadline, "the loop never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    running.await.unwrap();

    // Assert
    assert_eq!(
        fake.count("replay"),
        1,
        "the failed call might have reached D&B"
    );
    let text = metrics.render();
    assert_eq!(
        metric(
            &text,
            &format!("bridge_dnb_pulls_total{{registration=\"{REG}\",outcome=\"error\"}}")
        ),
        1.0,
        "{text}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM notifications"), 30);
    journal.close().await;
}

fn run_binary(config: &Path, log: &Path, args: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
        .args(["--config", config.to_str().unwrap()])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_between_d_and_b_answer_and_the_commit_loses_nothing() {
    // Arrange: the second pull's page leaves D&B's pending set but never reaches the journal.
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(300));
    fake.fail_next([DnbFault::Pass, DnbFault::AnswerThenStall]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let db = dir.path().join("journal.db");
    std::fs::write(
        &config,
        format!(
            "server:\n  bind: \"127.0.0.1:{}\"\nstorage:\n  url: \"sqlite://{}\"\n\
             dnb:\n  base_url: \"{}\"\n  client_key: \"{FAKE_KEY}\"\n  client_secret: \"{FAKE_SECRET}\"\n\
             \x20 registrations: [\"{REG}\"]\n  rate_limit_per_sec: 50\n\
             \x20 pull:\n    interval_secs: 1\n    max_notifications: 100\n\
             log:\n  level: info\n  format: json\n",
            free_port(),
            db.display(),
            fake.base_url()
        ),
    )
    .unwrap();
    let log = dir.path().join("pull.log");
    let mut child = run_binary(&config, &log, &["pull"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.pulled(REG) < 200 {
        assert!(
            Instant::now() < deadline,
            "the stalled pull never came: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act: kill -9 while the second page is in the bridge's hands, then start again.
    child.kill().unwrap();
    child.wait().unwrap();
    let journaled_at_kill = count(&db, "SELECT count(*) FROM notifications");
    let marked = count(&db, "SELECT in_flight FROM registrations");
    let restarted = run_binary(&config, &log, &["pull", "--once"]);
    let output = tokio::task::spawn_blocking(move || restarted.wait_with_output().unwrap())
        .await
        .unwrap();

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(journaled_at_kill, 100, "only the first page was committed");
    assert_eq!(marked, 1, "the registration was marked in flight");
    assert_eq!(fake.pending(REG), 0);
    assert!(fake.count("replay") >= 1, "the restart replayed");
    assert_eq!(count(&db, "SELECT count(*) FROM notifications"), 300);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT duns) FROM notifications"),
        300
    );
    assert_eq!(count(&db, "SELECT in_flight FROM registrations"), 0);
    assert!(stdout.contains(&format!("{REG}: pulled 100")), "{stdout}");
}

#[tokio::test]
async fn pull_refuses_to_run_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  url: \"sqlite://{}\"\ndnb:\n  client_key: \"\"\n  client_secret: \"\"\n  registrations: [\"{REG}\"]\n",
            dir.path().join("journal.db").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
        .args(["--config", config.to_str().unwrap(), "pull", "--once"])
        .env_remove("DNB_CLIENT_KEY")
        .env_remove("DNB_CLIENT_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("dnb.client_key"), "{stderr}");
    assert!(stderr.contains("dnb.client_secret"), "{stderr}");
}
