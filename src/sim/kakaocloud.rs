//! The KakaoCloud dialect, served under `/kakaocloud/`:
//! IAM at `/kakaocloud/iam/identity/v3/auth/tokens`, the BCS instance API
//! at `/kakaocloud/bcs/api/v1/…` and the Volume API (volumes, snapshots)
//! at `/kakaocloud/volume/api/v1/…`.
//!
//! One request goes: route → answer faults → `X-Auth-Token` (except the
//! token issue itself) → the operation on the model → JSON with the real
//! status codes and the `{"error": {"code", "message"}}` body. Every
//! request, rejected or not, lands in the journal without its token or
//! secret.

mod actions;
mod auth;
mod control;
mod model;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub(crate) use control::routes as control_routes;
pub(crate) use model::KakaoState;
use model::Outcome;

use super::faults::{self, FaultKind};
use super::form;
use super::pipeline::{self, Dialect, Incoming};
use super::{SimState, Simulator};

/// The dialect's name in the control API.
pub(crate) const DIALECT: &str = "kakaocloud";

pub(crate) fn routes() -> Router<Simulator> {
    Router::new().route("/kakaocloud/{*rest}", any(handle))
}

/// An API error: HTTP status and the Volume/BCS error body (IAM errors
/// carry an integer code and a title, like Keystone).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    keystone: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            keystone: false,
        }
    }
    pub(crate) fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", m)
    }
    pub(crate) fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", m)
    }
    pub(crate) fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", m)
    }
    pub(crate) fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", m)
    }
    fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", m)
    }
    fn keystone(status: StatusCode, title: &'static str, m: impl Into<String>) -> Self {
        ApiError {
            status,
            code: title,
            message: m.into(),
            keystone: true,
        }
    }

    fn body(&self) -> Value {
        if self.keystone {
            json!({"error": {"code": self.status.as_u16(), "message": self.message, "title": self.code}})
        } else {
            json!({"error": {"code": self.code, "message": self.message}})
        }
    }
}

/// A successful answer.
struct Reply {
    status: StatusCode,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
}

/// Which operation a method and path are, with the ids in the path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    IssueToken,
    ValidateToken,
    ListInstances,
    GetInstance(String),
    ListVolumes,
    GetVolume(String),
    CreateSnapshot(String),
    ListSnapshots,
    GetSnapshot(String),
    DeleteSnapshot(String),
    UpdateSnapshot(String),
    RestoreSnapshot(String),
}

impl Op {
    fn parse(method: &Method, path: &str) -> Option<Op> {
        let rest = path.strip_prefix("/kakaocloud/")?;
        let parts: Vec<String> = rest
            .trim_end_matches('/')
            .split('/')
            .map(|p| {
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let p: Vec<&str> = parts.iter().map(String::as_str).collect();
        let m = method.as_str();
        Some(match (m, p.as_slice()) {
            ("POST", ["iam", "identity", "v3", "auth", "tokens"]) => Op::IssueToken,
            ("GET", ["iam", "identity", "v3", "auth", "tokens"]) => Op::ValidateToken,
            ("GET", ["bcs", "api", "v1", "instances"]) => Op::ListInstances,
            ("GET", ["bcs", "api", "v1", "instances", id]) => Op::GetInstance(id.to_string()),
            ("GET", ["volume", "api", "v1", "volumes"]) => Op::ListVolumes,
            ("GET", ["volume", "api", "v1", "volumes", id]) => Op::GetVolume(id.to_string()),
            ("POST", ["volume", "api", "v1", "volumes", id, "snapshots"]) => {
                Op::CreateSnapshot(id.to_string())
            }
            ("GET", ["volume", "api", "v1", "snapshots"]) => Op::ListSnapshots,
            ("GET", ["volume", "api", "v1", "snapshots", id]) => Op::GetSnapshot(id.to_string()),
            ("DELETE", ["volume", "api", "v1", "snapshots", id]) => {
                Op::DeleteSnapshot(id.to_string())
            }
            ("PUT", ["volume", "api", "v1", "snapshots", id]) => Op::UpdateSnapshot(id.to_string()),
            ("POST", ["volume", "api", "v1", "snapshots", id, "restore"]) => {
                Op::RestoreSnapshot(id.to_string())
            }
            _ => return None,
        })
    }

    /// The name used by the journal and by faults.
    fn action(&self) -> &'static str {
        match self {
            Op::IssueToken => "IssueToken",
            Op::ValidateToken => "ValidateToken",
            Op::ListInstances => "ListInstances",
            Op::GetInstance(_) => "GetInstance",
            Op::ListVolumes => "ListVolumes",
            Op::GetVolume(_) => "GetVolume",
            Op::CreateSnapshot(_) => "CreateSnapshot",
            Op::ListSnapshots => "ListSnapshots",
            Op::GetSnapshot(_) => "GetSnapshot",
            Op::DeleteSnapshot(_) => "DeleteSnapshot",
            Op::UpdateSnapshot(_) => "UpdateSnapshot",
            Op::RestoreSnapshot(_) => "RestoreSnapshot",
        }
    }

    fn path_param(&self) -> Option<(&'static str, &str)> {
        match self {
            Op::GetInstance(id) => Some(("instance_id", id)),
            Op::GetVolume(id) | Op::CreateSnapshot(id) => Some(("volume_id", id)),
            Op::GetSnapshot(id)
            | Op::DeleteSnapshot(id)
            | Op::UpdateSnapshot(id)
            | Op::RestoreSnapshot(id) => Some(("snapshot_id", id)),
            _ => None,
        }
    }
}

use super::form::Params;

async fn handle(State(sim): State<Simulator>, req: Request) -> Response {
    pipeline::serve(&sim, req, Call::decode).await
}

/// One decoded call: the operation, its parameters for the journal (query,
/// path id, body fields) and the body as JSON.
struct Call {
    op: Option<Op>,
    action: &'static str,
    params: Params,
    body_json: Option<Value>,
}

impl Call {
    fn decode(req: &Incoming) -> Call {
        let op = Op::parse(&req.method, &req.path);
        let action = op.as_ref().map_or("Unknown", Op::action);
        let mut params: Params = form::decode_lossy(&req.query);
        if let Some((k, v)) = op.as_ref().and_then(Op::path_param) {
            params.insert(k.to_string(), v.to_string());
        }
        let body_json: Option<Value> = req
            .body
            .as_ref()
            .ok()
            .filter(|b| !b.is_empty())
            .and_then(|b| serde_json::from_slice(b).ok());
        if let Some(v) = &body_json {
            flatten("", v, &mut params);
        }
        Call {
            op,
            action,
            params,
            body_json,
        }
    }
}

impl Dialect for Call {
    const NAME: &'static str = DIALECT;
    type Reply = Reply;
    type Error = ApiError;

    fn action(&self) -> &str {
        self.action
    }

    fn throttled(&self) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests. Please try again later.",
        )
    }

    fn quota(&self, _state: &SimState) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "QuotaExceeded",
            "Snapshot quota exceeded for this project.",
        )
    }

    fn dispatch(
        &mut self,
        state: &mut SimState,
        req: &Incoming,
    ) -> (Result<Reply, ApiError>, Option<FaultKind>) {
        let Some(op) = &self.op else {
            let (method, path) = (&req.method, &req.path);
            let err = ApiError::not_found(format!("no such endpoint: {method} {path}"));
            return (Err(err), None);
        };
        let mut ctx = Ctx {
            state: &mut state.kakaocloud,
            duration: state.settings.job_duration,
            faults: &mut state.faults,
            fault_hit: None,
            now: req.now,
        };
        let raw_body = req.body.as_ref().ok();
        let r = actions::run(
            op,
            &mut ctx,
            &req.headers,
            &self.params,
            raw_body,
            &self.body_json,
        );
        (r, ctx.fault_hit)
    }

    fn respond(&self, result: &Result<Reply, ApiError>, fault: Option<FaultKind>) -> Response {
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                let body = e.body().to_string().into_bytes();
                let mut resp = pipeline::json_response(e.status, "application/json", body);
                if fault == Some(FaultKind::Throttle) {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                return resp;
            }
        };
        let bytes = reply.body.as_ref().map(|b| b.to_string().into_bytes());
        let mut resp = match (fault, bytes) {
            (Some(FaultKind::Malformed), Some(b)) => faults::malformed_response(&b),
            (_, Some(b)) => pipeline::json_response(reply.status, "application/json", b),
            (_, None) => reply.status.into_response(),
        };
        for (k, v) in &reply.headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                resp.headers_mut().insert(*k, v);
            }
        }
        resp
    }

    /// The status the API meant, even when `malformed` sent a cut 200.
    fn logged_status(&self, result: &Result<Reply, ApiError>, _sent: &Response) -> u16 {
        match result {
            Ok(reply) => reply.status.as_u16(),
            Err(e) => e.status.as_u16(),
        }
    }

    fn journal(self, _result: Option<&Result<Reply, ApiError>>) -> (Params, Option<i64>) {
        (self.params, None)
    }
}

struct Ctx<'a> {
    state: &'a mut KakaoState,
    duration: std::time::Duration,
    faults: &'a mut faults::FaultRegistry,
    fault_hit: Option<FaultKind>,
    now: DateTime<Utc>,
}

impl Ctx<'_> {
    /// How an async change started by `action` ends.
    fn outcome(&mut self, action: &str) -> Outcome {
        self.faults
            .job_outcome(DIALECT, action, &mut self.fault_hit)
    }
}

/// Body fields as `a.b.c = value` for the journal; secrets left out.
fn flatten(prefix: &str, v: &Value, out: &mut Params) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "secret" {
                    continue;
                }
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        Value::Null => {
            out.insert(prefix.to_string(), String::new());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn routes_parse() {
        let p = |m: Method, path: &str| Op::parse(&m, path);
        assert_eq!(
            p(Method::POST, "/kakaocloud/iam/identity/v3/auth/tokens"),
            Some(Op::IssueToken)
        );
        assert_eq!(
            p(
                Method::POST,
                "/kakaocloud/volume/api/v1/volumes/v-1/snapshots"
            ),
            Some(Op::CreateSnapshot("v-1".into()))
        );
        assert_eq!(
            p(Method::DELETE, "/kakaocloud/volume/api/v1/snapshots/s-1"),
            Some(Op::DeleteSnapshot("s-1".into()))
        );
        assert_eq!(
            p(Method::PUT, "/kakaocloud/volume/api/v1/snapshots/s-1"),
            Some(Op::UpdateSnapshot("s-1".into()))
        );
        assert_eq!(
            p(Method::PUT, "/kakaocloud/volume/api/v1/volumes/v-1"),
            None
        );
        assert_eq!(p(Method::GET, "/kakaocloud/bcs/api/v1/volumes"), None);
    }

    #[test]
    fn journal_never_holds_the_secret() {
        let mut out = Params::new();
        flatten(
            "",
            &json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "k", "secret": "s3"}}}}),
            &mut out,
        );
        assert_eq!(
            out.get("auth.identity.application_credential.id")
                .map(String::as_str),
            Some("k")
        );
        assert!(out.values().all(|v| !v.contains("s3")));
    }

    /// `PUT /snapshots/{id}`: 200 with `{"snapshot": {"id", "name"}}`, the
    /// description (cleared by null) and name stored, and the errors of a
    /// bad body (400), an unknown snapshot (404) and one still being
    /// created (409), each in the Volume API's error body.
    #[test]
    fn update_snapshot_answers_and_errors() {
        // Seeded volumes are ready from the moment they are seeded.
        let now = Utc::now() + chrono::TimeDelta::seconds(1);
        let mut state = KakaoState::default();
        let id = state.seed_snapshot("v1", "snap-a", Some("first"), now);
        fn put(state: &mut KakaoState, now: DateTime<Utc>, id: &str, body: Value) -> (u16, Value) {
            let mut faults = faults::FaultRegistry::default();
            let mut ctx = Ctx {
                state,
                duration: std::time::Duration::from_millis(100),
                faults: &mut faults,
                fault_hit: None,
                now,
            };
            match actions::update_snapshot(&mut ctx, id, &Some(body)) {
                Ok(r) => (r.status.as_u16(), r.body.unwrap_or(Value::Null)),
                Err(e) => (e.status.as_u16(), e.body()),
            }
        }
        let (status, body) = put(
            &mut state,
            now,
            &id,
            json!({"snapshot": {"description": "held"}}),
        );
        assert_eq!(status, 200);
        assert_eq!(body, json!({"snapshot": {"id": id, "name": "snap-a"}}));
        let (_, body) = put(
            &mut state,
            now,
            &id,
            json!({"snapshot": {"name": "snap-b"}}),
        );
        assert_eq!(body["snapshot"]["name"], "snap-b");
        let seen = state.live_snapshot(&id, now).expect("live").view(now);
        assert_eq!(seen["description"], "held", "left out = kept: {seen}");
        let (status, _) = put(
            &mut state,
            now,
            &id,
            json!({"snapshot": {"description": null}}),
        );
        assert_eq!(status, 200);
        let seen = state.live_snapshot(&id, now).expect("live").view(now);
        assert!(seen["description"].is_null(), "{seen}");

        for body in [
            json!({}),
            json!({"snapshot": "x"}),
            json!({"snapshot": {"description": 5}}),
            json!({"snapshot": {"description": "d".repeat(256)}}),
            json!({"snapshot": {"name": ""}}),
        ] {
            let (status, err) = put(&mut state, now, &id, body.clone());
            assert_eq!(status, 400, "{body}");
            assert_eq!(err["error"]["code"], "BadRequest", "{body}");
        }
        let (status, err) = put(
            &mut state,
            now,
            "nope",
            json!({"snapshot": {"description": "x"}}),
        );
        assert_eq!(status, 404);
        assert_eq!(
            err,
            json!({"error": {"code": "NotFound", "message": "Snapshot nope could not be found."}})
        );
        let busy = state
            .create_snapshot(
                "v1",
                "snap-c",
                None,
                false,
                std::time::Duration::from_secs(60),
                Outcome::Succeed,
                now,
            )
            .expect("created")
            .id
            .clone();
        let (status, err) = put(
            &mut state,
            now,
            &busy,
            json!({"snapshot": {"description": "x"}}),
        );
        assert_eq!(status, 409, "{err}");
        assert_eq!(err["error"]["code"], "Conflict");
    }

    #[test]
    fn incremental_rules_and_busy_volume() {
        let mut s = KakaoState::default();
        s.seed_volume("v1", "v1", None, None);
        let t0 = Utc::now();
        let d = std::time::Duration::from_millis(100);
        let err = s
            .create_snapshot("v1", "a", None, true, d, Outcome::Succeed, t0)
            .expect_err("first must be full");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let full = s
            .create_snapshot("v1", "a", None, false, d, Outcome::Succeed, t0)
            .expect("full")
            .id
            .clone();
        let busy = s
            .create_snapshot("v1", "b", None, false, d, Outcome::Succeed, t0)
            .expect_err("one in progress");
        assert_eq!(busy.status, StatusCode::CONFLICT);
        let t1 = t0 + chrono::TimeDelta::milliseconds(200);
        let inc = s
            .create_snapshot("v1", "b", None, true, d, Outcome::Succeed, t1)
            .expect("incremental")
            .clone();
        assert_eq!(inc.parent_id.as_deref(), Some(full.as_str()));
        let t2 = t1 + chrono::TimeDelta::milliseconds(200);
        let dep = s
            .delete_snapshot(&full, d, Outcome::Succeed, t2)
            .expect_err("has a dependant");
        assert_eq!(dep.status, StatusCode::CONFLICT);
        s.delete_snapshot(&inc.id, d, Outcome::Succeed, t2)
            .expect("leaf");
        let t3 = t2 + chrono::TimeDelta::milliseconds(200);
        s.delete_snapshot(&full, d, Outcome::Succeed, t3)
            .expect("now free");
        assert!(s
            .live_snapshot(&full, t3 + chrono::TimeDelta::seconds(1))
            .is_none());
    }

    /// Runs `method path` (query in `query`) with `headers` on `state`.
    fn call(
        state: &mut KakaoState,
        now: DateTime<Utc>,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&'static str, &str)],
    ) -> (u16, Value, Vec<(&'static str, String)>) {
        let op = Op::parse(&method, path).expect("a served route");
        let mut faults = faults::FaultRegistry::default();
        let mut ctx = Ctx {
            state,
            duration: std::time::Duration::from_millis(100),
            faults: &mut faults,
            fault_hit: None,
            now,
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().expect("header value"));
        }
        let params: Params = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match actions::run(&op, &mut ctx, &map, &params, None, &None) {
            Ok(r) => (r.status.as_u16(), r.body.unwrap_or(Value::Null), r.headers),
            Err(e) => (e.status.as_u16(), e.body(), Vec::new()),
        }
    }

    #[test]
    fn token_validation_follows_keystone() {
        let now = Utc::now();
        let mut state = KakaoState::default();
        state.add_credentials("cred", "secret");
        let (token, _) = state.issue_token("cred", "secret", now).expect("issued");
        let (other, _) = state.issue_token("cred", "secret", now).expect("issued");
        let path = "/kakaocloud/iam/identity/v3/auth/tokens";
        let get = |state: &mut KakaoState, auth: &str, subject: &str| {
            call(
                state,
                now,
                Method::GET,
                path,
                &[],
                &[("x-auth-token", auth), ("x-subject-token", subject)],
            )
        };
        let (status, body, headers) = get(&mut state, &token, &other);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token"]["application_credential"]["id"], "cred");
        assert!(body["token"]["expires_at"].is_string(), "{body}");
        assert_eq!(headers, vec![("x-subject-token", other.clone())]);
        let (status, body, _) = get(&mut state, &token, "gAAAAABnosuchtoken");
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["title"], "Not Found");
        let (status, body, _) = get(&mut state, "bad-token", &other);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["title"], "Unauthorized");
        // An expired subject token is not found any more.
        let later = now + chrono::TimeDelta::hours(13);
        let (status, _, _) = call(
            &mut state,
            later,
            Method::GET,
            path,
            &[],
            &[("x-auth-token", &token), ("x-subject-token", &other)],
        );
        assert_eq!(status, 401, "the caller's own token expired too");
    }

    #[test]
    fn vm_state_is_root_and_created_at_filter() {
        let now = Utc::now() + chrono::TimeDelta::seconds(1);
        let mut state = KakaoState::default();
        state.add_credentials("cred", "secret");
        let (token, _) = state.issue_token("cred", "secret", now).expect("issued");
        state.seed_instance(
            "i-1",
            "web",
            &[("v-root".into(), true), ("v-data".into(), false)],
        );
        let old = now - chrono::TimeDelta::days(2);
        let s_old = state.seed_snapshot("v-data", "old", None, old);
        let s_new = state.seed_snapshot("v-data", "new", None, now);
        let auth = [("x-auth-token", token.as_str())];
        let mut list = |path: &str, key: &str, q: &[(&str, &str)]| {
            let (status, body, _) = call(&mut state, now, Method::GET, path, q, &auth);
            let ids: Vec<String> = body[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x["id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (status, ids, body)
        };
        let instances = "/kakaocloud/bcs/api/v1/instances";
        assert_eq!(
            list(instances, "instances", &[("vm_state", "active")]).1,
            vec!["i-1"]
        );
        assert!(list(instances, "instances", &[("vm_state", "stopped")])
            .1
            .is_empty());

        let volumes = "/kakaocloud/volume/api/v1/volumes";
        assert_eq!(
            list(volumes, "volumes", &[("is_root", "true")]).1,
            vec!["v-root"]
        );
        assert_eq!(
            list(volumes, "volumes", &[("is_root", "false")]).1,
            vec!["v-data"]
        );
        assert_eq!(list(volumes, "volumes", &[("is_root", "maybe")]).0, 400);

        let snapshots = "/kakaocloud/volume/api/v1/snapshots";
        let stamp = |t: DateTime<Utc>| model::format_time(t);
        let at_old = stamp(old);
        assert_eq!(
            list(snapshots, "snapshots", &[("created_at", &at_old)]).1,
            vec![s_old.clone()]
        );
        let after_old = format!("gt:{at_old}");
        assert_eq!(
            list(snapshots, "snapshots", &[("created_at", &after_old)]).1,
            vec![s_new.clone()]
        );
        let until_now = format!("lte:{}", stamp(now));
        assert_eq!(
            list(snapshots, "snapshots", &[("created_at", &until_now)])
                .1
                .len(),
            2
        );
        let before = format!("lt:{at_old}");
        assert!(list(snapshots, "snapshots", &[("created_at", &before)])
            .1
            .is_empty());
        assert_eq!(
            list(snapshots, "snapshots", &[("created_at", "yesterday")]).0,
            400
        );
        let (_, ids, _) = list(
            instances,
            "instances",
            &[("created_at", &format!("gte:{at_old}"))],
        );
        assert_eq!(ids, vec!["i-1"]);
        let (_, ids, _) = list(volumes, "volumes", &[("created_at", &before)]);
        assert!(ids.is_empty());
    }
}
