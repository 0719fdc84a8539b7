//! A real `kill -9` of the built binary while deliveries are in flight: every
//! notification answered 202 is in the journal and is processed after a restart.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::fake_hubspot::{Endpoint, FakeConfig, Fault, ObjectType};
use crate::helpers::*;

fn start(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the binary starts")
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client.get(format!("{base}/health")).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_answered_202_survive_kill_9_and_are_processed_after_restart() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yaml");
    let journal = dir.path().join("journal.db");
    std::fs::write(
        &config,
        format!(
            "server:\n  bind: \"127.0.0.1:{port}\"\nwebhook:\n  secrets: [\"{SECRET}\"]\nstorage:\n  url: \"sqlite://{}\"\n\
             workers:\n  count: 1\n  batch_size: 5\nlog:\n  level: warn\n  format: json\n",
            journal.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = start(&config, &log);
    wait_healthy(&client, &base).await;

    // Act: 32 senders post unique notifications; the process is killed after 150 answers.
    let acknowledged = Arc::new(Mutex::new(Vec::<i64>::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for sender in 0..32 {
        let (client, base, acknowledged, answered) = (
            client.clone(),
            base.clone(),
            acknowledged.clone(),
            answered.clone(),
        );
        senders.push(tokio::spawn(async move {
            for sequence in 0..40 {
                let duns = format!("{:09}", sender * 1000 + sequence);
                let body =
                    serde_json::to_vec(&notification("EXIT", &duns, "2024-05-13T08:00:00.000Z"))
                        .unwrap();
                let id = new_webhook_id();
                let timestamp = now_secs();
                let sent = client
                    .post(format!("{base}/webhooks/dnb"))
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", sign(SECRET, &id, timestamp, &body))
                    .body(body)
                    .send()
                    .await;
                let Ok(response) = sent else { return };
                if response.status() != 202 {
                    return;
                }
                let Ok(answer) = response.json::<Value>().await else {
                    return;
                };
                let journal_id = answer["ids"][0].as_str().unwrap().parse().unwrap();
                acknowledged.lock().await.push(journal_id);
                answered.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    while answered.load(Ordering::SeqCst) < 150 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.kill().expect("SIGKILL delivered");
    child.wait().unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged: HashSet<i64> = acknowledged.lock().await.iter().copied().collect();
    assert!(acknowledged.len() >= 150);

    // Assert: everything acknowledged is journaled, and is processed after a restart.
    let stored: HashSet<i64> = {
        let db = open_read_only(&journal);
        let mut statement = db.prepare("SELECT id FROM notifications").unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");

    let mut child = start(&config, &log);
    wait_healthy(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unfinished: i64 = open_read_only(&journal)
            .query_row(
                "SELECT count(*) FROM notifications WHERE status <> 'done'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} notifications were not processed after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Posts `body` signed with the test secret and returns the answer's status.
async fn post_signed(client: &reqwest::Client, base: &str, body: Vec<u8>) -> u16 {
    let id = new_webhook_id();
    let timestamp = now_secs();
    client
        .post(format!("{base}/webhooks/dnb"))
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(SECRET, &id, timestamp, &body))
        .body(body)
        .send()
        .await
        .expect("request sent")
        .status()
        .as_u16()
}

/// Waits until `sql` (a count over the journal at `path`) returns `expected`.
async fn wait_for_journal(path: &Path, sql: &str, expected: i64, within: Duration, log: &Path) {
    let deadline = Instant::now() + within;
    loop {
        let got: i64 = open_read_only(path)
            .query_row(sql, [], |row| row.get(0))
            .unwrap();
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} stayed at {got}, expected {expected}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_claimed_when_the_process_was_killed_is_settled_within_seconds_of_the_restart() {
    // Arrange: a portal with 20 companies whose first company read hangs, and the
    // default 5-minute lease.
    let fake = crate::hubspot::portal(FakeConfig::default()).await;
    let dunses: Vec<String> = (0..20).map(|n| format!("{:09}", 500_000_000 + n)).collect();
    for duns in &dunses {
        fake.add_company([
            ("name", format!("Company {duns}")),
            ("duns_number", duns.clone()),
        ]);
    }
    fake.fail_next(
        Endpoint::BatchRead(ObjectType::Companies),
        1,
        Fault::Delay(Duration::from_secs(60)),
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yaml");
    let journal = dir.path().join("journal.db");
    std::fs::write(
        &config,
        format!(
            "server:\n  bind: \"127.0.0.1:{port}\"\nwebhook:\n  secrets: [\"{SECRET}\"]\n\
             storage:\n  url: \"sqlite://{}\"\n\
             workers:\n  count: 1\n  batch_max_wait_ms: 50\n\
             hubspot:\n  enabled: true\n  base_url: \"{}\"\n  api_token: \"{}\"\n\
             log:\n  level: info\n  format: json\n",
            journal.display(),
            fake.base_url(),
            fake.token()
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = start(&config, &log);
    wait_healthy(&client, &base).await;

    // Act: the batch is claimed and waits on HubSpot when the process is killed.
    let items: Vec<Value> = dunses
        .iter()
        .map(|duns| notification("DELETE", duns, "2024-05-13T08:00:00.000Z"))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "notifications": items })).unwrap();
    assert_eq!(post_signed(&client, &base, body).await, 202);
    wait_for_journal(
        &journal,
        "SELECT count(*) FROM notifications WHERE status = 'processing'",
        20,
        Duration::from_secs(20),
        &log,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.calls(Endpoint::BatchRead(ObjectType::Companies)) == 0 {
        assert!(Instant::now() < deadline, "the batch never reached HubSpot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL delivered");
    child.wait().unwrap();
    let mut child = start(&config, &log);
    wait_healthy(&client, &base).await;

    // Assert: settled in seconds, not after the lease, and nothing was created twice.
    wait_for_journal(
        &journal,
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        20,
        Duration::from_secs(20),
        &log,
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.lines().any(|line| {
            line.contains("took back the notifications a previous process had claimed")
                && line.contains("\"notifications\":20")
        }),
        "one line gives the count; log:\n{logged}"
    );
    assert_eq!(fake.tasks().len(), 20);
    assert_eq!(fake.notes().len(), 20);
    fake.assert_no_violations();
}
