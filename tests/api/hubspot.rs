//! The HubSpot executor end to end: the bridge's workers against the fake
//! HubSpot portal, whose every request is checked against HubSpot's OpenAPI specs.

use std::sync::Arc;
use std::time::Duration;

use dnb_hubspot_bridge::journal::ManualClock;
use secrecy::SecretString;
use serde_json::json;

use crate::fake_hubspot::{Endpoint, FakeConfig, FakeHubSpot, Fault, ObjectType};
use crate::helpers::*;

/// The company properties the bridge writes besides the DUNS property, which must exist.
fn alert_properties() -> Vec<String> {
    dnb_hubspot_bridge::hubspot::properties::required("duns_number")
        .into_iter()
        .skip(1)
        .map(|property| property.name)
        .collect()
}

/// A fake portal with the bridge's alert properties in place.
pub(crate) async fn portal(config: FakeConfig) -> FakeHubSpot {
    let fake = FakeHubSpot::start(config).await;
    for name in alert_properties() {
        fake.add_property(&name, false);
    }
    fake
}

/// Enables HubSpot in `settings` against the fake at `base_url` with `token`.
pub(crate) fn point_at(
    settings: &mut dnb_hubspot_bridge::config::Settings,
    base_url: &str,
    token: &str,
) {
    settings.hubspot.enabled = true;
    settings.hubspot.base_url = base_url.to_string();
    settings.hubspot.api_token = SecretString::from(token.to_string());
}

async fn bridge(fake: &FakeHubSpot) -> TestApp {
    bridge_with(fake, |_| {}).await
}

/// The bridge against `fake` with short waits, after `configure` adjusted its settings.
pub(crate) async fn bridge_with(
    fake: &FakeHubSpot,
    configure: impl FnOnce(&mut dnb_hubspot_bridge::config::Settings),
) -> TestApp {
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    spawn_configured_app(move |settings| {
        point_at(settings, &base_url, &token);
        settings.hubspot.timeout_secs = 1;
        settings.hubspot.reconcile_after_secs = 1;
        settings.hubspot.outage_pause_secs = 1;
        settings.hubspot.auth_probe_secs = 1;
        settings.workers.retry_initial_ms = 50;
        configure(settings);
    })
    .await
}

fn body(items: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "notifications": items })).unwrap()
}

#[tokio::test]
async fn a_critical_delete_gives_the_company_owner_a_high_task_a_note_and_alert_fields() {
    // Arrange
    let fake = portal(FakeConfig::default()).await;
    let owner = fake.add_owner("rep@acme.example");
    let company = fake.add_company([
        ("name", "Acme Corp"),
        ("duns_number", "804735132"),
        ("hubspot_owner_id", owner.as_str()),
    ]);
    let app = bridge(&fake).await;

    // Act
    app.accept(
        body(vec![notification(
            "DELETE",
            "804735132",
            "2024-05-13T08:24:28.972Z",
        )]),
        "application/json",
    )
    .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done' AND dry_run = 0",
        1,
    )
    .await;

    // Assert
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].properties["hs_task_priority"], "HIGH");
    assert_eq!(tasks[0].properties["hubspot_owner_id"], owner.as_str());
    assert_eq!(tasks[0].properties["hs_task_status"], "NOT_STARTED");
    assert_eq!(tasks[0].associations[0].to_id, company);
    assert_eq!(fake.notes().len(), 1);
    let updated = fake.company(&company).unwrap();
    assert_eq!(updated.properties["dnb_last_alert_type"], "DELETE");
    assert_eq!(
        app.count("SELECT count(*) FROM actions WHERE state = 'done' AND object_id IS NOT NULL"),
        3
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_default_table_tracks_the_alert_on_the_company_for_every_type() {
    // Arrange: one company per type that did not write alert properties before.
    let fake = portal(FakeConfig::default()).await;
    let alerts = [
        ("EXIT", "100000001", Some("coverage_lost")),
        ("REMOVED", "100000002", Some("coverage_lost")),
        ("UNDER_REVIEW", "100000003", Some("under_review")),
        ("REVIEWED", "100000004", Some("monitored")),
        ("SEED", "100000005", None),
        ("FULL_PRODUCT", "100000006", None),
    ];
    let companies: Vec<String> = alerts
        .iter()
        .map(|(_, duns, _)| fake.add_company([("name", "Acme"), ("duns_number", *duns)]))
        .collect();
    let app = bridge(&fake).await;

    // Act
    let items = alerts
        .iter()
        .map(|(kind, duns, _)| notification(kind, duns, "2024-05-13T08:24:28.972Z"))
        .collect();
    app.accept(body(items), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done' AND dry_run = 0",
        alerts.len() as i64,
    )
    .await;

    // Assert
    for ((kind, _, status), company) in alerts.iter().zip(&companies) {
        let record = fake.company(company).unwrap();
        assert_eq!(record.properties["dnb_last_alert_type"], *kind);
        assert_eq!(
            record.properties["dnb_last_alert_at"],
            "2024-05-13T08:24:28.972Z"
        );
        if let Some(status) = status {
            assert_eq!(
                record.properties["dnb_monitoring_status"], *status,
                "{kind}"
            );
        }
    }
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_seed_for_an_unknown_duns_creates_the_company_with_its_name() {
    let fake = portal(FakeConfig::default()).await;
    let app = bridge(&fake).await;
    app.accept(sample("seed.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    let companies = fake.companies();
    assert_eq!(companies.len(), 1);
    assert_eq!(companies[0].properties["name"], "Larkspur Analytics Inc.");
    assert_eq!(companies[0].properties["duns_number"], "846203391");
    assert_eq!(fake.notes().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_update_for_an_unknown_duns_is_skipped_without_writing_anything() {
    let fake = portal(FakeConfig::default()).await;
    let app = bridge(&fake).await;
    app.accept(sample("update.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'skipped' AND reason = 'no_company'",
        2,
    )
    .await;
    assert!(fake.companies().is_empty() && fake.notes().is_empty() && fake.tasks().is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_task_written_but_whose_answer_was_lost_is_not_created_twice() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Exit Co"), ("duns_number", "350126679")]);
    fake.fail_next(
        Endpoint::BatchCreate(ObjectType::Tasks),
        1,
        Fault::ApplyThenDrop,
    );
    let app = bridge(&fake).await;
    app.accept(sample("exit.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    assert_eq!(
        fake.tasks().len(),
        1,
        "the lost create was found by its marker, not sent again"
    );
    assert_eq!(fake.notes().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_outage_longer_than_any_retry_count_ends_with_everything_done_and_nothing_dead() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Exit Co"), ("duns_number", "350126679")]);
    let unavailable = Fault::Status {
        status: 503,
        body: json!({"status": "error", "message": "down"}),
        headers: Vec::new(),
    };
    fake.fail_next(Endpoint::BatchRead(ObjectType::Companies), 6, unavailable);
    let app = bridge(&fake).await;
    app.accept(sample("exit.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    assert_eq!(
        app.count("SELECT count(*) FROM notifications WHERE status = 'dead'"),
        0
    );
    assert_eq!(
        app.count("SELECT attempts FROM notifications"),
        1,
        "deferrals spend no attempts"
    );
    assert!(app.count("SELECT count(*) FROM attempts WHERE outcome = 'deferred'") >= 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_refused_token_pauses_the_workers_while_ingest_and_readiness_carry_on() {
    let fake = portal(FakeConfig {
        token: "the-right-token".into(),
        ..FakeConfig::default()
    })
    .await;
    let base_url = fake.base_url();
    let app = spawn_configured_app(move |settings| {
        settings.hubspot.enabled = true;
        settings.hubspot.base_url = base_url;
        settings.hubspot.api_token = SecretString::from("a-wrong-token");
        settings.hubspot.auth_probe_secs = 60;
    })
    .await;
    app.accept(sample("exit.json"), "application/json").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get("/ready").await;
        if body.contains("\"paused\"") {
            assert_eq!(status, 200);
            assert!(body.contains("\"auth\""), "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never paused: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, metrics) = app.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "bridge_hubspot_paused{reason=\"auth\"}"),
        1.0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM notifications WHERE status = 'pending'"),
        1
    );
    assert_eq!(
        app.accept(sample("reviewed.json"), "application/json")
            .await["accepted"],
        1
    );
}

#[tokio::test]
async fn deliveries_arriving_within_the_batch_wait_share_one_batch_of_calls() {
    let fake = portal(FakeConfig::default()).await;
    let dunses = ["804735132", "021258997", "350126679"];
    for (number, duns) in dunses.iter().enumerate() {
        fake.add_company([
            ("name", format!("Company {number}").as_str()),
            ("duns_number", duns),
        ]);
    }
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    let app = spawn_configured_app(move |settings| {
        point_at(settings, &base_url, &token);
        settings.workers.count = 2;
        settings.workers.batch_max_wait_ms = 1500;
    })
    .await;

    for duns in dunses {
        app.accept(
            body(vec![notification(
                "DELETE",
                duns,
                "2024-05-13T08:24:28.972Z",
            )]),
            "application/json",
        )
        .await;
    }
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        3,
    )
    .await;

    // Each delivery woke a worker, yet the three were claimed together.
    assert_eq!(fake.calls(Endpoint::BatchRead(ObjectType::Companies)), 1);
    assert_eq!(fake.calls(Endpoint::BatchCreate(ObjectType::Tasks)), 1);
    assert_eq!(fake.calls(Endpoint::BatchCreate(ObjectType::Notes)), 1);
    assert_eq!(fake.tasks().len(), 3);
    fake.assert_no_violations();
}

#[tokio::test]
async fn updates_of_one_company_in_one_batch_share_one_note_recorded_on_each() {
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Northwind"), ("duns_number", "021258997")]);
    let app = bridge(&fake).await;
    let mut first = notification("UPDATE", "021258997", "2024-05-13T08:14:35.852Z");
    first["elements"] = json!([{"element": "organization.primaryName", "previous": "Northwind", "current": "Northwind Group"}]);
    let mut second = notification("UPDATE", "021258997", "2024-05-13T09:14:35.852Z");
    second["elements"] = json!([{"element": "organization.websiteAddress", "previous": [], "current": [{"url": "https://nw.example"}]}]);
    app.accept(body(vec![first, second]), "application/json")
        .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        2,
    )
    .await;

    let notes = fake.notes();
    assert_eq!(notes.len(), 1, "one note covers both notifications");
    assert!(notes[0].properties["hs_note_body"].contains("Northwind Group"));
    assert!(notes[0].properties["hs_note_body"].contains("nw.example"));
    assert_eq!(app.count(&format!("SELECT count(DISTINCT object_id) FROM actions WHERE kind = 'create_note' AND object_id = '{}'", notes[0].id)), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM actions WHERE kind = 'create_note' AND state = 'done'"),
        2
    );
    assert_eq!(
        fake.company(&company).unwrap().properties["dnb_last_alert_at"],
        "2024-05-13T09:14:35.852Z"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_transfer_to_a_free_duns_moves_it_and_one_to_a_taken_duns_flags_a_possible_merge() {
    let fake = portal(FakeConfig::default()).await;
    let moving = fake.add_company([
        ("name", "Graphic Design Analytics Co."),
        ("duns_number", "629671816"),
    ]);
    let staying = fake.add_company([("name", "Fabrikam"), ("duns_number", "544806876")]);
    let holder = fake.add_company([("name", "Contoso Holdings"), ("duns_number", "111222333")]);
    let app = bridge(&fake).await;
    let mut free = notification("TRANSFER", "629671816", "2024-05-13T08:03:28.453Z");
    free["elements"] =
        json!([{"element": "organization.duns", "previous": "629671816", "current": "971647314"}]);
    let mut taken = notification("TRANSFER", "544806876", "2024-05-13T08:03:47.355Z");
    taken["elements"] =
        json!([{"element": "organization.duns", "previous": "544806876", "current": "111222333"}]);
    app.accept(body(vec![free, taken]), "application/json")
        .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        2,
    )
    .await;

    let moved = fake.company(&moving).unwrap();
    assert_eq!(moved.properties["duns_number"], "971647314");
    assert_eq!(moved.properties["dnb_previous_duns"], "629671816");
    let flagged = fake.company(&staying).unwrap();
    assert_eq!(flagged.properties["duns_number"], "544806876");
    assert_eq!(flagged.properties["dnb_successor_duns"], "111222333");
    assert_eq!(
        fake.company(&holder).unwrap().properties["duns_number"],
        "111222333"
    );
    let merge_task = fake
        .tasks()
        .into_iter()
        .find(|task| task.associations[0].to_id == staying)
        .unwrap();
    assert!(
        merge_task.properties["hs_task_body"].contains("Contoso Holdings"),
        "{}",
        merge_task.properties["hs_task_body"]
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_work_then_succeeds() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Exit Co"), ("duns_number", "350126679")]);
    let limited = Fault::Status {
        status: 429,
        body: json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}),
        headers: vec![("Retry-After".into(), "1".into())],
    };
    fake.fail_next(Endpoint::BatchRead(ObjectType::Companies), 1, limited);
    let app = bridge(&fake).await;
    app.accept(sample("exit.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    assert_eq!(app.count("SELECT attempts FROM notifications"), 1);
    assert_eq!(fake.tasks().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_daily_429_parks_the_work_until_midnight_in_the_portals_time_zone() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Exit Co"), ("duns_number", "350126679")]);
    let spent = Fault::status_with_body(
        429,
        json!({"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT", "policyName": "DAILY"}),
    );
    fake.fail_next(Endpoint::BatchRead(ObjectType::Companies), 1, spent);
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    let app = spawn_configured_app(move |settings| {
        point_at(settings, &base_url, &token);
        settings.hubspot.time_zone = "Asia/Tokyo".into();
    })
    .await;

    app.accept(sample("exit.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM attempts WHERE outcome = 'deferred'",
        1,
    )
    .await;

    // Tokyo is UTC+9 all year: its midnights are 15:00 UTC. Work resumes a minute after one.
    let next_attempt_at = app.count("SELECT next_attempt_at FROM notifications");
    let after_tokyo_midnight = (next_attempt_at + 9 * 3_600_000).rem_euclid(86_400_000);
    assert!(
        (59_000..120_000).contains(&after_tokyo_midnight),
        "resumes {after_tokyo_midnight} ms after a Tokyo midnight"
    );
    assert!(next_attempt_at - chrono::Utc::now().timestamp_millis() <= 86_460_000);
    let (_, ready) = app.get("/ready").await;
    assert!(ready.contains("daily_limit"), "{ready}");
    assert!(fake.tasks().is_empty());
}

fn run_bridge(args: &[&str], config: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn bootstrap_creates_the_properties_once_and_test_connection_then_passes() {
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "hubspot:\n  base_url: \"{}\"\n  api_token: \"{}\"\n  duns_property: dnb_duns\n",
            fake.base_url(),
            fake.token()
        ),
    )
    .unwrap();
    let text = |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).into_owned();

    let before = tokio::task::spawn_blocking({
        let config = config.clone();
        move || run_bridge(&["test-connection"], &config)
    })
    .await
    .unwrap();
    assert_eq!(before.status.code(), Some(1), "{}", text(&before));
    assert!(text(&before).contains("FAIL  DUNS property dnb_duns: missing"));

    let planned = tokio::task::spawn_blocking({
        let config = config.clone();
        move || run_bridge(&["bootstrap", "--dry-run"], &config)
    })
    .await
    .unwrap();
    assert!(
        text(&planned).contains("dnb_duns                 would create"),
        "{}",
        text(&planned)
    );
    assert!(fake.property("dnb_duns").is_none());

    for expected in ["created", "exists"] {
        let output = tokio::task::spawn_blocking({
            let config = config.clone();
            move || run_bridge(&["bootstrap"], &config)
        })
        .await
        .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        assert!(
            text(&output).contains(&format!("dnb_critical_alert       {expected}")),
            "{}",
            text(&output)
        );
    }
    assert_eq!(fake.property("dnb_duns").unwrap()["hasUniqueValue"], true);

    let after = tokio::task::spawn_blocking(move || run_bridge(&["test-connection"], &config))
        .await
        .unwrap();
    assert!(after.status.success(), "{}", text(&after));
    assert!(text(&after).contains("PASS  token"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_portal_without_the_alert_properties_pauses_the_workers_until_bootstrap() {
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    fake.add_company([("name", "Exit Co"), ("duns_number", "350126679")]);
    let app = bridge(&fake).await;
    app.accept(sample("exit.json"), "application/json").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app.get("/ready").await.1.contains("\"setup\"") {
        assert!(
            std::time::Instant::now() < deadline,
            "never paused for setup"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.tasks().is_empty());

    for name in alert_properties() {
        fake.add_property(&name, false);
    }
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    assert_eq!(fake.tasks().len(), 1);
    assert_eq!(app.count("SELECT attempts FROM notifications"), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_answer_that_does_not_parse_is_retried_then_the_notification_is_dead_with_the_excerpt() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Exit Co"), ("duns_number", "350126679")]);
    fake.fail_next(
        Endpoint::BatchRead(ObjectType::Companies),
        1000,
        Fault::InvalidJson,
    );
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    let app = spawn_configured_app(move |settings| {
        point_at(settings, &base_url, &token);
        settings.workers.retry_initial_ms = 50;
        settings.workers.retry_max_secs = 1;
        settings.workers.dead_after = Duration::from_secs(1);
    })
    .await;
    app.accept(sample("exit.json"), "application/json").await;
    app.wait_for_count("SELECT count(*) FROM notifications WHERE status = 'dead' AND last_error LIKE '%does not parse%'", 1).await;
    assert!(app.count("SELECT attempts FROM notifications") >= 2);
    assert!(fake.tasks().is_empty());
}

#[tokio::test]
async fn a_batch_refused_with_400_is_halved_until_only_the_bad_input_fails() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "First Co"), ("duns_number", "111111111")]);
    fake.add_company([("name", "Second Co"), ("duns_number", "222222222")]);
    // The whole batch is refused, then the first half alone: that input is the bad one.
    fake.fail_next(
        Endpoint::BatchCreate(ObjectType::Tasks),
        2,
        Fault::validation_error("Property values were not valid"),
    );
    let app = bridge(&fake).await;
    let items = vec![
        notification("EXIT", "111111111", "2024-05-13T08:00:00.000Z"),
        notification("EXIT", "222222222", "2024-05-13T08:00:01.000Z"),
    ];
    app.accept(body(items), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status IN ('done', 'dead')",
        2,
    )
    .await;

    assert_eq!(app.count("SELECT count(*) FROM notifications WHERE status = 'dead' AND reason = 'invalid' AND last_error LIKE '%Property values were not valid%'"), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM notifications WHERE status = 'done'"),
        1
    );
    assert_eq!(fake.tasks().len(), 1);
    assert_eq!(
        fake.calls(Endpoint::BatchCreate(ObjectType::Tasks)),
        3,
        "the pair, then each half"
    );
}

/// Sends the SEED sample, waits for it, then the same SEED delivered an hour later.
async fn seed_twice_in_separate_batches(fake: &FakeHubSpot) -> TestApp {
    let app = bridge(fake).await;
    let seed: serde_json::Value = serde_json::from_slice(&sample("seed.json")).unwrap();
    let first = seed["notifications"][0].clone();
    let mut second = first.clone();
    second["deliveryTimeStamp"] = json!("2025-03-03T08:08:36.872Z");
    for (notification, done) in [(first, 1), (second, 2)] {
        app.accept(body(vec![notification]), "application/json")
            .await;
        app.wait_for_count(
            "SELECT count(*) FROM notifications WHERE status = 'done'",
            done,
        )
        .await;
    }
    app
}

#[tokio::test]
async fn search_lag_gives_no_duplicate_company_because_lookups_do_not_use_search() {
    let fake = portal(FakeConfig {
        search_lag: Duration::from_secs(60),
        ..FakeConfig::default()
    })
    .await;
    seed_twice_in_separate_batches(&fake).await;

    assert_eq!(
        fake.companies().len(),
        1,
        "the second SEED found the company the first created"
    );
    assert_eq!(fake.notes().len(), 2);
    assert_eq!(fake.calls(Endpoint::Search(ObjectType::Companies)), 0);
    fake.assert_no_violations();
}

#[tokio::test]
async fn with_a_non_unique_duns_property_search_lag_still_gives_no_duplicate_company() {
    let fake = portal(FakeConfig {
        search_lag: Duration::from_secs(60),
        ..FakeConfig::default()
    })
    .await;
    fake.add_property("duns_number", false);
    seed_twice_in_separate_batches(&fake).await;

    assert!(
        fake.calls(Endpoint::Search(ObjectType::Companies)) >= 2,
        "lookups went through search"
    );
    assert_eq!(
        fake.companies().len(),
        1,
        "the journal remembered the company search could not see yet"
    );
    assert_eq!(fake.notes().len(), 2);
    fake.assert_no_violations();
}

#[tokio::test]
async fn with_several_companies_for_one_duns_the_oldest_is_acted_on_and_the_others_are_flagged() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_property("duns_number", false);
    let oldest = fake.add_company_created_at(
        [("name", "Acme (old)"), ("duns_number", "804735132")],
        chrono::Utc::now() - chrono::Duration::days(30),
    );
    let newer = fake.add_company_created_at(
        [("name", "Acme (new)"), ("duns_number", "804735132")],
        chrono::Utc::now() - chrono::Duration::days(1),
    );
    let app = bridge(&fake).await;
    app.accept(
        body(vec![notification(
            "DELETE",
            "804735132",
            "2024-05-13T08:00:00.000Z",
        )]),
        "application/json",
    )
    .await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;

    assert_eq!(fake.tasks()[0].associations[0].to_id, oldest);
    assert_eq!(
        fake.company(&oldest).unwrap().properties["dnb_last_alert_type"],
        "DELETE"
    );
    assert_eq!(
        fake.company(&newer).unwrap().properties["dnb_duplicate_of"],
        oldest
    );
    assert!(
        fake.notes()[0].properties["hs_note_body"].contains(&newer),
        "the note names the duplicate"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_batch_that_outlasts_the_lease_keeps_it_and_no_second_worker_makes_a_second_task() {
    // Arrange: two workers, a 5 s lease, and a company read that answers after 7 s.
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Exit Co"), ("duns_number", "350126679")]);
    fake.fail_next(
        Endpoint::BatchRead(ObjectType::Companies),
        1,
        Fault::Delay(Duration::from_secs(7)),
    );
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    let app = spawn_configured_app(move |settings| {
        point_at(settings, &base_url, &token);
        settings.workers.count = 2;
        settings.workers.lease_secs = 5;
        settings.hubspot.reconcile_after_secs = 1;
    })
    .await;

    // Act
    app.accept(sample("exit.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    // Stopping waits for every batch in hand, the slow one included.
    let stopped = app.stop().await;

    // Assert
    assert_eq!(
        fake.tasks().len(),
        1,
        "one task, however long the batch ran"
    );
    assert_eq!(fake.notes().len(), 1);
    assert_eq!(
        stopped.count("SELECT count(*) FROM attempts"),
        1,
        "one worker processed the notification"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_batch_whose_lease_was_lost_stops_before_its_next_hubspot_write() {
    // Arrange: two workers on a clock the test moves, and a company read that answers
    // after 3 s.
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Acme Corp"), ("duns_number", "804735132")]);
    fake.fail_next(
        Endpoint::BatchRead(ObjectType::Companies),
        1,
        Fault::Delay(Duration::from_secs(3)),
    );
    let clock = Arc::new(ManualClock::new());
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    let app = spawn_app_on_clock(
        move |settings| {
            point_at(settings, &base_url, &token);
            settings.workers.count = 2;
            settings.workers.lease_secs = 5;
        },
        None,
        clock.clone(),
    )
    .await;
    app.accept(
        body(vec![notification(
            "DELETE",
            "804735132",
            "2024-05-13T08:24:28.972Z",
        )]),
        "application/json",
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fake.calls(Endpoint::BatchRead(ObjectType::Companies)) == 0 {
        assert!(std::time::Instant::now() < deadline, "no company read");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act: while the first batch waits for its read, its lease runs out unrenewed and the
    // other worker takes the notification over.
    clock.advance(Duration::from_secs(5));
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        1,
    )
    .await;
    // Stopping waits for the first batch, whose read answers meanwhile.
    let stopped = app.stop().await;

    // Assert: the first batch wrote nothing once its read came back.
    assert_eq!(fake.calls(Endpoint::BatchRead(ObjectType::Companies)), 2);
    assert_eq!(
        fake.calls(Endpoint::BatchUpdate(ObjectType::Companies)),
        1,
        "only the new owner updated the company"
    );
    assert_eq!(
        fake.company(&company).unwrap().properties["dnb_last_alert_type"],
        "DELETE"
    );
    assert_eq!(fake.tasks().len(), 1);
    assert_eq!(fake.notes().len(), 1);
    assert_eq!(stopped.count("SELECT count(*) FROM attempts"), 1);
    fake.assert_no_violations();
}
