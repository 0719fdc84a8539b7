//! The four body shapes a relay may send, turned into journal-ready items.
//!
//! Shapes: a Direct+ pull response (`{"notifications": [...]}`), one
//! notification object, a JSON array of them, or NDJSON (one per line). A body
//! that is not JSON of these shapes is a [`PayloadError`] and stores nothing;
//! an item inside an accepted shape that is not a valid notification becomes
//! [`IncomingItem::Rejected`] and is journaled with its reason.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::notification::{Duns, Notification, NotificationType, RejectReason, Rejection};

/// How the body is framed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json` or any `+json` type.
    Json,
    /// `application/x-ndjson` and its aliases: one notification per line.
    Ndjson,
}

impl BodyFormat {
    /// Reads a `Content-Type` value, ignoring parameters and case.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "text/json" => Some(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Some(Self::Ndjson),
            other if other.starts_with("application/") && other.ends_with("+json") => {
                Some(Self::Json)
            }
            _ => None,
        }
    }
}

/// A valid notification, ready to journal.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidItem {
    /// Its type.
    pub notification_type: NotificationType,
    /// Its DUNS.
    pub duns: Duns,
    /// `deliveryTimeStamp` in unix milliseconds.
    pub delivered_at_ms: i64,
    /// Canonical JSON (sorted keys, compact): what is stored and hashed.
    pub canonical: String,
    /// SHA-256 of `canonical`, the content deduplication key.
    pub content_hash: [u8; 32],
}

/// An item kept as `rejected`.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedItem {
    /// Why.
    pub rejection: Rejection,
    /// The item as received (or its canonical JSON when it was JSON).
    pub raw: String,
    /// The `type` field when it is a known type.
    pub notification_type: Option<NotificationType>,
    /// The DUNS when it is a valid one.
    pub duns: Option<Duns>,
}

/// One item of a body, in body order.
#[derive(Debug, Clone, PartialEq)]
pub enum IncomingItem {
    /// A notification to process.
    Valid(ValidItem),
    /// An item to keep as `rejected`.
    Rejected(RejectedItem),
}

/// Why a whole body was refused (answered 400, nothing stored).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The body is not valid UTF-8.
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON of no accepted shape.
    #[error("{0}")]
    NoAcceptedShape(&'static str),
}

/// Splits and checks a body. Every returned item keeps its body index.
pub fn parse_body(format: BodyFormat, body: &[u8]) -> Result<Vec<IncomingItem>, PayloadError> {
    match format {
        BodyFormat::Json => parse_json(body),
        BodyFormat::Ndjson => Ok(parse_ndjson(body)),
    }
}

fn parse_json(body: &[u8]) -> Result<Vec<IncomingItem>, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::NotUtf8)?;
    // serde_json refuses nesting deeper than 128 levels, so hostile depth is an error, not a stack overflow.
    let value: Value =
        serde_json::from_str(text).map_err(|error| PayloadError::NotJson(error.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("notifications") {
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(PayloadError::NoAcceptedShape(
                    "\"notifications\" must be a list of D&B notifications",
                ));
            }
            None if object.contains_key("type") || object.contains_key("organization") => {
                vec![Value::Object(object)]
            }
            None => {
                return Err(PayloadError::NoAcceptedShape(
                    "expected a D&B notification, a list of them, or a Direct+ response with \"notifications\"",
                ));
            }
        },
        _ => {
            return Err(PayloadError::NoAcceptedShape(
                "expected a JSON object or array of D&B notifications",
            ));
        }
    };
    Ok(items.iter().map(check_item).collect())
}

fn parse_ndjson(body: &[u8]) -> Vec<IncomingItem> {
    body.split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| parse_line(line, None))
        .collect()
}

/// What a SEEDFILE record lacks and its file supplies: SEEDFILE lines are full records
/// without `type` (they are SEED) and may carry no `deliveryTimeStamp`.
#[derive(Debug, Clone, Copy)]
pub struct SeedDefaults<'a> {
    /// The file's time (RFC 3339), used as `deliveryTimeStamp` when a record has none.
    pub delivered_at: Option<&'a str>,
}

/// Checks one NDJSON line (without its line break), as a line of an NDJSON body or of a
/// delivery file. With `seed`, a record without `type` is a SEED and one without
/// `deliveryTimeStamp` gets the file's time.
pub fn parse_line(line: &[u8], seed: Option<SeedDefaults<'_>>) -> IncomingItem {
    let parsed = std::str::from_utf8(line)
        .map_err(|_| "the line is not valid UTF-8".to_string())
        .and_then(|text| serde_json::from_str::<Value>(text).map_err(|error| error.to_string()));
    match parsed {
        Ok(mut value) => {
            if let (Some(seed), Value::Object(object)) = (seed, &mut value) {
                object
                    .entry("type")
                    .or_insert_with(|| Value::from(NotificationType::Seed.as_str()));
                if let Some(time) = seed.delivered_at {
                    object
                        .entry("deliveryTimeStamp")
                        .or_insert_with(|| Value::from(time));
                }
            }
            check_item(&value)
        }
        Err(detail) => IncomingItem::Rejected(RejectedItem {
            rejection: Rejection {
                reason: RejectReason::InvalidJson,
                detail: format!("the line is not a JSON notification: {detail}"),
            },
            raw: String::from_utf8_lossy(line).into_owned(),
            notification_type: None,
            duns: None,
        }),
    }
}

fn check_item(value: &Value) -> IncomingItem {
    let canonical = canonical_json(value);
    match Notification::from_value(value) {
        Ok(notification) => IncomingItem::Valid(ValidItem {
            notification_type: notification.notification_type,
            duns: notification.duns,
            delivered_at_ms: notification.delivered_at.timestamp_millis(),
            content_hash: Sha256::digest(canonical.as_bytes()).into(),
            canonical,
        }),
        Err(rejection) => IncomingItem::Rejected(RejectedItem {
            rejection,
            notification_type: value.get("type").and_then(Value::as_str).and_then(|name| {
                NotificationType::ALL
                    .iter()
                    .copied()
                    .find(|kind| kind.as_str() == name)
            }),
            duns: value
                .pointer("/organization/duns")
                .and_then(Value::as_str)
                .and_then(Duns::parse),
            raw: canonical,
        }),
    }
}

/// Compact JSON with object keys in sorted order, whatever map type serde_json was built with.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
            out.push(b'{');
            for (position, (key, item)) in entries.into_iter().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples");

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!("{SAMPLES}/{name}")).expect("samples/ is part of the repository")
    }

    fn valid_count(items: &[IncomingItem]) -> usize {
        items
            .iter()
            .filter(|item| matches!(item, IncomingItem::Valid(_)))
            .count()
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        assert_eq!(
            BodyFormat::from_content_type("application/json; charset=utf-8"),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type("Application/X-NDJSON"),
            Some(BodyFormat::Ndjson)
        );
        assert_eq!(
            BodyFormat::from_content_type("application/vnd.dnb+json"),
            Some(BodyFormat::Json)
        );
        assert_eq!(BodyFormat::from_content_type("text/plain"), None);
    }

    #[test]
    fn every_bundled_sample_parses_in_every_shape() {
        let pull = parse_body(BodyFormat::Json, &sample("update.json")).unwrap();
        assert_eq!(valid_count(&pull), 2);
        let ndjson = parse_body(
            BodyFormat::Ndjson,
            &sample("DEMO_PORTFOLIO_20250303070000_NOTIFICATION_1.ndjson"),
        )
        .unwrap();
        assert_eq!((ndjson.len(), valid_count(&ndjson)), (21, 21));
        let single = serde_json::to_vec(
            &serde_json::from_slice::<Value>(&sample("seed.json")).unwrap()["notifications"][0],
        )
        .unwrap();
        assert_eq!(
            valid_count(&parse_body(BodyFormat::Json, &single).unwrap()),
            1
        );
        let array = serde_json::to_vec(
            &serde_json::from_slice::<Value>(&sample("transfer.json")).unwrap()["notifications"],
        )
        .unwrap();
        assert_eq!(
            valid_count(&parse_body(BodyFormat::Json, &array).unwrap()),
            2
        );
    }

    #[test]
    fn canonical_form_sorts_keys_and_ignores_whitespace() {
        let left: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": [1, 2], "c": "x"}}"#).unwrap();
        let right: Value = serde_json::from_str(r#"{"a":{"c":"x","d":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&left), r#"{"a":{"c":"x","d":[1,2]},"b":1}"#);
        assert_eq!(canonical_json(&left), canonical_json(&right));
    }

    #[test]
    fn notifications_differing_only_in_delivery_time_hash_differently() {
        let first = br#"{"type":"SEED","organization":{"duns":"021258997"},"deliveryTimeStamp":"2024-05-13T08:00:00.000Z"}"#;
        let second = br#"{"type":"SEED","organization":{"duns":"021258997"},"deliveryTimeStamp":"2024-05-13T09:00:00.000Z"}"#;
        let hash = |body: &[u8]| match &parse_body(BodyFormat::Json, body).unwrap()[0] {
            IncomingItem::Valid(item) => item.content_hash,
            other => panic!("{other:?}"),
        };
        assert_ne!(hash(first), hash(second));
    }

    #[test]
    fn bad_ndjson_lines_are_rejected_items_and_blank_lines_are_skipped() {
        let body = b"{\"type\":\"DELETE\",\"organization\":{\"duns\":\"123456789\"},\"deliveryTimeStamp\":\"2024-05-13T08:00:00Z\"}\r\n\n{oops\n\xff\xfe\n";
        let items = parse_body(BodyFormat::Ndjson, body).unwrap();
        assert_eq!(items.len(), 3);
        assert!(matches!(items[0], IncomingItem::Valid(_)));
        for item in &items[1..] {
            let IncomingItem::Rejected(rejected) = item else {
                panic!()
            };
            assert_eq!(rejected.rejection.reason, RejectReason::InvalidJson);
        }
    }

    #[test]
    fn bodies_of_no_accepted_shape_are_errors() {
        assert!(matches!(
            parse_body(BodyFormat::Json, b"{not json"),
            Err(PayloadError::NotJson(_))
        ));
        assert!(matches!(
            parse_body(BodyFormat::Json, b"\"text\""),
            Err(PayloadError::NoAcceptedShape(_))
        ));
        assert!(matches!(
            parse_body(BodyFormat::Json, b"{\"hello\":1}"),
            Err(PayloadError::NoAcceptedShape(_))
        ));
        assert!(matches!(
            parse_body(BodyFormat::Json, b"{\"notifications\":{}}"),
            Err(PayloadError::NoAcceptedShape(_))
        ));
        assert_eq!(
            parse_body(BodyFormat::Json, b"\xff{}"),
            Err(PayloadError::NotUtf8)
        );
        assert_eq!(
            parse_body(BodyFormat::Json, b"{\"notifications\":[]}").unwrap(),
            Vec::new()
        );
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_crash() {
        let depth = 100_000;
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(matches!(
            parse_body(BodyFormat::Json, body.as_bytes()),
            Err(PayloadError::NotJson(_))
        ));
        let line = format!("{}\n", "{\"a\":".repeat(depth));
        let items = parse_body(BodyFormat::Ndjson, line.as_bytes()).unwrap();
        assert!(
            matches!(&items[0], IncomingItem::Rejected(item) if item.rejection.reason == RejectReason::InvalidJson)
        );
    }
}
