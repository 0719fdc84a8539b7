//! `HubSpotClient`: one typed method per HubSpot call.
//!
//! Built once and shared by every worker: one connection pool (reqwest with
//! rustls), one set of rate limiters, one token (sent as a Bearer header, the
//! only place it is exposed). Calls never retry by themselves; a failure is
//! classified ([`HubSpotError`]) and the journal schedules any retry.

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{HubSpotError, classify, excerpt, parse_retry_after};
use super::model::{
    AccountDetails, BatchAnswer, BatchInputs, BatchReadRequest, CreateInput, Filter, FilterGroup,
    IdInput, OwnersAnswer, Property, SearchAnswer, SearchRequest, SimpleObject, UpdateInput,
};
use super::rate_limit::{CallKind, RateLimits};
use crate::cluster::Cluster;
use crate::config::HubSpotSettings;
use crate::telemetry::Metrics;

/// Most inputs HubSpot takes in one batch call.
pub const BATCH_LIMIT: usize = 100;
/// Most values put in one search `IN` filter (the body is capped at 3,000 characters).
const SEARCH_IN_LIMIT: usize = 100;

/// Which path family the client speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/crm/v3/objects/…` (unsupported from September 2027).
    V3,
    /// `/crm/objects/2026-03/…` and friends.
    Dated(String),
}

impl ApiVersion {
    /// From `hubspot.api_version`.
    pub fn parse(text: &str) -> Self {
        if text == "v3" {
            Self::V3
        } else {
            Self::Dated(text.to_string())
        }
    }

    /// The path of an API family (`objects`, `properties`, `owners`) below `/crm`,
    /// or `account-info` at the root, followed by `rest`.
    fn path(&self, family: &str, rest: &str) -> String {
        match (self, family) {
            (Self::V3, "account-info") => format!("/account-info/v3/{rest}"),
            (Self::Dated(version), "account-info") => format!("/account-info/{version}/{rest}"),
            (Self::V3, family) => format!("/crm/v3/{family}/{rest}"),
            (Self::Dated(version), family) => format!("/crm/{family}/{version}/{rest}"),
        }
    }
}

/// The HubSpot API client.
pub struct HubSpotClient {
    http: reqwest::Client,
    base_url: String,
    version: ApiVersion,
    token: SecretString,
    limits: RateLimits,
    metrics: std::sync::Arc<Metrics>,
}

impl HubSpotClient {
    /// A client for `hubspot.*`, pacing its calls with this process's own limiters.
    pub fn new(
        settings: &HubSpotSettings,
        metrics: std::sync::Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        Self::with_cluster(settings, metrics, None)
    }

    /// A client for `hubspot.*`; with a `cluster`, `hubspot.rate_limit` is the budget of
    /// every replica sharing its database (see [`RateLimits::shared`]).
    pub fn with_cluster(
        settings: &HubSpotSettings,
        metrics: std::sync::Arc<Metrics>,
        cluster: Option<std::sync::Arc<Cluster>>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.timeout_secs.min(10)))
            .user_agent(concat!("dnb-hubspot-bridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            version: ApiVersion::parse(&settings.api_version),
            token: settings.api_token.clone(),
            limits: match cluster {
                Some(cluster) => RateLimits::shared(&settings.rate_limit, cluster),
                None => RateLimits::new(&settings.rate_limit),
            },
            metrics,
        })
    }

    /// Sends one request and returns the success status and body, or the classified failure.
    async fn send<B: Serialize + ?Sized>(
        &self,
        endpoint: &'static str,
        kind: CallKind,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, String), HubSpotError> {
        self.limits.acquire(kind).await;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                self.metrics.hubspot_call(
                    endpoint,
                    if error.is_timeout() {
                        "timeout"
                    } else {
                        "error"
                    },
                );
                let failure = if error.is_connect() {
                    HubSpotError::Unreachable(error.without_url().to_string())
                } else {
                    // The request may have reached HubSpot and been applied.
                    HubSpotError::AnswerLost(error.without_url().to_string())
                };
                return Err(failure);
            }
        };
        let status = response.status();
        self.limits.observe(response.headers()).await;
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| parse_retry_after(text, SystemTime::now()));
        self.metrics.hubspot_call(endpoint, status.as_str());
        let text = response
            .text()
            .await
            .map_err(|error| HubSpotError::AnswerLost(error.without_url().to_string()))?;
        if status.is_success() {
            return Ok((status, text));
        }
        let error = classify(status.as_u16(), retry_after, &text);
        if let HubSpotError::RateLimited { retry_after, .. } = &error {
            self.limits
                .hold(retry_after.unwrap_or(Duration::from_secs(10)))
                .await;
        }
        Err(error)
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        kind: CallKind,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, HubSpotError> {
        let (status, text) = self.send(endpoint, kind, method, path, body).await?;
        serde_json::from_str(&text).map_err(|_| HubSpotError::InvalidResponse {
            status: status.as_u16(),
            excerpt: excerpt(&text),
        })
    }

    /// Reads companies by the values of a unique property (at most [`BATCH_LIMIT`] per call).
    /// Values with no company are simply absent from the answer.
    pub async fn read_companies_by(
        &self,
        id_property: &str,
        values: &[String],
        properties: &[String],
    ) -> Result<Vec<SimpleObject>, HubSpotError> {
        self.batch_read_companies(Some(id_property), values, properties)
            .await
    }

    /// Reads companies by record id; ids that no longer exist are absent from the answer.
    pub async fn read_companies(
        &self,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<SimpleObject>, HubSpotError> {
        self.batch_read_companies(None, ids, properties).await
    }

    /// Reads tasks by record id; ids that no longer exist (deleted) are absent from the answer.
    pub async fn read_tasks(
        &self,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<SimpleObject>, HubSpotError> {
        self.batch_read("tasks", None, ids, properties).await
    }

    async fn batch_read_companies(
        &self,
        id_property: Option<&str>,
        values: &[String],
        properties: &[String],
    ) -> Result<Vec<SimpleObject>, HubSpotError> {
        self.batch_read("companies", id_property, values, properties)
            .await
    }

    async fn batch_read(
        &self,
        object: &str,
        id_property: Option<&str>,
        values: &[String],
        properties: &[String],
    ) -> Result<Vec<SimpleObject>, HubSpotError> {
        let path = self
            .version
            .path("objects", &format!("{object}/batch/read?archived=false"));
        let endpoint = match object {
            "companies" => "companies_batch_read",
            _ => "tasks_batch_read",
        };
        let mut found = Vec::new();
        for chunk in values.chunks(BATCH_LIMIT) {
            let body = BatchReadRequest {
                id_property: id_property.map(str::to_string),
                inputs: chunk
                    .iter()
                    .map(|value| IdInput { id: value.clone() })
                    .collect(),
                properties: properties.to_vec(),
                properties_with_history: Vec::new(),
            };
            let answer: BatchAnswer = self
                .call(
                    endpoint,
                    CallKind::Standard,
                    Method::POST,
                    &path,
                    Some(&body),
                )
                .await?;
            found.extend(answer.results);
        }
        Ok(found)
    }

    /// Finds records of `object` whose `property` is one of `values` through search
    /// (for a non-unique DUNS property). Search lags writes by seconds to a minute.
    pub async fn search_in(
        &self,
        object: &str,
        property: &str,
        values: &[String],
        properties: &[String],
    ) -> Result<Vec<SimpleObject>, HubSpotError> {
        let mut found = Vec::new();
        for chunk in values.chunks(SEARCH_IN_LIMIT) {
            let filter = Filter {
                property_name: property.to_string(),
                operator: "IN".into(),
                value: None,
                // HubSpot wants lowercase values in IN filters on strings.
                values: Some(chunk.iter().map(|value| value.to_lowercase()).collect()),
            };
            found.extend(self.search(object, filter, properties).await?);
        }
        Ok(found)
    }

    /// Finds records of `object` whose `property` contains `token` (reconciling lost creates).
    pub async fn search_token(
        &self,
        object: &str,
        property: &str,
        token: &str,
        properties: &[String],
    ) -> Result<Vec<SimpleObject>, HubSpotError> {
        let filter = Filter {
            property_name: property.to_string(),
            operator: "CONTAINS_TOKEN".into(),
            value: Some(token.to_string()),
            values: None,
        };
        self.search(object, filter, properties).await
    }

    async fn search(
        &self,
        object: &str,
        filter: Filter,
        properties: &[String],
    ) -> Result<Vec<SimpleObject>, HubSpotError> {
        let path = self.version.path("objects", &format!("{object}/search"));
        let endpoint = match object {
            "companies" => "companies_search",
            "tasks" => "tasks_search",
            _ => "notes_search",
        };
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let body = SearchRequest {
                filter_groups: vec![FilterGroup {
                    filters: vec![filter.clone()],
                }],
                properties: properties.to_vec(),
                limit: 200,
                after: after.take(),
            };
            let answer: SearchAnswer = self
                .call(endpoint, CallKind::Search, Method::POST, &path, Some(&body))
                .await?;
            found.extend(answer.results);
            match answer.paging.and_then(|paging| paging.next) {
                Some(next) if !next.after.is_empty() => after = Some(next.after),
                _ => return Ok(found),
            }
        }
    }

    /// Creates records of `object` (`companies`, `tasks`, `notes`); at most [`BATCH_LIMIT`] inputs.
    /// A 207 comes back as `Ok` with per-input errors keyed by trace id.
    pub async fn create(
        &self,
        object: &str,
        inputs: Vec<CreateInput>,
    ) -> Result<BatchAnswer, HubSpotError> {
        debug_assert!(inputs.len() <= BATCH_LIMIT);
        let path = self
            .version
            .path("objects", &format!("{object}/batch/create"));
        let endpoint = match object {
            "companies" => "companies_batch_create",
            "tasks" => "tasks_batch_create",
            _ => "notes_batch_create",
        };
        self.call(
            endpoint,
            CallKind::Standard,
            Method::POST,
            &path,
            Some(&BatchInputs { inputs }),
        )
        .await
    }

    /// Updates companies by record id; at most [`BATCH_LIMIT`] inputs, each id once.
    pub async fn update_companies(
        &self,
        inputs: Vec<UpdateInput>,
    ) -> Result<BatchAnswer, HubSpotError> {
        self.update("companies", inputs).await
    }

    /// Updates records of `object` (`companies`, `tasks`) by id; at most [`BATCH_LIMIT`]
    /// inputs, each id once.
    pub async fn update(
        &self,
        object: &str,
        inputs: Vec<UpdateInput>,
    ) -> Result<BatchAnswer, HubSpotError> {
        debug_assert!(inputs.len() <= BATCH_LIMIT);
        let path = self
            .version
            .path("objects", &format!("{object}/batch/update"));
        let endpoint = match object {
            "companies" => "companies_batch_update",
            _ => "tasks_batch_update",
        };
        self.call(
            endpoint,
            CallKind::Standard,
            Method::POST,
            &path,
            Some(&BatchInputs { inputs }),
        )
        .await
    }

    /// The owner id for an email, if HubSpot knows the email.
    pub async fn owner_id(&self, email: &str) -> Result<Option<String>, HubSpotError> {
        let query = format!("?email={}&archived=false", urlencode(email));
        let path = self.version.path("owners", &query);
        let answer: OwnersAnswer = self
            .call::<(), _>("owners", CallKind::Standard, Method::GET, &path, None)
            .await?;
        Ok(answer
            .results
            .into_iter()
            .find(|owner| {
                owner
                    .email
                    .as_deref()
                    .is_some_and(|found| found.eq_ignore_ascii_case(email))
            })
            .map(|owner| owner.id))
    }

    /// Portal details (time zone); also the cheapest proof that the token works.
    pub async fn account_details(&self) -> Result<AccountDetails, HubSpotError> {
        let path = self.version.path("account-info", "details");
        self.call::<(), _>(
            "account_details",
            CallKind::Standard,
            Method::GET,
            &path,
            None,
        )
        .await
    }

    /// A company property's definition, `None` when it does not exist.
    pub async fn company_property(&self, name: &str) -> Result<Option<Property>, HubSpotError> {
        let path = self
            .version
            .path("properties", &format!("companies/{}", urlencode(name)));
        match self
            .call::<(), Property>(
                "properties_read",
                CallKind::Standard,
                Method::GET,
                &path,
                None,
            )
            .await
        {
            Ok(property) => Ok(Some(property)),
            Err(HubSpotError::Rejected { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl HubSpotClient {
    /// The definitions of the named company properties that exist (one call).
    pub async fn company_properties(
        &self,
        names: &[String],
    ) -> Result<Vec<Property>, HubSpotError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            results: Vec<Property>,
        }
        let body = serde_json::json!({
            "inputs": names.iter().map(|name| serde_json::json!({"name": name})).collect::<Vec<_>>(),
            "archived": false,
            "dataSensitivity": "non_sensitive",
        });
        let path = self.version.path("properties", "companies/batch/read");
        let answer: Answer = self
            .call(
                "properties_read",
                CallKind::Standard,
                Method::POST,
                &path,
                Some(&body),
            )
            .await?;
        Ok(answer.results)
    }

    /// Creates a company property; one that already exists (409) counts as created.
    pub async fn create_company_property(
        &self,
        property: &super::properties::PropertyCreate,
    ) -> Result<(), HubSpotError> {
        let path = self.version.path("properties", "companies");
        match self
            .send(
                "properties_create",
                CallKind::Standard,
                Method::POST,
                &path,
                Some(property),
            )
            .await
        {
            Ok(_) | Err(HubSpotError::Rejected { status: 409, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Creates a company property group unless it exists.
    pub async fn ensure_company_property_group(
        &self,
        name: &str,
        label: &str,
    ) -> Result<(), HubSpotError> {
        #[derive(serde::Deserialize)]
        struct Groups {
            results: Vec<Group>,
        }
        #[derive(serde::Deserialize)]
        struct Group {
            name: String,
        }
        let path = self.version.path("properties", "companies/groups");
        let groups: Groups = self
            .call::<(), _>(
                "property_groups",
                CallKind::Standard,
                Method::GET,
                &path,
                None,
            )
            .await?;
        if groups.results.iter().any(|group| group.name == name) {
            return Ok(());
        }
        let body = serde_json::json!({"name": name, "label": label, "displayOrder": -1});
        match self
            .send(
                "property_groups",
                CallKind::Standard,
                Method::POST,
                &path,
                Some(&body),
            )
            .await
        {
            Ok(_) | Err(HubSpotError::Rejected { status: 409, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Percent-encodes a query or path value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use httpmock::prelude::*;
    use secrecy::SecretString;
    use std::sync::Arc;

    fn client(server: &MockServer, timeout_secs: u64) -> HubSpotClient {
        let settings = HubSpotSettings {
            base_url: server.base_url(),
            api_token: SecretString::from("pat-test-token"),
            timeout_secs,
            ..HubSpotSettings::default()
        };
        HubSpotClient::new(&settings, Arc::new(Metrics::new())).unwrap()
    }

    fn duns(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| value.to_string()).collect()
    }

    #[tokio::test]
    async fn batch_read_by_duns_sends_the_token_and_the_date_versioned_path() {
        let server = MockServer::start_async().await;
        let mock = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path("/crm/objects/2026-03/companies/batch/read")
                    .header("authorization", "Bearer pat-test-token")
                    .json_body_includes(r#"{"idProperty":"duns_number","inputs":[{"id":"021258997"}]}"#);
                then.status(207).json_body(serde_json::json!({
                    "status": "COMPLETE",
                    "results": [{"id": "18273645", "properties": {"duns_number": "021258997", "hubspot_owner_id": null}}],
                    "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "missing", "context": {"ids": ["999999999"]}}]
                }));
            })
            .await;
        let found = client(&server, 5)
            .read_companies_by(
                "duns_number",
                &duns(&["021258997"]),
                &duns(&["duns_number"]),
            )
            .await
            .unwrap();
        mock.assert_async().await;
        assert_eq!(found[0].id, "18273645");
        assert_eq!(found[0].property("hubspot_owner_id"), None);
    }

    #[tokio::test]
    async fn a_429_with_retry_after_is_rate_limited_and_holds_later_calls() {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(GET).path("/account-info/2026-03/details");
                then.status(429)
                    .header("retry-after", "1")
                    .json_body(serde_json::json!({"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}));
            })
            .await;
        let client = client(&server, 5);
        let error = client.account_details().await.unwrap_err();
        assert!(
            matches!(
                error,
                HubSpotError::RateLimited {
                    retry_after: Some(_),
                    daily: false,
                    ..
                }
            ),
            "{error:?}"
        );
        let started = std::time::Instant::now();
        let _ = client.account_details().await;
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "the second call waited for Retry-After"
        );
    }

    #[tokio::test]
    async fn a_retry_after_given_as_an_http_date_is_the_time_until_that_date() {
        let server = MockServer::start_async().await;
        let date = (chrono::Utc::now() + chrono::TimeDelta::seconds(120))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        server
            .mock_async(|when, then| {
                when.method(GET).path("/account-info/2026-03/details");
                then.status(429)
                    .header("retry-after", date.as_str())
                    .json_body(serde_json::json!({"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY"}));
            })
            .await;
        let error = client(&server, 5).account_details().await.unwrap_err();
        let HubSpotError::RateLimited {
            retry_after: Some(retry_after),
            daily: true,
            ..
        } = error
        else {
            panic!("{error:?}")
        };
        assert!(
            (Duration::from_secs(110)..=Duration::from_secs(120)).contains(&retry_after),
            "{retry_after:?}"
        );
    }

    #[tokio::test]
    async fn a_500_is_unavailable_and_a_400_is_rejected_with_its_correlation_id() {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(POST)
                    .path("/crm/objects/2026-03/tasks/batch/create");
                then.status(500).body("oops");
            })
            .await;
        server
            .mock_async(|when, then| {
                when.method(POST).path("/crm/objects/2026-03/notes/batch/create");
                then.status(400).json_body(serde_json::json!({
                    "status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR", "correlationId": "c-1"}));
            })
            .await;
        let client = client(&server, 5);
        let error = client.create("tasks", Vec::new()).await.unwrap_err();
        assert!(
            matches!(error, HubSpotError::Unavailable { status: 500, .. }) && error.is_systemic()
        );
        let error = client.create("notes", Vec::new()).await.unwrap_err();
        assert!(
            matches!(&error, HubSpotError::Rejected { correlation_id, .. } if correlation_id == "c-1")
        );
        assert!(!error.is_systemic());
    }

    #[tokio::test]
    async fn a_timeout_means_the_answer_was_lost_and_never_shows_the_token() {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(POST)
                    .path("/crm/objects/2026-03/notes/batch/create");
                then.status(201)
                    .delay(Duration::from_secs(3))
                    .json_body(serde_json::json!({"results": []}));
            })
            .await;
        let error = client(&server, 1)
            .create("notes", Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(error, HubSpotError::AnswerLost(_)), "{error:?}");
        assert!(!error.to_string().contains("pat-test-token"));
    }

    #[tokio::test]
    async fn a_success_that_does_not_parse_is_an_invalid_response() {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(GET).path("/account-info/2026-03/details");
                then.status(200).body("<html>maintenance</html>");
            })
            .await;
        let error = client(&server, 5).account_details().await.unwrap_err();
        assert!(matches!(
            error,
            HubSpotError::InvalidResponse { status: 200, .. }
        ));
    }

    #[test]
    fn only_the_path_prefix_differs_between_versions() {
        let dated = ApiVersion::parse("2026-03");
        assert_eq!(
            dated.path("objects", "tasks/batch/create"),
            "/crm/objects/2026-03/tasks/batch/create"
        );
        assert_eq!(
            dated.path("owners", "?email=a"),
            "/crm/owners/2026-03/?email=a"
        );
        assert_eq!(
            dated.path("account-info", "details"),
            "/account-info/2026-03/details"
        );
        let v3 = ApiVersion::parse("v3");
        assert_eq!(
            v3.path("objects", "tasks/batch/create"),
            "/crm/v3/objects/tasks/batch/create"
        );
        assert_eq!(
            v3.path("properties", "companies/duns_number"),
            "/crm/v3/properties/companies/duns_number"
        );
        assert_eq!(urlencode("rep+1@acme.com"), "rep%2B1%40acme.com");
    }
}
