//! `spawn_app` and the helpers every test uses: a real SQLite file in a temp
//! folder, port 0, real HTTP over loopback, one signing helper.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dnb_hubspot_bridge::app::{Application, Overrides};
use dnb_hubspot_bridge::config::Settings;
use dnb_hubspot_bridge::hubspot::{DryRunExecutor, Executor};
use dnb_hubspot_bridge::journal::ManualClock;
use dnb_hubspot_bridge::signature::SigningSecret;
use dnb_hubspot_bridge::telemetry;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The secret test deliveries are signed with.
pub const SECRET: &str = "whsec_dGVzdC1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5";
/// A second configured secret, as during a rotation.
pub const ROTATED_SECRET: &str = "whsec_cm90YXRlZC1zZWNyZXQtYWJjZGVmZ2hpams=";

/// The project's synthetic D&B samples (`samples/`).
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(samples_dir().join(name)).expect("samples/ is part of the repository")
}

/// The folder of the project's synthetic D&B samples.
pub fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// The NDJSON NOTIFICATION sample (21 notifications over 7 DUNS).
pub const NDJSON_SAMPLE: &str = "DEMO_PORTFOLIO_20250303070000_NOTIFICATION_1.ndjson";

/// The acceptance set `../shared/samples`, when it is beside the project.
/// Without it the caller skips with a printed notice, except under `CI=true`,
/// where its absence fails the test.
pub fn shared_samples(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/samples");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: ../shared/samples is missing (required under CI=true)"
    );
    // Straight to stderr, past the test harness's capture, so `make test` shows it.
    let _ = writeln!(
        std::io::stderr(),
        "notice: {test} skipped: ../shared/samples is not beside the project"
    );
    None
}

/// Standard Webhooks signature header for a delivery.
pub fn sign(secret: &str, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    SigningSecret::parse(secret)
        .unwrap()
        .sign(webhook_id, timestamp, body)
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh unique webhook id.
pub fn new_webhook_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// A valid notification of `kind` for `duns`, delivered at `delivered` (RFC 3339).
pub fn notification(kind: &str, duns: &str, delivered: &str) -> serde_json::Value {
    serde_json::json!({"type": kind, "organization": {"duns": duns}, "elements": [], "deliveryTimeStamp": delivered})
}

/// Settings for a test app: temp journal, port 0, one test secret, fast polling.
pub fn test_settings(journal: &std::path::Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.webhook.secrets = vec![
        SecretString::from(SECRET),
        SecretString::from(ROTATED_SECRET),
    ];
    settings.storage.url = format!("sqlite://{}", journal.display());
    settings.workers.poll_interval_ms = 50;
    settings.workers.batch_max_wait_ms = 5;
    settings
}

/// A running application.
pub struct TestApp {
    /// Where it listens.
    pub address: SocketAddr,
    /// The journal file.
    pub db_path: PathBuf,
    /// HTTP client.
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Starts the app with default test settings and the dry-run executor.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Arc::new(DryRunExecutor)).await
}

/// Starts the app after `configure` adjusted the settings, with `executor`.
pub async fn spawn_app_with(
    configure: impl FnOnce(&mut Settings),
    executor: Arc<dyn Executor>,
) -> TestApp {
    let overrides = Overrides {
        executor: Some(executor),
        ..Overrides::default()
    };
    spawn(configure, overrides).await
}

/// Starts the app with the executor its settings select (the HubSpot one when enabled).
pub async fn spawn_configured_app(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(configure, Overrides::default()).await
}

/// Starts the app with `executor` (or the one its settings select) on a clock the test moves:
/// leases run out and retries come due when the test says, not after a sleep.
pub async fn spawn_app_on_clock(
    configure: impl FnOnce(&mut Settings),
    executor: Option<Arc<dyn Executor>>,
    clock: Arc<ManualClock>,
) -> TestApp {
    let overrides = Overrides {
        executor,
        clock: Some(clock),
    };
    spawn(configure, overrides).await
}

async fn spawn(configure: impl FnOnce(&mut Settings), overrides: Overrides) -> TestApp {
    telemetry::tracing::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("journal.db");
    let mut settings = test_settings(&db_path);
    configure(&mut settings);
    let errors = dnb_hubspot_bridge::config::validate(&settings);
    assert!(errors.is_empty(), "test settings invalid: {errors:?}");
    let shutdown = CancellationToken::new();
    let app = Application::build_with(settings, shutdown.clone(), overrides)
        .await
        .expect("app builds");
    let address = app.address();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        db_path,
        client: reqwest::Client::new(),
        shutdown,
        handle,
        _dir: dir,
    }
}

impl TestApp {
    /// `http://address{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Posts a body signed with the test secret.
    pub async fn post_signed_webhook(
        &self,
        body: impl Into<Vec<u8>>,
        content_type: &str,
    ) -> reqwest::Response {
        let webhook_id = new_webhook_id();
        self.post_webhook_as(body, content_type, &webhook_id, now_secs(), SECRET)
            .await
    }

    /// Posts a body with the given delivery id, timestamp and secret.
    pub async fn post_webhook_as(
        &self,
        body: impl Into<Vec<u8>>,
        content_type: &str,
        webhook_id: &str,
        timestamp: i64,
        secret: &str,
    ) -> reqwest::Response {
        let body = body.into();
        let signature = sign(secret, webhook_id, timestamp, &body);
        self.client
            .post(self.url("/webhooks/dnb"))
            .header("content-type", content_type)
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Posts a signed body and returns the 202 answer.
    pub async fn accept(&self, body: impl Into<Vec<u8>>, content_type: &str) -> serde_json::Value {
        let response = self.post_signed_webhook(body, content_type).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 202, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// GET a path; status and body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A read-only connection to the journal file.
    pub fn db(&self) -> rusqlite::Connection {
        open_read_only(&self.db_path)
    }

    /// The first column of a one-row integer query.
    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |row| row.get(0)).unwrap()
    }

    /// Waits until `sql` (a count) returns `expected`.
    pub async fn wait_for_count(&self, sql: &str, expected: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.count(sql);
            if got == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sql} stayed at {got}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cancels the shutdown token and waits for a clean stop; the journal stays readable.
    pub async fn stop(self) -> Stopped {
        self.shutdown.cancel();
        self.handle.await.unwrap().expect("clean shutdown");
        Stopped {
            db_path: self.db_path,
            _dir: self._dir,
        }
    }
}

/// A stopped application's journal.
pub struct Stopped {
    /// The journal file.
    pub db_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stopped {
    /// The first column of a one-row integer query.
    pub fn count(&self, sql: &str) -> i64 {
        open_read_only(&self.db_path)
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }
}

/// A read-only connection to a journal file.
pub fn open_read_only(path: &std::path::Path) -> rusqlite::Connection {
    let connection =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    connection.busy_timeout(Duration::from_secs(5)).unwrap();
    connection
}

/// The value of one Prometheus sample line, 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}
