//! `bootstrap [--dry-run]`: create the HubSpot company properties the service
//! writes (the unique DUNS property and the alert-tracking ones), idempotently.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::BootstrapArgs;
use crate::config::Settings;
use crate::hubspot::HubSpotClient;
use crate::hubspot::properties::{self, PropertyState};
use crate::telemetry::Metrics;

/// Checks and creates the properties, printing one line each.
pub async fn run(settings: &Settings, args: BootstrapArgs) -> anyhow::Result<ExitCode> {
    let client = HubSpotClient::new(&settings.hubspot, Arc::new(Metrics::new()))
        .context("HubSpot client")?;
    let report = properties::bootstrap(&client, &settings.hubspot.duns_property, args.dry_run)
        .await
        .context("HubSpot refused the bootstrap")?;
    let mut problems = 0;
    for (property, state) in report {
        let verdict = match (state, args.dry_run) {
            (PropertyState::Present, _) => "exists".to_string(),
            (PropertyState::Missing, true) => format!(
                "would create ({} / {})",
                property.property_type, property.field_type
            ),
            (PropertyState::Missing, false) => "created".to_string(),
            (PropertyState::PresentNotUnique, _) => {
                problems += 1;
                "exists but is NOT unique: HubSpot cannot change that; the bridge will look companies up by search".to_string()
            }
        };
        println!("{:<24} {verdict}", property.name);
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
