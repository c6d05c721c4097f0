//! UCloudStack failure classification: `RetCode` values,
//! HTTP statuses and unparseable bodies mapped onto [`ErrorKind`], with the
//! operator-facing hints for the codes an operator must act on.
//!
//! Decides the kind only; retrying is the engine's business.

pub(crate) use crate::providers::query_api::http_error;
pub use crate::providers::unexpected;
use crate::providers::ErrorKind;

/// Snapshot count of this disk reached the per-disk cap.
pub const SNAPSHOT_QUOTA: i64 = 2500;
/// The VM the disk is bound to is not powered off (rollback).
pub const VM_NOT_STOPPED: i64 = 2501;
/// The disk has a snapshot being created or rolled back.
pub const DISK_BUSY: i64 = 2502;

/// The kind of a non-zero `RetCode`. Anything unknown is permanent so that
/// it is never retried blindly.
pub fn classify(ret_code: i64) -> ErrorKind {
    match ret_code {
        100 | 110 | 130 | 151..=153 => ErrorKind::Transient,
        150 | 170..=178 | 240 | 301 => ErrorKind::Auth,
        165 => ErrorKind::Throttled,
        2202 | 2206 | DISK_BUSY => ErrorKind::Busy,
        161 | SNAPSHOT_QUOTA => ErrorKind::Quota,
        2201 | 2205 | 8102 => ErrorKind::NotFound,
        2207 | VM_NOT_STOPPED => ErrorKind::Conflict,
        _ => ErrorKind::Permanent,
    }
}

/// What the operator should do about a code, where there is something.
pub fn hint(ret_code: i64) -> Option<&'static str> {
    match ret_code {
        171 => Some("signature rejected: check `public_key` and `private_key`"),
        150 | 170 | 172..=178 | 240 | 301 => {
            Some("the API refused these credentials: check `public_key`, `private_key` and the account's API permissions")
        }
        SNAPSHOT_QUOTA => Some(
            "the disk reached its snapshot cap (admin setting \"单个硬盘创建快照上限\", default 10): \
             lower the policy's `retain` below the cap, or ask the administrator to raise it; \
             no older snapshot was pruned",
        ),
        161 => Some("a quota is exhausted: ask the administrator to raise it"),
        VM_NOT_STOPPED => Some("rollback needs the disk detached or its VM powered off"),
        2202 => Some("the disk is in use by a resource; rollback needs it detached or its VM powered off"),
        162 | 163 => Some("check `region` and `zone` of the provider section"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::providers::query_api::Dialect;
    use crate::providers::ucloudstack::client::UCloudStackApi as Api;

    #[test]
    fn ret_code_table() {
        use ErrorKind::*;
        let cases: &[(i64, ErrorKind)] = &[
            (100, Transient),
            (110, Transient),
            (130, Transient),
            (151, Transient),
            (153, Transient),
            (140, Permanent),
            (154, Permanent),
            (229, Permanent),
            (150, Auth),
            (170, Auth),
            (171, Auth),
            (172, Auth),
            (178, Auth),
            (240, Auth),
            (301, Auth),
            (165, Throttled),
            (2502, Busy),
            (2202, Busy),
            (2206, Busy),
            (2500, Quota),
            (161, Quota),
            (2201, NotFound),
            (2205, NotFound),
            (8102, NotFound),
            (2501, Conflict),
            (2207, Conflict),
            (160, Permanent),
            (162, Permanent),
            (9999, Permanent),
        ];
        for (code, kind) in cases {
            assert_eq!(classify(*code), *kind, "{code}");
            let e = Api::api_error("CreateSnapshot", *code, Some("msg"));
            assert_eq!(e.kind, *kind);
            assert_eq!(e.code.as_deref(), Some(code.to_string().as_str()));
            assert!(e.message.starts_with("msg"), "{}", e.message);
        }
    }

    #[test]
    fn quota_tells_the_operator_what_to_do() {
        let e = Api::api_error("CreateSnapshot", 2500, Some("该磁盘创建的快照数量已达上限"));
        assert_eq!(e.kind, ErrorKind::Quota);
        assert!(
            e.message.contains("lower the policy's `retain`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("raise it"), "{}", e.message);
    }

    #[test]
    fn signature_failure_names_the_keys() {
        let e = Api::api_error("DescribeSnapshot", 171, Some("登录签名验证失败"));
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("private_key"), "{}", e.message);
        assert!(e.to_string().contains("auth error (code 171)"), "{e}");
    }

    #[test]
    fn http_statuses_and_empty_messages() {
        // The dialect's http_error is the shared one.
        crate::providers::query_api::tests::assert_http_statuses("x", Duration::from_secs(3));
        assert_eq!(
            Api::api_error("x", 130, None).message,
            "RetCode 130 without a message"
        );
    }
}
