//! Secrets never leave the process: not in logs (JSON, debug level), not in
//! error bodies, not in check-config. The built binary runs against the fake
//! HubSpot with a token the fake refuses, so the failure paths log too.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_hubspot::{FakeConfig, FakeHubSpot};
use crate::helpers::*;

const ADMIN_TOKEN: &str = "admin-secret-7f3a9c";
const HUBSPOT_TOKEN: &str = "pat-na1-secret-hubspot-token-1234";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_signing_secrets_never_appear_in_logs_or_answers() {
    // Arrange: the fake accepts another token, so every HubSpot call is refused.
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  bind: \"127.0.0.1:{port}\"\nwebhook:\n  secrets: [\"{SECRET}\"]\nadmin:\n  token: \"{ADMIN_TOKEN}\"\n\
             storage:\n  url: \"sqlite://{}\"\nhubspot:\n  enabled: true\n  base_url: \"{}\"\n  api_token: \"{HUBSPOT_TOKEN}\"\n\
             log:\n  format: json\n  level: debug\n",
            dir.path().join("journal.db").display(),
            fake.base_url()
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Act: accepted and refused deliveries, admin calls with good and bad tokens.
    let mut answers = Vec::new();
    let body = sample("exit.json");
    for secret in [SECRET, "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="] {
        let id = new_webhook_id();
        let timestamp = now_secs();
        let response = client
            .post(format!("{base}/webhooks/dnb"))
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign(secret, &id, timestamp, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        answers.push(response.text().await.unwrap());
    }
    for token in [ADMIN_TOKEN, "wrong"] {
        let response = client
            .get(format!("{base}/notifications"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        answers.push(response.text().await.unwrap());
    }
    let ready_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = client
            .get(format!("{base}/ready"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if ready.contains("\"auth\"") {
            answers.push(ready);
            break;
        }
        assert!(
            Instant::now() < ready_deadline,
            "HubSpot refusal never showed: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The outcome of the deferred notification is logged right after the pause; wait for it.
    let logged_deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("notification processed")
    {
        assert!(
            Instant::now() < logged_deadline,
            "the outcome was never logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Assert
    let logged = std::fs::read_to_string(&log).unwrap();
    let key = SECRET.trim_start_matches("whsec_");
    for secret in [ADMIN_TOKEN, HUBSPOT_TOKEN, SECRET, key] {
        assert!(!logged.contains(secret), "a secret reached the log");
        assert!(
            answers.iter().all(|answer| !answer.contains(secret)),
            "a secret reached an answer"
        );
    }
    let lines: Vec<Value> = logged
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(!lines.is_empty(), "the log is JSON lines");
    assert!(
        lines
            .iter()
            .any(|line| line["span"]["request_id"].is_string()),
        "request ids are logged"
    );
    assert!(
        lines
            .iter()
            .any(|line| line["notification.id"].is_number() && line["dnb.duns"] == "350126679"),
        "notification ids and DUNS are fields"
    );
    assert!(
        lines.iter().any(|line| line["message"]
            .as_str()
            .is_some_and(|message| message.contains("refused the credentials"))),
        "the refused token is logged once, clearly"
    );
}
