//! The request pipeline every dialect shares.
//!
//! One request goes: read it (connection, method, path, query, headers,
//! body) → the dialect decodes what it needs outside the lock → under the
//! lock, the answer faults for the dialect and action: `throttle` and
//! `quota` answer with the dialect's own error, `server_error` with a load
//! balancer's page, anything else lets the dialect dispatch → the dialect
//! renders its answer (`malformed` and `incomplete` are its business, since
//! each cloud's body differs), `drop_connection` closes the connection →
//! the journal gets the request → the `latency` fault sleeps, outside the
//! lock.
//!
//! A dialect supplies the bits that differ through [`Dialect`]: its error
//! shapes, status codes and journal parameters never pass through here.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::conn::ConnHandle;
use super::faults::{self, FaultKind};
use super::journal::RequestRecord;
use super::{SimState, Simulator};

/// Largest request body read; every dialect's requests are small.
const MAX_BODY: usize = 1024 * 1024;

/// A request as read off the wire.
pub(crate) struct Incoming {
    pub now: DateTime<Utc>,
    pub conn: Option<ConnHandle>,
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Result<Bytes, axum::Error>,
}

impl Incoming {
    /// The body, or nothing if it could not be read.
    pub(crate) fn body_bytes(&self) -> &[u8] {
        self.body.as_deref().unwrap_or_default()
    }

    /// A header's value as text; empty when missing or not text.
    pub(crate) fn header(&self, name: &str) -> &str {
        header_str(&self.headers, name)
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// What one dialect does with one decoded request.
pub(crate) trait Dialect {
    /// The dialect's name in faults, the journal and the control API.
    const NAME: &'static str;
    /// A successful answer before rendering.
    type Reply;
    /// The dialect's API error.
    type Error;

    /// The action name faults match and the journal shows.
    fn action(&self) -> &str;
    /// The `throttle` fault's answer.
    fn throttled(&self) -> Self::Error;
    /// The `quota` fault's answer.
    fn quota(&self, state: &SimState) -> Self::Error;
    /// Authenticates and runs the request. The job fault is the
    /// `fail_job`/`never_finish` fault that shaped a new job, for the journal.
    fn dispatch(
        &mut self,
        state: &mut SimState,
        req: &Incoming,
    ) -> (Result<Self::Reply, Self::Error>, Option<FaultKind>);
    /// The wire answer for an API result, given the answer fault that hit
    /// (`malformed`, `incomplete`, or none).
    fn respond(
        &self,
        result: &Result<Self::Reply, Self::Error>,
        fault: Option<FaultKind>,
    ) -> Response;
    /// The HTTP status the journal records for an API result.
    fn logged_status(&self, _result: &Result<Self::Reply, Self::Error>, sent: &Response) -> u16 {
        sent.status().as_u16()
    }
    /// The journal's parameters and `ret_code`; `None` for `server_error`.
    fn journal(
        self,
        result: Option<&Result<Self::Reply, Self::Error>>,
    ) -> (BTreeMap<String, String>, Option<i64>);
}

/// Reads the request and serves it through `decode` and the dialect.
pub(crate) async fn serve<D: Dialect>(
    sim: &Simulator,
    req: Request,
    decode: impl FnOnce(&Incoming) -> D,
) -> Response {
    let incoming = read(req).await;
    let dialect = decode(&incoming);
    let (answer, latency) = answer(sim, &incoming, dialect);
    if let Some(delay) = latency {
        tokio::time::sleep(delay).await;
    }
    answer
}

async fn read(req: Request) -> Incoming {
    let now = Utc::now();
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|ConnectInfo(c)| c.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY).await;
    Incoming {
        now,
        conn,
        method,
        path,
        query,
        headers,
        body,
    }
}

/// Everything done under the lock: faults, dispatch, rendering, journal.
fn answer<D: Dialect>(
    sim: &Simulator,
    req: &Incoming,
    mut dialect: D,
) -> (Response, Option<std::time::Duration>) {
    let mut guard = sim.lock();
    let state = &mut *guard;
    let hit = state.faults.for_request(D::NAME, dialect.action());
    let mut job_fault = None;
    let result = match hit.answer {
        Some(FaultKind::Throttle) => Some(Err(dialect.throttled())),
        Some(FaultKind::Quota) => Some(Err(dialect.quota(state))),
        Some(FaultKind::ServerError) => None,
        _ => {
            let (result, fault) = dialect.dispatch(state, req);
            job_fault = fault;
            Some(result)
        }
    };
    let dropped = hit.answer == Some(FaultKind::DropConnection);
    let (response, status) = match &result {
        _ if dropped => (faults::dropped_response(req.conn.as_ref()), None),
        None => {
            let r = faults::server_error_response();
            let status = r.status().as_u16();
            (r, Some(status))
        }
        Some(result) => {
            let r = dialect.respond(result, hit.answer);
            let status = dialect.logged_status(result, &r);
            (r, Some(status))
        }
    };
    let mut fault_names = hit.names();
    if let Some(kind) = job_fault {
        fault_names.push(kind.name());
    }
    let action = dialect.action().to_string();
    let (params, ret_code) = dialect.journal(result.as_ref());
    state.journal.push(RequestRecord {
        seq: 0,
        time: req.now,
        dialect: D::NAME.to_string(),
        method: req.method.to_string(),
        action,
        params,
        ret_code,
        http_status: status,
        fault: (!fault_names.is_empty()).then(|| fault_names.join(",")),
    });
    (response, hit.latency)
}

/// A JSON body with its status and content type.
pub(crate) fn json_response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The query-style dialects' answer: HTTP 200 with the JSON body, or its
/// first half under the `malformed` fault (errors included).
pub(crate) fn json_200(body: Vec<u8>, fault: Option<FaultKind>) -> Response {
    if fault == Some(FaultKind::Malformed) {
        faults::malformed_response(&body)
    } else {
        json_response(StatusCode::OK, "application/json", body)
    }
}
