//! The HTTP side: an accept loop serving each connection with hyper (so a
//! handler can close its own connection, for `Fault::ApplyThenDrop`), and the
//! request pipeline: log → auth → route → rate limit → scopes → validation →
//! scripted fault → handler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::errors::{self, Reply};
use super::limits::{self, Fault};
use super::objects::{self, Ctx};
use super::routes::{self, Endpoint, Route};
use super::spec::{self, Violation};
use super::{RecordedRequest, Shared, meta, search, updates};

/// Cancelling it closes the connection the request came on.
#[derive(Clone)]
struct ConnectionKill(CancellationToken);

/// One request as the pipeline sees it.
struct Incoming<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    raw: &'a [u8],
    body: Option<&'a Value>,
}

impl Incoming<'_> {
    fn violation(&self, operation: &str, problems: Vec<String>) -> Violation {
        Violation {
            method: self.method.to_owned(),
            path: self.path.to_owned(),
            operation: operation.to_owned(),
            problems,
            body: self.body.cloned(),
        }
    }
}

/// What to do with a processed request.
enum Plan {
    Answer(Reply),
    AnswerAfter(Reply, Duration),
    Drop,
    InvalidJson,
}

/// Accepts connections until `shutdown`; each connection also stops then.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let app = axum::Router::new().fallback(handle).with_state(shared);
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let kill = shutdown.child_token();
        let app = app.clone();
        tokio::spawn(async move {
            let token = kill.clone();
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectionKill(token.clone()));
                    app.clone().oneshot(request.map(Body::new))
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = kill.cancelled() => {}
            }
        });
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(kill): Extension<ConnectionKill>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match shared.process(method.as_str(), &uri, &headers, &body) {
        Plan::Answer(reply) => respond(reply),
        Plan::AnswerAfter(reply, delay) => {
            tokio::time::sleep(delay).await;
            respond(reply)
        }
        Plan::Drop => {
            kill.0.cancel();
            std::future::pending().await
        }
        Plan::InvalidJson => Response::builder()
            .status(200)
            .header("content-type", "application/json;charset=utf-8")
            .body(Body::from("{\"status\":\"COMPLETE\",\"results\":[{\"id\":"))
            .expect("valid response"),
    }
}

fn respond(reply: Reply) -> Response {
    let mut response = Response::new(match &reply.body {
        Some(body) => Body::from(body.to_string()),
        None => Body::empty(),
    });
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if reply.body.is_some() {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json;charset=utf-8"),
        );
    }
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

impl Shared {
    /// Runs the pipeline under the state lock and records the outcome.
    fn process(&self, method: &str, uri: &Uri, headers: &HeaderMap, raw: &[u8]) -> Plan {
        let path = uri.path();
        let route = routes::resolve(method, path);
        let body: Option<Value> = serde_json::from_slice(raw).ok();
        let mut inner = self.inner.lock().unwrap();
        let index = inner.log.len();
        inner.log.push(RecordedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            route: route.clone(),
            body: body.clone(),
            status: None,
            received_at: Instant::now(),
        });
        let incoming = Incoming {
            method,
            path,
            query: uri.query().unwrap_or_default(),
            headers,
            raw,
            body: body.as_ref(),
        };
        let plan = self.plan(&mut inner, &incoming, route.as_ref());
        inner.log[index].status = match &plan {
            Plan::Answer(reply) | Plan::AnswerAfter(reply, _) => Some(reply.status),
            Plan::InvalidJson => Some(200),
            Plan::Drop => None,
        };
        plan
    }

    fn plan(
        &self,
        inner: &mut super::Inner,
        request: &Incoming<'_>,
        route: Option<&Route>,
    ) -> Plan {
        let (method, path) = (request.method, request.path);
        let expected = format!("Bearer {}", self.config.token);
        if request
            .headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            != Some(expected.as_str())
        {
            return Plan::Answer(errors::unauthorized());
        }
        let Some(route) = route else {
            let problem = "the fake HubSpot does not serve this endpoint".to_owned();
            inner
                .violations
                .push(request.violation("none", vec![problem]));
            return Plan::Answer(errors::not_served(method, path));
        };
        let search = route.endpoint.is_search();
        let rate_headers = if search {
            if !inner.search_window.admit().0 {
                inner.throttled += 1;
                return Plan::Answer(errors::secondly_limit());
            }
            Vec::new()
        } else {
            let (admitted, remaining) = inner.window.admit();
            let headers = inner.window.headers(remaining);
            if !admitted {
                inner.throttled += 1;
                let mut reply = errors::ten_secondly_limit();
                reply.headers = headers;
                return Plan::Answer(reply);
            }
            headers
        };
        let with_rate = |mut reply: Reply| {
            reply.headers.extend(rate_headers.iter().cloned());
            reply
        };
        if let Some(scope) = route.endpoint.required_scope()
            && self.config.missing_scopes.iter().any(|s| s == scope)
        {
            return Plan::Answer(with_rate(errors::missing_scopes(scope)));
        }
        if let Some(reply) = self.validate(inner, request, route) {
            return Plan::Answer(with_rate(reply));
        }
        let fault = limits::take_fault(&mut inner.faults, Some(route), path);
        if let Some(reply) = fault.as_ref().and_then(Fault::reply) {
            return Plan::Answer(with_rate(reply));
        }
        let body = request.body.unwrap_or(&Value::Null);
        let reply = with_rate(self.dispatch(inner, route, request.query, body));
        match fault {
            Some(Fault::Delay(delay)) => Plan::AnswerAfter(reply, delay),
            Some(Fault::ApplyThenDrop) => Plan::Drop,
            Some(Fault::InvalidJson) => Plan::InvalidJson,
            _ => Plan::Answer(reply),
        }
    }

    /// Spec and HubSpot-limit checks; a violation is recorded and answered 400.
    fn validate(
        &self,
        inner: &mut super::Inner,
        request: &Incoming<'_>,
        route: &Route,
    ) -> Option<Reply> {
        let (method, body) = (request.method, request.body);
        let mut violation = match spec::specs() {
            Some(specs) => specs.check(route.family, method, request.path, request.raw),
            None if method == "POST" && body.is_none() => {
                let problem = "request body is missing or not JSON".to_owned();
                Some(request.violation("unvalidated", vec![problem]))
            }
            None => None,
        };
        if violation.is_none()
            && route.endpoint.is_search()
            && let Err(problem) =
                search::check_limits(body.unwrap_or(&Value::Null), request.raw.len())
        {
            violation = Some(request.violation("HubSpot search limits", vec![problem]));
        }
        let violation = violation?;
        let reply = errors::validation_error(
            &format!("Invalid input JSON: {}", violation.problems.join("; ")),
            &violation.problems,
        );
        inner.violations.push(violation);
        Some(reply)
    }

    fn dispatch(
        &self,
        inner: &mut super::Inner,
        route: &Route,
        query: &str,
        body: &Value,
    ) -> Reply {
        let mut ctx = Ctx {
            store: &mut inner.store,
            search_lag: self.config.search_lag,
            reverse: self.config.reverse_batch_results,
        };
        match route.endpoint {
            Endpoint::BatchRead(object) => objects::batch_read(&mut ctx, object, body),
            Endpoint::BatchCreate(object) => objects::batch_create(&mut ctx, object, body),
            Endpoint::BatchUpdate(object) => updates::batch_update(&mut ctx, object, body),
            Endpoint::BatchUpsert(object) => updates::batch_upsert(&mut ctx, object, body),
            Endpoint::Search(object) => search::search(ctx.store, object, body),
            Endpoint::Owners => meta::owners(ctx.store, query),
            endpoint => meta::handle(
                ctx.store,
                &self.config,
                endpoint,
                route.name.as_deref(),
                body,
            ),
        }
    }
}
