//! Ingest benchmark of the release binary: `make bench-ingest`.
//!
//! For 1 and then 10 notifications per request, a fresh `serve` (dry-run, the
//! default workers, `storage.synchronous: full`) is started on a temporary
//! journal and pinned to CPU 0, while this process, pinned to CPU 1, posts
//! signed, unique deliveries over 32 keep-alive HTTP/1.1 connections from a
//! single-threaded runtime: a 1 s warm-up, then `BENCH_SECONDS` (default 10)
//! measured (`BENCH_PHASES=10` runs that phase alone). It prints throughput
//! of 202 answers, latency percentiles and the service's peak RSS, then stops
//! the service with SIGTERM and checks that the journal holds exactly the
//! notifications the 202 answers reported accepted.
//!
//! `BENCH_STORAGE=postgres` (`make bench-ingest-postgres`) journals into
//! PostgreSQL instead (`BENCH_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): each phase gets a fresh schema
//! (`bench_<random>`, named in the service's URL as its `search_path` and
//! dropped at the end), `BENCH_REPLICAS=2` starts two `serve` processes on it
//! (both pinned to CPU 0, on different ports) and spreads the connections over
//! them round-robin. The PostgreSQL server runs wherever the scheduler puts
//! it: its CPU time (every `postgres` process, from `/proc`) over the
//! measured window is printed as a share of one core, with the part of it
//! spent by the benchmark's own backends.
//!
//! It is a figure-printing program (`harness = false`), not a test; it exits
//! non-zero when the journal does not match or the service misbehaves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use dnb_hubspot_bridge::config::{StorageSettings, WorkerSettings};
use dnb_hubspot_bridge::signature::SigningSecret;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tempfile::TempDir;
use tokio::net::TcpStream;

/// The secret deliveries are signed with (base64 of a 32-byte benchmark key).
const SECRET: &str = "whsec_YmVuY2gtaW5nZXN0LXNpZ25pbmctc2VjcmV0LTAxMjM=";
/// Keep-alive connections, each driven by its own task sending back to back.
const CONCURRENCY: usize = 32;
/// Load before the measured window whose figures are discarded (its 202s still count for the journal check).
const WARM_UP: Duration = Duration::from_secs(1);
/// Measured window when `BENCH_SECONDS` is not set.
const DEFAULT_SECONDS: u64 = 10;
/// Notifications per request of each phase, in order.
const PHASES: [usize; 2] = [1, 10];
/// The CPU the service runs on; the load generator takes [`LOAD_CPU`].
const SERVICE_CPU: u32 = 0;
/// The CPU of this process.
const LOAD_CPU: u32 = 1;
/// Longest wait for `GET /health` after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for exit after SIGTERM; above the service's 25 s `shutdown_timeout_secs`.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// The PostgreSQL server when `BENCH_POSTGRES_URL` is not set.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Where the service journals: `BENCH_STORAGE` (`sqlite`, the default, or `postgres`).
enum Storage {
    /// A fresh SQLite file per phase, in the service's temporary folder.
    Sqlite,
    /// A fresh schema per phase on the server at `url`, shared by `replicas` services.
    Postgres { url: String, replicas: usize },
}

impl Storage {
    fn from_env() -> anyhow::Result<Self> {
        let replicas = match std::env::var("BENCH_REPLICAS") {
            Ok(text) => match text.trim().parse::<usize>() {
                Ok(count) if count > 0 => count,
                _ => bail!("BENCH_REPLICAS must be a positive whole number, not {text:?}"),
            },
            Err(_) => 1,
        };
        let kind = std::env::var("BENCH_STORAGE").unwrap_or_else(|_| "sqlite".into());
        match kind.trim() {
            "sqlite" => {
                if replicas != 1 {
                    bail!(
                        "BENCH_REPLICAS needs BENCH_STORAGE=postgres: a SQLite journal has one process"
                    );
                }
                Ok(Self::Sqlite)
            }
            "postgres" | "postgresql" => Ok(Self::Postgres {
                url: std::env::var("BENCH_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into()),
                replicas,
            }),
            other => bail!("BENCH_STORAGE must be sqlite or postgres, not {other:?}"),
        }
    }

    fn replicas(&self) -> usize {
        match self {
            Self::Sqlite => 1,
            Self::Postgres { replicas, .. } => *replicas,
        }
    }
}

/// `url` with `params` (already percent-encoded `key=value` pairs) appended to its query.
fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// The server, user and database of a PostgreSQL URL, never its password.
fn describe_postgres(url: &str) -> String {
    match url.parse::<PgConnectOptions>() {
        Ok(options) => format!(
            "{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        ),
        Err(_) => "an unparsable URL".into(),
    }
}

/// A schema of its own for one phase on the PostgreSQL server.
struct Schema {
    /// Connections of this process (not counted as the benchmark's backends).
    admin: PgPool,
    name: String,
    /// What the services are given: the server URL naming the schema as `search_path`.
    service_url: String,
}

impl Schema {
    async fn create(url: &str) -> anyhow::Result<Self> {
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", describe_postgres(url)))?;
        let name = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .with_context(|| format!("creating schema {name}"))?;
        // sqlx passes `options` on at connection start; `application_name` lets the
        // benchmark tell the services' backends from any other client of the server.
        let service_url = with_params(
            url,
            &format!("application_name={name}&options=-c%20search_path%3D{name}"),
        );
        Ok(Self {
            admin,
            name,
            service_url,
        })
    }

    /// `SHOW synchronous_commit` on a connection opened as the services open theirs.
    async fn synchronous_commit(&self) -> anyhow::Result<String> {
        let options: PgConnectOptions = self.service_url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.application_name("bench-ingest"))
            .await?;
        let value: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        Ok(value)
    }

    /// Process ids of the backends the services have open now.
    async fn service_backends(&self) -> anyhow::Result<Vec<u32>> {
        let pids: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
                .bind(&self.name)
                .fetch_all(&self.admin)
                .await?;
        Ok(pids.into_iter().map(i32::unsigned_abs).collect())
    }

    /// Notifications in the schema, in total and by status.
    async fn count(&self) -> anyhow::Result<(u64, Vec<(String, u64)>)> {
        let name = &self.name;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {name}.notifications"
        )))
        .fetch_one(&self.admin)
        .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT status, count(*) FROM {name}.notifications GROUP BY status ORDER BY status"
        )))
        .fetch_all(&self.admin)
        .await?;
        Ok((
            total.unsigned_abs(),
            rows.into_iter()
                .map(|(status, count)| (status, count.unsigned_abs()))
                .collect(),
        ))
    }

    async fn drop_schema(self) -> anyhow::Result<()> {
        let name = &self.name;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
            .execute(&self.admin)
            .await
            .with_context(|| format!("dropping schema {name}"))?;
        self.admin.close().await;
        Ok(())
    }
}

/// CPU time (user + system, in clock ticks) of every process named `postgres`, by pid.
fn postgres_ticks() -> BTreeMap<u32, u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (name, ticks) = process_ticks(pid)?;
            (name == "postgres").then_some((pid, ticks))
        })
        .collect()
}

/// The command name and CPU time (utime + stime, in clock ticks) of a process.
fn process_ticks(pid: u32) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces: the fields follow the last `)`.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); the first one after the name is field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU used over the measured window, in percent of one core.
#[derive(Clone, Copy, Default)]
struct CpuShare {
    /// Every `postgres` process of the machine (other clients of the server included).
    postgres: f64,
    /// The part of it spent by the backends the services had open at the end of the window.
    postgres_bench: f64,
    /// The services, all replicas together.
    service: f64,
}

/// Samples the CPU time of the PostgreSQL server and of the services at the start and end
/// of the measured window.
async fn measure_cpu(
    schema: &Schema,
    services: &[u32],
    from: Instant,
    until: Instant,
) -> anyhow::Result<CpuShare> {
    let service_ticks = || -> u64 {
        services
            .iter()
            .filter_map(|&pid| process_ticks(pid).map(|(_, ticks)| ticks))
            .sum()
    };
    tokio::time::sleep_until(from.into()).await;
    let (postgres_before, service_before, started) =
        (postgres_ticks(), service_ticks(), Instant::now());
    tokio::time::sleep_until(until.into()).await;
    let (postgres_after, service_after, wall) =
        (postgres_ticks(), service_ticks(), started.elapsed());
    let backends = schema.service_backends().await?;
    // A process that ended inside the window is not counted; one that started counts in full.
    let used =
        |pid: &u32, after: &u64| after.saturating_sub(*postgres_before.get(pid).unwrap_or(&0));
    let postgres: u64 = postgres_after
        .iter()
        .map(|(pid, after)| used(pid, after))
        .sum();
    let postgres_bench: u64 = postgres_after
        .iter()
        .filter(|(pid, _)| backends.contains(pid))
        .map(|(pid, after)| used(pid, after))
        .sum();
    let percent = |ticks: u64| 100.0 * ticks as f64 / clock_ticks() / wall.as_secs_f64();
    Ok(CpuShare {
        postgres: percent(postgres),
        postgres_bench: percent(postgres_bench),
        service: percent(service_after.saturating_sub(service_before)),
    })
}

/// A worker setting as the service sees it: a `BENCH_BRIDGE__…` override, else the default.
fn setting(key: &str, default: usize) -> usize {
    std::env::var(format!("BENCH_BRIDGE__{key}"))
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench-ingest: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs both phases and prints the summary; `Ok(false)` when a journal check failed.
fn run() -> anyhow::Result<bool> {
    let binary = release_binary()?;
    let seconds = measured_seconds()?;
    let storage = Storage::from_env()?;
    // Before pinning: `nproc` reports the CPUs this process may use.
    let machine = Machine::describe();
    let taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let services = match storage.replicas() {
        1 => "service".to_string(),
        count => format!("{count} service replicas"),
    };
    let mut placement = if taskset {
        let load_pinned = pin_self(LOAD_CPU);
        format!(
            "{services} pinned to CPU {SERVICE_CPU} (taskset -c {SERVICE_CPU}), load generator {}",
            if load_pinned {
                format!("pinned to CPU {LOAD_CPU}")
            } else {
                "NOT pinned".to_string()
            }
        )
    } else {
        println!("taskset not found: the service and the load generator run unpinned");
        format!("{services} and load generator unpinned (no taskset)")
    };
    if let Storage::Postgres { url, .. } = &storage {
        placement.push_str(&format!(
            ", PostgreSQL server ({}) not pinned (not started by the benchmark; it runs on either CPU)",
            describe_postgres(url)
        ));
    }
    println!(
        "bench-ingest: {} s measured per phase after a {} s warm-up, {CONCURRENCY} connections, {placement}",
        seconds.as_secs(),
        WARM_UP.as_secs()
    );

    // One thread drives every connection: the load generator must fit on its own CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the load generator runtime")?;
    let mut results = Vec::new();
    for per_request in phases()? {
        println!();
        println!("== {per_request} notification(s) per request ==");
        let result = run_phase(&runtime, &binary, taskset, &storage, per_request, seconds)?;
        result.print();
        results.push(result);
    }

    println!();
    print!(
        "{}",
        summary(&machine, &storage, &placement, seconds, &results)
    );
    Ok(results
        .iter()
        .all(|result| result.journal_matches() && result.exits.iter().all(ExitStatus::success)))
}

/// `<CARGO_MANIFEST_DIR>/target/release/dnb-hubspot-bridge`, which `make bench-ingest` builds first.
fn release_binary() -> anyhow::Result<PathBuf> {
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/dnb-hubspot-bridge");
    if !binary.is_file() {
        bail!(
            "{} is missing: run `make bench-ingest`, which builds the release binary first",
            binary.display()
        );
    }
    Ok(binary)
}

/// The phases to run: `BENCH_PHASES` (comma-separated notifications per request) or [`PHASES`].
fn phases() -> anyhow::Result<Vec<usize>> {
    match std::env::var("BENCH_PHASES") {
        Ok(text) => text
            .split(',')
            .map(|part| match part.trim().parse::<usize>() {
                Ok(count) if count > 0 => Ok(count),
                _ => bail!("BENCH_PHASES must list positive whole numbers, not {text:?}"),
            })
            .collect(),
        Err(_) => Ok(PHASES.to_vec()),
    }
}

/// The measured window: `BENCH_SECONDS` or [`DEFAULT_SECONDS`].
fn measured_seconds() -> anyhow::Result<Duration> {
    match std::env::var("BENCH_SECONDS") {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
            _ => bail!("BENCH_SECONDS must be a positive whole number of seconds, not {text:?}"),
        },
        Err(_) => Ok(Duration::from_secs(DEFAULT_SECONDS)),
    }
}

/// Pins every thread of this process to `cpu` with `taskset -a -p` and checks
/// the kernel's answer. Done before the runtime exists, so the only thread is
/// the one that will drive the load; threads started later inherit the mask.
fn pin_self(cpu: u32) -> bool {
    let pinned = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let allowed = proc_status_field(Path::new("/proc/self/status"), "Cpus_allowed_list");
    if pinned && allowed.as_deref() == Some(cpu.to_string().as_str()) {
        true
    } else {
        println!(
            "could not pin the load generator to CPU {cpu} (allowed CPUs: {}); continuing unpinned",
            allowed.as_deref().unwrap_or("unknown")
        );
        false
    }
}

/// A field of a `/proc/<pid>/status` file, without its name.
fn proc_status_field(path: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(':')
                .map(|value| value.trim().to_string())
        })
}

/// What the summary says about the machine.
struct Machine {
    /// `nproc` before pinning.
    nproc: String,
    /// The first `model name` of `/proc/cpuinfo`.
    cpu: String,
    /// File system type of the folder holding the journals (fsync cost depends on it).
    journal_fs: String,
}

impl Machine {
    fn describe() -> Self {
        let output = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        let temp = std::env::temp_dir();
        Self {
            nproc: output("nproc", &[]),
            cpu: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| {
                    info.lines().find_map(|line| {
                        Some(
                            line.strip_prefix("model name")?
                                .split_once(':')?
                                .1
                                .trim()
                                .to_string(),
                        )
                    })
                })
                .unwrap_or_else(|| "unknown".into()),
            journal_fs: format!(
                "{} ({})",
                output("stat", &["-f", "-c", "%T", &temp.to_string_lossy()]),
                temp.display()
            ),
        }
    }
}

/// A `serve` process on a temporary journal.
struct Service {
    child: Child,
    address: SocketAddr,
    /// The SQLite journal, when the service was given no PostgreSQL URL.
    journal: PathBuf,
    log: PathBuf,
    /// Removed on drop, after the process.
    _dir: TempDir,
}

impl Service {
    /// Writes a config for a free loopback port and starts the binary, pinned when `taskset`
    /// exists; it journals to `postgres_url`, or else to a SQLite file in its temporary folder.
    fn start(binary: &Path, taskset: bool, postgres_url: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bench-ingest-")
            .tempdir()
            .context("creating the temporary folder")?;
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let journal = dir.path().join("journal.db");
        let config = dir.path().join("config.yaml");
        let log = dir.path().join("serve.log");
        let url = match postgres_url {
            Some(url) => url.to_string(),
            None => format!("sqlite://{}", journal.display()),
        };
        // Everything else keeps its default: 2 dry-run workers, synchronous FULL.
        // The high water mark is raised so the backlog the workers cannot drain on
        // a shared CPU never turns into 503s during the run.
        std::fs::write(
            &config,
            format!(
                "server:\n  bind: \"{address}\"\nwebhook:\n  secrets: [\"{SECRET}\"]\n\
                 storage:\n  url: \"{url}\"\nqueue:\n  high_water: 100000000\nlog:\n  level: warn\n",
            ),
        )
        .context("writing the config")?;

        let mut command = if taskset {
            let mut command = Command::new("taskset");
            command.args(["-c", &SERVICE_CPU.to_string()]).arg(binary);
            command
        } else {
            Command::new(binary)
        };
        command
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).context("creating the service log")?)
            .env_remove("RUST_LOG");
        // `BRIDGE__SECTION__KEY` variables would override the file; `BENCH_BRIDGE__…`
        // ones are passed on as `BRIDGE__…` for experiments
        // (`BENCH_BRIDGE__STORAGE__SYNCHRONOUS=normal make bench-ingest`).
        for (name, value) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("BRIDGE__") {
                command.env_remove(&name);
            }
            if let Some(key) = name.strip_prefix("BENCH_")
                && key.starts_with("BRIDGE__")
            {
                command.env(key, value);
            }
        }
        // taskset execs the binary, so the child's pid is the service's.
        let child = command.spawn().context("starting the service")?;
        Ok(Self {
            child,
            address,
            journal,
            log,
            _dir: dir,
        })
    }

    /// Waits for `GET /health` to answer 200.
    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the service exited with {status} at start:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(status) = get_status(self.address, "/health").await
                && status == StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the service did not become healthy:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Peak resident set size (`VmHWM`) in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let path = PathBuf::from(format!("/proc/{}/status", self.child.id()));
        proc_status_field(&path, "VmHWM")?
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    }

    /// Sends SIGTERM and waits for the exit.
    fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill")?;
        if !signalled.success() {
            bail!("kill -TERM {} failed", self.child.id());
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "the service did not exit within {} s of SIGTERM",
                    STOP_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .context("finding a free port")?
        .local_addr()?
        .port())
}

/// Opens an HTTP/1.1 connection; its driver runs as a task of the current runtime.
async fn connect<B>(address: SocketAddr) -> anyhow::Result<SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(address).await?;
    // Requests are written whole; Nagle would only add delay to small ones.
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // A dropped connection surfaces as an error of its next request.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One GET on a new connection.
async fn get_status(address: SocketAddr, path: &str) -> anyhow::Result<StatusCode> {
    let mut sender = connect::<Empty<Bytes>>(address).await?;
    let request = Request::get(path)
        .header(HOST, address.to_string())
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// What the senders of one phase share.
struct Load {
    /// The services' addresses with their `Host` headers; connection `i` goes to `i % len`.
    targets: Vec<(SocketAddr, String)>,
    secret: SigningSecret,
    per_request: usize,
    /// Start of the measured window (end of the warm-up).
    measured_from: Instant,
    /// End of the run: no request starts after it.
    until: Instant,
    /// Next `webhook-id` number.
    requests: AtomicU64,
    /// Next DUNS number: every notification of a run is distinct, so content deduplication never triggers.
    notifications: AtomicU64,
}

/// The part of the 202 answer the benchmark reads.
#[derive(Deserialize)]
struct Accepted {
    accepted: u64,
}

impl Load {
    /// A signed delivery of `per_request` new notifications.
    fn next_request(&self, host: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let id = format!("msg_{}", self.requests.fetch_add(1, Ordering::Relaxed));
        let first = self
            .notifications
            .fetch_add(self.per_request as u64, Ordering::Relaxed);
        let mut body = String::with_capacity(320 * self.per_request + 2);
        // D&B stamps each notification with its delivery time, so a live feed carries the current time.
        let delivered = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        body.push('[');
        for offset in 0..self.per_request as u64 {
            if offset > 0 {
                body.push(',');
            }
            // A unique 9-digit DUNS scattered like real ones: multiplying by a number coprime
            // with 10^9 permutes 0..10^9, so consecutive counters land far apart.
            let duns = ((first + offset) * 387_420_489) % 1_000_000_000;
            write!(
                body,
                r#"{{"type":"UPDATE","organization":{{"duns":"{duns:09}"}},"elements":[{{"element":"organization.primaryName","previous":"Northwind Pharma Ltd","current":"Northwind Group Inc.","timestamp":"2024-05-13T02:01:46Z"}}],"deliveryTimeStamp":"{delivered}"}}"#,
            )?;
        }
        body.push(']');
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let signature = self.secret.sign(&id, timestamp, body.as_bytes());
        Ok(Request::builder()
            .method(Method::POST)
            .uri("/webhooks/dnb")
            .header(HOST, host)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)))?)
    }
}

/// What one sender saw.
#[derive(Default)]
struct Tally {
    /// 202 answers completed inside the measured window.
    measured_requests: u64,
    /// Notifications those answers accepted.
    measured_notifications: u64,
    /// Notifications accepted by every 202 answer, warm-up and run-out included.
    accepted_total: u64,
    /// Latency of each measured 202 (send to last body byte), in microseconds.
    latencies_us: Vec<u32>,
    /// Answers other than 202 by status, over the whole phase.
    non_202: BTreeMap<u16, u64>,
    /// Transport errors and unreadable 202 answers over the whole phase.
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| error.to_string());
    }

    fn merge(&mut self, other: Tally) {
        self.measured_requests += other.measured_requests;
        self.measured_notifications += other.measured_notifications;
        self.accepted_total += other.accepted_total;
        self.latencies_us.extend(other.latencies_us);
        for (status, count) in other.non_202 {
            *self.non_202.entry(status).or_default() += count;
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One keep-alive connection sending requests back to back until the end of the run.
async fn drive_connection(load: Arc<Load>, index: usize) -> Tally {
    let (address, host) = &load.targets[index % load.targets.len()];
    let mut tally = Tally::default();
    let mut connection: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < load.until {
        if connection.is_none() {
            match connect(*address).await {
                Ok(sender) => connection = Some(sender),
                Err(error) => {
                    tally.error(format!("connect: {error}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let sender = connection.as_mut().expect("connected above");
        let request = match load.next_request(host) {
            Ok(request) => request,
            Err(error) => {
                tally.error(format!("building a request: {error}"));
                break;
            }
        };
        let started = Instant::now();
        let answer = exchange(sender, request).await;
        let finished = Instant::now();
        // A request belongs to the window it completes in; the last ones may end after it.
        let measured = finished >= load.measured_from && finished <= load.until;
        match answer {
            Ok((StatusCode::ACCEPTED, body)) => match serde_json::from_slice::<Accepted>(&body) {
                Ok(Accepted { accepted }) => {
                    tally.accepted_total += accepted;
                    if measured {
                        tally.measured_requests += 1;
                        tally.measured_notifications += accepted;
                        let micros = (finished - started).as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                }
                Err(error) => tally.error(format!("unreadable 202 answer: {error}")),
            },
            Ok((status, _)) => *tally.non_202.entry(status.as_u16()).or_default() += 1,
            Err(error) => {
                tally.error(error);
                // The connection is unusable after a transport error; open another.
                connection = None;
            }
        }
    }
    tally
}

/// Sends one request and reads the whole answer.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Figures of one phase.
struct PhaseResult {
    per_request: usize,
    /// The first three fields of `/proc/loadavg` when the phase started: on a shared machine
    /// other work moves the figures.
    load_average: String,
    seconds: Duration,
    tally: Tally,
    /// Of each service replica.
    peak_rss_kib: Vec<Option<u64>>,
    /// Of each service replica.
    exits: Vec<ExitStatus>,
    /// Over the measured window, with PostgreSQL only.
    cpu: Option<CpuShare>,
    /// `SHOW synchronous_commit` as the services' connections see it, with PostgreSQL only.
    synchronous_commit: Option<String>,
    /// Rows of the journal after the service stopped.
    journaled: u64,
    /// Rows by status, to show how far the dry-run workers got.
    by_status: Vec<(String, u64)>,
}

impl PhaseResult {
    fn requests_per_second(&self) -> f64 {
        self.tally.measured_requests as f64 / self.seconds.as_secs_f64()
    }

    fn notifications_per_second(&self) -> f64 {
        self.tally.measured_notifications as f64 / self.seconds.as_secs_f64()
    }

    /// Nearest-rank percentile of the sorted latencies, in milliseconds.
    fn latency_ms(&self, percentile: f64) -> Option<f64> {
        let sorted = &self.tally.latencies_us;
        if sorted.is_empty() {
            return None;
        }
        let rank = ((percentile / 100.0) * sorted.len() as f64).ceil() as usize;
        Some(f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0)
    }

    fn non_202(&self) -> u64 {
        self.tally.non_202.values().sum()
    }

    /// The largest replica's, when there are several.
    fn peak_rss_mib(&self) -> String {
        self.peak_rss_kib
            .iter()
            .copied()
            .collect::<Option<Vec<u64>>>()
            .and_then(|peaks| peaks.into_iter().max())
            .map_or_else(|| "n/a".into(), |kib| format!("{:.1}", kib as f64 / 1024.0))
    }

    fn journal_matches(&self) -> bool {
        self.journaled == self.tally.accepted_total
    }

    fn print(&self) {
        let ms = |value: Option<f64>| value.map_or_else(|| "n/a".into(), |ms| format!("{ms:.2}"));
        println!("load average before:  {} (1, 5, 15 min)", self.load_average);
        println!("requests/s (202):     {:.0}", self.requests_per_second());
        println!(
            "notifications/s:      {:.0}",
            self.notifications_per_second()
        );
        println!("latency p50:          {} ms", ms(self.latency_ms(50.0)));
        println!("latency p90:          {} ms", ms(self.latency_ms(90.0)));
        println!("latency p99:          {} ms", ms(self.latency_ms(99.0)));
        println!("latency p99.9:        {} ms", ms(self.latency_ms(99.9)));
        let by_code: Vec<String> = self
            .tally
            .non_202
            .iter()
            .map(|(status, count)| format!("{status}: {count}"))
            .collect();
        println!(
            "non-202 answers:      {}{} (warm-up included)",
            self.non_202(),
            if by_code.is_empty() {
                String::new()
            } else {
                format!(" ({})", by_code.join(", "))
            }
        );
        println!(
            "errors:               {}{} (warm-up included)",
            self.tally.errors,
            self.tally
                .first_error
                .as_ref()
                .map(|error| format!(", first: {error}"))
                .unwrap_or_default()
        );
        println!(
            "service peak RSS:     {} MiB (VmHWM{})",
            self.peak_rss_mib(),
            if self.peak_rss_kib.len() > 1 {
                ", the largest replica"
            } else {
                ""
            }
        );
        let exits: Vec<String> = self.exits.iter().map(ToString::to_string).collect();
        println!("service exit:         {}", exits.join(", "));
        if let Some(cpu) = self.cpu {
            println!(
                "service CPU:          {:.0}% of one core (all replicas, measured window)",
                cpu.service
            );
            println!(
                "PostgreSQL CPU:       {:.0}% of one core (every postgres process, measured window; \
                 {:.0}% in the services' backends)",
                cpu.postgres, cpu.postgres_bench
            );
        }
        let statuses: Vec<String> = self
            .by_status
            .iter()
            .map(|(status, count)| format!("{status} {count}"))
            .collect();
        println!(
            "journal rows:         {} ({})",
            self.journaled,
            statuses.join(", ")
        );
        if self.journal_matches() {
            println!(
                "journal check:        OK ({} rows = {} notifications accepted, warm-up included)",
                self.journaled, self.tally.accepted_total
            );
        } else {
            println!(
                "journal check:        MISMATCH: {} rows in the journal, {} notifications answered accepted",
                self.journaled, self.tally.accepted_total
            );
            // Extra rows are not losses: a request whose answer was lost to a transport error may have been committed.
            if self.journaled > self.tally.accepted_total && self.tally.errors > 0 {
                println!(
                    "                      ({} transport errors may account for extra rows)",
                    self.tally.errors
                );
            }
        }
    }
}

/// Starts fresh services on a fresh journal, loads them, stops them and checks the journal.
fn run_phase(
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    taskset: bool,
    storage: &Storage,
    per_request: usize,
    seconds: Duration,
) -> anyhow::Result<PhaseResult> {
    match storage {
        Storage::Sqlite => run_phase_on(runtime, binary, taskset, None, 1, per_request, seconds),
        Storage::Postgres { url, replicas } => {
            let schema = runtime.block_on(Schema::create(url))?;
            let synchronous_commit = match runtime.block_on(schema.synchronous_commit()) {
                Ok(value) => value,
                Err(error) => format!("unknown ({error:#})"),
            };
            println!(
                "synchronous_commit:   {synchronous_commit} (schema {})",
                schema.name
            );
            let result = run_phase_on(
                runtime,
                binary,
                taskset,
                Some(&schema),
                *replicas,
                per_request,
                seconds,
            )
            .map(|result| PhaseResult {
                synchronous_commit: Some(synchronous_commit),
                ..result
            });
            // Dropped whether the phase succeeded or not; a failure to drop is only reported.
            let name = schema.name.clone();
            if let Err(error) = runtime.block_on(schema.drop_schema()) {
                println!("could not drop schema {name}: {error:#}");
            }
            result
        }
    }
}

fn run_phase_on(
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    taskset: bool,
    schema: Option<&Schema>,
    replicas: usize,
    per_request: usize,
    seconds: Duration,
) -> anyhow::Result<PhaseResult> {
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".into());
    let mut services = Vec::with_capacity(replicas);
    for _ in 0..replicas {
        services.push(Service::start(
            binary,
            taskset,
            schema.map(|schema| schema.service_url.as_str()),
        )?);
    }
    for service in &mut services {
        runtime.block_on(service.wait_healthy())?;
    }

    let (tally, cpu) = runtime.block_on(async {
        let start = Instant::now();
        let load = Arc::new(Load {
            targets: services
                .iter()
                .map(|service| (service.address, service.address.to_string()))
                .collect(),
            secret: SigningSecret::parse(SECRET).expect("the benchmark secret is valid"),
            per_request,
            measured_from: start + WARM_UP,
            until: start + WARM_UP + seconds,
            requests: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
        });
        let senders: Vec<_> = (0..CONCURRENCY)
            .map(|index| tokio::spawn(drive_connection(load.clone(), index)))
            .collect();
        let pids: Vec<u32> = services.iter().map(|service| service.child.id()).collect();
        let cpu = match schema {
            Some(schema) => Some(
                measure_cpu(schema, &pids, load.measured_from, load.until)
                    .await
                    .context("measuring CPU time")?,
            ),
            None => None,
        };
        let mut total = Tally::default();
        for sender in senders {
            match sender.await {
                Ok(tally) => total.merge(tally),
                Err(error) => total.error(format!("sender task: {error}")),
            }
        }
        total.latencies_us.sort_unstable();
        anyhow::Ok((total, cpu))
    })?;

    // VmHWM is only readable while the process exists.
    let peak_rss_kib = services.iter().map(Service::peak_rss_kib).collect();
    let mut exits = Vec::with_capacity(replicas);
    for service in &mut services {
        exits.push(service.stop()?);
    }
    let (journaled, by_status) = match schema {
        Some(schema) => runtime.block_on(schema.count())?,
        None => count_journal(&services[0].journal)?,
    };
    Ok(PhaseResult {
        per_request,
        load_average,
        seconds,
        tally,
        peak_rss_kib,
        exits,
        cpu,
        synchronous_commit: None,
        journaled,
        by_status,
    })
}

/// Rows of the journal, in total and by status.
fn count_journal(path: &Path) -> anyhow::Result<(u64, Vec<(String, u64)>)> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", path.display()))?;
    let total: i64 = db.query_row("SELECT count(*) FROM notifications", [], |row| row.get(0))?;
    let mut statement =
        db.prepare("SELECT status, count(*) FROM notifications GROUP BY status ORDER BY status")?;
    let by_status = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?.unsigned_abs(),
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok((total.unsigned_abs(), by_status))
}

/// The block to paste into the README.
fn summary(
    machine: &Machine,
    storage: &Storage,
    placement: &str,
    seconds: Duration,
    results: &[PhaseResult],
) -> String {
    let mut text = String::new();
    let command = match storage {
        Storage::Sqlite => "make bench-ingest".to_string(),
        Storage::Postgres { replicas, .. } => {
            format!("BENCH_REPLICAS={replicas} make bench-ingest-postgres")
        }
    };
    let journal = match storage {
        Storage::Sqlite => "SQLite journal, storage.synchronous full".to_string(),
        Storage::Postgres { url, replicas } => format!(
            "PostgreSQL journal at {} (a fresh schema per phase, synchronous_commit {}), \
             {replicas} replica(s) with storage.max_connections {}",
            describe_postgres(url),
            results
                .first()
                .and_then(|result| result.synchronous_commit.as_deref())
                .unwrap_or("unknown"),
            setting(
                "STORAGE__MAX_CONNECTIONS",
                StorageSettings::default().max_connections as usize
            )
        ),
    };
    let _ = writeln!(text, "---- summary ({command}) ----");
    let _ = writeln!(
        text,
        "Machine: {} CPUs (nproc), {}; journal on {}.",
        machine.nproc, machine.cpu, machine.journal_fs
    );
    let _ = writeln!(
        text,
        "Setup: release build, dry-run, {} workers (batches of {}) per service, {journal}, {placement}; \
         {CONCURRENCY} keep-alive HTTP/1.1 connections over loopback, {} s measured after a {} s warm-up.",
        setting("WORKERS__COUNT", WorkerSettings::default().count),
        setting("WORKERS__BATCH_SIZE", WorkerSettings::default().batch_size),
        seconds.as_secs(),
        WARM_UP.as_secs()
    );
    let _ = writeln!(text);
    let postgres = matches!(storage, Storage::Postgres { .. });
    let _ = writeln!(
        text,
        "| notifications/request | requests/s | notifications/s | p50 ms | p99 ms | non-202 | errors | peak RSS MiB |{} load average before | journal |",
        if postgres {
            " service CPU % | PostgreSQL CPU % (its backends) |"
        } else {
            ""
        }
    );
    let _ = writeln!(
        text,
        "|---:|---:|---:|---:|---:|---:|---:|---:|{}---|---|",
        if postgres { "---:|---:|" } else { "" }
    );
    for result in results {
        let ms = |percentile| {
            result
                .latency_ms(percentile)
                .map_or_else(|| "n/a".into(), |ms| format!("{ms:.2}"))
        };
        let _ = writeln!(
            text,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |{} {} | {} |",
            result.per_request,
            result.requests_per_second(),
            result.notifications_per_second(),
            ms(50.0),
            ms(99.0),
            result.non_202(),
            result.tally.errors,
            result.peak_rss_mib(),
            result.cpu.map_or_else(String::new, |cpu| format!(
                " {:.0} | {:.0} ({:.0}) |",
                cpu.service, cpu.postgres, cpu.postgres_bench
            )),
            result.load_average,
            if result.journal_matches() {
                "OK"
            } else {
                "MISMATCH"
            }
        );
    }
    let _ = writeln!(text);
    let _ = writeln!(text, "Command: {command}");
    text
}
