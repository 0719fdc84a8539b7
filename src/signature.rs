//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`, the
//! key is the base64-decoded part of a `whsec_` secret, and the
//! `webhook-signature` header holds space-separated `v1,<base64 HMAC-SHA256>`
//! entries. Any configured secret may match (rotation), comparisons are
//! constant-time, and the timestamp must be within the tolerance either way.
//!
//! Svix, the most common relay, sends the same three headers as `svix-id`,
//! `svix-timestamp` and `svix-signature` (the `webhook-` names only on its
//! white-label tiers), and its libraries accept either spelling. So does this
//! module: each header is read under its `webhook-` name or its `svix-` alias,
//! and the verification is the same. When both spellings of one header are
//! present they must carry the same value; two different values are refused
//! (401), since it is then unclear which one the signature covers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Longest accepted `webhook-id`, in bytes.
const MAX_WEBHOOK_ID_LEN: usize = 256;

/// A decoded signing key. Its bytes are only exposed to the HMAC.
pub struct SigningSecret(SecretBox<[u8]>);

/// Why a secret could not be used; never contains the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFormatError {
    /// The part after `whsec_` is not base64.
    #[error("the secret is not base64 after the optional whsec_ prefix")]
    NotBase64,
    /// Nothing after the prefix.
    #[error("the secret is empty")]
    Empty,
}

impl SigningSecret {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
        if encoded.is_empty() {
            return Err(SecretFormatError::Empty);
        }
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretFormatError::NotBase64)?;
        if key.is_empty() {
            return Err(SecretFormatError::Empty);
        }
        Ok(Self(SecretBox::new(key.into_boxed_slice())))
    }

    fn tag(&self, webhook_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(self.0.expose_secret())
            .expect("HMAC accepts keys of any length");
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` header value for a delivery (`v1,<base64>`).
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.tag(webhook_id, &timestamp.to_string(), body);
        format!("v1,{}", STANDARD.encode(tag))
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SigningSecret([REDACTED])")
    }
}

/// A delivery whose signature matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    /// The sender's `webhook-id` (or `svix-id`), used to detect redeliveries.
    pub webhook_id: String,
    /// The sender's `webhook-timestamp` (or `svix-timestamp`), unix seconds.
    pub timestamp: i64,
}

/// Why a delivery was refused (all answered 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A required header is absent, empty or not text (under both spellings).
    #[error("missing or empty {0} header")]
    MissingHeader(&'static str),
    /// The `webhook-` header and its `svix-` alias are both present and differ.
    #[error("{0} and {1} headers are both present and differ")]
    ConflictingHeaders(&'static str, &'static str),
    /// `webhook-timestamp` is not unix seconds.
    #[error("webhook-timestamp is not a unix time in seconds")]
    InvalidTimestamp,
    /// The timestamp is too old or too far in the future.
    #[error("webhook-timestamp is outside the accepted tolerance")]
    TimestampOutsideTolerance,
    /// No `v1` entry matches any configured secret.
    #[error("no signature matches")]
    NoMatchingSignature,
}

impl SignatureError {
    /// The metric reason for this refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature_headers",
            Self::InvalidTimestamp | Self::TimestampOutsideTolerance => {
                "timestamp_out_of_tolerance"
            }
            Self::NoMatchingSignature | Self::ConflictingHeaders(..) => "invalid_signature",
        }
    }
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// One signature header, under its Standard Webhooks name or its Svix alias.
fn header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
    alias: &'static str,
) -> Result<&'a str, SignatureError> {
    match (header_value(headers, name), header_value(headers, alias)) {
        (Some(value), Some(other)) if value != other => {
            Err(SignatureError::ConflictingHeaders(name, alias))
        }
        (Some(value), _) | (None, Some(value)) => Ok(value),
        (None, None) => Err(SignatureError::MissingHeader(name)),
    }
}

/// Checks a Standard Webhooks signature over the exact bytes received, with
/// the headers under their `webhook-` names or their `svix-` aliases.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[SigningSecret],
    tolerance: Duration,
    now: SystemTime,
) -> Result<VerifiedDelivery, SignatureError> {
    let webhook_id = header(headers, "webhook-id", "svix-id")?;
    let timestamp_text = header(headers, "webhook-timestamp", "svix-timestamp")?;
    let signatures = header(headers, "webhook-signature", "svix-signature")?;
    if webhook_id.len() > MAX_WEBHOOK_ID_LEN {
        return Err(SignatureError::MissingHeader("webhook-id"));
    }
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::InvalidTimestamp)?;
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    if timestamp.abs_diff(now_secs) > tolerance.as_secs() {
        return Err(SignatureError::TimestampOutsideTolerance);
    }

    let expected: Vec<[u8; 32]> = secrets
        .iter()
        .map(|secret| secret.tag(webhook_id, timestamp_text, body))
        .collect();
    let mut matched = subtle::Choice::from(0);
    for entry in signatures.split_ascii_whitespace() {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(candidate) = STANDARD.decode(encoded) else {
            continue;
        };
        for tag in &expected {
            // `ct_eq` on slices of different lengths is false without leaking where they differ.
            matched |= tag.as_slice().ct_eq(&candidate);
        }
    }
    if bool::from(matched) {
        Ok(VerifiedDelivery {
            webhook_id: webhook_id.to_string(),
            timestamp,
        })
    } else {
        Err(SignatureError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";
    const NOW: i64 = 1_715_587_380;

    fn at(seconds: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    }

    fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        headers.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(signature).unwrap(),
        );
        headers
    }

    fn secrets(list: &[&str]) -> Vec<SigningSecret> {
        list.iter()
            .map(|s| SigningSecret::parse(s).unwrap())
            .collect()
    }

    /// Fixed-secret, fixed-timestamp, fixed-payload cases with their expected
    /// signatures, verbatim from the official `standardwebhooks` libraries
    /// (github.com/standard-webhooks/standard-webhooks): the first from
    /// `libraries/go/webhook_test.go` `TestWebhookSign` (the same case as
    /// `libraries/javascript/src/webhook.test.ts` "sign function works"), the
    /// second from `libraries/rust/src/lib.rs` `test_sign`.
    /// (secret, msg id, timestamp, payload, expected `webhook-signature`).
    const REFERENCE_VECTORS: [(&str, &str, i64, &str, &str); 2] = [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ];

    fn svix_headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("svix-id", HeaderValue::from_str(id).unwrap());
        headers.insert(
            "svix-timestamp",
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        headers.insert("svix-signature", HeaderValue::from_str(signature).unwrap());
        headers
    }

    #[test]
    fn signs_the_standard_webhooks_reference_vectors() {
        for (secret, id, timestamp, payload, expected) in REFERENCE_VECTORS {
            let signature =
                SigningSecret::parse(secret)
                    .unwrap()
                    .sign(id, timestamp, payload.as_bytes());
            assert_eq!(signature, expected, "{id}");
        }
    }

    #[test]
    fn reference_vectors_verify_under_either_header_spelling() {
        let tolerance = Duration::from_secs(300);
        for (secret, id, timestamp, payload, expected) in REFERENCE_VECTORS {
            for (spelling, sent) in [
                ("webhook-", headers(id, timestamp, expected)),
                ("svix-", svix_headers(id, timestamp, expected)),
            ] {
                let delivery = verify(
                    &sent,
                    payload.as_bytes(),
                    &secrets(&[secret]),
                    tolerance,
                    at(timestamp),
                )
                .unwrap_or_else(|error| panic!("{spelling} {id}: {error}"));
                assert_eq!(
                    delivery,
                    VerifiedDelivery {
                        webhook_id: id.to_string(),
                        timestamp
                    }
                );
                // The same checks apply whichever spelling carried the headers.
                assert_eq!(
                    verify(&sent, b"{}", &secrets(&[secret]), tolerance, at(timestamp)),
                    Err(SignatureError::NoMatchingSignature),
                    "{spelling} tampered body"
                );
                assert_eq!(
                    verify(
                        &sent,
                        payload.as_bytes(),
                        &secrets(&[secret]),
                        tolerance,
                        at(timestamp + 301)
                    ),
                    Err(SignatureError::TimestampOutsideTolerance),
                    "{spelling} stale"
                );
            }
        }
    }

    #[test]
    fn spellings_may_mix_and_may_repeat_the_same_value_but_never_differ() {
        let (secret, id, timestamp, payload, expected) = REFERENCE_VECTORS[1];
        let check = |sent: &HeaderMap| {
            verify(
                sent,
                payload.as_bytes(),
                &secrets(&[secret]),
                Duration::from_secs(300),
                at(timestamp),
            )
        };

        let mut mixed = svix_headers(id, timestamp, expected);
        mixed.remove("svix-timestamp");
        mixed.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        assert!(check(&mixed).is_ok());

        let mut both = headers(id, timestamp, expected);
        both.extend(svix_headers(id, timestamp, expected));
        assert!(check(&both).is_ok());

        let mut other_id = both.clone();
        other_id.insert("svix-id", HeaderValue::from_static("msg_other"));
        assert_eq!(
            check(&other_id),
            Err(SignatureError::ConflictingHeaders("webhook-id", "svix-id"))
        );
        let mut other_signature = both.clone();
        other_signature.insert(
            "webhook-signature",
            HeaderValue::from_static("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="),
        );
        assert_eq!(
            check(&other_signature),
            Err(SignatureError::ConflictingHeaders(
                "webhook-signature",
                "svix-signature"
            ))
        );
        assert_eq!(
            SignatureError::ConflictingHeaders("webhook-id", "svix-id").reason(),
            "invalid_signature"
        );

        let mut missing = svix_headers(id, timestamp, expected);
        missing.remove("svix-signature");
        assert_eq!(
            check(&missing),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
    }

    #[test]
    fn valid_signature_is_accepted() {
        let body = b"{}";
        let signature = SigningSecret::parse(SECRET)
            .unwrap()
            .sign("msg_1", NOW, body);
        let delivery = verify(
            &headers("msg_1", NOW, &signature),
            body,
            &secrets(&[SECRET]),
            Duration::from_secs(300),
            at(NOW),
        )
        .unwrap();
        assert_eq!(delivery.webhook_id, "msg_1");
    }

    #[test]
    fn any_secret_of_a_rotation_and_any_entry_may_match() {
        let body = b"[]";
        let signature = SigningSecret::parse(OTHER)
            .unwrap()
            .sign("msg_2", NOW, body);
        let header = format!("v1,AAAA v1a,xyz {signature}");
        assert!(
            verify(
                &headers("msg_2", NOW, &header),
                body,
                &secrets(&[SECRET, OTHER]),
                Duration::from_secs(300),
                at(NOW)
            )
            .is_ok()
        );
    }

    #[test]
    fn tampered_body_wrong_secret_and_stale_or_future_times_are_refused() {
        let body = b"{\"a\":1}";
        let signature = SigningSecret::parse(SECRET)
            .unwrap()
            .sign("msg_3", NOW, body);
        let good = headers("msg_3", NOW, &signature);
        let tolerance = Duration::from_secs(300);
        assert_eq!(
            verify(&good, b"{\"a\":2}", &secrets(&[SECRET]), tolerance, at(NOW)),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&good, body, &secrets(&[OTHER]), tolerance, at(NOW)),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&good, body, &secrets(&[SECRET]), tolerance, at(NOW + 301)),
            Err(SignatureError::TimestampOutsideTolerance)
        );
        assert_eq!(
            verify(&good, body, &secrets(&[SECRET]), tolerance, at(NOW - 301)),
            Err(SignatureError::TimestampOutsideTolerance)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let mut partial = headers("msg_4", NOW, "v1,AAAA");
        partial.remove("webhook-signature");
        assert_eq!(
            verify(
                &partial,
                b"",
                &secrets(&[SECRET]),
                Duration::from_secs(300),
                at(NOW)
            ),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
        assert_eq!(
            verify(
                &HeaderMap::new(),
                b"",
                &secrets(&[SECRET]),
                Duration::from_secs(300),
                at(NOW)
            ),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
    }

    #[test]
    fn secrets_parse_with_or_without_prefix_and_refuse_garbage() {
        assert!(SigningSecret::parse("c2VjcmV0").is_ok());
        assert_eq!(
            SigningSecret::parse("whsec_").unwrap_err(),
            SecretFormatError::Empty
        );
        assert_eq!(
            SigningSecret::parse("whsec_!!!").unwrap_err(),
            SecretFormatError::NotBase64
        );
        assert_eq!(
            format!("{:?}", SigningSecret::parse(SECRET).unwrap()),
            "SigningSecret([REDACTED])"
        );
    }
}
