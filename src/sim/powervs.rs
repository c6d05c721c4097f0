//! The PowerVS dialect, served under `/powervs` (so a client's `endpoint`
//! is `http://HOST:PORT/powervs`):
//!
//! - pcloud at `/powervs/pcloud/v1/cloud-instances/{cid}/…` (powervs.md §3):
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

mod control;
mod model;

use std::collections::BTreeMap;

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
use model::{format_time, Issuer, Outcome, Snap};

/// The dialect's name in the control API.
pub(crate) const DIALECT: &str = "powervs";

// Operation ids (powervs.md §3), used as journal actions and fault targets.
pub(crate) const OP_CREATE: &str = "pcloud.pvminstances.snapshots.post";
const OP_LIST_INSTANCE: &str = "pcloud.pvminstances.snapshots.getall";
const OP_LIST: &str = "pcloud.cloudinstances.snapshots.getall";
const OP_GET: &str = "pcloud.cloudinstances.snapshots.get";
const OP_PUT: &str = "pcloud.cloudinstances.snapshots.put";
const OP_DELETE: &str = "pcloud.cloudinstances.snapshots.delete";
const OP_LIST_INSTANCES: &str = "pcloud.pvminstances.getall";
const OP_RESTORE: &str = "pcloud.pvminstances.snapshots.restore.post";
const OP_IAM: &str = "iam.token";
const OP_IP4G: &str = "ip4g.token";
const OP_DEVICE_CODE: &str = "ip4g.device.code";
const OP_DEVICE_TOKEN: &str = "ip4g.device.token";

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/powervs/identity/token", post(iam_token))
        .route("/powervs/auth/v1/token", post(ip4g_token))
        .route("/powervs/auth/v1/device/code", post(device_code))
        .route("/powervs/auth/v1/device/token", post(device_token))
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/snapshots",
            get(list_snapshots),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/snapshots/{sid}",
            get(get_snapshot).put(put_snapshot).delete(delete_snapshot),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/pvm-instances",
            get(list_instances),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/pvm-instances/{pvm}/snapshots",
            post(create_snapshot).get(list_instance_snapshots),
        )
        .route(
            "/powervs/pcloud/v1/cloud-instances/{cid}/pvm-instances/{pvm}/snapshots/{sid}/restore",
            post(restore_snapshot),
        )
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

/// Whether the request must carry a bearer token and a CRN.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Guard {
    Pcloud,
    Open,
}

async fn serve(
    sim: Simulator,
    req: Request,
    op: &'static str,
    guard: Guard,
    ids: Ids,
    handler: fn(&mut Ctx<'_>) -> Answer,
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
    handler: fn(&mut Ctx<'_>) -> Answer,
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
        let body: &[u8] = req.body.as_deref().unwrap_or_default();
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
    let auth = ctx
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
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
    let Some(ws) = ctx.pvs.workspaces.get(&ctx.ids.cid) else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            format!("cloud instance {} does not exist", ctx.ids.cid),
            "cloud instance not found",
        ));
    };
    let crn = ctx
        .headers
        .get("crn")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
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

// ---- token services -------------------------------------------------------

async fn iam_token(State(sim): State<Simulator>, req: Request) -> Response {
    serve(sim, req, OP_IAM, Guard::Open, Ids::default(), |ctx| {
        let form: BTreeMap<String, String> = url_form(ctx.body);
        let grant = form.get("grant_type").cloned().unwrap_or_default();
        ctx.logged.insert("grant_type".into(), grant.clone());
        let iam_error = |status: StatusCode, code: &str, message: &str| ApiError {
            status,
            body: json!({
                "context": {"requestId": model::uuid_like(), "requestType": "incoming.Identity_Token"},
                "errorCode": code,
                "errorMessage": message,
            }),
        };
        if grant != "urn:ibm:params:oauth:grant-type:apikey" {
            return Err(iam_error(
                StatusCode::BAD_REQUEST,
                "BXNIM0109E",
                "Property 'grant_type' is missing or not supported",
            ));
        }
        let key = form.get("apikey").map(String::as_str).unwrap_or_default();
        if key.is_empty() {
            return Err(iam_error(StatusCode::BAD_REQUEST, "BXNIM0415E", "Provided API key could not be found"));
        }
        if !ctx.pvs.api_keys.contains(key) {
            return Err(iam_error(StatusCode::BAD_REQUEST, "BXNIM0415E", "Provided API key could not be found"));
        }
        let (token, expires) = ctx.pvs.issue_access(Issuer::Iam, ctx.now);
        Ok((
            StatusCode::OK,
            json!({
                "access_token": token,
                "refresh_token": "not_supported",
                "ims_user_id": 2222222,
                "token_type": "Bearer",
                "expires_in": (expires - ctx.now).num_seconds(),
                "expiration": expires.timestamp(),
                "scope": "ibm openid",
            }),
        ))
    })
    .await
}

fn url_form(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn ip4g_token_json(pvs: &mut PvsState, now: DateTime<Utc>, refresh: &str) -> Value {
    let (token, expires) = pvs.issue_access(Issuer::Ip4g, now);
    json!({
        "accessToken": token,
        "expires": format_time(expires),
        "refreshToken": refresh,
        "type": "Bearer",
    })
}

async fn ip4g_token(State(sim): State<Simulator>, req: Request) -> Response {
    serve(sim, req, OP_IP4G, Guard::Open, Ids::default(), |ctx| {
        let body = json_body(ctx)?;
        let source = body.get("source").and_then(Value::as_str).unwrap_or("cli");
        ctx.logged.insert("source".into(), source.to_string());
        if !matches!(source, "cli" | "web") {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                format!("invalid source {source:?}: expected cli or web"),
                "bad request",
            ));
        }
        let refresh = body
            .get("refreshToken")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match ctx.pvs.refresh_tokens.get(&refresh) {
            Some(true) => {}
            Some(false) => {
                return Err(api_error(
                    StatusCode::UNAUTHORIZED,
                    "refresh token has already been used or revoked",
                    "invalid_grant",
                ))
            }
            None => {
                return Err(api_error(
                    StatusCode::UNAUTHORIZED,
                    "refresh token is invalid",
                    "invalid_grant",
                ))
            }
        }
        let next = if ctx.pvs.rotate_refresh_tokens {
            ctx.pvs.refresh_tokens.insert(refresh, false);
            ctx.pvs.issue_refresh()
        } else {
            refresh
        };
        ctx.logged
            .insert("rotated".into(), ctx.pvs.rotate_refresh_tokens.to_string());
        Ok((StatusCode::OK, ip4g_token_json(ctx.pvs, ctx.now, &next)))
    })
    .await
}

async fn device_code(State(sim): State<Simulator>, req: Request) -> Response {
    serve(
        sim,
        req,
        OP_DEVICE_CODE,
        Guard::Open,
        Ids::default(),
        |ctx| {
            let device = super::random_id("dc-", 40);
            let user_code = format!(
                "{}-{}",
                super::random_id("", 4).to_ascii_uppercase(),
                super::random_id("", 4).to_ascii_uppercase()
            );
            let expires_in = 600;
            ctx.pvs.devices.insert(
                device.clone(),
                model::Device {
                    user_code: user_code.clone(),
                    expires: ctx.now + chrono::Duration::seconds(expires_in),
                    approved: false,
                },
            );
            ctx.logged.insert("userCode".into(), user_code.clone());
            Ok((
                StatusCode::OK,
                json!({
                    "deviceCode": device,
                    "expiresIn": expires_in,
                    "interval": ctx.pvs.device_interval_s,
                    "userCode": user_code,
                    "verificationURL": "http://127.0.0.1/powervs/device",
                }),
            ))
        },
    )
    .await
}

async fn device_token(State(sim): State<Simulator>, req: Request) -> Response {
    serve(
        sim,
        req,
        OP_DEVICE_TOKEN,
        Guard::Open,
        Ids::default(),
        |ctx| {
            let body = json_body(ctx)?;
            let code = body
                .get("deviceCode")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let Some(device) = ctx.pvs.devices.get(&code).cloned() else {
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    "unknown or already used device code",
                    "invalid_grant",
                ));
            };
            if ctx.now >= device.expires {
                ctx.pvs.devices.remove(&code);
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    "the device code has expired",
                    "expired_token",
                ));
            }
            if !device.approved {
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    "authorization pending: the user has not approved this device yet",
                    "authorization_pending",
                ));
            }
            ctx.pvs.devices.remove(&code);
            let refresh = ctx.pvs.issue_refresh();
            Ok((StatusCode::OK, ip4g_token_json(ctx.pvs, ctx.now, &refresh)))
        },
    )
    .await
}

// ---- pcloud ---------------------------------------------------------------

fn not_found(sid: &str) -> ApiError {
    api_error(
        StatusCode::NOT_FOUND,
        format!("snapshot does not exist. ID: {sid}"),
        "snapshot not found",
    )
}

fn find<'a>(ctx: &'a mut Ctx<'_>) -> Result<&'a mut Snap, ApiError> {
    let now = ctx.now;
    let (cid, sid) = (ctx.ids.cid.clone(), ctx.ids.sid.clone());
    ctx.pvs
        .snapshots
        .iter_mut()
        .find(|s| s.cloud_instance_id == cid && s.id == sid && !s.view(now).gone)
        .ok_or_else(|| not_found(&sid))
}

async fn list_snapshots(
    State(sim): State<Simulator>,
    Path(cid): Path<String>,
    req: Request,
) -> Response {
    let ids = Ids {
        cid,
        ..Ids::default()
    };
    serve(sim, req, OP_LIST, Guard::Pcloud, ids, |ctx| {
        let list: Vec<Value> = ctx
            .pvs
            .live(&ctx.ids.cid, ctx.now)
            .map(|s| s.to_json(ctx.now))
            .collect();
        Ok((StatusCode::OK, json!({ "snapshots": list })))
    })
    .await
}

/// `GET …/pvm-instances` → `{"pvmInstances": [PVMInstanceReference]}`
/// (powervs.md §7: no volume ids, no paging).
async fn list_instances(
    State(sim): State<Simulator>,
    Path(cid): Path<String>,
    req: Request,
) -> Response {
    let ids = Ids {
        cid,
        ..Ids::default()
    };
    serve(sim, req, OP_LIST_INSTANCES, Guard::Pcloud, ids, |ctx| {
        let cid = &ctx.ids.cid;
        let list: Vec<Value> = ctx
            .pvs
            .workspaces
            .get(cid)
            .map(|w| {
                w.instances
                    .iter()
                    .map(|(id, i)| {
                        json!({
                            "pvmInstanceID": id,
                            "serverName": i.name.as_deref().unwrap_or(id),
                            "status": "ACTIVE",
                            "health": { "status": "OK" },
                            "crn": format!("{}pvm-instance:{id}", w.crn.trim_end_matches(':')),
                            "storagePool": "Tier3-Flash-1",
                            "href": format!("/pcloud/v1/cloud-instances/{cid}/pvm-instances/{id}"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((StatusCode::OK, json!({ "pvmInstances": list })))
    })
    .await
}

async fn list_instance_snapshots(
    State(sim): State<Simulator>,
    Path((cid, pvm)): Path<(String, String)>,
    req: Request,
) -> Response {
    let ids = Ids {
        cid,
        pvm,
        ..Ids::default()
    };
    serve(sim, req, OP_LIST_INSTANCE, Guard::Pcloud, ids, |ctx| {
        let list: Vec<Value> = ctx
            .pvs
            .live(&ctx.ids.cid, ctx.now)
            .filter(|s| s.pvm_instance_id == ctx.ids.pvm)
            .map(|s| s.to_json(ctx.now))
            .collect();
        Ok((StatusCode::OK, json!({ "snapshots": list })))
    })
    .await
}

async fn get_snapshot(
    State(sim): State<Simulator>,
    Path((cid, sid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let ids = Ids {
        cid,
        sid,
        ..Ids::default()
    };
    serve(sim, req, OP_GET, Guard::Pcloud, ids, |ctx| {
        let now = ctx.now;
        let s = find(ctx)?;
        Ok((StatusCode::OK, s.to_json(now)))
    })
    .await
}

async fn put_snapshot(
    State(sim): State<Simulator>,
    Path((cid, sid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let ids = Ids {
        cid,
        sid,
        ..Ids::default()
    };
    serve(sim, req, OP_PUT, Guard::Pcloud, ids, |ctx| {
        let body = json_body(ctx)?;
        let name = body.get("name").and_then(Value::as_str).map(str::to_string);
        let description = body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(n) = &name {
            check_name(n)?;
            ctx.logged.insert("name".into(), n.clone());
        }
        if let Some(d) = &description {
            check_description(d)?;
            ctx.logged.insert("description".into(), d.clone());
        }
        let now = ctx.now;
        if let Some(n) = &name {
            let (cid, sid) = (ctx.ids.cid.clone(), ctx.ids.sid.clone());
            if ctx.pvs.live(&cid, now).any(|s| s.name == *n && s.id != sid) {
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    format!("a snapshot named {n} already exists"),
                    "bad request",
                ));
            }
        }
        let s = find(ctx)?;
        if let Some(n) = name {
            s.name = n;
        }
        if let Some(d) = description {
            s.description = d;
        }
        s.updated = now;
        Ok((StatusCode::OK, s.to_json(now)))
    })
    .await
}

async fn delete_snapshot(
    State(sim): State<Simulator>,
    Path((cid, sid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let ids = Ids {
        cid,
        sid,
        ..Ids::default()
    };
    serve(sim, req, OP_DELETE, Guard::Pcloud, ids, |ctx| {
        let now = ctx.now;
        let duration = chrono::Duration::from_std(ctx.job_duration).unwrap_or_default();
        let s = find(ctx)?;
        let v = s.view(now);
        if v.status == "creating" || v.status == "restoring" {
            return Err(api_error(
                StatusCode::CONFLICT,
                format!(
                    "snapshot {} is {} and cannot be deleted now",
                    s.id, v.status
                ),
                "conflict",
            ));
        }
        if s.delete.is_none() {
            s.delete = Some((now, now + duration));
        }
        Ok((StatusCode::ACCEPTED, json!({})))
    })
    .await
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 120
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("name in body should match '^[a-zA-Z0-9_.-]+$' and be at most 120 characters long: {name:?}"),
            "bad request",
        ))
    }
}

fn check_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > 255 {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "description in body should be at most 255 chars long",
            "bad request",
        ));
    }
    Ok(())
}

async fn create_snapshot(
    State(sim): State<Simulator>,
    Path((cid, pvm)): Path<(String, String)>,
    req: Request,
) -> Response {
    let ids = Ids {
        cid,
        pvm,
        ..Ids::default()
    };
    serve(sim, req, OP_CREATE, Guard::Pcloud, ids, |ctx| {
        let body = json_body(ctx)?;
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let description = body.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
        let volume_ids: Option<Vec<String>> = match body.get("volumeIDs") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
            Some(_) => return Err(api_error(StatusCode::BAD_REQUEST, "volumeIDs must be an array of strings", "bad request")),
        };
        ctx.logged.insert("name".into(), name.clone());
        ctx.logged.insert("description".into(), description.clone());
        if let Some(v) = &volume_ids {
            ctx.logged.insert("volumeIDs".into(), v.join(","));
        }
        check_name(&name)?;
        check_description(&description)?;
        let (cid, pvm, now) = (ctx.ids.cid.clone(), ctx.ids.pvm.clone(), ctx.now);
        let Some(instance) = ctx.pvs.workspaces.get(&cid).and_then(|w| w.instances.get(&pvm)).cloned() else {
            return Err(api_error(
                StatusCode::NOT_FOUND,
                format!("pvm-instance does not exist. ID: {pvm}"),
                "pvm-instance not found",
            ));
        };
        let volumes = match volume_ids {
            None => instance.volume_ids.clone(),
            Some(v) if v.is_empty() => instance.volume_ids.clone(),
            Some(v) => {
                if let Some(bad) = v.iter().find(|x| !instance.volume_ids.contains(x)) {
                    return Err(api_error(
                        StatusCode::BAD_REQUEST,
                        format!("volume {bad} is not attached to pvm-instance {pvm}"),
                        "bad request",
                    ));
                }
                v
            }
        };
        if let Some(busy) = ctx
            .pvs
            .live(&cid, now)
            .find(|s| s.pvm_instance_id == pvm && matches!(s.view(now).status, "creating" | "restoring"))
        {
            return Err(api_error(
                StatusCode::CONFLICT,
                format!("pvm-instance {pvm} already has a snapshot or restore in progress ({})", busy.id),
                "conflict",
            ));
        }
        if ctx.pvs.live(&cid, now).any(|s| s.name == name) {
            return Err(api_error(
                StatusCode::CONFLICT,
                format!("a snapshot with name {name} already exists in this cloud instance"),
                "conflict",
            ));
        }
        let outcome = match ctx.faults.for_job(DIALECT, OP_CREATE) {
            Some(FaultKind::FailJob) => Outcome::Fail,
            Some(FaultKind::NeverFinish) => Outcome::Never,
            _ => Outcome::Succeed,
        };
        let duration = chrono::Duration::from_std(ctx.job_duration).unwrap_or(chrono::Duration::MAX);
        let id = model::uuid_like();
        ctx.pvs.snapshots.push(Snap {
            id: id.clone(),
            cloud_instance_id: cid.clone(),
            pvm_instance_id: pvm,
            name,
            description,
            volume_ids: volumes,
            created: now,
            updated: now,
            finish_at: now.checked_add_signed(duration).unwrap_or(DateTime::<Utc>::MAX_UTC),
            outcome,
            manual: false,
            delete: None,
            restore: None,
        });
        ctx.logged.insert("snapshot_id".into(), id.clone());
        Ok((
            StatusCode::ACCEPTED,
            json!({
                "snapshotID": id,
                "crn": format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{cid}:snapshot:{id}"),
            }),
        ))
    })
    .await
}

async fn restore_snapshot(
    State(sim): State<Simulator>,
    Path((cid, pvm, sid)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let ids = Ids { cid, pvm, sid };
    serve(sim, req, OP_RESTORE, Guard::Pcloud, ids, |ctx| {
        let body = json_body(ctx)?;
        let force = body.get("force").and_then(Value::as_bool).unwrap_or(false);
        ctx.logged.insert("force".into(), force.to_string());
        let (now, pvm) = (ctx.now, ctx.ids.pvm.clone());
        let duration = chrono::Duration::from_std(ctx.job_duration).unwrap_or_default();
        let s = find(ctx)?;
        if s.pvm_instance_id != pvm {
            return Err(not_found(&s.id.clone()));
        }
        if s.view(now).status != "available" {
            return Err(api_error(
                StatusCode::CONFLICT,
                format!("snapshot {} is not available for a restore", s.id),
                "conflict",
            ));
        }
        s.restore = Some((now, now + duration));
        Ok((StatusCode::ACCEPTED, s.to_json(now)))
    })
    .await
}

#[cfg(test)]
mod tests {
    //! The dialect over real loopback HTTP: token checks with the real
    //! error shapes, CRN checks, snapshot states over time, 409s.
    use std::time::Duration;

    use serde_json::{json, Value};

    use crate::sim::{SimOptions, Simulator, DEFAULT_POWERVS_API_KEY};

    const CID: &str = "ws-unit";
    const PVM: &str = "pvm-unit";

    async fn start(job_ms: u64) -> (Simulator, String, tokio::sync::oneshot::Sender<()>) {
        let sim = Simulator::new(SimOptions {
            job_duration: Duration::from_millis(job_ms),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = sim.clone();
        tokio::spawn(async move {
            let _ = server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
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
