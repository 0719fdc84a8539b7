//! `send`: sign D&B files with Standard Webhooks and POST them to a bridge,
//! as a relay would. Files larger than the body limit are split: NDJSON by
//! lines, JSON arrays and Direct+ responses by notifications (each part keeps
//! the response envelope).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::cli::SendArgs;
use crate::config::Settings;
use crate::signature::SigningSecret;

/// One request body and its media type.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    /// The bytes to sign and send.
    pub body: Vec<u8>,
    /// `application/json` or `application/x-ndjson`.
    pub content_type: &'static str,
}

/// Signs and posts every file.
pub async fn run(settings: &Settings, args: SendArgs) -> anyhow::Result<ExitCode> {
    let secret_text = match &args.secret {
        Some(secret) => secret.clone(),
        None => settings
            .webhook
            .non_empty_secrets()
            .next()
            .map(|secret| secret.expose_secret().to_string())
            .context("no --secret given and webhook.secrets is empty")?,
    };
    let secret = SigningSecret::parse(&secret_text).context("the signing secret")?;
    let url = webhook_url(args.url.as_deref(), settings);
    let limit = args
        .max_body_bytes
        .unwrap_or(settings.webhook.max_body_bytes);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("HTTP client")?;

    let mut failures = 0;
    for path in &args.files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let parts = split(path, bytes, limit)
            .with_context(|| format!("cannot split {}", path.display()))?;
        let count = parts.len();
        for (number, part) in parts.into_iter().enumerate() {
            let label = if count > 1 {
                format!("{} (part {}/{count})", path.display(), number + 1)
            } else {
                path.display().to_string()
            };
            let webhook_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            let timestamp = chrono::Utc::now().timestamp();
            let signature = secret.sign(&webhook_id, timestamp, &part.body);
            let answer = client
                .post(&url)
                .header("content-type", part.content_type)
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(part.body)
                .send()
                .await;
            match answer {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    println!("{label}: {} {text}", status.as_u16());
                    if !status.is_success() {
                        failures += 1;
                    }
                }
                Err(error) => {
                    eprintln!("{label}: {error}");
                    failures += 1;
                }
            }
        }
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The webhook URL from `--url` (a base URL gets the webhook path) or from `server.bind`.
fn webhook_url(url: Option<&str>, settings: &Settings) -> String {
    match url {
        Some(url) => {
            let trimmed = url.trim_end_matches('/');
            let has_path = trimmed
                .split("://")
                .nth(1)
                .is_some_and(|rest| rest.contains('/'));
            if has_path {
                trimmed.to_string()
            } else {
                format!("{trimmed}/webhooks/dnb")
            }
        }
        None => super::local_url(settings, "/webhooks/dnb"),
    }
}

/// Cuts a file into bodies of at most `limit` bytes where its format allows.
pub fn split(path: &Path, bytes: Vec<u8>, limit: usize) -> anyhow::Result<Vec<Part>> {
    let ndjson = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| matches!(extension, "ndjson" | "jsonl"));
    if ndjson {
        return Ok(split_lines(&bytes, limit));
    }
    if bytes.len() <= limit {
        return Ok(vec![Part {
            body: bytes,
            content_type: "application/json",
        }]);
    }
    let value: Value = serde_json::from_slice(&bytes).context("not JSON")?;
    let (envelope, items) = match value {
        Value::Array(items) => (None, items),
        Value::Object(mut object) => match object.remove("notifications") {
            Some(Value::Array(items)) => (Some(object), items),
            _ => {
                return Ok(vec![Part {
                    body: bytes,
                    content_type: "application/json",
                }]);
            }
        },
        _ => {
            return Ok(vec![Part {
                body: bytes,
                content_type: "application/json",
            }]);
        }
    };
    let render = |chunk: Vec<Value>| -> Vec<u8> {
        match &envelope {
            Some(envelope) => {
                let mut object = envelope.clone();
                object.insert("notifications".into(), Value::Array(chunk));
                serde_json::to_vec(&Value::Object(object))
            }
            None => serde_json::to_vec(&Value::Array(chunk)),
        }
        .expect("JSON values serialise")
    };
    let overhead = render(Vec::new()).len();
    let mut parts = Vec::new();
    let mut chunk = Vec::new();
    let mut size = overhead;
    for item in items {
        let item_size = serde_json::to_vec(&item)
            .expect("JSON values serialise")
            .len()
            + 1;
        if !chunk.is_empty() && size + item_size > limit {
            parts.push(Part {
                body: render(std::mem::take(&mut chunk)),
                content_type: "application/json",
            });
            size = overhead;
        }
        size += item_size;
        chunk.push(item);
    }
    if !chunk.is_empty() {
        parts.push(Part {
            body: render(chunk),
            content_type: "application/json",
        });
    }
    Ok(parts)
}

fn split_lines(bytes: &[u8], limit: usize) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    for line in bytes.split_inclusive(|byte| *byte == b'\n') {
        if !body.is_empty() && body.len() + line.len() > limit {
            parts.push(Part {
                body: std::mem::take(&mut body),
                content_type: "application/x-ndjson",
            });
        }
        body.extend_from_slice(line);
    }
    if !body.is_empty() {
        parts.push(Part {
            body,
            content_type: "application/x-ndjson",
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_ndjson_is_split_on_line_boundaries() {
        let body = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n".to_vec();
        let parts = split(Path::new("x.ndjson"), body, 10).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|part| part.body.ends_with(b"\n")
                    && part.content_type == "application/x-ndjson")
        );
    }

    #[test]
    fn large_pull_responses_keep_their_envelope_in_every_part() {
        let body = serde_json::to_vec(&serde_json::json!({
            "inquiryDetail": {"reference": "R"},
            "notifications": (0..50).map(|i| serde_json::json!({"type": "DELETE", "n": i})).collect::<Vec<_>>()
        }))
        .unwrap();
        let parts = split(Path::new("x.json"), body, 400).unwrap();
        assert!(parts.len() > 1);
        let mut total = 0;
        for part in &parts {
            assert!(part.body.len() <= 400, "{}", part.body.len());
            let value: Value = serde_json::from_slice(&part.body).unwrap();
            assert_eq!(value["inquiryDetail"]["reference"], "R");
            total += value["notifications"].as_array().unwrap().len();
        }
        assert_eq!(total, 50);
    }

    #[test]
    fn small_files_are_sent_byte_for_byte() {
        let body = b"{ \"notifications\": [] }".to_vec();
        assert_eq!(
            split(Path::new("x.json"), body.clone(), 1024).unwrap()[0].body,
            body
        );
    }

    #[test]
    fn base_urls_get_the_webhook_path() {
        let settings = Settings::default();
        assert_eq!(
            webhook_url(Some("http://h:1"), &settings),
            "http://h:1/webhooks/dnb"
        );
        assert_eq!(
            webhook_url(Some("http://h:1/custom/path"), &settings),
            "http://h:1/custom/path"
        );
        assert_eq!(
            webhook_url(None, &settings),
            "http://127.0.0.1:8080/webhooks/dnb"
        );
    }
}
