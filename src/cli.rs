//! Command-line interface: a global `--config` and one subcommand per task.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Turns D&B monitoring alerts into HubSpot tasks, notes and company updates.
#[derive(Debug, Parser)]
#[command(name = "dnb-hubspot-bridge", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        default_value = "config.yaml",
        env = "BRIDGE_CONFIG"
    )]
    pub config: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service and the worker pool.
    Serve,
    /// Load, interpolate and validate the config; print it with secrets redacted.
    CheckConfig,
    /// Sign D&B files (Standard Webhooks) and POST them to a bridge, as a relay would.
    Send(SendArgs),
    /// Exit 0 when GET /health answers 200.
    Healthcheck(HealthcheckArgs),
    /// Check the HubSpot token, scopes and properties; a verdict per check.
    TestConnection,
    /// Create the HubSpot company properties the service writes (idempotent).
    Bootstrap(BootstrapArgs),
    /// Run D&B files through the mapper and print the HubSpot plan; never writes to HubSpot.
    Simulate(SimulateArgs),
    /// Re-drive stored notifications, as `POST /replay` does, directly on the journal.
    Replay(ReplayArgs),
    /// Poll D&B Direct+ monitoring for the configured registrations and journal what arrives.
    Pull(PullArgs),
    /// Journal D&B delivery files (NOTIFICATION, SEEDFILE, EXCEPTIONS; checked against their
    /// HEADER manifest when present); a file already imported is skipped.
    Import(ImportArgs),
    /// Copy a SQLite journal into a PostgreSQL one (resumable; counts verified). Stop the
    /// service first.
    #[command(long_about = MIGRATE_JOURNAL_ABOUT)]
    MigrateJournal(MigrateJournalArgs),
}

const MIGRATE_JOURNAL_ABOUT: &str = "\
Copy a SQLite journal into a PostgreSQL one: every notification (ids kept), attempt, action,
replay, delivery record, registration checkpoint, imported file and D&B exception.

Stop the service that uses the SQLite journal first: the file is opened read-only and read in
one snapshot, and what the service writes afterwards is not copied. The SQLite journal must be
at the latest schema (open it once with this version's `serve`); an older file is refused and
nothing is written. The PostgreSQL schema is created or brought up to date. The target must be
new and empty, or hold only what an earlier run of this copy left: a journal that holds
notifications the SQLite file does not is refused.

Rows are copied in chunks, each committed on its own; rows already there are left alone, so an
interrupted run resumes when run again and a second run copies nothing. Notifications that were
`processing` arrive `pending`, without their claim. At the end the id sequences move past the
copied ids, the status changes are folded into `status_counts` and the counts are verified
(rows per table, notifications per status, the status totals); a mismatch exits non-zero. Exit
codes: 0 copied and verified, 1 error or mismatch, 3 stopped by --max-chunks.";

/// Arguments of `migrate-journal`.
#[derive(Debug, clap::Args)]
pub struct MigrateJournalArgs {
    /// The SQLite journal: sqlite://PATH.
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL journal: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?options].
    #[arg(long, env = "BRIDGE_MIGRATE_TO", hide_env_values = true)]
    pub to: String,
    /// Rows per chunk (one transaction each).
    #[arg(long, default_value_t = 5000)]
    pub chunk_size: usize,
    /// Stop after this many chunks, as an interrupted run would (a later run resumes).
    #[arg(long)]
    pub max_chunks: Option<u64>,
}

/// Arguments of `pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Pull until D&B has nothing pending, then exit (non-zero when a registration failed).
    #[arg(long)]
    pub once: bool,
    /// Only this registration reference (repeatable) [default: dnb.registrations].
    #[arg(long = "registration")]
    pub registrations: Vec<String>,
    /// First re-read D&B's replay window from this time (RFC 3339; D&B keeps 14 days).
    #[arg(long)]
    pub replay_from: Option<String>,
}

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Delivery files (`.zip`, `.txt`, `.ndjson`, `_HEADER.json`) or folders holding them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Count and validate only; journal nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `replay`: ids, or a filter.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Journal ids (repeatable); when given, the filter options must not be.
    #[arg(long = "id", conflicts_with_all = ["status", "notification_type", "duns", "since", "until"])]
    pub ids: Vec<String>,
    /// Status word.
    #[arg(long)]
    pub status: Option<String>,
    /// D&B type (or UNKNOWN).
    #[arg(long = "type")]
    pub notification_type: Option<String>,
    /// DUNS.
    #[arg(long)]
    pub duns: Option<String>,
    /// Received at or after (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Received before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only count what would be replayed.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `bootstrap`.
#[derive(Debug, clap::Args)]
pub struct BootstrapArgs {
    /// Only say what would be created.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// D&B files: Direct+ JSON responses, notification arrays or NDJSON NOTIFICATION files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// No network at all (simulate never contacts HubSpot in this version either way).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the wording instead of the plan summary: each task's subject, priority and
    /// body and each note as plain text, company by company in processing order.
    #[arg(long)]
    pub text: bool,
}

/// Arguments of `send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// D&B files: Direct+ JSON responses, notification arrays or NDJSON NOTIFICATION files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The bridge: a base URL or the full webhook URL [default: http://<server.bind>/webhooks/dnb].
    #[arg(long)]
    pub url: Option<String>,
    /// Signing secret (`whsec_...`) [default: the first of webhook.secrets].
    #[arg(long, env = "BRIDGE_SEND_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Split bodies larger than this [default: webhook.max_body_bytes].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
}

/// Arguments of `healthcheck`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// Health URL [default: http://<server.bind>/health].
    #[arg(long)]
    pub url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_is_global() {
        let cli = Cli::try_parse_from(["dnb-hubspot-bridge", "check-config", "--config", "x.yaml"])
            .unwrap();
        assert_eq!(cli.config, PathBuf::from("x.yaml"));
    }
}
