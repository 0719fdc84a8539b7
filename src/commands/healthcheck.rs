//! `healthcheck`: exit 0 when `GET /health` answers 200, for container
//! health checks on images without curl.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::HealthcheckArgs;
use crate::config::Settings;

/// Probes the health endpoint.
pub async fn run(settings: &Settings, args: HealthcheckArgs) -> ExitCode {
    let url = args
        .url
        .unwrap_or_else(|| super::local_url(settings, "/health"));
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("unhealthy: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status() == reqwest::StatusCode::OK => {
            println!("healthy: {url}");
            ExitCode::SUCCESS
        }
        Ok(response) => {
            eprintln!("unhealthy: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}
