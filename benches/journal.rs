//! The SQLite journal alone: `make bench-journal`.
//!
//! 32 tasks on one single-threaded runtime append signed-request-sized deliveries
//! (1, then 10 notifications each, unique DUNS and content) to a fresh journal for
//! `BENCH_SECONDS` (default 5) with no workers and no HTTP, so the figure is the
//! writer's ceiling for the ingest path. Run it pinned to one core
//! (`taskset -c 0`, as the Makefile target does) to compare with `bench-ingest`.
//! `BENCH_SYNCHRONOUS=normal` measures `storage.synchronous: normal`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dnb_hubspot_bridge::config::{SqliteSynchronous, StorageSettings};
use dnb_hubspot_bridge::dnb::{BodyFormat, parse_body};
use dnb_hubspot_bridge::journal::{self, Delivery};

const APPENDERS: u64 = 32;

fn main() {
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5);
    let synchronous = match std::env::var("BENCH_SYNCHRONOUS").as_deref() {
        Ok("normal") => SqliteSynchronous::Normal,
        _ => SqliteSynchronous::Full,
    };
    println!(
        "journal alone: {APPENDERS} appenders, {seconds} s per phase, synchronous {synchronous:?}"
    );
    for per_request in [1, 10] {
        let rate = run(per_request, Duration::from_secs(seconds), synchronous);
        println!(
            "{per_request:>2} notification(s)/request: {rate:>8.0} requests/s, {:>8.0} notifications/s",
            rate * per_request as f64
        );
    }
}

/// Appends for `window` and returns requests per second.
fn run(per_request: usize, window: Duration, synchronous: SqliteSynchronous) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("temporary directory");
        let settings = StorageSettings {
            url: format!("sqlite://{}", dir.path().join("journal.db").display()),
            synchronous,
            ..StorageSettings::default()
        };
        let journal = journal::connect(&settings).await.expect("journal");
        let appended = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + window;
        let appenders: Vec<_> = (0..APPENDERS)
            .map(|appender| {
                let (journal, appended) = (journal.clone(), appended.clone());
                tokio::spawn(async move {
                    let mut sequence = 0u64;
                    while Instant::now() < deadline {
                        sequence += 1;
                        let delivery = delivery(appender, sequence, per_request);
                        journal.append(delivery).await.expect("append");
                        appended.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for appender in appenders {
            appender.await.expect("appender");
        }
        let rate = appended.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        journal.close().await;
        rate
    })
}

/// A delivery of `count` unique UPDATE notifications with scattered DUNS.
fn delivery(appender: u64, sequence: u64, count: usize) -> Delivery {
    let now = chrono::Utc::now();
    let delivered = now.format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let items: Vec<String> = (0..count as u64)
        .map(|item| {
            let duns = ((appender << 40 | sequence << 8 | item) * 387_420_489) % 1_000_000_000;
            format!(
                r#"{{"type":"UPDATE","organization":{{"duns":"{duns:09}"}},"elements":[{{"element":"organization.primaryName","previous":"Northwind Pharma Ltd","current":"Northwind Group Inc.","timestamp":"2024-05-13T02:01:46Z"}}],"deliveryTimeStamp":"{delivered}"}}"#
            )
        })
        .collect();
    let body = format!("[{}]", items.join(","));
    Delivery {
        webhook_id: format!(
            "msg_{:016x}",
            (appender << 40 | sequence).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ),
        received_at: now,
        items: parse_body(BodyFormat::Json, body.as_bytes()).expect("valid body"),
        checkpoint: None,
    }
}
