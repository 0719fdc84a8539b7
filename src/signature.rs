//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`, the
//! key is the base64-decoded part of a `whsec_` secret, and the
//! `webhook-signature` header holds space-separated `v1,<base64 HMAC-SHA256>`
//! entries. Any configured secret may match (rotation), comparisons are
//! constant-time, and the timestamp must be within the tolerance either way.

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
    /// The sender's `webhook-id`, used to detect redeliveries.
    pub webhook_id: String,
    /// The sender's `webhook-timestamp` (unix seconds).
    pub timestamp: i64,
}

/// Why a delivery was refused (all answered 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A required header is absent, empty or not text.
    #[error("missing or empty {0} header")]
    MissingHeader(&'static str),
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
            Self::NoMatchingSignature => "invalid_signature",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(SignatureError::MissingHeader(name))
}

/// Checks a Standard Webhooks signature over the exact bytes received.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[SigningSecret],
    tolerance: Duration,
    now: SystemTime,
) -> Result<VerifiedDelivery, SignatureError> {
    let webhook_id = header(headers, "webhook-id")?;
    let timestamp_text = header(headers, "webhook-timestamp")?;
    let signatures = header(headers, "webhook-signature")?;
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

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example in the Standard Webhooks specification and its libraries.
        let body = br#"{"test": 2432232314}"#;
        let signature = SigningSecret::parse(SECRET).unwrap().sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
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
