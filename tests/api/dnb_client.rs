//! The Direct+ client against the fake Direct+: token reuse and refresh, pull until
//! 404, replay strictly after a time, one rate limit for every call, 429 and 5xx backoff.

use std::time::{Duration, Instant};

use dnb_hubspot_bridge::config::DnbSettings;
use dnb_hubspot_bridge::dnb::direct_plus::{Answer, DirectPlusClient, DirectPlusError};
use secrecy::SecretString;

use crate::fake_dnb::{
    DnbFault, FAKE_KEY, FAKE_SECRET, FakeDnb, FakeDnbConfig, base, notifications,
};

const REG: &str = "REG_TEST";

fn settings(fake: &FakeDnb, rate: u32) -> DnbSettings {
    DnbSettings {
        base_url: fake.base_url(),
        client_key: SecretString::from(FAKE_KEY),
        client_secret: SecretString::from(FAKE_SECRET),
        registrations: vec![REG.into()],
        rate_limit_per_sec: rate,
        ..DnbSettings::default()
    }
}

fn client(fake: &FakeDnb, rate: u32) -> DirectPlusClient {
    DirectPlusClient::new(&settings(fake, rate))
        .unwrap()
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn count(answer: &Answer) -> usize {
    match answer {
        Answer::Page(page) => page.count,
        Answer::Drained => 0,
    }
}

#[tokio::test]
async fn pulls_pages_until_404_with_one_token() {
    // Arrange
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(250));
    let client = client(&fake, 100);

    // Act
    let mut sizes = Vec::new();
    loop {
        let answer = client.pull(REG, 100).await.unwrap();
        if matches!(answer, Answer::Drained) {
            break;
        }
        sizes.push(count(&answer));
    }

    // Assert
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(fake.pending(REG), 0);
    assert_eq!(fake.count("token"), 1, "one token reused for every call");
    assert_eq!(fake.count("pull"), 4);
}

#[tokio::test]
async fn a_page_carries_its_transaction_id_and_body() {
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(3));
    let Answer::Page(page) = client(&fake, 100).pull(REG, 10).await.unwrap() else {
        panic!("a page");
    };
    assert_eq!(page.transaction_id.as_deref(), Some("fake-1"));
    let body: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
    assert_eq!(body["notifications"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_on_401() {
    // Arrange
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(20));
    let client = client(&fake, 100);
    client.pull(REG, 5).await.unwrap();

    // Act
    fake.expire_tokens();
    let answer = client.pull(REG, 5).await.unwrap();

    // Assert
    assert_eq!(count(&answer), 5);
    assert_eq!(fake.count("token"), 2);
    let statuses: Vec<u16> = fake
        .calls()
        .iter()
        .filter(|call| call.kind == "pull")
        .map(|call| call.status)
        .collect();
    assert_eq!(statuses, [200, 401, 200]);
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() {
    // Arrange: tokens live one second.
    let fake = FakeDnb::start(FakeDnbConfig {
        token_lifetime_secs: 1,
        ..FakeDnbConfig::default()
    })
    .await;
    fake.add_pending(REG, notifications(20));
    let client = client(&fake, 100);
    client.pull(REG, 5).await.unwrap();

    // Act: the token's lifetime passes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.pull(REG, 5).await.unwrap();

    // Assert: a new token was fetched first, so no call was refused.
    assert_eq!(fake.count("token"), 2);
    assert!(fake.calls().iter().all(|call| call.status != 401));
}

#[tokio::test]
async fn a_401_with_a_fresh_token_is_a_clear_error() {
    let fake = FakeDnb::start(FakeDnbConfig {
        token_lifetime_secs: 0,
        ..FakeDnbConfig::default()
    })
    .await;
    let error = client(&fake, 100).pull(REG, 5).await.unwrap_err();
    assert!(
        matches!(error, DirectPlusError::Unauthorized { .. }),
        "{error}"
    );
    assert_eq!(fake.count("token"), 2, "one new token, then it gives up");
}

#[tokio::test]
async fn wrong_credentials_are_reported_without_the_secret() {
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    let mut settings = settings(&fake, 100);
    settings.client_secret = SecretString::from("not-the-secret");
    let error = DirectPlusClient::new(&settings)
        .unwrap()
        .pull(REG, 5)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DirectPlusError::Credentials { status: 401 }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        !text.contains("not-the-secret") && !text.contains(FAKE_KEY),
        "{text}"
    );
}

#[tokio::test]
async fn an_empty_registration_is_drained_not_an_error() {
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    let answer = client(&fake, 100).pull(REG, 100).await.unwrap();
    assert!(matches!(answer, Answer::Drained));
}

#[tokio::test]
async fn replay_answers_pulled_notifications_strictly_after_the_start() {
    // Arrange: 100 notifications 50 ms apart from the base time, all pulled.
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(100));
    let client = client(&fake, 100);
    client.pull(REG, 100).await.unwrap();

    // Act: from 2 s after the base, the notifications of 2.050 s onwards.
    let start = base() + chrono::Duration::seconds(2);
    let answer = client.replay(REG, start, 100).await.unwrap();
    let late = client
        .replay(REG, start + chrono::Duration::hours(1), 100)
        .await
        .unwrap();

    // Assert
    assert_eq!(count(&answer), 59);
    assert!(matches!(late, Answer::Drained));
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_5xx_with_backoff() {
    // Arrange
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(10));
    fake.fail_next([
        DnbFault::TooManyRequests(Some(1)),
        DnbFault::ServerError,
        DnbFault::ServerError,
    ]);
    let client = client(&fake, 100);

    // Act
    let started = Instant::now();
    let answer = client.pull(REG, 10).await.unwrap();

    // Assert
    assert_eq!(count(&answer), 10);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let statuses: Vec<u16> = fake
        .calls()
        .iter()
        .filter(|call| call.kind == "pull")
        .map(|call| call.status)
        .collect();
    assert_eq!(statuses, [429, 500, 500, 200]);
}

#[tokio::test]
async fn persistent_5xx_ends_in_an_error_after_the_last_try() {
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.fail_next(std::iter::repeat_n(DnbFault::ServerError, 20));
    let error = client(&fake, 100).pull(REG, 10).await.unwrap_err();
    assert!(
        matches!(error, DirectPlusError::Unavailable { status: 500, .. }),
        "{error}"
    );
    assert_eq!(fake.count("pull"), 6);
}

/// Any `rate + 1` consecutive calls span at least a second (less a little for the
/// loopback's jitter): never more than `rate` calls in a second.
pub fn assert_rate_respected(calls: &[crate::fake_dnb::Call], rate: usize) {
    let times: Vec<Instant> = calls.iter().map(|call| call.at).collect();
    for window in times.windows(rate + 1) {
        let span = window[rate].duration_since(window[0]);
        assert!(
            span >= Duration::from_millis(950),
            "{} calls within {span:?}",
            rate + 1
        );
    }
}

#[tokio::test]
async fn every_call_token_included_waits_for_one_rate_limit() {
    // Arrange: 5 calls per second, 14 pages to pull.
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(14));
    let client = std::sync::Arc::new(client(&fake, 5));

    // Act: two registrations' worth of callers at once.
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            while let Answer::Page(_) = client.pull(REG, 1).await.unwrap() {}
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    // Assert
    let calls = fake.calls();
    assert!(calls.len() >= 16, "{} calls", calls.len());
    assert_rate_respected(&calls, 5);
}
