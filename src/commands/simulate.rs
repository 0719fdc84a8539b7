//! `simulate FILE... [--dry-run] [--text]`: run D&B files through the same
//! mapper the server uses and print the HubSpot plan and its statistics.
//! Nothing is sent: simulate works offline, so company lookups are not made
//! and every DUNS is shown as it would be planned before resolution.
//!
//! With `--text`, the wording of every task and note is printed instead of
//! the plan summary, as plain text, company by company in the order the
//! service processes the notifications: each file is a delivery, processed
//! before the next one arrives, and within a file a company's notifications
//! go by `deliveryTimeStamp`. Each company's lifecycle is followed as the
//! service follows it (the same rules, kept in memory): a notification older
//! than one already processed is late and changes no field, a reversal
//! completes the open tasks it reverses, and a type whose task is still open
//! gets no second one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::cli::SimulateArgs;
use crate::config::Settings;
use crate::dnb::{BodyFormat, IncomingItem, Notification, NotificationType, parse_body};
use crate::hubspot::client::BATCH_LIMIT;
use crate::mapping::lifecycle::{CompanyState, TaskDecision, TaskRef};
use crate::mapping::plain::html_to_text;
use crate::mapping::{Action, Plan, TaskPriority, note_preview, plan, render};

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

/// One notification of the files with its plan.
struct Simulated {
    /// Which file (delivery) it came in, counted from 0.
    file: usize,
    /// The file and the item's position in it, such as `update.json #1`.
    source: String,
    /// Numbered from 1 in file order, as a fresh journal would number them.
    id: i64,
    notification: Notification,
    plan: Plan,
}

/// Prints the plan of every notification (or, with `--text`, the wording of
/// its tasks and notes) and the totals.
pub fn run(settings: &Settings, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let rules = settings.hubspot.action_rules();
    let mut statistics = Statistics::default();
    let mut simulated = Vec::new();
    for (file, path) in args.files.iter().enumerate() {
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
        if !args.text {
            println!("== {}", path.display());
        }
        for (index, item) in items.iter().enumerate() {
            let valid = match item {
                IncomingItem::Valid(valid) => valid,
                IncomingItem::Rejected(rejected) => {
                    statistics.rejected += 1;
                    let source = if args.text {
                        format!("{} #{index}", path.display())
                    } else {
                        format!("#{index}")
                    };
                    println!(
                        "{source} rejected: {} ({})",
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
            let id = simulated.len() as i64 + 1;
            let plan = plan(id, &notification, &rules);
            statistics.notifications += 1;
            statistics.dunses.insert(notification.duns.to_string());
            if !args.text {
                println!(
                    "#{index} {} {}",
                    notification.notification_type, notification.duns
                );
            }
            for action in &plan.actions {
                tally(action, &notification, &mut statistics);
                if !args.text {
                    describe(action);
                }
            }
            simulated.push(Simulated {
                file,
                source: format!("{} #{index}", path.display()),
                id,
                notification,
                plan,
            });
        }
    }
    if args.text {
        let dunses: Vec<String> = simulated
            .iter()
            .map(|one| one.notification.duns.to_string())
            .collect();
        let order = processing_order(
            &simulated
                .iter()
                .zip(&dunses)
                .map(|(one, duns)| (one.file, duns.as_str(), one.notification.delivered_at))
                .collect::<Vec<_>>(),
        );
        let lived = live_through(&simulated, &dunses, &order);
        let planned: Vec<PlannedNotification<'_>> = order
            .iter()
            .zip(&lived)
            .map(|(at, (plan, lifecycle))| {
                let one = &simulated[*at];
                PlannedNotification {
                    duns: &dunses[*at],
                    notification_id: one.id,
                    notification_type: one.notification.notification_type,
                    delivered_at: one.notification.delivered_at,
                    source: &one.source,
                    plan,
                    lifecycle,
                }
            })
            .collect();
        match print_wording(&mut io::stdout().lock(), &planned) {
            // A reader such as `head` that stops early is not an error.
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                return Ok(ExitCode::SUCCESS);
            }
            result => result?,
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

/// Counts what an action writes.
fn tally(action: &Action, notification: &Notification, statistics: &mut Statistics) {
    let duns = notification.duns.to_string();
    match action {
        Action::CreateTask { .. } => statistics.tasks += 1,
        Action::CreateNote { .. } => {
            statistics.notes_by_duns.insert(duns);
        }
        Action::UpdateProperty { .. } => {
            statistics.companies_updated.insert(duns);
        }
        Action::UpdateCompany {
            create_if_missing, ..
        } => {
            statistics.companies_updated.insert(duns.clone());
            if *create_if_missing {
                statistics.companies_maybe_created.insert(duns);
            }
        }
    }
}

/// Prints one line of the plan summary.
fn describe(action: &Action) {
    match action {
        Action::CreateTask {
            subject, priority, ..
        } => println!("    task ({priority:?}): {subject}"),
        Action::CreateNote { body } => {
            println!("    note: {} characters of HTML", body.chars().count());
        }
        Action::UpdateProperty { properties } => {
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
            let names: Vec<&str> = properties.keys().map(String::as_str).collect();
            let create = if *create_if_missing {
                " (creates the company if missing)"
            } else {
                ""
            };
            println!("    company fields{create}: {}", names.join(", "));
        }
    }
}

/// The order the service processes notifications in, as indexes into
/// `notifications` (each a file index, a DUNS and a `deliveryTimeStamp`, in
/// file order): company by company in order of first appearance, and within
/// a company file by file (each file is a delivery processed before the next
/// arrives), by `deliveryTimeStamp` within a file, then file order.
pub fn processing_order(notifications: &[(usize, &str, DateTime<Utc>)]) -> Vec<usize> {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (_, duns, _) in notifications {
        let next = first_seen.len();
        first_seen.entry(duns).or_insert(next);
    }
    let mut order: Vec<usize> = (0..notifications.len()).collect();
    // A stable sort keeps file order among equal timestamps.
    order.sort_by_key(|at| {
        let (file, duns, delivered_at) = notifications[*at];
        (first_seen[duns], file, delivered_at)
    });
    order
}

/// Follows each company's lifecycle through the notifications in processing `order`:
/// per notification, its plan as the company's state shapes it (no task where the rules
/// call one off, the note saying what became of it) and lines saying so.
fn live_through(
    simulated: &[Simulated],
    dunses: &[String],
    order: &[usize],
) -> Vec<(Plan, Vec<String>)> {
    let mut states: HashMap<&str, CompanyState> = HashMap::new();
    let id_of = |task: &TaskRef| match task {
        TaskRef::New(position) => format!("notification {}", simulated[order[*position]].id),
        TaskRef::Existing(id) => format!("task {id}"),
    };
    let mut lived = Vec::with_capacity(order.len());
    for (position, at) in order.iter().enumerate() {
        let one = &simulated[*at];
        let state = states.entry(dunses[*at].as_str()).or_default();
        let decision = state.apply(position, &one.notification, &one.plan);
        let mut lines = Vec::new();
        if let Some(newer) = decision.late_behind {
            lines.push(format!(
                "late: the company already shows an alert from {}; it writes only what no newer alert set",
                newer.to_rfc3339_opts(SecondsFormat::Millis, true)
            ));
        }
        match &decision.task {
            TaskDecision::AlreadyOpen(open) => lines.push(format!(
                "no task: the task of {} is still open",
                id_of(open)
            )),
            TaskDecision::Reversed(by, when) => lines.push(format!(
                "no task: a newer {by} (from {}) already reversed it",
                when.to_rfc3339_opts(SecondsFormat::Millis, true)
            )),
            TaskDecision::NotPlanned | TaskDecision::Create => {}
        }
        for task in &decision.completes {
            lines.push(format!("completes the open task of {}", id_of(task)));
        }
        let remarks = decision.remarks(decision.completes.len());
        let actions = one
            .plan
            .actions
            .iter()
            .filter(|action| {
                !matches!(action, Action::CreateTask { .. })
                    || decision.task == TaskDecision::Create
            })
            .map(|action| match action {
                Action::CreateNote { .. } => Action::CreateNote {
                    body: note_preview(one.id, &one.notification, remarks.clone()),
                },
                other => other.clone(),
            })
            .collect();
        lived.push((Plan { actions }, lines));
    }
    lived
}

/// One notification's plan, as [`print_wording`] shows it.
#[derive(Debug, Clone, Copy)]
pub struct PlannedNotification<'a> {
    /// The company's DUNS.
    pub duns: &'a str,
    /// The notification id the plan's texts carry in their markers.
    pub notification_id: i64,
    /// Its D&B type.
    pub notification_type: NotificationType,
    /// Its `deliveryTimeStamp`.
    pub delivered_at: DateTime<Utc>,
    /// Where it came from, such as `update.json #1`.
    pub source: &'a str,
    /// What the mapper planned for it, as the company's state shaped it.
    pub plan: &'a Plan,
    /// What the company's state made of it (late, no task, tasks completed), one per line.
    pub lifecycle: &'a [String],
}

/// Writes every task (subject, priority, body) and note of `notifications`
/// as plain text, for reading the wording before go-live. `notifications`
/// come in processing order; a company's heading starts where the DUNS
/// changes. Bodies are indented under their task or note, and the lines that
/// are notification markers (see [`render::marker`]) are set apart with a
/// `[marker]` prefix.
pub fn print_wording(
    out: &mut impl Write,
    notifications: &[PlannedNotification<'_>],
) -> io::Result<()> {
    let markers: HashSet<String> = notifications
        .iter()
        .map(|planned| render::marker(planned.notification_id))
        .collect();
    let mut company: Option<&str> = None;
    for planned in notifications {
        if company != Some(planned.duns) {
            company = Some(planned.duns);
            writeln!(out, "=== D-U-N-S {}", planned.duns)?;
            writeln!(out)?;
        }
        writeln!(
            out,
            "--- notification {}: {}, delivered {} ({})",
            planned.notification_id,
            planned.notification_type,
            planned
                .delivered_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            planned.source
        )?;
        for line in planned.lifecycle {
            writeln!(out, "> {line}")?;
        }
        writeln!(out)?;
        let mut texts = 0;
        for action in &planned.plan.actions {
            match action {
                Action::CreateTask {
                    subject,
                    body,
                    priority,
                } => {
                    let priority = match priority {
                        TaskPriority::High => "HIGH",
                        TaskPriority::Medium => "MEDIUM",
                    };
                    writeln!(out, "TASK [{priority}] {subject}")?;
                    write_body(out, body, &markers)?;
                }
                Action::CreateNote { body } => {
                    writeln!(out, "NOTE")?;
                    write_body(out, body, &markers)?;
                }
                Action::UpdateProperty { .. } | Action::UpdateCompany { .. } => continue,
            }
            texts += 1;
        }
        if texts == 0 {
            writeln!(out, "(no task or note)")?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// An HTML body as indented plain text, its marker lines set apart, and a blank line.
fn write_body(out: &mut impl Write, html: &str, markers: &HashSet<String>) -> io::Result<()> {
    writeln!(out)?;
    for line in html_to_text(html).lines() {
        if line.is_empty() {
            writeln!(out)?;
        } else if markers.contains(line) {
            writeln!(out, "    [marker] {line}")?;
        } else {
            writeln!(out, "    {line}")?;
        }
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn companies_keep_their_first_appearance_and_notifications_their_delivery_order() {
        let notifications = [
            (0, "111111111", at("2024-05-13T08:10:00Z")),
            (0, "222222222", at("2024-05-13T08:00:00Z")),
            (0, "111111111", at("2024-05-13T08:05:00Z")),
            (0, "111111111", at("2024-05-13T08:10:00Z")),
            (0, "222222222", at("2024-05-13T07:00:00Z")),
            (1, "111111111", at("2024-05-13T08:00:00Z")),
        ];
        // Equal timestamps (0 and 3) keep file order; a later file comes later, however old.
        assert_eq!(processing_order(&notifications), [2, 0, 3, 5, 4, 1]);
        assert_eq!(processing_order(&[]), Vec::<usize>::new());
    }

    #[test]
    fn the_wording_is_printed_per_company_as_indented_plain_text() {
        let delete = Plan {
            actions: vec![
                Action::CreateTask {
                    subject: "Acme & Co may be out of business".into(),
                    body: "<p>It&#39;s <strong>gone</strong>.</p>\n<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n\
                           <p>dnb-hubspot-bridge notification 7</p>"
                        .into(),
                    priority: TaskPriority::High,
                },
                Action::CreateNote {
                    body: "<p>Note&lt;1&gt;<br>second line</p>\n<p>dnb-hubspot-bridge notification 7</p>"
                        .into(),
                },
                Action::UpdateProperty {
                    properties: BTreeMap::new(),
                },
            ],
        };
        let silent = Plan {
            actions: vec![Action::UpdateProperty {
                properties: BTreeMap::new(),
            }],
        };
        let planned = [
            PlannedNotification {
                duns: "111111111",
                notification_id: 7,
                notification_type: NotificationType::Delete,
                delivered_at: at("2024-05-13T08:00:00Z"),
                source: "a.json #0",
                plan: &delete,
                lifecycle: &[],
            },
            PlannedNotification {
                duns: "111111111",
                notification_id: 9,
                notification_type: NotificationType::Update,
                delivered_at: at("2024-05-13T09:00:00Z"),
                source: "a.json #2",
                plan: &silent,
                lifecycle: &[],
            },
            PlannedNotification {
                duns: "222222222",
                notification_id: 8,
                notification_type: NotificationType::Update,
                delivered_at: at("2024-05-13T08:30:00Z"),
                source: "a.json #1",
                plan: &silent,
                lifecycle: &[],
            },
        ];
        let mut out = Vec::new();
        print_wording(&mut out, &planned).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "=== D-U-N-S 111111111\n\
             \n\
             --- notification 7: DELETE, delivered 2024-05-13T08:00:00.000Z (a.json #0)\n\
             \n\
             TASK [HIGH] Acme & Co may be out of business\n\
             \n\
             \x20   It's gone.\n\
             \n\
             \x20   - a\n\
             \x20   - b\n\
             \n\
             \x20   [marker] dnb-hubspot-bridge notification 7\n\
             \n\
             NOTE\n\
             \n\
             \x20   Note<1>\n\
             \x20   second line\n\
             \n\
             \x20   [marker] dnb-hubspot-bridge notification 7\n\
             \n\
             --- notification 9: UPDATE, delivered 2024-05-13T09:00:00.000Z (a.json #2)\n\
             \n\
             (no task or note)\n\
             \n\
             === D-U-N-S 222222222\n\
             \n\
             --- notification 8: UPDATE, delivered 2024-05-13T08:30:00.000Z (a.json #1)\n\
             \n\
             (no task or note)\n\
             \n"
        );
    }
}
