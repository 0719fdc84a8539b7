//! D&B delivery files: `import` (the binary and the library) on real SQLite journals, with
//! zips built here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dnb_hubspot_bridge::config::StorageSettings;
use dnb_hubspot_bridge::files::{self, FileOutcome, Importer, Silent};
use dnb_hubspot_bridge::journal::{self, Journal};
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// Writes `name.zip` holding `name.txt` with `lines` (each followed by a line break).
pub fn write_zip(folder: &Path, stem: &str, lines: impl Iterator<Item = String>) -> PathBuf {
    let path = folder.join(format!("{stem}.zip"));
    let file = std::fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(format!("{stem}.txt"), options).unwrap();
    for line in lines {
        zip.write_all(line.as_bytes()).unwrap();
        zip.write_all(b"\n").unwrap();
    }
    zip.finish().unwrap().flush().unwrap();
    path
}

/// Hex SHA-256 of a file.
pub fn sha256_hex(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A manifest listing `files` with their hashes (or the given ones) and `total` records.
pub fn write_manifest(folder: &Path, name: &str, files: &[(&Path, Option<&str>)], total: u64) {
    let listed: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, hash)| {
            serde_json::json!({
                "name": path.file_name().unwrap().to_str().unwrap(),
                "hash": hash.map(str::to_string).unwrap_or_else(|| sha256_hex(path)),
            })
        })
        .collect();
    let manifest = serde_json::json!({"fileHeader": {
        "headerType": "NOTIFICATION", "reference": "REF", "totalRecordCount": total,
        "fileTimeStamp": "2024-05-13T08:00:00Z", "files": listed,
    }});
    std::fs::write(folder.join(name), manifest.to_string()).unwrap();
}

/// NDJSON notification lines: `count` UPDATEs over distinct DUNS, ascending times.
pub fn notification_lines(start: usize, count: usize) -> impl Iterator<Item = String> {
    (start..start + count).map(|index| {
        let duns = format!("{:09}", 100_000_000 + index);
        let seconds = index % 86_400;
        let time = format!(
            "2024-05-13T{:02}:{:02}:{:02}.{:03}Z",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            index % 1000
        );
        notification("UPDATE", &duns, &time).to_string()
    })
}

async fn open_journal(path: &Path) -> Arc<dyn Journal> {
    let storage = StorageSettings {
        url: format!("sqlite://{}", path.display()),
        ..StorageSettings::default()
    };
    journal::connect(&storage).await.unwrap()
}

fn count(path: &Path, sql: &str) -> i64 {
    open_read_only(path)
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

/// Runs `import` as a process with the repository config and this journal; the output and
/// the peak RSS (VmHWM, read until it exits) in kB.
fn import_process(journal: &Path, args: &[&str]) -> (std::process::Output, u64) {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
        .args(["--config", config, "import"])
        .args(args)
        .env(
            "BRIDGE__STORAGE__URL",
            format!("sqlite://{}", journal.display()),
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:"))
        {
            peak_kb = peak_kb.max(
                line.split_whitespace()
                    .nth(1)
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(0),
            );
        }
        assert!(Instant::now() < deadline, "import did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), peak_kb)
}

#[test]
fn a_200000_line_notification_zip_imports_in_bounded_memory_and_a_reimport_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("files");
    std::fs::create_dir(&inbox).unwrap();
    let journal = dir.path().join("journal.db");
    let zip = write_zip(
        &inbox,
        "REF_20240513080000_NOTIFICATION_1",
        notification_lines(0, 200_000),
    );

    let started = Instant::now();
    let (output, peak_kb) = import_process(&journal, &[zip.to_str().unwrap()]);
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "imported 200000 lines in {seconds:.1}s ({:.0} lines/s), peak RSS {} MB",
        200_000.0 / seconds,
        peak_kb / 1024
    );
    assert!(stdout.contains("200000 lines, 200000 accepted"), "{stdout}");
    assert_eq!(
        count(&journal, "SELECT count(*) FROM notifications"),
        200_000
    );
    assert!(peak_kb > 0, "peak RSS was read");
    assert!(peak_kb < 300 * 1024, "peak RSS {peak_kb} kB");

    let (output, _) = import_process(&journal, &[inbox.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("already imported"), "{stdout}");
    assert_eq!(
        count(&journal, "SELECT count(*) FROM notifications"),
        200_000
    );
    assert_eq!(count(&journal, "SELECT count(*) FROM deliveries"), 40);
}

#[tokio::test]
async fn an_interrupted_import_resumes_after_its_last_committed_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let zip = write_zip(
        dir.path(),
        "REF_20240513080000_NOTIFICATION_1",
        notification_lines(0, 250),
    );
    let journal = open_journal(&path).await;
    let mut importer = Importer::new(journal.clone());
    importer.chunk_lines = 100;
    let jobs = files::plan(std::slice::from_ref(&zip)).unwrap();
    importer.run(&jobs[0], &Silent).await.unwrap();
    journal.close().await;
    // As if the process had stopped after the second chunk's commit.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "UPDATE imported_files SET lines_committed = 200, finished_at = NULL",
            [],
        )
        .unwrap();
    drop(connection);

    let journal = open_journal(&path).await;
    let mut importer = Importer::new(journal.clone());
    importer.chunk_lines = 100;
    let reports = importer.run(&jobs[0], &Silent).await.unwrap();
    journal.close().await;
    assert_eq!(reports[0].outcome, FileOutcome::Imported);
    assert_eq!(reports[0].resumed_after, 200);
    assert_eq!(reports[0].records, 50);
    assert_eq!(count(&path, "SELECT count(*) FROM notifications"), 250);
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM imported_files WHERE finished_at IS NOT NULL AND lines_committed = 250 AND accepted = 250"
        ),
        1
    );
}

#[tokio::test]
async fn a_delivery_whose_hash_or_count_is_wrong_is_refused_whole() {
    for (case, wrong_hash, total) in [("hash", true, 30), ("count", false, 31)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let first = write_zip(
            dir.path(),
            "REF_20240513080000_NOTIFICATION_1",
            notification_lines(0, 10),
        );
        let second = write_zip(
            dir.path(),
            "REF_20240513080000_NOTIFICATION_2",
            notification_lines(10, 20),
        );
        let bad = "0".repeat(64);
        write_manifest(
            dir.path(),
            "REF_20240513080000_NOTIFICATION_HEADER.json",
            &[
                (&first, None),
                (&second, wrong_hash.then_some(bad.as_str())),
            ],
            total,
        );
        let journal = open_journal(&path).await;
        let importer = Importer::new(journal.clone());
        // Naming one file of the delivery imports (or refuses) the delivery it belongs to.
        let jobs = files::plan(std::slice::from_ref(&first)).unwrap();
        assert_eq!(jobs.len(), 1, "{case}: {jobs:?}");
        let error = importer.run(&jobs[0], &Silent).await.unwrap_err();
        journal.close().await;
        let message = format!("{error:#}");
        assert!(message.contains("nothing imported"), "{case}: {message}");
        let why = if wrong_hash {
            "REF_20240513080000_NOTIFICATION_2.zip has SHA-256"
        } else {
            "the files hold 30 records, the manifest's totalRecordCount is 31"
        };
        assert!(message.contains(why), "{case}: {message}");
        assert_eq!(
            count(&path, "SELECT count(*) FROM notifications"),
            0,
            "{case}"
        );
        assert_eq!(
            count(&path, "SELECT count(*) FROM imported_files"),
            0,
            "{case}"
        );
    }
}

#[tokio::test]
async fn a_delivery_that_matches_its_manifest_imports_and_a_missing_file_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let first = write_zip(
        dir.path(),
        "REF_20240513080000_NOTIFICATION_1",
        notification_lines(0, 10),
    );
    let second = write_zip(
        dir.path(),
        "REF_20240513080000_NOTIFICATION_2",
        notification_lines(10, 20),
    );
    write_manifest(
        dir.path(),
        "REF_20240513080000_NOTIFICATION_HEADER.json",
        &[(&first, None), (&second, None)],
        30,
    );
    let journal = open_journal(&path).await;
    let importer = Importer::new(journal.clone());
    let jobs = files::plan(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let reports = importer.run(&jobs[0], &Silent).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(count(&path, "SELECT count(*) FROM notifications"), 30);

    std::fs::remove_file(&second).unwrap();
    let error = importer.run(&jobs[0], &Silent).await.unwrap_err();
    journal.close().await;
    assert!(
        format!("{error:#}").contains("REF_20240513080000_NOTIFICATION_2.zip is missing"),
        "{error:#}"
    );
}

#[tokio::test]
async fn seedfile_lines_journal_as_seed_and_bad_lines_are_rejected_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let seed = serde_json::json!({"organization": {"duns": "081466849", "primaryName": "Acme"}});
    let lines = vec![
        seed.to_string(),
        String::new(),
        "{not json".to_string(),
        serde_json::json!({"organization": {"duns": "12"}}).to_string(),
    ];
    let zip = write_zip(
        dir.path(),
        "REF_20240513080000_SEEDFILE_1",
        lines.into_iter(),
    );
    let journal = open_journal(&path).await;
    let importer = Importer::new(journal.clone());
    let jobs = files::plan(&[zip]).unwrap();
    let reports = importer.run(&jobs[0], &Silent).await.unwrap();
    journal.close().await;
    assert_eq!((reports[0].accepted, reports[0].rejected), (1, 2));
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM notifications WHERE status = 'pending' AND type = 'SEED'
             AND duns = '081466849' AND json_extract(raw, '$.deliveryTimeStamp') = '2024-05-13T08:00:00Z'"
        ),
        1
    );
    let details: String = open_read_only(&path)
        .query_row(
            "SELECT group_concat(coalesce(last_error, '') || ' ' || coalesce(reason, ''), '|') FROM notifications WHERE status = 'rejected'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        details.contains("REF_20240513080000_SEEDFILE_1.zip line 3: the line is not a JSON")
            && details.contains("REF_20240513080000_SEEDFILE_1.zip line 4: organization.duns"),
        "{details}"
    );
}

#[tokio::test]
async fn an_exceptions_file_records_each_duns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let file = dir.path().join("REF_20240513080000_EXCEPTIONS_1.txt");
    std::fs::write(
        &file,
        "DUNS\tCode\tInformation\n081466849\t10001\tDUNS not found\n502329781\t10002\tOut of business\n",
    )
    .unwrap();
    let journal = open_journal(&path).await;
    let importer = Importer::new(journal.clone());
    let jobs = files::plan(&[dir.path().to_path_buf()]).unwrap();
    let reports = importer.run(&jobs[0], &Silent).await.unwrap();
    assert_eq!(reports[0].exceptions, 2);
    assert!(reports[0].summary().contains("2 DUNS recorded"));
    let listed = journal.exceptions(None, 10, None).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].duns, "502329781");
    assert_eq!(listed[0].information, "Out of business");
    assert_eq!(listed[1].line, 2);
    let again = importer.run(&jobs[0], &Silent).await.unwrap();
    assert_eq!(again[0].outcome, FileOutcome::AlreadyImported);
    journal.close().await;
    assert_eq!(count(&path, "SELECT count(*) FROM dnb_exceptions"), 2);
}

/// A notification's type, DUNS, delivery time, stored JSON and whether it was accepted.
type Row = (Option<String>, Option<String>, Option<i64>, String, String);

/// The columns an import and a webhook delivery of the same notifications must agree on.
fn journal_state(path: &Path) -> Vec<Row> {
    open_read_only(path)
        .prepare(
            "SELECT type, duns, delivered_at, raw, CASE status WHEN 'rejected' THEN 'rejected' ELSE 'accepted' END
             FROM notifications ORDER BY id",
        )
        .unwrap()
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn the_ndjson_sample_imports_to_the_same_journal_state_as_the_webhook() {
    let lines = String::from_utf8(sample(NDJSON_SAMPLE))
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    let app = spawn_app().await;
    let answer = app
        .accept(sample(NDJSON_SAMPLE), "application/x-ndjson")
        .await;
    assert_eq!(answer["accepted"], lines);
    let stopped = app.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let file = dir.path().join(NDJSON_SAMPLE);
    std::fs::write(&file, sample(NDJSON_SAMPLE)).unwrap();
    let journal = open_journal(&path).await;
    let importer = Importer::new(journal.clone());
    let reports = importer
        .run(&files::plan(&[file]).unwrap()[0], &Silent)
        .await
        .unwrap();
    journal.close().await;
    assert_eq!(reports[0].accepted, lines as u64);
    let imported = journal_state(&path);
    assert_eq!(imported.len(), lines);
    assert_eq!(imported, journal_state(&stopped.db_path));
}

#[test]
fn dry_run_counts_and_journals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db");
    let zip = write_zip(
        dir.path(),
        "REF_20240513080000_NOTIFICATION_1",
        notification_lines(0, 5).chain(["{oops".to_string()]),
    );
    let (output, _) = import_process(&journal, &[zip.to_str().unwrap(), "--dry-run"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("6 lines, 5 accepted, 0 duplicates, 1 rejected")
            && stdout.contains("dry run"),
        "{stdout}"
    );
    assert_eq!(count(&journal, "SELECT count(*) FROM notifications"), 0);
}

/// Waits until `check` holds, for at most 30 seconds.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_imports_what_lands_in_the_inbox_and_moves_it() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&staging).unwrap();
    let inbox_setting = inbox.display().to_string();
    let app = spawn_app_with(
        move |settings| {
            settings.dnb.files.inbox = inbox_setting;
            settings.admin.token = secrecy::SecretString::from("inbox-admin-token");
        },
        Arc::new(dnb_hubspot_bridge::hubspot::DryRunExecutor),
    )
    .await;

    // An upload in progress (`.part`) and a broken zip.
    let good = write_zip(
        &staging,
        "REF_20240513080000_NOTIFICATION_1",
        notification_lines(0, 120),
    );
    let uploading = inbox.join("REF_20240513080000_NOTIFICATION_1.zip.part");
    std::fs::rename(&good, &uploading).unwrap();
    std::fs::write(
        inbox.join("REF_20240513080000_NOTIFICATION_9.zip"),
        b"not a zip",
    )
    .unwrap();

    let error_file = inbox.join("failed/REF_20240513080000_NOTIFICATION_9.zip.error");
    wait_until("the broken zip to fail", || error_file.is_file()).await;
    assert!(
        inbox
            .join("failed/REF_20240513080000_NOTIFICATION_9.zip")
            .is_file()
    );
    let error = std::fs::read_to_string(&error_file).unwrap();
    assert!(error.contains("not a readable zip archive"), "{error}");
    assert!(uploading.is_file(), "a .part file is never read");
    assert_eq!(app.count("SELECT count(*) FROM notifications"), 0);

    // The upload completes.
    std::fs::rename(
        &uploading,
        inbox.join("REF_20240513080000_NOTIFICATION_1.zip"),
    )
    .unwrap();
    let imported = inbox.join("imported/REF_20240513080000_NOTIFICATION_1.zip");
    wait_until("the zip to be imported and moved", || imported.is_file()).await;
    app.wait_for_count("SELECT count(*) FROM notifications", 120)
        .await;
    assert!(!inbox.join("REF_20240513080000_NOTIFICATION_1.zip").exists());
    // The workers process them as webhook deliveries.
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status IN ('done', 'skipped')",
        120,
    )
    .await;

    // An EXCEPTIONS file: its DUNS are listed to operators.
    std::fs::write(
        inbox.join("REF_20240513080000_EXCEPTIONS_1.txt"),
        "DUNS\tCode\tInformation\n081466849\t10001\tDUNS not found\n",
    )
    .unwrap();
    let moved = inbox.join("imported/REF_20240513080000_EXCEPTIONS_1.txt");
    wait_until("the EXCEPTIONS file to be imported", || moved.is_file()).await;
    let listed: serde_json::Value = app
        .client
        .get(app.url("/exceptions"))
        .bearer_auth("inbox-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["duns"], "081466849", "{listed}");
    assert_eq!(
        listed["items"][0]["file"],
        "REF_20240513080000_EXCEPTIONS_1.txt"
    );
    assert_eq!(listed["items"][0]["line"], 2);

    let (_, metrics) = app.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "bridge_dnb_files_imported_total{kind=\"notification\",outcome=\"imported\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "bridge_dnb_files_imported_total{kind=\"notification\",outcome=\"failed\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "bridge_dnb_files_imported_total{kind=\"exceptions\",outcome=\"imported\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "bridge_dnb_exceptions_recorded_total"),
        1.0
    );
    app.stop().await;
}

#[test]
fn an_import_killed_mid_file_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db");
    let lines = 200_000;
    let zip = write_zip(
        dir.path(),
        "REF_20240513080000_NOTIFICATION_1",
        notification_lines(0, lines),
    );
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
        .args(["--config", config, "import"])
        .arg(&zip)
        .env(
            "BRIDGE__STORAGE__URL",
            format!("sqlite://{}", journal.display()),
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some chunks, but not all, are recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    let committed = loop {
        assert!(Instant::now() < deadline, "no chunk was recorded");
        let recorded = rusqlite::Connection::open_with_flags(
            &journal,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|connection| {
            connection.busy_timeout(Duration::from_secs(5))?;
            connection.query_row(
                "SELECT lines_committed FROM imported_files WHERE finished_at IS NULL",
                [],
                |row| row.get::<_, i64>(0),
            )
        });
        match recorded {
            Ok(lines) if lines > 0 => break lines,
            _ => {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the import finished before it could be killed"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(committed < lines as i64);

    let (output, _) = import_process(&journal, &[zip.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("resumed after line"), "{stdout}");
    assert_eq!(
        count(&journal, "SELECT count(*) FROM notifications"),
        lines as i64
    );
    assert_eq!(
        count(
            &journal,
            "SELECT count(*) FROM imported_files WHERE finished_at IS NOT NULL AND lines_committed = 200000"
        ),
        1
    );
}
