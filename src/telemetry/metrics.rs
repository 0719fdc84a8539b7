//! Every metric the service exports, by name, with its help text.
//!
//! Each application owns its own Prometheus recorder (no process-global
//! state), so two apps in one test process count independently. Every metric
//! is described, and every series of a closed label set registered at zero,
//! at start-up: `# HELP` and `# TYPE` lines are present before the first event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::dnb::{NotificationType, RejectReason};
use crate::journal::{JournalStats, Status};

/// `bridge_notifications_received_total{type}`: notifications newly journaled (accepted or rejected).
pub const RECEIVED: &str = "bridge_notifications_received_total";
/// `bridge_notifications_duplicate_total`: items answered as duplicates.
pub const DUPLICATES: &str = "bridge_notifications_duplicate_total";
/// `bridge_notifications_processed_total{type,outcome}`.
pub const PROCESSED: &str = "bridge_notifications_processed_total";
/// `bridge_webhook_rejected_total{reason}`: refused requests and rejected items.
pub const WEBHOOK_REJECTED: &str = "bridge_webhook_rejected_total";
/// `bridge_journal_notifications{status}`.
pub const JOURNAL_NOTIFICATIONS: &str = "bridge_journal_notifications";
/// `bridge_queue_depth`: pending notifications.
pub const QUEUE_DEPTH: &str = "bridge_queue_depth";
/// `bridge_backlog_oldest_age_seconds`.
pub const BACKLOG_AGE: &str = "bridge_backlog_oldest_age_seconds";
/// `bridge_processing_seconds`: receipt to processed.
pub const PROCESSING_SECONDS: &str = "bridge_processing_seconds";
/// `bridge_hubspot_companies_updated_total`.
pub const COMPANIES_UPDATED: &str = "bridge_hubspot_companies_updated_total";
/// `bridge_hubspot_companies_created_total`.
pub const COMPANIES_CREATED: &str = "bridge_hubspot_companies_created_total";
/// `bridge_hubspot_tasks_created_total`.
pub const TASKS_CREATED: &str = "bridge_hubspot_tasks_created_total";
/// `bridge_hubspot_tasks_completed_total`: open tasks completed by a reversing alert.
pub const TASKS_COMPLETED: &str = "bridge_hubspot_tasks_completed_total";
/// `bridge_hubspot_notes_created_total`.
pub const NOTES_CREATED: &str = "bridge_hubspot_notes_created_total";
/// `bridge_hubspot_api_calls_total{endpoint,status}`.
pub const API_CALLS: &str = "bridge_hubspot_api_calls_total";
/// `bridge_hubspot_api_errors_total`.
pub const API_ERRORS: &str = "bridge_hubspot_api_errors_total";
/// `bridge_hubspot_paused{reason}`: 1 while workers are paused for that reason.
pub const HUBSPOT_PAUSED: &str = "bridge_hubspot_paused";
/// `bridge_journal_size_bytes`: the journal's files on disk.
pub const JOURNAL_SIZE: &str = "bridge_journal_size_bytes";
/// `bridge_journal_purged_total`: finished notifications removed by retention.
pub const JOURNAL_PURGED: &str = "bridge_journal_purged_total";
/// `bridge_dnb_files_imported_total{kind,outcome}`: D&B delivery files by kind and outcome.
pub const FILES_IMPORTED: &str = "bridge_dnb_files_imported_total";
/// `bridge_dnb_exceptions_recorded_total`: DUNS D&B refused to monitor, from EXCEPTIONS files.
pub const EXCEPTIONS_RECORDED: &str = "bridge_dnb_exceptions_recorded_total";
/// The `kind` label of delivery files.
pub const FILE_KINDS: [&str; 3] = ["notification", "seed", "exceptions"];
/// The `outcome` label of delivery files: imported, skipped (already imported) or failed.
pub const FILE_OUTCOMES: [&str; 3] = ["imported", "skipped", "failed"];
/// `bridge_http_requests_total{method,path,status}`.
pub const HTTP_REQUESTS: &str = "bridge_http_requests_total";
/// `bridge_http_request_duration_seconds{method,path}`.
pub const HTTP_DURATION: &str = "bridge_http_request_duration_seconds";

/// `bridge_dnb_pulls_total{registration,outcome}`: Direct+ pull and replay calls.
pub const DNB_PULLS: &str = "bridge_dnb_pulls_total";
/// `bridge_dnb_notifications_pulled_total{registration}`.
pub const DNB_PULLED: &str = "bridge_dnb_notifications_pulled_total";
/// `bridge_dnb_last_pull_success_timestamp_seconds{registration}`.
pub const DNB_LAST_SUCCESS: &str = "bridge_dnb_last_pull_success_timestamp_seconds";
/// Outcomes of a Direct+ call (the `outcome` label of [`DNB_PULLS`]): a page pulled, nothing
/// pending (404), a replay page, a call that failed after its retries.
pub const DNB_PULL_OUTCOMES: [&str; 4] = ["page", "drained", "replayed", "error"];

/// Processing outcomes (the `outcome` label).
pub const OUTCOMES: [&str; 4] = ["done", "skipped", "retry", "dead"];
/// Reasons a whole request is refused (the `reason` label, beside the item reasons).
pub const REQUEST_REJECT_REASONS: [&str; 7] = [
    "missing_signature_headers",
    "invalid_signature",
    "timestamp_out_of_tolerance",
    "body_too_large",
    "unsupported_media_type",
    "malformed_body",
    "overloaded",
];
const SECONDS_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The `type` label of a notification type, `UNKNOWN` when there is none.
pub fn type_label(notification_type: Option<NotificationType>) -> &'static str {
    notification_type.map_or("UNKNOWN", NotificationType::as_str)
}

/// One application's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The request series by route, then method and status: registered on first use, then
    /// only counted (registering allocates its labels and looks the series up every time).
    http: Mutex<HttpSeries>,
}

/// Per route: (method, status, requests counter, duration histogram); a route has a few.
type HttpSeries = HashMap<String, Vec<(String, u16, Counter, Histogram)>>;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A recorder with every metric described and every closed series at zero.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            recorder,
            handle,
            http: Mutex::new(HashMap::new()),
        };
        metrics.with(describe);
        metrics
    }

    fn with<T>(&self, record: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, record)
    }

    /// A notification was journaled (rejected ones have type `UNKNOWN` unless their type was valid).
    pub fn received(&self, notification_type: Option<NotificationType>) {
        self.with(|| counter!(RECEIVED, "type" => type_label(notification_type)).increment(1));
    }

    /// Items answered as duplicates.
    pub fn duplicates(&self, count: usize) {
        self.with(|| counter!(DUPLICATES).increment(count as u64));
    }

    /// A request or an item was refused.
    pub fn webhook_rejected(&self, reason: &'static str) {
        self.with(|| counter!(WEBHOOK_REJECTED, "reason" => reason).increment(1));
    }

    /// A notification reached an outcome; `age` is receipt to now for finished ones.
    pub fn processed(
        &self,
        notification_type: Option<NotificationType>,
        outcome: &'static str,
        age: Option<Duration>,
    ) {
        self.with(|| {
            counter!(PROCESSED, "type" => type_label(notification_type), "outcome" => outcome)
                .increment(1);
            if let Some(age) = age {
                histogram!(PROCESSING_SECONDS).record(age.as_secs_f64());
            }
        });
    }

    /// One HubSpot call answered `status` (an HTTP status, or `timeout` / `error` without one).
    pub fn hubspot_call(&self, endpoint: &'static str, status: &str) {
        let failed = !status.starts_with('2');
        let status = status.to_string();
        self.with(|| {
            counter!(API_CALLS, "endpoint" => endpoint, "status" => status).increment(1);
            if failed {
                counter!(API_ERRORS).increment(1);
            }
        });
    }

    /// Companies created in HubSpot.
    pub fn hubspot_companies_created(&self, count: usize) {
        self.with(|| counter!(COMPANIES_CREATED).increment(count as u64));
    }

    /// Companies updated in HubSpot.
    pub fn hubspot_companies_updated(&self, count: usize) {
        self.with(|| counter!(COMPANIES_UPDATED).increment(count as u64));
    }

    /// Tasks created in HubSpot.
    pub fn hubspot_tasks_created(&self, count: usize) {
        self.with(|| counter!(TASKS_CREATED).increment(count as u64));
    }

    /// Open tasks completed in HubSpot because an alert reversed theirs.
    pub fn hubspot_tasks_completed(&self, count: usize) {
        self.with(|| counter!(TASKS_COMPLETED).increment(count as u64));
    }

    /// Notes created in HubSpot.
    pub fn hubspot_notes_created(&self, count: usize) {
        self.with(|| counter!(NOTES_CREATED).increment(count as u64));
    }

    /// A delivery file of `kind` ended with `outcome` (see [`FILE_KINDS`], [`FILE_OUTCOMES`]).
    pub fn file_imported(&self, kind: &'static str, outcome: &'static str) {
        self.with(|| counter!(FILES_IMPORTED, "kind" => kind, "outcome" => outcome).increment(1));
    }

    /// DUNS recorded from EXCEPTIONS files.
    pub fn exceptions_recorded(&self, count: u64) {
        self.with(|| counter!(EXCEPTIONS_RECORDED).increment(count));
    }

    /// Notifications removed by the retention purge.
    pub fn purged(&self, count: usize) {
        self.with(|| counter!(JOURNAL_PURGED).increment(count as u64));
    }

    /// Sets the workers' pause gauge for one reason.
    pub fn hubspot_paused(&self, reason: &'static str, paused: bool) {
        self.with(|| {
            gauge!(HUBSPOT_PAUSED, "reason" => reason).set(if paused { 1.0 } else { 0.0 })
        });
    }

    /// One HTTP request served, labelled by its route template.
    pub fn http_request(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        let mut series = self.http.lock().expect("request series");
        let by_route = match series.get_mut(path) {
            Some(by_route) => by_route,
            None => series.entry(path.to_string()).or_default(),
        };
        let known = by_route
            .iter()
            .position(|(m, s, ..)| m == method && *s == status);
        let index = match known {
            Some(index) => index,
            None => {
                let labels = [("method", method.to_string()), ("path", path.to_string())];
                let (requests, duration) = self.with(|| {
                    let status = ("status", status.to_string());
                    let counted: Vec<_> = labels.iter().cloned().chain([status]).collect();
                    (
                        counter!(HTTP_REQUESTS, &counted),
                        histogram!(HTTP_DURATION, &labels),
                    )
                });
                by_route.push((method.to_string(), status, requests, duration));
                by_route.len() - 1
            }
        };
        let (_, _, requests, duration) = &by_route[index];
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());
    }

    /// Registers a Direct+ registration's series at zero and its last success (the journal's,
    /// or `since_ms`, when the loop started, when it never succeeded), so an alert on the age
    /// fires for a registration that never pulled too.
    pub fn dnb_registration(
        &self,
        registration: &str,
        last_success_ms: Option<i64>,
        since_ms: i64,
    ) {
        let registration = registration.to_string();
        self.with(|| {
            for outcome in DNB_PULL_OUTCOMES {
                counter!(DNB_PULLS, "registration" => registration.clone(), "outcome" => outcome)
                    .absolute(0);
            }
            counter!(DNB_PULLED, "registration" => registration.clone()).absolute(0);
            gauge!(DNB_LAST_SUCCESS, "registration" => registration)
                .set(last_success_ms.unwrap_or(since_ms) as f64 / 1000.0);
        });
    }

    /// One Direct+ call of a registration ended with `outcome` (one of [`DNB_PULL_OUTCOMES`]).
    pub fn dnb_pull(&self, registration: &str, outcome: &'static str) {
        let registration = registration.to_string();
        self.with(|| {
            counter!(DNB_PULLS, "registration" => registration, "outcome" => outcome).increment(1)
        });
    }

    /// Notifications a pull handed out.
    pub fn dnb_pulled(&self, registration: &str, count: u64) {
        let registration = registration.to_string();
        self.with(|| counter!(DNB_PULLED, "registration" => registration).increment(count));
    }

    /// A registration's pull succeeded at `at_ms`.
    pub fn dnb_pull_succeeded(&self, registration: &str, at_ms: i64) {
        let registration = registration.to_string();
        self.with(|| {
            gauge!(DNB_LAST_SUCCESS, "registration" => registration).set(at_ms as f64 / 1000.0)
        });
    }

    /// Updates the journal gauges from fresh counts.
    pub fn journal(&self, stats: &JournalStats, now_ms: i64) {
        self.with(|| {
            for status in Status::ALL {
                let count = stats.counts.get(&status).copied().unwrap_or(0);
                gauge!(JOURNAL_NOTIFICATIONS, "status" => status.as_str()).set(count as f64);
            }
            let pending = stats.counts.get(&Status::Pending).copied().unwrap_or(0);
            gauge!(QUEUE_DEPTH).set(pending as f64);
            let age_ms = stats
                .oldest_pending_received_ms
                .map_or(0, |oldest| (now_ms - oldest).max(0));
            gauge!(BACKLOG_AGE).set(age_ms as f64 / 1000.0);
            gauge!(JOURNAL_SIZE).set(stats.size_bytes as f64);
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        fill_in_unsampled(self.handle.render())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric: name, kind and help text.
const CATALOGUE: [(&str, Kind, &str); 25] = [
    (
        RECEIVED,
        Kind::Counter,
        "Notifications newly journaled, accepted or rejected, by D&B type.",
    ),
    (
        DUPLICATES,
        Kind::Counter,
        "Items answered as duplicates (redelivered webhook-id or content already journaled).",
    ),
    (
        PROCESSED,
        Kind::Counter,
        "Notifications that reached an outcome, by D&B type and outcome.",
    ),
    (
        WEBHOOK_REJECTED,
        Kind::Counter,
        "Webhook requests refused and items rejected, by reason.",
    ),
    (
        JOURNAL_NOTIFICATIONS,
        Kind::Gauge,
        "Notifications in the journal, by status.",
    ),
    (QUEUE_DEPTH, Kind::Gauge, "Pending notifications."),
    (
        BACKLOG_AGE,
        Kind::Gauge,
        "Age of the oldest pending notification since receipt, in seconds.",
    ),
    (
        PROCESSING_SECONDS,
        Kind::Histogram,
        "Time from receipt to processed, in seconds.",
    ),
    (
        COMPANIES_UPDATED,
        Kind::Counter,
        "HubSpot companies updated.",
    ),
    (
        COMPANIES_CREATED,
        Kind::Counter,
        "HubSpot companies created.",
    ),
    (TASKS_CREATED, Kind::Counter, "HubSpot tasks created."),
    (
        TASKS_COMPLETED,
        Kind::Counter,
        "Open HubSpot tasks completed because a later alert reversed theirs.",
    ),
    (NOTES_CREATED, Kind::Counter, "HubSpot notes created."),
    (
        API_CALLS,
        Kind::Counter,
        "HubSpot API calls, by endpoint and HTTP status.",
    ),
    (API_ERRORS, Kind::Counter, "HubSpot API calls that failed."),
    (
        HUBSPOT_PAUSED,
        Kind::Gauge,
        "1 while workers are paused for this reason, else 0.",
    ),
    (
        JOURNAL_SIZE,
        Kind::Gauge,
        "Size of the journal's files on disk, in bytes.",
    ),
    (
        JOURNAL_PURGED,
        Kind::Counter,
        "Finished notifications removed by the retention purge.",
    ),
    (
        FILES_IMPORTED,
        Kind::Counter,
        "D&B delivery files handled by `import` or the inbox, by kind and outcome.",
    ),
    (
        EXCEPTIONS_RECORDED,
        Kind::Counter,
        "DUNS that D&B could not monitor, recorded from EXCEPTIONS files.",
    ),
    (
        HTTP_REQUESTS,
        Kind::Counter,
        "HTTP requests served, by method, route and status.",
    ),
    (
        HTTP_DURATION,
        Kind::Histogram,
        "HTTP request handling time, by method and route, in seconds.",
    ),
    (
        DNB_PULLS,
        Kind::Counter,
        "D&B Direct+ pull and replay calls, by registration and outcome (page, drained, replayed, error).",
    ),
    (
        DNB_PULLED,
        Kind::Counter,
        "Notifications D&B Direct+ handed out to pulls, by registration.",
    ),
    (
        DNB_LAST_SUCCESS,
        Kind::Gauge,
        "Unix time of the registration's last successful Direct+ pull (the pull loop's start while it has none).",
    ),
];

/// Adds `# HELP`/`# TYPE` for metrics with no sample yet (the exporter omits them); an
/// unlabelled histogram gets its zero series.
fn fill_in_unsampled(mut text: String) -> String {
    for (name, kind, help) in CATALOGUE {
        if text.contains(&format!("# TYPE {name} ")) {
            continue;
        }
        let kind_word = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind_word}\n"
        ));
        if name == PROCESSING_SECONDS {
            for bound in SECONDS_BUCKETS {
                text.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} 0\n"));
            }
            text.push_str(&format!(
                "{name}_bucket{{le=\"+Inf\"}} 0\n{name}_sum 0\n{name}_count 0\n"
            ));
        }
    }
    text
}

fn describe() {
    for (name, kind, help) in CATALOGUE {
        match kind {
            Kind::Counter => describe_counter!(name, help),
            Kind::Gauge => describe_gauge!(name, help),
            Kind::Histogram => describe_histogram!(name, Unit::Seconds, help),
        }
    }

    for kind in NotificationType::ALL
        .iter()
        .copied()
        .map(Some)
        .chain([None])
    {
        counter!(RECEIVED, "type" => type_label(kind)).absolute(0);
        for outcome in OUTCOMES {
            counter!(PROCESSED, "type" => type_label(kind), "outcome" => outcome).absolute(0);
        }
    }
    for reason in REQUEST_REJECT_REASONS
        .into_iter()
        .chain(RejectReason::ALL.map(RejectReason::as_str))
    {
        counter!(WEBHOOK_REJECTED, "reason" => reason).absolute(0);
    }
    for status in Status::ALL {
        gauge!(JOURNAL_NOTIFICATIONS, "status" => status.as_str()).set(0.0);
    }
    // The `reason` label's values: `setup` (HubSpot lacks properties the bridge writes)
    // extends the contract's four.
    for reason in <crate::journal::PauseReason as strum::VariantArray>::VARIANTS {
        gauge!(HUBSPOT_PAUSED, "reason" => reason.as_str()).set(0.0);
    }
    for kind in FILE_KINDS {
        for outcome in FILE_OUTCOMES {
            counter!(FILES_IMPORTED, "kind" => kind, "outcome" => outcome).absolute(0);
        }
    }
    counter!(EXCEPTIONS_RECORDED).absolute(0);
    counter!(DUPLICATES).absolute(0);
    counter!(JOURNAL_PURGED).absolute(0);
    gauge!(JOURNAL_SIZE).set(0.0);
    gauge!(QUEUE_DEPTH).set(0.0);
    gauge!(BACKLOG_AGE).set(0.0);
    for name in [
        COMPANIES_UPDATED,
        COMPANIES_CREATED,
        TASKS_CREATED,
        TASKS_COMPLETED,
        NOTES_CREATED,
        API_ERRORS,
    ] {
        counter!(name).absolute(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_metric_has_help_and_type_before_any_event() {
        let text = Metrics::new().render();
        for name in [
            RECEIVED,
            PROCESSED,
            WEBHOOK_REJECTED,
            JOURNAL_NOTIFICATIONS,
            QUEUE_DEPTH,
            BACKLOG_AGE,
            COMPANIES_UPDATED,
            COMPANIES_CREATED,
            TASKS_CREATED,
            TASKS_COMPLETED,
            NOTES_CREATED,
            API_ERRORS,
            HUBSPOT_PAUSED,
            API_CALLS,
            PROCESSING_SECONDS,
            HTTP_REQUESTS,
            HTTP_DURATION,
            DNB_PULLS,
            DNB_PULLED,
            DNB_LAST_SUCCESS,
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
        }
    }

    #[test]
    fn an_unsampled_histogram_renders_its_zero_series_once_and_then_real_samples() {
        let metrics = Metrics::new();
        let text = metrics.render();
        assert!(text.contains("bridge_processing_seconds_count 0"), "{text}");
        metrics.processed(
            Some(NotificationType::Seed),
            "done",
            Some(Duration::from_millis(30)),
        );
        let text = metrics.render();
        assert_eq!(text.matches("# TYPE bridge_processing_seconds ").count(), 1);
        assert!(text.contains("bridge_processing_seconds_count 1"), "{text}");
    }

    #[test]
    fn two_instances_count_independently() {
        let (first, second) = (Metrics::new(), Metrics::new());
        first.received(Some(NotificationType::Seed));
        assert!(
            first
                .render()
                .contains("bridge_notifications_received_total{type=\"SEED\"} 1")
        );
        assert!(
            second
                .render()
                .contains("bridge_notifications_received_total{type=\"SEED\"} 0")
        );
    }
}
