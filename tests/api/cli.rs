//! The binary's subcommands: check-config, serve's refusal, send and healthcheck.

use std::process::{Command, Output};

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
        "server:\n  bind: nowhere\nstorage:\n  url: postgres://db/x\nworkers:\n  count: 0\nhubspot:\n  actions:\n    MERGE: [create_task]\n",
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
    assert!(stderr.contains("not supported yet"));
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
    let samples = format!("{}/../shared/samples", env!("CARGO_MANIFEST_DIR"));
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
        "a 15 KB NDJSON file is split under a 4 KB limit:\n{stdout}"
    );
    assert_eq!(app.count("SELECT count(*) FROM notifications"), 26);

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
