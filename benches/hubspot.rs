//! HubSpot benchmark of the release binary: `make bench-hubspot`.
//!
//! The fake HubSpot portal of the integration tests runs in this process with
//! the lower tier's limits (100 requests per rolling 10 s, 5 searches per
//! second; every request checked against HubSpot's OpenAPI specs), seeded with
//! the bridge's alert properties, an owner and 450 of the 500 benchmark
//! companies. A `serve` with HubSpot enabled (default rate limits and workers)
//! runs on a temporary journal, pinned to CPU 0 while this process takes CPU 1.
//! The benchmark posts 1,000 signed notifications over the 500 DUNS, 10 per
//! request at a steady 100 per second, with the type mix and shapes of the
//! sample NDJSON file, waits until the journal has finished all of them, stops
//! the service with SIGTERM and prints API calls, 429s, duplicates, final
//! statuses and receipt-to-done latency against the targets. It is a
//! figure-printing program (`harness = false`), not a test: it exits non-zero
//! when a notification is not done or skipped or HubSpot holds a duplicate; a
//! missed performance target only prints a MISS line.
//!
//! By default the journal is a temporary SQLite file and one process serves it.
//! `BENCH_STORAGE=postgres` puts it in PostgreSQL instead (`BENCH_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`), in a fresh schema
//! `bench_<random>` named in the service's URL (`search_path`) and dropped at the
//! end, and `BENCH_REPLICAS=N` (default 1; PostgreSQL only) starts N `serve`
//! processes on it, on different ports and otherwise with the same config: the
//! default rate limits, which are the portal-wide budget the replicas share
//! through the database. Requests go to the replicas round robin, and the journal
//! checks read PostgreSQL. Every replica is pinned to CPU 0, so the services
//! together get the one core a single service gets and the fake and the load
//! keep CPU 1; the PostgreSQL server is not pinned. `make bench-hubspot-replicas`
//! runs three replicas.

// Shared with the integration tests, which use more of it than this bench.
#[path = "../tests/api/fake_hubspot/mod.rs"]
mod fake_hubspot;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use chrono::{SecondsFormat, Utc};
use dnb_hubspot_bridge::config::WorkerSettings;
use dnb_hubspot_bridge::signature::SigningSecret;
use fake_hubspot::{FakeConfig, FakeHubSpot};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The secret deliveries are signed with (base64 of a 32-byte benchmark key).
const SECRET: &str = "whsec_YmVuY2gtaHVic3BvdC1zaWduaW5nLXNlY3JldC0wMTI=";
/// Notifications posted, over this many DUNS (each DUNS gets two).
const NOTIFICATIONS: usize = 1_000;
const DUNS_COUNT: usize = 500;
/// DUNS indices `k` with `k % 10 == MISSING` have no company in the portal (50 of 500).
const MISSING: usize = 9;
/// Notifications per request, one request per interval: 100 notifications per second.
const PER_REQUEST: usize = 10;
const REQUEST_INTERVAL: Duration = Duration::from_millis(100);
/// The sample whose 20 notifications give the type mix and the shapes (relative to the crate).
const SAMPLES: &str = "samples/DEMO_PORTFOLIO_20250303070000_NOTIFICATION_1.ndjson";
/// What the bridge writes into every task and note body, followed by the notification id.
const MARKER: &str = "dnb-hubspot-bridge notification ";
/// The company properties the bridge writes besides the DUNS property, which must exist.
fn alert_properties() -> Vec<String> {
    dnb_hubspot_bridge::hubspot::properties::required("duns_number")
        .into_iter()
        .skip(1)
        .map(|property| property.name)
        .collect()
}
/// The seeded owner, also the service's `default_owner_email`.
const OWNER_EMAIL: &str = "owner@bench.example";
/// Targets: API calls per notification, and p99 receipt-to-done before adding the batch wait.
const MAX_CALLS_PER_NOTIFICATION: f64 = 0.05;
const P99_BUDGET_MS: i64 = 2_000;
/// CPUs of the service and of this process (the fake HubSpot and the load generator).
const SERVICE_CPU: u32 = 0;
const LOAD_CPU: u32 = 1;
/// Longest waits: for `/health`, for every notification to finish, for exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const FINISH_TIMEOUT: Duration = Duration::from_secs(600);
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// The PostgreSQL server of `BENCH_STORAGE=postgres` unless `BENCH_POSTGRES_URL` names another.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench-hubspot: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when a correctness check failed.
fn run() -> anyhow::Result<bool> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/release/dnb-hubspot-bridge");
    if !binary.is_file() {
        bail!("{} is missing: run `make bench-hubspot`", binary.display());
    }
    let feed = Feed::load(&root.join(SAMPLES))?;
    let postgres = match std::env::var("BENCH_STORAGE").as_deref() {
        Err(_) | Ok("" | "sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => bail!("BENCH_STORAGE={other}: expected sqlite or postgres"),
    };
    let replicas: usize = match std::env::var("BENCH_REPLICAS") {
        Ok(value) => value
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .with_context(|| format!("BENCH_REPLICAS={value}: expected a number from 1"))?,
        Err(_) => 1,
    };
    if replicas > 1 && !postgres {
        bail!(
            "BENCH_REPLICAS={replicas} needs BENCH_STORAGE=postgres: a SQLite journal has one process"
        );
    }
    // Pinned before the runtime exists, so every thread it starts inherits the mask.
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", &LOAD_CPU.to_string()])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    // One thread serves the fake and drives the load, so both stay on their CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let storage = match postgres {
            false => Storage::sqlite()?,
            true => {
                let base = std::env::var("BENCH_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
                Storage::postgres(&base).await?
            }
        };
        // The services are stopped (or killed, on an error) before the schema goes.
        let result = bench(&binary, &feed, &storage, replicas, pinned).await;
        let dropped = storage.remove().await;
        let passed = result?;
        dropped?;
        Ok(passed)
    })
}

/// Starts the fake and the services, posts, waits, stops and reports.
async fn bench(
    binary: &Path,
    feed: &Feed,
    storage: &Storage,
    replicas: usize,
    pinned: bool,
) -> anyhow::Result<bool> {
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    let seeded = seed(&fake);
    let placement = match (pinned, replicas) {
        (true, 1) => "service on CPU 0, fake and load on CPU 1".to_string(),
        (true, n) => format!("{n} services on CPU 0, fake and load on CPU 1"),
        (false, _) => "unpinned (taskset failed)".to_string(),
    };
    let specs = match fake.validating() {
        true => "on",
        false => "OFF, specs missing",
    };
    println!(
        "bench-hubspot: {NOTIFICATIONS} notifications over {DUNS_COUNT} DUNS ({seeded} with a company), \
             {PER_REQUEST} per request every {} ms; fake HubSpot at default limits (spec checks {specs}); \
             journal {}, {replicas} serve process{}; {placement}",
        REQUEST_INTERVAL.as_millis(),
        storage.describe(),
        if replicas == 1 { "" } else { "es" },
    );
    let mut services = Vec::with_capacity(replicas);
    for _ in 0..replicas {
        services.push(Service::start(binary, pinned, &fake, &storage.url())?);
    }
    for service in &mut services {
        service.wait_healthy().await?;
    }
    let posted = post_all(&services, feed).await?;
    let complete = wait_finished(storage, posted.accepted).await?;
    let exits = stop_all(&mut services).await?;
    let journal = JournalFigures::read(storage).await?;
    Ok(report(&fake, &posted, &journal, &exits, seeded, complete))
}

/// Seeds the alert properties, the owner and the companies; returns how many companies.
fn seed(fake: &FakeHubSpot) -> usize {
    for name in alert_properties() {
        fake.add_property(&name, false);
    }
    let owner = fake.add_owner(OWNER_EMAIL);
    // Created a day ago, so already searchable like any established record.
    let yesterday = Utc::now() - chrono::Duration::days(1);
    for k in (0..DUNS_COUNT).filter(|k| k % 10 != MISSING) {
        let mut properties = vec![
            ("name", format!("Bench Company {k}")),
            ("duns_number", duns(k)),
        ];
        // Half the companies have an owner; the tasks of the others go to the default owner.
        if k % 2 == 0 {
            properties.push(("hubspot_owner_id", owner.clone()));
        }
        fake.add_company_created_at(properties, yesterday);
    }
    fake.companies().len()
}

/// The DUNS of index `k`: distinct for `k < DUNS_COUNT` (3^18 is coprime with 8·10^8)
/// and below 900,000,000, where the free TRANSFER successors start.
fn duns(k: usize) -> String {
    format!(
        "{:09}",
        100_000_000 + (k as u64 * 387_420_489) % 800_000_000
    )
}

/// The notifications to post, built from the sample NDJSON's shapes in its type order.
struct Feed {
    /// The sample's notifications; notification `i` follows `templates[i % len]`.
    templates: Vec<Value>,
    /// The DUNS index of each notification: every DUNS twice, in a fixed shuffled order.
    order: Vec<usize>,
}

impl Feed {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let templates: Vec<Value> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .context("parsing the sample NDJSON")?;
        if templates.is_empty() {
            bail!("{} holds no notification", path.display());
        }
        // Fisher-Yates driven by a fixed xorshift: the same order every run, with gaps
        // between a DUNS's two notifications from none (one envelope) to the whole run.
        let mut order: Vec<usize> = (0..NOTIFICATIONS).map(|i| i % DUNS_COUNT).collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        Ok(Self { templates, order })
    }

    /// Notification `i`, delivered at `delivered`, with contents unique to it.
    fn notification(&self, i: usize, delivered: &str) -> Value {
        let k = self.order[i];
        let mut item = self.templates[i % self.templates.len()].clone();
        item["organization"]["duns"] = json!(duns(k));
        item["deliveryTimeStamp"] = json!(delivered);
        let kind = item["type"].as_str().unwrap_or_default().to_owned();
        let elements = item["elements"].as_array_mut();
        match (kind.as_str(), elements) {
            // The name a created company gets; the rest of the sample's organization block stays.
            ("SEED" | "FULL_PRODUCT", _) => {
                item["organization"]["primaryName"] = json!(format!("Bench Company {k} ({kind})"));
            }
            // The sample's one or two elements plus one of this notification's own.
            ("UPDATE", Some(elements)) => elements.push(json!({
                "element": "organization.corporateLinkage.globalUltimateFamilyTreeMembersCount",
                "previous": i, "current": i + 1, "timestamp": "2024-05-13T02:01:46Z",
            })),
            // A successor in every other cycle free (the company moves), else a company's (a possible merge).
            ("TRANSFER", Some(elements)) if !elements.is_empty() => {
                let successor = match (i / self.templates.len()) % 2 {
                    0 => format!("{}", 900_000_000 + i),
                    _ => duns((k / 10 * 10 + 10) % DUNS_COUNT),
                };
                elements[0]["previous"] = json!(duns(k));
                elements[0]["current"] = json!(successor);
            }
            _ => {}
        }
        item
    }
}

/// The journal the services share: a temporary SQLite file, or a fresh PostgreSQL schema.
enum Storage {
    Sqlite {
        path: PathBuf,
        /// Removed on drop, after the services.
        _dir: TempDir,
    },
    Postgres {
        /// The server's URL with the schema as `search_path`: the services' and the reads'.
        url: String,
        schema: String,
        pool: sqlx::PgPool,
    },
}

impl Storage {
    fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bench-hubspot-journal-")
            .tempdir()?;
        Ok(Self::Sqlite {
            path: dir.path().join("journal.db"),
            _dir: dir,
        })
    }

    /// Creates the schema `bench_<random>` on the server at `base`.
    async fn postgres(base: &str) -> anyhow::Result<Self> {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(base)
            .await
            .with_context(|| format!("connecting to {base}"))?;
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .context("creating the benchmark schema")?;
        admin.close().await?;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await?;
        Ok(Self::Postgres { url, schema, pool })
    }

    fn describe(&self) -> String {
        match self {
            Self::Sqlite { .. } => "SQLite (temporary file)".into(),
            Self::Postgres { schema, .. } => format!("PostgreSQL (schema {schema})"),
        }
    }

    /// `storage.url` of the services.
    fn url(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            Self::Postgres { url, .. } => url.clone(),
        }
    }

    /// The rows of a `SELECT label, count(*) … GROUP BY` query.
    async fn counts(&self, sql: &'static str) -> anyhow::Result<BTreeMap<String, u64>> {
        match self {
            Self::Sqlite { path, .. } => {
                let path = path.clone();
                // Off the runtime's only thread: the fake must keep answering meanwhile.
                tokio::task::spawn_blocking(move || counts(&open_journal(&path)?, sql)).await?
            }
            Self::Postgres { pool, .. } => {
                let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(label, count)| (label, count.unsigned_abs()))
                    .collect())
            }
        }
    }

    /// The `(i64, i64)` rows of a query.
    async fn pairs(&self, sql: &'static str) -> anyhow::Result<Vec<(i64, i64)>> {
        match self {
            Self::Sqlite { path, .. } => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let db = open_journal(&path)?;
                    let mut statement = db.prepare(sql)?;
                    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                    Ok(rows.collect::<Result<_, _>>()?)
                })
                .await?
            }
            Self::Postgres { pool, .. } => Ok(sqlx::query_as(sql).fetch_all(pool).await?),
        }
    }

    /// The `(label, count)` rows of a query whose labels may repeat.
    async fn labelled(&self, sql: &'static str) -> anyhow::Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = match self {
            Self::Sqlite { path, .. } => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let db = open_journal(&path)?;
                    let mut statement = db.prepare(sql)?;
                    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                    Ok(rows.collect::<Result<_, _>>()?)
                })
                .await??
            }
            Self::Postgres { pool, .. } => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(label, count)| (label, count.unsigned_abs()))
            .collect())
    }

    /// Drops the PostgreSQL schema; the SQLite file goes with its directory.
    async fn remove(&self) -> anyhow::Result<()> {
        if let Self::Postgres { schema, pool, .. } = self {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(pool)
                .await
                .with_context(|| format!("dropping the schema {schema}"))?;
            pool.close().await;
        }
        Ok(())
    }
}

/// A `serve` process on the benchmark's journal, pointed at the fake.
struct Service {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
    /// Removed on drop, after the process.
    _dir: TempDir,
}

impl Service {
    /// Writes a config (free port, HubSpot enabled, the journal at `storage_url`, everything
    /// else default) and starts the binary.
    fn start(
        binary: &Path,
        pinned: bool,
        fake: &FakeHubSpot,
        storage_url: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bench-hubspot-")
            .tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let (config, log) = (dir.path().join("config.yaml"), dir.path().join("serve.log"));
        let hubspot = format!(
            "hubspot:\n  enabled: true\n  base_url: \"{}\"\n  api_token: \"{}\"\n  default_owner_email: \"{OWNER_EMAIL}\"\n",
            fake.base_url(),
            fake.token()
        );
        let rest = format!(
            "server:\n  bind: \"{address}\"\nwebhook:\n  secrets: [\"{SECRET}\"]\nstorage:\n  url: \"{storage_url}\"\nlog:\n  level: warn\n"
        );
        std::fs::write(&config, rest + &hubspot)?;
        let mut command = Command::new(binary);
        if pinned {
            // taskset execs the binary, so the child's pid is the service's.
            command = Command::new("taskset");
            command.args(["-c", &SERVICE_CPU.to_string()]).arg(binary);
        }
        command.arg("--config").arg(&config).arg("serve");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        command.env_remove("RUST_LOG");
        // As in bench-ingest: `BRIDGE__…` variables would override the file, and
        // `BENCH_BRIDGE__…` ones are passed on as `BRIDGE__…` for experiments.
        for (name, value) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("BRIDGE__") {
                command.env_remove(&name);
            }
            if let Some(key) = name
                .strip_prefix("BENCH_")
                .filter(|key| key.starts_with("BRIDGE__"))
            {
                command.env(key, value);
            }
        }
        let child = command.spawn().context("starting the service")?;
        Ok(Self {
            child,
            address,
            log,
            _dir: dir,
        })
    }

    /// Waits for `GET /health` to answer 200.
    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/health", self.address);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the service exited with {status} at start:\n{}",
                    self.log_tail()
                );
            }
            if reqwest::get(&url)
                .await
                .is_ok_and(|answer| answer.status() == 200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the service did not become healthy:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        if !Command::new("kill")
            .args(["-TERM", &pid])
            .status()?
            .success()
        {
            bail!("kill -TERM {pid} failed");
        }
        Ok(())
    }

    /// Waits for the exit after SIGTERM, the fake answering meanwhile.
    async fn wait_exit(&mut self, deadline: Instant) -> anyhow::Result<ExitStatus> {
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "the service did not exit within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
            self.log_tail()
        )
    }

    /// The end of the service's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Service {
    /// Never leaves a service behind when the benchmark fails half-way.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What posting saw.
struct Posted {
    /// Requests sent, and those answered 202.
    requests: usize,
    accepted_202: usize,
    /// Notifications the 202 answers accepted.
    accepted: u64,
    /// Unix milliseconds just before the first request.
    first_post_ms: i64,
    /// From the first request to the last answer.
    elapsed: Duration,
}

/// Stops every service at once (SIGTERM to all, then the exits).
async fn stop_all(services: &mut [Service]) -> anyhow::Result<Vec<ExitStatus>> {
    for service in services.iter() {
        service.terminate()?;
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut exits = Vec::with_capacity(services.len());
    for service in services.iter_mut() {
        exits.push(service.wait_exit(deadline).await?);
    }
    Ok(exits)
}

/// Posts every notification, `PER_REQUEST` per signed request, one request per
/// `REQUEST_INTERVAL`, to the services in turn.
async fn post_all(services: &[Service], feed: &Feed) -> anyhow::Result<Posted> {
    let client = reqwest::Client::new();
    let secret = SigningSecret::parse(SECRET).expect("the benchmark secret is valid");
    let urls: Vec<String> = services
        .iter()
        .map(|service| format!("http://{}/webhooks/dnb", service.address))
        .collect();
    let mut ticks = tokio::time::interval(REQUEST_INTERVAL);
    let (started, first_post_ms) = (Instant::now(), unix_ms());
    let mut answers = Vec::new();
    for (request, first) in (0..NOTIFICATIONS).step_by(PER_REQUEST).enumerate() {
        ticks.tick().await;
        let now = Utc::now();
        let items: Vec<Value> = (first..NOTIFICATIONS.min(first + PER_REQUEST))
            .map(|i| {
                // Distinct per item and in time order, as D&B stamps a DUNS's notifications.
                let delivered = now + chrono::Duration::milliseconds((i - first) as i64);
                feed.notification(i, &delivered.to_rfc3339_opts(SecondsFormat::Millis, true))
            })
            .collect();
        let body = serde_json::to_vec(&json!({ "notifications": items }))?;
        let id = format!("msg_bench_hubspot_{request}");
        let timestamp = unix_ms() / 1000;
        let send = client
            .post(&urls[request % urls.len()])
            .header("content-type", "application/json")
            .header("webhook-signature", secret.sign(&id, timestamp, &body))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .body(body)
            .send();
        // Each request on its own task, so a slow answer never delays the next tick.
        answers.push(tokio::spawn(async move {
            let answer = send.await.ok().filter(|answer| answer.status() == 202)?;
            answer.json::<Value>().await.ok()?["accepted"].as_u64()
        }));
    }
    let requests = answers.len();
    let (mut accepted_202, mut accepted) = (0, 0);
    for answer in answers {
        if let Some(count) = answer.await? {
            accepted_202 += 1;
            accepted += count;
        }
    }
    let elapsed = started.elapsed();
    Ok(Posted {
        requests,
        accepted_202,
        accepted,
        first_post_ms,
        elapsed,
    })
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Polls the journal until every accepted notification is there and none is pending or
/// processing; `false` on timeout.
async fn wait_finished(storage: &Storage, accepted: u64) -> anyhow::Result<bool> {
    let deadline = Instant::now() + FINISH_TIMEOUT;
    loop {
        let statuses = storage
            .counts("SELECT status, count(*) FROM notifications GROUP BY status")
            .await?;
        let unfinished: u64 = ["pending", "processing"]
            .iter()
            .filter_map(|s| statuses.get(*s))
            .sum();
        if unfinished == 0 && statuses.values().sum::<u64>() >= accepted {
            return Ok(true);
        }
        if Instant::now() > deadline {
            println!("timed out after {FINISH_TIMEOUT:?} waiting for the workers: {statuses:?}");
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The journal, read-only: the service owns it.
fn open_journal(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))
}

/// The rows of a `SELECT label, count(*) … GROUP BY` query.
fn counts(db: &rusqlite::Connection, sql: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut statement = db.prepare(sql)?;
    let rows = statement.query_map([], |row| {
        Ok((row.get(0)?, row.get::<_, i64>(1)?.unsigned_abs()))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the journal says after the service stopped.
struct JournalFigures {
    /// "status" or "status (reason)" -> notifications.
    statuses: BTreeMap<String, u64>,
    /// Attempt outcome -> attempts (deferred ones waited on HubSpot as a whole).
    attempts: BTreeMap<String, u64>,
    /// Receipt to the end of the finishing attempt, per finished notification, sorted (ms).
    latencies_ms: Vec<i64>,
    /// When the last notification finished (unix ms).
    last_finished_ms: Option<i64>,
    /// Per `serve` process: batches processed and the attempts in them.
    batches: BTreeMap<String, (u64, u64)>,
}

impl JournalFigures {
    async fn read(storage: &Storage) -> anyhow::Result<Self> {
        let statuses = storage
            .counts(
                "SELECT status || coalesce(' (' || reason || ')', ''), count(*) \
                 FROM notifications GROUP BY 1",
            )
            .await?;
        let attempts = storage
            .counts("SELECT outcome, count(*) FROM attempts GROUP BY outcome")
            .await?;
        let finished = storage
            .pairs(
                "SELECT n.received_at, a.finished_at \
                 FROM attempts a JOIN notifications n ON n.id = a.notification_id \
                 WHERE a.outcome IN ('done', 'skipped')",
            )
            .await?;
        let mut latencies_ms: Vec<i64> = finished
            .iter()
            .map(|(received, done)| done - received)
            .collect();
        latencies_ms.sort_unstable();
        let last_finished_ms = finished.iter().map(|(_, done)| *done).max();
        // A worker's name is its process's instance and its number; its batch, one start time.
        let mut batches: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let rows = storage
            .labelled(
                "SELECT worker, count(*) FROM attempts GROUP BY worker, started_at ORDER BY 1",
            )
            .await?;
        for (worker, notifications) in rows {
            let process = worker
                .rsplit_once('-')
                .map_or(worker.as_str(), |(process, _)| process)
                .to_owned();
            let (count, total) = batches.entry(process).or_default();
            *count += 1;
            *total += notifications;
        }
        Ok(Self {
            statuses,
            attempts,
            latencies_ms,
            last_finished_ms,
            batches,
        })
    }

    /// Nearest-rank percentile of the latencies.
    fn percentile(&self, percentile: f64) -> Option<i64> {
        let sorted = &self.latencies_ms;
        let rank = ((percentile / 100.0) * sorted.len() as f64).ceil() as usize;
        (!sorted.is_empty()).then(|| sorted[rank.clamp(1, sorted.len()) - 1])
    }
}

/// Duplicates in the portal, found by the markers in task and note bodies and by DUNS.
struct Duplicates {
    /// Notifications with more than one task.
    tasks: usize,
    /// Notes whose marker set an earlier note already has.
    notes: usize,
    /// Notifications whose marker is in more than one note (notes covering overlapping sets).
    multi_noted: usize,
    /// DUNS held by more than one company.
    companies: usize,
}

impl Duplicates {
    fn find(fake: &FakeHubSpot) -> Self {
        // How many records each key is found in, and how many keys are found more than once.
        fn repeated<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> usize {
            let mut seen: HashMap<K, usize> = HashMap::new();
            keys.for_each(|key| *seen.entry(key).or_default() += 1);
            seen.values().filter(|n| **n > 1).count()
        }
        let bodies = |records: Vec<fake_hubspot::CrmRecord>,
                      property: &str|
         -> Vec<BTreeSet<u64>> {
            records
                .iter()
                .map(|record| markers(record.properties.get(property).map_or("", String::as_str)))
                .collect()
        };
        let tasks = bodies(fake.tasks(), "hs_task_body");
        let notes = bodies(fake.notes(), "hs_note_body");
        let companies = fake.companies();
        Self {
            tasks: repeated(tasks.iter().flatten()),
            notes: notes.len() - notes.iter().collect::<BTreeSet<_>>().len(),
            multi_noted: repeated(notes.iter().flatten()),
            companies: repeated(
                companies
                    .iter()
                    .filter_map(|company| company.properties.get("duns_number")),
            ),
        }
    }

    fn total(&self) -> usize {
        self.tasks + self.notes + self.multi_noted + self.companies
    }
}

/// The notification ids of the markers in a task or note body.
fn markers(body: &str) -> BTreeSet<u64> {
    let digits = |rest: &str| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    body.split(MARKER).skip(1).filter_map(digits).collect()
}

/// Prints every figure and the targets; returns whether the correctness checks passed.
fn report(
    fake: &FakeHubSpot,
    posted: &Posted,
    journal: &JournalFigures,
    exits: &[ExitStatus],
    seeded: usize,
    complete: bool,
) -> bool {
    let requests = fake.requests();
    let calls = requests.len();
    let per_notification = calls as f64 / NOTIFICATIONS as f64;
    // Rate-limiter refusals are logged with status 429 too: counting the log covers both kinds.
    let answered_429 = requests
        .iter()
        .filter(|request| request.status == Some(429))
        .count();
    let duplicates = Duplicates::find(fake);
    let finished: u64 = (journal.statuses.iter())
        .filter(|(status, _)| status.starts_with("done") || status.starts_with("skipped"))
        .map(|(_, count)| count)
        .sum();
    let all_finished =
        complete && posted.accepted == NOTIFICATIONS as u64 && finished == posted.accepted;
    let list = |map: &BTreeMap<String, u64>| {
        map.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ms = |value: Option<i64>| value.map_or_else(|| "n/a".to_string(), |ms| format!("{ms} ms"));
    let wall = journal
        .last_finished_ms
        .map(|last| format!("{:.1} s", (last - posted.first_post_ms) as f64 / 1000.0));
    let (p50, p99) = (journal.percentile(50.0), journal.percentile(99.0));

    println!();
    println!(
        "posted:               {} requests in {:.1} s, {} answered 202, {} notifications accepted",
        posted.requests,
        posted.elapsed.as_secs_f64(),
        posted.accepted_202,
        posted.accepted
    );
    println!(
        "wall time:            {} from first post to last notification finished",
        wall.as_deref().unwrap_or("n/a")
    );
    println!("final statuses:       {}", list(&journal.statuses));
    println!("attempts:             {}", list(&journal.attempts));
    println!("HubSpot API calls:    {calls} ({per_notification:.3} per notification)");
    // Per endpoint: inputs per call show how full the batches were, statuses how they ended.
    let mut endpoints: BTreeMap<String, (usize, usize, BTreeMap<String, u64>)> = BTreeMap::new();
    for request in &requests {
        let name = request
            .route
            .as_ref()
            .map_or_else(|| request.path.clone(), |route| route.endpoint.to_string());
        let (count, inputs, statuses) = endpoints.entry(name).or_default();
        *count += 1;
        *inputs += (request.body.as_ref())
            .and_then(|body| body["inputs"].as_array())
            .map_or(0, Vec::len);
        let status = request
            .status
            .map_or_else(|| "none".to_string(), |status| status.to_string());
        *statuses.entry(status).or_default() += 1;
    }
    for (name, (count, inputs, statuses)) in &endpoints {
        let mean = *inputs as f64 / *count as f64;
        println!(
            "  {name:<26} {count:>4} calls, {mean:>5.1} inputs/call, answered {}",
            list(statuses)
        );
    }
    println!(
        "429 answers:          {answered_429} (of which rate-limiter refusals: {})",
        fake.throttled()
    );
    println!("spec violations:      {}", fake.violations().len());
    println!(
        "written to HubSpot:   {} tasks, {} notes, {} companies created",
        fake.tasks().len(),
        fake.notes().len(),
        fake.companies().len() - seeded
    );
    println!(
        "duplicates:           {} notifications with >1 task, {} notes repeating a marker set, \
         {} notifications in >1 note, {} DUNS on >1 company",
        duplicates.tasks, duplicates.notes, duplicates.multi_noted, duplicates.companies
    );
    println!(
        "receipt-to-done:      p50 {}, p99 {} (n = {})",
        ms(p50),
        ms(p99),
        journal.latencies_ms.len()
    );
    let mean = |(batches, attempts): (u64, u64)| attempts as f64 / batches.max(1) as f64;
    let (batches, attempts) = (journal.batches.values())
        .fold((0, 0), |(b, a), (batches, attempts)| {
            (b + batches, a + attempts)
        });
    println!(
        "batches processed:    {batches} ({:.1} attempts per batch)",
        mean((batches, attempts))
    );
    if journal.batches.len() > 1 {
        for (process, counts) in &journal.batches {
            println!(
                "  process {process:<20} {:>4} batches, {:>5.1} attempts/batch",
                counts.0,
                mean(*counts)
            );
        }
    }
    let exits: Vec<String> = exits.iter().map(ToString::to_string).collect();
    println!("service exit:         {}", exits.join(", "));

    let batch_wait = std::env::var("BENCH_BRIDGE__WORKERS__BATCH_MAX_WAIT_MS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(WorkerSettings::default().batch_max_wait_ms as i64);
    let budget = P99_BUDGET_MS + batch_wait;
    let target = |ok: bool, text: String| println!("  {} {text}", if ok { "OK  " } else { "MISS" });
    println!("\ntargets:");
    target(
        per_notification <= MAX_CALLS_PER_NOTIFICATION,
        format!(
            "API calls per notification {per_notification:.3} (target <= {MAX_CALLS_PER_NOTIFICATION})"
        ),
    );
    target(answered_429 == 0, format!("429s {answered_429} (target 0)"));
    target(
        duplicates.total() == 0,
        format!("duplicates {} (target 0)", duplicates.total()),
    );
    target(
        all_finished,
        format!("done or skipped {finished} of {NOTIFICATIONS} (target all)"),
    );
    target(
        p99.is_some_and(|p99| p99 < budget),
        format!("p99 receipt-to-done {} (target < {budget} ms)", ms(p99)),
    );
    all_finished && duplicates.total() == 0
}
