//! Rate limiting (a rolling ten-secondly window and a per-second search
//! window) and the scripted faults tests queue with `fail_next`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::errors::{self, Reply};
use super::routes::{EndpointMatcher, Route};

/// A rolling window: at most `max` requests in any `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub max: usize,
    /// Window length.
    pub interval: Duration,
}

impl RateLimit {
    /// HubSpot's Free/Starter burst limit: 100 per 10 s.
    pub const TEN_SECONDLY: Self = Self {
        max: 100,
        interval: Duration::from_secs(10),
    };
    /// HubSpot's search limit: 5 per second.
    pub const SEARCH: Self = Self {
        max: 5,
        interval: Duration::from_secs(1),
    };
}

/// The instants of the requests a window admitted.
#[derive(Debug)]
pub struct Window {
    limit: RateLimit,
    admitted: VecDeque<Instant>,
}

impl Window {
    /// An empty window.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            admitted: VecDeque::new(),
        }
    }

    /// Admits a request now, or refuses it (refusals are not counted).
    /// Returns whether it was admitted and the requests left in the window.
    pub fn admit(&mut self) -> (bool, usize) {
        let now = Instant::now();
        while self
            .admitted
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.limit.interval)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() >= self.limit.max {
            return (false, 0);
        }
        self.admitted.push_back(now);
        (true, self.limit.max - self.admitted.len())
    }

    /// The `X-HubSpot-RateLimit-*` headers for a request that left `remaining`.
    pub fn headers(&self, remaining: usize) -> Vec<(String, String)> {
        vec![
            ("X-HubSpot-RateLimit-Max".into(), self.limit.max.to_string()),
            (
                "X-HubSpot-RateLimit-Remaining".into(),
                remaining.to_string(),
            ),
            (
                "X-HubSpot-RateLimit-Interval-Milliseconds".into(),
                self.limit.interval.as_millis().to_string(),
            ),
        ]
    }
}

/// What a scripted fault does to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status and body instead of handling the request (nothing is written).
    Status {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: Value,
        /// Extra headers, e.g. `Retry-After`.
        headers: Vec<(String, String)>,
    },
    /// Handle the request (writes are applied), then wait this long before
    /// answering: a client with a shorter timeout gives up, the write stays.
    Delay(Duration),
    /// Apply the write to the state, then close the connection without an
    /// answer: the outcome is lost to the client.
    ApplyThenDrop,
    /// Handle the request (writes are applied) and answer 200 with a body that is not JSON.
    InvalidJson,
}

impl Fault {
    /// `status` with HubSpot's usual body for it (500/503 `INTERNAL_ERROR`, 423 `LOCKED`,
    /// 429 ten-secondly, 400 `VALIDATION_ERROR`).
    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            body: errors::default_fault_body(status),
            headers: Vec::new(),
        }
    }

    /// `status` with the given body.
    pub fn status_with_body(status: u16, body: Value) -> Self {
        Self::Status {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// 429 `TEN_SECONDLY_ROLLING`, with `Retry-After` (seconds) when given.
    pub fn rate_limited(retry_after_secs: Option<u64>) -> Self {
        let headers = retry_after_secs
            .map(|secs| vec![("Retry-After".to_owned(), secs.to_string())])
            .unwrap_or_default();
        Self::Status {
            status: 429,
            body: errors::default_fault_body(429),
            headers,
        }
    }

    /// 400 `VALIDATION_ERROR` with `message`.
    pub fn validation_error(message: &str) -> Self {
        Self::status_with_body(400, errors::error_body("VALIDATION_ERROR", message))
    }

    /// The answer of a `Status` fault.
    pub(crate) fn reply(&self) -> Option<Reply> {
        match self {
            Self::Status {
                status,
                body,
                headers,
            } => Some(Reply {
                status: *status,
                body: Some(body.clone()),
                headers: headers.clone(),
            }),
            _ => None,
        }
    }
}

/// A fault for the next `remaining` matching requests.
#[derive(Debug, Clone)]
pub struct ScriptedFault {
    /// Which requests.
    pub matcher: EndpointMatcher,
    /// How many more times.
    pub remaining: usize,
    /// What happens.
    pub fault: Fault,
}

/// Takes the fault for a request from the script (first matching entry wins).
pub fn take_fault(
    script: &mut Vec<ScriptedFault>,
    route: Option<&Route>,
    path: &str,
) -> Option<Fault> {
    let index = script
        .iter()
        .position(|entry| entry.remaining > 0 && entry.matcher.matches(route, path))?;
    let entry = &mut script[index];
    entry.remaining -= 1;
    let fault = entry.fault.clone();
    if entry.remaining == 0 {
        script.remove(index);
    }
    Some(fault)
}
