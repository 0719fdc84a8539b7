//! HubSpot side of the bridge: the API client with its rate limiting and error
//! classification, the executor that performs plans with batch calls (or, in
//! dry-run, only records them), and the pause state the workers obey.

pub mod client;
pub mod error;
pub mod executor;
pub mod model;
pub mod portal;
pub mod properties;
pub mod quota;
pub mod rate_limit;
pub mod status;

pub use client::{ApiVersion, HubSpotClient};
pub use error::HubSpotError;
pub use executor::{DryRunExecutor, Execution, Executor, Planned};
pub use portal::HubSpotExecutor;
pub use status::HubSpotStatus;
