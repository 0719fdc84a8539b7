//! The HubSpot executor: performs a claimed batch's plans with batch calls,
//! following the contract's processing rules step by step:
//!
//! 1. **resolve**: every DUNS to its company with one batch read (and, for a
//!    DUNS a TRANSFER moved away, through the journal's record of the move);
//!    the first SEED/FULL_PRODUCT of a DUNS with no company is its creator and
//!    the later notifications of that DUNS wait for it;
//! 2. **create**: the creators' companies, journaled before they are sent;
//!    followers act on the created company, or wait with a creator that failed;
//! 3. **decide**: what each notification does to its company given what the
//!    company shows (the pure rules of [`crate::mapping::lifecycle`]: older
//!    never overwrites newer, one open task per type, reversals), from the
//!    batch read, the journal's history and one batch read of open tasks;
//! 4. **update**: each company's merged property changes in one batch update;
//! 5. **tasks**: create the tasks decided, then complete the ones reversed;
//! 6. **notes**: one note per company per batch, a paragraph per notification.
//!
//! Creates are journaled as `unknown` before they are sent and reconciled by
//! searching for their marker before any re-send, so a lost answer or a crash
//! never duplicates them. When HubSpot as a whole fails, the batch is deferred
//! and the workers pause instead of spending attempts; a refused read is the
//! batch's own failure. A notification is `done` only when every action it
//! planned has a HubSpot id or an explicit reason recorded.

mod activities;
mod companies;
mod decide;
mod tasks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::client::HubSpotClient;
use super::error::HubSpotError;
use super::executor::{Execution, Executor, Planned};
use super::quota;
use super::status::HubSpotStatus;
use crate::config::HubSpotSettings;
use crate::journal::{
    ActionRecord, ActionState, DeferReason, Journal, LeaseLost, LeaseWatch, PauseReason,
    StoredAction, now_ms,
};
use crate::mapping::lifecycle::Decision;
use crate::mapping::render::{CompanyView, SuccessorView};
use crate::telemetry::Metrics;

/// How long workers pause when the daily quota is spent and neither HubSpot (`Retry-After`)
/// nor the portal's time zone (its midnight resets the quota) says until when.
const DAILY_PAUSE: Duration = Duration::from_secs(3600);

/// Performs plans against a HubSpot portal.
pub struct HubSpotExecutor {
    client: Arc<HubSpotClient>,
    journal: Arc<dyn Journal>,
    status: Arc<HubSpotStatus>,
    metrics: Arc<Metrics>,
    duns_property: String,
    default_owner_email: String,
    default_owner: tokio::sync::OnceCell<Option<String>>,
    time_zone: tokio::sync::OnceCell<String>,
    configured_time_zone: String,
    /// How long a lost create is given to appear in search before it is re-sent.
    reconcile_after: Duration,
    outage_pause: Duration,
    auth_probe: Duration,
    /// Whether the portal was seen to have every property the bridge writes.
    setup_checked: std::sync::atomic::AtomicBool,
    /// Replicas sharing a PostgreSQL journal: where the portal facts one learned are kept for
    /// the others (time zone, default owner, properties present), so each asks HubSpot once
    /// per deployment, not once per process.
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// How long a portal fact another replica learned is taken without asking HubSpot again.
const FACT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

impl HubSpotExecutor {
    /// An executor writing through `client` and checkpointing in `journal`.
    pub fn new(
        settings: &HubSpotSettings,
        client: Arc<HubSpotClient>,
        journal: Arc<dyn Journal>,
        status: Arc<HubSpotStatus>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            journal,
            status,
            metrics,
            duns_property: settings.duns_property.clone(),
            default_owner_email: settings.default_owner_email.trim().to_string(),
            default_owner: tokio::sync::OnceCell::new(),
            time_zone: tokio::sync::OnceCell::new(),
            configured_time_zone: settings.time_zone.trim().to_string(),
            reconcile_after: Duration::from_secs(settings.reconcile_after_secs),
            outage_pause: Duration::from_secs(settings.outage_pause_secs),
            auth_probe: Duration::from_secs(settings.auth_probe_secs),
            setup_checked: std::sync::atomic::AtomicBool::new(false),
            cluster: None,
        }
    }

    /// The executor sharing what it learns about the portal with the other replicas of
    /// `cluster`, and taking what they learned.
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// A portal fact: the one another replica learned, else `learn`'s, shared for the others
    /// when `worth_sharing` says so.
    /// A cluster that cannot be read or written only costs the HubSpot call.
    async fn shared_fact<F, Fut>(
        &self,
        name: &str,
        learn: F,
        worth_sharing: impl Fn(&str) -> bool,
    ) -> Result<String, HubSpotError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, HubSpotError>>,
    {
        let Some(cluster) = &self.cluster else {
            return learn().await;
        };
        match cluster.fact(name, FACT_MAX_AGE).await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(error = %error, fact = name, "could not read a shared portal fact")
            }
        }
        let value = learn().await?;
        if !worth_sharing(&value) {
            return Ok(value);
        }
        if let Err(error) = cluster.remember(name, &value).await {
            tracing::debug!(error = %error, fact = name, "could not share a portal fact");
        }
        Ok(value)
    }

    /// The owner of tasks for companies without one, resolved once.
    async fn default_owner(&self) -> Result<Option<String>, HubSpotError> {
        if self.default_owner_email.is_empty() {
            return Ok(None);
        }
        self.default_owner
            .get_or_try_init(|| async {
                let name = format!("default_owner:{}", self.default_owner_email);
                let owner = self
                    .shared_fact(
                        &name,
                        || async {
                            let owner = self.client.owner_id(&self.default_owner_email).await?;
                            Ok(owner.unwrap_or_default())
                        },
                        |_| true,
                    )
                    .await?;
                if owner.is_empty() {
                    tracing::warn!(email = %self.default_owner_email, "hubspot.default_owner_email is not a HubSpot owner; tasks stay unassigned");
                    return Ok(None);
                }
                Ok(Some(owner))
            })
            .await
            .cloned()
    }

    /// The portal's time zone: `hubspot.time_zone`, else read once from account info.
    async fn time_zone(&self) -> Result<String, HubSpotError> {
        self.time_zone
            .get_or_try_init(|| async {
                match self.configured_time_zone.as_str() {
                    "" => {
                        self.shared_fact(
                            "time_zone",
                            || async { Ok(self.client.account_details().await?.time_zone) },
                            |_| true,
                        )
                        .await
                    }
                    zone => Ok(zone.to_string()),
                }
            })
            .await
            .cloned()
    }

    /// Pauses the workers for a failure of HubSpot as a whole at `now` and says for how long.
    async fn pause_for(&self, error: &HubSpotError, now: DateTime<Utc>) -> (PauseReason, Duration) {
        let (reason, wait) = match error {
            HubSpotError::RateLimited {
                daily: true,
                retry_after,
                ..
            } => {
                let wait = match retry_after {
                    Some(wait) => Some(*wait),
                    None => self
                        .time_zone()
                        .await
                        .ok()
                        .and_then(|zone| quota::until_daily_reset(now, &zone)),
                };
                (PauseReason::DailyLimit, wait.unwrap_or(DAILY_PAUSE))
            }
            HubSpotError::RateLimited { retry_after, .. } => (
                PauseReason::RateLimit,
                retry_after.unwrap_or(Duration::from_secs(10)),
            ),
            HubSpotError::Unauthorized { .. } => (PauseReason::Auth, self.auth_probe),
            HubSpotError::Unavailable { retry_after, .. } => (
                PauseReason::Outage,
                retry_after.unwrap_or(self.outage_pause),
            ),
            _ => (PauseReason::Outage, self.outage_pause),
        };
        let message = match error {
            HubSpotError::Unauthorized { missing_scopes, .. } if !missing_scopes.is_empty() => {
                format!("{error}; missing scopes: {}", missing_scopes.join(", "))
            }
            other => other.to_string(),
        };
        self.status.pause(reason, wait, message);
        (reason, wait)
    }

    /// Lifts a pause whose time has run out; an auth pause first re-probes the token.
    /// Until the portal has every property the bridge writes, it pauses with
    /// reason `setup` instead of failing every batch.
    async fn check_pause(&self) -> Result<bool, HubSpotError> {
        let pause = self.status.current();
        if pause
            .as_ref()
            .is_some_and(|pause| pause.reason == PauseReason::Auth)
        {
            self.client.account_details().await?;
        }
        if !self
            .setup_checked
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let wanted: Vec<String> = super::properties::required(&self.duns_property)
                .into_iter()
                .map(|property| property.name)
                .collect();
            // Shared only once every property is there: a missing one is asked again.
            let fact = format!("properties_present:{}", wanted.join(","));
            let missing = self
                .shared_fact(
                    &fact,
                    || async {
                        let present = self.client.company_properties(&wanted).await?;
                        let missing: Vec<&str> = wanted
                            .iter()
                            .filter(|name| !present.iter().any(|property| &property.name == *name))
                            .map(String::as_str)
                            .collect();
                        Ok(missing.join(","))
                    },
                    |missing| missing.is_empty(),
                )
                .await?;
            let missing: Vec<&str> = missing.split(',').filter(|name| !name.is_empty()).collect();
            if !missing.is_empty() {
                self.status.pause(
                    PauseReason::Setup,
                    self.auth_probe,
                    format!("HubSpot lacks the company properties {}; run `dnb-hubspot-bridge bootstrap`", missing.join(", ")),
                );
                return Ok(false);
            }
            self.setup_checked
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if pause.is_some() {
            self.status.resume();
        }
        Ok(true)
    }
}

/// How often a lost create is looked for in search before it is sent again.
const MAX_LOOKS: u64 = 5;

/// What to do about a create an earlier attempt sent without getting the answer.
pub(super) enum Reconcile {
    /// Search may not show it yet: wait this long.
    Wait(Duration),
    /// Search for it now.
    Search,
}

/// Whether a lost create has had `reconcile_after` to show in search since it was last
/// journaled.
pub(super) fn reconcile_due(stored: &StoredAction, reconcile_after: Duration) -> Reconcile {
    let age = Duration::from_millis((now_ms() - stored.updated_at_ms).max(0) as u64);
    match reconcile_after.checked_sub(age) {
        Some(wait) if !wait.is_zero() => Reconcile::Wait(wait),
        _ => Reconcile::Search,
    }
}

/// Searches already made for a lost create (kept in its `unknown` record's detail).
pub(super) fn looks(stored: &StoredAction) -> u64 {
    serde_json::from_str::<serde_json::Value>(&stored.record.detail)
        .ok()
        .and_then(|detail| detail["looks"].as_u64())
        .unwrap_or(0)
}

/// After a search that did not find a lost create: the count of looks and the wait before
/// the next one, or `None` when it has been looked for long enough and may be sent again.
/// Search usually shows a write within seconds, but can lag for minutes.
pub(super) fn look_again(
    stored: &StoredAction,
    reconcile_after: Duration,
) -> Option<(u64, Duration)> {
    let looked = looks(stored) + 1;
    (looked < MAX_LOOKS).then_some((looked, reconcile_after))
}

/// Why a batch stopped before its end.
pub(super) enum Halt {
    /// HubSpot as a whole failed.
    HubSpot(HubSpotError),
    /// The journal could not say what the batch needs to act right (its history, its moves).
    Journal(String),
    /// The portal lacks properties the bridge writes.
    Setup,
    /// The batch's lease was lost: another worker may own its notifications now.
    LeaseLost,
}

impl From<HubSpotError> for Halt {
    fn from(error: HubSpotError) -> Self {
        Self::HubSpot(error)
    }
}

impl From<LeaseLost> for Halt {
    fn from(_: LeaseLost) -> Self {
        Self::LeaseLost
    }
}

/// One notification's progress through a batch.
pub(super) struct Work<'a> {
    pub planned: &'a Planned,
    /// Checkpoints and unknown writes from earlier attempts, by action key.
    pub earlier: HashMap<String, StoredAction>,
    /// Records to journal with the outcome.
    pub records: Vec<ActionRecord>,
    /// The company this notification acts on, once resolved.
    pub company: Option<CompanyView>,
    /// The company's owner, when it has one.
    pub owner: Option<String>,
    /// TRANSFER successor, once resolved.
    pub successor: SuccessorView,
    /// The batch position of the notification that creates this one's company.
    pub waits_for: Option<usize>,
    /// What it does to its company, once decided.
    pub decision: Option<Decision>,
    /// How many open tasks it completed.
    pub completed: usize,
    /// Set when the notification is finished early (skipped or failed).
    pub ended: Option<Execution>,
    /// Wait before a retry because a lost create must first show in search.
    pub reconcile_wait: Option<Duration>,
}

impl Work<'_> {
    /// The earlier `done` checkpoint of an action, if any.
    pub fn done(&self, key: &str) -> Option<&ActionRecord> {
        self.earlier
            .get(key)
            .map(|stored| &stored.record)
            .filter(|record| record.state == crate::journal::ActionState::Done)
    }

    /// The record of an action made in this run or checkpointed by an earlier one.
    pub fn recorded(&self, key: &str) -> Option<&ActionRecord> {
        self.records
            .iter()
            .rev()
            .find(|record| record.key == key && record.state == ActionState::Done)
            .or_else(|| self.done(key))
    }

    /// Whether this notification is still going and acts on a company.
    pub fn active(&self) -> bool {
        self.ended.is_none() && self.company.is_some()
    }

    /// Ends this notification as failed (permanent: its input is invalid).
    pub fn fail(&mut self, error: String, permanent: bool) {
        if self.ended.is_none() {
            self.ended = Some(Execution::Failed {
                error,
                permanent,
                not_before: None,
                actions: Vec::new(),
            });
        }
    }

    /// Ends this notification without spending an attempt, to be taken again after `wait`.
    pub fn defer(&mut self, reason: DeferReason, wait: Duration) {
        if self.ended.is_none() {
            self.ended = Some(Execution::Deferred {
                reason,
                wait,
                actions: Vec::new(),
            });
        }
    }

    /// The planned actions that have neither a done record nor a checkpoint.
    fn unaccounted(&self) -> Vec<&'static str> {
        self.planned
            .plan
            .actions
            .iter()
            .map(|action| action.kind().as_str())
            .filter(|key| self.recorded(key).is_none())
            .collect()
    }

    fn finish(self, deferred: Option<(DeferReason, Duration)>) -> Execution {
        let unaccounted = self.unaccounted();
        let actions = self.records;
        match self.ended {
            Some(Execution::Failed {
                error,
                permanent,
                not_before,
                ..
            }) => Execution::Failed {
                error,
                permanent,
                not_before: not_before.or(self.reconcile_wait),
                actions,
            },
            Some(Execution::Skipped { reason, .. }) => Execution::Skipped { reason, actions },
            Some(Execution::Deferred { reason, wait, .. }) => Execution::Deferred {
                reason,
                wait: wait.max(self.reconcile_wait.unwrap_or_default()),
                actions,
            },
            Some(Execution::Done { dry_run, .. }) => Execution::Done { dry_run, actions },
            None => match (deferred, self.reconcile_wait) {
                (Some((reason, wait)), reconcile) => Execution::Deferred {
                    reason,
                    wait: wait.max(reconcile.unwrap_or_default()),
                    actions,
                },
                // Not this notification's failure: wait for search to catch up, spending no attempt.
                (None, Some(wait)) => Execution::Deferred {
                    reason: DeferReason::Reconcile,
                    wait,
                    actions,
                },
                // Done only with every planned action accounted for.
                (None, None) if !unaccounted.is_empty() => Execution::Failed {
                    error: format!(
                        "no HubSpot id or reason was recorded for {}",
                        unaccounted.join(", ")
                    ),
                    permanent: false,
                    not_before: None,
                    actions,
                },
                (None, None) => Execution::Done {
                    dry_run: false,
                    actions,
                },
            },
        }
    }
}

#[async_trait]
impl Executor for HubSpotExecutor {
    async fn execute(&self, batch: &[Planned], lease: &LeaseWatch) -> Vec<Execution> {
        let ids: Vec<i64> = batch.iter().map(|planned| planned.id).collect();
        let earlier = match self.journal.checkpoints(&ids).await {
            Ok(earlier) => earlier,
            Err(error) => {
                return batch
                    .iter()
                    .map(|_| Execution::Failed {
                        error: format!("could not read checkpoints: {error}"),
                        permanent: false,
                        not_before: None,
                        actions: Vec::new(),
                    })
                    .collect();
            }
        };
        let mut by_notification: HashMap<i64, HashMap<String, StoredAction>> = HashMap::new();
        for stored in earlier {
            by_notification
                .entry(stored.notification_id)
                .or_default()
                .insert(stored.record.key.clone(), stored);
        }
        let mut work: Vec<Work<'_>> = batch
            .iter()
            .map(|planned| Work {
                planned,
                earlier: by_notification.remove(&planned.id).unwrap_or_default(),
                records: Vec::new(),
                company: None,
                owner: None,
                successor: SuccessorView::Unknown,
                waits_for: None,
                decision: None,
                completed: 0,
                ended: None,
                reconcile_wait: None,
            })
            .collect();

        // Before each step: a batch whose lease was lost stops before its next HubSpot call.
        let result: Result<(), Halt> = async {
            lease.check()?;
            if !self.check_pause().await? {
                return Err(Halt::Setup);
            }
            lease.check()?;
            let resolved = companies::resolve(self, &mut work).await?;
            lease.check()?;
            companies::create_missing(self, &mut work, &resolved).await?;
            lease.check()?;
            decide::decide(self, &mut work, &resolved.facts).await?;
            lease.check()?;
            companies::update(self, &mut work).await?;
            lease.check()?;
            activities::create_tasks(self, &mut work).await?;
            lease.check()?;
            tasks::complete(self, &mut work).await?;
            lease.check()?;
            activities::create_notes(self, &mut work).await?;
            Ok(())
        }
        .await;
        let deferred = match result {
            Ok(()) => None,
            // Its outcome is refused if another claim took the notifications; if none did,
            // they are due again at once, without spending an attempt.
            Err(Halt::LeaseLost) => Some((DeferReason::LeaseLost, Duration::ZERO)),
            // The setup check has already paused the workers with its own message.
            Err(Halt::Setup) => Some((DeferReason::Setup, self.auth_probe)),
            // An answer that does not parse, or a read HubSpot refused (400, 404): the batch's own
            // failure, not HubSpot's as a whole. It spends attempts and ends `dead` with HubSpot's
            // message if it keeps failing, while the other workers carry on.
            Err(Halt::HubSpot(
                error @ (HubSpotError::InvalidResponse { .. } | HubSpotError::Rejected { .. }),
            )) => {
                for item in &mut work {
                    item.fail(error.to_string(), false);
                }
                None
            }
            // Acting without the journal's record could act on the wrong company or repeat a
            // task: the batch fails and is retried.
            Err(Halt::Journal(error)) => {
                tracing::error!(error = %error, "batch stopped: the journal could not be read");
                for item in &mut work {
                    item.fail(error.clone(), false);
                }
                None
            }
            Err(Halt::HubSpot(error)) => {
                let (reason, wait) = self.pause_for(&error, Utc::now()).await;
                Some((reason.into(), wait))
            }
        };
        work.into_iter().map(|item| item.finish(deferred)).collect()
    }
}
