//! Logs and metrics: tracing set-up and the Prometheus metric catalogue.

pub mod metrics;
pub mod tracing;

pub use metrics::Metrics;
