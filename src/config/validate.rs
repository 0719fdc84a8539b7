//! Checks that collect every problem of a loaded [`Settings`] at once, so
//! `check-config` can list them all and `serve` can refuse to start.

use std::fmt;

use secrecy::ExposeSecret;

use super::Settings;
use crate::signature::SigningSecret;

/// One problem with the configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The dotted key, e.g. `webhook.secrets`.
    pub key: String,
    /// What is wrong, never containing a secret value.
    pub message: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Returns every problem found in `settings`; empty means valid for `serve`.
pub fn validate(settings: &Settings) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut problem = |key: &str, message: String| errors.push(ConfigError::new(key, message));

    if let Err(error) = settings.server.bind_addr() {
        problem(
            "server.bind",
            format!("{:?} is not an address: {error}", settings.server.bind),
        );
    }
    if settings.server.request_timeout_secs == 0 {
        problem("server.request_timeout_secs", "must be at least 1".into());
    }

    let secrets: Vec<_> = settings.webhook.non_empty_secrets().collect();
    if secrets.is_empty() {
        problem(
            "webhook.secrets",
            "no signing secret configured; set BRIDGE_WEBHOOK_SECRET or webhook.secrets".into(),
        );
    }
    for (index, secret) in secrets.iter().enumerate() {
        if let Err(error) = SigningSecret::parse(secret.expose_secret()) {
            problem("webhook.secrets", format!("entry {index}: {error}"));
        }
    }
    if settings.webhook.tolerance_secs == 0 {
        problem("webhook.tolerance_secs", "must be at least 1".into());
    }
    if settings.webhook.max_body_bytes < 1024 {
        problem("webhook.max_body_bytes", "must be at least 1024".into());
    }

    let url = settings.storage.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The URL holds the password: the problem names what is wrong, never the URL.
        if let Err(error) = url.parse::<sqlx::postgres::PgConnectOptions>() {
            let reason = match error {
                sqlx::Error::Configuration(reason) => reason.to_string(),
                _ => "not a valid PostgreSQL URL".into(),
            };
            problem("storage.url", format!("invalid postgres:// URL: {reason}"));
        }
    } else if !url.starts_with("sqlite://") || url.len() == "sqlite://".len() {
        problem(
            "storage.url",
            format!("{url:?} must be sqlite://PATH or postgres://USER@HOST/DATABASE"),
        );
    }
    if settings.storage.max_connections < 2 {
        problem("storage.max_connections", "must be at least 2".into());
    }
    if settings.storage.purge_interval_secs == 0 {
        problem("storage.purge_interval_secs", "must be at least 1".into());
    }
    if settings.storage.retention.is_zero() {
        problem("storage.retention", "must be longer than zero".into());
    }

    if settings.queue.capacity == 0 {
        problem("queue.capacity", "must be at least 1".into());
    }
    if settings.queue.high_water == 0 {
        problem("queue.high_water", "must be at least 1".into());
    }

    let workers = &settings.workers;
    if !(1..=256).contains(&workers.count) {
        problem("workers.count", "must be between 1 and 256".into());
    }
    if !(1..=1000).contains(&workers.batch_size) {
        problem("workers.batch_size", "must be between 1 and 1000".into());
    }
    if workers.batch_max_wait_ms > 60_000 {
        problem("workers.batch_max_wait_ms", "must be at most 60000".into());
    }
    if workers.lease_secs < 5 {
        problem("workers.lease_secs", "must be at least 5".into());
    }
    if workers.poll_interval_ms == 0 {
        problem("workers.poll_interval_ms", "must be at least 1".into());
    }
    if workers.retry_initial_ms == 0 || workers.retry_max_secs == 0 {
        problem(
            "workers.retry_initial_ms",
            "retry delays must be longer than zero".into(),
        );
    }

    let hubspot = &settings.hubspot;
    if hubspot.enabled && hubspot.api_token.expose_secret().trim().is_empty() {
        problem(
            "hubspot.api_token",
            "required when hubspot.enabled is true (set HUBSPOT_API_TOKEN)".into(),
        );
    }
    if !hubspot.base_url.starts_with("https://") && !hubspot.base_url.starts_with("http://") {
        problem(
            "hubspot.base_url",
            format!("{:?} must be an http(s) URL", hubspot.base_url),
        );
    }
    if !["2026-03", "v3"].contains(&hubspot.api_version.as_str()) {
        problem(
            "hubspot.api_version",
            format!("{:?} must be 2026-03 or v3", hubspot.api_version),
        );
    }
    if hubspot.duns_property.trim().is_empty() {
        problem("hubspot.duns_property", "must not be empty".into());
    }
    for (path, property) in &hubspot.company_fields {
        if !path.starts_with("organization.") || property.trim().is_empty() {
            problem(
                "hubspot.company_fields",
                format!(
                    "{path:?}: keys are D&B element paths (organization.…) and values HubSpot property names"
                ),
            );
        }
    }
    if hubspot.timeout_secs == 0 {
        problem("hubspot.timeout_secs", "must be at least 1".into());
    }
    let limits = &hubspot.rate_limit;
    for (key, value) in [
        (
            "hubspot.rate_limit.requests_per_second",
            limits.requests_per_second,
        ),
        ("hubspot.rate_limit.burst", limits.burst),
        (
            "hubspot.rate_limit.search_per_second",
            limits.search_per_second,
        ),
        ("hubspot.rate_limit.search_burst", limits.search_burst),
    ] {
        if value == 0 {
            problem(key, "must be at least 1".into());
        }
    }

    let dnb = &settings.dnb;
    if dnb.rate_limit_per_sec == 0 {
        problem("dnb.rate_limit_per_sec", "must be at least 1".into());
    }
    if !(1..=100).contains(&dnb.pull.max_notifications) {
        problem(
            "dnb.pull.max_notifications",
            format!("{} is not between 1 and 100", dnb.pull.max_notifications),
        );
    }
    if dnb.pull.interval_secs == 0 {
        problem("dnb.pull.interval_secs", "must be at least 1".into());
    }
    if dnb.sftp.interval_secs == 0 {
        problem("dnb.sftp.interval_secs", "must be at least 1".into());
    }
    if !dnb.sftp.host.trim().is_empty() {
        if dnb.files.inbox.trim().is_empty() {
            problem(
                "dnb.files.inbox",
                "dnb.sftp.host is set: the SFTP fetch downloads into the inbox, so it needs one"
                    .into(),
            );
        }
        for (key, value) in [
            ("dnb.sftp.username", &dnb.sftp.username),
            ("dnb.sftp.private_key_path", &dnb.sftp.private_key_path),
            ("dnb.sftp.known_hosts_path", &dnb.sftp.known_hosts_path),
        ] {
            if value.trim().is_empty() {
                problem(
                    key,
                    "empty; the SFTP fetch (dnb.sftp.host is set) needs it".into(),
                );
            }
        }
    }
    if dnb.pull.enabled {
        if dnb
            .registrations
            .iter()
            .all(|reference| reference.trim().is_empty())
        {
            problem(
                "dnb.registrations",
                "dnb.pull.enabled needs at least one registration reference".into(),
            );
        }
        errors.extend(pull_credentials(dnb));
    }
    errors
}

/// Problems with the Direct+ consumer key and secret, which pulling needs.
pub fn pull_credentials(dnb: &super::DnbSettings) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if dnb.client_key.expose_secret().trim().is_empty() {
        errors.push(ConfigError::new(
            "dnb.client_key",
            "empty; pulling from D&B Direct+ needs the consumer key (DNB_CLIENT_KEY)",
        ));
    }
    if dnb.client_secret.expose_secret().trim().is_empty() {
        errors.push(ConfigError::new(
            "dnb.client_secret",
            "empty; pulling from D&B Direct+ needs the consumer secret (DNB_CLIENT_SECRET)",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn valid() -> Settings {
        let mut settings = Settings::default();
        settings.webhook.secrets = vec![SecretString::from("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=")];
        settings
    }

    #[test]
    fn defaults_with_a_secret_are_valid() {
        assert_eq!(validate(&valid()), Vec::new());
    }

    #[test]
    fn the_pull_loop_needs_a_registration_and_credentials() {
        let mut settings = valid();
        settings.dnb.pull.enabled = true;
        let keys: Vec<String> = validate(&settings).into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            ["dnb.registrations", "dnb.client_key", "dnb.client_secret"]
        );
        settings.dnb.registrations = vec!["REF".into()];
        settings.dnb.client_key = SecretString::from("key");
        settings.dnb.client_secret = SecretString::from("secret");
        assert_eq!(validate(&settings), Vec::new());
    }

    #[test]
    fn the_sftp_fetch_needs_the_inbox_a_login_a_key_and_known_hosts() {
        let mut settings = valid();
        settings.dnb.sftp.host = "sftp.example".into();
        let keys: Vec<String> = validate(&settings).into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "dnb.files.inbox",
                "dnb.sftp.username",
                "dnb.sftp.private_key_path",
                "dnb.sftp.known_hosts_path"
            ]
        );
        settings.dnb.files.inbox = "/var/lib/bridge/inbox".into();
        settings.dnb.sftp.username = "bridge".into();
        settings.dnb.sftp.private_key_path = "/etc/bridge/id_ed25519".into();
        settings.dnb.sftp.known_hosts_path = "/etc/bridge/known_hosts".into();
        assert_eq!(validate(&settings), Vec::new());
    }

    #[test]
    fn a_postgres_url_is_checked_without_being_echoed() {
        let mut settings = valid();
        settings.storage.url = "postgres://bridge:s3cret@db.internal:5432/bridge".into();
        assert_eq!(validate(&settings), Vec::new());
        settings.storage.url = "postgres://bridge:s3cret@db.internal:notaport/bridge".into();
        let problems = validate(&settings);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "storage.url");
        assert!(
            !problems[0].to_string().contains("s3cret"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let mut settings = valid();
        settings.webhook.secrets = vec![SecretString::from("")];
        settings.server.bind = "nowhere".into();
        settings.storage.url = "mysql://localhost/x".into();
        settings.workers.count = 0;
        let keys: Vec<String> = validate(&settings).into_iter().map(|e| e.key).collect();
        for key in [
            "server.bind",
            "webhook.secrets",
            "storage.url",
            "workers.count",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn a_secret_that_is_not_base64_is_named_without_its_value() {
        let mut settings = valid();
        settings.webhook.secrets = vec![SecretString::from("whsec_***not base64***")];
        let errors = validate(&settings);
        assert_eq!(errors.len(), 1);
        assert!(!errors[0].message.contains("not base64***"));
    }
}
