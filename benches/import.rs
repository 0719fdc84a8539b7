//! File-import benchmark of the release binary: `make bench-import`.
//!
//! Writes a NOTIFICATION zip of `BENCH_LINES` (default 1,000,000) UPDATE lines, the way D&B
//! delivers them: grouped by DUNS, every line of the delivery stamped with the same
//! `deliveryTimeStamp`. Then runs `dnb-hubspot-bridge import` on it against a fresh journal
//! (`storage.synchronous: full`, the default) and prints lines per second and the process's
//! peak RSS (`VmHWM`, read while it runs), and checks the journal holds every line. It is a
//! figure-printing program (`harness = false`), not a test; it exits non-zero when the import
//! fails or the journal does not hold every line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Lines when `BENCH_LINES` is not set.
const DEFAULT_LINES: usize = 1_000_000;
/// How often the child's peak RSS is read.
const RSS_POLL: Duration = Duration::from_millis(10);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-import failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/dnb-hubspot-bridge");
    if !binary.is_file() {
        bail!(
            "{} is missing: run `make bench-import`, which builds the release binary first",
            binary.display()
        );
    }
    let lines = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_LINES);
    let dir = tempfile::tempdir()?;
    let written = Instant::now();
    let zip = write_zip(dir.path(), lines)?;
    println!(
        "wrote {} ({lines} lines, {:.1} MB compressed) in {:.1}s",
        zip.display(),
        std::fs::metadata(&zip)?.len() as f64 / 1e6,
        written.elapsed().as_secs_f64()
    );

    let journal = dir.path().join("journal.db");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
    let started = Instant::now();
    let mut child = Command::new(&binary)
        .args(["--config", config, "import"])
        .arg(&zip)
        .env(
            "BRIDGE__STORAGE__URL",
            format!("sqlite://{}", journal.display()),
        )
        .env("BRIDGE__STORAGE__SYNCHRONOUS", "full")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the import")?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb: u64 = 0;
    while child.try_wait()?.is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:"))
        {
            let kb = line
                .split_whitespace()
                .nth(1)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(RSS_POLL);
    }
    let seconds = started.elapsed().as_secs_f64();
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "import failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    print!("{stdout}");
    let journaled: i64 = rusqlite::Connection::open(&journal)?.query_row(
        "SELECT count(*) FROM notifications WHERE status = 'pending'",
        [],
        |row| row.get(0),
    )?;
    println!(
        "bench-import: {lines} lines in {seconds:.2}s = {:.0} lines/s, peak RSS {:.1} MB \
         (release build, storage.synchronous full, one deliveryTimeStamp for the whole file)",
        lines as f64 / seconds,
        peak_kb as f64 / 1024.0
    );
    if journaled != lines as i64 {
        bail!("the journal holds {journaled} pending notifications, expected {lines}");
    }
    Ok(())
}

/// `REF_..._NOTIFICATION_1.zip` holding `lines` UPDATEs, two element changes each, a few
/// lines per DUNS.
fn write_zip(folder: &Path, lines: usize) -> anyhow::Result<PathBuf> {
    let stem = "BENCH_20240513080000_NOTIFICATION_1";
    let path = folder.join(format!("{stem}.zip"));
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(&path)?));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(format!("{stem}.txt"), options)?;
    for index in 0..lines {
        let duns = format!("{:09}", 100_000_000 + index / 4);
        let line = serde_json::json!({
            "type": "UPDATE",
            "organization": {"duns": duns},
            "elements": [
                {
                    "element": "organization.primaryName",
                    "previous": format!("Company {index} Ltd"),
                    "current": format!("Company {index} Limited"),
                    "timestamp": "2024-05-12T17:31:08.000Z"
                },
                {
                    "element": "organization.numberOfEmployees.value",
                    "previous": index % 500,
                    "current": index % 500 + 1,
                    "timestamp": "2024-05-12T17:31:08.000Z"
                }
            ],
            "deliveryTimeStamp": "2024-05-13T08:00:00.000Z"
        });
        serde_json::to_writer(&mut zip, &line)?;
        zip.write_all(b"\n")?;
    }
    zip.finish()?.flush()?;
    Ok(path)
}
