//! The control API under `/_sim/`: health, the request journal, faults and
//! settings, plus the helpers dialect modules use for their own
//! `/_sim/<dialect>/…` seeding endpoints (JSON parsing, errors, the loopback
//! guard). No authentication: it refuses any peer that is not loopback.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::conn::ConnHandle;
use super::faults::FaultSpec;
use super::Simulator;

/// Behaviour that can change while the simulator runs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How long new async jobs stay pending/working (jobs already created
    /// keep the duration they started with).
    pub job_duration: Duration,
    /// QingCloud: answer CreateSnapshots with `"job_id":["j-…"]` as the Go
    /// SDK observed in 2024, instead of the documented string.
    pub job_id_as_array: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    job_duration_ms: Option<u64>,
    job_id_as_array: Option<bool>,
}

#[derive(Debug, Serialize)]
struct SettingsView {
    job_duration_ms: u128,
    job_id_as_array: bool,
}

impl From<&Settings> for SettingsView {
    fn from(s: &Settings) -> Self {
        SettingsView {
            job_duration_ms: s.job_duration.as_millis(),
            job_id_as_array: s.job_id_as_array,
        }
    }
}

/// The generic control routes (dialect-specific ones are merged by
/// `Simulator::router`).
pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/_sim/health", get(health))
        .route("/_sim/requests", get(list_requests).delete(clear_requests))
        .route("/_sim/counters", get(counters))
        .route(
            "/_sim/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sim/settings", get(get_settings).post(patch_settings))
}

/// Middleware for every `/_sim/` route: loopback peers only. Without
/// connection info (router served by someone else) the caller chose the
/// listener, so the request is let through.
pub(crate) async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|ConnectInfo(conn)| conn.peer());
    match peer {
        Some(addr) if !addr.ip().is_loopback() => error(
            StatusCode::FORBIDDEN,
            format!("the control API only answers loopback peers, not {addr}"),
        ),
        _ => next.run(req).await,
    }
}

/// Any path nobody serves.
pub(crate) async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {} {}", req.method(), req.uri().path()),
    )
}

/// A control-API error, answered as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ControlError {
    status: StatusCode,
    message: String,
}

impl ControlError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ControlError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ControlError {
        status,
        message: message.into(),
    }
    .into_response()
}

/// Parses a control request body, answering 400 with serde's message (which
/// names the field and position) when it does not fit.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|e| ControlError::bad_request(format!("invalid JSON request body: {e}")))
}

/// What a control endpoint answers: JSON, or a [`ControlError`].
pub(crate) type Answer = Result<Json<serde_json::Value>, ControlError>;

/// `{"ok": true}`: the answer of an endpoint with nothing else to say.
pub(crate) fn ok() -> Json<serde_json::Value> {
    Json(json!({ "ok": true }))
}

/// Answers 400 naming the first empty field.
pub(crate) fn require(fields: &[(&str, &str)]) -> Result<(), ControlError> {
    require_in("", fields)
}

/// [`require`] for an item of a bulk request: `where_` (`snapshots[3].`)
/// prefixes the field's name.
pub(crate) fn require_in(where_: &str, fields: &[(&str, &str)]) -> Result<(), ControlError> {
    match fields.iter().find(|(_, v)| v.trim().is_empty()) {
        Some((name, _)) => Err(ControlError::bad_request(format!(
            "{where_}{name} must not be empty"
        ))),
        None => Ok(()),
    }
}

async fn health() -> Json<serde_json::Value> {
    ok()
}

#[derive(Debug, Deserialize)]
struct RequestFilter {
    dialect: Option<String>,
    action: Option<String>,
}

async fn list_requests(
    State(sim): State<Simulator>,
    filter: Result<Query<RequestFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let requests = sim
        .lock()
        .journal
        .filtered(filter.dialect.as_deref(), filter.action.as_deref());
    Json(json!({ "requests": requests })).into_response()
}

/// Requests per dialect and action since the journal was last cleared:
/// what a benchmark reads instead of the whole journal.
async fn counters(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    let state = sim.lock();
    let counters: Vec<_> = state
        .journal
        .counters()
        .into_iter()
        .map(|(dialect, action, requests)| {
            json!({ "dialect": dialect, "action": action, "requests": requests })
        })
        .collect();
    let total: u64 = counters.iter().filter_map(|c| c["requests"].as_u64()).sum();
    Json(json!({ "total": total, "counters": counters }))
}

async fn clear_requests(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    sim.lock().journal.clear();
    ok()
}

async fn list_faults(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    Json(json!({ "faults": sim.lock().faults.list() }))
}

async fn add_fault(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let spec: FaultSpec = parse_json(&body)?;
    let id = sim
        .lock()
        .faults
        .add(spec)
        .map_err(ControlError::bad_request)?;
    Ok(Json(json!({ "id": id })))
}

async fn clear_faults(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    sim.lock().faults.clear();
    ok()
}

async fn get_settings(State(sim): State<Simulator>) -> Json<SettingsView> {
    Json(SettingsView::from(&sim.lock().settings))
}

async fn patch_settings(
    State(sim): State<Simulator>,
    body: Bytes,
) -> Result<Json<SettingsView>, ControlError> {
    let patch: SettingsPatch = parse_json(&body)?;
    let mut state = sim.lock();
    if let Some(ms) = patch.job_duration_ms {
        state.settings.job_duration = Duration::from_millis(ms);
    }
    if let Some(flag) = patch.job_id_as_array {
        state.settings.job_id_as_array = flag;
    }
    Ok(Json(SettingsView::from(&state.settings)))
}
