//! One module per subcommand, each with `run`.

pub mod bootstrap;
pub mod check_config;
pub mod healthcheck;
pub mod import;
pub mod migrate_journal;
pub mod pull;
pub mod replay;
pub mod send;
pub mod serve;
pub mod simulate;
pub mod test_connection;

use std::net::SocketAddr;

use crate::config::Settings;

/// A URL on this machine for the configured bind address (wildcards become loopback).
pub fn local_url(settings: &Settings, path: &str) -> String {
    let address = settings
        .server
        .bind_addr()
        .map(|address| match address {
            SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], v4.port()))
            }
            SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
                SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], v6.port()))
            }
            other => other,
        })
        .map(|address| address.to_string())
        .unwrap_or_else(|_| settings.server.bind.clone());
    format!("http://{address}{path}")
}
