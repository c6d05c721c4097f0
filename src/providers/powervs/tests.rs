//! Tests of the PowerVS client: pure rules (marker, names, statuses) and
//! HTTP behaviour (token exchange and headers, one re-issue after a 401,
//! 409 reconciled by name with a PUT stamp, batched polls, restore, IP4G
//! rotation kept in a store) against a tiny scripted server on loopback.
//! The server is a fixture, not the simulator.

use crate::providers::tests::{
    assert_not_selectable, pairs, restore_request, selected, serve_loopback,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::config::{PowerVsAuth, PowerVsSettings, Secret};
use crate::providers::http::HttpSettings;
use crate::providers::StoredSecret;

fn marker(target: &str) -> Marker {
    Marker {
        policy: "lpar".into(),
        target: target.into(),
        slot: Utc
            .with_ymd_and_hms(2024, 1, 1, 2, 30, 0)
            .single()
            .unwrap_or_default(),
    }
}

// ---------------------------------------------------------------- pure rules

#[test]
fn the_description_marker_names_policy_target_and_slot_exactly() {
    let m = marker("pvm-1");
    let d = marker_text(&m);
    assert_eq!(
        d,
        "snapwarden policy=lpar target=pvm-1 slot=20240101T023000Z"
    );
    assert_eq!(marker_slot(&d, "lpar", "pvm-1"), Some(m.slot));
    assert_eq!(marker_slot(&d, "lpar", "pvm-12"), None);
    assert_eq!(marker_slot(&d, "lpa", "pvm-1"), None);
    assert_eq!(marker_slot(&format!("{d} extra"), "lpar", "pvm-1"), None);
    assert_eq!(marker_slot("taken by hand", "lpar", "pvm-1"), None);
}

#[test]
fn names_fit_the_api_and_parse_back() {
    let m = marker("9317b826-3660-4cf9-aa93-6d42a4643ba9");
    let n = fit_name(&m);
    assert_eq!(
        n,
        "lpar-9317b826-3660-4cf9-aa93-6d42a4643ba9-20240101T023000Z"
    );
    assert_eq!(name_slot(&n, "lpar", &m.target), Some(m.slot));
    let long = marker(&"x".repeat(200));
    let n = fit_name(&long);
    assert!(valid_name(&n) && n.len() <= 120, "{n}");
    assert_eq!(name_slot(&n, "lpar", &long.target), Some(long.slot));
    // Two long targets that share their first characters differ.
    let other = marker(&format!("{}y", "x".repeat(199)));
    assert_ne!(fit_name(&other), n);
    let odd = marker("pvm:1/a");
    assert!(valid_name(&fit_name(&odd)));
    assert_eq!(
        name_slot("lpar-pvm-1-20240101T023000Z", "lpar", "pvm-12"),
        None
    );
}

fn snap(status: &str, pct: i64) -> Snapshot {
    serde_json::from_value(json!({
        "snapshotID": "s1", "name": "n", "pvmInstanceID": "pvm-1",
        "status": status, "percentComplete": pct, "statusDetail": "disk broke",
        "volumeSnapshots": {}
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn statuses_map_without_ever_guessing_success() {
    assert_eq!(phase(&snap("available", 100)), Phase::Available);
    assert_eq!(phase(&snap("AVAILABLE", 100)), Phase::Available);
    assert_eq!(phase(&snap("available", 99)), Phase::InProgress(Some(99)));
    assert_eq!(phase(&snap("creating", 40)), Phase::InProgress(Some(40)));
    assert_eq!(
        phase(&snap("something-new", 100)),
        Phase::InProgress(Some(100))
    );
    for s in ["error", "ERROR", "failed", "snapshot_failure"] {
        match phase(&snap(s, 10)) {
            Phase::Failed(r) => assert!(r.contains("disk broke"), "{r}"),
            other => panic!("{s}: {other:?}"),
        }
    }
    let op = |kind| OperationRef {
        kind,
        operation: "s1".into(),
        snapshot_id: "s1".into(),
    };
    assert_eq!(op_status(&op(OpKind::Delete), None), OpStatus::Succeeded);
    assert!(matches!(
        op_status(&op(OpKind::Create), None),
        OpStatus::Failed { .. }
    ));
    assert_eq!(
        op_status(&op(OpKind::Delete), Some(&snap("deleting", 100))),
        OpStatus::Pending { progress: None }
    );
    let r = remote_snapshot(&snap("deleting", 100), "lpar", "pvm-1");
    assert_eq!(r.state, SnapshotState::Deleting);
    assert_eq!(r.marker_slot, None);
}

// ---------------------------------------------------------- scripted server

type Script = Box<dyn FnMut(&Seen) -> (u16, Value) + Send>;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    auth: String,
    crn: String,
    body: String,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
}

async fn answer(State(f): State<Fake>, req: Request) -> axum::response::Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let (auth, crn) = {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        (header("authorization"), header("crn"))
    };
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let seen = Seen {
        method,
        path,
        auth,
        crn,
        body,
    };
    f.seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(seen.clone());
    let (status, value) = (f.script.lock().unwrap_or_else(|p| p.into_inner()))(&seen);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(value),
    )
        .into_response()
}

async fn serve(script: Script) -> (String, Fake) {
    let fake = Fake {
        seen: Arc::default(),
        script: Arc::new(Mutex::new(script)),
    };
    let app = Router::new().fallback(answer).with_state(fake.clone());
    (serve_loopback(app).await, fake)
}

fn api() -> ApiClient {
    ApiClient::new(&HttpSettings {
        requests_per_second: 1000.0,
        request_timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

const CRN: &str = "crn:v1:bluemix:public:power-iaas:dal12:a/acct:ws1::";

fn provider(url: &str, auth: PowerVsAuth, store: Option<Arc<dyn SecretStore>>) -> PowerVs {
    PowerVs::new(
        "pvs",
        &PowerVsSettings {
            endpoint: url.to_string(),
            cloud_instance_id: "ws1".into(),
            crn: CRN.into(),
            auth,
        },
        api(),
        store,
    )
}

fn iam(url: &str) -> PowerVsAuth {
    PowerVsAuth::ApiKey {
        api_key: Secret::new("key-1234567890"),
        iam_endpoint: format!("{url}/identity/token"),
    }
}

/// [`serve`] with an IAM that issues `tok-1`, `tok-2`, … in turn; every
/// other call is answered by `script`.
async fn serve_with_fresh_tokens(
    mut script: impl FnMut(&Seen) -> (u16, Value) + Send + 'static,
) -> (String, Fake) {
    let mut tokens = 0;
    serve(Box::new(move |s: &Seen| {
        if s.path == "/identity/token" {
            tokens += 1;
            return iam_answer(tokens);
        }
        script(s)
    }))
    .await
}

fn iam_answer(n: usize) -> (u16, Value) {
    let exp = Utc::now().timestamp() + 3600;
    (
        200,
        json!({"access_token": format!("tok-{n}"), "expires_in": 3600, "expiration": exp,
               "token_type": "Bearer", "ims_user_id": "222"}),
    )
}

fn seen(f: &Fake) -> Vec<Seen> {
    f.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn request(target: &str, volume_ids: Option<Vec<String>>) -> CreateRequest {
    let m = marker(target);
    CreateRequest {
        resource: ResourceKind::Instance,
        target: target.into(),
        name: fit_name(&m),
        marker: m,
        full: true,
        volume_ids,
    }
}

#[tokio::test]
async fn create_sends_bearer_crn_marker_and_volume_ids_and_reuses_the_token() {
    let (url, fake) =
        serve_with_fresh_tokens(|_: &Seen| (202, json!({"snapshotID": "snap-1", "crn": "x"})))
            .await;
    let p = provider(&url, iam(&url), None);
    let req = request("pvm-1", Some(vec!["vol-a".into()]));
    for _ in 0..2 {
        let created = p.create(&req).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            created,
            vec![Created {
                snapshot_id: "snap-1".into(),
                operation: "snap-1".into()
            }]
        );
    }
    let seen = seen(&fake);
    assert_eq!(seen.len(), 3, "one token exchange for two calls: {seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert!(seen[0]
        .body
        .contains("grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey"));
    assert!(seen[0].body.contains("apikey=key-1234567890"));
    let c = &seen[1];
    assert_eq!(
        c.path,
        "/pcloud/v1/cloud-instances/ws1/pvm-instances/pvm-1/snapshots"
    );
    assert_eq!(c.auth, "Bearer tok-1");
    assert_eq!(c.crn, CRN);
    let body: Value = serde_json::from_str(&c.body).unwrap_or_default();
    assert_eq!(body["name"], "lpar-pvm-1-20240101T023000Z");
    assert_eq!(
        body["description"],
        "snapwarden policy=lpar target=pvm-1 slot=20240101T023000Z"
    );
    assert_eq!(body["volumeIDs"], json!(["vol-a"]));
    // Without volume_ids the key is not sent (all volumes).
    let body = serde_json::to_value(SnapshotCreate {
        name: "n",
        description: "d",
        volume_ids: None,
    })
    .unwrap_or_default();
    assert!(body.get("volumeIDs").is_none());
}

#[tokio::test]
async fn a_401_reissues_the_token_once_then_is_an_auth_error() {
    let (url, fake) = serve_with_fresh_tokens(move |s: &Seen| match s.auth.as_str() {
        "Bearer tok-2" => (200, json!({"snapshots": []})),
        _ => (
            401,
            json!({"code": 401, "description": "token expired", "error": "unauthorized"}),
        ),
    })
    .await;
    let p = provider(&url, iam(&url), None);
    let listed = p
        .list(ResourceKind::Instance, "pvm-1", "lpar")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(listed.is_empty());
    assert_eq!(seen(&fake).len(), 4, "token, 401, token, retry");

    // A server that refuses every token: one re-issue, then Auth.
    let (url, fake) = serve(Box::new(|s: &Seen| {
        if s.path == "/identity/token" {
            return iam_answer(9);
        }
        (401, json!({"description": "nope"}))
    }))
    .await;
    let p = provider(&url, iam(&url), None);
    let e = p
        .list(ResourceKind::Instance, "pvm-1", "lpar")
        .await
        .err()
        .map(|e| e.kind);
    assert_eq!(e, Some(ErrorKind::Auth));
    assert_eq!(seen(&fake).len(), 4);
}

#[tokio::test]
async fn a_bad_api_key_is_an_auth_error_that_names_iam() {
    let (url, _fake) = serve(Box::new(|_s: &Seen| {
        (400, json!({"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found"}))
    }))
    .await;
    let p = provider(&url, iam(&url), None);
    let e = p
        .delete("s1")
        .await
        .err()
        .unwrap_or_else(|| panic!("must fail"));
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("IBM Cloud IAM rejected the api_key"),
        "{}",
        e.message
    );
    assert!(e.message.contains("BXNIM0415E"));
    assert!(!e.message.contains("key-1234567890"));
}

#[tokio::test]
async fn a_409_with_our_name_is_adopted_and_stamped_otherwise_busy() {
    let m = marker("pvm-1");
    let name = fit_name(&m);
    let (url, fake) = serve(Box::new(move |s: &Seen| match (s.method.as_str(), s.path.as_str()) {
        (_, "/identity/token") => iam_answer(1),
        ("POST", _) => (409, json!({"code": 409, "description": "duplicate", "error": "conflict"})),
        ("GET", _) => (200, json!({"snapshots": [
            {"snapshotID": "old", "name": name, "pvmInstanceID": "pvm-1", "status": "creating",
             "percentComplete": 20, "description": "", "volumeSnapshots": {}}
        ]})),
        ("PUT", _) => (200, json!({"snapshotID": "old", "name": "x", "pvmInstanceID": "pvm-1", "volumeSnapshots": {}})),
        _ => (500, json!({})),
    }))
    .await;
    let p = provider(&url, iam(&url), None);
    let created = p
        .create(&request("pvm-1", None))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created[0].snapshot_id, "old");
    let put = seen(&fake)
        .into_iter()
        .find(|s| s.method == "PUT")
        .unwrap_or_else(|| panic!("no PUT"));
    assert_eq!(put.path, "/pcloud/v1/cloud-instances/ws1/snapshots/old");
    assert!(
        put.body.contains("snapwarden policy=lpar target=pvm-1"),
        "{}",
        put.body
    );

    // Another target: its 409 is "busy", retryable.
    let e = p
        .create(&request("pvm-2", None))
        .await
        .err()
        .map(|e| e.kind);
    assert_eq!(e, Some(ErrorKind::Busy));
}

#[tokio::test]
async fn several_operations_are_polled_with_one_listing() {
    let (url, fake) = serve(Box::new(|s: &Seen| match s.path.as_str() {
        "/identity/token" => iam_answer(1),
        "/pcloud/v1/cloud-instances/ws1/snapshots" => (200, json!({"snapshots": [
            {"snapshotID": "a", "name": "a", "pvmInstanceID": "p", "status": "available", "percentComplete": 100, "volumeSnapshots": {}},
            {"snapshotID": "b", "name": "b", "pvmInstanceID": "p", "status": "creating", "percentComplete": 35, "volumeSnapshots": {}},
        ]})),
        _ => (404, json!({"description": "snapshot does not exist", "error": "not found"})),
    }))
    .await;
    let p = provider(&url, iam(&url), None);
    let op = |kind, id: &str| OperationRef {
        kind,
        operation: id.into(),
        snapshot_id: id.into(),
    };
    let st = p
        .poll(&[
            op(OpKind::Create, "a"),
            op(OpKind::Create, "b"),
            op(OpKind::Delete, "c"),
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        st,
        vec![
            OpStatus::Succeeded,
            OpStatus::Pending { progress: Some(35) },
            OpStatus::Succeeded
        ]
    );
    let calls: Vec<String> = seen(&fake).into_iter().map(|s| s.path).collect();
    assert_eq!(
        calls.len(),
        3,
        "token, one listing, one GET for the missing one: {calls:?}"
    );
}

#[tokio::test]
async fn restore_posts_in_place_and_is_followed_on_the_snapshot() {
    let (url, fake) = serve(Box::new(|s: &Seen| match s.path.as_str() {
        "/identity/token" => iam_answer(1),
        _ => (202, json!({"snapshotID": "s1", "name": "n", "pvmInstanceID": "pvm-1", "status": "restoring", "volumeSnapshots": {}})),
    }))
    .await;
    let p = provider(&url, iam(&url), None);
    let r = p
        .restore(&restore_request(
            ResourceKind::Instance,
            "pvm-1",
            "s1",
            None,
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.operation.starts_with("restore@"));
    let call = seen(&fake)
        .into_iter()
        .last()
        .unwrap_or_else(|| panic!("no call"));
    assert_eq!(
        call.path,
        "/pcloud/v1/cloud-instances/ws1/pvm-instances/pvm-1/snapshots/s1/restore"
    );
    assert_eq!(call.body, r#"{"force":false}"#);
    let op = OperationRef {
        kind: OpKind::Restore,
        operation: r.operation.clone(),
        snapshot_id: "s1".into(),
    };
    // Still "available" from before the restore: not done.
    let mut before = snap("available", 100);
    before.last_update_date = Some("2020-01-01T00:00:00.000Z".into());
    assert_eq!(
        op_status(&op, Some(&before)),
        OpStatus::Pending { progress: None }
    );
    let mut after = snap("available", 100);
    after.action = Some("restore".into());
    assert_eq!(op_status(&op, Some(&after)), OpStatus::Succeeded);
}

/// A store in memory that records what was saved.
#[derive(Default)]
struct MemStore(Mutex<Option<StoredSecret>>);

#[async_trait::async_trait]
impl SecretStore for MemStore {
    async fn load_secret(&self, _p: &str, _k: &str) -> Result<Option<StoredSecret>, String> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
    async fn store_secret(
        &self,
        _p: &str,
        _k: &str,
        s: &StoredSecret,
        replaces: Option<&Secret>,
    ) -> Result<(), String> {
        let mut stored = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(r), Some(current)) = (replaces, stored.as_ref()) {
            if current.value != *r {
                return Err("changed meanwhile".into());
            }
        }
        *stored = Some(s.clone());
        Ok(())
    }
}

#[tokio::test]
async fn ip4g_rotation_is_saved_and_preferred_over_the_configured_token() {
    let mut n = 0;
    let (url, fake) = serve(Box::new(move |s: &Seen| {
        if s.path == "/auth/v1/token" {
            n += 1;
            let expires = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
            return (
                200,
                json!({"accessToken": format!("at-{n}"), "expires": expires,
                                "refreshToken": format!("rt-{n}"), "type": "Bearer"}),
            );
        }
        (200, json!({"snapshots": []}))
    }))
    .await;
    let store = Arc::new(MemStore::default());
    let configured = Secret::new("rt-configured");
    let auth = PowerVsAuth::RefreshToken {
        refresh_token: Some(configured.clone()),
    };
    let p = provider(&url, auth.clone(), Some(store.clone()));
    p.list(ResourceKind::Instance, "p", "lpar")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let saved = store.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(saved.as_ref().map(|s| s.value.expose()), Some("rt-1"));
    assert_eq!(
        saved.as_ref().map(|s| s.seed.clone()),
        Some(seed_of(Some(&configured)))
    );
    // A "restart": a new provider with the same store uses rt-1.
    let p2 = provider(&url, auth, Some(store.clone()));
    p2.list(ResourceKind::Instance, "p", "lpar")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bodies: Vec<String> = seen(&fake)
        .into_iter()
        .filter(|s| s.path == "/auth/v1/token")
        .map(|s| s.body)
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[0].contains("\"refreshToken\":\"rt-configured\"")
            && bodies[0].contains("\"source\":\"cli\"")
    );
    assert!(
        bodies[1].contains("\"refreshToken\":\"rt-1\""),
        "{}",
        bodies[1]
    );
    // A different configured token wins over the stored chain.
    let p3 = provider(
        &url,
        PowerVsAuth::RefreshToken {
            refresh_token: Some(Secret::new("rt-new")),
        },
        Some(store),
    );
    p3.list(ResourceKind::Instance, "p", "lpar")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let last = seen(&fake)
        .into_iter()
        .rfind(|s| s.path == "/auth/v1/token")
        .map(|s| s.body);
    assert!(last.is_some_and(|b| b.contains("rt-new")));
}

#[tokio::test]
async fn the_state_database_keeps_provider_secrets() {
    let state = crate::state::SqliteLedger::open(std::path::Path::new(":memory:"))
        .unwrap_or_else(|e| panic!("{e}"));
    let store: &dyn SecretStore = &state;
    assert_eq!(store.load_secret("pvs", REFRESH_TOKEN_KEY).await, Ok(None));
    let secret = |v: &str| StoredSecret {
        value: Secret::new(v),
        seed: "s".into(),
    };
    // A sign-in replaces whatever is there; a rotation replaces only the
    // token it was made from.
    for (v, replaces) in [("one", None), ("two", Some(Secret::new("one")))] {
        store
            .store_secret("pvs", REFRESH_TOKEN_KEY, &secret(v), replaces.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let stale = store
        .store_secret(
            "pvs",
            REFRESH_TOKEN_KEY,
            &secret("three"),
            Some(&Secret::new("one")),
        )
        .await;
    assert!(
        stale.is_err(),
        "a rotation from a token already replaced is refused"
    );
    let got = store
        .load_secret("pvs", REFRESH_TOKEN_KEY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        got.map(|s| s.value.expose().to_string()),
        Some("two".to_string())
    );
    assert_eq!(
        store.load_secret("other", REFRESH_TOKEN_KEY).await,
        Ok(None)
    );
}

#[tokio::test]
async fn a_rotated_token_is_kept_even_through_a_read_only_ledger() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("state.db");
    drop(crate::state::SqliteLedger::open(&path).unwrap_or_else(|e| panic!("{e}")));
    let ro = crate::state::SqliteLedger::open_read_only(&path).unwrap_or_else(|e| panic!("{e}"));
    let secret = StoredSecret {
        value: Secret::new("rotated"),
        seed: "s".into(),
    };
    SecretStore::store_secret(&ro, "pvs", REFRESH_TOKEN_KEY, &secret, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rw = crate::state::SqliteLedger::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        SecretStore::load_secret(&rw, "pvs", REFRESH_TOKEN_KEY).await,
        Ok(Some(secret))
    );
}

// ------------------------------------------------------- target selection

#[tokio::test]
async fn list_resources_reads_the_workspace_instances() {
    let (url, fake) = serve(Box::new(|s: &Seen| match s.path.as_str() {
        "/identity/token" => iam_answer(1),
        "/pcloud/v1/cloud-instances/ws1/pvm-instances" => (
            200,
            json!({"pvmInstances": [
                {"pvmInstanceID": "p-1", "serverName": "lpar-db", "status": "ACTIVE", "health": {"status": "OK"}},
                {"pvmInstanceID": "p-2", "serverName": "lpar-app", "status": "SHUTOFF"},
            ]}),
        ),
        _ => (404, json!({"description": "no", "error": "not found"})),
    }))
    .await;
    let p = provider(&url, iam(&url), None);
    assert_eq!(
        selected(&p, ResourceKind::Instance).await,
        pairs(&[("p-1", "lpar-db"), ("p-2", "lpar-app")])
    );
    let calls = seen(&fake);
    let list = calls
        .iter()
        .find(|s| s.path.ends_with("/pvm-instances"))
        .unwrap_or_else(|| panic!("no listing: {calls:?}"));
    assert_eq!((list.method.as_str(), list.crn.as_str()), ("GET", CRN));
    assert_eq!(list.auth, "Bearer tok-1");
    assert_not_selectable(&p, ResourceKind::Volume).await;
}

#[tokio::test]
async fn list_resources_refuses_an_answer_without_the_list() {
    let (url, _) = serve(Box::new(|s: &Seen| match s.path.as_str() {
        "/identity/token" => iam_answer(1),
        _ => (200, json!({"instances": []})),
    }))
    .await;
    let p = provider(&url, iam(&url), None);
    assert!(p.list_resources(ResourceKind::Instance).await.is_err());
}

// ------------------------------------------------- answers out of range

#[tokio::test]
async fn an_absurd_iam_expires_in_is_capped_instead_of_panicking() {
    for lifetime in [json!(1e13), json!(1e300), json!(u64::MAX)] {
        let (url, fake) = serve(Box::new(move |s: &Seen| {
            if s.path == "/identity/token" {
                // `expiration` beyond what a date can hold is ignored.
                return (
                    200,
                    json!({"access_token": "x", "expires_in": lifetime.clone(),
                           "expiration": 10_000_000_000_000i64, "token_type": "Bearer"}),
                );
            }
            (200, json!({"snapshots": []}))
        }))
        .await;
        let p = provider(&url, iam(&url), None);
        for _ in 0..2 {
            let listed = p
                .list(ResourceKind::Instance, "pvm-1", "lpar")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(listed.is_empty());
        }
        let seen = seen(&fake);
        assert_eq!(seen.len(), 3, "one token for both calls: {seen:?}");
        assert_eq!(seen[1].auth, "Bearer x");
    }
}

#[tokio::test]
async fn an_absurd_device_code_interval_or_lifetime_is_bounded() {
    let (url, _fake) = serve(Box::new(|_s: &Seen| {
        (
            200,
            json!({"deviceCode": "dc", "userCode": "ABCD", "verificationURL": "https://x/activate",
                   "interval": 1e300, "expiresIn": 1e300}),
        )
    }))
    .await;
    let login = device_code(&api(), &url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(login.interval >= Duration::from_secs(1));
    assert!(login.interval <= Duration::from_secs(60), "{login:?}");
    assert!(login.expires_in <= Duration::from_secs(3600), "{login:?}");
    assert!(login.interval <= login.expires_in);
}

// ------------------------------------------------------ against the simulator

/// mark_hold on the built-in simulator: the description keeps
/// snapwarden's marker first and the hold after it (so `list` still knows
/// the snapshot as ours), the name stays, clearing gives the marker back
/// exactly, and an unknown snapshot is NotFound.
#[tokio::test]
async fn mark_hold_keeps_the_marker_in_the_description_on_the_simulator() {
    let (sim, addr, _stop) = crate::sim::testing::serve_on_loopback(20).await;
    let m = Marker {
        policy: "daily".into(),
        target: "pvm-1".into(),
        slot: Utc
            .with_ymd_and_hms(2025, 6, 25, 14, 46, 0)
            .single()
            .expect("slot"),
    };
    let marker = marker_text(&m);
    sim.seed_powervs_instance("ws1", "pvm-1", Vec::new());
    let id = sim.seed_powervs_snapshot("ws1", "pvm-1", "daily-pvm-1", &marker, None);
    let url = format!("http://{addr}/powervs");
    let p = PowerVs::new(
        "pvs",
        &PowerVsSettings {
            endpoint: url.clone(),
            cloud_instance_id: "ws1".into(),
            crn: "crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:ws1::".into(),
            auth: PowerVsAuth::ApiKey {
                api_key: Secret::new(crate::sim::DEFAULT_POWERVS_API_KEY),
                iam_endpoint: format!("{url}/identity/token"),
            },
        },
        api(),
        None,
    );
    assert_eq!(p.capabilities().hold_mark, Some("description"));
    let described = || async { p.get(&id).await.expect("GET").expect("exists") };
    let ours = || async {
        let listed = p
            .list(ResourceKind::Instance, "pvm-1", "daily")
            .await
            .expect("list");
        listed
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.marker_slot)
    };

    let note = "held until 2026-12-24T00:00:00Z by ann: legal";
    p.mark_hold(&id, "daily-pvm-1", Some(note))
        .await
        .expect("set");
    let s = described().await;
    let want = format!("{marker} | hold: {note}");
    assert_eq!(s.description.as_deref(), Some(want.as_str()));
    assert_eq!(s.name.as_deref(), Some("daily-pvm-1"), "the name is kept");
    let v = crate::providers::tests::sim_view(addr, "/_sim/powervs/snapshots").await;
    let seen = crate::providers::tests::item(&v["snapshots"], "snapshot_id", &id);
    assert_eq!(seen["description"], want.as_str(), "{seen}");
    assert_eq!(ours().await, Some(m.slot), "still ours while held");

    p.mark_hold(&id, "daily-pvm-1", None).await.expect("clear");
    assert_eq!(
        described().await.description.as_deref(),
        Some(marker.as_str())
    );
    assert_eq!(ours().await, Some(m.slot));

    let e = p
        .mark_hold("0385f05f-0000-0000-0000-000000000000", "x", Some(note))
        .await
        .expect_err("unknown snapshot");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

fn sim_provider(addr: std::net::SocketAddr) -> PowerVs {
    let url = format!("http://{addr}/powervs");
    PowerVs::new(
        "pvs",
        &PowerVsSettings {
            endpoint: url.clone(),
            cloud_instance_id: "ws1".into(),
            crn: "crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:ws1::".into(),
            auth: PowerVsAuth::ApiKey {
                api_key: Secret::new(crate::sim::DEFAULT_POWERVS_API_KEY),
                iam_endpoint: format!("{url}/identity/token"),
            },
        },
        api(),
        None,
    )
}

/// The listing gives each snapshot the sum of its volume snapshots' sizes
/// from `GET /v1/volume-snapshots` (GiB × 2^30); when that read fails the
/// listing still answers, with sizes unknown.
#[tokio::test]
async fn list_sizes_come_from_the_volume_snapshot_view_of_the_simulator() {
    let (sim, addr, _stop) = crate::sim::testing::serve_on_loopback(20).await;
    sim.seed_powervs_instance("ws1", "pvm-1", vec!["vol-a".into(), "vol-b".into()]);
    sim.seed_powervs_instance("ws1", "pvm-2", vec!["vol-c".into()]);
    let two = sim.seed_powervs_snapshot("ws1", "pvm-1", "s-two", "by hand", None);
    sim.seed_powervs_snapshot("ws1", "pvm-2", "s-other", "by hand", None);
    let p = sim_provider(addr);
    // What the simulator says each volume holds, read over HTTP.
    let c = reqwest::Client::new();
    let base = format!("http://{addr}/powervs");
    let tok: Value = c
        .post(format!("{base}/identity/token"))
        .form(&[
            ("grant_type", "urn:ibm:params:oauth:grant-type:apikey"),
            ("apikey", crate::sim::DEFAULT_POWERVS_API_KEY),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let view: Value = c
        .get(format!("{base}/v1/volume-snapshots"))
        .bearer_auth(tok["access_token"].as_str().unwrap_or_default())
        .header(
            "CRN",
            "crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:ws1::",
        )
        .send()
        .await
        .expect("view")
        .json()
        .await
        .expect("view JSON");
    let gib = |vol: &str| {
        view["volumeSnapshots"]
            .as_array()
            .and_then(|l| l.iter().find(|v| v["volumeID"] == vol))
            .and_then(|v| v["size"].as_f64())
            .unwrap_or_else(|| panic!("{vol} in {view}"))
    };
    let want = ((gib("vol-a") + gib("vol-b")) as u64) << 30;

    let listed = p
        .list(ResourceKind::Instance, "pvm-1", "daily")
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, two);
    assert_eq!(listed[0].size_bytes, Some(want));

    let fault = c
        .post(format!("http://{addr}/_sim/faults"))
        .json(
            &json!({"dialect": "powervs", "action": "v1.volume-snapshots.getall",
                      "fault": "server_error"}),
        )
        .send()
        .await
        .expect("fault");
    assert!(fault.status().is_success(), "{:?}", fault.text().await);
    let listed = p
        .list(ResourceKind::Instance, "pvm-1", "daily")
        .await
        .expect("a failed size read never fails the listing");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size_bytes, None, "unknown, not 0");
}

/// A snapshot one of whose volume snapshots the view lacks, or gives
/// without a size, has no size; fractional GiB are counted exactly; the
/// view is read once per listing, at `{endpoint}/v1/volume-snapshots`
/// with the CRN header.
#[tokio::test]
async fn list_sizes_are_unknown_when_the_view_misses_a_volume_snapshot() {
    let (url, fake) = serve_with_fresh_tokens(|s| match s.path.as_str() {
        "/pcloud/v1/cloud-instances/ws1/snapshots" => (
            200,
            json!({"snapshots": [
                {"snapshotID": "s-full", "name": "a", "pvmInstanceID": "pvm-1",
                 "status": "available", "percentComplete": 100,
                 "volumeSnapshots": {"v1": "vs-1", "v2": "vs-2"}},
                {"snapshotID": "s-miss", "name": "b", "pvmInstanceID": "pvm-1",
                 "status": "available", "percentComplete": 100,
                 "volumeSnapshots": {"v1": "vs-3", "v2": "vs-4"}},
                {"snapshotID": "s-nosize", "name": "c", "pvmInstanceID": "pvm-1",
                 "status": "available", "percentComplete": 100,
                 "volumeSnapshots": {"v1": "vs-5"}},
                {"snapshotID": "s-none", "name": "d", "pvmInstanceID": "pvm-1",
                 "status": "available", "percentComplete": 100}
            ]}),
        ),
        "/v1/volume-snapshots" => (
            200,
            json!({"volumeSnapshots": [
                {"id": "vs-1", "name": "x", "size": 20, "status": "available", "volumeID": "v1"},
                {"id": "vs-2", "name": "y", "size": 0.5, "status": "available", "volumeID": "v2"},
                {"id": "vs-3", "name": "z", "size": 20, "status": "available", "volumeID": "v1"},
                {"id": "vs-5", "name": "w", "status": "available", "volumeID": "v1"}
            ]}),
        ),
        _ => (404, json!({"error": "no"})),
    })
    .await;
    let p = provider(&url, iam(&url), None);
    let listed = p
        .list(ResourceKind::Instance, "pvm-1", "lpar")
        .await
        .expect("list");
    let size = |id: &str| {
        listed
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id}"))
            .size_bytes
    };
    assert_eq!(size("s-full"), Some((20 << 30) + (1 << 29)));
    assert_eq!(size("s-miss"), None);
    assert_eq!(size("s-nosize"), None);
    assert_eq!(size("s-none"), None);
    let views: Vec<Seen> = seen(&fake)
        .into_iter()
        .filter(|s| s.path == "/v1/volume-snapshots")
        .collect();
    assert_eq!(views.len(), 1, "one read per listing");
    assert_eq!(views[0].crn, CRN);
    assert_eq!(views[0].method, "GET");
}
