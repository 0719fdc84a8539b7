//! `test-connection`: call HubSpot with the configured token and give a verdict
//! per check (token, scopes, DUNS property, alert properties, default owner).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Settings;
use crate::hubspot::properties::required;
use crate::hubspot::{HubSpotClient, HubSpotError};
use crate::telemetry::Metrics;

fn verdict(name: &str, result: Result<String, String>) -> bool {
    match result {
        Ok(detail) => {
            println!("PASS  {name}: {detail}");
            true
        }
        Err(detail) => {
            println!("FAIL  {name}: {detail}");
            false
        }
    }
}

fn explain(error: HubSpotError) -> String {
    match error {
        HubSpotError::Unauthorized {
            missing_scopes,
            message,
            ..
        } if !missing_scopes.is_empty() => {
            format!("{message} (missing scopes: {})", missing_scopes.join(", "))
        }
        other => other.to_string(),
    }
}

/// Runs every check; exit 1 when any fails.
pub async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let hubspot = &settings.hubspot;
    let client = HubSpotClient::new(hubspot, Arc::new(Metrics::new())).context("HubSpot client")?;
    let mut passed = true;

    passed &= verdict(
        "token",
        client
            .account_details()
            .await
            .map(|account| {
                format!(
                    "portal {} (time zone {})",
                    account.portal_id, account.time_zone
                )
            })
            .map_err(explain),
    );
    passed &= verdict(
        "companies read (crm.objects.companies.read)",
        client
            .read_companies_by(
                &hubspot.duns_property,
                &["000000000".to_string()],
                std::slice::from_ref(&hubspot.duns_property),
            )
            .await
            .map(|_| "companies can be read by the DUNS property".to_string())
            .map_err(explain),
    );
    passed &= verdict(
        "tasks and notes read (crm.objects.contacts.read)",
        client
            .search_token(
                "tasks",
                "hs_task_body",
                "dnb-hubspot-bridge",
                &["hs_task_body".to_string()],
            )
            .await
            .map(|_| "tasks can be searched".to_string())
            .map_err(explain),
    );
    let duns = client
        .company_property(&hubspot.duns_property)
        .await
        .map_err(explain);
    passed &= verdict(
        &format!("DUNS property {}", hubspot.duns_property),
        match duns {
            Ok(Some(property))
                if property.property_type == "string" && property.has_unique_value =>
            {
                Ok("a unique string property".into())
            }
            Ok(Some(property)) if property.property_type != "string" => Err(format!(
                "type {} would lose leading zeros; it must be a string",
                property.property_type
            )),
            Ok(Some(_)) => {
                Err("not unique: companies must then be found by search, which lags writes".into())
            }
            Ok(None) => Err("missing; run `dnb-hubspot-bridge bootstrap`".into()),
            Err(error) => Err(error),
        },
    );
    let mut missing = Vec::new();
    for property in required(&hubspot.duns_property).into_iter().skip(1) {
        match client.company_property(&property.name).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(property.name),
            Err(error) => missing.push(format!("{} ({})", property.name, explain(error))),
        }
    }
    passed &= verdict(
        "alert properties",
        if missing.is_empty() {
            Ok("all present".into())
        } else {
            Err(format!(
                "missing {}; run `dnb-hubspot-bridge bootstrap`",
                missing.join(", ")
            ))
        },
    );
    if !hubspot.default_owner_email.trim().is_empty() {
        passed &= verdict(
            "default owner",
            match client.owner_id(hubspot.default_owner_email.trim()).await {
                Ok(Some(id)) => Ok(format!("{} is owner {id}", hubspot.default_owner_email)),
                Ok(None) => Err(format!(
                    "{} is not a HubSpot owner",
                    hubspot.default_owner_email
                )),
                Err(error) => Err(explain(error)),
            },
        );
    }
    println!(
        "note: write scopes (crm.objects.companies.write, crm.objects.contacts.write) cannot be checked without writing"
    );
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
