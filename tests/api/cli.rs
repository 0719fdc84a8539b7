//! The binary's subcommands: check-config, serve's refusal, send, healthcheck,
//! replay and simulate.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use dnb_hubspot_bridge::config::Settings;
use dnb_hubspot_bridge::dnb::{BodyFormat, IncomingItem, Notification, parse_body};
use dnb_hubspot_bridge::mapping::plain::html_to_text;
use dnb_hubspot_bridge::mapping::{Action, TaskPriority, plan, render};

use crate::helpers::*;

fn bridge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"));
    command
        .args(args)
        .env_remove("BRIDGE_WEBHOOK_SECRET")
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_redacts_secrets_and_accepts_the_repository_config() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
    let token = "pat-na1-very-secret-token-value";
    let output = bridge(
        &["--config", config, "check-config"],
        &[
            ("BRIDGE_WEBHOOK_SECRET", SECRET),
            ("HUBSPOT_API_TOKEN", token),
            ("BRIDGE_ADMIN_TOKEN", "admin-secret-token"),
        ],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("configuration is valid"));
    for secret in [token, "admin-secret-token", SECRET] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
    assert!(stdout.contains("REDACTED"));
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "server:\n  bind: nowhere\nstorage:\n  url: mysql://db/x\nworkers:\n  count: 0\nhubspot:\n  actions:\n    MERGE: [create_task]\n",
    )
    .unwrap();
    let output = bridge(&["--config", config.to_str().unwrap(), "check-config"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    for key in [
        "server.bind",
        "webhook.secrets",
        "storage.url",
        "workers.count",
        "hubspot.actions",
    ] {
        assert!(stderr.contains(key), "{key} not reported:\n{stderr}");
    }
    assert!(stderr.contains("must be sqlite://PATH or postgres://"));
}

#[test]
fn serve_refuses_to_start_without_a_webhook_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "server:\n  bind: 127.0.0.1:0\n").unwrap();
    let output = bridge(&["--config", config.to_str().unwrap(), "serve"], &[]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("webhook.secrets"));
}

#[tokio::test]
async fn send_signs_and_posts_samples_and_healthcheck_probes_the_service() {
    let app = spawn_app().await;
    let base = format!("http://{}", app.address);
    let samples = samples_dir().display().to_string();
    let (exit, reviewed, ndjson) = (
        format!("{samples}/exit.json"),
        format!("{samples}/reviewed.json"),
        format!("{samples}/{NDJSON_SAMPLE}"),
    );
    let args = [
        "send",
        &exit,
        &reviewed,
        &ndjson,
        "--url",
        &base,
        "--secret",
        SECRET,
        "--max-body-bytes",
        "4096",
    ]
    .map(String::from);
    let output =
        tokio::task::spawn_blocking(move || bridge(&args.each_ref().map(String::as_str), &[]))
            .await
            .unwrap();
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("(part 1/"),
        "a 16 KB NDJSON file is split under a 4 KB limit:\n{stdout}"
    );
    assert_eq!(app.count("SELECT count(*) FROM notifications"), 23);

    let health = format!("{base}/health");
    let healthy =
        tokio::task::spawn_blocking(move || bridge(&["healthcheck", "--url", &health], &[]))
            .await
            .unwrap();
    assert!(healthy.status.success());
    let unhealthy = bridge(&["healthcheck", "--url", "http://127.0.0.1:9/health"], &[]);
    assert_eq!(unhealthy.status.code(), Some(1));
}

#[tokio::test]
async fn the_replay_command_counts_then_re_enqueues_on_the_journal() {
    let app = spawn_app().await;
    app.accept(sample("update.json"), "application/json").await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'done'",
        2,
    )
    .await;
    let stopped = app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  url: \"sqlite://{}\"\n",
            stopped.db_path.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();

    let dry = bridge(
        &[
            "--config",
            &config,
            "replay",
            "--type",
            "UPDATE",
            "--dry-run",
        ],
        &[],
    );
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("matched 2 enqueued 0"),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(
        stopped.count("SELECT count(*) FROM notifications WHERE status = 'pending'"),
        0
    );

    let real = bridge(
        &[
            "--config", &config, "replay", "--id", "1", "--id", "99", "--id", "x",
        ],
        &[],
    );
    assert!(
        text(&real.stdout).contains("matched 1 enqueued 1"),
        "{}",
        text(&real.stdout)
    );
    assert!(text(&real.stdout).contains("unknown ids: 99, x"));
    assert_eq!(
        stopped.count("SELECT count(*) FROM notifications WHERE status = 'pending'"),
        1
    );
}

#[test]
fn simulate_text_prints_the_wording_per_company_in_processing_order() {
    // delete.json's DELETE (07:05) arrives after the NDJSON file's SEEDs (07:13),
    // its own DELETE (07:52) and the UNDELETE that reversed it (08:20).
    simulate_text_over(
        &samples_dir(),
        NDJSON_SAMPLE,
        33,
        "735019482",
        &["SEED", "SEED", "UPDATE", "DELETE", "UNDELETE", "DELETE"],
    );
}

#[test]
fn simulate_text_over_the_shared_acceptance_samples() {
    let Some(shared) = shared_samples("simulate_text_over_the_shared_acceptance_samples") else {
        return;
    };
    // delete.json's DELETE (08:03) arrives after the NDJSON file's SEED (08:10) and later
    // alerts of the same company.
    simulate_text_over(
        &shared,
        "SAMPLE_REGISTRATION_20240513080000_NOTIFICATION_1.ndjson",
        36,
        "502329781",
        &["SEED", "REMOVED", "EXIT", "DELETE"],
    );
}

/// `simulate --text` over a samples folder: the NDJSON file, then every `.json` file.
/// `late_duns`'s notifications are shown as `late_kinds`, the last one the DELETE of
/// `delete.json`, which arrives late.
fn simulate_text_over(
    samples: &Path,
    ndjson: &str,
    total: i64,
    late_duns: &str,
    late_kinds: &[&str],
) {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
    // The NDJSON file first: the one-notification files hold earlier
    // notifications of some of its companies, which must be shown first.
    let mut files = vec![samples.join(ndjson).display().to_string()];
    let mut singles: Vec<String> = std::fs::read_dir(samples)
        .expect("the samples folder")
        .map(|entry| entry.unwrap().path().display().to_string())
        .filter(|path| path.ends_with(".json"))
        .collect();
    singles.sort();
    files.extend(singles);
    let mut args = vec!["--config", config, "simulate", "--text"];
    args.extend(files.iter().map(String::as_str));
    let output = bridge(&args, &[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );

    // Plain words: no tag or character reference is left, and no plan summary.
    for html in [
        "<p", "</", "<br", "<ul", "<li", "<strong", "&amp;", "&lt;", "&gt;", "&#39;", "&quot;",
    ] {
        assert!(!stdout.contains(html), "{html} in:\n{stdout}");
    }
    assert!(stdout.contains("D&B"));
    assert!(!stdout.contains("characters of HTML"));

    // Each notification's section: its header line to the next one.
    let mut sections: BTreeMap<i64, String> = BTreeMap::new();
    for part in stdout.split("--- notification ").skip(1) {
        let (id, _) = part.split_once(':').unwrap();
        sections.insert(id.parse().unwrap(), part.to_string());
    }

    // Every note's lines and every task's subject, priority and body, as the mapper
    // words them (numbered from 1 in file order), in its notification's section; a
    // planned task the company's lifecycle calls off says why instead.
    let settings = Settings::load(Path::new(config)).expect("the repository config loads");
    let rules = settings.hubspot.action_rules();
    let mut id = 0;
    let mut file_of: BTreeMap<i64, usize> = BTreeMap::new();
    let (mut tasks, mut called_off, mut notes) = (0, 0, 0);
    for (file_index, file) in files.iter().enumerate() {
        let format = if file.ends_with(".ndjson") {
            BodyFormat::Ndjson
        } else {
            BodyFormat::Json
        };
        for item in parse_body(format, &std::fs::read(file).unwrap()).unwrap() {
            let IncomingItem::Valid(valid) = item else {
                continue;
            };
            id += 1;
            file_of.insert(id, file_index);
            let section = &sections[&id];
            let value = serde_json::from_str(&valid.canonical).unwrap();
            let notification = Notification::from_value(&value).unwrap();
            for action in plan(id, &notification, &rules).actions {
                let body = match action {
                    Action::CreateTask {
                        subject,
                        body,
                        priority,
                    } => {
                        let priority = match priority {
                            TaskPriority::High => "HIGH",
                            TaskPriority::Medium => "MEDIUM",
                        };
                        if section.contains("\n> no task: ") {
                            called_off += 1;
                            continue;
                        }
                        tasks += 1;
                        let heading = format!("\nTASK [{priority}] {subject}\n");
                        assert!(section.contains(&heading), "{heading} missing");
                        body
                    }
                    Action::CreateNote { body } => {
                        notes += 1;
                        body
                    }
                    _ => continue,
                };
                for line in html_to_text(&body).lines().filter(|line| !line.is_empty()) {
                    let shown = if line == render::marker(id) {
                        format!("\n    [marker] {line}\n")
                    } else {
                        format!("\n    {line}\n")
                    };
                    assert!(section.contains(&shown), "{shown:?} missing in {section}");
                }
            }
        }
    }
    assert_eq!(id, total, "the samples hold {total} notifications");
    assert!(tasks > 0 && notes > 0);
    assert_eq!(stdout.matches("\nTASK [").count(), tasks);
    assert_eq!(stdout.matches("\n> no task: ").count(), called_off);
    assert_eq!(stdout.matches("\nNOTE\n").count(), notes);

    // One heading per company; within it, notifications file by file (each file is a
    // delivery), by deliveryTimeStamp within a file, then file order.
    let mut companies: BTreeMap<String, Vec<(usize, String, i64, String)>> = BTreeMap::new();
    let mut company = String::new();
    for line in stdout.lines() {
        if let Some(duns) = line.strip_prefix("=== D-U-N-S ") {
            assert!(!companies.contains_key(duns), "{duns} is shown twice");
            company = duns.to_string();
            companies.insert(company.clone(), Vec::new());
        } else if let Some(header) = line.strip_prefix("--- notification ") {
            let (id, rest) = header.split_once(": ").unwrap();
            let (kind, rest) = rest.split_once(", delivered ").unwrap();
            let (delivered, _) = rest.split_once(' ').unwrap();
            let id: i64 = id.parse().unwrap();
            companies
                .get_mut(&company)
                .expect("a company heading first")
                .push((file_of[&id], delivered.to_string(), id, kind.to_string()));
        }
    }
    assert_eq!(
        companies.values().map(Vec::len).sum::<usize>() as i64,
        total
    );
    for (duns, shown) in &companies {
        let mut sorted = shown.clone();
        sorted.sort();
        assert_eq!(shown, &sorted, "{duns} is not in processing order");
    }
    // The late DELETE changes no field and its note says so.
    let kinds: Vec<&str> = companies[late_duns]
        .iter()
        .map(|(_, _, _, kind)| kind.as_str())
        .collect();
    assert_eq!(kinds, late_kinds);
    let delete = &sections[&companies[late_duns][late_kinds.len() - 1].2];
    assert!(delete.contains("\n> late: "), "{delete}");
    assert!(delete.contains("This alert arrived late"), "{delete}");
}
