//! HubSpot side of the bridge: the API client with its rate limiting and error
//! classification, and the executor seam the workers hand plans to. This build
//! runs the dry-run executor (`hubspot.enabled: false`).

pub mod client;
pub mod error;
pub mod executor;
pub mod model;
pub mod rate_limit;

pub use client::{ApiVersion, HubSpotClient};
pub use error::HubSpotError;
pub use executor::{DryRunExecutor, Execution, Executor, Planned};
