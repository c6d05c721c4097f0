//! The AWS Lightsail dialect (JSON 1.1), served at `/lightsail` so that a
//! client's endpoint is `http://127.0.0.1:PORT/lightsail`.
//!
//! One request goes: `POST` with `X-Amz-Target: Lightsail_20161128.<Op>` →
//! answer faults → SigV4 check (recomputed with the `aws-sigv4` crate from
//! the received method, path, signed headers and body, and the secret the
//! simulator knows) → the operation (`model`) → `200` with the JSON answer,
//! or an error body `{"__type": ..., "message": ...}`. Every request,
//! rejected or not, lands in the journal with the body's top-level members
//! as its parameters.

mod actions;
mod control;
mod copy;
mod history;
mod json;
mod model;
mod paging;
mod signature;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::Utc;

pub(crate) use control::routes as control_routes;
pub(crate) use model::{Family, LightsailState, SeedSnapshot};

use super::faults::{self, FaultKind};
use super::pipeline::{self, Dialect, Incoming};
use super::{SimState, Simulator};

/// The dialect's name in the control API.
pub(crate) const DIALECT: &str = "lightsail";

/// The header that names each request's id.
pub(crate) const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

/// `X-Amz-Target` prefix.
const TARGET_PREFIX: &str = "Lightsail_20161128.";

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/lightsail", post(handle))
        .route("/lightsail/", post(handle))
}

/// An error answer: `__type` and `message`, with its HTTP status.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub type_name: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, type_name: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            type_name,
            message: message.into(),
        }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(400, "InvalidInputException", message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(400, "NotFoundException", message)
    }
    /// The body or a member of it is not of the expected JSON type.
    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        ApiError::new(400, "SerializationException", message)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "__type": self.type_name, "message": self.message })
    }
}

/// Every answer, errors and fault answers included, carries a fresh
/// `x-amzn-RequestId` (a UUID), as AWS's JSON services send and the SDKs
/// read into their error and response metadata.
async fn handle(State(sim): State<Simulator>, req: Request) -> Response {
    let mut response = pipeline::serve(&sim, req, Call::decode).await;
    if let Ok(id) = HeaderValue::from_str(&model::uuid_like()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    response
}

/// One decoded call: the operation, the body as JSON and its top-level
/// members for the journal.
struct Call {
    action: String,
    input: Result<serde_json::Map<String, serde_json::Value>, ApiError>,
    params: BTreeMap<String, String>,
}

impl Call {
    fn decode(req: &Incoming) -> Call {
        let target = req.header("x-amz-target");
        let action = target
            .strip_prefix(TARGET_PREFIX)
            .unwrap_or(target)
            .to_string();
        let (input, params) = match &req.body {
            Ok(bytes) => decode_body(bytes),
            Err(_) => (
                Err(ApiError::serialization("the body could not be read")),
                BTreeMap::new(),
            ),
        };
        Call {
            action,
            input,
            params,
        }
    }
}

impl Dialect for Call {
    const NAME: &'static str = DIALECT;
    type Reply = serde_json::Value;
    type Error = ApiError;

    fn action(&self) -> &str {
        &self.action
    }

    fn throttled(&self) -> ApiError {
        ApiError::new(400, "ThrottlingException", "Rate exceeded")
    }

    fn quota(&self, _state: &SimState) -> ApiError {
        ApiError::invalid(
            "Sorry, you've reached the maximum number of snapshots allowed in this region",
        )
    }

    fn dispatch(
        &mut self,
        state: &mut SimState,
        req: &Incoming,
    ) -> (Result<serde_json::Value, ApiError>, Option<FaultKind>) {
        let target = req.header("x-amz-target");
        if !target.starts_with(TARGET_PREFIX) {
            let err = ApiError::new(
                400,
                "UnknownOperationException",
                format!("X-Amz-Target {target:?} is not a Lightsail operation"),
            );
            return (Err(err), None);
        }
        let SimState {
            settings,
            faults: registry,
            lightsail,
            ..
        } = state;
        let (method, path, query) = (req.method.as_str(), &req.path, &req.query);
        let bytes = req.body_bytes();
        let signed =
            signature::authenticate(lightsail, method, path, query, &req.headers, bytes, req.now);
        let input = std::mem::replace(&mut self.input, Ok(Default::default()));
        let input = match signed.and(input) {
            Ok(input) => input,
            Err(e) => return (Err(e), None),
        };
        let mut ctx = actions::Ctx {
            state: lightsail,
            faults: registry,
            duration: settings.job_duration,
            now: req.now,
            fault_hit: None,
        };
        let r = actions::dispatch(&self.action, &input, &mut ctx);
        (r, ctx.fault_hit)
    }

    fn respond(
        &self,
        result: &Result<serde_json::Value, ApiError>,
        fault: Option<FaultKind>,
    ) -> Response {
        match result {
            Ok(v) if fault == Some(FaultKind::Malformed) => {
                faults::malformed_response(v.to_string().as_bytes())
            }
            Ok(v) => json_response(StatusCode::OK, v),
            Err(e) => json_response(e.status, &e.to_json()),
        }
    }

    fn journal(
        self,
        result: Option<&Result<serde_json::Value, ApiError>>,
    ) -> (BTreeMap<String, String>, Option<i64>) {
        let mut logged = self.params;
        if let Some(Err(e)) = result {
            logged.insert("__error".to_string(), e.type_name.to_string());
        }
        (logged, None)
    }
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    pipeline::json_response(
        status,
        "application/x-amz-json-1.1",
        v.to_string().into_bytes(),
    )
}

/// The body as a JSON object, and its top-level members for the journal
/// (strings as they are, anything else as JSON text).
fn decode_body(
    bytes: &[u8],
) -> (
    Result<serde_json::Map<String, serde_json::Value>, ApiError>,
    BTreeMap<String, String>,
) {
    let parsed: Result<serde_json::Value, _> = if bytes.is_empty() {
        Ok(serde_json::Value::Object(Default::default()))
    } else {
        serde_json::from_slice(bytes)
    };
    match parsed {
        Ok(serde_json::Value::Object(map)) => {
            let params = map
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect();
            (Ok(map), params)
        }
        _ => (
            Err(ApiError::serialization(
                "the request body is not a JSON object",
            )),
            BTreeMap::new(),
        ),
    }
}

/// Lightsail's timestamps: epoch seconds with a fraction.
pub(crate) fn epoch(t: chrono::DateTime<Utc>) -> serde_json::Value {
    serde_json::json!(t.timestamp_millis() as f64 / 1000.0)
}
