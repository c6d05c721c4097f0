//! QingCloud API errors: `{"ret_code": N, "message": "..."}` with HTTP 200,
//! with the API's own codes and message shapes.

use crate::sim::form::FormError;

/// One API-level failure, answered with HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub ret_code: i64,
    pub message: String,
}

impl ApiError {
    fn new(ret_code: i64, message: String) -> Self {
        ApiError { ret_code, message }
    }

    /// 1100: a required parameter is absent or empty.
    pub(crate) fn missing(param: &str) -> Self {
        Self::new(
            1100,
            format!("MissingParameter, parameter [{param}] should not be empty"),
        )
    }

    /// 1100: a parameter has a value the API does not accept.
    pub(crate) fn invalid(param: &str, value: &str) -> Self {
        Self::new(
            1100,
            format!("InvalidParameterValue, the value [{value}] of parameter [{param}] is invalid"),
        )
    }

    /// 1100: the request could not be decoded at all.
    pub(crate) fn malformed(what: &str) -> Self {
        Self::new(1100, format!("MalformedRequest, {what}"))
    }

    /// 1101: no such action.
    pub(crate) fn unknown_action(action: &str) -> Self {
        Self::new(
            1101,
            format!("InvalidRequestMethod, the action [{action}] is not supported"),
        )
    }

    /// 1200: unknown access key.
    pub(crate) fn unknown_key(access_key_id: &str) -> Self {
        Self::new(
            1200,
            format!("AuthFailure, the access key id [{access_key_id}] is invalid"),
        )
    }

    /// 1200: the signature does not match.
    pub(crate) fn bad_signature() -> Self {
        Self::new(
            1200,
            "AuthFailure, signature not matched, please check your secret access key and the \
             string to sign"
                .to_string(),
        )
    }

    /// 1300: time_stamp outside the window and no valid `expires`.
    pub(crate) fn expired(time_stamp: &str) -> Self {
        Self::new(
            1300,
            format!(
                "RequestExpired, the request with time_stamp [{time_stamp}] has expired, \
                 please check your clock"
            ),
        )
    }

    /// 1400 with "please try later": the resource is in a transient state.
    pub(crate) fn busy(resource_id: &str, state: &str) -> Self {
        Self::new(
            1400,
            format!("PermissionDenied, resource [{resource_id}] is [{state}], please try later"),
        )
    }

    /// 1400 for CreateVolumeFromSnapshot from a snapshot that is not
    /// `available` (message as the qingcloud-csi project saw it). It has no
    /// "please try later", so clients treat it as final.
    pub(crate) fn snapshot_not_available(snapshot_id: &str) -> Self {
        Self::new(
            1400,
            format!(
                "PermissionDenied, snapshot [{snapshot_id}] is not available, can not create \
                 volume from it"
            ),
        )
    }

    /// 2100: no such resource (in this zone, for this account).
    pub(crate) fn not_found(resource_id: &str) -> Self {
        Self::new(
            2100,
            format!("ResourceNotFound, resource [{resource_id}] not found"),
        )
    }

    /// 2110: a resource with that unique name exists already.
    pub(crate) fn exists(kind: &str, name: &str) -> Self {
        Self::new(
            2110,
            format!("ResourceAlreadyExists, {kind} [{name}] already exists"),
        )
    }

    /// 2500: the `quota` fault.
    pub(crate) fn quota() -> Self {
        Self::new(
            2500,
            "QuotaExceeded, your api request quota has been exceeded, it is restored at 00:00 \
             tomorrow"
                .to_string(),
        )
    }

    /// 5100: the `throttle` fault.
    pub(crate) fn server_busy() -> Self {
        Self::new(5100, "ServerBusy, please try later".to_string())
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "ret_code": self.ret_code, "message": self.message })
    }
}

impl FormError for ApiError {
    fn malformed(what: &str) -> Self {
        ApiError::malformed(what)
    }
    fn bad_index(key: &str, value: &str) -> Self {
        ApiError::invalid(key, value)
    }
    fn bad_number(name: &str, raw: &str) -> Self {
        ApiError::invalid(name, raw)
    }
    fn ret_code(&self) -> i64 {
        self.ret_code
    }
}
