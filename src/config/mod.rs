//! Typed settings and how they are loaded.
//!
//! Loading goes in three steps: parse the YAML file and expand `${VAR}` inside
//! its string values (see [`interpolate`]), layer `BRIDGE__…` environment
//! overrides on top with the `config` crate, then deserialise into
//! [`Settings`]. [`validate`] then lists every problem at once. Keys that name
//! D&B types and actions (`hubspot.actions`, `hubspot.critical_types`)
//! deserialize straight into [`NotificationType`] and [`ActionKind`], so the
//! mapper only ever sees names it knows. `config.yaml` at the repository root
//! is the commented reference of every key.

pub mod interpolate;
pub mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::dnb::NotificationType;
use crate::mapping::{ActionKind, ActionRules};

pub use validate::{ConfigError, validate};

/// The whole configuration tree.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTP listener settings.
    pub server: ServerSettings,
    /// Signed webhook intake.
    pub webhook: WebhookSettings,
    /// Operator endpoints.
    pub admin: AdminSettings,
    /// The journal.
    pub storage: StorageSettings,
    /// The in-process doorbell and backpressure.
    pub queue: QueueSettings,
    /// The worker pool.
    pub workers: WorkerSettings,
    /// HubSpot portal access and the action table.
    pub hubspot: HubSpotSettings,
    /// Logging.
    pub log: LogSettings,
    /// D&B as a source: Direct+ pull, delivery files, SFTP.
    pub dnb: DnbSettings,
}

/// `server.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address; default `127.0.0.1:8080`.
    pub bind: String,
    /// Upper bound on handling one request, in seconds; default 30.
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight work, in seconds; default 25.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            request_timeout_secs: 30,
            shutdown_timeout_secs: 25,
        }
    }
}

impl ServerSettings {
    /// The bind address, once validated.
    pub fn bind_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.bind.parse()
    }
}

/// `webhook.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Signing secrets (`whsec_` + base64); empty entries are ignored.
    pub secrets: Vec<SecretString>,
    /// Accepted clock skew of `webhook-timestamp`, in seconds; default 300.
    pub tolerance_secs: u64,
    /// Larger bodies get 413; default 10 MiB.
    pub max_body_bytes: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            tolerance_secs: 300,
            max_body_bytes: 10 * 1024 * 1024,
        }
    }
}

impl WebhookSettings {
    /// The configured secrets that are not blank.
    pub fn non_empty_secrets(&self) -> impl Iterator<Item = &SecretString> {
        self.secrets
            .iter()
            .filter(|secret| !secret.expose_secret().trim().is_empty())
    }
}

/// `admin.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token of the admin endpoints; empty disables them (404).
    pub token: SecretString,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            token: SecretString::from(""),
        }
    }
}

/// `storage.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite://PATH` (default `sqlite://data/journal.db`) or `postgres://...`.
    pub url: String,
    /// How long finished notifications are kept; default 30 days.
    #[serde(deserialize_with = "deserialize_duration")]
    pub retention: Duration,
    /// SQLite `synchronous` level: `full` (default, every commit is fsynced) or `normal`.
    pub synchronous: SqliteSynchronous,
    /// Size the WAL file is trimmed back to when it grew past it; default 64 MiB.
    pub wal_max_bytes: u64,
    /// How often the retention purge runs, in seconds; default 60.
    pub purge_interval_secs: u64,
    /// PostgreSQL: connections each process keeps at most; default 16.
    pub max_connections: u32,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/journal.db".into(),
            retention: Duration::from_secs(30 * 24 * 3600),
            synchronous: SqliteSynchronous::Full,
            wal_max_bytes: 64 * 1024 * 1024,
            purge_interval_secs: 60,
            max_connections: 16,
        }
    }
}

/// SQLite durability level of a commit.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// The WAL is fsynced at every commit: a 202 survives power loss.
    Full,
    /// The WAL is fsynced at checkpoints: a 202 survives a process crash, not power loss.
    Normal,
}

/// `queue.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Size of the channel that wakes workers; default 1024.
    pub capacity: usize,
    /// Pending notifications above which the webhook answers 503; default 1,000,000.
    pub high_water: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            capacity: 1024,
            high_water: 1_000_000,
        }
    }
}

/// `workers.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Size of the worker pool; default 2.
    pub count: usize,
    /// Notifications claimed at once; default 200.
    pub batch_size: usize,
    /// How long the oldest pending notification may wait for a batch to fill, in
    /// milliseconds; default 2000.
    pub batch_max_wait_ms: u64,
    /// How long a claim stays valid before another worker may take it back, in seconds;
    /// default 300. A worker renews its batch's lease every third of it while the batch works.
    pub lease_secs: u64,
    /// Fallback poll when no doorbell rings, in milliseconds; default 1000.
    pub poll_interval_ms: u64,
    /// First retry delay after a failure, in milliseconds; default 1000.
    pub retry_initial_ms: u64,
    /// Longest retry delay, jitter included, in seconds; default 900.
    pub retry_max_secs: u64,
    /// A notification whose own failure persists this long goes to `dead`; default 24h.
    #[serde(deserialize_with = "deserialize_duration")]
    pub dead_after: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            count: 2,
            batch_size: 200,
            batch_max_wait_ms: 2000,
            lease_secs: 300,
            poll_interval_ms: 1000,
            retry_initial_ms: 1000,
            retry_max_secs: 900,
            dead_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// `hubspot.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSpotSettings {
    /// false: dry-run, every planned call is journaled and logged, none is sent.
    pub enabled: bool,
    /// Default `https://api.hubapi.com`.
    pub base_url: String,
    /// `2026-03` (default) or `v3`.
    pub api_version: String,
    /// Private app token or service key.
    pub api_token: SecretString,
    /// Company property holding the DUNS; default `duns_number`.
    pub duns_property: String,
    /// Owner of tasks for companies that have no owner.
    pub default_owner_email: String,
    /// SEED and FULL_PRODUCT create companies that do not exist yet; default true.
    pub create_missing_companies: bool,
    /// D&B notification type → actions; types left out keep their defaults
    /// ([`ActionRules::default_actions`]). Type names are read case-insensitively.
    pub actions: BTreeMap<NotificationType, Vec<ActionKind>>,
    /// Types whose tasks are HIGH priority; default DELETE, TRANSFER, UNDER_REVIEW, EXIT.
    pub critical_types: Vec<NotificationType>,
    /// D&B element path → HubSpot company property for `update_company`; empty means the defaults.
    pub company_fields: BTreeMap<String, String>,
    /// The portal's time zone for task due dates and the daily quota's reset (its midnight);
    /// empty means the one account info reports.
    pub time_zone: String,
    /// Per-request timeout, in seconds; default 30.
    pub timeout_secs: u64,
    /// How long a create whose answer was lost is given to show in HubSpot search before it
    /// is looked for and, if absent, sent again, in seconds; default 60.
    pub reconcile_after_secs: u64,
    /// How long workers pause after an outage answer without `Retry-After`, in seconds; default 30.
    pub outage_pause_secs: u64,
    /// How often a bridge paused by a refused token re-probes HubSpot, in seconds; default 60.
    pub auth_probe_secs: u64,
    /// Client-side request rates, kept under HubSpot's limits so that 429s do not happen.
    pub rate_limit: RateLimitSettings,
}

/// `hubspot.rate_limit.*`: the portal's budget (HubSpot counts per app and portal), shared
/// by every worker and, with a PostgreSQL storage, by every replica through the database
/// ([`crate::hubspot::rate_limit::RateLimits::shared`]). HubSpot counts requests in a rolling window, which is
/// stricter than a token bucket: keep `burst + rate × window` at or under about
/// 90 % of the window's limit (defaults: 10 + 8/s × 10 s = 90 of the lower
/// tier's 100 per 10 s; search 1 + 4/s of its 5 per second).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Sustained requests per second for all non-search calls; default 8.
    pub requests_per_second: u32,
    /// Requests that may go at once after a quiet spell; default 10.
    pub burst: u32,
    /// Sustained search requests per second; default 4.
    pub search_per_second: u32,
    /// Search burst; default 1.
    pub search_burst: u32,
    /// When `X-HubSpot-RateLimit-Remaining` falls to this, wait for the window to pass; default 5.
    pub remaining_floor: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_second: 8,
            burst: 10,
            search_per_second: 4,
            search_burst: 1,
            remaining_floor: 5,
        }
    }
}

impl Default for HubSpotSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: "https://api.hubapi.com".into(),
            api_version: "2026-03".into(),
            api_token: SecretString::from(""),
            duns_property: "duns_number".into(),
            default_owner_email: String::new(),
            create_missing_companies: true,
            actions: BTreeMap::new(),
            critical_types: ActionRules::DEFAULT_CRITICAL_TYPES.to_vec(),
            company_fields: BTreeMap::new(),
            time_zone: String::new(),
            timeout_secs: 30,
            reconcile_after_secs: 60,
            outage_pause_secs: 30,
            auth_probe_secs: 60,
            rate_limit: RateLimitSettings::default(),
        }
    }
}

impl HubSpotSettings {
    /// The mapper's rules: the action table and the switches that shape a plan.
    pub fn action_rules(&self) -> ActionRules {
        ActionRules::new(
            &self.actions,
            &self.critical_types,
            self.create_missing_companies,
            &self.duns_property,
            &self.company_fields,
        )
    }
}

/// `log.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` (default) or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `dnb_hubspot_bridge=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `dnb.*`: D&B as a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnbSettings {
    /// Direct+ base URL.
    pub base_url: String,
    /// Direct+ consumer key.
    pub client_key: SecretString,
    /// Direct+ consumer secret.
    pub client_secret: SecretString,
    /// Monitoring registration references to pull.
    pub registrations: Vec<String>,
    /// Direct+ calls per second for the whole deployment.
    pub rate_limit_per_sec: u32,
    /// The pull loop.
    pub pull: DnbPullSettings,
    /// Delivery files.
    pub files: DnbFileSettings,
    /// D&B's SFTP server.
    pub sftp: DnbSftpSettings,
}

impl Default for DnbSettings {
    fn default() -> Self {
        Self {
            base_url: "https://plus.dnb.com".into(),
            client_key: SecretString::from(""),
            client_secret: SecretString::from(""),
            registrations: Vec::new(),
            rate_limit_per_sec: 5,
            pull: DnbPullSettings::default(),
            files: DnbFileSettings::default(),
            sftp: DnbSftpSettings::default(),
        }
    }
}

/// `dnb.pull.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnbPullSettings {
    /// Run the pull loop inside `serve`.
    pub enabled: bool,
    /// Pause after a registration is drained, in seconds.
    pub interval_secs: u64,
    /// Notifications per call, 1 to 100.
    pub max_notifications: u32,
}

impl Default for DnbPullSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 60,
            max_notifications: 100,
        }
    }
}

/// `dnb.files.*`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnbFileSettings {
    /// The directory `serve` watches for delivery files; empty for none.
    pub inbox: String,
}

/// `dnb.sftp.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnbSftpSettings {
    /// Server host; empty turns SFTP off.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Login.
    pub username: String,
    /// The private key file.
    pub private_key_path: String,
    /// The known_hosts file the server's key must be in.
    pub known_hosts_path: String,
    /// The remote folder delivery files appear in.
    pub remote_dir: String,
    /// Pause between listings, in seconds.
    pub interval_secs: u64,
    /// Delete a remote file once its import committed.
    pub delete_after_download: bool,
}

impl Default for DnbSftpSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 22,
            username: String::new(),
            private_key_path: String::new(),
            known_hosts_path: String::new(),
            remote_dir: "/".into(),
            interval_secs: 300,
            delete_after_download: false,
        }
    }
}

/// Keys whose environment override is a comma-separated list.
const LIST_KEYS: [&str; 3] = [
    "webhook.secrets",
    "hubspot.critical_types",
    "dnb.registrations",
];

impl Settings {
    /// Loads `path` (a missing file means all defaults), expands variables
    /// from the process environment and applies `BRIDGE__…` overrides.
    /// Returns every loading problem at once; [`validate`] checks the values. After an
    /// unknown type or action name, the rest is still loaded and validated here, so that
    /// every problem is listed together.
    pub fn load(path: &Path) -> Result<Settings, Vec<ConfigError>> {
        Self::load_with(path, &|name| std::env::var(name).ok(), None)
    }

    /// [`Settings::load`] with an explicit variable lookup and, for tests,
    /// an explicit override source instead of the process environment.
    pub fn load_with(
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        overrides: Option<config::Map<String, String>>,
    ) -> Result<Settings, Vec<ConfigError>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(vec![ConfigError::new(
                    "config",
                    format!("cannot read {}: {error}", path.display()),
                )]);
            }
        };
        let mut tree: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_yaml_ng::from_str(&text).map_err(|error| {
                vec![ConfigError::new(
                    "config",
                    format!("{} is not valid YAML: {error}", path.display()),
                )]
            })?
        };
        let mut problems = Vec::new();
        interpolate::interpolate_tree(&mut tree, "", lookup, &mut problems);
        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .map(|message| ConfigError::new("config", message))
                .collect());
        }

        let mut environment = config::Environment::with_prefix("BRIDGE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",");
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        if let Some(overrides) = overrides {
            environment = environment.source(Some(overrides));
        }
        let merged = config::Config::builder()
            .add_source(config::File::from_str(
                &tree.to_string(),
                config::FileFormat::Json,
            ))
            .add_source(environment)
            .build()
            .map_err(|error| vec![ConfigError::new("config", error.to_string())])?;
        merged
            .clone()
            .try_deserialize::<Settings>()
            .map_err(|error| every_problem(&merged, error))
    }
}

/// Every problem of a configuration that did not deserialize, `error` being the first. A
/// name in `hubspot.actions` or `hubspot.critical_types` that is not a D&B type or action is
/// listed with its key, each one, and the rest is then loaded without those two keys and
/// validated, so that one run of `check-config` shows every problem.
fn every_problem(merged: &config::Config, error: config::ConfigError) -> Vec<ConfigError> {
    let mut problems = unknown_names(merged);
    if problems.is_empty() {
        return vec![ConfigError::new("config", error.to_string())];
    }
    let rest = merged
        .clone()
        .try_deserialize::<serde_json::Value>()
        .and_then(|mut tree| {
            if let Some(hubspot) = tree
                .get_mut("hubspot")
                .and_then(|value| value.as_object_mut())
            {
                hubspot.remove("actions");
                hubspot.remove("critical_types");
            }
            config::Config::builder()
                .add_source(config::File::from_str(
                    &tree.to_string(),
                    config::FileFormat::Json,
                ))
                .build()?
                .try_deserialize::<Settings>()
        });
    match rest {
        Ok(settings) => problems.extend(validate(&settings)),
        Err(error) => problems.push(ConfigError::new("config", error.to_string())),
    }
    problems
}

/// The entries of `hubspot.actions` and `hubspot.critical_types` that are not D&B types or
/// actions, each deserialized on its own as [`Settings`] deserializes it.
fn unknown_names(config: &config::Config) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    let table: BTreeMap<String, Vec<config::Value>> =
        config.get("hubspot.actions").unwrap_or_default();
    for (name, actions) in table {
        if let Err(error) = config::Value::from(name.as_str()).try_deserialize::<NotificationType>()
        {
            problems.push(ConfigError::new("hubspot.actions", error.to_string()));
        }
        for action in actions {
            if let Err(error) = action.try_deserialize::<ActionKind>() {
                let key = format!("hubspot.actions.{name}");
                problems.push(ConfigError::new(key, error.to_string()));
            }
        }
    }
    let critical: Vec<config::Value> = config.get("hubspot.critical_types").unwrap_or_default();
    for name in critical {
        if let Err(error) = name.try_deserialize::<NotificationType>() {
            problems.push(ConfigError::new(
                "hubspot.critical_types",
                error.to_string(),
            ));
        }
    }
    problems
}

/// Accepts `30d`, `12h`, `90s` (humantime) or a bare number of seconds.
fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
        Raw::Text(text) => {
            if let Ok(seconds) = text.trim().parse::<u64>() {
                return Ok(Duration::from_secs(seconds));
            }
            humantime::parse_duration(text.trim()).map_err(|error| {
                serde::de::Error::custom(format!("invalid duration {text:?}: {error}"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(
        yaml: &str,
        env: &[(&str, &str)],
        overrides: &[(&str, &str)],
    ) -> Result<Settings, Vec<ConfigError>> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(yaml.as_bytes()).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with(file.path(), &lookup, Some(overrides))
    }

    #[test]
    fn values_with_hash_colon_and_quotes_survive_interpolation() {
        let settings = load(
            "hubspot:\n  api_token: \"${HUBSPOT_API_TOKEN}\"\n  default_owner_email: '${OWNER:a#b@x.io}'\n",
            &[("HUBSPOT_API_TOKEN", "pat-na1-#x:y'\"z")],
            &[],
        )
        .unwrap();
        assert_eq!(
            settings.hubspot.api_token.expose_secret(),
            "pat-na1-#x:y'\"z"
        );
        assert_eq!(settings.hubspot.default_owner_email, "a#b@x.io");
    }

    #[test]
    fn interpolated_strings_become_typed_values() {
        let settings = load(
            "hubspot:\n  enabled: ${HUBSPOT_ENABLED:false}\nqueue:\n  capacity: ${CAP:16}\n",
            &[("HUBSPOT_ENABLED", "true")],
            &[],
        )
        .unwrap();
        assert!(settings.hubspot.enabled);
        assert_eq!(settings.queue.capacity, 16);
    }

    #[test]
    fn environment_overrides_win_and_split_lists() {
        let settings = load(
            "webhook:\n  secrets: [whsec_AAAA]\nworkers:\n  count: 2\n",
            &[],
            &[
                ("BRIDGE__WEBHOOK__SECRETS", "whsec_b25l,whsec_dHdv"),
                ("BRIDGE__WORKERS__COUNT", "7"),
            ],
        )
        .unwrap();
        let secrets: Vec<&str> = settings
            .webhook
            .secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        assert_eq!(secrets, ["whsec_b25l", "whsec_dHdv"]);
        assert_eq!(settings.workers.count, 7);
    }

    #[test]
    fn the_action_table_is_typed_with_type_names_in_any_case_and_durations_parse() {
        let settings = load(
            "hubspot:\n  actions:\n    DELETE: [create_note]\n    reviewed: [create_task]\n  critical_types: [exit]\nstorage:\n  retention: 12h\n",
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            settings.hubspot.actions,
            BTreeMap::from([
                (NotificationType::Delete, vec![ActionKind::CreateNote]),
                (NotificationType::Reviewed, vec![ActionKind::CreateTask]),
            ])
        );
        assert_eq!(settings.hubspot.critical_types, [NotificationType::Exit]);
        assert_eq!(settings.storage.retention, Duration::from_secs(12 * 3600));
    }

    #[test]
    fn critical_types_are_typed_from_an_environment_list_too() {
        let settings = load(
            "",
            &[],
            &[("BRIDGE__HUBSPOT__CRITICAL_TYPES", "DELETE,removed")],
        )
        .unwrap();
        assert_eq!(
            settings.hubspot.critical_types,
            [NotificationType::Delete, NotificationType::Removed]
        );
        let errors = load(
            "",
            &[],
            &[("BRIDGE__HUBSPOT__CRITICAL_TYPES", "DELETE,MERGE")],
        )
        .unwrap_err();
        assert_eq!(errors[0].key, "hubspot.critical_types", "{errors:?}");
        assert!(errors[0].message.contains("MERGE"), "{errors:?}");
    }

    #[test]
    fn unknown_type_and_action_names_are_loading_problems_listed_each_with_its_key() {
        let errors = load(
            "server:\n  bind: nowhere\nhubspot:\n  actions:\n    MERGE: [create_task]\n    DELETE: [create_task, send_fax]\n  critical_types: [DELETE, BOGUS]\n",
            &[],
            &[],
        )
        .unwrap_err();
        let listed: Vec<(&str, bool)> = errors
            .iter()
            .map(|error| {
                (
                    error.key.as_str(),
                    error.message.contains("unknown variant"),
                )
            })
            .collect();
        for expected in [
            ("hubspot.actions", true),
            ("hubspot.actions.DELETE", true),
            ("hubspot.critical_types", true),
            ("server.bind", false),
            ("webhook.secrets", false),
        ] {
            assert!(
                listed.contains(&expected),
                "{expected:?} missing from {errors:?}"
            );
        }
        for name in ["MERGE", "send_fax", "BOGUS"] {
            assert!(
                errors.iter().any(|error| error.message.contains(name)),
                "{name} missing from {errors:?}"
            );
        }
    }

    #[test]
    fn misspelt_keys_are_reported() {
        let errors = load("workers:\n  cuont: 3\n", &[], &[]).unwrap_err();
        assert!(errors[0].to_string().contains("cuont"), "{}", errors[0]);
    }

    #[test]
    fn the_repository_config_is_complete_and_valid_with_a_secret() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"));
        let lookup = |name: &str| {
            (name == "BRIDGE_WEBHOOK_SECRET")
                .then(|| "whsec_ZGV2LXNlY3JldC1kZXYtc2VjcmV0".to_string())
        };
        let settings = Settings::load_with(path, &lookup, Some(Default::default())).unwrap();
        assert_eq!(validate(&settings), Vec::new());
        assert!(!settings.hubspot.enabled);
        assert_eq!(settings.server.bind, "127.0.0.1:8080");
        // It documents the defaults: the whole action table and the critical types.
        for &kind in NotificationType::ALL {
            assert_eq!(
                settings.hubspot.actions.get(&kind),
                Some(&ActionRules::default_actions(kind)),
                "{kind}"
            );
        }
        assert_eq!(
            settings.hubspot.critical_types,
            ActionRules::DEFAULT_CRITICAL_TYPES
        );
    }

    #[test]
    fn unset_variable_and_bad_yaml_are_reported() {
        let errors = load("admin:\n  token: ${NOPE}\n", &[], &[]).unwrap_err();
        assert!(errors[0].to_string().contains("NOPE"));
        let errors = load("server: [unclosed\n", &[], &[]).unwrap_err();
        assert!(errors[0].to_string().contains("not valid YAML"));
    }
}
