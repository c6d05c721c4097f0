//! UCloudStack API errors: `{"Action": "…Response", "RetCode": N,
//! "Message": "…"}` with HTTP 200; codes from the RetCode list,
//! messages in the API's own language.

use crate::sim::form::FormError;

/// One API-level failure, answered with HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub ret_code: i64,
    pub message: String,
}

impl ApiError {
    fn new(ret_code: i64, message: impl Into<String>) -> Self {
        ApiError {
            ret_code,
            message: message.into(),
        }
    }

    /// 140: a parameter has a value the API does not accept.
    pub(crate) fn invalid(param: &str, why: &str) -> Self {
        Self::new(140, format!("参数错误: {param} {why}"))
    }

    /// 140: the request could not be decoded.
    pub(crate) fn malformed(what: &str) -> Self {
        Self::new(140, format!("参数错误: {what}"))
    }

    /// 140: an action this API does not have.
    pub(crate) fn unknown_action(action: &str) -> Self {
        Self::new(140, format!("参数错误: 不支持的 Action {action}"))
    }

    /// 154: no `Action`.
    pub(crate) fn missing_action() -> Self {
        Self::new(154, "缺少Action")
    }

    /// 229: a required parameter is absent or empty.
    pub(crate) fn missing(param: &str) -> Self {
        Self::new(229, format!("缺少参数: {param}"))
    }

    /// 161: the `quota` fault on an action other than CreateSnapshot.
    pub(crate) fn quota() -> Self {
        Self::new(161, "配额不足")
    }

    /// 162: unknown Region.
    pub(crate) fn no_region(region: &str) -> Self {
        Self::new(162, format!("地域不存在: {region}"))
    }

    /// 163: unknown Zone.
    pub(crate) fn no_zone(zone: &str) -> Self {
        Self::new(163, format!("可用区不存在: {zone}"))
    }

    /// 165: the `throttle` fault.
    pub(crate) fn too_frequent() -> Self {
        Self::new(165, "操作过于频繁，请稍后再试")
    }

    /// 170: `PublicKey` or `Signature` absent.
    pub(crate) fn missing_signature() -> Self {
        Self::new(170, "缺少签名参数")
    }

    /// 171: unknown key or signature mismatch.
    pub(crate) fn bad_signature() -> Self {
        Self::new(171, "登录签名验证失败")
    }

    /// 2201: no such disk.
    pub(crate) fn no_disk(disk_id: &str) -> Self {
        Self::new(2201, format!("硬盘不存在: {disk_id}"))
    }

    /// 2500: the disk's snapshot count reached the cap.
    pub(crate) fn snapshot_cap(cap: u32) -> Self {
        Self::new(2500, format!("该磁盘创建的快照数量已达上限({cap})"))
    }

    /// 2501: rollback while the disk's VM is running.
    pub(crate) fn vm_running(disk_id: &str) -> Self {
        Self::new(2501, format!("硬盘 {disk_id} 绑定的虚拟机未关机"))
    }

    /// 2502: the disk has a snapshot being created or rolled back.
    pub(crate) fn disk_busy(disk_id: &str) -> Self {
        Self::new(2502, format!("磁盘 {disk_id} 存在创建中或者回滚中的快照"))
    }

    /// 8102: no such snapshot (or already destroyed).
    pub(crate) fn no_snapshot(snapshot_id: &str) -> Self {
        Self::new(8102, format!("资源不存在或已销毁: {snapshot_id}"))
    }

    pub(crate) fn to_json(&self, action: &str) -> serde_json::Value {
        serde_json::json!({
            "Action": format!("{action}Response"),
            "RetCode": self.ret_code,
            "Message": self.message,
        })
    }
}

impl FormError for ApiError {
    fn malformed(what: &str) -> Self {
        ApiError::malformed(what)
    }
    fn bad_index(key: &str, _value: &str) -> Self {
        ApiError::invalid(key, "下标应为整数")
    }
    fn bad_number(name: &str, _raw: &str) -> Self {
        ApiError::invalid(name, "应为非负整数")
    }
    fn ret_code(&self) -> i64 {
        self.ret_code
    }
}
