//! dnb-hubspot-bridge turns Dun & Bradstreet monitoring alerts into HubSpot
//! CRM work.
//!
//! The data path, top to bottom: [`http`] receives a signed delivery on
//! `POST /webhooks/dnb`, [`signature`] verifies it, [`dnb`] splits and checks
//! its notifications, [`journal`] commits them (the 202 follows the commit),
//! the [`worker`] pool is woken by a doorbell and claims them from the journal
//! under leases, [`mapping`] plans the HubSpot actions, and the [`hubspot`]
//! executor performs them (or, in dry-run, records and logs the plan).

pub mod app;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod dnb;
pub mod files;
pub mod http;
pub mod hubspot;
pub mod journal;
pub mod mapping;
pub mod retention;
pub mod shutdown;
pub mod signature;
pub mod telemetry;
pub mod worker;
