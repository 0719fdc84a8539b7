//! `Application`: opens the journal, binds the listener, starts the worker
//! pool (the delivery-file inbox when `dnb.files.inbox` is set, and the SFTP
//! fetch into it when `dnb.sftp.host` is set), and runs until the shutdown
//! token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::Settings;
use crate::dnb::direct_plus::DirectPlusClient;
use crate::dnb::pull::{self, Leadership, Puller};
use crate::files::{self, Importer};
use crate::http::state::Shared;
use crate::http::{AppState, router};
use crate::hubspot::{DryRunExecutor, Executor, HubSpotClient, HubSpotExecutor, HubSpotStatus};
use crate::journal::{self, Clock, Journal, JournalOptions};
use crate::retention;
use crate::signature::SigningSecret;
use crate::telemetry::Metrics;
use crate::worker::{Doorbell, PoolHandle, Processor, RetryPolicy, WorkerDeps, WorkerPool};

/// Parts a caller (a test) puts in place of the ones the settings select.
#[derive(Default)]
pub struct Overrides {
    /// The executor, instead of the one `hubspot.enabled` selects.
    pub executor: Option<Arc<dyn Executor>>,
    /// The clock the journal and the workers measure leases, retries and attempts in,
    /// instead of the system clock.
    pub clock: Option<Arc<dyn Clock>>,
}

/// A built, not yet serving, application.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    pool: PoolHandle,
    purge: tokio::task::JoinHandle<()>,
    /// The D&B pull loops, when `dnb.pull.enabled`.
    pull: Option<tokio::task::JoinHandle<()>>,
    inbox: Option<tokio::task::JoinHandle<()>>,
    /// The SFTP fetch, when `dnb.sftp.host` is set.
    sftp: Option<tokio::task::JoinHandle<()>>,
    shutdown: CancellationToken,
}

impl Application {
    /// Opens the journal, binds `server.bind` and starts the workers with the
    /// executor `hubspot.enabled` selects. The settings must have passed
    /// [`crate::config::validate`].
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        Self::build_with(settings, shutdown, Overrides::default()).await
    }

    /// [`Application::build`] with a given executor instead of the one `hubspot.enabled` selects.
    pub async fn build_with_executor(
        settings: Settings,
        shutdown: CancellationToken,
        executor: Arc<dyn Executor>,
    ) -> anyhow::Result<Self> {
        let overrides = Overrides {
            executor: Some(executor),
            ..Overrides::default()
        };
        Self::build_with(settings, shutdown, overrides).await
    }

    /// [`Application::build`] with the given parts in place of the ones the settings select.
    pub async fn build_with(
        settings: Settings,
        shutdown: CancellationToken,
        overrides: Overrides,
    ) -> anyhow::Result<Self> {
        let Overrides { executor, clock } = overrides;
        let clock = clock.unwrap_or_else(journal::clock::system);
        let secrets = settings
            .webhook
            .non_empty_secrets()
            .map(|secret| SigningSecret::parse(secret.expose_secret()))
            .collect::<Result<Vec<_>, _>>()
            .context("webhook.secrets")?;
        anyhow::ensure!(
            !secrets.is_empty(),
            "webhook.secrets: no signing secret configured"
        );
        // This process runs the workers, so with SQLite the claims a previous one left are its
        // to take back (a journal other processes share leaves them to their leases).
        let options = JournalOptions {
            clock: clock.clone(),
            take_back_claims: true,
        };
        let journal: Arc<dyn Journal> = journal::connect_with(&settings.storage, options)
            .await
            .with_context(|| format!("cannot open the journal at {}", settings.storage.url))?;
        let listener = TcpListener::bind(&settings.server.bind)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.bind))?;

        let metrics = Arc::new(Metrics::new());
        let hubspot = Arc::new(HubSpotStatus::new(
            settings.hubspot.enabled,
            metrics.clone(),
        ));
        // Replicas sharing a PostgreSQL journal share, through the same database, one HubSpot
        // budget, one D&B budget and one D&B poller per registration.
        let cluster = Cluster::for_storage(&settings.storage.url)
            .await
            .context("cannot open the cluster tables")?;
        let executor: Arc<dyn Executor> = match executor {
            Some(executor) => executor,
            None if settings.hubspot.enabled => {
                let client = HubSpotClient::with_cluster(
                    &settings.hubspot,
                    metrics.clone(),
                    cluster.clone(),
                )
                .context("HubSpot client")?;
                Arc::new(
                    HubSpotExecutor::new(
                        &settings.hubspot,
                        Arc::new(client),
                        journal.clone(),
                        hubspot.clone(),
                        metrics.clone(),
                    )
                    .with_cluster(cluster.clone()),
                )
            }
            None => Arc::new(DryRunExecutor),
        };
        let doorbell = Doorbell::new(settings.queue.capacity);
        // With a journal other processes share, their commits ring this process's workers too.
        let ring = doorbell.clone();
        journal.on_work(Arc::new(move || ring.ring()));
        let processor = Arc::new(Processor {
            rules: settings.hubspot.action_rules(),
            executor,
            retry: RetryPolicy::from_settings(&settings.workers),
            metrics: metrics.clone(),
            clock: clock.clone(),
        });
        let instance = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let leadership = cluster.clone().map(|cluster| Leadership {
            cluster,
            holder: instance.clone(),
            lease: Leadership::LEASE,
        });
        let pool = WorkerPool::start(
            &settings.workers,
            WorkerDeps {
                journal: journal.clone(),
                doorbell: doorbell.clone(),
                processor,
                instance,
                hubspot: hubspot.clone(),
                clock,
            },
            shutdown.child_token(),
        );
        // Work left pending by a previous run is picked up without waiting for a poll.
        doorbell.ring();
        let purge = retention::start(
            &settings.storage,
            journal.clone(),
            metrics.clone(),
            shutdown.child_token(),
        );
        let pull = if settings.dnb.pull.enabled {
            let mut client = DirectPlusClient::new(&settings.dnb).context("D&B client")?;
            if let Some(cluster) = &cluster {
                client = client.with_cluster(cluster.clone());
            }
            let puller = Puller {
                client: Arc::new(client),
                journal: journal.clone(),
                doorbell: Some(doorbell.clone()),
                metrics: metrics.clone(),
                max_notifications: settings.dnb.pull.max_notifications,
                interval: Duration::from_secs(settings.dnb.pull.interval_secs),
            };
            let registrations = settings.dnb.registrations.clone();
            Some(
                pull::start(
                    puller,
                    registrations,
                    None,
                    leadership,
                    shutdown.child_token(),
                )
                .await?,
            )
        } else {
            None
        };
        let inbox = (!settings.dnb.files.inbox.is_empty()).then(|| {
            let importer = Importer {
                metrics: Some(metrics.clone()),
                doorbell: Some(doorbell.clone()),
                ..Importer::new(journal.clone())
            };
            files::inbox::start(
                settings.dnb.files.inbox.clone().into(),
                importer,
                shutdown.child_token(),
            )
        });
        let sftp = (!settings.dnb.sftp.host.trim().is_empty()).then(|| {
            files::sftp::start(
                settings.dnb.sftp.clone(),
                settings.dnb.files.inbox.clone().into(),
                shutdown.child_token(),
            )
        });
        let state = Arc::new(Shared {
            journal,
            doorbell,
            settings: Arc::new(settings),
            secrets: Arc::new(secrets),
            metrics,
            hubspot,
        });
        Ok(Self {
            listener,
            state,
            pool,
            purge,
            pull,
            inbox,
            sftp,
            shutdown,
        })
    }

    /// The bound address (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until the token is cancelled, then stops accepting, lets workers
    /// finish their batch in hand and closes the journal.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            pool,
            purge,
            pull,
            inbox,
            sftp,
            shutdown,
        } = self;
        let grace = Duration::from_secs(state.settings.server.shutdown_timeout_secs);
        let journal = state.journal.clone();
        tracing::info!(address = %listener.local_addr()?, dry_run = !state.settings.hubspot.enabled, "serving");
        let served = axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        if let Err(error) = &served {
            tracing::error!(error = %error, "HTTP server failed");
            shutdown.cancel();
        }
        if tokio::time::timeout(grace, pool.wait_for_shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "workers did not finish within the shutdown timeout; their claims are taken back when the service starts again"
            );
        }
        let _ = purge.await;
        if let Some(pull) = pull {
            // The loops stop at the token; a call cut short leaves its registration marked
            // in flight, and the next start replays it.
            let _ = pull.await;
        }
        if let Some(inbox) = inbox {
            let _ = inbox.await;
        }
        if let Some(sftp) = sftp {
            // A download cut short leaves a `.part` file, which the next one overwrites.
            let _ = sftp.await;
        }
        journal.close().await;
        tracing::info!("stopped");
        served.context("HTTP server failed")
    }
}
