//! `simulate FILE... [--dry-run]`: run D&B files through the same mapper the
//! server uses and print the HubSpot plan and its statistics. Nothing is sent:
//! simulate works offline, so company lookups are not made and every DUNS is
//! shown as it would be planned before resolution.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::cli::SimulateArgs;
use crate::config::Settings;
use crate::dnb::{BodyFormat, IncomingItem, Notification, parse_body};
use crate::hubspot::client::BATCH_LIMIT;
use crate::mapping::{Action, plan};

#[derive(Default)]
struct Statistics {
    notifications: usize,
    rejected: usize,
    companies_updated: BTreeSet<String>,
    companies_maybe_created: BTreeSet<String>,
    dunses: BTreeSet<String>,
    tasks: usize,
    notes_by_duns: BTreeSet<String>,
}

fn batches(count: usize) -> usize {
    count.div_ceil(BATCH_LIMIT)
}

/// Prints the plan of every notification and the totals.
pub fn run(settings: &Settings, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let rules = settings.hubspot.action_rules();
    let mut statistics = Statistics::default();
    for path in &args.files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let ndjson = path
            .extension()
            .is_some_and(|extension| extension == "ndjson" || extension == "jsonl");
        let format = if ndjson {
            BodyFormat::Ndjson
        } else {
            BodyFormat::Json
        };
        let items = parse_body(format, &bytes)
            .with_context(|| format!("{} is not a D&B file", path.display()))?;
        println!("== {}", path.display());
        for (index, item) in items.iter().enumerate() {
            let valid = match item {
                IncomingItem::Valid(valid) => valid,
                IncomingItem::Rejected(rejected) => {
                    statistics.rejected += 1;
                    println!(
                        "#{index} rejected: {} ({})",
                        rejected.rejection.reason.as_str(),
                        rejected.rejection.detail
                    );
                    continue;
                }
            };
            let value: serde_json::Value =
                serde_json::from_str(&valid.canonical).expect("canonical JSON parses");
            let notification =
                Notification::from_value(&value).expect("a valid item is a notification");
            statistics.notifications += 1;
            statistics.dunses.insert(notification.duns.to_string());
            println!(
                "#{index} {} {}",
                notification.notification_type, notification.duns
            );
            for action in plan(index as i64, &notification, &rules).actions {
                describe(&action, &notification, &mut statistics);
            }
        }
    }
    let companies_written = statistics.companies_updated.len();
    let calls = batches(statistics.dunses.len())
        + batches(companies_written)
        + batches(statistics.companies_maybe_created.len())
        + batches(statistics.tasks)
        + batches(statistics.notes_by_duns.len());
    println!();
    println!("notifications         {}", statistics.notifications);
    println!("rejected (errors)     {}", statistics.rejected);
    println!(
        "companies updated     {companies_written} (at most; a DUNS without a company is skipped)"
    );
    println!(
        "companies created     {} at most (SEED/FULL_PRODUCT for a DUNS with no company)",
        statistics.companies_maybe_created.len()
    );
    println!("tasks created         {}", statistics.tasks);
    println!(
        "notes created         {} (one per DUNS when processed in one batch)",
        statistics.notes_by_duns.len()
    );
    println!(
        "API calls             {calls} (batch calls of up to {BATCH_LIMIT}, if all is processed in one batch)"
    );
    println!(
        "processing time       {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(ExitCode::SUCCESS)
}

fn describe(action: &Action, notification: &Notification, statistics: &mut Statistics) {
    let duns = notification.duns.to_string();
    match action {
        Action::CreateTask {
            subject, priority, ..
        } => {
            statistics.tasks += 1;
            println!("    task ({priority:?}): {subject}");
        }
        Action::CreateNote { body } => {
            statistics.notes_by_duns.insert(duns);
            println!("    note: {} characters of HTML", body.chars().count());
        }
        Action::UpdateProperty { properties } => {
            statistics.companies_updated.insert(duns);
            let fields: Vec<String> = properties
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            println!("    alert fields: {}", fields.join(", "));
        }
        Action::UpdateCompany {
            properties,
            create_if_missing,
        } => {
            statistics.companies_updated.insert(duns.clone());
            if *create_if_missing {
                statistics.companies_maybe_created.insert(duns);
            }
            let names: Vec<&String> = properties.keys().collect();
            let create = if *create_if_missing {
                " (creates the company if missing)"
            } else {
                ""
            };
            println!(
                "    company fields{create}: {}",
                names
                    .iter()
                    .map(|name| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}
