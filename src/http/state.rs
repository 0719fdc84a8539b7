//! What every handler shares.

use std::sync::Arc;

use crate::config::Settings;
use crate::hubspot::HubSpotStatus;
use crate::journal::Journal;
use crate::signature::SigningSecret;
use crate::telemetry::Metrics;
use crate::worker::Doorbell;

/// What every handler shares, behind one `Arc`: axum clones the state for each extractor
/// of each request, and one reference count is cheaper than six.
pub type AppState = Arc<Shared>;

/// The contents of [`AppState`].
pub struct Shared {
    /// The journal every accepted notification is committed to.
    pub journal: Arc<dyn Journal>,
    /// Wakes workers after a commit.
    pub doorbell: Doorbell,
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// Decoded webhook signing secrets.
    pub secrets: Arc<Vec<SigningSecret>>,
    /// This application's metrics.
    pub metrics: Arc<Metrics>,
    /// Whether HubSpot is taking work (reported by `/ready`).
    pub hubspot: Arc<HubSpotStatus>,
}
