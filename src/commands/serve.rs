//! `serve`: validate the config, then run the service until SIGINT/SIGTERM.

use anyhow::bail;
use tokio_util::sync::CancellationToken;

use crate::app::Application;
use crate::config::{Settings, validate};
use crate::shutdown;

/// Runs the service.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let errors = validate(&settings);
    if !errors.is_empty() {
        for error in &errors {
            tracing::error!("config: {error}");
        }
        bail!(
            "refusing to start: {} configuration problem(s)",
            errors.len()
        );
    }
    let token = CancellationToken::new();
    shutdown::cancel_on_signal(token.clone());
    Application::build(settings, token)
        .await?
        .run_until_stopped()
        .await
}
