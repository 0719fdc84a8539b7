//! D&B pull benchmark of the release binary: `make bench-pull`.
//!
//! The fake Direct+ of the integration tests runs in this process with 10,000
//! pending notifications for one registration. `pull --once` of the release
//! binary, at D&B's usual 5 calls per second and 100 notifications per call,
//! drains it into a temporary journal (`synchronous=FULL`). A second run at 200
//! calls per second (50,000 notifications) shows how far the service itself is
//! from being the bound. The benchmark
//! prints notifications per second, end to end (process start to exit) and
//! over the pull calls themselves, against the bound the rate limit sets
//! (rate x 100 per call), the most calls seen in any second, and checks that
//! the journal holds every notification exactly once. It is a
//! figure-printing program (`harness = false`), not a test: it exits non-zero
//! when a notification is missing or duplicated or the rate limit was
//! exceeded; a missed performance target only prints a MISS line.

#[path = "../tests/api/fake_dnb/mod.rs"]
mod fake_dnb;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fake_dnb::{FAKE_KEY, FAKE_SECRET, FakeDnb, FakeDnbConfig, notifications};

const REGISTRATION: &str = "BENCH_REGISTRATION";
const PAGE: usize = 100;
/// (calls per second, notifications pending, whether the rate limit must be the bound).
const SCENARIOS: [(usize, usize, bool); 2] = [(5, 10_000, true), (200, 50_000, false)];

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench-pull: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when a correctness check failed.
fn run() -> anyhow::Result<bool> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/release/dnb-hubspot-bridge");
    if !binary.is_file() {
        bail!("{} is missing: run `make bench-pull`", binary.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut ok = true;
    for (rate, notifications, bound_by_rate) in SCENARIOS {
        ok &= runtime.block_on(scenario(&binary, rate, notifications, bound_by_rate))?;
    }
    Ok(ok)
}

/// Drains `count` notifications at `rate` calls per second; `Ok(false)` when a check failed.
/// With `bound_by_rate` the throughput must come within 90 % of rate x 100 per call (HIT or
/// MISS); without, the run shows the service's own ceiling.
async fn scenario(
    binary: &Path,
    rate: usize,
    count: usize,
    bound_by_rate: bool,
) -> anyhow::Result<bool> {
    {
        let fake = FakeDnb::start(FakeDnbConfig::default()).await;
        fake.add_pending(REGISTRATION, notifications(count));
        let dir = tempfile::tempdir()?;
        let journal = dir.path().join("journal.db");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "storage:\n  url: \"sqlite://{}\"\n  synchronous: full\n\
                 dnb:\n  base_url: \"{}\"\n  client_key: \"{FAKE_KEY}\"\n  client_secret: \"{FAKE_SECRET}\"\n\
                 \x20 registrations: [\"{REGISTRATION}\"]\n  rate_limit_per_sec: {rate}\n\
                 \x20 pull:\n    max_notifications: {PAGE}\n\
                 log:\n  level: warn\n",
                journal.display(),
                fake.base_url()
            ),
        )?;
        println!("bench-pull: {count} pending notifications, {rate} calls/s, {PAGE} per call");
        let started = Instant::now();
        let child = Command::new(binary)
            .args(["--config", config.to_str().unwrap(), "pull", "--once"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the binary")?;
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        let elapsed = started.elapsed();
        print!("{}", String::from_utf8_lossy(&output.stdout));
        if !output.status.success() {
            bail!("pull --once failed: {}", output.status);
        }

        let calls = fake.calls();
        let pulls: Vec<_> = calls.iter().filter(|call| call.kind == "pull").collect();
        let span = pulls
            .last()
            .zip(pulls.first())
            .map(|(last, first)| last.at.duration_since(first.at))
            .unwrap_or_default();
        // Windows of 0.95 s: the limiter spaces calls exactly, and the loopback's and the
        // timer's jitter of a millisecond must not count as a sixth call in a second.
        let most_in_a_second = calls
            .iter()
            .map(|call| {
                calls
                    .iter()
                    .filter(|other| {
                        other.at >= call.at && other.at < call.at + Duration::from_millis(950)
                    })
                    .count()
            })
            .max()
            .unwrap_or(0);
        let connection = rusqlite::Connection::open(&journal)?;
        let (rows, distinct): (i64, i64) = connection.query_row(
            "SELECT count(*), count(DISTINCT duns) FROM notifications",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;

        let bound = (rate * PAGE) as f64;
        let end_to_end = count as f64 / elapsed.as_secs_f64();
        // Pages after the first, over the time between the first and the last pull call.
        let over_calls = (count - PAGE) as f64 / span.as_secs_f64().max(f64::EPSILON);
        println!(
            "bench-pull: {} calls ({} token, {} pull), at most {most_in_a_second} in any second (limit {rate})",
            calls.len(),
            calls.iter().filter(|call| call.kind == "token").count(),
            pulls.len()
        );
        println!(
            "bench-pull: end to end {:.1} s, {end_to_end:.0} notifications/s; over the pull calls {over_calls:.0} notifications/s; bound {bound:.0}/s",
            elapsed.as_secs_f64()
        );
        println!("bench-pull: journal holds {rows} notifications, {distinct} distinct");
        let mut ok = true;
        if rows != count as i64 || distinct != count as i64 {
            println!("bench-pull: FAIL: the journal does not hold every notification exactly once");
            ok = false;
        }
        if most_in_a_second > rate {
            println!("bench-pull: FAIL: more than {rate} calls in one second");
            ok = false;
        }
        if !bound_by_rate {
            println!(
                "bench-pull: the service's own ceiling: {over_calls:.0} notifications/s ({:.0} % of this run's bound)",
                100.0 * over_calls / bound
            );
        } else if over_calls >= 0.9 * bound {
            println!(
                "bench-pull: HIT: the rate limit bounds the pull ({:.0} % of {bound:.0}/s)",
                100.0 * over_calls / bound
            );
        } else {
            println!(
                "bench-pull: MISS: {over_calls:.0}/s is under 90 % of the rate-limit bound {bound:.0}/s"
            );
        }
        Ok(ok)
    }
}
