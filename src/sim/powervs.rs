//! The PowerVS dialect, served under `/powervs` (so a client's `endpoint`
//! is `http://HOST:PORT/powervs`):
//!
//! - pcloud at `/powervs/pcloud/v1/cloud-instances/{cid}/…`:
//!   every call needs `Authorization: Bearer <token>` with a live token and
//!   a `CRN` header naming the workspace; errors use the `Error` model
//!   `{code, description, error}`;
//! - IBM IAM at `/powervs/identity/token` (form POST, apikey grant);
//! - the IP4G token service at `/powervs/auth/v1/{token,device/code,device/token}`
//!   with rotating refresh tokens.
//!
//! Access tokens expire after the `token_lifetime_s` setting, so clients
//! must refresh. Every request, rejected or not, lands in the journal with
//! the API's operation id as its action; tokens and keys are never logged.

mod auth;
mod control;
mod model;
mod routes;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub(crate) use control::routes as control_routes;
pub(crate) use model::PvsState;

use super::faults::{self, FaultKind};
use super::pipeline::{self, Dialect, Incoming};
use super::{SimState, Simulator};

/// The dialect's name in the control API.
pub(crate) const DIALECT: &str = "powervs";

// Operation ids, used as journal actions and fault targets.
pub(crate) const OP_CREATE: &str = "pcloud.pvminstances.snapshots.post";
const OP_LIST_INSTANCE: &str = "pcloud.pvminstances.snapshots.getall";
const OP_LIST: &str = "pcloud.cloudinstances.snapshots.getall";
const OP_GET: &str = "pcloud.cloudinstances.snapshots.get";
const OP_PUT: &str = "pcloud.cloudinstances.snapshots.put";
const OP_DELETE: &str = "pcloud.cloudinstances.snapshots.delete";
const OP_LIST_INSTANCES: &str = "pcloud.pvminstances.getall";
const OP_RESTORE: &str = "pcloud.pvminstances.snapshots.restore.post";
const OP_GET_INSTANCE: &str = "pcloud.pvminstances.get";
pub(crate) const OP_VOLUME_SNAPSHOTS: &str = "v1.volume-snapshots.getall";
const OP_VOLUME_SNAPSHOT: &str = "v1.volume-snapshots.get";
const OP_IAM: &str = "iam.token";
const OP_IP4G: &str = "ip4g.token";
const OP_DEVICE_CODE: &str = "ip4g.device.code";
const OP_DEVICE_TOKEN: &str = "ip4g.device.token";

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route(
            "/powervs/identity/token",
            post(open(OP_IAM, auth::iam_token)),
        )
        .route(
            "/powervs/auth/v1/token",
            post(open(OP_IP4G, auth::ip4g_token)),
        )
        .route(
            "/powervs/auth/v1/device/code",
            post(open(OP_DEVICE_CODE, auth::device_code)),
        )
        .route(
            "/powervs/auth/v1/device/token",
            post(open(OP_DEVICE_TOKEN, auth::device_token)),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/snapshots",
            get(pcloud(OP_LIST, routes::list_snapshots)),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/snapshots/{sid}",
            get(pcloud(OP_GET, routes::get_snapshot))
                .put(pcloud(OP_PUT, routes::put_snapshot))
                .delete(pcloud(OP_DELETE, routes::delete_snapshot)),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/pvm-instances",
            get(pcloud(OP_LIST_INSTANCES, routes::list_instances)),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/pvm-instances/{pvm}",
            get(pcloud(OP_GET_INSTANCE, routes::get_instance)),
        )
        .route(
            "/powervs/v1/volume-snapshots",
            get(by_crn(OP_VOLUME_SNAPSHOTS, routes::list_volume_snapshots)),
        )
        .route(
            "/powervs/v1/volume-snapshots/{vsid}",
            get(by_crn(OP_VOLUME_SNAPSHOT, routes::get_volume_snapshot)),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/pvm-instances/{pvm}/snapshots",
            post(pcloud(OP_CREATE, routes::create_snapshot))
                .get(pcloud(OP_LIST_INSTANCE, routes::list_instance_snapshots)),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/pvm-instances/{pvm}/snapshots/{sid}/restore",
            post(pcloud(OP_RESTORE, routes::restore_snapshot)),
        )
}

/// What a route's handler does with a checked request.
type Handler = fn(&mut Ctx<'_>) -> Answer;

/// A handler's answer on the way out.
type Served = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A token service route: no bearer token, no path ids.
fn open(
    op: &'static str,
    handler: Handler,
) -> impl Fn(State<Simulator>, Request) -> Served + Clone + Send + Sync + 'static {
    move |State(sim), req| Box::pin(serve(sim, req, op, Guard::Open, Ids::default(), handler))
}

/// A pcloud route: bearer token and CRN checked, ids from the path.
fn pcloud(
    op: &'static str,
    handler: Handler,
) -> impl Fn(State<Simulator>, Path<HashMap<String, String>>, Request) -> Served
       + Clone
       + Send
       + Sync
       + 'static {
    move |State(sim), Path(mut path), req| {
        let mut id = |k: &str| path.remove(k).unwrap_or_default();
        let ids = Ids {
            cid: id("cid"),
            pvm: id("pvm"),
            sid: id("sid"),
        };
        Box::pin(serve(sim, req, op, Guard::Pcloud, ids, handler))
    }
}

/// A `/v1` route: no workspace in the path, the `CRN` header names it
/// (IBM's Go client sends `Authorization` and `CRN` on these calls too).
fn by_crn(
    op: &'static str,
    handler: Handler,
) -> impl Fn(State<Simulator>, Path<HashMap<String, String>>, Request) -> Served
       + Clone
       + Send
       + Sync
       + 'static {
    move |State(sim), Path(mut path), req| {
        let ids = Ids {
            sid: path.remove("vsid").unwrap_or_default(),
            ..Ids::default()
        };
        Box::pin(serve(sim, req, op, Guard::Crn, ids, handler))
    }
}

/// An API error answer: status and the `Error` model.
struct ApiError {
    status: StatusCode,
    body: Value,
}

fn api_error(status: StatusCode, description: impl Into<String>, error: &str) -> ApiError {
    ApiError {
        status,
        body: json!({
            "code": status.as_u16(),
            "description": description.into(),
            "error": error,
        }),
    }
}

type Answer = Result<(StatusCode, Value), ApiError>;

/// One request's context for a handler.
struct Ctx<'a> {
    pvs: &'a mut PvsState,
    faults: &'a mut faults::FaultRegistry,
    job_duration: std::time::Duration,
    now: DateTime<Utc>,
    headers: &'a HeaderMap,
    body: &'a [u8],
    ids: &'a Ids,
    /// What the journal shows of this request (never tokens or keys).
    logged: BTreeMap<String, String>,
}

#[derive(Default, Clone)]
struct Ids {
    cid: String,
    pvm: String,
    sid: String,
}

/// Whether the request must carry a bearer token and a CRN, and where
/// the workspace comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// Workspace in the path; the CRN header must be its CRN.
    Pcloud,
    /// No workspace in the path; the CRN header names one.
    Crn,
    Open,
}

async fn serve(
    sim: Simulator,
    req: Request,
    op: &'static str,
    guard: Guard,
    ids: Ids,
    handler: Handler,
) -> Response {
    pipeline::serve(&sim, req, |req| Call {
        logged: path_params(&ids, &req.headers),
        op,
        guard,
        ids,
        handler,
    })
    .await
}

/// What the journal shows of every call: the ids in the path and the CRN.
fn path_params(ids: &Ids, headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut logged = BTreeMap::new();
    for (k, v) in [
        ("cloud_instance_id", &ids.cid),
        ("pvm_instance_id", &ids.pvm),
        ("snapshot_id", &ids.sid),
    ] {
        if !v.is_empty() {
            logged.insert(k.to_string(), v.clone());
        }
    }
    if let Some(crn) = headers.get("crn").and_then(|v| v.to_str().ok()) {
        logged.insert("crn".to_string(), crn.to_string());
    }
    logged
}

/// One routed call: its operation, guard, path ids and handler.
struct Call {
    op: &'static str,
    guard: Guard,
    ids: Ids,
    handler: Handler,
    logged: BTreeMap<String, String>,
}

impl Dialect for Call {
    const NAME: &'static str = DIALECT;
    type Reply = (StatusCode, Value);
    type Error = ApiError;

    fn action(&self) -> &str {
        self.op
    }

    fn throttled(&self) -> ApiError {
        api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate Limited. Please try again later",
            "too many requests",
        )
    }

    fn quota(&self, _state: &SimState) -> ApiError {
        api_error(
            StatusCode::BAD_REQUEST,
            "snapshot quota exceeded for this cloud instance",
            "bad request",
        )
    }

    /// Job faults shape the snapshot but are not named in the journal.
    fn dispatch(&mut self, state: &mut SimState, req: &Incoming) -> (Answer, Option<FaultKind>) {
        let body = req.body_bytes();
        if self.guard == Guard::Crn {
            // The workspace whose CRN the header gives, if any.
            let crn = pipeline::header_str(&req.headers, "crn");
            if let Some((cid, _)) = state
                .powervs
                .workspaces
                .iter()
                .find(|(_, w)| !crn.is_empty() && w.crn == crn)
            {
                self.ids.cid = cid.clone();
            }
        }
        let mut ctx = Ctx {
            pvs: &mut state.powervs,
            faults: &mut state.faults,
            job_duration: state.settings.job_duration,
            now: req.now,
            headers: &req.headers,
            body,
            ids: &self.ids,
            logged: std::mem::take(&mut self.logged),
        };
        let answer = check(&mut ctx, self.guard).and_then(|()| (self.handler)(&mut ctx));
        self.logged = ctx.logged;
        (answer, None)
    }

    fn respond(&self, result: &Answer, fault: Option<FaultKind>) -> Response {
        let (status, value) = match result {
            Ok((status, value)) => (*status, value),
            Err(e) => (e.status, &e.body),
        };
        let bytes = value.to_string().into_bytes();
        if fault == Some(FaultKind::Malformed) && status.is_success() {
            return faults::malformed_response(&bytes);
        }
        let mut r = pipeline::json_response(status, "application/json", bytes);
        r.headers_mut().insert(
            header::HeaderName::from_static("x-correlation-id"),
            header::HeaderValue::from_static("sim-correlation"),
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }

    fn journal(self, _result: Option<&Answer>) -> (BTreeMap<String, String>, Option<i64>) {
        (self.logged, None)
    }
}

/// Bearer token, workspace and CRN, in that order (pcloud only).
fn check(ctx: &mut Ctx<'_>, guard: Guard) -> Result<(), ApiError> {
    if guard == Guard::Open {
        return Ok(());
    }
    let auth = pipeline::header_str(ctx.headers, header::AUTHORIZATION.as_str());
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "missing or malformed Authorization header: expected \"Bearer <token>\"",
            "unauthorized",
        ));
    };
    match ctx.pvs.access_tokens.get(token) {
        None => {
            return Err(api_error(
                StatusCode::UNAUTHORIZED,
                "the access token is invalid or has been revoked",
                "unauthorized",
            ))
        }
        Some((_, expires)) if ctx.now >= *expires => {
            return Err(api_error(
                StatusCode::UNAUTHORIZED,
                "the access token has expired",
                "unauthorized",
            ))
        }
        Some(_) => {}
    }
    if guard == Guard::Crn {
        if pipeline::header_str(ctx.headers, "crn").is_empty() {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "the CRN header is required",
                "bad request",
            ));
        }
        if ctx.ids.cid.is_empty() {
            return Err(api_error(
                StatusCode::FORBIDDEN,
                "the CRN header names no cloud instance of this account",
                "forbidden",
            ));
        }
        return Ok(());
    }
    let Some(ws) = ctx.pvs.workspaces.get(&ctx.ids.cid) else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            format!("cloud instance {} does not exist", ctx.ids.cid),
            "cloud instance not found",
        ));
    };
    let crn = pipeline::header_str(ctx.headers, "crn");
    if crn.is_empty() {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "the CRN header is required",
            "bad request",
        ));
    }
    if crn != ws.crn {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            format!(
                "the CRN header does not match cloud instance {}",
                ctx.ids.cid
            ),
            "forbidden",
        ));
    }
    Ok(())
}

/// A string member of a JSON body; empty when absent or not a string.
fn text_member(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn json_body(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    if ctx.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(ctx.body).map_err(|e| {
        api_error(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {e}"),
            "bad request",
        )
    })
}

#[cfg(test)]
mod tests {
    //! The dialect over real loopback HTTP: token checks with the real
    //! error shapes, CRN checks, snapshot states over time, 409s.
    use std::time::Duration;

    use serde_json::{json, Value};

    use crate::sim::testing::serve_on_loopback;
    use crate::sim::{Simulator, DEFAULT_POWERVS_API_KEY};

    const CID: &str = "ws-unit";
    const PVM: &str = "pvm-unit";

    async fn start(job_ms: u64) -> (Simulator, String, tokio::sync::oneshot::Sender<()>) {
        let (sim, addr, stop) = serve_on_loopback(job_ms).await;
        sim.seed_powervs_instance(CID, PVM, vec!["vol-a".into(), "vol-b".into()]);
        (sim, format!("http://{addr}/powervs"), stop)
    }

    async fn token(c: &reqwest::Client, base: &str, key: &str) -> (u16, Value) {
        let r = c
            .post(format!("{base}/identity/token"))
            .form(&[
                ("grant_type", "urn:ibm:params:oauth:grant-type:apikey"),
                ("apikey", key),
            ])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn call(
        c: &reqwest::Client,
        method: reqwest::Method,
        url: String,
        token: &str,
        crn: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = c.request(method, url).bearer_auth(token).header("CRN", crn);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn tokens_crn_states_and_conflicts() {
        let (sim, base, _stop) = start(300).await;
        let c = reqwest::Client::new();
        let crn = super::model::default_crn(CID);

        let (status, body) = token(&c, &base, "wrong").await;
        assert_eq!(status, 400);
        assert_eq!(body["errorCode"], "BXNIM0415E");

        let (status, body) = token(&c, &base, DEFAULT_POWERVS_API_KEY).await;
        assert_eq!(status, 200);
        assert_eq!(body["expires_in"], 3600);
        let tok = body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let snaps = format!("{base}/pcloud/v1/cloud-instances/{CID}/snapshots");
        let create =
            format!("{base}/pcloud/v1/cloud-instances/{CID}/pvm-instances/{PVM}/snapshots");

        let (status, body) =
            call(&c, reqwest::Method::GET, snaps.clone(), "bogus", &crn, None).await;
        assert_eq!((status, body["code"].as_u64()), (401, Some(401)));
        let (status, _) = call(
            &c,
            reqwest::Method::GET,
            snaps.clone(),
            &tok,
            "crn:v1:other",
            None,
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = call(&c, reqwest::Method::GET, snaps.clone(), &tok, "", None).await;
        assert_eq!(status, 400);

        let body = json!({"name": "s-1", "description": "d", "volumeIDs": ["vol-a"]});
        let (status, created) = call(
            &c,
            reqwest::Method::POST,
            create.clone(),
            &tok,
            &crn,
            Some(body),
        )
        .await;
        assert_eq!(status, 202);
        let id = created["snapshotID"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let one = format!("{snaps}/{id}");
        let (_, s) = call(&c, reqwest::Method::GET, one.clone(), &tok, &crn, None).await;
        assert_eq!(s["status"], "creating");
        assert!(s["percentComplete"].as_u64().unwrap_or(100) < 100);
        assert_eq!(s["volumeSnapshots"].as_object().map(|m| m.len()), Some(1));
        // Another snapshot of the instance while one is in progress: 409.
        let (status, e) = call(
            &c,
            reqwest::Method::POST,
            create.clone(),
            &tok,
            &crn,
            Some(json!({"name": "s-2"})),
        )
        .await;
        assert_eq!(status, 409);
        assert!(e["description"]
            .as_str()
            .unwrap_or("")
            .contains("in progress"));

        tokio::time::sleep(Duration::from_millis(350)).await;
        let (_, s) = call(&c, reqwest::Method::GET, one.clone(), &tok, &crn, None).await;
        assert_eq!(
            (s["status"].as_str(), s["percentComplete"].as_u64()),
            (Some("available"), Some(100))
        );
        // A duplicate name is a 409 too.
        let (status, _) = call(
            &c,
            reqwest::Method::POST,
            create,
            &tok,
            &crn,
            Some(json!({"name": "s-1"})),
        )
        .await;
        assert_eq!(status, 409);
        let (status, _) = call(&c, reqwest::Method::DELETE, one.clone(), &tok, &crn, None).await;
        assert_eq!(status, 202);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let (status, e) = call(&c, reqwest::Method::GET, one, &tok, &crn, None).await;
        assert_eq!(status, 404);
        assert_eq!(e["error"], "snapshot not found");

        // Expired tokens are refused.
        sim.lock().powervs.token_lifetime = Duration::from_secs(0);
        let (_, body) = token(&c, &base, DEFAULT_POWERVS_API_KEY).await;
        let dead = body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (status, e) = call(&c, reqwest::Method::GET, snaps, &dead, &crn, None).await;
        assert_eq!(status, 401);
        assert!(e["description"].as_str().unwrap_or("").contains("expired"));
        // The journal never holds a token or a key.
        let journal = format!("{:?}", sim.lock().journal.filtered(Some("powervs"), None));
        assert!(!journal.contains(&tok) && !journal.contains(DEFAULT_POWERVS_API_KEY));
    }

    /// `GET …/pvm-instances/{id}` answers the instance with its volumes;
    /// CRNs follow IBM's `…:{workspace}:{type}:{id}` layout; the `/v1`
    /// volume-snapshot view, found by the CRN header, gives each volume
    /// snapshot of the `volumeSnapshots` map with its volume's size in GiB.
    #[tokio::test]
    async fn instances_crns_and_volume_snapshots() {
        let (sim, base, _stop) = start(20).await;
        let c = reqwest::Client::new();
        let crn = super::model::default_crn(CID);
        let (_, body) = token(&c, &base, DEFAULT_POWERVS_API_KEY).await;
        let tok = body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ws = format!("{base}/pcloud/v1/cloud-instances/{CID}");

        let (status, i) = call(
            &c,
            reqwest::Method::GET,
            format!("{ws}/pvm-instances/{PVM}"),
            &tok,
            &crn,
            None,
        )
        .await;
        assert_eq!(status, 200, "{i}");
        assert_eq!(i["pvmInstanceID"], PVM);
        assert_eq!(i["volumeIDs"], json!(["vol-a", "vol-b"]));
        for field in [
            "serverName",
            "status",
            "imageID",
            "osType",
            "procType",
            "storageType",
        ] {
            assert!(i[field].is_string(), "{field}: {i}");
        }
        for field in ["diskSize", "memory", "processors"] {
            assert!(i[field].is_number(), "{field}: {i}");
        }
        let want =
            format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{CID}:pvm-instance:{PVM}");
        assert_eq!(i["crn"], want.as_str());
        let (_, l) = call(
            &c,
            reqwest::Method::GET,
            format!("{ws}/pvm-instances"),
            &tok,
            &crn,
            None,
        )
        .await;
        assert_eq!(l["pvmInstances"][0]["crn"], want.as_str());
        let (status, e) = call(
            &c,
            reqwest::Method::GET,
            format!("{ws}/pvm-instances/nope"),
            &tok,
            &crn,
            None,
        )
        .await;
        assert_eq!(
            (status, e["error"].as_str()),
            (404, Some("pvm-instance not found"))
        );

        let sid = sim.seed_powervs_snapshot(CID, PVM, "s-1", "d", None);
        let (_, s) = call(
            &c,
            reqwest::Method::GET,
            format!("{ws}/snapshots/{sid}"),
            &tok,
            &crn,
            None,
        )
        .await;
        assert_eq!(
            s["crn"],
            format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{CID}:snapshot:{sid}")
                .as_str()
        );
        let map = s["volumeSnapshots"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(map.len(), 2);

        let view = format!("{base}/v1/volume-snapshots");
        let (status, v) = call(&c, reqwest::Method::GET, view.clone(), &tok, &crn, None).await;
        assert_eq!(status, 200, "{v}");
        let list = v["volumeSnapshots"].as_array().cloned().unwrap_or_default();
        assert_eq!(list.len(), 2);
        for (vol, vsid) in &map {
            let one = list
                .iter()
                .find(|x| &x["id"] == vsid)
                .unwrap_or_else(|| panic!("{vsid} in {v}"));
            assert_eq!(&one["volumeID"], vol);
            let gib = super::model::volume_size_gib(vol);
            assert!((10..=200).contains(&gib));
            assert_eq!(one["size"].as_f64(), Some(gib as f64));
            assert_eq!(one["status"], "available");
            let (status, got) = call(
                &c,
                reqwest::Method::GET,
                format!("{view}/{}", vsid.as_str().unwrap_or_default()),
                &tok,
                &crn,
                None,
            )
            .await;
            assert_eq!((status, &got), (200, one));
        }
        let (status, _) = call(
            &c,
            reqwest::Method::GET,
            format!("{view}/nope"),
            &tok,
            &crn,
            None,
        )
        .await;
        assert_eq!(status, 404);
        // The CRN header chooses the workspace: none, or one unknown, is refused.
        let (status, _) = call(&c, reqwest::Method::GET, view.clone(), &tok, "", None).await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &c,
            reqwest::Method::GET,
            view.clone(),
            &tok,
            &super::model::default_crn("other"),
            None,
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = call(&c, reqwest::Method::GET, view, "bogus", &crn, None).await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn failed_snapshots_say_why_and_refresh_tokens_rotate() {
        let (sim, base, _stop) = start(100).await;
        let c = reqwest::Client::new();
        let crn = super::model::default_crn(CID);
        sim.lock()
            .faults
            .add(crate::sim::faults::FaultSpec {
                dialect: "powervs".into(),
                action: Some(super::OP_CREATE.into()),
                fault: crate::sim::faults::FaultKind::FailJob,
                count: Some(1),
                probability: None,
                latency_ms: None,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let r: Value = c
            .post(format!("{base}/auth/v1/token"))
            .json(&json!({"refreshToken": crate::sim::DEFAULT_POWERVS_REFRESH_TOKEN, "source": "cli"}))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or(Value::Null);
        let next = r["refreshToken"].as_str().unwrap_or_default();
        assert!(!next.is_empty() && next != crate::sim::DEFAULT_POWERVS_REFRESH_TOKEN);
        let tok = r["accessToken"].as_str().unwrap_or_default().to_string();
        // The old refresh token is retired.
        let again = c
            .post(format!("{base}/auth/v1/token"))
            .json(&json!({"refreshToken": crate::sim::DEFAULT_POWERVS_REFRESH_TOKEN}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.status().as_u16(), 401);

        let create =
            format!("{base}/pcloud/v1/cloud-instances/{CID}/pvm-instances/{PVM}/snapshots");
        let (_, created) = call(
            &c,
            reqwest::Method::POST,
            create,
            &tok,
            &crn,
            Some(json!({"name": "f"})),
        )
        .await;
        let id = created["snapshotID"].as_str().unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let one = format!("{base}/pcloud/v1/cloud-instances/{CID}/snapshots/{id}");
        let (_, s) = call(&c, reqwest::Method::GET, one, &tok, &crn, None).await;
        assert_eq!(s["status"], "error");
        assert!(s["statusDetail"].as_str().unwrap_or("").contains("failed"));
    }
}
