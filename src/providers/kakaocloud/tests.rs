//! Tests of the KakaoCloud client: pure mapping rules (marker, states,
//! chains), and HTTP-level behaviour (token issue, reuse and re-issue on
//! 401, instance resolution, full-first rule, reuse of a lost attempt,
//! pagination, restore) against a tiny scripted server on loopback. The
//! server is a fixture, not the simulator.

use crate::providers::tests::{
    assert_not_selectable, assert_restores, kept_by_retain_1, op_ref, pairs, restore_request,
    selected, serve_loopback, ShiftingListing,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::wire::Pagination;
use super::*;
use crate::config::Secret;
use crate::providers::http::HttpSettings;
use crate::providers::{ChainInfo, Marker};

// ---------------------------------------------------------------- pure rules

fn slot() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 2, 30, 0)
        .single()
        .unwrap_or_default()
}

#[test]
fn marker_needs_exact_policy_target_and_slot() {
    let d = marker_text("db", "vol-1", slot());
    assert_eq!(d, "snapwarden policy=db target=vol-1 slot=20260701T023000Z");
    assert_eq!(marker_slot(Some(&d), "db", "vol-1"), Some(slot()));
    assert_eq!(marker_slot(Some(&d), "db", "vol-12"), None);
    assert_eq!(marker_slot(Some(&d), "d", "vol-1"), None);
    assert_eq!(marker_slot(Some(&format!("{d} x")), "db", "vol-1"), None);
    assert_eq!(marker_slot(Some("scheduled"), "db", "vol-1"), None);
    assert_eq!(marker_slot(None, "db", "vol-1"), None);
    assert_eq!(marker_slot(Some(&d), "", "vol-1"), None);
    let m = Marker {
        policy: "db".into(),
        target: "web".into(),
        slot: slot(),
    };
    assert_eq!(
        volume_snapshot_name(&m.default_name(), "v-9"),
        "db-web-20260701T023000Z-v-9"
    );
}

#[test]
fn snapshot_states_never_guess_available() {
    use SnapshotState::*;
    for (status, want) in [
        (Some("available"), Available),
        (Some("AVAILABLE"), Available),
        (Some("error"), Failed),
        (Some("deleting"), Deleting),
        (Some("creating"), Creating),
        (Some("restoring"), Creating),
        (Some("something-new"), Creating),
        (None, Creating),
    ] {
        assert_eq!(snapshot_state(status), want, "{status:?}");
    }
}

fn snap(id: &str, parent: Option<&str>, inc: Option<bool>) -> Snapshot {
    Snapshot {
        id: id.into(),
        name: None,
        description: None,
        status: Some("available".into()),
        volume_id: Some("v".into()),
        is_incremental: inc,
        parent_id: parent.map(str::to_string),
        is_dependent_snapshot: None,
        created_at: None,
        real_size: None,
    }
}

/// The reference's snapshot item: `real_size` (bytes taken) is the size,
/// not `size` (its volume's, in GB); without it the size is unknown.
#[test]
fn a_snapshot_is_as_large_as_its_real_size() {
    let item: Snapshot = serde_json::from_value(json!({
        "id": "s-1", "name": "db", "size": 50, "real_size": 2147483648u64,
        "status": "available", "volume_id": "v-1"
    }))
    .expect("a snapshot item");
    let by_id: HashMap<&str, &Snapshot> = HashMap::new();
    let r = mapping::remote_snapshot(&item, &by_id, "v-1", "db", "v-1");
    assert_eq!(r.size_bytes, Some(2_147_483_648));
    let r = mapping::remote_snapshot(&snap("s-2", None, None), &by_id, "v", "db", "v");
    assert_eq!(r.size_bytes, None);
}

#[test]
fn chains_walk_to_the_root() {
    let all = [
        snap("f", None, Some(false)),
        snap("i1", Some("f"), Some(true)),
        snap("i2", Some("i1"), Some(true)),
        snap("orphan", Some("gone"), Some(true)),
        snap("noparent", None, Some(true)),
        snap("legacy", None, None),
    ];
    let by_id: HashMap<&str, &Snapshot> = all.iter().map(|s| (s.id.as_str(), s)).collect();
    let c = |id: &str| chain_info(by_id[id], &by_id);
    assert_eq!(
        c("f"),
        Some(ChainInfo {
            full: true,
            root_id: "f".into(),
            parent_id: None
        })
    );
    assert_eq!(
        c("i2"),
        Some(ChainInfo {
            full: false,
            root_id: "f".into(),
            parent_id: Some("i1".into())
        })
    );
    assert_eq!(
        c("orphan"),
        Some(ChainInfo {
            full: false,
            root_id: "gone".into(),
            parent_id: Some("gone".into())
        })
    );
    assert_eq!(c("noparent"), None);
    assert_eq!(c("legacy").map(|c| c.full), Some(true));
}

#[test]
fn op_statuses() {
    let mut s = snap("s", None, Some(false));
    assert_eq!(
        op_status(OpKind::Create, "s", Some(&s)),
        OpStatus::Succeeded
    );
    assert_eq!(
        op_status(OpKind::Create, "s", None),
        OpStatus::Pending { progress: None }
    );
    assert_eq!(op_status(OpKind::Delete, "s", None), OpStatus::Succeeded);
    assert_eq!(
        op_status(OpKind::Delete, "s", Some(&s)),
        OpStatus::Pending { progress: None }
    );
    s.status = Some("error".into());
    assert!(matches!(
        op_status(OpKind::Create, "s", Some(&s)),
        OpStatus::Failed { .. }
    ));
    s.status = Some("creating".into());
    assert_eq!(
        op_status(OpKind::Create, "s", Some(&s)),
        OpStatus::Pending { progress: None }
    );
    s.status = Some("weird".into());
    assert_eq!(
        op_status(OpKind::Create, "s", Some(&s)),
        OpStatus::Pending { progress: None }
    );
}

// ------------------------------------------------------- the scripted server

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    token: Option<String>,
    body: Value,
}

type Script = dyn Fn(&Seen, usize) -> (u16, Vec<(&'static str, String)>, Value) + Send + Sync;

#[derive(Clone)]
struct Fixture {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Script>,
}

async fn serve_one(State(f): State<Fixture>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let seen = Seen {
        method,
        path,
        query,
        token,
        body,
    };
    let n = {
        let mut all = f.seen.lock().unwrap_or_else(|p| p.into_inner());
        all.push(seen.clone());
        all.len()
    };
    let (status, headers, body) = (f.script)(&seen, n);
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    for (k, v) in headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

async fn start(
    script: impl Fn(&Seen, usize) -> (u16, Vec<(&'static str, String)>, Value) + Send + Sync + 'static,
) -> (KakaoCloud, Arc<Mutex<Vec<Seen>>>) {
    let fixture = Fixture {
        seen: Arc::new(Mutex::new(Vec::new())),
        script: Arc::new(script),
    };
    let seen = fixture.seen.clone();
    let app = Router::new().fallback(serve_one).with_state(fixture);
    let base = serve_loopback(app).await;
    let settings = KakaoCloudSettings {
        endpoint: format!("{base}/volume"),
        bcs_endpoint: format!("{base}/bcs"),
        iam_endpoint: format!("{base}/iam/identity/v3/auth/tokens"),
        application_credential_id: "KEYID".into(),
        application_credential_secret: Secret::new("TOPSECRET"),
    };
    let api = ApiClient::new(&HttpSettings {
        requests_per_second: 1000.0,
        request_timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .expect("client");
    (KakaoCloud::new(&settings, api), seen)
}

fn token_reply(n: usize, lifetime: chrono::TimeDelta) -> (u16, Vec<(&'static str, String)>, Value) {
    let now = Utc::now();
    (
        201,
        vec![("x-subject-token", format!("tok-{n}"))],
        json!({"token": {"expires_at": (now + lifetime).to_rfc3339(), "issued_at": now.to_rfc3339()}}),
    )
}

/// [`start`] with a script that answers every token request with a token
/// good for 12 hours and leaves the other calls to `script`.
async fn start_authed(
    script: impl Fn(&Seen, usize) -> (u16, Vec<(&'static str, String)>, Value) + Send + Sync + 'static,
) -> (KakaoCloud, Arc<Mutex<Vec<Seen>>>) {
    start(move |s, n| {
        if is_token(s) {
            return token_reply(n, chrono::TimeDelta::hours(12));
        }
        script(s, n)
    })
    .await
}

fn is_token(s: &Seen) -> bool {
    s.method == "POST" && s.path == "/iam/identity/v3/auth/tokens"
}

fn seen_of(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

#[tokio::test]
async fn token_is_issued_once_reused_and_reissued_once_on_401() {
    let rejected = Arc::new(Mutex::new(0usize));
    let r2 = rejected.clone();
    let (p, seen) = start_authed(move |s, _| {
        // The first token dies early: one 401, then the new one works.
        if s.token.as_deref() == Some("tok-1") && s.path.starts_with("/volume/api/v1/snapshots/b") {
            *r2.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            return (
                401,
                vec![],
                json!({"error": {"code": "Unauthorized", "message": "token tok-1 expired"}}),
            );
        }
        (
            200,
            vec![],
            json!({"snapshot": {"id": "x", "status": "available"}}),
        )
    })
    .await;
    let op = |id: &str| OperationRef {
        kind: OpKind::Create,
        operation: id.into(),
        snapshot_id: id.into(),
    };
    let st = p.poll(&[op("a1"), op("a2")]).await.expect("poll");
    assert_eq!(st, vec![OpStatus::Succeeded, OpStatus::Succeeded]);
    let st = p.poll(&[op("b1")]).await.expect("poll after 401");
    assert_eq!(st, vec![OpStatus::Succeeded]);
    let all = seen_of(&seen);
    let tokens: Vec<&Seen> = all.iter().filter(|s| is_token(s)).collect();
    assert_eq!(tokens.len(), 2, "one issue, one re-issue: {all:#?}");
    assert_eq!(
        tokens[0].body["auth"]["identity"]["application_credential"]["id"],
        "KEYID"
    );
    assert_eq!(
        tokens[0].body["auth"]["identity"]["methods"][0],
        "application_credential"
    );
    assert_eq!(*rejected.lock().unwrap_or_else(|p| p.into_inner()), 1);
    let last = all.last().expect("calls");
    assert_eq!(
        last.token.as_deref(),
        Some("tok-5"),
        "retried with the new token"
    );
}

#[tokio::test]
async fn a_second_401_is_an_auth_error_without_the_token() {
    let (p, seen) = start_authed(|s, _| {
        let t = s.token.clone().unwrap_or_default();
        (
            401,
            vec![],
            json!({"error": {"code": "Unauthorized", "message": format!("bad {t} / TOPSECRET")}}),
        )
    })
    .await;
    let e = p.delete("s-1").await.expect_err("401 twice");
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(!e.message.contains("tok-"), "{e}");
    assert!(!e.message.contains("TOPSECRET"), "{e}");
    assert_eq!(
        seen_of(&seen).len(),
        4,
        "issue, call, re-issue, call once more"
    );
}

#[tokio::test]
async fn a_token_near_expiry_is_renewed_before_use() {
    let (p, seen) = start(|s, n| {
        if is_token(s) {
            // 1 s life: renewed after half of it.
            return token_reply(n, chrono::TimeDelta::seconds(1));
        }
        (
            404,
            vec![],
            json!({"error": {"code": "NotFound", "message": "gone"}}),
        )
    })
    .await;
    assert_eq!(
        p.delete("s").await.expect("gone"),
        DeleteStarted::AlreadyGone
    );
    assert_eq!(
        p.delete("s").await.expect("gone"),
        DeleteStarted::AlreadyGone
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        p.delete("s").await.expect("gone"),
        DeleteStarted::AlreadyGone
    );
    let tokens: Vec<Option<String>> = seen_of(&seen)
        .iter()
        .filter(|s| !is_token(s))
        .map(|s| s.token.clone())
        .collect();
    assert_eq!(
        tokens,
        vec![
            Some("tok-1".into()),
            Some("tok-1".into()),
            Some("tok-4".into())
        ]
    );
}

#[tokio::test]
async fn errors_are_classified() {
    let (p, _) = start_authed(|s, _| match s.path.as_str() {
        "/volume/api/v1/snapshots/busy" => (
            409,
            vec![],
            json!({"error": {"code": "Conflict", "message": "in progress"}}),
        ),
        "/volume/api/v1/snapshots/slow" => (429, vec![("retry-after", "4".into())], json!({})),
        "/volume/api/v1/snapshots/down" => (503, vec![], Value::Null),
        _ => (
            403,
            vec![],
            json!({"error": {"code": "Forbidden", "message": "no role"}}),
        ),
    })
    .await;
    let busy = p.delete("busy").await.expect_err("409");
    assert_eq!(busy.kind, ErrorKind::Busy);
    let slow = p.delete("slow").await.expect_err("429");
    assert_eq!(slow.kind, ErrorKind::Throttled);
    assert_eq!(slow.retry_after, Some(Duration::from_secs(4)));
    assert_eq!(
        p.delete("down").await.expect_err("503").kind,
        ErrorKind::Transient
    );
    assert_eq!(
        p.delete("other").await.expect_err("403").kind,
        ErrorKind::Auth
    );
}

fn instance_json(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "attached_volumes": [
        {"id": "v-data", "is_root": false, "size": 100},
        {"id": "v-root", "is_root": true, "size": 50},
    ]})
}

#[tokio::test]
async fn instance_create_resolves_by_name_and_takes_full_first() {
    let slot = slot();
    let ours = marker_text("web", "web-01", slot);
    let earlier = marker_text("web", "web-01", slot - chrono::TimeDelta::days(1));
    let lost = ours.clone();
    let (p, seen) = start_authed(move |s, _| {
        let q = &s.query;
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/bcs/api/v1/instances") if q.contains("id=web-01") => {
                (200, vec![], json!({"instances": [], "pagination": {"total": 0, "offset": 0, "limit": 100}}))
            }
            ("GET", "/bcs/api/v1/instances") => (200, vec![], json!({
                // `name` matches substrings: `web-01b` must not be taken.
                "instances": [instance_json("i-2", "web-01b"), instance_json("i-1", "web-01")],
                "pagination": {"total": 2, "offset": 0, "limit": 100}})),
            ("GET", "/volume/api/v1/snapshots") if q.contains("volume_id=v-root") => (200, vec![], json!({
                "snapshots": [{"id": "old", "volume_id": "v-root", "status": "available", "description": earlier, "is_incremental": false}],
                "pagination": {"total": 1, "offset": 0, "limit": 100}})),
            ("GET", "/volume/api/v1/snapshots") => (200, vec![], json!({
                // A lost attempt of this very slot on the data volume.
                "snapshots": [{"id": "lost", "volume_id": "v-data", "status": "creating", "description": lost}],
                "pagination": {"total": 1, "offset": 0, "limit": 100}})),
            ("POST", "/volume/api/v1/volumes/v-root/snapshots") => {
                (202, vec![], json!({"snapshot": {"id": "new-root", "name": "x"}}))
            }
            _ => (500, vec![], Value::Null),
        }
    })
    .await;
    let req = CreateRequest {
        resource: ResourceKind::Instance,
        target: "web-01".into(),
        name: "web-web-01-20260701T023000Z".into(),
        marker: Marker {
            policy: "web".into(),
            target: "web-01".into(),
            slot,
        },
        full: false,
        volume_ids: None,
    };
    let created = p.create(&req).await.expect("create");
    assert_eq!(
        created,
        vec![
            Created {
                snapshot_id: "new-root".into(),
                operation: "new-root".into()
            },
            Created {
                snapshot_id: "lost".into(),
                operation: "lost".into()
            },
        ]
    );
    let posts: Vec<Seen> = seen_of(&seen)
        .into_iter()
        .filter(|s| s.method == "POST" && !is_token(s))
        .collect();
    assert_eq!(posts.len(), 1, "the lost attempt is reused, not repeated");
    let body = &posts[0].body["snapshot"];
    assert_eq!(body["name"], "web-web-01-20260701T023000Z-v-root");
    assert_eq!(body["description"], ours.as_str());
    assert_eq!(body["is_incremental"], true, "an own full exists on v-root");
}

#[tokio::test]
async fn first_snapshot_of_a_volume_is_full_and_unknown_instance_is_not_found() {
    let (p, seen) = start_authed(|s, _| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/bcs/api/v1/instances") => (200, vec![], json!({"instances": [], "pagination": {"total": 0, "offset": 0, "limit": 100}})),
            ("GET", "/volume/api/v1/snapshots") => (200, vec![], json!({
                // A manual snapshot does not make ours incremental.
                "snapshots": [{"id": "m", "volume_id": "v1", "status": "available", "description": "by hand"}],
                "pagination": {"total": 1, "offset": 0, "limit": 100}})),
            ("POST", _) => (202, vec![], json!({"snapshot": {"id": "s1", "name": "x"}})),
            _ => (500, vec![], Value::Null),
        }
    })
    .await;
    let mut req = CreateRequest {
        resource: ResourceKind::Volume,
        target: "v1".into(),
        name: "db-v1-20260701T023000Z".into(),
        marker: Marker {
            policy: "db".into(),
            target: "v1".into(),
            slot: slot(),
        },
        full: false,
        volume_ids: None,
    };
    p.create(&req).await.expect("create");
    let post = seen_of(&seen)
        .into_iter()
        .find(|s| s.method == "POST" && !is_token(s))
        .expect("a create");
    assert_eq!(post.path, "/volume/api/v1/volumes/v1/snapshots");
    assert_eq!(post.body["snapshot"]["is_incremental"], false);
    assert_eq!(post.body["snapshot"]["name"], "db-v1-20260701T023000Z");

    req.resource = ResourceKind::Instance;
    req.target = "nope".into();
    let e = p.create(&req).await.expect_err("unknown instance");
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("instance \"nope\" not found"), "{e}");
    let e = p
        .list(ResourceKind::Instance, "nope", "db")
        .await
        .expect_err("unknown instance");
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn listing_follows_pages_and_reports_chains_per_volume() {
    let (p, seen) = start_authed(|s, _| {
        // Pages of two, whatever `limit` says.
        let all = [
            json!({"id": "f", "volume_id": "v1", "status": "available", "is_incremental": false,
                   "description": marker_text("db", "v1", slot()), "created_at": "2026-07-01T02:30:01Z"}),
            json!({"id": "i1", "volume_id": "v1", "status": "available", "is_incremental": true, "parent_id": "f",
                   "description": marker_text("db", "v1", slot() + chrono::TimeDelta::hours(1))}),
            json!({"id": "i2", "volume_id": "v1", "status": "creating", "is_incremental": true, "parent_id": "i1"}),
        ];
        let offset: usize = s
            .query
            .split('&')
            .find_map(|kv| kv.strip_prefix("offset="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let page: Vec<Value> = all.iter().skip(offset).take(2).cloned().collect();
        (200, vec![], json!({"snapshots": page, "pagination": {"total": 3, "offset": offset, "limit": 2}}))
    })
    .await;
    let listed = p
        .list(ResourceKind::Volume, "v1", "db")
        .await
        .expect("list");
    let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["f", "i1", "i2"]);
    assert_eq!(listed[0].marker_slot, Some(slot()));
    assert_eq!(listed[0].source, "v1");
    assert_eq!(listed[2].marker_slot, None);
    assert_eq!(listed[2].state, SnapshotState::Creating);
    assert_eq!(
        listed[2].chain.as_ref().map(|c| c.root_id.as_str()),
        Some("f")
    );
    let pages = seen_of(&seen).iter().filter(|s| !is_token(s)).count();
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn restore_makes_a_new_volume_in_the_source_zone() {
    let (p, seen) = start_authed(|s, _| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/volume/api/v1/snapshots/s1") => (200, vec![], json!({"snapshot": {"id": "s1", "name": "db-v1-x", "volume_id": "v1", "status": "available"}})),
            ("GET", "/volume/api/v1/volumes/v1") => (200, vec![], json!({"volume": {"id": "v1", "status": "in_use", "availability_zone": "kr-central-2-b"}})),
            ("POST", "/volume/api/v1/snapshots/s1/restore") => (202, vec![], json!({"restore": {"snapshot_id": "s1", "volume_id": "nv", "volume_name": "n"}})),
            ("GET", "/volume/api/v1/volumes/nv") => (200, vec![], json!({"volume": {"id": "nv", "status": "available"}})),
            _ => (500, vec![], Value::Null),
        }
    })
    .await;
    let req = restore_request(ResourceKind::Volume, "v1", "s1", Some("db-restored"));
    assert_restores(&p, &req, Some("nv"), "nv").await;
    let post = seen_of(&seen)
        .into_iter()
        .find(|s| s.method == "POST" && !is_token(s))
        .expect("restore call");
    assert_eq!(
        post.body,
        json!({"restore": {"name": "db-restored", "availability_zone": "kr-central-2-b"}})
    );
    let st = p
        .poll(&[op_ref(OpKind::Restore, "nv", "s1")])
        .await
        .expect("poll");
    assert_eq!(st, vec![OpStatus::Succeeded]);
}

// ------------------------------------------------------- target selection

/// The number a request's query gives `key`, else `default`.
fn query_number(s: &Seen, key: &str, default: usize) -> usize {
    s.query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn offset_of(s: &Seen) -> usize {
    query_number(s, "offset", 0)
}

#[tokio::test]
async fn list_resources_reads_instances_and_volumes_page_by_page() {
    let (p, seen) = start_authed(|s, _| {
        let (key, all) = if s.path == "/bcs/api/v1/instances" {
            (
                "instances",
                vec![
                    json!({"id": "i-1", "name": "web-1", "status": "active"}),
                    json!({"id": "i-2", "name": "web-2", "status": "deleting"}),
                    json!({"id": "i-3", "name": "db-1", "status": "stopped"}),
                ],
            )
        } else {
            (
                "volumes",
                vec![
                    json!({"id": "v-1", "name": "data-1", "status": "in-use"}),
                    json!({"id": "v-2", "name": "data-2", "status": "available"}),
                ],
            )
        };
        // Pages of two, whatever `limit` says.
        let offset = offset_of(s);
        let page: Vec<Value> = all.iter().skip(offset).take(2).cloned().collect();
        (
            200,
            vec![],
            json!({key: page, "pagination": {"total": all.len(), "offset": offset, "limit": 2}}),
        )
    })
    .await;
    assert_eq!(
        selected(&p, ResourceKind::Instance).await,
        pairs(&[("i-1", "web-1"), ("i-3", "db-1")]),
        "deleting left out"
    );
    let got = p
        .list_resources(ResourceKind::Volume)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["v-1", "v-2"]);
    let calls: Vec<Seen> = seen_of(&seen)
        .into_iter()
        .filter(|s| !is_token(s))
        .collect();
    let paths: Vec<(&str, usize)> = calls
        .iter()
        .map(|s| (s.path.as_str(), offset_of(s)))
        .collect();
    assert_eq!(
        paths,
        [
            ("/bcs/api/v1/instances", 0),
            // Each later page starts at the last item of the one before.
            ("/bcs/api/v1/instances", 1),
            ("/volume/api/v1/volumes", 0)
        ]
    );
}

#[tokio::test]
async fn list_resources_refuses_a_short_listing() {
    let (p, _) = start_authed(|s, _| {
        // Says 5, gives 2, then nothing.
        let page = if offset_of(s) == 0 {
            json!([{"id": "i-1", "name": "a"}, {"id": "i-2", "name": "b"}])
        } else {
            json!([])
        };
        (
            200,
            vec![],
            json!({"instances": page, "pagination": {"total": 5}}),
        )
    })
    .await;
    match p.list_resources(ResourceKind::Instance).await {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Transient);
            assert!(e.message.contains("incomplete"), "{e}");
        }
        Ok(v) => panic!("a short listing must fail, got {v:?}"),
    }
    assert_not_selectable(&p, ResourceKind::Disk).await;
}

// --------------------------------------- paging that cannot be read whole

fn snapshot_json(id: &str) -> Value {
    json!({"id": id, "volume_id": "v1", "status": "available", "is_incremental": false})
}

fn limit_of(s: &Seen) -> usize {
    query_number(s, "limit", 20)
}

#[tokio::test]
async fn a_server_that_ignores_offset_without_a_total_is_an_error_not_a_hang() {
    let (p, seen) = start_authed(|s, _| {
        // Always the same full page, no pagination at all.
        let page: Vec<Value> = (0..limit_of(s))
            .map(|i| snapshot_json(&format!("s-{i}")))
            .collect();
        (200, vec![], json!({"snapshots": page}))
    })
    .await;
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        p.list(ResourceKind::Volume, "v1", "db"),
    )
    .await
    .expect("the listing must end");
    match got {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Transient);
            assert!(e.message.contains("listing incomplete"), "{e}");
        }
        Ok(v) => panic!(
            "a listing that cannot be read whole must fail, got {}",
            v.len()
        ),
    }
    assert!(seen_of(&seen).len() <= 3, "stopped at once");
}

#[tokio::test]
async fn short_pages_without_a_total_are_followed_to_the_end() {
    // 50 snapshots, at most 20 a page whatever `limit` says, no total.
    let (p, _) = start_authed(|s, _| {
        let page: Vec<Value> = (0..50)
            .skip(offset_of(s))
            .take(limit_of(s).min(20))
            .map(|i| snapshot_json(&format!("s-{i:02}")))
            .collect();
        (200, vec![], json!({"snapshots": page}))
    })
    .await;
    let got = p
        .list(ResourceKind::Volume, "v1", "db")
        .await
        .expect("list");
    let ids: Vec<String> = got.into_iter().map(|s| s.id).collect();
    let want: Vec<String> = (0..50).map(|i| format!("s-{i:02}")).collect();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn a_listing_that_changed_between_pages_is_an_error_not_a_skip() {
    // Oldest first, 150 snapshots with a total. Between page 1 and page 2
    // one of page 1 is deleted and a new one created: total and count add
    // up, and the first of page 2 would be skipped.
    let ids = (0..150).map(|i| format!("s-{i:03}")).collect();
    let state = Arc::new(Mutex::new(ShiftingListing::new(ids, "s-010", "s-150")));
    let (p, seen) = start_authed(move |s, _| {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let ids = st.next_call();
        let page: Vec<Value> = ids
            .iter()
            .skip(offset_of(s))
            .take(limit_of(s))
            .map(|id| snapshot_json(id))
            .collect();
        (
            200,
            vec![],
            json!({"snapshots": page, "pagination": {"total": ids.len()}}),
        )
    })
    .await;
    match p.list(ResourceKind::Volume, "v1", "db").await {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Transient);
            assert!(e.message.contains("changed while it was read"), "{e}");
        }
        Ok(v) => panic!(
            "a listing that changed under the reader was returned ({} items, s-100 {})",
            v.len(),
            if v.iter().any(|s| s.id == "s-100") {
                "present"
            } else {
                "skipped"
            }
        ),
    }
    assert_eq!(seen_of(&seen).iter().filter(|s| !is_token(s)).count(), 2);
}

#[test]
fn the_pager_refuses_endless_or_repeating_listings() {
    let total = || {
        Some(Pagination {
            total: Some(u64::MAX),
            offset: None,
            limit: None,
        })
    };
    // A total never reached, one new id a page: ends after MAX_PAGES.
    let mut pager = Pager::new(LIST_SNAPSHOTS);
    let mut pages = 0;
    let err = loop {
        let ids = [format!("s{pages}"), format!("s{}", pages + 1)];
        pages += 1;
        match pager.absorb(ids.iter().map(String::as_str), total()) {
            Ok(true) => assert_eq!(pager.offset(), pages as u64),
            Ok(false) => panic!("not the end"),
            Err(e) => break e,
        }
    };
    assert_eq!(pages, MAX_PAGES + 1);
    assert!(err.message.contains("more than 10000 pages"), "{err}");
    // No total, and a page that brings back what was read.
    let mut pager = Pager::new(LIST_SNAPSHOTS);
    assert!(matches!(pager.absorb(["a", "b"], None), Ok(true)));
    assert_eq!(pager.offset(), 1);
    let e = pager.absorb(["b", "a"], None).err().map(|e| e.message);
    assert_eq!(
        e.as_deref(),
        Some("listing incomplete: the page at offset 1 repeats items already read (is offset ignored?)")
    );
    // No total: the end is a page with nothing beyond the boundary.
    let mut pager = Pager::new(LIST_SNAPSHOTS);
    assert!(matches!(pager.absorb(["a", "b"], None), Ok(true)));
    assert!(matches!(pager.absorb(["b", "c"], None), Ok(true)));
    assert!(matches!(pager.absorb(["c"], None), Ok(false)));
    assert_eq!(pager.finish(vec![1, 2, 3]).ok(), Some(vec![1, 2, 3]));
}

#[tokio::test]
async fn an_increment_without_a_parent_keeps_every_older_snapshot() {
    let (p, _) = start_authed(|_, _| {
        let snap = |id: &str, day: u32, chain: Value| {
            let mut v = json!({"id": id, "volume_id": "v1", "status": "available",
                               "created_at": format!("2026-07-0{day}T00:00:00Z")});
            if let (Some(v), Some(c)) = (v.as_object_mut(), chain.as_object()) {
                v.extend(c.clone());
            }
            v
        };
        let all = [
            snap("f", 1, json!({"is_incremental": false})),
            snap("i1", 2, json!({"is_incremental": true, "parent_id": "f"})),
            snap("i2", 3, json!({"is_incremental": true})),
        ];
        (
            200,
            vec![],
            json!({"snapshots": all, "pagination": {"total": 3}}),
        )
    })
    .await;
    let listed = p
        .list(ResourceKind::Volume, "v1", "db")
        .await
        .expect("list");
    assert_eq!(kept_by_retain_1(&listed), ["f", "i1", "i2"]);
}

// ------------------------------------------------------ against the simulator

/// mark_hold on the built-in simulator: the description keeps
/// snapwarden's marker first and the hold after it (so `list` still knows
/// the snapshot as ours), the name stays, clearing gives the marker back
/// exactly, and an unknown snapshot is 404, NotFound.
#[tokio::test]
async fn mark_hold_keeps_the_marker_in_the_description_on_the_simulator() {
    use crate::sim::{DEFAULT_KAKAOCLOUD_CREDENTIAL_ID, DEFAULT_KAKAOCLOUD_SECRET};
    let (sim, addr, _stop) = crate::sim::testing::serve_on_loopback(20).await;
    let slot = Utc
        .with_ymd_and_hms(2026, 7, 1, 15, 0, 0)
        .single()
        .expect("slot");
    let marker = mapping::marker_text("db", "vol-1", slot);
    let id = sim.lock().kakaocloud.seed_snapshot(
        "vol-1",
        "db-vol-1-20260701T1500Z",
        Some(&marker),
        Utc::now(),
    );
    let base = format!("http://{addr}/kakaocloud");
    let settings = KakaoCloudSettings {
        endpoint: format!("{base}/volume"),
        bcs_endpoint: format!("{base}/bcs"),
        iam_endpoint: format!("{base}/iam/identity/v3/auth/tokens"),
        application_credential_id: DEFAULT_KAKAOCLOUD_CREDENTIAL_ID.into(),
        application_credential_secret: Secret::new(DEFAULT_KAKAOCLOUD_SECRET),
    };
    let api = ApiClient::new(&HttpSettings {
        requests_per_second: 1000.0,
        request_timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .expect("client");
    let kc = KakaoCloud::new(&settings, api);
    assert_eq!(kc.capabilities().hold_mark, Some("description"));
    let described = || async {
        kc.get_snapshot(&id)
            .await
            .expect("GET")
            .expect("exists")
            .description
    };
    let view = || async {
        let v = crate::providers::tests::sim_view(addr, "/_sim/kakaocloud/snapshots").await;
        crate::providers::tests::item(&v["snapshots"], "id", &id).clone()
    };
    let ours = || async {
        let listed = kc
            .list(ResourceKind::Volume, "vol-1", "db")
            .await
            .expect("list");
        listed
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.marker_slot)
    };

    let note = "held until 2026-12-24T00:00:00Z by ann: legal";
    kc.mark_hold(&id, "db-vol-1-20260701T1500Z", Some(note))
        .await
        .expect("set");
    let want = format!("{marker} | hold: {note}");
    assert_eq!(described().await.as_deref(), Some(want.as_str()));
    let v = view().await;
    assert_eq!(v["description"], want.as_str(), "{v}");
    assert_eq!(
        v["name"], "db-vol-1-20260701T1500Z",
        "the name is kept: {v}"
    );
    assert_eq!(ours().await, Some(slot), "still ours while held");

    kc.mark_hold(&id, "db-vol-1-20260701T1500Z", None)
        .await
        .expect("clear");
    assert_eq!(described().await.as_deref(), Some(marker.as_str()));
    assert_eq!(ours().await, Some(slot));

    let e = kc
        .mark_hold("no-such-snapshot", "x", Some(note))
        .await
        .expect_err("unknown snapshot");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}
