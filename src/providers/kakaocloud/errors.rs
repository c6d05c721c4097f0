//! KakaoCloud failure classification: HTTP statuses and the error body
//! (`{"error": {"code", "message"}}`) mapped onto [`ErrorKind`]. Decides
//! the kind only; retrying is the engine's business.

use std::time::Duration;

use super::wire::ErrorBody;
pub use crate::providers::{malformed, unexpected};
use crate::providers::{ErrorKind, ProviderError};

/// Longest API message kept in an error; the rest is cut.
const MAX_MESSAGE_CHARS: usize = 500;

/// The kind of a non-2xx answer. A quota named in the code or message wins
/// over the status, since the API has no dedicated quota status.
pub fn classify(status: u16, code: &str, message: &str) -> ErrorKind {
    let text = format!("{code} {message}").to_ascii_lowercase();
    let quota = text.contains("quota") || text.contains("limit exceeded");
    match status {
        401 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Busy,
        429 => ErrorKind::Throttled,
        s if s >= 500 => ErrorKind::Transient,
        _ if quota => ErrorKind::Quota,
        403 => ErrorKind::Auth,
        _ => ErrorKind::Permanent,
    }
}

/// The error for a non-2xx answer. `body` is parsed leniently; a body that
/// is not the API's JSON (a proxy page) is not echoed.
pub fn http_error(
    call: &str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    scrub: impl Fn(&str) -> String,
) -> ProviderError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = match &parsed {
        Some(ErrorBody {
            error: Some(e),
            detail: _,
        }) => (
            e.code.as_ref().map(code_text).unwrap_or_default(),
            e.message
                .clone()
                .or_else(|| e.title.clone())
                .unwrap_or_default(),
        ),
        Some(ErrorBody {
            error: None,
            detail: Some(d),
        }) => (String::new(), detail_text(d)),
        _ => (String::new(), String::new()),
    };
    let message = scrub(message.trim());
    let kind = classify(status, &code, &message);
    let what = match kind {
        ErrorKind::Auth if status == 403 => {
            "permission denied: check the IAM role of the access key's project"
        }
        ErrorKind::Auth => "token rejected",
        ErrorKind::NotFound => "not found",
        ErrorKind::Busy => "conflict: the resource is busy, try later",
        ErrorKind::Throttled => "too many requests",
        ErrorKind::Transient => "server error",
        ErrorKind::Quota => "quota exceeded",
        _ => "request rejected",
    };
    let text = if message.is_empty() {
        format!("HTTP {status} ({what})")
    } else {
        format!("HTTP {status} ({what}): {}", truncate(&message))
    };
    let mut err = ProviderError::new(kind, call, text).with_code(if code.is_empty() {
        format!("http {status}")
    } else {
        code
    });
    if let Some(after) = retry_after {
        err = err.with_retry_after(after);
    }
    err
}

fn code_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn detail_text(d: &serde_json::Value) -> String {
    match d {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.get("msg").and_then(|m| m.as_str()))
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    }
}

fn truncate(s: &str) -> String {
    crate::providers::truncate_message(s, MAX_MESSAGE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases: &[(u16, &str, &str, ErrorKind)] = &[
            (400, "BadRequest", "invalid name", ErrorKind::Permanent),
            (401, "Unauthorized", "token expired", ErrorKind::Auth),
            (403, "Forbidden", "not allowed", ErrorKind::Auth),
            (403, "QuotaExceeded", "snapshot quota", ErrorKind::Quota),
            (400, "", "Snapshot limit exceeded", ErrorKind::Quota),
            (404, "NotFound", "no such snapshot", ErrorKind::NotFound),
            (409, "Conflict", "in progress", ErrorKind::Busy),
            (422, "", "field required", ErrorKind::Permanent),
            (429, "", "", ErrorKind::Throttled),
            (500, "", "", ErrorKind::Transient),
            (503, "quota", "", ErrorKind::Transient),
            (418, "", "", ErrorKind::Permanent),
        ];
        for (status, code, msg, kind) in cases {
            assert_eq!(classify(*status, code, msg), *kind, "{status} {code} {msg}");
        }
    }

    #[test]
    fn error_bodies_are_read_leniently() {
        let e = http_error(
            "CreateSnapshot",
            409,
            br#"{"error":{"code":"Conflict","message":"busy"}}"#,
            None,
            str::to_string,
        );
        assert_eq!(e.kind, ErrorKind::Busy);
        assert_eq!(e.code.as_deref(), Some("Conflict"));
        assert!(e.message.ends_with(": busy"), "{}", e.message);

        let e = http_error(
            "IssueToken",
            401,
            br#"{"error":{"code":401,"message":"bad secret","title":"Unauthorized"}}"#,
            None,
            str::to_string,
        );
        assert_eq!(e.kind, ErrorKind::Auth);
        assert_eq!(e.code.as_deref(), Some("401"));

        let e = http_error(
            "CreateSnapshot",
            422,
            br#"{"detail":[{"loc":["body"],"msg":"field required","type":"x"}]}"#,
            None,
            str::to_string,
        );
        assert!(e.message.contains("field required"), "{}", e.message);

        let e = http_error(
            "ListSnapshots",
            429,
            b"<html>slow down</html>",
            Some(Duration::from_secs(3)),
            str::to_string,
        );
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert!(!e.message.contains("html"));
        assert_eq!(e.code.as_deref(), Some("http 429"));
    }

    #[test]
    fn messages_are_scrubbed() {
        let e = http_error(
            "GetSnapshot",
            400,
            br#"{"error":{"code":"x","message":"token tok-123 is odd"}}"#,
            None,
            |m| m.replace("tok-123", "[redacted]"),
        );
        assert!(!e.message.contains("tok-123"), "{}", e.message);
    }
}
