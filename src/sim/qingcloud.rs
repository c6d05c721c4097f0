//! The QingCloud IaaS dialect, served at `/iaas/` like
//! `https://api.qingcloud.com/iaas/`.
//!
//! One request goes: decode the query (GET) or form body (POST) → answer
//! faults → common parameters, clock window, access key and signature →
//! the action (`actions`) → JSON with HTTP 200, `ret_code` 0 or an error
//! code. Every request, rejected or not, lands in the journal.

mod actions;
mod control;
mod errors;
mod model;
mod signature;
mod tags;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};

pub(crate) use control::routes as control_routes;
pub(crate) use model::{QingState, ResourceKind};

use super::faults::FaultKind;
use super::form::FormCall;
pub(crate) use super::form::Params;
use super::pipeline::{self, Dialect, Incoming};
use super::{SimState, Simulator};
use errors::ApiError;
use signature::SignatureMethod;

/// The dialect's name in the control API.
pub(crate) const DIALECT: &str = "qingcloud";

/// How far `time_stamp` may be from the server clock.
const TIME_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Parameters every call must carry.
const COMMON_PARAMS: &[&str] = &[
    "action",
    "zone",
    "time_stamp",
    "access_key_id",
    "version",
    "signature_method",
    "signature_version",
    "signature",
];

/// `/iaas/` as documented, and `/iaas` as the Go SDK's default config sends
/// it; the signature covers whichever path was actually requested.
pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/iaas/", get(iaas).post(iaas))
        .route("/iaas", get(iaas).post(iaas))
}

async fn iaas(State(sim): State<Simulator>, req: Request) -> Response {
    pipeline::serve(&sim, req, Call::decode).await
}

/// One decoded call: its parameters, whether they decoded, its action.
struct Call(FormCall<ApiError>);

impl Call {
    fn decode(req: &Incoming) -> Call {
        Call(FormCall::decode(req, "action", None))
    }
}

impl Dialect for Call {
    const NAME: &'static str = DIALECT;
    type Reply = serde_json::Value;
    type Error = ApiError;

    fn action(&self) -> &str {
        &self.0.action
    }

    fn throttled(&self) -> ApiError {
        ApiError::server_busy()
    }

    fn quota(&self, _state: &SimState) -> ApiError {
        ApiError::quota()
    }

    fn dispatch(
        &mut self,
        state: &mut SimState,
        req: &Incoming,
    ) -> (Result<serde_json::Value, ApiError>, Option<FaultKind>) {
        let SimState {
            settings,
            faults: registry,
            qingcloud,
            ..
        } = state;
        self.0.run(|params, action, job_fault| {
            authenticate(qingcloud, req.method.as_str(), &req.path, params, req.now)?;
            let zone = params.get("zone").map(String::as_str).unwrap_or_default();
            let mut ctx = actions::Ctx {
                qing: qingcloud,
                planner: actions::JobPlanner {
                    faults: registry,
                    duration: settings.job_duration,
                    fault_hit: None,
                },
                job_id_as_array: settings.job_id_as_array,
                params,
                zone,
                now: req.now,
            };
            let result = actions::dispatch(action, &mut ctx);
            *job_fault = ctx.planner.fault_hit;
            result
        })
    }

    fn respond(
        &self,
        result: &Result<serde_json::Value, ApiError>,
        fault: Option<FaultKind>,
    ) -> Response {
        let json = match result {
            Ok(value) if fault == Some(FaultKind::Incomplete) => overcounted(value),
            Ok(value) => value.clone(),
            Err(err) => err.to_json(),
        };
        pipeline::json_200(json.to_string().into_bytes(), fault)
    }

    fn journal(
        self,
        result: Option<&Result<serde_json::Value, ApiError>>,
    ) -> (Params, Option<i64>) {
        self.0.journal("signature", result)
    }
}

/// The `incomplete` fault: the same answer claiming one item more than it
/// carries, as when a page of a listing went missing.
fn overcounted(value: &serde_json::Value) -> serde_json::Value {
    let mut v = value.clone();
    if let Some(n) = v.get("total_count").and_then(serde_json::Value::as_u64) {
        v["total_count"] = serde_json::json!(n + 1);
    }
    v
}

/// Common parameters, clock window, access key, signature — in that order.
fn authenticate(
    qing: &QingState,
    method: &str,
    path: &str,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    if let Some(missing) = COMMON_PARAMS.iter().find(|p| get(p).is_empty()) {
        return Err(ApiError::missing(missing));
    }
    for name in ["version", "signature_version"] {
        if get(name) != "1" {
            return Err(ApiError::invalid(name, get(name)));
        }
    }
    let algorithm = SignatureMethod::parse(get("signature_method"))
        .ok_or_else(|| ApiError::invalid("signature_method", get("signature_method")))?;
    let time_stamp = parse_time(get("time_stamp"))
        .ok_or_else(|| ApiError::invalid("time_stamp", get("time_stamp")))?;
    let fresh = match params.get("expires") {
        Some(raw) => parse_time(raw).ok_or_else(|| ApiError::invalid("expires", raw))? > now,
        None => (now - time_stamp).abs() <= TIME_WINDOW,
    };
    if !fresh {
        return Err(ApiError::expired(get("time_stamp")));
    }
    let key = get("access_key_id");
    let secret = qing.secret(key).ok_or_else(|| ApiError::unknown_key(key))?;
    if !signature::verify(algorithm, secret, method, path, params, get("signature")) {
        return Err(ApiError::bad_signature());
    }
    Ok(())
}

/// ISO 8601 UTC as QingCloud sends it (`2024-01-01T00:00:00Z`); any RFC 3339
/// offset is accepted too.
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `2024-01-01T02:30:01Z`: QingCloud's timestamps have whole seconds.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
pub(crate) mod testing {
    //! A minimal, independent QingCloud client for the simulator's tests.
    use super::signature::{sign, SignatureMethod};
    use super::Params;
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

    const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');

    /// Adds the common parameters for `action` and signs them; returns the
    /// encoded query/body including `signature`.
    #[allow(clippy::too_many_arguments)] // a flat call reads best in tests
    pub(crate) fn signed_query(
        method: &str,
        path: &str,
        access_key_id: &str,
        secret: &str,
        time_stamp: &str,
        action: &str,
        zone: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut params: Params = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in [
            ("action", action),
            ("zone", zone),
            ("time_stamp", time_stamp),
            ("access_key_id", access_key_id),
            ("version", "1"),
            ("signature_method", "HmacSHA256"),
            ("signature_version", "1"),
        ] {
            params.insert(k.to_string(), v.to_string());
        }
        let sig = sign(SignatureMethod::HmacSha256, secret, method, path, &params);
        params.insert("signature".to_string(), sig);
        params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(k, ENCODE),
                    utf8_percent_encode(v, ENCODE)
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::form::decode_form;

    #[test]
    fn form_decoding_treats_plus_as_space_and_percent_2b_as_plus() {
        let mut p = Params::new();
        decode_form::<ApiError>(
            "snapshot_name=a+b%20c&signature=ab%2Bcd%3D%3D&empty",
            &mut p,
        )
        .expect("valid form");
        assert_eq!(p["snapshot_name"], "a b c");
        assert_eq!(p["signature"], "ab+cd==");
        assert_eq!(p["empty"], "");
    }

    #[test]
    fn form_decoding_rejects_invalid_utf8() {
        let mut p = Params::new();
        let err = decode_form::<ApiError>("a=%FF", &mut p).expect_err("not UTF-8");
        assert_eq!(err.ret_code, 1100);
    }

    #[test]
    fn time_format_has_whole_seconds() {
        let t = parse_time("2024-01-01T02:30:01.750Z").expect("valid time");
        assert_eq!(format_time(t), "2024-01-01T02:30:01Z");
    }
}
