//! What a company record shows after whole sequences of notifications: the
//! contract's processing rules, against the stateful fake HubSpot portal.

use serde_json::{Value, json};

use crate::fake_hubspot::{Endpoint, FakeConfig, FakeHubSpot, Fault, ObjectType};
use crate::helpers::*;
use crate::hubspot::{bridge_with, portal};

const DUNS: &str = "804735132";
const SUCCESSOR: &str = "946349655";

async fn bridge(fake: &FakeHubSpot) -> TestApp {
    bridge_with(fake, |_| {}).await
}

fn body(items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "notifications": items })).unwrap()
}

/// Posts `items` in one delivery and waits until nothing is pending or processing.
async fn deliver(app: &TestApp, items: Vec<Value>) {
    app.accept(body(items), "application/json").await;
    settle(app).await;
}

async fn settle(app: &TestApp) {
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status IN ('pending', 'processing')",
        0,
    )
    .await;
}

fn transfer(duns: &str, successor: &str, delivered: &str) -> Value {
    json!({"type": "TRANSFER", "organization": {"duns": duns},
           "elements": [{"element": "organization.duns", "previous": duns, "current": successor,
                         "timestamp": delivered}],
           "deliveryTimeStamp": delivered})
}

fn statuses(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let db = app.db();
    let mut statement = db
        .prepare("SELECT type, status, reason FROM notifications ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn open_tasks(fake: &FakeHubSpot) -> usize {
    fake.tasks()
        .iter()
        .filter(|task| task.property("hs_task_status") != Some("COMPLETED"))
        .count()
}

fn note_containing<'a>(notes: &'a [crate::fake_hubspot::CrmRecord], text: &str) -> Option<&'a str> {
    notes
        .iter()
        .filter_map(|note| note.property("hs_note_body"))
        .find(|body| body.contains(text))
}

#[tokio::test]
async fn the_ndjson_sample_against_an_empty_portal_skips_nothing_a_seed_creates() {
    let fake = portal(FakeConfig::default()).await;
    let app = bridge(&fake).await;
    app.accept(sample(NDJSON_SAMPLE), "application/x-ndjson")
        .await;
    settle(&app).await;

    // DUNS whose SEED or FULL_PRODUCT comes before their other notifications.
    let created = [
        "061934250",
        "735019482",
        "290577314",
        "508842167",
        "913365048",
    ];
    for duns in created {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM notifications WHERE duns = '{duns}' AND status <> 'done'"
            )),
            0,
            "every notification of {duns} acts on the company its SEED created: {:?}",
            statuses(&app)
        );
    }
    // The DUNS that were never seeded have no company: their notifications are skipped.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM notifications WHERE status = 'skipped' AND reason = 'no_company'"
        ),
        3
    );
    let reviewed = fake.company_by("duns_number", "061934250").unwrap();
    assert_eq!(reviewed.property("dnb_last_alert_type"), Some("REVIEWED"));
    assert_eq!(
        reviewed.property("dnb_monitoring_status"),
        Some("monitored")
    );
    let undeleted = fake.company_by("duns_number", "735019482").unwrap();
    assert_eq!(undeleted.property("dnb_last_alert_type"), Some("UNDELETE"));
    assert_eq!(
        undeleted.property("dnb_monitoring_status"),
        Some("monitored")
    );
    let removed = fake.company_by("duns_number", "508842167").unwrap();
    assert_eq!(removed.property("dnb_last_alert_type"), Some("REMOVED"));
    assert_eq!(
        removed.property("dnb_monitoring_status"),
        Some("coverage_lost")
    );
    // The TRANSFER moved the DUNS property to the successor and kept the old number.
    let transferred = fake.company_by("duns_number", "290577322").unwrap();
    assert_eq!(transferred.property("dnb_previous_duns"), Some("290577314"));
    assert_eq!(
        transferred.property("dnb_monitoring_status"),
        Some("transferred")
    );
    // The reversals completed the tasks their alerts opened (REVIEWED the UNDER_REVIEW
    // task of 061934250, UNDELETE the DELETE task of 735019482); the never-seeded DUNS
    // have no company, so no task.
    for alert in ["under D&B review", "may be out of business"] {
        let tasks: Vec<_> = fake
            .tasks()
            .into_iter()
            .filter(|task| {
                task.property("hs_task_subject")
                    .is_some_and(|subject| subject.contains(alert))
            })
            .collect();
        assert_eq!(tasks.len(), 1, "one task {alert}");
        assert_eq!(
            tasks[0].property("hs_task_status"),
            Some("COMPLETED"),
            "{alert}"
        );
    }
    assert_eq!(fake.companies().len(), created.len());
    fake.assert_no_violations();
}

#[tokio::test]
async fn alerts_for_the_old_duns_still_reach_the_company_after_a_transfer() {
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Moved Co"), ("duns_number", DUNS)]);
    let app = bridge(&fake).await;

    deliver(
        &app,
        vec![transfer(DUNS, SUCCESSOR, "2024-05-13T08:25:55.404Z")],
    )
    .await;
    let moved = fake.company(&company).unwrap();
    assert_eq!(moved.property("duns_number"), Some(SUCCESSOR));
    assert_eq!(moved.property("dnb_previous_duns"), Some(DUNS));

    deliver(
        &app,
        vec![notification(
            "UNDER_REVIEW",
            DUNS,
            "2024-05-14T09:00:00.000Z",
        )],
    )
    .await;
    assert_eq!(
        statuses(&app)[1],
        ("UNDER_REVIEW".into(), "done".into(), None),
        "the old DUNS resolves to the company it moved from"
    );
    let after = fake.company(&company).unwrap();
    assert_eq!(after.property("dnb_last_alert_type"), Some("UNDER_REVIEW"));
    assert_eq!(
        after.property("dnb_monitoring_status"),
        Some("under_review")
    );
    assert_eq!(fake.tasks().len(), 2);
    assert!(
        fake.tasks()
            .iter()
            .all(|task| task.associations[0].to_id == company)
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_transfer_retried_after_its_task_create_failed_finishes_on_the_moved_company() {
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Moved Co"), ("duns_number", DUNS)]);
    fake.fail_next(
        Endpoint::BatchCreate(ObjectType::Tasks),
        1,
        Fault::status(500),
    );
    let app = bridge(&fake).await;

    deliver(
        &app,
        vec![transfer(DUNS, SUCCESSOR, "2024-05-13T08:25:55.404Z")],
    )
    .await;

    assert_eq!(statuses(&app)[0].1, "done", "{:?}", statuses(&app));
    assert_eq!(fake.tasks().len(), 1, "the retry created the task");
    assert_eq!(fake.tasks()[0].associations[0].to_id, company);
    assert_eq!(fake.notes().len(), 1);
    assert_eq!(
        fake.company(&company).unwrap().property("duns_number"),
        Some(SUCCESSOR)
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_late_delete_after_an_undelete_leaves_the_company_active_with_no_open_task() {
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Back Co"), ("duns_number", DUNS)]);
    let app = bridge(&fake).await;

    deliver(
        &app,
        vec![notification("UNDELETE", DUNS, "2024-05-13T09:00:00.000Z")],
    )
    .await;
    deliver(
        &app,
        vec![notification("DELETE", DUNS, "2024-05-13T08:00:00.000Z")],
    )
    .await;

    let record = fake.company(&company).unwrap();
    assert_eq!(record.property("dnb_last_alert_type"), Some("UNDELETE"));
    assert_eq!(record.property("dnb_monitoring_status"), Some("monitored"));
    assert_eq!(
        record.property("dnb_last_alert_at"),
        Some("2024-05-13T09:00:00.000Z")
    );
    assert_eq!(open_tasks(&fake), 0, "a reversed alert leaves no open task");
    let notes = fake.notes();
    assert_eq!(notes.len(), 2, "the late alert still gets its note");
    assert!(
        note_containing(&notes, "arrived late").is_some(),
        "the late note says so"
    );
    assert_eq!(
        statuses(&app)
            .iter()
            .filter(|(_, status, _)| status == "done")
            .count(),
        2
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_monitoring_status_follows_every_type_and_updates_leave_it_alone() {
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Watched Co"), ("duns_number", DUNS)]);
    let app = bridge(&fake).await;
    let status = |fake: &FakeHubSpot| {
        fake.company(&company)
            .unwrap()
            .property("dnb_monitoring_status")
            .map(str::to_string)
    };

    deliver(
        &app,
        vec![notification("UPDATE", DUNS, "2024-05-13T08:00:00.000Z")],
    )
    .await;
    assert_eq!(status(&fake).as_deref(), Some("monitored"));
    deliver(
        &app,
        vec![notification(
            "UNDER_REVIEW",
            DUNS,
            "2024-05-13T08:01:00.000Z",
        )],
    )
    .await;
    assert_eq!(status(&fake).as_deref(), Some("under_review"));
    deliver(
        &app,
        vec![notification("UPDATE", DUNS, "2024-05-13T08:02:00.000Z")],
    )
    .await;
    assert_eq!(status(&fake).as_deref(), Some("under_review"));
    deliver(
        &app,
        vec![notification("REVIEWED", DUNS, "2024-05-13T08:03:00.000Z")],
    )
    .await;
    assert_eq!(status(&fake).as_deref(), Some("monitored"));
    deliver(
        &app,
        vec![notification("EXIT", DUNS, "2024-05-13T08:04:00.000Z")],
    )
    .await;
    assert_eq!(status(&fake).as_deref(), Some("coverage_lost"));
    let record = fake.company(&company).unwrap();
    assert_eq!(record.property("dnb_last_alert_type"), Some("EXIT"));
    assert_eq!(record.property("dnb_critical_alert"), Some("true"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_reversal_completes_the_open_task_it_reverses_and_leaves_a_persons_alone() {
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Review Co"), ("duns_number", DUNS)]);
    let app = bridge(&fake).await;

    deliver(
        &app,
        vec![notification(
            "UNDER_REVIEW",
            DUNS,
            "2024-05-13T08:00:00.000Z",
        )],
    )
    .await;
    deliver(
        &app,
        vec![notification("DELETE", DUNS, "2024-05-13T08:01:00.000Z")],
    )
    .await;
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 2);
    // A person already completed the DELETE task.
    let delete_task = tasks
        .iter()
        .find(|task| {
            task.property("hs_task_priority") == Some("HIGH")
                && task
                    .property("hs_task_subject")
                    .unwrap()
                    .contains("out of business")
        })
        .unwrap()
        .id
        .clone();
    fake.edit(
        ObjectType::Tasks,
        &delete_task,
        &[("hs_task_status", "COMPLETED")],
    );
    let before = fake
        .tasks()
        .into_iter()
        .find(|task| task.id == delete_task)
        .unwrap();

    deliver(
        &app,
        vec![
            notification("REVIEWED", DUNS, "2024-05-13T08:02:00.000Z"),
            notification("UNDELETE", DUNS, "2024-05-13T08:03:00.000Z"),
        ],
    )
    .await;

    assert_eq!(open_tasks(&fake), 0, "REVIEWED completed the review task");
    let after = fake
        .tasks()
        .into_iter()
        .find(|task| task.id == delete_task)
        .unwrap();
    assert_eq!(
        after.updated_at, before.updated_at,
        "a person's completed task is left alone"
    );
    let updates: Vec<Value> = fake
        .requests_to(Endpoint::BatchUpdate(ObjectType::Tasks))
        .into_iter()
        .filter_map(|request| request.body)
        .collect();
    assert_eq!(updates.len(), 1, "one batch update completes the tasks");
    assert!(!updates[0].to_string().contains(&delete_task));
    let notes = fake.notes();
    assert!(
        note_containing(&notes, "was marked completed").is_some(),
        "the note says so"
    );
    let (_, metrics) = app.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "bridge_hubspot_tasks_completed_total"),
        1.0
    );
    assert_eq!(
        fake.company(&company)
            .unwrap()
            .property("dnb_monitoring_status"),
        Some("monitored")
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_repeated_alert_adds_to_the_note_while_its_task_is_open() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Again Co"), ("duns_number", DUNS)]);
    let app = bridge(&fake).await;

    deliver(
        &app,
        vec![notification(
            "UNDER_REVIEW",
            DUNS,
            "2024-05-13T08:00:00.000Z",
        )],
    )
    .await;
    deliver(
        &app,
        vec![notification(
            "UNDER_REVIEW",
            DUNS,
            "2024-05-14T08:00:00.000Z",
        )],
    )
    .await;
    assert_eq!(fake.tasks().len(), 1, "one open task per company and type");
    assert_eq!(fake.notes().len(), 2);
    assert!(note_containing(&fake.notes(), "is still open").is_some());

    // Once a person completes it, the next alert of the type gets a task again.
    let task = fake.tasks()[0].id.clone();
    fake.edit(ObjectType::Tasks, &task, &[("hs_task_status", "COMPLETED")]);
    deliver(
        &app,
        vec![notification(
            "UNDER_REVIEW",
            DUNS,
            "2024-05-15T08:00:00.000Z",
        )],
    )
    .await;
    assert_eq!(fake.tasks().len(), 2);
    assert_eq!(
        app.count("SELECT count(*) FROM notifications WHERE status = 'done'"),
        3
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn each_paragraph_of_a_shared_note_is_worded_from_its_own_notification() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Shared Co"), ("duns_number", DUNS)]);
    let app = bridge(&fake).await;
    deliver(
        &app,
        vec![
            notification("UPDATE", DUNS, "2024-05-13T08:00:00.000Z"),
            transfer(DUNS, SUCCESSOR, "2024-05-13T08:01:00.000Z"),
        ],
    )
    .await;
    let notes = fake.notes();
    assert_eq!(notes.len(), 1, "one note for the batch");
    let body = notes[0].property("hs_note_body").unwrap();
    assert!(body.contains(SUCCESSOR), "{body}");
    assert!(!body.contains("did not say which number"), "{body}");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_400_on_a_read_is_the_batchs_failure_not_an_outage() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Read Co"), ("duns_number", DUNS)]);
    fake.fail_next(
        Endpoint::BatchRead(ObjectType::Companies),
        1,
        Fault::validation_error("Property values were not valid"),
    );
    let app = bridge(&fake).await;
    deliver(
        &app,
        vec![notification("UPDATE", DUNS, "2024-05-13T08:00:00.000Z")],
    )
    .await;
    assert_eq!(statuses(&app)[0].1, "done");
    assert_eq!(
        app.count("SELECT count(*) FROM attempts WHERE outcome = 'deferred'"),
        0,
        "a refused read pauses nothing"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM attempts WHERE outcome = 'retry' AND error LIKE '%Property values were not valid%'"
        ),
        1,
        "the attempt is spent with HubSpot's message"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_update_answer_that_confirms_nothing_is_retried_not_done() {
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([("name", "Quiet Co"), ("duns_number", DUNS)]);
    fake.fail_next(
        Endpoint::BatchUpdate(ObjectType::Companies),
        1,
        Fault::status_with_body(
            207,
            json!({"status": "COMPLETE", "results": [], "errors": [
                {"status": "error", "category": "INTERNAL_ERROR", "message": "something failed",
                 "context": {}, "links": {}}],
                "startedAt": "2024-05-13T08:00:00.000Z", "completedAt": "2024-05-13T08:00:00.100Z"}),
        ),
    );
    let app = bridge(&fake).await;
    deliver(
        &app,
        vec![notification("UPDATE", DUNS, "2024-05-13T08:00:00.000Z")],
    )
    .await;
    assert_eq!(
        app.count("SELECT count(*) FROM attempts WHERE outcome = 'retry'"),
        1,
        "an unconfirmed update is not done"
    );
    assert_eq!(statuses(&app)[0].1, "done");
    assert_eq!(
        fake.company(&company)
            .unwrap()
            .property("dnb_last_alert_type"),
        Some("UPDATE")
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_lost_task_create_is_found_even_when_search_lags_past_the_first_look() {
    let fake = portal(FakeConfig {
        search_lag: std::time::Duration::from_millis(2500),
        ..FakeConfig::default()
    })
    .await;
    fake.add_company_created_at(
        [("name", "Lag Co"), ("duns_number", DUNS)],
        chrono::Utc::now() - chrono::TimeDelta::hours(1),
    );
    fake.fail_next(
        Endpoint::BatchCreate(ObjectType::Tasks),
        1,
        Fault::ApplyThenDrop,
    );
    let app = bridge(&fake).await;
    deliver(
        &app,
        vec![notification("DELETE", DUNS, "2024-05-13T08:00:00.000Z")],
    )
    .await;
    assert_eq!(fake.tasks().len(), 1, "no second task while search lags");
    assert_eq!(statuses(&app)[0].1, "done");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_lost_company_create_is_not_repeated_when_the_duns_property_is_not_unique() {
    let fake = portal(FakeConfig {
        search_lag: std::time::Duration::from_millis(1500),
        ..FakeConfig::default()
    })
    .await;
    fake.add_property("duns_number", false);
    fake.fail_next(
        Endpoint::BatchCreate(ObjectType::Companies),
        1,
        Fault::ApplyThenDrop,
    );
    let app = bridge(&fake).await;
    app.accept(sample("seed.json"), "application/json").await;
    settle(&app).await;
    assert_eq!(
        fake.companies().len(),
        1,
        "the lost create is found, not repeated"
    );
    assert_eq!(statuses(&app)[0].1, "done");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_create_answer_without_the_company_is_retried_and_its_followers_wait_for_it() {
    let fake = portal(FakeConfig::default()).await;
    fake.fail_next(
        Endpoint::BatchCreate(ObjectType::Companies),
        1,
        Fault::status_with_body(
            201,
            json!({"status": "COMPLETE", "results": [
                {"id": "999", "properties": {}, "createdAt": "2024-05-13T08:00:00.000Z",
                 "updatedAt": "2024-05-13T08:00:00.000Z", "archived": false}],
                "startedAt": "2024-05-13T08:00:00.000Z", "completedAt": "2024-05-13T08:00:00.100Z"}),
        ),
    );
    let app = bridge(&fake).await;
    let seed =
        serde_json::from_slice::<Value>(&sample("seed.json")).unwrap()["notifications"][0].clone();
    let duns = seed["organization"]["duns"].as_str().unwrap().to_string();
    deliver(
        &app,
        vec![
            seed,
            notification("UPDATE", &duns, "2025-03-04T08:00:00.000Z"),
        ],
    )
    .await;

    assert_eq!(
        statuses(&app),
        [
            ("SEED".into(), "done".into(), None),
            ("UPDATE".into(), "done".into(), None)
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM attempts WHERE outcome = 'retry' AND error LIKE '%did not include%'"),
        1,
        "the unconfirmed create is retried, not done"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM attempts WHERE outcome = 'deferred' AND error = 'order'"),
        1,
        "the UPDATE waited for its creator"
    );
    let companies = fake.companies();
    assert_eq!(companies.len(), 1);
    assert_eq!(companies[0].property("dnb_last_alert_type"), Some("UPDATE"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_field_sync_with_nothing_to_write_is_done_not_retried() {
    use dnb_hubspot_bridge::dnb::NotificationType;
    use dnb_hubspot_bridge::mapping::ActionKind;
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Same Co"), ("duns_number", DUNS)]);
    let app = bridge_with(&fake, |settings| {
        settings.hubspot.actions.insert(
            NotificationType::Update,
            vec![ActionKind::UpdateCompany, ActionKind::CreateNote],
        );
    })
    .await;
    let mut update = notification("UPDATE", DUNS, "2024-05-13T08:00:00.000Z");
    update["elements"] = json!([{"element": "organization.dunsControlStatus.isMarketable",
                                 "previous": false, "current": true}]);
    deliver(&app, vec![update]).await;
    assert_eq!(statuses(&app)[0].1, "done");
    assert_eq!(
        app.count("SELECT count(*) FROM attempts WHERE outcome <> 'done'"),
        0,
        "nothing to write is not an unconfirmed write"
    );
    assert_eq!(fake.calls(Endpoint::BatchUpdate(ObjectType::Companies)), 0);
    assert_eq!(fake.notes().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_reversal_retried_after_its_note_failed_still_says_what_it_completed() {
    let fake = portal(FakeConfig::default()).await;
    fake.add_company([("name", "Retry Co"), ("duns_number", DUNS)]);
    let app = bridge(&fake).await;
    deliver(
        &app,
        vec![notification(
            "UNDER_REVIEW",
            DUNS,
            "2024-05-13T08:00:00.000Z",
        )],
    )
    .await;
    fake.fail_next(
        Endpoint::BatchCreate(ObjectType::Notes),
        1,
        Fault::status(500),
    );
    deliver(
        &app,
        vec![notification("REVIEWED", DUNS, "2024-05-13T09:00:00.000Z")],
    )
    .await;
    assert_eq!(open_tasks(&fake), 0);
    assert_eq!(fake.calls(Endpoint::BatchUpdate(ObjectType::Tasks)), 1);
    assert!(
        note_containing(&fake.notes(), "was marked completed").is_some(),
        "the retried note still says so"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_late_delete_after_an_unrelated_update_still_marks_the_company_deleted() {
    let fake = portal(FakeConfig::default()).await;
    let company = fake.add_company([
        ("name", "Closing Co"),
        ("duns_number", DUNS),
        ("dnb_monitoring_status", "monitored"),
    ]);
    let app = bridge(&fake).await;
    deliver(
        &app,
        vec![notification("UPDATE", DUNS, "2024-05-13T09:00:00.000Z")],
    )
    .await;
    deliver(
        &app,
        vec![notification("DELETE", DUNS, "2024-05-13T08:00:00.000Z")],
    )
    .await;

    let record = fake.company(&company).unwrap();
    assert_eq!(record.property("dnb_last_alert_type"), Some("UPDATE"));
    assert_eq!(
        record.property("dnb_last_alert_at"),
        Some("2024-05-13T09:00:00.000Z")
    );
    assert_eq!(
        record.property("dnb_monitoring_status"),
        Some("deleted"),
        "no newer alert set the status, so the late DELETE does"
    );
    assert_eq!(open_tasks(&fake), 1, "nothing reversed the deletion");
    assert!(note_containing(&fake.notes(), "arrived late").is_some());
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_shared_ndjson_sample_against_an_empty_portal_skips_nothing_a_seed_creates() {
    let Some(dir) = shared_samples("the_shared_ndjson_sample_against_an_empty_portal") else {
        return;
    };
    let fake = portal(FakeConfig::default()).await;
    let app = bridge(&fake).await;
    let ndjson =
        std::fs::read(dir.join("SAMPLE_REGISTRATION_20240513080000_NOTIFICATION_1.ndjson"))
            .expect("the acceptance set's NDJSON file");
    app.accept(ndjson, "application/x-ndjson").await;
    settle(&app).await;

    // DUNS whose SEED or FULL_PRODUCT comes before their other notifications.
    let created = ["502329781", "308094350", "021258997", "629671816"];
    for duns in created {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM notifications WHERE duns = '{duns}' AND status <> 'done'"
            )),
            0,
            "every notification of {duns} acts on the company its SEED created: {:?}",
            statuses(&app)
        );
    }
    let deleted = fake.company_by("duns_number", "021258997").unwrap();
    assert_eq!(deleted.property("dnb_last_alert_type"), Some("DELETE"));
    assert_eq!(deleted.property("dnb_monitoring_status"), Some("deleted"));
    let exited = fake.company_by("duns_number", "502329781").unwrap();
    assert_eq!(exited.property("dnb_last_alert_type"), Some("EXIT"));
    assert_eq!(
        exited.property("dnb_monitoring_status"),
        Some("coverage_lost")
    );
    assert_eq!(fake.companies().len(), created.len());
    fake.assert_no_violations();
}
