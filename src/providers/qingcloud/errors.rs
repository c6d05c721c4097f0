//! QingCloud failure classification: `ret_code` values, HTTP statuses and
//! unparseable bodies mapped onto [`ErrorKind`].
//!
//! This is the one place that knows what a QingCloud error code means. It
//! decides the kind only; retrying is the engine's business.

pub(crate) use crate::providers::query_api::http_error;
pub use crate::providers::unexpected;
use crate::providers::ErrorKind;

/// `ret_code` for "resource not found" (also what an unknown job id gives).
pub const NOT_FOUND: i64 = 2100;

/// The kind of a non-zero `ret_code` (documented codes per the QingCloud
/// error-code page; anything unknown is permanent so it is never retried
/// blindly).
pub fn classify(ret_code: i64, message: &str) -> ErrorKind {
    match ret_code {
        1100 | 1101 => ErrorKind::Permanent,
        1200 | 2000 => ErrorKind::Auth,
        1300 => ErrorKind::Transient,
        1400 if message.to_ascii_lowercase().contains("please try later") => ErrorKind::Busy,
        1400 => ErrorKind::Permanent,
        NOT_FOUND => ErrorKind::NotFound,
        2110 | 5400 => ErrorKind::Conflict,
        2400 => ErrorKind::Permanent,
        2500 => ErrorKind::Quota,
        5000 | 5200 | 5300 => ErrorKind::Transient,
        5100 => ErrorKind::Throttled,
        _ => ErrorKind::Permanent,
    }
}

/// What the operator should do about a code, where there is something.
pub fn hint(ret_code: i64) -> Option<&'static str> {
    match ret_code {
        1300 => Some(
            "the request time_stamp was rejected as expired: check that the host clock is synced, e.g. with NTP",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::providers::malformed;
    use crate::providers::qingcloud::client::QingCloudApi as Api;
    use crate::providers::query_api::Dialect;

    #[test]
    fn ret_code_table() {
        let cases: &[(i64, &str, ErrorKind)] = &[
            (1100, "missing parameter", ErrorKind::Permanent),
            (1101, "bad action", ErrorKind::Permanent),
            (1200, "signature not match", ErrorKind::Auth),
            (2000, "session expired", ErrorKind::Auth),
            (1300, "message expired", ErrorKind::Transient),
            (
                1400,
                "PermissionDenied, resource [ss-u90rxvl1] is [creating], please try later",
                ErrorKind::Busy,
            ),
            (
                1400,
                "PermissionDenied, resource [vol-umyf1cy2] lease info not ready yet, Please Try Later",
                ErrorKind::Busy,
            ),
            (
                1400,
                "PermissionDenied, instance [i-2aypaijz] is not running， can not be stopped",
                ErrorKind::Permanent,
            ),
            (
                1400,
                "PermissionDenied, snapshot [ss-u90rxvl1] is not available, can not create volume from it",
                ErrorKind::Permanent,
            ),
            (2100, "resource not found", ErrorKind::NotFound),
            (2110, "already exists", ErrorKind::Conflict),
            (5400, "dependency exists", ErrorKind::Conflict),
            (2400, "insufficient balance", ErrorKind::Permanent),
            (2500, "quota exceeded", ErrorKind::Quota),
            (5000, "internal error", ErrorKind::Transient),
            (5100, "server busy", ErrorKind::Throttled),
            (5200, "no resources", ErrorKind::Transient),
            (5300, "updating", ErrorKind::Transient),
            (2200, "lease failed", ErrorKind::Permanent),
            (9999, "something new", ErrorKind::Permanent),
            (-1, "negative", ErrorKind::Permanent),
        ];
        for (code, msg, kind) in cases {
            assert_eq!(classify(*code, msg), *kind, "code {code} {msg:?}");
            let e = Api::api_error("CreateSnapshots", *code, Some(msg));
            assert_eq!(e.kind, *kind);
            assert_eq!(e.call, "CreateSnapshots");
            assert_eq!(e.code.as_deref(), Some(code.to_string().as_str()));
            assert!(e.message.starts_with(msg), "{}", e.message);
        }
    }

    #[test]
    fn clock_hint_on_1300() {
        let e = Api::api_error("DescribeJobs", 1300, Some("message expired"));
        assert!(e.message.contains("host clock"), "{}", e.message);
    }

    #[test]
    fn missing_message_is_described() {
        let e = Api::api_error("DeleteSnapshots", 5000, None);
        assert_eq!(e.message, "ret_code 5000 without a message");
        assert_eq!(e.kind, ErrorKind::Transient);
    }

    #[test]
    fn http_statuses() {
        // The dialect's http_error is the shared one.
        crate::providers::query_api::tests::assert_http_statuses(
            "DescribeJobs",
            Duration::from_secs(7),
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(10_000);
        let e = malformed("CreateSnapshots", &long, 10_000);
        assert!(e.message.len() < 1_000);
        assert!(e
            .message
            .starts_with("malformed response from CreateSnapshots: "));
    }
}
