//! The AWS Lightsail dialect (JSON 1.1), served at `/lightsail` so that a
//! client's endpoint is `http://127.0.0.1:PORT/lightsail` (lightsail.md §1).
//!
//! One request goes: `POST` with `X-Amz-Target: Lightsail_20161128.<Op>` →
//! answer faults → SigV4 check (recomputed with the `aws-sigv4` crate from
//! the received method, path, signed headers and body, and the secret the
//! simulator knows) → the operation (`model`) → `200` with the JSON answer,
//! or an error body `{"__type": ..., "message": ...}`. Every request,
//! rejected or not, lands in the journal with the body's top-level members
//! as its parameters.

mod control;
mod model;
mod signature;

use std::collections::BTreeMap;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::Utc;

pub(crate) use control::routes as control_routes;
pub(crate) use model::{Family, LightsailState, SeedSnapshot};

use super::conn::ConnHandle;
use super::faults::{self, FaultKind};
use super::journal::RequestRecord;
use super::{SimState, Simulator};

/// The dialect's name in the control API.
pub(crate) const DIALECT: &str = "lightsail";

/// `X-Amz-Target` prefix (lightsail.md §1).
const TARGET_PREFIX: &str = "Lightsail_20161128.";

/// Largest request body read; Lightsail requests are small JSON objects.
const MAX_BODY: usize = 1024 * 1024;

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
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "__type": self.type_name, "message": self.message })
    }
}

async fn handle(State(sim): State<Simulator>, req: Request) -> Response {
    let now = Utc::now();
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|ConnectInfo(c)| c.clone());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY).await;

    let target = header_str(&headers, "x-amz-target");
    let action = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or(target)
        .to_string();
    let (input, params) = match &body {
        Ok(bytes) => decode_body(bytes),
        Err(_) => (
            Err(ApiError::new(
                400,
                "SerializationException",
                "the body could not be read",
            )),
            BTreeMap::new(),
        ),
    };

    let (answer, latency) = {
        let mut guard = sim.lock();
        let SimState {
            settings,
            journal,
            faults: registry,
            lightsail,
            ..
        } = &mut *guard;
        let hit = registry.for_request(DIALECT, &action);
        let mut job_fault = None;
        let outcome: Option<Result<serde_json::Value, ApiError>> = match hit.answer {
            Some(FaultKind::Throttle) => Some(Err(ApiError::new(
                400,
                "ThrottlingException",
                "Rate exceeded",
            ))),
            Some(FaultKind::Quota) => Some(Err(ApiError::invalid(
                "Sorry, you've reached the maximum number of snapshots allowed in this region",
            ))),
            Some(FaultKind::ServerError) => None,
            _ => Some((|| {
                if !target.starts_with(TARGET_PREFIX) {
                    return Err(ApiError::new(
                        400,
                        "UnknownOperationException",
                        format!("X-Amz-Target {target:?} is not a Lightsail operation"),
                    ));
                }
                let bytes = body.as_deref().unwrap_or_default();
                signature::authenticate(lightsail, &method, &path, &query, &headers, bytes, now)?;
                let input = input?;
                let mut ctx = model::Ctx {
                    state: lightsail,
                    faults: registry,
                    duration: settings.job_duration,
                    now,
                    fault_hit: None,
                };
                let r = model::dispatch(&action, &input, &mut ctx);
                job_fault = ctx.fault_hit;
                r
            })()),
        };
        let answer = match (&hit.answer, &outcome) {
            (Some(FaultKind::DropConnection), _) => faults::dropped_response(conn.as_ref()),
            (_, None) => faults::server_error_response(),
            (Some(FaultKind::Malformed), Some(Ok(v))) => {
                faults::malformed_response(v.to_string().as_bytes())
            }
            (_, Some(Ok(v))) => json_response(StatusCode::OK, v),
            (_, Some(Err(e))) => json_response(e.status, &e.to_json()),
        };
        let mut fault_names = hit.names();
        if let Some(kind) = job_fault {
            fault_names.push(kind.name());
        }
        let dropped = hit.answer == Some(FaultKind::DropConnection);
        let mut logged = params;
        if let Some(Err(e)) = &outcome {
            logged.insert("__error".to_string(), e.type_name.to_string());
        }
        journal.push(RequestRecord {
            seq: 0,
            time: now,
            dialect: DIALECT.to_string(),
            method,
            action,
            params: logged,
            ret_code: None,
            http_status: (!dropped).then(|| answer.status().as_u16()),
            fault: (!fault_names.is_empty()).then(|| fault_names.join(",")),
        });
        (answer, hit.latency)
    };
    if let Some(delay) = latency {
        tokio::time::sleep(delay).await;
    }
    answer
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        v.to_string(),
    )
        .into_response()
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
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
            Err(ApiError::new(
                400,
                "SerializationException",
                "the request body is not a JSON object",
            )),
            BTreeMap::new(),
        ),
    }
}

/// Lightsail's timestamps: epoch seconds with a fraction (lightsail.md §1).
pub(crate) fn epoch(t: chrono::DateTime<Utc>) -> serde_json::Value {
    serde_json::json!(t.timestamp_millis() as f64 / 1000.0)
}
