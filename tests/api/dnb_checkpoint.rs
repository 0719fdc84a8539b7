//! Direct+ registration checkpoints in the journal: a page and its checkpoint commit
//! together, the delivery time only grows, and the in-flight flag is what was said last.

use dnb_hubspot_bridge::config::StorageSettings;
use dnb_hubspot_bridge::dnb::{BodyFormat, parse_body};
use dnb_hubspot_bridge::journal::{self, Delivery, PullCheckpoint, RegistrationState};
use serde_json::json;

use crate::helpers::*;

fn page(webhook_id: &str, delivered: &[&str], checkpoint: PullCheckpoint) -> Delivery {
    let body = serde_json::to_vec(&json!({
        "transactionDetail": {"transactionID": webhook_id},
        "notifications": delivered
            .iter()
            .map(|time| notification("UPDATE", "111111111", time))
            .collect::<Vec<_>>(),
    }))
    .unwrap();
    Delivery {
        webhook_id: webhook_id.into(),
        received_at: chrono::Utc::now(),
        items: parse_body(BodyFormat::Json, &body).unwrap(),
        checkpoint: Some(checkpoint),
    }
}

fn change(delivered_at_ms: Option<i64>, in_flight: bool) -> PullCheckpoint {
    PullCheckpoint {
        registration: "REG".into(),
        delivered_at_ms,
        succeeded_at_ms: delivered_at_ms.map(|_| 1_000),
        transaction_id: delivered_at_ms.map(|ms| format!("tx-{ms}")),
        in_flight,
    }
}

#[tokio::test]
async fn a_page_commits_with_its_checkpoint_and_the_flag_follows_the_last_change() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let settings = StorageSettings {
        url: format!("sqlite://{}", dir.path().join("journal.db").display()),
        ..StorageSettings::default()
    };
    let journal = journal::connect(&settings).await.unwrap();
    assert!(journal.registrations().await.unwrap().is_empty());

    // Act: a call goes out, its page commits; another goes out.
    journal
        .update_registration(change(None, true))
        .await
        .unwrap();
    let before = journal.registrations().await.unwrap();
    let outcome = journal
        .append(page(
            "dnb-pull:REG:tx-1",
            &["2024-05-13T08:00:00Z", "2024-05-13T08:00:01Z"],
            change(Some(1_715_587_201_000), false),
        ))
        .await
        .unwrap();
    let after_page = journal.registrations().await.unwrap();
    journal
        .update_registration(change(None, true))
        .await
        .unwrap();
    // An older page (a replay's overlap) does not move the delivery time back.
    journal
        .append(page(
            "dnb-pull:REG:tx-0",
            &["2024-05-13T08:00:00Z"],
            change(Some(1_715_587_200_000), true),
        ))
        .await
        .unwrap();
    let last = journal.registrations().await.unwrap();

    // Assert
    assert!(before[0].in_flight && before[0].last_delivered_at_ms.is_none());
    assert_eq!(outcome.accepted(), 2);
    assert_eq!(
        after_page,
        [RegistrationState {
            registration: "REG".into(),
            last_delivered_at_ms: Some(1_715_587_201_000),
            last_success_at_ms: Some(1_000),
            last_transaction_id: Some("tx-1715587201000".into()),
            in_flight: false,
        }]
    );
    assert!(last[0].in_flight);
    assert_eq!(last[0].last_delivered_at_ms, Some(1_715_587_201_000));
    assert_eq!(
        last[0].last_transaction_id.as_deref(),
        Some("tx-1715587200000")
    );
    journal.close().await;
}
