//! The Direct+ pull loop: one task per monitoring registration.
//!
//! A round pulls pages until D&B answers 404 (nothing pending), then the loop
//! waits `dnb.pull.interval_secs`. Each page is journaled exactly like a webhook
//! delivery (same parsing, dedupe by content, rejected items kept) in one
//! transaction with the registration's checkpoint, before the next call.
//!
//! Pulling takes notifications off D&B's pending set, so the one loss window
//! is between D&B's answer and that commit. The journal marks the registration
//! "in flight" before each call and the page's commit clears it. When the loop
//! starts and finds the mark (the process stopped uncleanly mid-call), or a call
//! failed after it may have reached D&B, it first replays from the last
//! journaled `deliveryTimeStamp` minus [`REPLAY_OVERLAP`], then pulls again; the
//! overlap comes back as duplicates, which the journal drops.
//!
//! Replicas sharing a PostgreSQL database pull each registration from one replica at a time
//! ([`Leadership`]): a registration's loop first takes the lease `pull:<registration>`
//! ([`Cluster::try_lead`]) and renews it every third of its length. A replica that could not
//! renew for two thirds of the lease stops calling D&B for that registration: it makes no
//! new call and cuts a call in flight short (its in-flight mark stays, so whoever pulls next
//! replays first), a third of the lease before another replica may take it. Both sides
//! measure durations, the replica on its own timers from before it sent the renewal, the
//! lease on the database's clock, so clock skew does not matter. A replica that does not hold
//! the lease asks again every third of it, so when the holder dies another one takes over
//! within a lease and a third, and at once when it stops cleanly (it releases the lease).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeZone, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::direct_plus::{Answer, DirectPlusClient, DirectPlusError, Page};
use super::{BodyFormat, IncomingItem, parse_body};
use crate::cluster::Cluster;
use crate::journal::{Delivery, Journal, JournalError, PullCheckpoint, RegistrationState, now_ms};
use crate::telemetry::Metrics;
use crate::worker::Doorbell;

/// How far before the checkpoint a recovery replay starts.
pub const REPLAY_OVERLAP: Duration = Duration::from_secs(300);
/// D&B keeps pulled notifications this long for replay.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(14 * 24 * 3600);

/// Why a pull round stopped.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// D&B failed.
    #[error(transparent)]
    Dnb(#[from] DirectPlusError),
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// A page was not a Direct+ answer.
    #[error("D&B sent a page that is not a Direct+ answer: {0}")]
    Payload(#[from] super::PayloadError),
    /// This replica no longer holds the registration's lease (another one may pull it).
    #[error("this replica no longer holds the registration's pull lease")]
    LeaseLost,
}

/// Who pulls a registration when replicas share a database: the holder of its lease.
#[derive(Clone)]
pub struct Leadership {
    /// The shared database.
    pub cluster: Arc<Cluster>,
    /// This process's name in the lease rows (unique per process).
    pub holder: String,
    /// How long a lease lasts without renewal; renewed (and, when another replica holds
    /// it, asked for) every third of it.
    pub lease: Duration,
}

impl Leadership {
    /// The default lease length.
    pub const LEASE: Duration = Duration::from_secs(30);

    /// The lease row of a registration.
    pub fn lease_name(registration: &str) -> String {
        format!("pull:{registration}")
    }
}

/// Whether this replica may still call D&B for a registration it leads: until two thirds
/// of a lease after the last confirmed renewal (measured from when the renewal was sent),
/// and never again once another replica took the lease.
struct LeaseGate {
    confirmed: Mutex<Instant>,
    usable: Duration,
    lost: CancellationToken,
}

impl LeaseGate {
    fn new(asked: Instant, lease: Duration) -> Self {
        Self {
            confirmed: Mutex::new(asked),
            usable: lease - lease / 3,
            lost: CancellationToken::new(),
        }
    }

    fn confirm(&self, asked: Instant) {
        let mut confirmed = self.confirmed.lock().expect("lease gate");
        *confirmed = (*confirmed).max(asked);
    }

    fn allows(&self) -> bool {
        !self.lost.is_cancelled()
            && Instant::now() < *self.confirmed.lock().expect("lease gate") + self.usable
    }

    fn check(gate: Option<&Self>) -> Result<(), PullError> {
        match gate {
            Some(gate) if !gate.allows() => Err(PullError::LeaseLost),
            _ => Ok(()),
        }
    }

    /// Returns when the gate closes (the deadline moves with each renewal).
    async fn closed(&self) {
        loop {
            let until = *self.confirmed.lock().expect("lease gate") + self.usable;
            tokio::select! {
                () = tokio::time::sleep_until(until) => {
                    if !self.allows() {
                        return;
                    }
                }
                () = self.lost.cancelled() => return,
            }
        }
    }

    /// Runs a D&B call, cut short when the gate closes first: the in-flight mark it leaves
    /// makes the next holder replay what the call may have taken.
    async fn within<T>(gate: Option<&Self>, call: impl Future<Output = T>) -> Result<T, PullError> {
        match gate {
            None => Ok(call.await),
            Some(gate) => tokio::select! {
                answer = call => Ok(answer),
                () = gate.closed() => Err(PullError::LeaseLost),
            },
        }
    }
}

/// What one registration's loop needs.
#[derive(Clone)]
pub struct Puller {
    /// Shared by every registration (one rate limit, one token).
    pub client: Arc<DirectPlusClient>,
    /// Where pages are committed.
    pub journal: Arc<dyn Journal>,
    /// Rung after a commit that accepted notifications (inside `serve`).
    pub doorbell: Option<Doorbell>,
    /// `bridge_dnb_*`.
    pub metrics: Arc<Metrics>,
    /// `dnb.pull.max_notifications`.
    pub max_notifications: u32,
    /// `dnb.pull.interval_secs`.
    pub interval: Duration,
}

/// What a registration's loop did, for `pull --once`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// Notifications D&B handed out to pulls.
    pub pulled: u64,
    /// Notifications re-read by replay.
    pub replayed: u64,
    /// Of both, the ones newly journaled.
    pub accepted: u64,
    /// Of both, the ones already journaled.
    pub duplicates: u64,
    /// Of both, the ones kept as rejected.
    pub rejected: u64,
}

impl PullReport {
    fn add(&mut self, other: &PullReport) {
        self.pulled += other.pulled;
        self.replayed += other.replayed;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
    }
}

enum Source {
    Pull,
    Replay,
}

impl Puller {
    /// Runs the loop of `registration` until `stop` is cancelled: replays first when
    /// `replay_from` is given or the journal says a call was in flight, then pulls until
    /// drained, waits `interval`, and again. A failed round is logged and counted and the
    /// loop carries on after the interval (replaying first).
    pub async fn run(
        &self,
        registration: &str,
        replay_from: Option<DateTime<Utc>>,
        stop: CancellationToken,
    ) {
        let mut replay_from = replay_from;
        self.run_gated(registration, &mut replay_from, None, &stop)
            .await;
    }

    /// [`Puller::run`] in a replica among several: the loop runs while this replica holds
    /// the registration's lease, and waits to take it over while another one does.
    pub async fn run_led(
        &self,
        registration: &str,
        replay_from: Option<DateTime<Utc>>,
        leadership: &Leadership,
        stop: CancellationToken,
    ) {
        let name = Leadership::lease_name(registration);
        let holder = leadership.holder.as_str();
        let retry = leadership.lease / 3;
        let mut replay_from = replay_from;
        // Log "another replica pulls it" once per stretch of following, not every retry.
        let mut following = false;
        loop {
            let asked = Instant::now();
            let taken = tokio::time::timeout(
                retry,
                leadership.cluster.try_lead(&name, holder, leadership.lease),
            )
            .await;
            match taken {
                Ok(Ok(Some(fence))) => {
                    following = false;
                    tracing::info!(
                        registration,
                        holder,
                        fence,
                        "this replica holds the registration's pull lease; pulling"
                    );
                    let gate = LeaseGate::new(asked, leadership.lease);
                    // The renewal runs in this task: it ends with the pulling, however that ends.
                    tokio::select! {
                        () = self.run_gated(registration, &mut replay_from, Some(&gate), &stop) => {}
                        () = renew(leadership, &name, fence, &gate) => {}
                    }
                    if stop.is_cancelled() {
                        // Hand the registration over at once rather than when the lease ends.
                        if let Err(error) = leadership.cluster.release(&name, holder).await {
                            tracing::warn!(registration, error = %error, "cannot release the pull lease; another replica takes over when it expires");
                        }
                        break;
                    }
                    tracing::warn!(
                        registration,
                        holder,
                        fence,
                        "this replica lost the registration's pull lease; stopped pulling it"
                    );
                }
                Ok(Ok(None)) => {
                    if !following {
                        tracing::info!(
                            registration,
                            holder,
                            "another replica holds the registration's pull lease; waiting to take over"
                        );
                        following = true;
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(registration, error = %error, "cannot ask for the registration's pull lease; asking again");
                }
                Err(_) => {
                    tracing::warn!(
                        registration,
                        "no answer in time to the registration's pull lease; asking again"
                    );
                }
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = stop.cancelled() => break,
            }
        }
    }

    /// The loop of [`Puller::run`]; with a `gate`, it returns as soon as the gate closes
    /// (before the next D&B call).
    async fn run_gated(
        &self,
        registration: &str,
        replay_from: &mut Option<DateTime<Utc>>,
        gate: Option<&LeaseGate>,
        stop: &CancellationToken,
    ) {
        let mut report = PullReport::default();
        // Failures in a row: the first is logged as an error, the rest only as warnings
        // until a round succeeds again, so a lasting outage is one clear line, not a flood.
        let mut failing = 0_u32;
        let lost = gate.map_or_else(CancellationToken::new, |gate| gate.lost.clone());
        loop {
            if LeaseGate::check(gate).is_err() {
                break;
            }
            let round = tokio::select! {
                result = self.round(registration, *replay_from, &mut report, gate) => Some(result),
                () = stop.cancelled() => None,
            };
            match round {
                None | Some(Err(PullError::LeaseLost)) => break,
                Some(Ok(())) => {
                    // An asked-for replay is done once a round succeeded, not before.
                    *replay_from = None;
                    if failing > 0 {
                        tracing::info!(
                            registration,
                            failed_rounds = failing,
                            "D&B pull works again"
                        );
                    }
                    failing = 0;
                }
                Some(Err(error)) => {
                    failing += 1;
                    if failing == 1 {
                        tracing::error!(registration, error = %error, kind = error_kind(&error), "D&B pull failed; trying again every dnb.pull.interval_secs (replaying first) until it works");
                    } else {
                        tracing::warn!(registration, error = %error, failed_rounds = failing, "D&B pull still failing");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop.cancelled() => break,
                () = lost.cancelled() => break,
            }
        }
        tracing::info!(
            registration,
            pulled = report.pulled,
            replayed = report.replayed,
            accepted = report.accepted,
            "D&B pull loop stopped"
        );
    }

    /// One round: the replay the journal or `replay_from` asks for, then pulls until D&B
    /// answers 404. Returns on the first failure.
    pub async fn once(
        &self,
        registration: &str,
        replay_from: Option<DateTime<Utc>>,
    ) -> Result<PullReport, PullError> {
        let mut report = PullReport::default();
        self.round(registration, replay_from, &mut report, None)
            .await?;
        Ok(report)
    }

    async fn round(
        &self,
        registration: &str,
        replay_from: Option<DateTime<Utc>>,
        report: &mut PullReport,
        gate: Option<&LeaseGate>,
    ) -> Result<(), PullError> {
        let state = self.state(registration).await?;
        let start = match replay_from {
            Some(from) => Some(from),
            None if state.as_ref().is_some_and(|state| state.in_flight) => {
                let start = recovery_start(state.as_ref(), Utc::now());
                tracing::warn!(registration, replay_from = %start, "a pull call's page was never committed (an unclean stop or a failed call); replaying from the checkpoint first");
                Some(start)
            }
            None => None,
        };
        if let Some(start) = start {
            match self.replay(registration, start, report, gate).await {
                Ok(()) => {}
                // D&B refuses this replay outright (not a passing failure): pulling must go on,
                // or pending notifications would expire behind a replay that never succeeds.
                Err(PullError::Dnb(error @ DirectPlusError::Refused { .. })) => {
                    tracing::error!(registration, replay_from = %start, error = %error, "D&B refused the replay; pulling on. Notifications handed out before the interruption may be missing: run `pull --once --registration {registration} --replay-from TIME` with a time D&B accepts");
                }
                Err(error) => return Err(error),
            }
        }
        self.drain(registration, report, gate).await
    }

    async fn state(&self, registration: &str) -> Result<Option<RegistrationState>, JournalError> {
        Ok(self
            .journal
            .registrations()
            .await?
            .into_iter()
            .find(|state| state.registration == registration))
    }

    /// Pulls pages until D&B answers 404.
    async fn drain(
        &self,
        registration: &str,
        report: &mut PullReport,
        gate: Option<&LeaseGate>,
    ) -> Result<(), PullError> {
        loop {
            LeaseGate::check(gate)?;
            self.journal
                .update_registration(mark(registration, true))
                .await?;
            let answer =
                LeaseGate::within(gate, self.client.pull(registration, self.max_notifications))
                    .await?;
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    self.metrics.dnb_pull(registration, "error");
                    // The mark stays: the call may have reached D&B, and the next round replays.
                    return Err(error.into());
                }
            };
            match answer {
                Answer::Drained => {
                    let now = now_ms();
                    self.journal
                        .update_registration(PullCheckpoint {
                            succeeded_at_ms: Some(now),
                            ..mark(registration, false)
                        })
                        .await?;
                    self.metrics.dnb_pull(registration, "drained");
                    self.metrics.dnb_pull_succeeded(registration, now);
                    return Ok(());
                }
                Answer::Page(page) => {
                    let count = page.count as u64;
                    let page_report = self.commit(registration, page, Source::Pull, false).await?;
                    report.add(&page_report.0);
                    self.metrics.dnb_pull(registration, "page");
                    self.metrics.dnb_pulled(registration, count);
                    self.metrics.dnb_pull_succeeded(registration, now_ms());
                }
            }
        }
    }

    /// Re-reads D&B's replay window from `from`, a page at a time, each page starting at
    /// the second before the last page's newest notification (pages overlap; duplicates
    /// are dropped). The in-flight mark stays set until the pulls after it clear it, so an
    /// interrupted replay is resumed at the next start.
    async fn replay(
        &self,
        registration: &str,
        from: DateTime<Utc>,
        report: &mut PullReport,
        gate: Option<&LeaseGate>,
    ) -> Result<(), PullError> {
        // A minute inside the window, so the start is not already out of it when D&B reads it.
        let oldest = Utc::now() - chrono::Duration::from_std(REPLAY_WINDOW).expect("fits")
            + chrono::Duration::minutes(1);
        let mut start = second(from.max(oldest));
        tracing::info!(registration, from = %start, "replaying D&B notifications");
        self.journal
            .update_registration(mark(registration, true))
            .await?;
        loop {
            LeaseGate::check(gate)?;
            let answer = LeaseGate::within(
                gate,
                self.client
                    .replay(registration, start, self.max_notifications),
            )
            .await?;
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    self.metrics.dnb_pull(registration, "error");
                    return Err(error.into());
                }
            };
            let page = match answer {
                Answer::Drained => return Ok(()),
                Answer::Page(page) => page,
            };
            let full = page.count >= self.max_notifications as usize;
            let (page_report, newest) = self
                .commit(registration, page, Source::Replay, true)
                .await?;
            report.add(&page_report);
            self.metrics.dnb_pull(registration, "replayed");
            if !full {
                return Ok(());
            }
            let Some(newest) = newest else {
                return Ok(());
            };
            let next = second(newest) - chrono::Duration::seconds(1);
            start = if next > start {
                next
            } else if second(newest) > start {
                second(newest)
            } else {
                tracing::warn!(registration, at = %start, "a replay page holds only notifications of one second; later ones of that second may be missed");
                start + chrono::Duration::seconds(1)
            };
        }
    }

    /// Journals a page with its registration's checkpoint in one transaction; returns what
    /// became of its items and its newest delivery time.
    async fn commit(
        &self,
        registration: &str,
        page: Page,
        source: Source,
        in_flight: bool,
    ) -> Result<(PullReport, Option<DateTime<Utc>>), PullError> {
        let body = page.body;
        let items = if body.len() > 256 * 1024 {
            tokio::task::spawn_blocking(move || parse_body(BodyFormat::Json, &body))
                .await
                .map_err(|_| JournalError::Closed)??
        } else {
            parse_body(BodyFormat::Json, &body)?
        };
        let newest_ms = items
            .iter()
            .filter_map(|item| match item {
                IncomingItem::Valid(valid) => Some(valid.delivered_at_ms),
                IncomingItem::Rejected(_) => None,
            })
            .max();
        let kinds: Vec<_> = items
            .iter()
            .map(|item| match item {
                IncomingItem::Valid(valid) => (Some(valid.notification_type), None),
                IncomingItem::Rejected(rejected) => {
                    (rejected.notification_type, Some(rejected.rejection.reason))
                }
            })
            .collect();
        let count = items.len() as u64;
        let received_at = Utc::now();
        let prefix = match source {
            Source::Pull => "dnb-pull",
            Source::Replay => "dnb-replay",
        };
        // Every answer is a new delivery: a unique suffix keeps a repeated (or missing)
        // transaction id from passing a new page off as a redelivery. Content dedupe still
        // drops notifications already journaled.
        let transaction = format!(
            "{}:{}",
            page.transaction_id.as_deref().unwrap_or("-"),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let outcome = self
            .journal
            .append(Delivery {
                webhook_id: format!("{prefix}:{registration}:{transaction}"),
                received_at,
                items,
                checkpoint: Some(PullCheckpoint {
                    registration: registration.to_string(),
                    delivered_at_ms: newest_ms,
                    succeeded_at_ms: Some(received_at.timestamp_millis()),
                    transaction_id: page.transaction_id,
                    in_flight,
                }),
            })
            .await?;
        if outcome.accepted() > 0
            && let Some(doorbell) = &self.doorbell
        {
            doorbell.ring();
        }
        if !outcome.redelivery {
            for ((kind, rejected), fate) in kinds.iter().zip(&outcome.items) {
                match (fate, rejected) {
                    (crate::journal::ItemFate::Accepted(_), _) => self.metrics.received(*kind),
                    (crate::journal::ItemFate::Rejected, Some(reason)) => {
                        self.metrics.received(*kind);
                        self.metrics.webhook_rejected(reason.as_str());
                    }
                    _ => {}
                }
            }
        }
        let duplicates = outcome.duplicates();
        self.metrics.duplicates(duplicates);
        let mut report = PullReport {
            accepted: outcome.accepted() as u64,
            duplicates: duplicates as u64,
            rejected: outcome.rejected.len() as u64,
            ..PullReport::default()
        };
        match source {
            Source::Pull => report.pulled = count,
            Source::Replay => report.replayed = count,
        }
        tracing::debug!(
            registration,
            notifications = count,
            accepted = report.accepted,
            duplicates,
            "D&B page journaled"
        );
        Ok((
            report,
            newest_ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        ))
    }
}

/// Starts one loop per registration (see [`Puller::run`]) after registering its metrics
/// (last success from the journal); the handle ends when every loop has stopped.
/// With a `leadership`, each loop runs where the registration's lease is held
/// ([`Puller::run_led`]).
pub async fn start(
    puller: Puller,
    registrations: Vec<String>,
    replay_from: Option<DateTime<Utc>>,
    leadership: Option<Leadership>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, JournalError> {
    let states = puller.journal.registrations().await?;
    let started = now_ms();
    for registration in &registrations {
        let last = states
            .iter()
            .find(|state| &state.registration == registration)
            .and_then(|state| state.last_success_at_ms);
        puller.metrics.dnb_registration(registration, last, started);
    }
    let mut loops = tokio::task::JoinSet::new();
    for registration in registrations {
        let puller = puller.clone();
        let stop = stop.clone();
        let leadership = leadership.clone();
        loops.spawn(async move {
            match leadership {
                Some(leadership) => {
                    puller
                        .run_led(&registration, replay_from, &leadership, stop)
                        .await;
                }
                None => puller.run(&registration, replay_from, stop).await,
            }
        });
    }
    Ok(tokio::spawn(async move {
        while loops.join_next().await.is_some() {}
    }))
}

fn error_kind(error: &PullError) -> &'static str {
    match error {
        PullError::Dnb(error) => error.kind(),
        PullError::Journal(_) => "journal",
        PullError::Payload(_) => "payload",
        PullError::LeaseLost => "lease",
    }
}

/// Renews the lease `name` every third of its length while this replica pulls; confirms the
/// gate after each renewal and closes it for good when another replica holds the lease (and
/// then never returns: the pulling ends by itself before its next D&B call).
async fn renew(leadership: &Leadership, name: &str, fence: i64, gate: &LeaseGate) {
    let every = leadership.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let asked = Instant::now();
        let renewed = tokio::time::timeout(
            every,
            leadership
                .cluster
                .try_lead(name, &leadership.holder, leadership.lease),
        )
        .await;
        match renewed {
            Ok(Ok(Some(held))) if held == fence => gate.confirm(asked),
            Ok(Ok(_)) => {
                gate.lost.cancel();
                std::future::pending::<()>().await;
            }
            Ok(Err(error)) => {
                tracing::warn!(lease = name, error = %error, "cannot renew the pull lease; pulling stops unless a renewal succeeds in time");
            }
            Err(_) => {
                tracing::warn!(
                    lease = name,
                    "no answer in time to the pull lease's renewal; pulling stops unless a renewal succeeds in time"
                );
            }
        }
    }
}

/// A change that only sets or clears the in-flight mark.
fn mark(registration: &str, in_flight: bool) -> PullCheckpoint {
    PullCheckpoint {
        registration: registration.to_string(),
        delivered_at_ms: None,
        succeeded_at_ms: None,
        transaction_id: None,
        in_flight,
    }
}

/// Where a recovery replay starts: the newest journaled delivery time (or, without one,
/// the last success) minus the overlap; with neither, the start of D&B's replay window.
pub fn recovery_start(state: Option<&RegistrationState>, now: DateTime<Utc>) -> DateTime<Utc> {
    let overlap = chrono::Duration::from_std(REPLAY_OVERLAP).expect("fits");
    state
        .and_then(|state| state.last_delivered_at_ms.or(state.last_success_at_ms))
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(|checkpoint| checkpoint - overlap)
        .unwrap_or_else(|| {
            now - chrono::Duration::from_std(REPLAY_WINDOW).expect("fits")
                + chrono::Duration::minutes(1)
        })
}

/// `time` cut to the second (D&B's replay start has no fraction).
fn second(time: DateTime<Utc>) -> DateTime<Utc> {
    time.duration_trunc(chrono::Duration::seconds(1))
        .unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_starts_before_the_checkpoint_or_at_the_window() {
        let now = Utc.with_ymd_and_hms(2026, 5, 20, 0, 0, 0).unwrap();
        let state = RegistrationState {
            registration: "R".into(),
            last_delivered_at_ms: Some(
                Utc.with_ymd_and_hms(2026, 5, 19, 12, 0, 0)
                    .unwrap()
                    .timestamp_millis(),
            ),
            last_success_at_ms: None,
            last_transaction_id: None,
            in_flight: true,
        };
        assert_eq!(
            recovery_start(Some(&state), now),
            Utc.with_ymd_and_hms(2026, 5, 19, 11, 55, 0).unwrap()
        );
        assert_eq!(
            recovery_start(None, now),
            Utc.with_ymd_and_hms(2026, 5, 6, 0, 1, 0).unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_flight_is_cut_when_the_lease_gate_closes_and_renewals_move_it() {
        // A lease of 3 s: usable for 2 s after the renewal sent at the start.
        let started = Instant::now();
        let gate = LeaseGate::new(started, Duration::from_secs(3));
        let stalled = std::future::pending::<()>();
        let renewed = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            gate.confirm(Instant::now());
        };
        // A call that never ends, and a renewal confirmed at 1 s.
        let (cut, ()) = tokio::join!(LeaseGate::within(Some(&gate), stalled), renewed);
        assert!(matches!(cut, Err(PullError::LeaseLost)));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(!gate.allows());
        assert!(LeaseGate::check(Some(&gate)).is_err());
        assert!(LeaseGate::check(None).is_ok());

        // Another replica took the lease: the gate closes at once.
        let gate = LeaseGate::new(Instant::now(), Duration::from_secs(3));
        gate.lost.cancel();
        let at = Instant::now();
        let cut = LeaseGate::within(Some(&gate), std::future::pending::<()>()).await;
        assert!(matches!(cut, Err(PullError::LeaseLost)));
        assert_eq!(at.elapsed(), Duration::ZERO);
        // A call that ends in time is answered.
        let gate = LeaseGate::new(Instant::now(), Duration::from_secs(3));
        assert_eq!(
            LeaseGate::within(Some(&gate), async { 7 }).await.unwrap(),
            7
        );
    }

    #[test]
    fn replay_starts_are_whole_seconds() {
        let time = Utc.timestamp_millis_opt(1_715_587_201_999).unwrap();
        assert_eq!(second(time).timestamp_millis(), 1_715_587_201_000);
    }
}
