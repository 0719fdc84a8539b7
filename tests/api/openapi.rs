//! Conformance to `openapi.yaml`: real exchanges with running apps are checked
//! against the documented operation, status, headers and body schema, and the
//! reverse: every documented operation and answer is exercised, and every
//! route the server serves is documented.
//!
//! The exchanges run once (on their own runtime) and several tests judge them.
//! Schemas are OpenAPI 3.0: `$ref`s are inlined from `components`,
//! `nullable: true` becomes "or null", `format` is asserted (a `date-time` must
//! be RFC 3339, as the server parses it), and answers may carry no property the
//! spec does not name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dnb_hubspot_bridge::hubspot::properties;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::executors::Gated;
use crate::fake_hubspot::{FakeConfig, FakeHubSpot};
use crate::helpers::*;

const TOKEN: &str = "openapi-conformance-admin-token";
const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";
/// A well-formed secret the apps are not configured with.
const UNKNOWN_SECRET: &str = "whsec_d3Jvbmctc2lnbmluZy1zZWNyZXQtMDEyMzQ1Njc4OQ==";

/// Documented answers no exchange here provokes, each with the reason.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[(
    "post",
    "/webhooks/dnb",
    "500",
    "needs a journal that fails to commit",
)];

/// Answer headers that carry meaning: when the server sends one, the answer must document it.
const MEANINGFUL_HEADERS: &[&str] = &["retry-after", "www-authenticate", "location", "link"];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

// ---------------------------------------------------------------- the spec

/// `openapi.yaml`, parsed.
struct Spec {
    doc: Value,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml is at the repository root");
        let doc: Value = serde_yaml_ng::from_str(&text).expect("openapi.yaml is valid YAML");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.0")),
            "this check reads OpenAPI 3.0 documents"
        );
        Spec { doc }
    })
}

impl Spec {
    /// Every documented `(method, path template)`.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut operations = BTreeSet::new();
        for (template, item) in self.doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if item.get(*method).is_some() {
                    operations.insert(((*method).to_string(), template.clone()));
                }
            }
        }
        operations
    }

    /// The operation serving `method path`: its template and object. Literal
    /// segments win over `{parameters}`.
    fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()?
            .iter()
            .filter_map(|(template, item)| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') && part.ends_with('}') {
                        if segment.is_empty() {
                            return None;
                        }
                    } else if part == segment {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                item.get(method)
                    .map(|operation| (literal, template.as_str(), operation))
            })
            .max_by_key(|(literal, _, _)| *literal)
            .map(|(_, template, operation)| (template, operation))
    }

    /// Follows `$ref`s to the object they name.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return value;
            };
            value = self.target(reference);
        }
        panic!("openapi.yaml: a $ref cycle");
    }

    fn target(&self, reference: &str) -> &Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("openapi.yaml: only local $refs are read, got {reference}"));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("openapi.yaml: $ref {reference} names nothing"))
    }

    /// The documented answer for `status`: the exact code, else its `NXX` range.
    fn response<'a>(&'a self, operation: &'a Value, status: u16) -> Option<&'a Value> {
        let responses = operation.get("responses")?;
        responses
            .get(status.to_string())
            .or_else(|| responses.get(format!("{}XX", status / 100)))
            .map(|response| self.resolve(response))
    }

    /// Parameters of an operation, with those of its path item.
    fn parameters<'a>(&'a self, template: &str, operation: &'a Value) -> Vec<&'a Value> {
        let item = &self.doc["paths"][template];
        let own: Vec<&Value> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|parameter| self.resolve(parameter))
            .collect();
        let mut all = own.clone();
        for inherited in item["parameters"].as_array().into_iter().flatten() {
            let inherited = self.resolve(inherited);
            if !own
                .iter()
                .any(|p| p["name"] == inherited["name"] && p["in"] == inherited["in"])
            {
                all.push(inherited);
            }
        }
        all
    }

    /// An OpenAPI 3.0 schema as a JSON Schema (2020-12). With `closed`, objects
    /// refuse properties the schema does not name (an `allOf` is closed as a whole).
    fn json_schema(&self, schema: &Value, closed: bool) -> Value {
        self.convert(schema, closed, false, 0)
    }

    fn convert(&self, schema: &Value, closed: bool, in_all_of: bool, depth: usize) -> Value {
        assert!(
            depth < 64,
            "openapi.yaml: schemas nest too deep (a $ref cycle?)"
        );
        let Value::Object(map) = schema else {
            return schema.clone();
        };
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            // OpenAPI 3.0 ignores the siblings of a $ref.
            return self.convert(self.target(reference), closed, in_all_of, depth + 1);
        }
        let each = |values: &Value, in_all_of: bool| -> Value {
            Value::Array(
                values
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|value| self.convert(value, closed, in_all_of, depth + 1))
                    .collect(),
            )
        };
        let mut out = Map::new();
        for (key, value) in map {
            let converted = match key.as_str() {
                // OpenAPI-only keywords; `nullable` is applied below.
                "nullable" | "example" | "xml" | "discriminator" | "externalDocs"
                | "deprecated" | "readOnly" | "writeOnly" => continue,
                "properties" => Value::Object(
                    value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(name, property)| {
                            (
                                name.clone(),
                                self.convert(property, closed, false, depth + 1),
                            )
                        })
                        .collect(),
                ),
                "items" | "not" => self.convert(value, closed, false, depth + 1),
                "additionalProperties" if value.is_object() => {
                    self.convert(value, closed, false, depth + 1)
                }
                "allOf" => each(value, true),
                "anyOf" | "oneOf" => each(value, in_all_of),
                // 3.0 booleans beside minimum/maximum; 2020-12 wants the bound itself.
                "exclusiveMinimum" | "exclusiveMaximum" if value.is_boolean() => continue,
                _ => value.clone(),
            };
            out.insert(key.clone(), converted);
        }
        for (flag, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            if map.get(flag) == Some(&Value::Bool(true))
                && let Some(bound) = out.remove(bound)
            {
                out.insert(flag.into(), bound);
            }
        }
        if closed
            && !in_all_of
            && !map.contains_key("additionalProperties")
            && (map.contains_key("properties") || map.contains_key("allOf"))
        {
            out.insert("unevaluatedProperties".into(), Value::Bool(false));
        }
        let converted = Value::Object(out);
        if map.get("nullable") == Some(&Value::Bool(true)) {
            json!({"anyOf": [converted, {"type": "null"}]})
        } else {
            converted
        }
    }

    /// Every way `instance` breaks `schema`; empty when it conforms.
    fn violations(&self, schema: &Value, closed: bool, instance: &Value) -> Vec<String> {
        let converted = self.json_schema(schema, closed);
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&converted)
            .unwrap_or_else(|error| panic!("openapi.yaml: a schema does not compile: {error}"));
        validator
            .iter_errors(instance)
            .map(|error| format!("at {:?}: {error}", error.instance_path().to_string()))
            .collect()
    }

    /// The `type` a (possibly `$ref`) schema declares.
    fn schema_type<'a>(&'a self, schema: &'a Value) -> Option<&'a str> {
        self.resolve(schema).get("type").and_then(Value::as_str)
    }
}

/// `type/subtype` of a media type, lower case, without parameters.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The documented media type `content_type` falls under (exact, `type/*` or `*/*`).
fn media<'a>(content: &'a Value, content_type: &str) -> Option<(&'a str, &'a Value)> {
    let wanted = essence(content_type);
    let main = wanted.split('/').next().unwrap_or_default().to_string();
    let content = content.as_object()?;
    [wanted.clone(), format!("{main}/*"), "*/*".to_string()]
        .iter()
        .find_map(|key| {
            content
                .iter()
                .find(|(documented, _)| essence(documented) == *key)
        })
        .map(|(key, value)| (key.as_str(), value))
}

fn is_json(media_type: &str) -> bool {
    let essence = essence(media_type);
    essence == "application/json" || essence.ends_with("+json")
}

/// A parameter or header value as the JSON its schema types it as.
fn typed(spec: &Spec, schema: &Value, text: &str) -> Value {
    let parsed = match spec.schema_type(schema) {
        Some("integer") => text.parse::<i64>().ok().map(Value::from),
        Some("number") => text.parse::<f64>().ok().map(Value::from),
        Some("boolean") => text.parse::<bool>().ok().map(Value::from),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_string()))
}

// ---------------------------------------------------------------- exchanges

/// What the request is, measured against the spec's description of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Conforms to the documented parameters, security and body.
    Conforming,
    /// Breaks them: the spec itself must say why it is refused.
    Nonconforming,
    /// Wrong in a way no schema shows (a bad signature, a stale timestamp, its size).
    Unjudged,
}

/// One request and the answer it got.
#[derive(Debug)]
struct Exchange {
    what: String,
    method: String,
    path: String,
    query: Vec<(String, String)>,
    request_headers: HeaderMap,
    request_body: Option<Vec<u8>>,
    sent: Sent,
    aim: u16,
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Exchange {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn label(&self) -> String {
        let query = if self.query.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = self
                .query
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            format!("?{}", pairs.join("&"))
        };
        format!(
            "{} ({} {}{query} answered {})",
            self.what,
            self.method.to_uppercase(),
            self.path,
            self.status
        )
    }
}

/// Sends `request` and records the exchange.
async fn exchange(what: &str, request: reqwest::RequestBuilder, sent: Sent, aim: u16) -> Exchange {
    let (client, request) = request.build_split();
    let request = request.expect("the request builds");
    let url = request.url().clone();
    let method = request.method().as_str().to_ascii_lowercase();
    let request_headers = request.headers().clone();
    let request_body = request
        .body()
        .and_then(reqwest::Body::as_bytes)
        .map(<[u8]>::to_vec);
    let response = client
        .execute(request)
        .await
        .unwrap_or_else(|error| panic!("{what}: no answer: {error}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("the answer's body").to_vec();
    Exchange {
        what: what.to_string(),
        method,
        path: url.path().to_string(),
        query: url
            .query_pairs()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect(),
        request_headers,
        request_body,
        sent,
        aim,
        status,
        headers,
        body,
    }
}

fn webhook(app: &TestApp, body: impl Into<Vec<u8>>, content_type: &str) -> reqwest::RequestBuilder {
    webhook_as(
        app,
        body,
        content_type,
        &new_webhook_id(),
        now_secs(),
        SECRET,
    )
}

fn webhook_as(
    app: &TestApp,
    body: impl Into<Vec<u8>>,
    content_type: &str,
    webhook_id: &str,
    timestamp: i64,
    secret: &str,
) -> reqwest::RequestBuilder {
    let body = body.into();
    let signature = sign(secret, webhook_id, timestamp, &body);
    app.client
        .post(app.url("/webhooks/dnb"))
        .header("content-type", content_type)
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
}

/// A delivery signed with the test secret, its headers under Svix's names.
fn svix_webhook(app: &TestApp, body: impl Into<Vec<u8>>) -> reqwest::RequestBuilder {
    let body = body.into();
    let (id, timestamp) = (new_webhook_id(), now_secs());
    app.client
        .post(app.url("/webhooks/dnb"))
        .header("content-type", JSON)
        .header("svix-signature", sign(SECRET, &id, timestamp, &body))
        .header("svix-id", id)
        .header("svix-timestamp", timestamp.to_string())
        .body(body)
}

fn admin_get(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.client.get(app.url(path)).bearer_auth(TOKEN)
}

fn admin_replay(app: &TestApp, body: &Value) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/replay"))
        .bearer_auth(TOKEN)
        .json(body)
}

fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn sample_json(name: &str) -> Value {
    serde_json::from_slice(&sample(name)).unwrap()
}

async fn admin_app() -> TestApp {
    spawn_configured_app(|settings| settings.admin.token = SecretString::from(TOKEN)).await
}

async fn wait_for_status(app: &TestApp, id: &str, status: &str) {
    let id: u64 = id.parse().expect("journal ids are numbers");
    app.wait_for_count(
        &format!("SELECT count(*) FROM notifications WHERE id = {id} AND status = '{status}'"),
        1,
    )
    .await;
}

/// Sends each `(what, request, sent, aim)` in order.
async fn send_all(cases: Vec<(&str, reqwest::RequestBuilder, Sent, u16)>) -> Vec<Exchange> {
    let mut run = Vec::new();
    for (what, request, sent, aim) in cases {
        run.push(exchange(what, request, sent, aim).await);
    }
    run
}

/// The JSON answer of the exchange described as `what`.
fn answer_of(run: &[Exchange], what: &str) -> Value {
    run.iter()
        .find(|exchange| exchange.what == what)
        .map_or(Value::Null, Exchange::json)
}

/// Every body shape, every refusal, the probes and the admin endpoints of one app.
async fn everyday_exchanges() -> Vec<Exchange> {
    use Sent::{Conforming, Nonconforming, Unjudged};
    let app = admin_app().await;
    let single = to_vec(&sample_json("reviewed.json")["notifications"][0]);
    let (single_id, single_at) = (new_webhook_id(), now_secs());
    let array = to_vec(&sample_json("transfer.json")["notifications"]);
    let mixed = to_vec(&json!({"notifications": [
        notification("DELETE", "123456789", "2024-05-13T08:00:00.000Z"),
        notification("DELETE", "12345", "2024-05-13T08:00:00.000Z"),
        notification("MERGE", "123456789", "2024-05-13T08:00:00.000Z"),
        {"type": "UPDATE", "deliveryTimeStamp": "2024-05-13T08:00:00.000Z"},
        [1, 2],
    ]}));
    let good_line = serde_json::to_string(&notification(
        "EXIT",
        "111222333",
        "2024-05-13T08:00:00.000Z",
    ))
    .unwrap();
    let bad_line = format!("{good_line}\n{{\"type\": \"EXIT\", oops\n");
    let exit = || sample("exit.json");
    let unsigned = app
        .client
        .post(app.url("/webhooks/dnb"))
        .header("content-type", JSON)
        .body(exit());
    let old = now_secs() - 3600;
    let mut run = send_all(vec![
        // 202: each body shape, an empty list, a redelivery, rejected items.
        (
            "a Direct+ pull response is accepted",
            webhook(
                &app,
                sample("update.json"),
                "application/json; charset=utf-8",
            ),
            Conforming,
            202,
        ),
        (
            "one notification object is accepted",
            webhook_as(&app, single.clone(), JSON, &single_id, single_at, SECRET),
            Conforming,
            202,
        ),
        (
            "a JSON array of notifications is accepted",
            webhook(&app, array, JSON),
            Conforming,
            202,
        ),
        (
            "an NDJSON file is accepted",
            webhook(&app, sample(NDJSON_SAMPLE), NDJSON),
            Conforming,
            202,
        ),
        (
            "an empty notifications list is accepted with nothing in it",
            webhook(&app, "{\"notifications\": []}", JSON),
            Conforming,
            202,
        ),
        (
            "a redelivered webhook-id is answered with duplicates",
            webhook_as(&app, single, JSON, &single_id, single_at, SECRET),
            Conforming,
            202,
        ),
        (
            "invalid items are listed as rejected beside the valid one",
            webhook(&app, mixed, JSON),
            Unjudged,
            202,
        ),
        (
            "an unparsable NDJSON line is rejected by index",
            webhook(&app, bad_line, NDJSON),
            Unjudged,
            202,
        ),
        // Refusals.
        (
            "a body that is not JSON is 400",
            webhook(&app, "{\"type\": \"EXIT\", oops", JSON),
            Nonconforming,
            400,
        ),
        (
            "a JSON object of no accepted shape is 400",
            webhook(&app, "{\"hello\": 1}", JSON),
            Nonconforming,
            400,
        ),
        (
            "a JSON string is 400",
            webhook(&app, "\"text\"", JSON),
            Nonconforming,
            400,
        ),
        (
            "a signature by an unknown secret is 401",
            webhook_as(
                &app,
                exit(),
                JSON,
                &new_webhook_id(),
                now_secs(),
                UNKNOWN_SECRET,
            ),
            Unjudged,
            401,
        ),
        (
            "a delivery signed under Svix's header names is accepted",
            svix_webhook(&app, sample("delete.json")),
            Conforming,
            202,
        ),
        (
            "a delivery without signature headers is 401",
            unsigned,
            Nonconforming,
            401,
        ),
        (
            "a timestamp an hour old is 401",
            webhook_as(&app, exit(), JSON, &new_webhook_id(), old, SECRET),
            Unjudged,
            401,
        ),
        (
            "a text/plain body is 415",
            webhook(&app, exit(), "text/plain"),
            Nonconforming,
            415,
        ),
        // Probes and metrics.
        (
            "health is 200",
            app.client.get(app.url("/health")),
            Conforming,
            200,
        ),
        (
            "ready is 200 with HubSpot disabled",
            app.client.get(app.url("/ready")),
            Conforming,
            200,
        ),
        (
            "metrics are 200",
            app.client.get(app.url("/metrics")),
            Conforming,
            200,
        ),
    ])
    .await;

    // GET /notifications.
    let processed = answer_of(&run, "one notification object is accepted")["ids"][0]
        .as_str()
        .expect("the single notification got an id")
        .to_string();
    wait_for_status(&app, &processed, "done").await;
    // Two lines of an EXCEPTIONS file, recorded as `import` records them.
    let connection = rusqlite::Connection::open(&app.db_path).unwrap();
    connection.busy_timeout(Duration::from_secs(5)).unwrap();
    connection
        .execute_batch(
            "INSERT INTO dnb_exceptions (file_name, line, duns, code, information, recorded_at) VALUES
             ('REF_20240513080000_EXCEPTIONS_1.txt', 2, '081466849', '10001', 'DUNS not found', 1715587200000),
             ('REF_20240513080000_EXCEPTIONS_1.txt', 3, '502329781', '10002', '', 1715587200000)",
        )
        .unwrap();
    drop(connection);
    let listed = send_all(vec![
        ("the exceptions are 200", admin_get(&app, "/exceptions"), Conforming, 200),
        (
            "a page of exceptions is 200 with a next cursor",
            admin_get(&app, "/exceptions?limit=1"),
            Conforming,
            200,
        ),
        (
            "the exceptions of one DUNS are 200",
            admin_get(&app, "/exceptions?duns=081466849"),
            Conforming,
            200,
        ),
        (
            "an exceptions limit over 1000 is 400",
            admin_get(&app, "/exceptions?limit=1001"),
            Nonconforming,
            400,
        ),
        (
            "the exceptions without a token are 401",
            app.client.get(app.url("/exceptions")),
            Nonconforming,
            401,
        ),
        ("the list is 200", admin_get(&app, "/notifications"), Conforming, 200),
        (
            "a short page is 200 with a next cursor",
            admin_get(&app, "/notifications?limit=2"),
            Conforming,
            200,
        ),
        (
            "a filter by status and times is 200",
            admin_get(
                &app,
                "/notifications?status=rejected&since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00%2B02:00",
            ),
            Conforming,
            200,
        ),
        (
            "a filter by type and duns is 200",
            admin_get(&app, "/notifications?type=DELETE&duns=123456789"),
            Conforming,
            200,
        ),
        (
            "a limit over 1000 is 400",
            admin_get(&app, "/notifications?limit=1001"),
            Nonconforming,
            400,
        ),
        (
            "an unknown status is 400",
            admin_get(&app, "/notifications?status=finished"),
            Nonconforming,
            400,
        ),
        (
            "an unknown query parameter is 400",
            admin_get(&app, "/notifications?colour=blue"),
            Nonconforming,
            400,
        ),
        (
            "an empty cursor is the first page",
            admin_get(&app, "/notifications?cursor="),
            Conforming,
            200,
        ),
        (
            "an empty since is 400",
            admin_get(&app, "/notifications?since="),
            Nonconforming,
            400,
        ),
        (
            "an empty until is 400",
            admin_get(&app, "/notifications?until="),
            Nonconforming,
            400,
        ),
        (
            "an empty status, type or duns is 400",
            admin_get(&app, "/notifications?status=&type=&duns="),
            Nonconforming,
            400,
        ),
        (
            "an empty limit is 400",
            admin_get(&app, "/notifications?limit="),
            Nonconforming,
            400,
        ),
        (
            "a cursor the service never gave out is 400",
            admin_get(&app, "/notifications?cursor=bm90LWEtY3Vyc29y"),
            Unjudged,
            400,
        ),
        (
            "the list without a token is 401",
            app.client.get(app.url("/notifications")),
            Nonconforming,
            401,
        ),
        (
            "the list with a wrong token is 401",
            app.client.get(app.url("/notifications")).bearer_auth("not-the-token"),
            Unjudged,
            401,
        ),
    ])
    .await;
    let cursor = answer_of(&listed, "a short page is 200 with a next cursor")["next_cursor"]
        .as_str()
        .unwrap_or("no-cursor")
        .to_string();
    let rejected: Vec<String> = answer_of(&listed, "a filter by status and times is 200")["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str().map(str::to_string))
        .collect();
    run.extend(listed);

    // GET /notifications/{id} and POST /replay.
    let mut cases = vec![(
        "the page after a cursor is 200",
        admin_get(&app, &format!("/notifications?limit=2&cursor={cursor}")),
        Conforming,
        200,
    )];
    cases.extend(rejected.iter().map(|id| {
        (
            "a rejected notification is 200",
            admin_get(&app, &format!("/notifications/{id}")),
            Conforming,
            200,
        )
    }));
    let by_ids = json!({"ids": [processed, processed.parse::<u64>().unwrap(), "nope", "424242"]});
    let by_filter = json!({"dry_run": true, "filter": {"status": "done", "type": "REVIEWED",
        "duns": "804735132", "since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}});
    let not_json = app
        .client
        .post(app.url("/replay"))
        .bearer_auth(TOKEN)
        .header("content-type", JSON)
        .body("{\"ids\": [1");
    cases.extend([
        (
            "a processed notification is 200",
            admin_get(&app, &format!("/notifications/{processed}")),
            Conforming,
            200,
        ),
        (
            "an unknown id is 404",
            admin_get(&app, "/notifications/999999"),
            Conforming,
            404,
        ),
        (
            "a malformed id is 404",
            admin_get(&app, "/notifications/not-an-id"),
            Conforming,
            404,
        ),
        (
            "one notification without a token is 401",
            app.client
                .get(app.url(&format!("/notifications/{processed}"))),
            Nonconforming,
            401,
        ),
        (
            "a replay by ids is 200",
            admin_replay(&app, &by_ids),
            Conforming,
            200,
        ),
        (
            "a dry-run replay by filter is 200",
            admin_replay(&app, &by_filter),
            Conforming,
            200,
        ),
        (
            "a replay with both ids and filter is 400",
            admin_replay(&app, &json!({"ids": [processed], "filter": {}})),
            Nonconforming,
            400,
        ),
        (
            "a replay with neither ids nor filter is 400",
            admin_replay(&app, &json!({"dry_run": true})),
            Nonconforming,
            400,
        ),
        (
            "a replay filter with an unknown status is 400",
            admin_replay(&app, &json!({"filter": {"status": "finished"}})),
            Nonconforming,
            400,
        ),
        (
            "a replay filter with null fields is 200",
            admin_replay(
                &app,
                &json!({"dry_run": true, "filter": {"status": null, "type": null,
                    "duns": null, "since": null, "until": null}}),
            ),
            Conforming,
            200,
        ),
        (
            "a replay by filter with null ids is 200",
            admin_replay(
                &app,
                &json!({"ids": null, "dry_run": true, "filter": {"duns": "000000001"}}),
            ),
            Conforming,
            200,
        ),
        (
            "a replay by ids with a null filter and dry_run is 200",
            admin_replay(
                &app,
                &json!({"ids": ["424242"], "filter": null, "dry_run": null}),
            ),
            Conforming,
            200,
        ),
        (
            "a replay with null ids and filter is 400",
            admin_replay(&app, &json!({"ids": null, "filter": null})),
            Nonconforming,
            400,
        ),
        (
            "a replay id that is null is 400",
            admin_replay(&app, &json!({"ids": ["424242", null]})),
            Nonconforming,
            400,
        ),
        (
            "a replay id that is a fraction is 400",
            admin_replay(&app, &json!({"ids": [1.5]})),
            Nonconforming,
            400,
        ),
        (
            "a replay filter with an empty since is 400",
            admin_replay(&app, &json!({"filter": {"since": ""}})),
            Nonconforming,
            400,
        ),
        (
            "a replay filter with an empty until is 400",
            admin_replay(&app, &json!({"filter": {"until": ""}})),
            Nonconforming,
            400,
        ),
        (
            "a replay filter with an empty duns is 400",
            admin_replay(&app, &json!({"filter": {"duns": ""}})),
            Nonconforming,
            400,
        ),
        (
            "a replay body that is not JSON is 400",
            not_json,
            Nonconforming,
            400,
        ),
        (
            "a replay without a token is 401",
            app.client
                .post(app.url("/replay"))
                .json(&json!({"filter": {}})),
            Nonconforming,
            401,
        ),
    ]);
    run.extend(send_all(cases).await);
    assert!(
        !rejected.is_empty(),
        "the run journaled rejected notifications"
    );
    run
}

/// The admin endpoints of an app without `admin.token`.
async fn closed_admin_exchanges() -> Vec<Exchange> {
    let app = spawn_app().await;
    vec![
        exchange(
            "the list without a configured token is 404",
            admin_get(&app, "/notifications"),
            Sent::Conforming,
            404,
        )
        .await,
        exchange(
            "one notification without a configured token is 404",
            admin_get(&app, "/notifications/1"),
            Sent::Conforming,
            404,
        )
        .await,
        exchange(
            "the exceptions without a configured token are 404",
            admin_get(&app, "/exceptions"),
            Sent::Conforming,
            404,
        )
        .await,
        exchange(
            "a replay without a configured token is 404",
            admin_replay(&app, &json!({"ids": ["1"]})),
            Sent::Conforming,
            404,
        )
        .await,
    ]
}

/// A body over a small `webhook.max_body_bytes`.
async fn body_limit_exchanges() -> Vec<Exchange> {
    let app = spawn_configured_app(|settings| settings.webhook.max_body_bytes = 1024).await;
    let mut big = notification("UPDATE", "123456789", "2024-05-13T08:00:00.000Z");
    big["elements"] = json!([{"element": "organization.primaryName", "previous": "a", "current": "x".repeat(4096)}]);
    vec![
        exchange(
            "a body over webhook.max_body_bytes is 413",
            webhook(&app, to_vec(&big), JSON),
            Sent::Unjudged,
            413,
        )
        .await,
    ]
}

/// A backlog over `queue.high_water`: the webhook and readiness answer 503.
async fn overload_exchanges() -> Vec<Exchange> {
    let gate = Arc::new(Semaphore::new(0));
    let app = spawn_app_with(
        |settings| {
            settings.queue.high_water = 2;
            settings.workers.count = 1;
            settings.workers.batch_size = 1;
        },
        Arc::new(Gated(gate.clone())),
    )
    .await;
    let items: Vec<Value> = (0..4)
        .map(|index| {
            notification(
                "EXIT",
                &format!("50000000{index}"),
                "2024-05-13T08:00:00.000Z",
            )
        })
        .collect();
    app.accept(to_vec(&Value::Array(items)), JSON).await;
    app.wait_for_count(
        "SELECT count(*) FROM notifications WHERE status = 'pending'",
        3,
    )
    .await;
    let run = vec![
        exchange(
            "a delivery over the high-water mark is 503",
            webhook(&app, sample("exit.json"), JSON),
            Sent::Conforming,
            503,
        )
        .await,
        exchange(
            "ready over the high-water mark is 503",
            app.client.get(app.url("/ready")),
            Sent::Conforming,
            503,
        )
        .await,
    ];
    gate.add_permits(1000);
    run
}

/// A delivery whose body never arrives, past `server.request_timeout_secs`.
async fn timeout_exchanges() -> Vec<Exchange> {
    let app = spawn_configured_app(|settings| settings.server.request_timeout_secs = 1).await;
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let body = b"{\"notifications\": [";
    let head = format!(
        "POST /webhooks/dnb HTTP/1.1\r\nhost: {}\r\ncontent-type: {JSON}\r\ncontent-length: 4096\r\n\
         webhook-id: {}\r\nwebhook-timestamp: {}\r\nwebhook-signature: v1,AAAA\r\n\r\n",
        app.address,
        new_webhook_id(),
        now_secs()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let raw = tokio::time::timeout(Duration::from_secs(20), read_answer(&mut stream))
        .await
        .expect("the server answers a stalled body");
    let (status, headers, answer) = parse_answer(&raw);
    let mut request_headers = HeaderMap::new();
    request_headers.insert("content-type", HeaderValue::from_static(JSON));
    vec![Exchange {
        what: "a body that stalls past server.request_timeout_secs is 408".into(),
        method: "post".into(),
        path: "/webhooks/dnb".into(),
        query: Vec::new(),
        request_headers,
        request_body: Some(body.to_vec()),
        sent: Sent::Unjudged,
        aim: 408,
        status,
        headers,
        body: answer,
    }]
}

/// Reads one HTTP/1.1 answer (by `content-length`, else to the end of the stream).
async fn read_answer(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = find(&raw, b"\r\n\r\n")
            && let Some(length) = parse_answer(&raw[..end + 4])
                .1
                .get("content-length")
                .and_then(|value| value.to_str().ok()?.parse::<usize>().ok())
            && raw.len() >= end + 4 + length
        {
            return raw;
        }
        let read = stream.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            return raw;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn parse_answer(raw: &[u8]) -> (u16, HeaderMap, Vec<u8>) {
    let end = find(raw, b"\r\n\r\n").expect("an HTTP answer head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("an HTTP status line");
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
    }
    (status, headers, raw[end + 4..].to_vec())
}

/// A bridge writing to the fake HubSpot: objects it created, a skipped
/// notification, readiness with HubSpot ok.
async fn hubspot_exchanges() -> Vec<Exchange> {
    let fake = FakeHubSpot::start(FakeConfig::default()).await;
    for property in properties::required("duns_number") {
        if property.name != "duns_number" {
            fake.add_property(&property.name, false);
        }
    }
    let (base_url, token) = (fake.base_url(), fake.token().to_string());
    let app = spawn_configured_app(move |settings| {
        settings.admin.token = SecretString::from(TOKEN);
        settings.hubspot.enabled = true;
        settings.hubspot.base_url = base_url;
        settings.hubspot.api_token = SecretString::from(token);
        settings.hubspot.timeout_secs = 1;
        settings.hubspot.reconcile_after_secs = 1;
        settings.hubspot.outage_pause_secs = 1;
        settings.hubspot.auth_probe_secs = 1;
        settings.workers.retry_initial_ms = 50;
    })
    .await;
    let mut run = Vec::new();
    let seed = exchange(
        "a SEED for HubSpot is accepted",
        webhook(&app, sample("seed.json"), JSON),
        Sent::Conforming,
        202,
    )
    .await;
    let seed_id = seed.json()["ids"][0].as_str().map(str::to_string);
    run.push(seed);
    let update = exchange(
        "an UPDATE for an unknown company is accepted",
        webhook(&app, sample("update.json"), JSON),
        Sent::Conforming,
        202,
    )
    .await;
    let update_id = update.json()["ids"][0].as_str().map(str::to_string);
    run.push(update);
    let (seed_id, update_id) = (
        seed_id.expect("the SEED got an id"),
        update_id.expect("the UPDATE got an id"),
    );
    wait_for_status(&app, &seed_id, "done").await;
    wait_for_status(&app, &update_id, "skipped").await;
    run.push(
        exchange(
            "a notification that created HubSpot objects is 200",
            admin_get(&app, &format!("/notifications/{seed_id}")),
            Sent::Conforming,
            200,
        )
        .await,
    );
    run.push(
        exchange(
            "a skipped notification is 200",
            admin_get(&app, &format!("/notifications/{update_id}")),
            Sent::Conforming,
            200,
        )
        .await,
    );
    run.push(
        exchange(
            "the list of skipped notifications is 200",
            admin_get(&app, "/notifications?status=skipped"),
            Sent::Conforming,
            200,
        )
        .await,
    );
    run.push(
        exchange(
            "ready with HubSpot ok is 200",
            app.client.get(app.url("/ready")),
            Sent::Conforming,
            200,
        )
        .await,
    );
    run
}

/// Every exchange, run once per test process.
fn exchanges() -> &'static [Exchange] {
    static RUN: OnceLock<Vec<Exchange>> = OnceLock::new();
    RUN.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime for the conformance run");
        let run = runtime.block_on(async {
            let (everyday, closed, limit, overload, timeout, hubspot) = tokio::join!(
                everyday_exchanges(),
                closed_admin_exchanges(),
                body_limit_exchanges(),
                overload_exchanges(),
                timeout_exchanges(),
                hubspot_exchanges(),
            );
            [everyday, closed, limit, overload, timeout, hubspot]
                .into_iter()
                .flatten()
                .collect()
        });
        // The apps stop with their runtime.
        runtime.shutdown_timeout(Duration::from_secs(10));
        run
    })
}

// ---------------------------------------------------------------- judging

/// Everything about `exchange` that disagrees with the spec.
fn problems(spec: &Spec, exchange: &Exchange) -> Vec<String> {
    let mut problems = Vec::new();
    if exchange.status != exchange.aim {
        problems.push(format!(
            "aimed at {} but got {}: the exchange does not exercise what it should",
            exchange.aim, exchange.status
        ));
    }
    let Some((template, operation)) = spec.operation(&exchange.method, &exchange.path) else {
        problems.push("no documented operation serves this method and path".into());
        return problems;
    };
    let request = request_problems(spec, template, operation, exchange);
    match exchange.sent {
        Sent::Conforming => problems.extend(
            request
                .into_iter()
                .map(|problem| format!("the request breaks the spec: {problem}")),
        ),
        Sent::Nonconforming if request.is_empty() => problems.push(format!(
            "the spec describes this request as valid, yet the server refuses it with {}",
            exchange.status
        )),
        Sent::Nonconforming | Sent::Unjudged => {}
    }
    problems.extend(answer_problems(spec, operation, exchange));
    problems
}

/// How the request breaks the documented parameters, security and body.
fn request_problems(
    spec: &Spec,
    template: &str,
    operation: &Value,
    exchange: &Exchange,
) -> Vec<String> {
    let mut problems = Vec::new();
    let parameters = spec.parameters(template, operation);
    let path_values: BTreeMap<&str, &str> = template
        .split('/')
        .zip(exchange.path.split('/'))
        .filter_map(|(part, segment)| {
            part.strip_prefix('{')
                .and_then(|name| name.strip_suffix('}'))
                .map(|name| (name, segment))
        })
        .collect();
    for parameter in &parameters {
        let name = parameter["name"].as_str().unwrap_or_default();
        let location = parameter["in"].as_str().unwrap_or_default();
        let values: Vec<String> = match location {
            "path" => path_values
                .get(name)
                .map(|value| (*value).to_string())
                .into_iter()
                .collect(),
            "query" => exchange
                .query
                .iter()
                .filter(|(query, _)| query == name)
                .map(|(_, value)| value.clone())
                .collect(),
            "header" => exchange
                .request_headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let required = parameter["required"]
            .as_bool()
            .unwrap_or(location == "path");
        if values.is_empty() && required {
            problems.push(format!(
                "the required {location} parameter {name} is missing"
            ));
        }
        for value in values {
            for violation in spec.violations(
                &parameter["schema"],
                false,
                &typed(spec, &parameter["schema"], &value),
            ) {
                problems.push(format!(
                    "{location} parameter {name}={value:?}: {violation}"
                ));
            }
        }
    }
    for (name, _) in &exchange.query {
        if !parameters
            .iter()
            .any(|parameter| parameter["in"] == "query" && parameter["name"] == name.as_str())
        {
            problems.push(format!("the query parameter {name} is not documented"));
        }
    }
    if let Some(requirements) = operation
        .get("security")
        .or_else(|| spec.doc.get("security"))
        .and_then(Value::as_array)
    {
        let satisfied = requirements.is_empty()
            || requirements.iter().any(|requirement| {
                requirement.as_object().is_some_and(|schemes| {
                    schemes
                        .keys()
                        .all(|scheme| offers_credentials(spec, scheme, exchange))
                })
            });
        if !satisfied {
            problems.push("no documented security requirement is met".into());
        }
    }
    if let Some(request_body) = operation.get("requestBody").map(|body| spec.resolve(body)) {
        let body = exchange.request_body.as_deref().unwrap_or_default();
        if body.is_empty() {
            if request_body["required"].as_bool().unwrap_or(false) {
                problems.push("the required body is missing".into());
            }
        } else {
            let content_type = exchange
                .request_headers
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            match media(&request_body["content"], content_type) {
                None => problems.push(format!(
                    "the body's media type {content_type:?} is not documented"
                )),
                Some((media_type, documented)) => {
                    let instance = if is_json(media_type) {
                        serde_json::from_slice(body).ok()
                    } else {
                        std::str::from_utf8(body)
                            .ok()
                            .map(|text| Value::String(text.into()))
                    };
                    match instance {
                        None => problems.push(format!("the body is not {media_type}")),
                        Some(instance) => problems.extend(
                            spec.violations(&documented["schema"], false, &instance)
                                .into_iter()
                                .map(|violation| format!("body {violation}")),
                        ),
                    }
                }
            }
        }
    }
    problems
}

/// Whether the request carries what security scheme `scheme` asks for.
fn offers_credentials(spec: &Spec, scheme: &str, exchange: &Exchange) -> bool {
    let definition = spec.resolve(&spec.doc["components"]["securitySchemes"][scheme]);
    let header = |name: &str| {
        exchange
            .request_headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    match (definition["type"].as_str(), definition["in"].as_str()) {
        (Some("http"), _) => {
            let prefix = format!("{} ", definition["scheme"].as_str().unwrap_or_default());
            header("authorization").is_some_and(|value| {
                value.len() > prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(&prefix)
            })
        }
        (Some("apiKey"), Some("header")) => {
            header(definition["name"].as_str().unwrap_or_default()).is_some()
        }
        (Some("apiKey"), Some("query")) => exchange
            .query
            .iter()
            .any(|(name, _)| definition["name"] == name.as_str()),
        _ => panic!("openapi.yaml: security scheme {scheme} is not one this check reads"),
    }
}

/// How the answer breaks the documented status, headers and body.
fn answer_problems(spec: &Spec, operation: &Value, exchange: &Exchange) -> Vec<String> {
    let mut problems = Vec::new();
    if !exchange.headers.contains_key("x-request-id") {
        problems
            .push("no x-request-id header (info.description promises one on every answer)".into());
    }
    let Some(response) = spec.response(operation, exchange.status) else {
        problems.push(format!(
            "status {} is not documented for this operation",
            exchange.status
        ));
        return problems;
    };
    let documented_headers: BTreeMap<String, &Value> = response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, header)| (name.to_ascii_lowercase(), spec.resolve(header)))
        .collect();
    for (name, header) in &documented_headers {
        if name == "content-type" {
            continue;
        }
        let values: Vec<&str> = exchange
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        if values.is_empty() && header["required"].as_bool().unwrap_or(false) {
            problems.push(format!("the required header {name} is missing"));
        }
        for value in values {
            for violation in spec.violations(
                &header["schema"],
                false,
                &typed(spec, &header["schema"], value),
            ) {
                problems.push(format!("header {name}: {value:?}: {violation}"));
            }
        }
    }
    for name in MEANINGFUL_HEADERS {
        if exchange.headers.contains_key(*name) && !documented_headers.contains_key(*name) {
            problems.push(format!("the answer sends {name}, which is not documented"));
        }
    }
    let content_type = exchange
        .headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    match response.get("content") {
        None => {
            if !exchange.body.is_empty() {
                problems.push("the answer has a body, but none is documented".into());
            }
        }
        Some(content) => match media(content, content_type) {
            None => problems.push(format!(
                "the answer's media type {content_type:?} is not documented"
            )),
            Some((media_type, documented)) => {
                let instance = if is_json(media_type) {
                    serde_json::from_slice(&exchange.body).ok()
                } else {
                    std::str::from_utf8(&exchange.body)
                        .ok()
                        .map(|text| Value::String(text.into()))
                };
                match instance {
                    None => problems.push(format!("the answer's body is not {media_type}")),
                    Some(instance) => problems.extend(
                        spec.violations(&documented["schema"], true, &instance)
                            .into_iter()
                            .map(|violation| format!("body {violation}")),
                    ),
                }
            }
        },
    }
    problems
}

/// Panics listing every exchange under `prefixes` that disagrees with the spec.
fn assert_conforming(prefixes: &[&str]) {
    let spec = spec();
    let chosen: Vec<&Exchange> = exchanges()
        .iter()
        .filter(|exchange| {
            prefixes
                .iter()
                .any(|prefix| exchange.path.starts_with(prefix))
        })
        .collect();
    assert!(!chosen.is_empty(), "no exchange under {prefixes:?}");
    let report: Vec<String> = chosen
        .iter()
        .filter_map(|exchange| {
            let problems = problems(spec, exchange);
            (!problems.is_empty()).then(|| {
                let body = String::from_utf8_lossy(&exchange.body);
                let body: String = body.chars().take(600).collect();
                format!(
                    "{}\n    - {}\n    body: {body}",
                    exchange.label(),
                    problems.join("\n    - ")
                )
            })
        })
        .collect();
    assert!(
        report.is_empty(),
        "{} of {} exchanges disagree with openapi.yaml:\n{}",
        report.len(),
        chosen.len(),
        report.join("\n")
    );
}

/// `(method, path)` of every route in `src/http/mod.rs`.
fn served_routes() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs");
    let source = std::fs::read_to_string(path).expect("src/http/mod.rs");
    let mut routes = BTreeSet::new();
    for call in source.split(".route(").skip(1) {
        let Some((route, rest)) = call
            .trim_start()
            .strip_prefix('"')
            .and_then(|rest| rest.split_once('"'))
        else {
            continue;
        };
        // The method router: up to the parenthesis closing `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(index, _)| index);
        let router = &rest[..end];
        for method in METHODS {
            let call = format!("{method}(");
            let called = router.match_indices(&call).any(|(index, _)| {
                !router[..index]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if called {
                routes.insert(((*method).to_string(), route.to_string()));
            }
        }
    }
    routes
}

/// Every `$ref` string in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => found.push(reference.clone()),
                    _ => references(value, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|value| references(value, found)),
        _ => {}
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn every_webhook_answer_conforms_to_openapi_yaml() {
    assert_conforming(&["/webhooks/"]);
}

#[test]
fn every_probe_and_metrics_answer_conforms_to_openapi_yaml() {
    assert_conforming(&["/health", "/ready", "/metrics"]);
}

#[test]
fn every_admin_answer_conforms_to_openapi_yaml() {
    assert_conforming(&["/notifications", "/replay"]);
}

#[test]
fn every_documented_operation_and_answer_is_exercised_by_the_conformance_run() {
    let spec = spec();
    let mut exercised = BTreeSet::new();
    for exchange in exchanges() {
        if let Some((template, _)) = spec.operation(&exchange.method, &exchange.path) {
            exercised.insert((
                exchange.method.clone(),
                template.to_string(),
                exchange.status.to_string(),
            ));
        }
    }
    let mut missing = Vec::new();
    for (method, template) in spec.operations() {
        let operation = &spec.doc["paths"][&template][&method];
        if !exercised
            .iter()
            .any(|(m, t, _)| *m == method && *t == template)
        {
            missing.push(format!(
                "{} {template}: never called",
                method.to_uppercase()
            ));
        }
        for status in operation["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(s, _)| s)
        {
            let key = (method.clone(), template.clone(), status.clone());
            let excused = NOT_EXERCISED.iter().any(|(m, t, s, _)| {
                (*m, *t, *s) == (key.0.as_str(), key.1.as_str(), key.2.as_str())
            });
            if !exercised.contains(&key) && !excused {
                missing.push(format!(
                    "{} {template} {status}: documented but never answered",
                    method.to_uppercase()
                ));
            }
        }
    }
    for (method, template, status, reason) in NOT_EXERCISED {
        let documented = spec.doc["paths"][*template][*method]["responses"]
            .get(*status)
            .is_some();
        assert!(
            documented,
            "NOT_EXERCISED lists {method} {template} {status} ({reason}), which openapi.yaml no longer documents"
        );
    }
    assert!(missing.is_empty(), "not exercised:\n{}", missing.join("\n"));
}

#[test]
fn every_route_the_server_serves_is_documented_and_every_documented_path_is_served() {
    let served = served_routes();
    assert!(
        served.len() >= 7,
        "read too few routes from src/http/mod.rs: {served:?}"
    );
    let documented = spec().operations();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}\nin openapi.yaml but not served: {unserved:?}"
    );
}

#[test]
fn every_ref_in_openapi_yaml_resolves_and_every_schema_compiles() {
    let spec = spec();
    let mut found = Vec::new();
    references(&spec.doc, &mut found);
    assert!(!found.is_empty());
    for reference in &found {
        spec.target(reference);
    }
    for (name, schema) in spec.doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas")
    {
        for closed in [false, true] {
            let converted = spec.json_schema(schema, closed);
            if let Err(error) = jsonschema::draft202012::options()
                .should_validate_formats(false)
                .build(&converted)
            {
                panic!("components.schemas.{name} does not compile: {error}");
            }
        }
    }
}

#[test]
fn the_schema_check_honours_nullable_refs_and_date_times_and_refuses_undocumented_fields() {
    let spec = spec();
    let accepted = json!({"$ref": "#/components/schemas/Accepted"});
    let answer = json!({"accepted": 1, "duplicates": 0, "ids": ["1", null],
        "rejected": [{"index": 1, "reason": "invalid_duns", "detail": "12"}]});
    assert_eq!(
        spec.violations(&accepted, true, &answer),
        Vec::<String>::new()
    );

    let mut wrong = answer.clone();
    wrong["ids"][0] = json!(1);
    assert!(
        !spec.violations(&accepted, true, &wrong).is_empty(),
        "ids are strings or null"
    );
    let mut extra = answer.clone();
    extra["surprise"] = json!(true);
    assert!(
        !spec.violations(&accepted, true, &extra).is_empty(),
        "closed objects"
    );
    assert!(
        spec.violations(&accepted, false, &extra).is_empty(),
        "open objects"
    );

    let detail = json!({"$ref": "#/components/schemas/NotificationDetail"});
    let mut shown = json!({"id": "1", "status": "rejected", "reason": "invalid_json", "type": null,
        "duns": null, "received_at": "2024-05-13T08:00:00.000Z", "attempts": 0,
        "last_error": null, "webhook_id": "msg_1", "delivered_at": null, "dry_run": false,
        "notification": "{oops", "history": [], "attempt_log": [], "hubspot_objects": []});
    assert_eq!(spec.violations(&detail, true, &shown), Vec::<String>::new());
    shown["webhook_id"] = Value::Null;
    assert!(
        !spec.violations(&detail, true, &shown).is_empty(),
        "webhook_id is not nullable"
    );
    shown["webhook_id"] = json!("msg_1");
    shown["also"] = json!(1);
    assert!(
        !spec.violations(&detail, true, &shown).is_empty(),
        "an allOf is closed as a whole"
    );

    let time = json!({"type": "string", "format": "date-time"});
    for refused in ["", "not a time", "2024-05-13", "2024-05-13T08:00:00"] {
        assert!(
            !spec.violations(&time, true, &json!(refused)).is_empty(),
            "a date-time is asserted: {refused:?}"
        );
    }
    for time_value in ["2024-05-13T08:00:00Z", "2024-05-13T08:00:00.123+02:00"] {
        assert_eq!(
            spec.violations(&time, true, &json!(time_value)),
            Vec::<String>::new()
        );
    }
}
