//! The HubSpot executor: performs a claimed batch's plans with batch calls.
//!
//! For one batch: read the journal's checkpoints (actions already done, and
//! creates whose answer was lost), resolve every DUNS to its company with one
//! batch read, create missing companies from SEED/FULL_PRODUCT data, write
//! each company's merged property changes in one batch update, then create
//! tasks and notes (one note per DUNS per batch) in batch creates. Creates of
//! tasks and notes are journaled as `unknown` before they are sent and
//! reconciled by searching for their marker before any re-send, so a lost
//! answer or a crash never duplicates them. When HubSpot as a whole fails,
//! the batch is deferred and the workers pause instead of spending attempts.

mod activities;
mod companies;

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
use crate::journal::{ActionRecord, Journal, StoredAction};
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
}

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
        }
    }

    /// The owner of tasks for companies without one, resolved once.
    async fn default_owner(&self) -> Result<Option<String>, HubSpotError> {
        if self.default_owner_email.is_empty() {
            return Ok(None);
        }
        self.default_owner
            .get_or_try_init(|| async {
                let owner = self.client.owner_id(&self.default_owner_email).await?;
                if owner.is_none() {
                    tracing::warn!(email = %self.default_owner_email, "hubspot.default_owner_email is not a HubSpot owner; tasks stay unassigned");
                }
                Ok(owner)
            })
            .await
            .cloned()
    }

    /// The portal's time zone: `hubspot.time_zone`, else read once from account info.
    async fn time_zone(&self) -> Result<String, HubSpotError> {
        self.time_zone
            .get_or_try_init(|| async {
                match self.configured_time_zone.as_str() {
                    "" => Ok(self.client.account_details().await?.time_zone),
                    zone => Ok(zone.to_string()),
                }
            })
            .await
            .cloned()
    }

    /// Pauses the workers for a failure of HubSpot as a whole at `now` and says for how long.
    async fn pause_for(
        &self,
        error: &HubSpotError,
        now: DateTime<Utc>,
    ) -> (&'static str, Duration) {
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
                ("daily_limit", wait.unwrap_or(DAILY_PAUSE))
            }
            HubSpotError::RateLimited { retry_after, .. } => {
                ("rate_limit", retry_after.unwrap_or(Duration::from_secs(10)))
            }
            HubSpotError::Unauthorized { .. } => ("auth", self.auth_probe),
            HubSpotError::Unavailable { retry_after, .. } => {
                ("outage", retry_after.unwrap_or(self.outage_pause))
            }
            _ => ("outage", self.outage_pause),
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
        if pause.as_ref().is_some_and(|pause| pause.reason == "auth") {
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
            let present = self.client.company_properties(&wanted).await?;
            let missing: Vec<String> = wanted
                .into_iter()
                .filter(|name| !present.iter().any(|property| &property.name == name))
                .collect();
            if !missing.is_empty() {
                self.status.pause(
                    "setup",
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

/// Why a batch stopped before its end.
enum Halt {
    /// HubSpot as a whole failed.
    HubSpot(HubSpotError),
    /// The portal lacks properties the bridge writes.
    Setup,
}

impl From<HubSpotError> for Halt {
    fn from(error: HubSpotError) -> Self {
        Self::HubSpot(error)
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

    fn finish(self, deferred: Option<(&'static str, Duration)>) -> Execution {
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
            Some(other) => other,
            None => match (deferred, self.reconcile_wait) {
                (Some((reason, wait)), reconcile) => Execution::Deferred {
                    reason,
                    wait: wait.max(reconcile.unwrap_or_default()),
                    actions,
                },
                // Not this notification's failure: wait for search to catch up, spending no attempt.
                (None, Some(wait)) => Execution::Deferred {
                    reason: "reconcile",
                    wait,
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
    async fn execute(&self, batch: &[Planned]) -> Vec<Execution> {
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
                ended: None,
                reconcile_wait: None,
            })
            .collect();

        let result: Result<(), Halt> = async {
            if !self.check_pause().await? {
                return Err(Halt::Setup);
            }
            companies::resolve(self, &mut work).await?;
            companies::write(self, &mut work).await?;
            activities::create_tasks(self, &mut work).await?;
            activities::create_notes(self, &mut work).await?;
            Ok(())
        }
        .await;
        let deferred = match result {
            Ok(()) => None,
            // The setup check has already paused the workers with its own message.
            Err(Halt::Setup) => Some(("setup", self.auth_probe)),
            // An answer that does not parse is retried like an outage, but spends attempts, so a
            // HubSpot that keeps answering garbage ends in `dead` with the excerpt, not a loop.
            Err(Halt::HubSpot(error @ HubSpotError::InvalidResponse { .. })) => {
                for item in &mut work {
                    item.fail(error.to_string(), false);
                }
                None
            }
            Err(Halt::HubSpot(error)) => Some(self.pause_for(&error, Utc::now()).await),
        };
        work.into_iter().map(|item| item.finish(deferred)).collect()
    }
}
