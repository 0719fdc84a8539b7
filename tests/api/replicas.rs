//! Several `serve` processes (the built binary, real HTTP) on one PostgreSQL journal, as
//! replicas behind a Service run: kill -9 of one mid-run, a process paused past its lease.
//! Skipped with a notice outside CI when no PostgreSQL server answers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::fake_hubspot::{Endpoint, FakeConfig, FakeHubSpot, Fault, ObjectType, RateLimit};
use crate::helpers::*;

/// One replica: its config, log and address.
struct Replica {
    config: PathBuf,
    log: PathBuf,
    base: String,
    child: Option<Child>,
}

impl Replica {
    fn new(dir: &Path, name: &str, url: &str, fake: &FakeHubSpot, extra: &str) -> Self {
        let port = free_port();
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "server:\n  bind: \"127.0.0.1:{port}\"\nwebhook:\n  secrets: [\"{SECRET}\"]\n\
                 storage:\n  url: \"{url}\"\n  max_connections: 8\n\
                 workers:\n  count: 2\n  lease_secs: 5\n  batch_max_wait_ms: 200\n  poll_interval_ms: 200\n\
                 hubspot:\n  enabled: true\n  base_url: \"{}\"\n  api_token: \"{}\"\n{extra}\
                 log:\n  level: info\n  format: json\n",
                fake.base_url(),
                fake.token()
            ),
        )
        .unwrap();
        Self {
            config,
            log: dir.join(format!("{name}.log")),
            base: format!("http://127.0.0.1:{port}"),
            child: None,
        }
    }

    async fn start(&mut self, client: &reqwest::Client) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
                .args(["--config", self.config.to_str().unwrap(), "serve"])
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("the binary starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(format!("{}/health", self.base)).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not become healthy:\n{}",
                self.base,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// Posts `body` under `webhook_id` until some replica answers 202 (as a relay retries),
/// starting with `first`; returns the journal ids of the answer.
async fn deliver(
    client: &reqwest::Client,
    bases: &[String],
    first: usize,
    webhook_id: &str,
    body: &[u8],
) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = first;
    loop {
        let base = &bases[attempt % bases.len()];
        attempt += 1;
        let timestamp = now_secs();
        let sent = client
            .post(format!("{base}/webhooks/dnb"))
            .header("content-type", "application/json")
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign(SECRET, webhook_id, timestamp, body),
            )
            .body(body.to_vec())
            .send()
            .await;
        if let Ok(response) = sent
            && response.status() == 202
        {
            let answer: Value = response.json().await.unwrap();
            return answer["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().parse().unwrap())
                .collect();
        }
        assert!(Instant::now() < deadline, "no replica took {webhook_id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `sql` (a count) returns `expected`.
async fn wait_for(
    pool: &PgPool,
    sql: &'static str,
    expected: i64,
    within: Duration,
    logs: &[&Replica],
) {
    let deadline = Instant::now() + within;
    loop {
        let got: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        if got == expected {
            return;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = logs.iter().map(|replica| replica.log_text()).collect();
            panic!(
                "{sql} stayed at {got}, expected {expected}; logs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const TIMES: [&str; 10] = [
    "2024-05-13T08:00:00.000Z",
    "2024-05-13T08:01:00.000Z",
    "2024-05-13T08:02:00.000Z",
    "2024-05-13T08:03:00.000Z",
    "2024-05-13T08:04:00.000Z",
    "2024-05-13T08:05:00.000Z",
    "2024-05-13T08:06:00.000Z",
    "2024-05-13T08:07:00.000Z",
    "2024-05-13T08:08:00.000Z",
    "2024-05-13T08:09:00.000Z",
];

/// The notification of round `round` for `duns`: a SEED that creates the company, updates,
/// and last a DELETE (a task).
fn round_notification(round: usize, duns: &str) -> Value {
    let kind = match round {
        0 => "SEED",
        9 => "DELETE",
        _ => "UPDATE",
    };
    let mut item = notification(kind, duns, TIMES[round]);
    item["organization"]["primaryName"] = json!(format!("Company {duns}"));
    item
}

/// The notification ids whose markers a note body carries.
fn marked_ids(body: &str) -> Vec<i64> {
    let prefix = dnb_hubspot_bridge::mapping::render::marker(0);
    let prefix = prefix.trim_end_matches('0');
    body.match_indices(prefix)
        .filter_map(|(at, _)| {
            let digits: String = body[at + prefix.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_process_every_notification_once_in_order_through_a_kill_9() {
    let Some(url) = crate::postgres::fresh_url("two_replicas_through_a_kill_9").await else {
        return;
    };
    // A portal with a larger window than the default, shared by both replicas' budget.
    let fake = crate::hubspot::portal(FakeConfig {
        rate_limit: RateLimit {
            max: 400,
            interval: Duration::from_secs(10),
        },
        ..FakeConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // The fake's search shows new records at once, so a lost create is looked for soon.
    let budget =
        "  reconcile_after_secs: 1\n  rate_limit:\n    requests_per_second: 30\n    burst: 30\n";
    let client = reqwest::Client::new();
    let mut first = Replica::new(dir.path(), "first", &url, &fake, budget);
    let mut second = Replica::new(dir.path(), "second", &url, &fake, budget);
    first.start(&client).await;
    second.start(&client).await;
    let bases = vec![first.base.clone(), second.base.clone()];
    let started = Instant::now();

    // 2,000 DUNS × 10 notifications, round by round (a DUNS's notifications arrive in
    // delivery order), 10 per request, alternating between the replicas.
    let dunses: Vec<String> = (0..2_000)
        .map(|n| format!("{:09}", 600_000_000 + n))
        .collect();
    let acknowledged = Arc::new(tokio::sync::Mutex::new(HashSet::<i64>::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let sending = {
        let (client, bases, dunses, acknowledged, answered) = (
            client.clone(),
            bases.clone(),
            dunses.clone(),
            acknowledged.clone(),
            answered.clone(),
        );
        tokio::spawn(async move {
            let mut request = 0;
            for round in 0..TIMES.len() {
                let bodies: Vec<Vec<u8>> = dunses
                    .chunks(10)
                    .map(|chunk| {
                        let items: Vec<Value> = chunk
                            .iter()
                            .map(|duns| round_notification(round, duns))
                            .collect();
                        serde_json::to_vec(&json!({ "notifications": items })).unwrap()
                    })
                    .collect();
                // Eight requests in flight at a time; the round ends before the next begins.
                for group in bodies.chunks(8) {
                    let posts = group.iter().map(|body| {
                        request += 1;
                        let (client, bases, acknowledged, answered) =
                            (&client, &bases, &acknowledged, &answered);
                        let first = request;
                        async move {
                            let ids = deliver(client, bases, first, &new_webhook_id(), body).await;
                            assert_eq!(ids.len(), 10);
                            acknowledged.lock().await.extend(ids);
                            answered.fetch_add(10, Ordering::SeqCst);
                        }
                    });
                    futures::future::join_all(posts).await;
                }
            }
        })
    };

    // Kill -9 the first replica mid-run, then start it again.
    while answered.load(Ordering::SeqCst) < 8_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.start(&client).await;
    sending.await.unwrap();
    eprintln!("all 202s after {:?}", started.elapsed());
    let acknowledged = acknowledged.lock().await.clone();
    assert_eq!(
        acknowledged.len(),
        20_000,
        "every notification has its own id"
    );

    // Everything ends done.
    let pool = PgPool::connect(&url).await.unwrap();
    wait_for(
        &pool,
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        20_000,
        Duration::from_secs(240),
        &[&first, &second],
    )
    .await;
    eprintln!("all done after {:?}", started.elapsed());
    let stored: HashSet<i64> = sqlx::query_scalar("SELECT id FROM notifications")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        stored, acknowledged,
        "the journal holds exactly what was answered 202"
    );

    // Processed once: one attempt each that was not put off (the batch in flight at the
    // kill waits for its lost creates to be looked for first), and it ended done.
    let attempts: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT notification_id, count(*) FROM attempts WHERE outcome <> 'deferred'
         GROUP BY notification_id HAVING count(*) <> 1 OR bool_or(outcome <> 'done')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        attempts.is_empty(),
        "notifications with other than one attempt: {attempts:?}"
    );

    // Per DUNS, finished in delivery order.
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT n.duns, n.delivered_at, n.id, a.finished_at FROM notifications AS n
         JOIN attempts AS a ON a.notification_id = n.id AND a.outcome = 'done'
         ORDER BY n.duns, n.delivered_at, n.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (duns, _, id, finished) in &rows {
        let previous = last.insert(duns, *finished).unwrap_or(i64::MIN);
        assert!(
            previous <= *finished,
            "{duns}: notification {id} finished before an earlier one"
        );
    }

    // HubSpot: one company per DUNS, one task each, no note twice, no 429, and each
    // company's alert time only moved forward.
    assert_eq!(fake.throttled(), 0, "no 429s");
    fake.assert_no_violations();
    let companies = fake.companies();
    assert_eq!(companies.len(), dunses.len());
    let by_duns: HashSet<&str> = companies
        .iter()
        .filter_map(|company| company.property("duns_number"))
        .collect();
    assert_eq!(by_duns.len(), dunses.len(), "one company per DUNS");
    let mut tasks_per_company: BTreeMap<String, usize> = BTreeMap::new();
    for task in fake.tasks() {
        for association in &task.associations {
            *tasks_per_company
                .entry(association.to_id.clone())
                .or_default() += 1;
        }
    }
    assert_eq!(tasks_per_company.len(), dunses.len());
    assert!(
        tasks_per_company.values().all(|count| *count == 1),
        "a task twice"
    );
    let mut marked: HashMap<i64, usize> = HashMap::new();
    for note in fake.notes() {
        let body = note.property("hs_note_body").unwrap_or_default();
        for id in marked_ids(body) {
            *marked.entry(id).or_default() += 1;
        }
    }
    assert!(marked.values().all(|count| *count == 1), "a note twice");
    let mut alert_at: HashMap<String, String> = HashMap::new();
    for request in fake.requests_to(Endpoint::BatchUpdate(ObjectType::Companies)) {
        let Some(body) = request.body else { continue };
        for input in body["inputs"].as_array().into_iter().flatten() {
            let (Some(id), Some(at)) = (
                input["id"].as_str(),
                input["properties"]["dnb_last_alert_at"].as_str(),
            ) else {
                continue;
            };
            if let Some(previous) = alert_at.insert(id.to_string(), at.to_string()) {
                assert!(
                    previous.as_str() <= at,
                    "company {id}: alert time went back from {previous} to {at}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_paused_past_its_lease_has_its_writes_refused_and_sends_nothing_more() {
    let Some(url) = crate::postgres::fresh_url("a_replica_paused_past_its_lease").await else {
        return;
    };
    let fake = crate::hubspot::portal(FakeConfig::default()).await;
    let dunses: Vec<String> = (0..20).map(|n| format!("{:09}", 700_000_000 + n)).collect();
    for duns in &dunses {
        fake.add_company([
            ("name", format!("Company {duns}")),
            ("duns_number", duns.clone()),
        ]);
    }
    // The paused replica's first company read answers only after a while.
    fake.fail_next(
        Endpoint::BatchRead(ObjectType::Companies),
        1,
        Fault::Delay(Duration::from_secs(2)),
    );
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut stale = Replica::new(dir.path(), "stale", &url, &fake, "");
    let mut other = Replica::new(dir.path(), "other", &url, &fake, "");
    stale.start(&client).await;
    let pool = PgPool::connect(&url).await.unwrap();

    let items: Vec<Value> = dunses
        .iter()
        .map(|duns| notification("DELETE", duns, "2024-05-13T08:00:00.000Z"))
        .collect();
    let body = serde_json::to_vec(&json!({ "notifications": items })).unwrap();
    deliver(
        &client,
        std::slice::from_ref(&stale.base),
        0,
        &new_webhook_id(),
        &body,
    )
    .await;
    wait_for(
        &pool,
        "SELECT count(*) FROM notifications WHERE status = 'processing'",
        20,
        Duration::from_secs(20),
        &[&stale],
    )
    .await;
    // Paused while its batch waits on HubSpot, for longer than its 5 s lease.
    stale.signal("-STOP");
    other.start(&client).await;
    wait_for(
        &pool,
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        20,
        Duration::from_secs(30),
        &[&other],
    )
    .await;
    let writes = |fake: &FakeHubSpot| {
        fake.calls(Endpoint::BatchCreate(ObjectType::Tasks))
            + fake.calls(Endpoint::BatchCreate(ObjectType::Notes))
            + fake.calls(Endpoint::BatchUpdate(ObjectType::Companies))
            + fake.calls(Endpoint::BatchUpdate(ObjectType::Tasks))
    };
    let before = writes(&fake);
    assert_eq!(fake.tasks().len(), 20);

    // Resumed: its HubSpot read answers, it finds its lease gone, stops before its next
    // write, and its outcomes are refused when the batch ends.
    stale.signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stale.log_text().contains("outcomes refused") {
        assert!(
            Instant::now() < deadline,
            "the resumed replica's batch never ended:\n{}",
            stale.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(writes(&fake), before, "the stale batch wrote to HubSpot");
    assert_eq!(fake.tasks().len(), 20, "no second task");
    let attempts: Vec<(i64, String)> =
        sqlx::query_as("SELECT notification_id, worker FROM attempts ORDER BY notification_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        attempts.len(),
        20,
        "only the new owner's outcomes are recorded"
    );
    let stale_pid = stale.pid().to_string();
    assert!(
        attempts
            .iter()
            .all(|(_, worker)| !worker.contains(&stale_pid)),
        "{attempts:?}"
    );
}

/// Polls `GET path` (admin) until `done` accepts the JSON answer.
async fn wait_for_answer(
    app: &TestApp,
    path: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer: Value = app
            .client
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_service_on_postgres_answers_lists_replays_and_reports_as_on_sqlite() {
    let Some(url) = crate::postgres::fresh_url("the_service_on_postgres").await else {
        return;
    };
    const TOKEN: &str = "admin-token-for-postgres";
    let app = spawn_configured_app(|settings| {
        settings.storage.url = url.clone();
        settings.admin.token = secrecy::SecretString::from(TOKEN);
    })
    .await;
    let items: Vec<Value> = (0..25)
        .map(|n| {
            notification(
                "DELETE",
                &format!("{:09}", 800_000_000 + n),
                "2024-05-13T08:00:00Z",
            )
        })
        .chain([json!({"type": "DELETE", "organization": {"duns": "12"}})])
        .collect();
    let body = serde_json::to_vec(&items).unwrap();
    let answer = app.accept(body.clone(), "application/json").await;
    assert_eq!(answer["accepted"], 25, "{answer}");
    assert_eq!(answer["rejected"].as_array().unwrap().len(), 1, "{answer}");
    // The same content again is a duplicate, with the same ids.
    let again = app.accept(body, "application/json").await;
    assert_eq!(again["ids"], answer["ids"]);
    assert_eq!(again["duplicates"], 25, "{again}");

    // Dry-run workers finish them; the listing pages through them with its cursor.
    wait_for_answer(
        &app,
        "/notifications?status=done&limit=100",
        TOKEN,
        |page| {
            page["items"]
                .as_array()
                .is_some_and(|items| items.len() == 25)
        },
    )
    .await;
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/notifications?status=done&limit=10&cursor={cursor}"),
            None => "/notifications?status=done&limit=10".into(),
        };
        let page = wait_for_answer(&app, &path, TOKEN, |_| true).await;
        for item in page["items"].as_array().unwrap() {
            assert!(seen.insert(item["id"].as_str().unwrap().to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let rejected = wait_for_answer(&app, "/notifications?status=rejected", TOKEN, |_| true).await;
    assert_eq!(rejected["items"][0]["reason"], "invalid_duns", "{rejected}");

    // A replay puts one back and it is done again, with its history.
    let id = answer["ids"][0].as_str().unwrap().to_string();
    let replayed: Value = app
        .client
        .post(app.url("/replay"))
        .bearer_auth(TOKEN)
        .json(&json!({"ids": [id]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["enqueued"], 1, "{replayed}");
    let detail = wait_for_answer(&app, &format!("/notifications/{id}"), TOKEN, |detail| {
        detail["status"] == "done" && detail["attempts"] == 2
    })
    .await;
    let history = detail["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|step| step["detail"] == "replayed (was done)"),
        "{detail}"
    );

    // Probes and metrics read the shared journal.
    let (status, ready) = app.get("/ready").await;
    assert_eq!(status, 200, "{ready}");
    let (_, metrics) = app.get("/metrics").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut metrics = metrics;
    while metric(&metrics, "bridge_journal_notifications{status=\"done\"}") != 25.0 {
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = app.get("/metrics").await.1;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redelivery_posted_to_two_replicas_at_once_is_stored_once_and_answered_alike() {
    let Some(url) = crate::postgres::fresh_url("one_redelivery_posted_to_two_replicas").await
    else {
        return;
    };
    let on_postgres = |settings: &mut dnb_hubspot_bridge::config::Settings| {
        settings.storage.url = url.clone();
    };
    let (first, second) = tokio::join!(
        spawn_configured_app(on_postgres),
        spawn_configured_app(on_postgres)
    );
    for round in 0..10 {
        let body = serde_json::to_vec(&json!([
            notification(
                "UPDATE",
                "111111111",
                &format!("2024-05-13T08:00:{round:02}Z")
            ),
            notification(
                "EXIT",
                "222222222",
                &format!("2024-05-13T08:00:{round:02}Z")
            ),
        ]))
        .unwrap();
        let webhook_id = new_webhook_id();
        let timestamp = now_secs();
        let (a, b) = tokio::join!(
            first.post_webhook_as(
                body.clone(),
                "application/json",
                &webhook_id,
                timestamp,
                SECRET
            ),
            second.post_webhook_as(body, "application/json", &webhook_id, timestamp, SECRET)
        );
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
        let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
        assert_eq!(a["ids"], b["ids"], "{a} {b}");
        assert_eq!(
            a["accepted"].as_u64().unwrap() + b["accepted"].as_u64().unwrap(),
            2,
            "{a} {b}"
        );
    }
    let pool = PgPool::connect(&url).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 20);
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ask_hubspot_about_the_portal_once_for_all_of_them() {
    let Some(url) = crate::postgres::fresh_url("replicas_ask_hubspot_about_the_portal_once").await
    else {
        return;
    };
    let fake = crate::hubspot::portal(FakeConfig::default()).await;
    fake.add_owner("owner@example.com");
    let dunses = ["910000001", "910000002"];
    for duns in dunses {
        fake.add_company([
            ("name", format!("Company {duns}")),
            ("duns_number", duns.to_string()),
        ]);
    }
    let configure = |settings: &mut dnb_hubspot_bridge::config::Settings| {
        settings.storage.url = url.clone();
        settings.hubspot.default_owner_email = "owner@example.com".into();
        crate::hubspot::point_at(settings, &fake.base_url(), fake.token());
    };
    let pool = PgPool::connect(&url).await.unwrap();
    // One replica after the other, each with a DELETE (a task: owner, due date in the
    // portal's time zone, after the property check).
    let mut done = 0;
    for duns in dunses {
        let app = spawn_configured_app(configure).await;
        let body = serde_json::to_vec(&json!([notification(
            "DELETE",
            duns,
            "2024-05-13T08:00:00Z"
        )]))
        .unwrap();
        app.accept(body, "application/json").await;
        done += 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        while sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM notifications WHERE status = 'done'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
            < done
        {
            assert!(Instant::now() < deadline, "{duns} was not processed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        app.stop().await;
    }
    assert_eq!(fake.tasks().len(), 2);
    let counts = fake.call_counts();
    for endpoint in [
        Endpoint::Owners,
        Endpoint::AccountDetails,
        Endpoint::PropertiesBatchRead(ObjectType::Companies),
    ] {
        assert_eq!(
            counts.get(&endpoint),
            Some(&1),
            "{endpoint:?} in {counts:?}"
        );
    }
}
