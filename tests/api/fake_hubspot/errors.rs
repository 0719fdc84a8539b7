//! Answers and HubSpot's error bodies: `Error` (whole-request failures),
//! `StandardError` (per-input errors of a 207) and the 429 body.

use serde_json::{Value, json};

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body; `None` for an empty body.
    pub body: Option<Value>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// A fresh correlation id, as HubSpot puts in every error.
pub fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// HubSpot's `Error` body.
pub fn error_body(category: &str, message: &str) -> Value {
    json!({
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
    })
}

/// A whole-request error answer.
pub fn error(status: u16, category: &str, message: &str) -> Reply {
    Reply::json(status, error_body(category, message))
}

/// A whole-request error answer with `context`.
pub fn error_with_context(status: u16, category: &str, message: &str, context: Value) -> Reply {
    let mut body = error_body(category, message);
    body["context"] = context;
    Reply::json(status, body)
}

/// 400 `VALIDATION_ERROR` with one detail per problem.
pub fn validation_error(message: &str, details: &[String]) -> Reply {
    let mut body = error_body("VALIDATION_ERROR", message);
    if !details.is_empty() {
        body["errors"] = details
            .iter()
            .map(|detail| json!({"message": detail, "code": "INVALID_INPUT"}))
            .collect();
    }
    Reply::json(400, body)
}

/// 401 for a missing or wrong token.
pub fn unauthorized() -> Reply {
    error(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )
}

/// 403 `MISSING_SCOPES` naming the scope the endpoint needs.
pub fn missing_scopes(scope: &str) -> Reply {
    let mut body = error_body(
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
    );
    body["errors"] = json!([{
        "message": "One or more of the following scopes are required.",
        "context": {"requiredGranularScopes": [scope]},
    }]);
    body["links"] = json!({"scopes": "https://developers.hubspot.com/scopes"});
    Reply::json(403, body)
}

/// 429 of the ten-secondly rolling window.
pub fn ten_secondly_limit() -> Reply {
    Reply::json(
        429,
        json!({
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": "TEN_SECONDLY_ROLLING",
        }),
    )
}

/// 429 of the per-second search limit (policy `SECONDLY`, the message HubSpot's SDK matches).
pub fn secondly_limit() -> Reply {
    Reply::json(
        429,
        json!({
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": "SECONDLY",
        }),
    )
}

/// 404 for a path the fake does not serve.
pub fn not_served(method: &str, path: &str) -> Reply {
    error(
        404,
        "OBJECT_NOT_FOUND",
        &format!("fake HubSpot: no such endpoint {method} {path}"),
    )
}

/// A per-input `StandardError` of a batch answer.
pub fn standard_error(category: &str, message: &str, context: Value) -> Value {
    json!({
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    })
}

/// The default body of an injected error status.
pub fn default_fault_body(status: u16) -> Value {
    match status {
        400 => error_body(
            "VALIDATION_ERROR",
            "Property values were not valid (injected)",
        ),
        423 => error_body(
            "LOCKED",
            "There are too many requests for this portal at once. Try again in 2 seconds (injected)",
        ),
        429 => ten_secondly_limit().body.unwrap_or(Value::Null),
        500..=599 => error_body("INTERNAL_ERROR", "internal error (injected)"),
        _ => error_body("ERROR", &format!("injected status {status}")),
    }
}
