//! PowerVS failure classification: HTTP statuses and the `Error` body
//! (`{code, description, error, message}`) mapped onto [`ErrorKind`].
//!
//! The one place that knows what a pcloud status means. It decides the
//! kind only; retrying is the engine's business.

use crate::providers::http;
use crate::providers::{ErrorKind, ProviderError};

use super::wire::ApiError;
pub use crate::providers::malformed;

/// Longest API message kept in an error.
const MAX_MESSAGE_CHARS: usize = 400;

/// The kind of a non-2xx pcloud answer.
pub fn classify(status: u16, message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    match status {
        401 => ErrorKind::Auth,
        403 if lower.contains("quota") => ErrorKind::Quota,
        403 => ErrorKind::Permanent,
        404 | 410 => ErrorKind::NotFound,
        // Another snapshot (or restore) in progress on the instance, or a
        // duplicate name; the provider reconciles the name case itself.
        409 => ErrorKind::Busy,
        429 => ErrorKind::Throttled,
        400 if lower.contains("quota") || lower.contains("limit exceeded") => ErrorKind::Quota,
        500..=599 => ErrorKind::Transient,
        400..=499 => ErrorKind::Permanent,
        // 1xx/3xx are not answers the API gives: something in between.
        _ => ErrorKind::Transient,
    }
}

/// The error for a non-2xx answer. `scrub` holds values (tokens) that must
/// not appear in the message even if the server echoes them.
pub fn http_error(
    call: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    scrub: &[&str],
) -> ProviderError {
    let parsed: ApiError = serde_json::from_slice(body).unwrap_or_default();
    let mut text = [&parsed.description, &parsed.message, &parsed.error]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    if text.is_empty() {
        text = format!("HTTP {status} without an error body");
    }
    for needle in scrub.iter().filter(|n| n.len() >= 8) {
        text = text.replace(needle, "[redacted]");
    }
    let text = truncate(&text);
    let kind = classify(status, &text);
    let hint = match (status, kind) {
        (401, _) => " (the bearer token was rejected)",
        (403, ErrorKind::Permanent) => {
            " (check `crn` and that the credentials may use this workspace)"
        }
        _ => "",
    };
    let code = match &parsed.code {
        Some(serde_json::Value::Number(n)) if n.as_u64() != Some(u64::from(status)) => {
            format!("http {status}/{n}")
        }
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
            format!("http {status}/{}", truncate(s.trim()))
        }
        _ => format!("http {status}"),
    };
    let mut err = ProviderError::new(kind, call, format!("{text}{hint}")).with_code(code);
    if let Some(after) = http::retry_after(headers) {
        err = err.with_retry_after(after);
    }
    if let Some(id) = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
    {
        tracing::debug!(
            call,
            http_status = status,
            correlation_id = id,
            "powervs call failed"
        );
    }
    err
}

pub fn truncate(s: &str) -> String {
    crate::providers::truncate_message(s, MAX_MESSAGE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn status_table() {
        let cases: &[(u16, &str, ErrorKind)] = &[
            (400, "bad name", ErrorKind::Permanent),
            (400, "snapshot quota exceeded", ErrorKind::Quota),
            (401, "invalid token", ErrorKind::Auth),
            (403, "forbidden", ErrorKind::Permanent),
            (404, "not found", ErrorKind::NotFound),
            (410, "gone", ErrorKind::NotFound),
            (409, "snapshot in progress", ErrorKind::Busy),
            (429, "rate limited", ErrorKind::Throttled),
            (500, "internal", ErrorKind::Transient),
            (502, "", ErrorKind::Transient),
            (504, "gateway timeout", ErrorKind::Transient),
            (418, "teapot", ErrorKind::Permanent),
            (302, "", ErrorKind::Transient),
        ];
        for (status, msg, kind) in cases {
            assert_eq!(classify(*status, msg), *kind, "{status} {msg}");
        }
    }

    #[test]
    fn message_is_built_from_the_error_body_and_scrubbed() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        let body =
            br#"{"code":429,"description":"slow down token-abcdefgh","error":"too many requests"}"#;
        let e = http_error("pcloud.x", 429, &headers, body, &["token-abcdefgh"]);
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
        assert_eq!(e.message, "slow down [redacted]: too many requests");
        assert_eq!(e.code.as_deref(), Some("http 429"));
        let e = http_error("pcloud.x", 503, &HeaderMap::new(), b"<html>", &[]);
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.contains("HTTP 503"), "{}", e.message);
    }
}
