//! HubSpot side of the bridge: the executor seam the workers hand plans to.
//! This build ships the dry-run executor (`hubspot.enabled: false`).

pub mod executor;

pub use executor::{DryRunExecutor, Execution, Executor, Planned};
