//! `pull`: poll D&B Direct+ monitoring for the configured registrations and journal what
//! arrives, as `serve` does when `dnb.pull.enabled`. A running service processes what
//! this command journals at its next poll.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::cli::PullArgs;
use crate::cluster::Cluster;
use crate::config::{ConfigError, Settings, validate};
use crate::dnb::direct_plus::DirectPlusClient;
use crate::dnb::pull::{self, Leadership, Puller};
use crate::journal;
use crate::shutdown;
use crate::telemetry::Metrics;

/// Pulls until drained (`--once`) or until SIGINT/SIGTERM.
pub async fn run(settings: &Settings, args: PullArgs) -> anyhow::Result<ExitCode> {
    // `pull` never answers webhooks, so it needs no signing secret.
    let mut errors: Vec<ConfigError> = validate(settings)
        .into_iter()
        .filter(|error| error.key != "webhook.secrets")
        .collect();
    errors.extend(pull_problems(settings));
    if !errors.is_empty() {
        for error in &errors {
            eprintln!("error: config: {error}");
        }
        bail!("{} configuration problem(s)", errors.len());
    }
    let replay_from = args
        .replay_from
        .as_deref()
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .with_context(|| format!("--replay-from {text:?} is not an RFC 3339 time"))
        })
        .transpose()?;
    let registrations = if args.registrations.is_empty() {
        settings.dnb.registrations.clone()
    } else {
        args.registrations
    };
    if registrations.is_empty() {
        bail!("no registration to pull: set dnb.registrations or pass --registration");
    }
    let journal = journal::connect(&settings.storage)
        .await
        .with_context(|| format!("cannot open the journal at {}", settings.storage.url))?;
    // Beside `serve` replicas sharing a PostgreSQL journal: one D&B budget with them, and
    // (looping) turns with them at each registration's lease.
    let cluster = Cluster::for_storage(&settings.storage.url)
        .await
        .context("cannot open the cluster tables")?;
    let mut client = DirectPlusClient::new(&settings.dnb).context("D&B client")?;
    if let Some(cluster) = &cluster {
        client = client.with_cluster(cluster.clone());
    }
    let puller = Puller {
        client: Arc::new(client),
        journal: journal.clone(),
        doorbell: None,
        metrics: Arc::new(Metrics::new()),
        max_notifications: settings.dnb.pull.max_notifications,
        interval: Duration::from_secs(settings.dnb.pull.interval_secs),
    };
    let code = if args.once {
        let rounds = futures::future::join_all(
            registrations
                .iter()
                .map(|registration| puller.once(registration, replay_from)),
        )
        .await;
        let mut failed = false;
        for (registration, round) in registrations.iter().zip(rounds) {
            match round {
                Ok(report) => println!(
                    "{registration}: pulled {}, replayed {}, journaled {} new, {} duplicates, {} rejected",
                    report.pulled,
                    report.replayed,
                    report.accepted,
                    report.duplicates,
                    report.rejected
                ),
                Err(error) => {
                    failed = true;
                    println!("{registration}: failed: {error}");
                }
            }
        }
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    } else {
        let stop = CancellationToken::new();
        shutdown::cancel_on_signal(stop.clone());
        let leadership = cluster.map(|cluster| Leadership {
            cluster,
            holder: format!(
                "pull-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            lease: Leadership::LEASE,
        });
        let loops = pull::start(puller, registrations, replay_from, leadership, stop).await?;
        let _ = loops.await;
        ExitCode::SUCCESS
    };
    journal.close().await;
    Ok(code)
}

/// What pulling needs beyond a valid config: the Direct+ credentials.
fn pull_problems(settings: &Settings) -> Vec<ConfigError> {
    crate::config::validate::pull_credentials(&settings.dnb)
}
