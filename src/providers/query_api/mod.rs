//! The return-code envelope both query-style dialects use (QingCloud and
//! UCloudStack): a signed call whose 200 answer is a JSON object carrying a
//! return code (0 = success) and a message, classified the same way; list
//! parameters written `name.N=…`; listings paged by offset against a total
//! count.
//!
//! Only what means the same on both clouds lives here. What differs is
//! declared once per dialect by its [`Dialect`] impl (in its `client.rs`):
//! the envelope type and so its field names (its `wire::Envelope`), the code
//! tables and operator hints (its `errors.rs`), the first list index, the
//! paging fields' spelling. Signing, the request shape (GET query vs form
//! POST), the per-call logging and the job/snapshot status mapping stay in
//! each dialect.
//!
//! Pieces: [`Dialect`] (decode an answer, build the API error, list
//! parameters), [`http_error`], [`scrub`], [`parse_endpoint`],
//! [`sorted_pairs`] (the order both sign in),
//! [`paging`] (offset/total-count listings), [`unique`], and the test
//! fixtures in `fake`.

#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod paging;

use std::collections::HashSet;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::providers::{malformed, truncate_message, unexpected, ErrorKind, ProviderError};

/// Longest API message kept in an error; the rest is cut.
const MAX_MESSAGE_CHARS: usize = 500;

/// One query-style dialect as the shared code needs it: its envelope type
/// (which carries the field names), how it spells its fields in messages,
/// where its list parameters start, and its code tables (which stay in the
/// dialect's `errors.rs`). The provided methods are the shared behaviour.
pub(crate) trait Dialect {
    /// What every answer carries (`ret_code`/`message` or
    /// `RetCode`/`Message`).
    type Envelope: Envelope;
    /// The cloud's kind, as the debug logs name it (`qingcloud`).
    const LOG_NAME: &'static str;
    /// The envelope's code field as the API spells it (`ret_code`).
    const RET_CODE_FIELD: &'static str;
    /// The index of a list parameter's first value (`name.1` or `name.0`).
    const FIRST_INDEX: usize;
    /// The paging fields as the API spells them (`total_count`, `offset`).
    const TOTAL_FIELD: &'static str;
    const OFFSET_FIELD: &'static str;

    /// The kind of a non-zero code; gets the final message text.
    fn classify(ret_code: i64, message: &str) -> ErrorKind;
    /// A hint appended to the message as ` (hint)`, where there is one.
    fn hint(ret_code: i64) -> Option<&'static str>;

    /// A 200 body read as the clients read it: JSON, then the envelope's
    /// code (non-zero → the classified API error, its message passed
    /// through `scrub`), then the action's type `T`. Never panics on any
    /// input.
    fn decode<T: DeserializeOwned>(
        action: &str,
        body: &[u8],
        scrub: impl Fn(&str) -> String,
    ) -> Result<T, ProviderError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| malformed(action, e, body.len()))?;
        let envelope =
            Self::Envelope::deserialize(&value).map_err(|e| malformed(action, e, body.len()))?;
        let Some(ret_code) = envelope.ret_code() else {
            return Err(malformed(
                action,
                format!("no {}", Self::RET_CODE_FIELD),
                body.len(),
            ));
        };
        tracing::debug!(action, ret_code, "{} call", Self::LOG_NAME);
        if ret_code != 0 {
            let message = envelope.into_message().map(|m| scrub(&m));
            return Err(Self::api_error(action, ret_code, message.as_deref()));
        }
        T::deserialize(&value).map_err(|e| malformed(action, e, body.len()))
    }

    /// The error for an answer whose code is not 0. `message` is the API's
    /// text (already scrubbed of anything secret by the caller): trimmed,
    /// cut to 500 characters, followed by the dialect's hint for the code.
    fn api_error(call: &str, ret_code: i64, message: Option<&str>) -> ProviderError {
        let text = message
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| truncate_message(m, MAX_MESSAGE_CHARS))
            .unwrap_or_else(|| format!("{} {ret_code} without a message", Self::RET_CODE_FIELD));
        let text = match Self::hint(ret_code) {
            Some(h) => format!("{text} ({h})"),
            None => text,
        };
        ProviderError::new(Self::classify(ret_code, &text), call, text)
            .with_code(ret_code.to_string())
    }

    /// `name.{FIRST_INDEX}=v…&name.{FIRST_INDEX + 1}=…` for a list
    /// parameter.
    fn list_param(
        name: &str,
        values: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Vec<(String, String)> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    format!("{name}.{}", Self::FIRST_INDEX + i),
                    v.as_ref().to_string(),
                )
            })
            .collect()
    }
}

/// A dialect's envelope type: what every answer carries, read before the
/// action's own type so that an error answer is classified, not called
/// malformed.
pub(crate) trait Envelope: DeserializeOwned {
    fn ret_code(&self) -> Option<i64>;
    fn into_message(self) -> Option<String>;
}

/// Declares a dialect's `Envelope` type: the return code (a number, or a
/// number in a string) under the JSON field `ret_code: "…"`, the message
/// under `message: "…"`, both optional, and its [`Envelope`] impl.
macro_rules! envelope {
    (ret_code: $code:literal, message: $message:literal) => {
        /// What every response carries; read first so an error body (which
        /// lacks the action's fields) is classified, not called malformed.
        #[derive(Debug, serde::Deserialize)]
        pub struct Envelope {
            #[serde(
                                        rename = $code,
                                        default,
                                        deserialize_with = "crate::providers::wire::flex_i64"
                                    )]
            pub ret_code: Option<i64>,
            #[serde(rename = $message, default)]
            pub message: Option<String>,
        }

        impl $crate::providers::query_api::Envelope for Envelope {
            fn ret_code(&self) -> Option<i64> {
                self.ret_code
            }

            fn into_message(self) -> Option<String> {
                self.message
            }
        }
    };
}
pub(crate) use envelope;

/// A listed item's id; an absent or blank one makes the answer of `call`
/// unusable (`what` says which item).
pub(crate) fn required_id(
    id: &Option<String>,
    call: &str,
    what: &str,
) -> Result<String, ProviderError> {
    id.clone()
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| unexpected(call, what))
}

/// Whether a listed resource's status is one of `gone` (gone or going:
/// never offered to a selector).
pub(crate) fn is_gone(status: Option<&str>, gone: &[&str]) -> bool {
    status.is_some_and(|s| gone.contains(&s))
}

/// The error for an HTTP status other than 200: 429 is throttling, any
/// other status transient. The body is not echoed: it is not the API's
/// JSON and may be an arbitrary proxy page.
pub(crate) fn http_error(call: &str, status: u16, retry_after: Option<Duration>) -> ProviderError {
    let (kind, what) = match status {
        429 => (ErrorKind::Throttled, "too many requests"),
        s if s >= 500 => (ErrorKind::Transient, "server error"),
        _ => (ErrorKind::Transient, "unexpected HTTP status"),
    };
    let mut err = ProviderError::new(kind, call, format!("HTTP {status} ({what})"))
        .with_code(format!("http {status}"));
    if let Some(after) = retry_after {
        err = err.with_retry_after(after);
    }
    err
}

/// `message` with every non-empty `secret` replaced by `[redacted]`, in
/// the order given, in case the server echoes what it was sent.
pub(crate) fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for needle in secrets {
        if !needle.is_empty() {
            out = out.replace(needle, "[redacted]");
        }
    }
    out
}

/// The configured endpoint as an http(s) URL with a host, its query and
/// fragment dropped; `cloud` names the dialect in the error.
pub(crate) fn parse_endpoint(cloud: &str, endpoint: &str) -> Result<reqwest::Url, String> {
    crate::providers::http::base_url(&format!("{cloud} endpoint"), endpoint)
}

/// The parameters in the order both dialects sign them: by name in byte
/// order, ties by value, so that the result never depends on the input
/// order.
pub(crate) fn sorted_pairs(params: &[(String, String)]) -> Vec<&(String, String)> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| {
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    sorted
}

/// A listing that could not be read whole: retryable, never a partial
/// answer.
pub(crate) fn incomplete(call: &str, detail: String) -> ProviderError {
    ProviderError::new(
        ErrorKind::Transient,
        call,
        format!("listing incomplete: {detail}"),
    )
}

/// For the fuzz entries: an operation of every kind for each
/// `(operation, snapshot_id)` pair, so that each status mapping sees every
/// combination of what an answer held.
#[cfg(any(feature = "fuzz", test))]
pub(crate) fn ops_of_every_kind(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> impl Iterator<Item = crate::providers::OperationRef> {
    use crate::providers::{OpKind, OperationRef};
    pairs.into_iter().flat_map(|(operation, snapshot_id)| {
        [OpKind::Create, OpKind::Delete, OpKind::Restore].map(|kind| OperationRef {
            kind,
            operation: operation.clone(),
            snapshot_id: snapshot_id.clone(),
        })
    })
}

/// Distinct values in first-seen order.
pub(crate) fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .filter(|v| seen.insert(*v))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::providers::OpKind;

    #[test]
    fn scrub_replaces_every_non_empty_secret() {
        assert_eq!(
            scrub("key sk-1 sig abc, again sk-1", &["sk-1", "", "abc"]),
            "key [redacted] sig [redacted], again [redacted]"
        );
        assert_eq!(scrub("nothing here", &[""]), "nothing here");
    }

    /// A dialect made up for the tests: codes below 100 are transient,
    /// code 7 has a hint.
    struct Test;

    #[derive(serde::Deserialize)]
    struct TestEnvelope {
        code: Option<i64>,
        text: Option<String>,
    }

    impl Envelope for TestEnvelope {
        fn ret_code(&self) -> Option<i64> {
            self.code
        }

        fn into_message(self) -> Option<String> {
            self.text
        }
    }

    impl Dialect for Test {
        type Envelope = TestEnvelope;
        const LOG_NAME: &'static str = "test";
        const RET_CODE_FIELD: &'static str = "code";
        const FIRST_INDEX: usize = 7;
        const TOTAL_FIELD: &'static str = "total";
        const OFFSET_FIELD: &'static str = "offset";

        fn classify(ret_code: i64, _message: &str) -> ErrorKind {
            if ret_code < 100 {
                ErrorKind::Transient
            } else {
                ErrorKind::Permanent
            }
        }

        fn hint(ret_code: i64) -> Option<&'static str> {
            (ret_code == 7).then_some("do this")
        }
    }

    #[test]
    fn decode_reads_the_envelope_first() {
        let keep = |m: &str| m.to_string();
        let got: Result<serde_json::Value, _> = Test::decode("Act", br#"{"code":0,"x":1}"#, keep);
        assert_eq!(got.ok(), Some(serde_json::json!({"code":0,"x":1})));
        let e = Test::decode::<serde_json::Value>("Act", br#"{"x":1}"#, keep).err();
        assert_eq!(
            e.map(|e| e.message),
            Some("malformed response from Act: no code (7 bytes)".to_string())
        );
        let e = Test::decode::<serde_json::Value>("Act", b"{", keep).err();
        assert_eq!(e.map(|e| e.kind), Some(ErrorKind::Transient));
        let e =
            Test::decode::<serde_json::Value>("Act", br#"{"code":7,"text":" key sk-1 "}"#, |m| {
                scrub(m, &["sk-1"])
            })
            .err();
        let Some(e) = e else {
            panic!("code 7 is an error")
        };
        assert_eq!(e.message, "key [redacted] (do this)");
        assert_eq!(e.code.as_deref(), Some("7"));
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.call, "Act");
    }

    #[test]
    fn api_errors_without_a_message_or_with_a_long_one() {
        let e = Test::api_error("Act", 500, Some("  "));
        assert_eq!(e.message, "code 500 without a message");
        assert_eq!(e.kind, ErrorKind::Permanent);
        let e = Test::api_error("Act", 500, Some(&"x".repeat(501)));
        assert_eq!(e.message, format!("{}…", "x".repeat(500)));
    }

    #[test]
    fn list_params_count_from_the_dialects_first_index() {
        let ids = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            Test::list_param("x", &ids),
            vec![
                ("x.7".to_string(), "a".to_string()),
                ("x.8".to_string(), "b".to_string())
            ]
        );
        assert!(Test::list_param("x", Vec::<String>::new()).is_empty());
    }

    #[test]
    fn every_kind_for_every_pair() {
        let ops: Vec<(OpKind, String, String)> = ops_of_every_kind([
            ("j".to_string(), "s".to_string()),
            (String::new(), "t".into()),
        ])
        .map(|op| (op.kind, op.operation, op.snapshot_id))
        .collect();
        let pair = |o: &str, s: &str| {
            [OpKind::Create, OpKind::Delete, OpKind::Restore]
                .map(|k| (k, o.to_string(), s.to_string()))
        };
        assert_eq!(ops, [pair("j", "s"), pair("", "t")].concat());
    }

    #[test]
    fn pairs_sort_by_name_bytes_then_value() {
        let params: Vec<(String, String)> = [("b", "1"), ("a", "2"), ("B", "0"), ("a", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got: Vec<(&str, &str)> = sorted_pairs(&params)
            .into_iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, [("B", "0"), ("a", "1"), ("a", "2"), ("b", "1")]);
    }

    #[test]
    fn unique_keeps_first_seen_order() {
        assert_eq!(
            unique(["b", "a", "b", "c", "a"].into_iter()),
            vec!["b".to_string(), "a".to_string(), "c".to_string()]
        );
    }

    /// What both dialects' `http_error` (this one) gives: 429 is
    /// throttling with the asked delay, 503 and 403 transient.
    pub(crate) fn assert_http_statuses(call: &str, retry_after: Duration) {
        let e = http_error(call, 429, Some(retry_after));
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(retry_after));
        assert_eq!(http_error("x", 503, None).kind, ErrorKind::Transient);
        assert_eq!(http_error("x", 403, None).kind, ErrorKind::Transient);
    }

    #[test]
    fn http_statuses() {
        assert_http_statuses("x", Duration::from_secs(7));
        let e = http_error("x", 429, Some(Duration::from_secs(7)));
        assert_eq!(e.message, "HTTP 429 (too many requests)");
        assert_eq!(e.code.as_deref(), Some("http 429"));
        assert_eq!(
            http_error("x", 503, None).message,
            "HTTP 503 (server error)"
        );
        let e = http_error("x", 403, None);
        assert_eq!(e.message, "HTTP 403 (unexpected HTTP status)");
    }
}
