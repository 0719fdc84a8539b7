//! Replicas sharing one PostgreSQL database: one HubSpot budget for the portal (GCRA rows
//! on the database's clock) and one D&B poller per registration (leases). Every test runs
//! against the real server in a schema of its own (see `postgres.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dnb_hubspot_bridge::cluster::{Cluster, Reservation};
use dnb_hubspot_bridge::config::{
    DnbSettings, HubSpotSettings, RateLimitSettings, StorageSettings,
};
use dnb_hubspot_bridge::dnb::direct_plus::{Answer, DirectPlusClient};
use dnb_hubspot_bridge::dnb::pull::{Leadership, Puller};
use dnb_hubspot_bridge::hubspot::HubSpotClient;
use dnb_hubspot_bridge::hubspot::rate_limit::{CallKind, RateLimits};
use dnb_hubspot_bridge::journal::{self, Journal};
use dnb_hubspot_bridge::telemetry::Metrics;
use secrecy::SecretString;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fake_dnb::{FAKE_KEY, FAKE_SECRET, FakeDnb, FakeDnbConfig, notifications};
use crate::fake_hubspot::{FakeConfig, FakeHubSpot};
use crate::helpers::open_read_only;
use crate::postgres;

const MS: i64 = 1_000;

async fn clusters(url: &str, count: usize) -> Vec<Arc<Cluster>> {
    let mut clusters = Vec::new();
    for _ in 0..count {
        clusters.push(Arc::new(Cluster::connect(url).await.unwrap()));
    }
    clusters
}

/// Waits for `condition`, failing with `what` after `limit`.
async fn wait_until(what: &str, limit: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The most events of `times` inside any window of `window`.
fn busiest(times: &[Instant], window: Duration) -> usize {
    let mut times = times.to_vec();
    times.sort();
    (0..times.len())
        .map(|first| {
            times[first..]
                .iter()
                .take_while(|time| time.duration_since(times[first]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn thirty_reservations_at_once_get_the_burst_at_once_then_one_slot_per_interval() {
    // Arrange: three replicas, one clock reading.
    let Some(url) = postgres::fresh_url("thirty_reservations_at_once").await else {
        return;
    };
    let replicas = clusters(&url, 3).await;
    let now = replicas[0].now_us().await.unwrap();

    // Act: 30 reservations at 10/s with bursts of 10, ten from each replica, all at once.
    let reservations = futures::future::join_all((0..30).map(|index| {
        let cluster = replicas[index % 3].clone();
        async move { cluster.reserve_at("b", 10, 10, now).await.unwrap() }
    }))
    .await;

    // Assert: ten go now, then one every 100 ms, up to 2 s from now.
    let mut delays: Vec<i64> = reservations
        .iter()
        .map(|reservation| (reservation.go_at_us - now).max(0))
        .collect();
    delays.sort();
    let expected: Vec<i64> = (0..30_i64).map(|k| (k - 9).max(0) * 100 * MS).collect();
    assert_eq!(delays, expected);
    assert!(reservations.iter().all(|r| r.now_us == now));
}

#[tokio::test]
async fn an_idle_budget_regains_its_burst_and_never_more() {
    let Some(url) = postgres::fresh_url("an_idle_budget_regains_its_burst").await else {
        return;
    };
    let cluster = Cluster::connect(&url).await.unwrap();
    let start = cluster.now_us().await.unwrap();
    for _ in 0..30 {
        cluster.reserve_at("b", 10, 10, start).await.unwrap();
    }
    // The last slot went 2 s after the start; half a second after it, five tokens came back.
    let later = start + 2_500 * MS;
    let mut delays = Vec::new();
    for _ in 0..7 {
        let reservation = cluster.reserve_at("b", 10, 10, later).await.unwrap();
        delays.push(reservation.delay());
    }
    let ms = Duration::from_millis;
    assert_eq!(
        delays,
        [ms(0), ms(0), ms(0), ms(0), ms(0), ms(100), ms(200)]
    );
    // Long idle: the full burst of 10 and not one more.
    let idle = start + 60_000 * MS;
    let mut immediate = 0;
    for _ in 0..11 {
        if cluster
            .reserve_at("b", 10, 10, idle)
            .await
            .unwrap()
            .delay()
            .is_zero()
        {
            immediate += 1;
        }
    }
    assert_eq!(immediate, 10);
}

#[tokio::test]
async fn a_hold_set_by_one_replica_holds_the_others_then_the_schedule_restarts_after_it() {
    let Some(url) = postgres::fresh_url("a_hold_set_by_one_replica").await else {
        return;
    };
    let replicas = clusters(&url, 2).await;
    let now = replicas[0].now_us().await.unwrap();
    replicas[0].reserve_at("b", 10, 3, now).await.unwrap();

    // Act: replica 0 saw a 429 asking for 2 s; replica 1 reserves.
    replicas[0]
        .hold_at("b", Duration::from_secs(2), now)
        .await
        .unwrap();
    let mut slots = Vec::new();
    for _ in 0..5 {
        let Reservation { go_at_us, .. } = replicas[1].reserve_at("b", 10, 3, now).await.unwrap();
        slots.push(go_at_us - now);
    }

    // Assert: nothing before the hold ends; then a burst of 3 and one per 100 ms.
    assert_eq!(
        slots,
        [2_000 * MS, 2_000 * MS, 2_000 * MS, 2_100 * MS, 2_200 * MS]
    );
    // A shorter hold does not shorten it; another budget is not held.
    replicas[1]
        .hold_at("b", Duration::from_millis(10), now)
        .await
        .unwrap();
    let next = replicas[0].reserve_at("b", 10, 3, now).await.unwrap();
    assert_eq!(next.go_at_us - now, 2_300 * MS);
    let other = replicas[0].reserve_at("other", 10, 3, now).await.unwrap();
    assert!(other.delay().is_zero());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sharing_a_budget_stay_within_its_rate_together() {
    // Arrange: three replicas' limiters, 20/s with bursts of 5, on three connections.
    let Some(url) = postgres::fresh_url("three_replicas_sharing_a_budget").await else {
        return;
    };
    let settings = RateLimitSettings {
        requests_per_second: 20,
        burst: 5,
        search_per_second: 20,
        search_burst: 5,
        remaining_floor: 0,
    };
    let limits: Vec<Arc<RateLimits>> = clusters(&url, 3)
        .await
        .into_iter()
        .map(|cluster| Arc::new(RateLimits::shared(&settings, cluster)))
        .collect();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();

    // Act: four callers per replica, 90 calls in all.
    let mut tasks = tokio::task::JoinSet::new();
    for replica in 0..3 {
        for _ in 0..4 {
            let limits = limits[replica].clone();
            let calls = calls.clone();
            tasks.spawn(async move {
                for _ in 0..(90 / 12) {
                    limits.acquire(CallKind::Standard).await;
                    calls.lock().unwrap().push(Instant::now());
                }
            });
        }
    }
    // 90 / 12 is 7: six more calls from the first replica make 90.
    for _ in 0..6 {
        limits[0].acquire(CallKind::Standard).await;
        calls.lock().unwrap().push(Instant::now());
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    // Assert: never more than the burst plus a second's rate in a second, give or take a few
    // late wake-ups (one replica alone would allow that much, three unshared ones three
    // times it), and 90 calls take at least (90 - 5) / 20 s.
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 90);
    let most = busiest(&calls, Duration::from_secs(1));
    assert!(most <= 5 + 20 + 5, "{most} calls in one second");
    let last = calls.iter().max().unwrap().duration_since(started);
    assert!(last >= Duration::from_millis(4_200), "done after {last:?}");
}

#[tokio::test]
async fn a_nearly_spent_window_seen_by_one_replica_holds_the_others() {
    let Some(url) = postgres::fresh_url("a_nearly_spent_window_seen_by_one").await else {
        return;
    };
    let settings = RateLimitSettings {
        remaining_floor: 5,
        ..RateLimitSettings::default()
    };
    let replicas = clusters(&url, 2).await;
    let (a, b) = (
        RateLimits::shared(&settings, replicas[0].clone()),
        RateLimits::shared(&settings, replicas[1].clone()),
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-hubspot-ratelimit-remaining", "3".parse().unwrap());
    headers.insert(
        "x-hubspot-ratelimit-interval-milliseconds",
        "600".parse().unwrap(),
    );
    let started = Instant::now();

    // Act: A's answer says the window is nearly spent; B, which saw nothing, calls.
    a.observe(&headers).await;
    b.acquire(CallKind::Search).await;

    // Assert: B waited for the window A saw.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(590), "{waited:?}");
}

#[tokio::test]
async fn without_the_database_a_replica_paces_its_calls_with_its_own_limiter() {
    // A pool that can never connect: every reservation fails at once.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/test")
        .unwrap();
    let cluster = Arc::new(Cluster::from_pool(pool));
    let settings = RateLimitSettings {
        requests_per_second: 10,
        burst: 2,
        ..RateLimitSettings::default()
    };
    let limits = RateLimits::shared(&settings, cluster);

    // Act: the first call finds the database unreachable; four more follow.
    let started = Instant::now();
    limits.acquire(CallKind::Standard).await;
    let first = started.elapsed();
    let started = Instant::now();
    for _ in 0..4 {
        limits.acquire(CallKind::Standard).await;
    }
    let rest = started.elapsed();

    // Assert: the first waited no longer than the database's timeout; then the local budget
    // (two at once, then one per 100 ms) paces the calls without asking the database again.
    assert!(first < Duration::from_secs(3), "{first:?}");
    assert!(
        rest >= Duration::from_millis(290) && rest < Duration::from_secs(1),
        "{rest:?}"
    );
}

fn hubspot_settings(fake: &FakeHubSpot) -> HubSpotSettings {
    HubSpotSettings {
        enabled: true,
        base_url: fake.base_url(),
        api_token: SecretString::from(fake.token().to_string()),
        timeout_secs: 10,
        rate_limit: RateLimitSettings {
            // Only the budget keeps the window: no holding when it is nearly spent.
            remaining_floor: 0,
            ..RateLimitSettings::default()
        },
        ..HubSpotSettings::default()
    }
}

/// Three replicas' clients, each with three callers, make `standard` calls and `searches`.
async fn three_replicas_call(
    fake: &FakeHubSpot,
    clusters: Vec<Option<Arc<Cluster>>>,
    standard: usize,
    searches: usize,
) {
    let settings = hubspot_settings(fake);
    let clients: Vec<Arc<HubSpotClient>> = clusters
        .into_iter()
        .map(|cluster| {
            Arc::new(
                HubSpotClient::with_cluster(&settings, Arc::new(Metrics::new()), cluster).unwrap(),
            )
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..9 {
        let client = clients[caller % 3].clone();
        let (standard, searches) = (
            standard / 9 + usize::from(caller < standard % 9),
            searches / 9 + usize::from(caller < searches % 9),
        );
        tasks.spawn(async move {
            for _ in 0..standard {
                let _ = client.account_details().await;
            }
            for _ in 0..searches {
                let _ = client
                    .search_in("companies", "duns_number", &["081466849".into()], &[])
                    .await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_against_the_portals_100_per_10_s_get_no_429() {
    // Arrange: the fake portal's limits (100 per rolling 10 s, 5 searches a second) and the
    // default budget (8/s, bursts of 10; searches 4/s, bursts of 1), shared by three replicas.
    let Some(url) = postgres::fresh_url("three_replicas_against_the_portal").await else {
        return;
    };
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    fake.add_property("duns_number", true);
    let replicas = clusters(&url, 3).await.into_iter().map(Some).collect();
    let started = Instant::now();

    // Act: 120 calls (more than one window's 100) and 20 searches.
    three_replicas_call(&fake, replicas, 120, 20).await;

    // Assert
    assert_eq!(fake.throttled(), 0, "HubSpot answered 429");
    assert_eq!(fake.requests().len(), 140);
    assert!(started.elapsed() >= Duration::from_secs(13));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_each_with_the_whole_budget_do_get_429() {
    // The same replicas without the shared budget: each paces itself to the portal's
    // budget, together they overrun it (the fake catches what the test above rules out).
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    fake.add_property("duns_number", true);

    three_replicas_call(&fake, vec![None, None, None], 120, 0).await;

    assert!(fake.throttled() > 0);
}

#[tokio::test]
async fn one_of_two_contenders_leads_until_its_lease_ends_and_fences_grow() {
    let Some(url) = postgres::fresh_url("one_of_two_contenders_leads").await else {
        return;
    };
    let replicas = clusters(&url, 2).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let lease = Duration::from_secs(30);
    let t0 = a.now_us().await.unwrap();
    let at = |secs: i64| t0 + secs * 1_000 * MS;

    // A takes the free lease; B cannot while it runs; A renews.
    assert_eq!(
        a.try_lead_at("job", "a", lease, at(0)).await.unwrap(),
        Some(1)
    );
    assert_eq!(b.try_lead_at("job", "b", lease, at(1)).await.unwrap(), None);
    assert_eq!(
        a.try_lead_at("job", "a", lease, at(10)).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        b.try_lead_at("job", "b", lease, at(39)).await.unwrap(),
        None
    );
    // A stops renewing: 30 s after its last renewal B takes over, and A is out.
    assert_eq!(
        b.try_lead_at("job", "b", lease, at(40)).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        a.try_lead_at("job", "a", lease, at(41)).await.unwrap(),
        None
    );
    // Another job is another lease.
    assert_eq!(
        a.try_lead_at("other", "a", lease, at(41)).await.unwrap(),
        Some(1)
    );

    // On the database's own clock: B gives the lease up and A takes it at once.
    assert_eq!(
        a.try_lead("job2", "a", lease).await.unwrap(),
        Some(1),
        "a free lease"
    );
    assert_eq!(b.try_lead("job2", "b", lease).await.unwrap(), None);
    assert!(!b.release("job2", "b").await.unwrap(), "not B's to release");
    assert!(a.release("job2", "a").await.unwrap());
    assert_eq!(b.leader("job2").await.unwrap(), None);
    assert_eq!(b.try_lead("job2", "b", lease).await.unwrap(), Some(2));
    assert_eq!(a.leader("job2").await.unwrap(), Some(("b".into(), 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_ten_contenders_at_once_exactly_one_leads_and_a_short_lease_moves_on_its_own() {
    let Some(url) = postgres::fresh_url("of_ten_contenders_at_once").await else {
        return;
    };
    let replicas = clusters(&url, 2).await;
    let lease = Duration::from_millis(500);

    let taken = futures::future::join_all((0..10).map(|index| {
        let cluster = replicas[index % 2].clone();
        async move {
            cluster
                .try_lead("job", &format!("r{index}"), lease)
                .await
                .unwrap()
        }
    }))
    .await;
    let leaders: Vec<usize> = (0..10).filter(|&index| taken[index].is_some()).collect();
    assert_eq!(leaders.len(), 1, "{taken:?}");
    let leader = leaders[0];

    // The leader stops renewing; a follower asking again gets the lease once it has passed.
    let follower = (leader + 1) % 10;
    let name = format!("r{follower}");
    let asked = Instant::now();
    let mut fence = None;
    wait_until(
        "the follower takes the lease",
        Duration::from_secs(10),
        async || {
            fence = replicas[0].try_lead("job", &name, lease).await.unwrap();
            fence.is_some()
        },
    )
    .await;
    assert_eq!(fence, Some(2));
    assert!(
        asked.elapsed() >= Duration::from_millis(300),
        "{:?}",
        asked.elapsed()
    );
}

fn dnb_settings(fake: &FakeDnb, rate: u32) -> DnbSettings {
    DnbSettings {
        base_url: fake.base_url(),
        client_key: SecretString::from(FAKE_KEY),
        client_secret: SecretString::from(FAKE_SECRET),
        registrations: vec![REG.into()],
        rate_limit_per_sec: rate,
        ..DnbSettings::default()
    }
}

const REG: &str = "REG_CLUSTER";

/// A replica's puller: its own D&B client (its own token), the journal they share.
fn replica_puller(fake: &FakeDnb, journal: &Arc<dyn Journal>) -> Puller {
    let client = DirectPlusClient::new(&dnb_settings(fake, 50))
        .unwrap()
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200));
    Puller {
        client: Arc::new(client),
        journal: journal.clone(),
        doorbell: None,
        metrics: Arc::new(Metrics::new()),
        max_notifications: 10,
        interval: Duration::from_millis(100),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_pulls_a_registration_and_another_takes_over_when_it_dies() {
    // Arrange: the fake D&B with 50 pending notifications, a journal the replicas share,
    // and two replicas with leases of 3 s (renewed, or asked for, every second).
    let Some(url) = postgres::fresh_url("one_replica_pulls_a_registration").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSettings {
        url: format!("sqlite://{}", dir.path().join("journal.db").display()),
        ..StorageSettings::default()
    };
    let journal = journal::connect(&storage).await.unwrap();
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    let all = notifications(90);
    fake.add_pending(REG, all[..50].to_vec());
    let replicas = clusters(&url, 2).await;
    let leadership = |index: usize| Leadership {
        cluster: replicas[index].clone(),
        holder: format!("replica-{index}"),
        lease: Duration::from_secs(3),
    };
    let lease_name = Leadership::lease_name(REG);
    let run = |index: usize, stop: CancellationToken| {
        let puller = replica_puller(&fake, &journal);
        let leadership = leadership(index);
        tokio::spawn(async move { puller.run_led(REG, None, &leadership, stop).await })
    };

    // Act 1: A starts and drains; then B starts beside it.
    let a = run(0, CancellationToken::new());
    wait_until(
        "A drains the registration",
        Duration::from_secs(20),
        async || fake.pending(REG) == 0,
    )
    .await;
    let b_stop = CancellationToken::new();
    let b = run(1, b_stop.clone());
    // A goes on polling every 100 ms; B asks for the lease every second meanwhile.
    let polls = fake.count("pull");
    wait_until("A polls on for 3 s", Duration::from_secs(30), async || {
        fake.count("pull") >= polls + 30
    })
    .await;

    // Assert 1: only A ever called D&B (B never even asked for a token).
    assert_eq!(fake.count("token"), 1);
    assert_eq!(
        replicas[1].leader(&lease_name).await.unwrap(),
        Some(("replica-0".into(), 1))
    );

    // Act 2: A dies (no release, no more renewals); more notifications arrive.
    a.abort();
    let _ = a.await;
    let died = Instant::now();
    fake.add_pending(REG, all[50..].to_vec());
    wait_until("B takes over", Duration::from_secs(20), async || {
        fake.count("token") == 2
    })
    .await;
    let took_over = died.elapsed();
    wait_until(
        "B drains the registration",
        Duration::from_secs(20),
        async || fake.pending(REG) == 0,
    )
    .await;

    // Assert 2: B took over after A's lease ran out (within a lease and a retry), holds the
    // next fence, and every notification is journaled once.
    assert!(
        took_over <= Duration::from_secs(3 + 1 + 2),
        "took over after {took_over:?}"
    );
    assert_eq!(
        replicas[0].leader(&lease_name).await.unwrap(),
        Some(("replica-1".into(), 2))
    );
    let db = dir.path().join("journal.db");
    let stored: i64 = open_read_only(&db)
        .query_row("SELECT count(*) FROM notifications", [], |row| row.get(0))
        .unwrap();
    assert_eq!(stored, 90);

    // Act 3: B stops: it hands the lease back at once.
    b_stop.cancel();
    b.await.unwrap();
    assert_eq!(replicas[0].leader(&lease_name).await.unwrap(), None);
    journal.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_calling_d_and_b_keep_the_deployments_rate_together() {
    // Arrange: 5 calls a second for the deployment, two replicas' clients, 14 pages.
    let Some(url) = postgres::fresh_url("two_replicas_calling_d_and_b").await else {
        return;
    };
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(14));
    let clients: Vec<Arc<DirectPlusClient>> = clusters(&url, 2)
        .await
        .into_iter()
        .map(|cluster| {
            Arc::new(
                DirectPlusClient::new(&dnb_settings(&fake, 5))
                    .unwrap()
                    .with_cluster(cluster),
            )
        })
        .collect();

    // Act: both pull a page at a time until D&B has nothing left.
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        tasks.spawn(
            async move { while let Answer::Page(_) = client.pull(REG, 1).await.unwrap() {} },
        );
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    // Assert: two tokens, 14 pages and two 404s, never six within a second.
    assert_eq!(fake.pending(REG), 0);
    assert_eq!(fake.calls().len(), 18);
    crate::dnb_client::assert_rate_respected(&fake.calls(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_stuck_in_a_call_without_its_database_gives_way_and_the_next_one_replays() {
    // Arrange: 30 pending notifications; the first pull hands out a page of 10 and never
    // finishes its answer. Leases of 3 s.
    let Some(url) = postgres::fresh_url("a_holder_stuck_in_a_call").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSettings {
        url: format!("sqlite://{}", dir.path().join("journal.db").display()),
        ..StorageSettings::default()
    };
    let journal = journal::connect(&storage).await.unwrap();
    let fake = FakeDnb::start(FakeDnbConfig::default()).await;
    fake.add_pending(REG, notifications(30));
    fake.fail_next([crate::fake_dnb::DnbFault::AnswerThenStall]);
    let replicas = clusters(&url, 2).await;
    let run = |index: usize, stop: CancellationToken| {
        let puller = replica_puller(&fake, &journal);
        let leadership = Leadership {
            cluster: replicas[index].clone(),
            holder: format!("replica-{index}"),
            lease: Duration::from_secs(3),
        };
        tokio::spawn(async move { puller.run_led(REG, None, &leadership, stop).await })
    };
    let a = run(0, CancellationToken::new());
    wait_until("A's pull stalls", Duration::from_secs(10), async || {
        fake.pulled(REG) == 10
    })
    .await;
    let b_stop = CancellationToken::new();
    let b = run(1, b_stop.clone());

    // Act: A loses its database while its call hangs.
    replicas[0].close().await;

    // Assert: B takes over once A's lease has run out, replays what A's call took (A left
    // its in-flight mark) and drains the rest; each notification is journaled once.
    let db = dir.path().join("journal.db");
    wait_until("B journals all 30", Duration::from_secs(30), async || {
        let stored: i64 = open_read_only(&db)
            .query_row("SELECT count(*) FROM notifications", [], |row| row.get(0))
            .unwrap();
        stored == 30
    })
    .await;
    assert_eq!(fake.pending(REG), 0);
    assert!(fake.count("replay") >= 1);
    assert_eq!(fake.count("token"), 2);
    assert_eq!(
        replicas[1]
            .leader(&Leadership::lease_name(REG))
            .await
            .unwrap(),
        Some(("replica-1".into(), 2))
    );
    assert!(!a.is_finished(), "A keeps asking for the lease");
    b_stop.cancel();
    b.await.unwrap();
    a.abort();
    journal.close().await;
}
