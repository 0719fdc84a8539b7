//! `replay`: re-drive stored notifications directly on the journal, as
//! `POST /replay` does, with a progress bar on long runs. A running service
//! picks the re-enqueued notifications up at its next poll.

use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ReplayArgs;
use crate::config::Settings;
use crate::http::admin::FilterInput;
use crate::http::admin::replay::{matching, replay_ids};
use crate::journal::{self, NotificationId};

/// Replays by ids or by filter and prints what matched and was enqueued.
pub async fn run(settings: &Settings, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let journal = journal::connect(&settings.storage)
        .await
        .with_context(|| format!("cannot open the journal at {}", settings.storage.url))?;
    let mut unknown = Vec::new();
    let ids: Vec<NotificationId> = if args.ids.is_empty() {
        let filter = FilterInput {
            status: args.status,
            notification_type: args.notification_type,
            duns: args.duns,
            since: args.since,
            until: args.until,
        }
        .parse("--")
        .map_err(|error| anyhow::anyhow!("{error}"))?;
        matching(journal.as_ref(), &filter).await?
    } else {
        let parsed: Vec<(String, Option<NotificationId>)> = args
            .ids
            .into_iter()
            .map(|text| (text.clone(), text.parse().ok()))
            .collect();
        let numbers: Vec<NotificationId> = parsed.iter().filter_map(|(_, id)| *id).collect();
        let existing = journal.existing(&numbers).await?;
        parsed
            .into_iter()
            .filter_map(|(text, id)| match id {
                Some(id) if existing.contains(&id) => Some(id),
                _ => {
                    unknown.push(text);
                    None
                }
            })
            .collect()
    };
    let bar = if ids.len() > 1000 {
        let bar = ProgressBar::new(ids.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} notifications ({eta})")
                .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let outcome = replay_ids(journal.as_ref(), &ids, args.dry_run, |count| {
        bar.inc(count as u64)
    })
    .await?;
    bar.finish_and_clear();
    journal.close().await;
    println!(
        "matched {} enqueued {}{}",
        outcome.matched,
        outcome.enqueued,
        if args.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    if !unknown.is_empty() {
        println!("unknown ids: {}", unknown.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
