//! Tests of the Lightsail client against a tiny canned-JSON server on
//! loopback (a fixture, not the simulator): what the SDK sends for each
//! trait call, and how answers map onto the engine's words.

use crate::providers::tests::{assert_restores, restore_request, serve_loopback};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::config::{LightsailCredentials, Secret};
use crate::providers::http::HttpSettings;
use crate::providers::{parse_slot_label, OpKind, SnapshotState};

type Script = Arc<Mutex<HashMap<String, VecDeque<(u16, Value)>>>>;

#[derive(Clone, Default)]
struct Fake {
    script: Script,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Fake {
    fn answer(&self, op: &str, status: u16, body: Value) {
        if let Ok(mut s) = self.script.lock() {
            s.entry(op.to_string())
                .or_default()
                .push_back((status, body));
        }
    }
    fn seen(&self, op: &str) -> Vec<Value> {
        self.seen
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|(o, _)| o == op)
                    .map(|(_, b)| b.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn fake_handler(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("Lightsail_20161128."))
        .unwrap_or_default()
        .to_string();
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("/us-east-2/lightsail/aws4_request"));
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut s) = f.seen.lock() {
        s.push((op.clone(), input));
    }
    let next = f
        .script
        .lock()
        .ok()
        .and_then(|mut s| s.get_mut(&op).and_then(VecDeque::pop_front));
    let (status, body) = match (signed, next) {
        (false, _) => (
            400,
            json!({"__type": "MissingAuthenticationTokenException", "message": "unsigned"}),
        ),
        (true, Some(a)) => a,
        (true, None) => (
            500,
            json!({"__type": "ServiceException", "message": format!("unscripted {op}")}),
        ),
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
}

async fn start() -> (Fake, Lightsail) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/lightsail", post(fake_handler))
        .route("/lightsail/", post(fake_handler))
        .with_state(fake.clone());
    let base = serve_loopback(app).await;
    let settings = LightsailSettings {
        region: "us-east-2".into(),
        credentials: LightsailCredentials::Static {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
        },
        endpoint: Some(format!("{base}/lightsail")),
    };
    let api = ApiClient::new(&HttpSettings {
        requests_per_second: 1000.0,
        request_timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .expect("client");
    let p = Lightsail::new(&settings, api, Duration::from_secs(5), None).expect("provider");
    (fake, p)
}

fn slot() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn marker() -> Marker {
    Marker {
        policy: "web".into(),
        target: "web-1".into(),
        slot: slot(),
    }
}

fn our_tags() -> Value {
    json!([{"key": "snapwarden:policy", "value": "web"},
           {"key": "snapwarden:target", "value": "web-1"},
           {"key": "snapwarden:slot", "value": "20240115T120000Z"}])
}

fn op(id: &str, terminal: bool, status: &str) -> Value {
    json!({"id": id, "isTerminal": terminal, "status": status, "operationType": "CreateInstanceSnapshot", "resourceName": "x"})
}

fn create_req() -> CreateRequest {
    CreateRequest {
        resource: ResourceKind::Instance,
        target: "web-1".into(),
        name: marker().default_name(),
        marker: marker(),
        full: true,
        volume_ids: None,
    }
}

#[tokio::test]
async fn create_sends_tags_and_keeps_both_operation_ids() {
    let (fake, p) = start().await;
    fake.answer(
        "CreateInstanceSnapshot",
        200,
        json!({"operations": [op("o1", false, "Started"), op("o2", false, "Started")]}),
    );
    let created = p.create(&create_req()).await.expect("created");
    assert_eq!(
        created,
        vec![Created {
            snapshot_id: "InstanceSnapshot/web-web-1-20240115T120000Z".into(),
            operation: "o1,o2".into()
        }]
    );
    let sent = fake.seen("CreateInstanceSnapshot");
    assert_eq!(sent[0]["instanceName"], "web-1");
    assert_eq!(
        sent[0]["instanceSnapshotName"],
        "web-web-1-20240115T120000Z"
    );
    assert_eq!(sent[0]["tags"], our_tags());
}

fn instance_snap(name: &str, state: &str) -> Value {
    json!({"name": name, "state": state, "fromInstanceName": "web-1"})
}

#[tokio::test]
async fn poll_reads_the_snapshot_first_and_operations_only_to_explain() {
    let (fake, p) = start().await;
    let r = OperationRef {
        kind: OpKind::Create,
        operation: "o1,o2".into(),
        snapshot_id: "InstanceSnapshot/snap".into(),
    };
    // The snapshot decides: pending, then available, one call each.
    fake.answer(
        "GetInstanceSnapshot",
        200,
        json!({"instanceSnapshot": instance_snap("snap", "pending")}),
    );
    fake.answer(
        "GetInstanceSnapshot",
        200,
        json!({"instanceSnapshot": instance_snap("snap", "available")}),
    );
    assert_eq!(
        p.poll(std::slice::from_ref(&r)).await.expect("poll"),
        vec![OpStatus::Pending { progress: None }]
    );
    assert_eq!(
        p.poll(std::slice::from_ref(&r)).await.expect("poll"),
        vec![OpStatus::Succeeded]
    );
    assert!(fake.seen("GetOperation").is_empty());
    assert_eq!(
        fake.seen("GetInstanceSnapshot")[0]["instanceSnapshotName"],
        "snap"
    );
    // In state error: failed, in the operation's words and with the state.
    fake.answer(
        "GetInstanceSnapshot",
        200,
        json!({"instanceSnapshot": instance_snap("snap", "error")}),
    );
    let mut failed = op("o1", true, "Failed");
    failed["errorDetails"] = json!("volume busy");
    fake.answer("GetOperation", 200, json!({"operation": failed}));
    fake.answer(
        "GetOperation",
        200,
        json!({"operation": op("o2", true, "Succeeded")}),
    );
    match p
        .poll(std::slice::from_ref(&r))
        .await
        .expect("poll")
        .as_slice()
    {
        [OpStatus::Failed { reason }] => assert!(
            reason.contains("volume busy") && reason.contains("state \"error\""),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.seen("GetOperation").len(), 2);

    // Missing: both operations are read; one still running → pending.
    let not_found = json!({"__type": "NotFoundException", "message": "no such snapshot"});
    fake.answer("GetInstanceSnapshot", 400, not_found.clone());
    fake.answer(
        "GetOperation",
        200,
        json!({"operation": op("o1", true, "Succeeded")}),
    );
    fake.answer(
        "GetOperation",
        200,
        json!({"operation": op("o2", false, "Started")}),
    );
    assert_eq!(
        p.poll(std::slice::from_ref(&r)).await.expect("poll"),
        vec![OpStatus::Pending { progress: None }]
    );
    assert_eq!(fake.seen("GetOperation").len(), 4);
    // Missing and an operation failed: failed with its errorCode and
    // details.
    fake.answer("GetInstanceSnapshot", 400, not_found.clone());
    fake.answer(
        "GetOperation",
        200,
        json!({"operation": op("o1", true, "Succeeded")}),
    );
    let mut failed = op("o2", true, "Failed");
    failed["errorCode"] = json!("InternalError");
    failed["errorDetails"] = json!("disk busy");
    fake.answer("GetOperation", 200, json!({"operation": failed}));
    match p
        .poll(std::slice::from_ref(&r))
        .await
        .expect("poll")
        .as_slice()
    {
        [OpStatus::Failed { reason }] => {
            assert!(
                reason.contains("errorCode InternalError") && reason.contains("disk busy"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Missing and an unknown terminal status: never a success.
    fake.answer("GetInstanceSnapshot", 400, not_found.clone());
    fake.answer(
        "GetOperation",
        200,
        json!({"operation": op("o1", true, "Exploded")}),
    );
    fake.answer(
        "GetOperation",
        200,
        json!({"operation": op("o2", true, "Succeeded")}),
    );
    assert!(matches!(
        p.poll(std::slice::from_ref(&r)).await.expect("poll")[0],
        OpStatus::Failed { .. }
    ));
    // Missing although both succeeded: not yet listed, still pending.
    fake.answer("GetInstanceSnapshot", 400, not_found);
    for id in ["o1", "o2"] {
        fake.answer(
            "GetOperation",
            200,
            json!({"operation": op(id, true, "Succeeded")}),
        );
    }
    assert_eq!(
        p.poll(std::slice::from_ref(&r)).await.expect("poll"),
        vec![OpStatus::Pending { progress: None }]
    );
}

#[tokio::test]
async fn a_delete_still_listed_is_explained_by_its_operation() {
    let (fake, p) = start().await;
    let r = OperationRef {
        kind: OpKind::Delete,
        operation: "d1".into(),
        snapshot_id: "InstanceSnapshot/old".into(),
    };
    // Still there, operation running: pending.
    fake.answer(
        "GetInstanceSnapshot",
        200,
        json!({"instanceSnapshot": instance_snap("old", "available")}),
    );
    fake.answer(
        "GetOperation",
        200,
        json!({"operation": op("d1", false, "Started")}),
    );
    assert_eq!(
        p.poll(std::slice::from_ref(&r)).await.expect("poll"),
        vec![OpStatus::Pending { progress: None }]
    );
    // Still there, operation failed: failed, with the cloud's words.
    fake.answer(
        "GetInstanceSnapshot",
        200,
        json!({"instanceSnapshot": instance_snap("old", "available")}),
    );
    let mut failed = op("d1", true, "Failed");
    failed["errorDetails"] = json!("snapshot in use");
    fake.answer("GetOperation", 200, json!({"operation": failed}));
    match p
        .poll(std::slice::from_ref(&r))
        .await
        .expect("poll")
        .as_slice()
    {
        [OpStatus::Failed { reason }] => assert!(reason.contains("snapshot in use"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Gone: done, without asking the operation.
    let asked = fake.seen("GetOperation").len();
    fake.answer(
        "GetInstanceSnapshot",
        400,
        json!({"__type": "NotFoundException", "message": "gone"}),
    );
    assert_eq!(
        p.poll(std::slice::from_ref(&r)).await.expect("poll"),
        vec![OpStatus::Succeeded]
    );
    assert_eq!(fake.seen("GetOperation").len(), asked);
}

#[tokio::test]
async fn many_due_operations_share_one_listing_instead_of_one_call_each() {
    let (fake, p) = start().await;
    // A first listing of two pages sets what a listing costs.
    fake.answer(
        "GetInstanceSnapshots",
        200,
        json!({"instanceSnapshots": [instance_snap("old-1", "available")], "nextPageToken": "t"}),
    );
    fake.answer(
        "GetInstanceSnapshots",
        200,
        json!({"instanceSnapshots": [instance_snap("old-2", "available")]}),
    );
    assert_eq!(
        p.list(ResourceKind::Instance, "web-1", "web")
            .await
            .expect("list")
            .len(),
        2
    );

    let refs = [
        (OpKind::Create, "new-1"),
        (OpKind::Create, "new-2"),
        (OpKind::Delete, "old-1"),
        (OpKind::Delete, "old-2"),
        (OpKind::Create, "lost"),
    ]
    .map(|(kind, name)| OperationRef {
        kind,
        operation: format!("op-{name}"),
        snapshot_id: format!("InstanceSnapshot/{name}"),
    });
    // One due operation is cheaper asked alone than a two-page listing.
    fake.answer(
        "GetInstanceSnapshot",
        200,
        json!({"instanceSnapshot": instance_snap("new-2", "pending")}),
    );
    assert_eq!(
        p.poll(&refs[1..2]).await.expect("poll"),
        vec![OpStatus::Pending { progress: None }]
    );
    assert_eq!(fake.seen("GetInstanceSnapshots").len(), 2);
    // Five more cost more than half a listing: one listing answers them.
    fake.answer(
        "GetInstanceSnapshots",
        200,
        json!({"instanceSnapshots": [instance_snap("new-1", "available"), instance_snap("old-2", "available")], "nextPageToken": "t"}),
    );
    fake.answer(
        "GetInstanceSnapshots",
        200,
        json!({"instanceSnapshots": [instance_snap("new-2", "pending")]}),
    );
    // Still listed after a delete, or missing after a create: their
    // operations are read.
    fake.answer(
        "GetOperation",
        200,
        json!({"operation": op("op-old-2", false, "Started")}),
    );
    let mut failed = op("op-lost", true, "Failed");
    failed["errorDetails"] = json!("quota");
    fake.answer("GetOperation", 200, json!({"operation": failed}));
    let statuses = p.poll(&refs).await.expect("poll");
    assert_eq!(statuses[0], OpStatus::Succeeded);
    assert_eq!(statuses[1], OpStatus::Pending { progress: None });
    assert_eq!(statuses[2], OpStatus::Succeeded);
    assert_eq!(statuses[3], OpStatus::Pending { progress: None });
    assert!(matches!(&statuses[4], OpStatus::Failed { reason } if reason.contains("quota")));
    assert_eq!(fake.seen("GetInstanceSnapshot").len(), 1);
    assert_eq!(fake.seen("GetInstanceSnapshots").len(), 4);
    assert_eq!(fake.seen("GetOperation").len(), 2);
}

#[tokio::test]
async fn one_failed_lookup_leaves_only_its_operation_pending() {
    let (fake, p) = start().await;
    let refs = ["a", "b"].map(|name| OperationRef {
        kind: OpKind::Create,
        operation: format!("op-{name}"),
        snapshot_id: format!("InstanceSnapshot/{name}"),
    });
    // "a" answers, "b" finds the fake unscripted (a 500): a partial answer.
    fake.answer(
        "GetInstanceSnapshot",
        200,
        json!({"instanceSnapshot": instance_snap("a", "available")}),
    );
    let statuses = p.poll(&refs[..1]).await.expect("poll");
    assert_eq!(statuses, vec![OpStatus::Succeeded]);
    fake.answer(
        "GetInstanceSnapshot",
        200,
        json!({"instanceSnapshot": instance_snap("a", "available")}),
    );
    let statuses = p.poll(&refs).await.expect("partial poll");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == OpStatus::Succeeded)
            .count(),
        1
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == OpStatus::Pending { progress: None })
            .count(),
        1
    );
    // Nothing answered: the poll fails, with the cause.
    let e = p.poll(&refs).await.expect_err("every lookup failed");
    assert_eq!(e.kind, ErrorKind::Transient);
}

#[test]
fn a_listing_is_preferred_once_single_lookups_would_cost_more() {
    let shared = SharedListing::default();
    // Cost unknown: single lookups, unless very many are due.
    assert!(!shared.prefers_listing(FIRST_LISTING_AT - 1));
    assert!(shared.prefers_listing(FIRST_LISTING_AT));
    // A listing of 10 pages: up to 5 single lookups between listings.
    shared.pages.store(10, Ordering::Relaxed);
    assert!(!shared.prefers_listing(5));
    assert!(shared.prefers_listing(6));
    shared.spend(4);
    assert!(!shared.prefers_listing(1));
    assert!(shared.prefers_listing(2));
}

#[test]
fn listings_are_paced_to_a_share_of_the_rate_limit() {
    assert_eq!(listing_gap(10, 200.0), Duration::from_millis(500));
    assert_eq!(listing_gap(300, 200.0), Duration::from_secs(15));
    assert_eq!(listing_gap(10_000, 200.0), MAX_LISTING_GAP);
    assert_eq!(listing_gap(1, 0.0), MAX_LISTING_GAP);
}

#[tokio::test]
async fn list_follows_tokens_and_marks_only_tagged_non_auto_snapshots() {
    let (fake, p) = start().await;
    let snap = |name: &str, from: &str, tags: Value, auto: bool| json!({"name": name, "fromInstanceName": from, "tags": tags, "isFromAutoSnapshot": auto, "state": "available", "createdAt": 1705320000.5});
    fake.answer("GetInstanceSnapshots", 200, json!({
        "instanceSnapshots": [snap("a", "web-1", our_tags(), false), snap("b", "web-2", our_tags(), false)],
        "nextPageToken": "t1"}));
    fake.answer("GetInstanceSnapshots", 200, json!({
        "instanceSnapshots": [snap("c", "web-1", json!([]), false), snap("d", "web-1", our_tags(), true)]}));
    let listed = p
        .list(ResourceKind::Instance, "web-1", "web")
        .await
        .expect("list");
    let by_name: HashMap<&str, &RemoteSnapshot> =
        listed.iter().map(|s| (s.name.as_str(), s)).collect();
    assert_eq!(listed.len(), 3, "only web-1's: {listed:?}");
    assert_eq!(by_name["a"].marker_slot, Some(slot()));
    assert_eq!(by_name["a"].id, "InstanceSnapshot/a");
    assert_eq!(by_name["a"].state, SnapshotState::Available);
    assert_eq!(
        by_name["a"].created_at.map(|t| t.timestamp_millis()),
        Some(1705320000500)
    );
    assert_eq!(by_name["c"].marker_slot, None, "untagged");
    assert_eq!(
        by_name["d"].marker_slot, None,
        "copy of an automatic snapshot"
    );
    // Another policy's view sees none as its own.
    fake.answer(
        "GetInstanceSnapshots",
        200,
        json!({"instanceSnapshots": [snap("a", "web-1", our_tags(), false)]}),
    );
    let other = p
        .list(ResourceKind::Instance, "web-1", "other")
        .await
        .expect("list");
    assert_eq!(other[0].marker_slot, None);
    let sent = fake.seen("GetInstanceSnapshots");
    assert_eq!(sent[1]["pageToken"], "t1");
    // A repeated token is an incomplete listing, not an endless loop.
    fake.answer(
        "GetInstanceSnapshots",
        200,
        json!({"instanceSnapshots": [], "nextPageToken": "x"}),
    );
    fake.answer(
        "GetInstanceSnapshots",
        200,
        json!({"instanceSnapshots": [], "nextPageToken": "x"}),
    );
    assert_eq!(
        p.list(ResourceKind::Instance, "web-1", "web")
            .await
            .map_err(|e| e.kind)
            .err(),
        Some(ErrorKind::Transient)
    );
}

/// Splits a name of [`snapshot_name`]'s form back into (policy, target,
/// slot), exactly: `None` for any other name.
fn decode(name: &str) -> Option<(String, String, chrono::DateTime<Utc>)> {
    let (rest, label) = name.split_at(name.len().checked_sub(16)?);
    let slot = parse_slot_label(label)?;
    let (pair, n) = rest.strip_suffix('-')?.rsplit_once('-')?;
    let digits = n.strip_prefix('p')?;
    let n: usize = digits.parse().ok()?;
    if n.to_string() != digits {
        return None;
    }
    let target = pair.get(n..)?.strip_prefix('-')?;
    Some((pair.get(..n)?.to_string(), target.to_string(), slot))
}

/// Lightsail's rule for resource names.
fn is_lightsail_name(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.len() >= 2
        && s.starts_with(word)
        && s.ends_with(word)
        && s.chars().all(|c| word(c) || c == '-')
}

/// Policy `db` on `prod-web` and `db-prod` on `web` had the same
/// name. Names now differ for every (policy, target, slot), decode back
/// exactly, and keep to Lightsail's name rules.
#[test]
fn names_differ_for_every_policy_target_and_slot() {
    let at = |p: &str, t: &str, s: chrono::DateTime<Utc>| Marker {
        policy: p.into(),
        target: t.into(),
        slot: s,
    };
    assert_ne!(
        snapshot_name(&at("db", "prod-web", slot())),
        snapshot_name(&at("db-prod", "web", slot()))
    );
    assert_eq!(
        snapshot_name(&at("db", "prod-web", slot())),
        "db-prod-web-p2-20240115T120000Z"
    );
    let policies = [
        "db",
        "db-prod",
        "db-",
        "db_",
        "d",
        "db-prod-web",
        "p2",
        "db-p2",
        "a-1",
        "web-p7-x",
    ];
    let targets = [
        "web",
        "prod-web",
        "web-p2",
        "p2-web",
        "web_1",
        "p7-x-web",
        "prod-web-p2",
        "1-web",
        "x-p10",
    ];
    let slots = [slot(), slot() + chrono::Duration::minutes(1)];
    let mut seen = HashMap::new();
    for p in policies {
        for t in targets {
            for s in slots {
                let name = snapshot_name(&at(p, t, s));
                assert!(is_lightsail_name(&name), "{name}");
                assert_eq!(
                    decode(&name),
                    Some((p.to_string(), t.to_string(), s)),
                    "{name}"
                );
                if let Some(other) = seen.insert(name.clone(), (p, t, s)) {
                    panic!("{name} for both {other:?} and {:?}", (p, t, s));
                }
            }
        }
    }
}

/// Ownership rests on the tags, never on the name: snapshots named the
/// old way (`{policy}-{target}-{slot}`) are still ours, and a name of the
/// new form without our tags is not.
#[tokio::test]
async fn snapshots_named_the_old_way_are_still_ours_by_their_tags() {
    let (fake, p) = start().await;
    // The provider names snapshots the new way, not the default way.
    assert_eq!(p.snapshot_name(&marker()), "web-web-1-p3-20240115T120000Z");
    let snap = |name: &str, tags: Value| json!({"name": name, "fromInstanceName": "web-1", "tags": tags, "state": "available", "createdAt": 1705320000.5});
    fake.answer(
        "GetInstanceSnapshots",
        200,
        json!({"instanceSnapshots": [
            snap("web-web-1-20240115T120000Z", our_tags()),
            snap(&snapshot_name(&marker()), our_tags()),
            snap("web-web-1-p3-20240115T120100Z", json!([])),
        ]}),
    );
    let listed = p
        .list(ResourceKind::Instance, "web-1", "web")
        .await
        .expect("list");
    let slot_of = |name: &str| {
        listed
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.marker_slot)
    };
    assert_eq!(slot_of("web-web-1-20240115T120000Z"), Some(slot()));
    assert_eq!(slot_of("web-web-1-p3-20240115T120000Z"), Some(slot()));
    assert_eq!(slot_of("web-web-1-p3-20240115T120100Z"), None);
}

#[tokio::test]
async fn name_collision_is_reconciled_when_ours_and_a_conflict_otherwise() {
    let (fake, p) = start().await;
    let taken =
        json!({"__type": "InvalidInputException", "message": "Some names are already in use"});
    fake.answer("CreateInstanceSnapshot", 400, taken.clone());
    fake.answer("GetInstanceSnapshot", 200, json!({"instanceSnapshot": {"name": "n", "fromInstanceName": "web-1", "tags": our_tags(), "state": "pending"}}));
    let e = p.create(&create_req()).await.expect_err("collision");
    assert_eq!(
        e.kind,
        ErrorKind::Transient,
        "ours: the engine reconciles by listing: {e}"
    );

    fake.answer("CreateInstanceSnapshot", 400, taken.clone());
    fake.answer("GetInstanceSnapshot", 200, json!({"instanceSnapshot": {"name": "n", "fromInstanceName": "web-1", "tags": [], "state": "available"}}));
    assert_eq!(
        p.create(&create_req()).await.map_err(|e| e.kind).err(),
        Some(ErrorKind::Conflict)
    );

    fake.answer("CreateInstanceSnapshot", 400, taken);
    fake.answer(
        "GetInstanceSnapshot",
        400,
        json!({"__type": "NotFoundException", "message": "no"}),
    );
    assert_eq!(
        p.create(&create_req()).await.map_err(|e| e.kind).err(),
        Some(ErrorKind::Conflict)
    );

    fake.answer(
        "CreateInstanceSnapshot",
        400,
        json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
    );
    assert_eq!(
        p.create(&create_req()).await.map_err(|e| e.kind).err(),
        Some(ErrorKind::Throttled)
    );
}

#[tokio::test]
async fn delete_tracks_its_operation_and_treats_not_found_as_gone() {
    let (fake, p) = start().await;
    fake.answer(
        "DeleteDiskSnapshot",
        200,
        json!({"operations": [op("d1", true, "Succeeded")]}),
    );
    assert_eq!(
        p.delete("DiskSnapshot/s1").await.expect("delete"),
        DeleteStarted::Tracking("d1".into())
    );
    assert_eq!(fake.seen("DeleteDiskSnapshot")[0]["diskSnapshotName"], "s1");
    fake.answer(
        "DeleteDiskSnapshot",
        400,
        json!({"__type": "NotFoundException", "message": "gone"}),
    );
    assert_eq!(
        p.delete("DiskSnapshot/s1").await.expect("delete"),
        DeleteStarted::AlreadyGone
    );
    // Confirmed gone once Get*Snapshot says NotFound.
    fake.answer(
        "GetDiskSnapshot",
        400,
        json!({"__type": "NotFoundException", "message": "gone"}),
    );
    let r = OperationRef {
        kind: OpKind::Delete,
        operation: "d1".into(),
        snapshot_id: "DiskSnapshot/s1".into(),
    };
    assert_eq!(p.poll(&[r]).await.expect("poll"), vec![OpStatus::Succeeded]);
    assert_eq!(
        p.delete("s1").await.map_err(|e| e.kind).err(),
        Some(ErrorKind::Permanent)
    );
}

#[tokio::test]
async fn restore_disk_creates_a_new_disk_in_the_source_zone() {
    let (fake, p) = start().await;
    fake.answer("GetDiskSnapshot", 200, json!({"diskSnapshot": {"name": "s1", "fromDiskName": "data-1", "sizeInGb": 32, "state": "completed"}}));
    fake.answer("GetDisk", 200, json!({"disk": {"name": "data-1", "location": {"availabilityZone": "us-east-2b", "regionName": "us-east-2"}}}));
    fake.answer(
        "CreateDiskFromSnapshot",
        200,
        json!({"operations": [op("r1", false, "Started")]}),
    );
    let req = restore_request(
        ResourceKind::Disk,
        "data-1",
        "DiskSnapshot/s1",
        Some("data-1-copy"),
    );
    assert_restores(&p, &req, Some("data-1-copy"), "r1").await;
    let sent = &fake.seen("CreateDiskFromSnapshot")[0];
    assert_eq!(sent["diskName"], "data-1-copy");
    assert_eq!(sent["diskSnapshotName"], "s1");
    assert_eq!(sent["availabilityZone"], "us-east-2b");
    assert_eq!(sent["sizeInGb"], 32);
}

#[tokio::test]
async fn auth_errors_are_auth_and_service_errors_transient() {
    let (fake, p) = start().await;
    fake.answer("GetDiskSnapshots", 400, json!({"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."}));
    assert_eq!(
        p.list(ResourceKind::Disk, "d", "p")
            .await
            .map_err(|e| e.kind)
            .err(),
        Some(ErrorKind::Auth)
    );
    fake.answer(
        "GetDiskSnapshots",
        500,
        json!({"__type": "com.amazonaws.lightsail#ServiceException", "message": "oops"}),
    );
    let e = p.list(ResourceKind::Disk, "d", "p").await.expect_err("5xx");
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (ErrorKind::Transient, Some("ServiceException"))
    );
}

// ------------------------------------------------------- target selection

#[tokio::test]
async fn list_resources_reads_every_page_with_tags() {
    let (fake, p) = start().await;
    fake.answer(
        "GetDisks",
        200,
        json!({"disks": [
            {"name": "data-1", "state": "in-use", "tags": [{"key": "env", "value": "prod"}, {"key": "backup"}]},
            {"name": "data-2", "state": "available", "tags": []},
        ], "nextPageToken": "t1"}),
    );
    fake.answer(
        "GetDisks",
        200,
        json!({"disks": [{"name": "logs-1", "state": "available", "tags": [{"key": "env", "value": "dev"}]}]}),
    );
    let got = p
        .list_resources(ResourceKind::Disk)
        .await
        .unwrap_or_else(|e| panic!("list_resources: {e}"));
    let names: Vec<&str> = got.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["data-1", "data-2", "logs-1"]);
    assert_eq!(got[0].id, "data-1", "a Lightsail target is its name");
    assert_eq!(got[0].tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(got[0].tags.get("backup").map(String::as_str), Some(""));
    assert!(got[1].tags.is_empty());
    let sent = fake.seen("GetDisks");
    assert_eq!(sent.len(), 2);
    assert!(sent[0].get("pageToken").is_none());
    assert_eq!(sent[1]["pageToken"], "t1");
}

#[tokio::test]
async fn list_resources_of_instances_and_refusals() {
    let (fake, p) = start().await;
    fake.answer(
        "GetInstances",
        200,
        json!({"instances": [
            {"name": "web-1", "state": {"code": 16, "name": "running"}, "tags": [{"key": "env", "value": "prod"}]},
            {"name": "old-1", "state": {"code": 48, "name": "terminated"}, "tags": []},
        ]}),
    );
    let got = p
        .list_resources(ResourceKind::Instance)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.len(), 1, "terminated instances are left out: {got:?}");
    assert_eq!(got[0].name, "web-1");

    // A token that comes back again: never a partial answer.
    fake.answer(
        "GetInstances",
        200,
        json!({"instances": [{"name": "a", "tags": []}], "nextPageToken": "same"}),
    );
    fake.answer(
        "GetInstances",
        200,
        json!({"instances": [{"name": "b", "tags": []}], "nextPageToken": "same"}),
    );
    match p.list_resources(ResourceKind::Instance).await {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Transient);
            assert!(e.message.contains("incomplete"), "{e}");
        }
        Ok(v) => panic!("a looping listing must fail, got {v:?}"),
    }
    // A failed page fails the listing.
    fake.answer(
        "GetDisks",
        200,
        json!({"disks": [{"name": "a", "tags": []}], "nextPageToken": "n"}),
    );
    fake.answer(
        "GetDisks",
        400,
        json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
    );
    assert!(p.list_resources(ResourceKind::Disk).await.is_err());
    match p.list_resources(ResourceKind::Volume).await {
        Err(e) => assert_eq!(e.kind, ErrorKind::Permanent),
        Ok(v) => panic!("volume is not a lightsail resource, got {v:?}"),
    }
}

#[tokio::test]
async fn concurrent_lists_share_one_listing_and_later_calls_see_changes() {
    let (fake, p) = start().await;
    let p = Arc::new(p);
    let snap = |name: &str, from: &str| json!({"name": name, "fromDiskName": from, "tags": our_tags(), "isFromAutoSnapshot": false, "state": "available", "createdAt": 1705320000});
    let all: Vec<Value> = (0..40)
        .map(|i| snap(&format!("s{i}"), &format!("disk-{i}")))
        .collect();
    for _ in 0..40 {
        fake.answer("GetDiskSnapshots", 200, json!({"diskSnapshots": all}));
    }
    let mut tasks = Vec::new();
    for i in 0..40 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            p.list(ResourceKind::Disk, &format!("disk-{i}"), "web")
                .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let listed = t.await.expect("join").expect("list");
        assert_eq!(listed.len(), 1, "disk-{i}: {listed:?}");
        assert_eq!(listed[0].name, format!("s{i}"));
    }
    let shared = fake.seen("GetDiskSnapshots").len();
    assert!(
        (1..=3).contains(&shared),
        "40 concurrent lists made {shared} listings"
    );
    // A call made after the listing finished never reuses it: a snapshot
    // created since shows up.
    let mut more = all.clone();
    more.push(snap("new", "disk-0"));
    fake.script.lock().expect("script").clear();
    fake.answer("GetDiskSnapshots", 200, json!({"diskSnapshots": more}));
    let listed = p
        .list(ResourceKind::Disk, "disk-0", "web")
        .await
        .expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(fake.seen("GetDiskSnapshots").len(), shared + 1);
}

// ------------------------------------------------------ against the simulator

/// mark_hold tags the snapshot `snapwarden-hold` = note on the built-in
/// simulator and untags it again: the control view and GetDiskSnapshots
/// show the tag, the other tags stay, and an unknown snapshot is
/// NotFoundException, NotFound.
#[tokio::test]
async fn mark_hold_tags_and_untags_on_the_simulator() {
    let (sim, addr, _stop) = crate::sim::testing::serve_on_loopback(50).await;
    sim.add_lightsail_credentials("AKIDEXAMPLE", "secret");
    sim.seed_lightsail_resource("data-1", true);
    sim.seed_lightsail_snapshot("manual-data-1", "data-1", true, false);
    let settings = LightsailSettings {
        region: "us-east-2".into(),
        credentials: LightsailCredentials::Static {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
        },
        endpoint: Some(format!("http://{addr}/lightsail")),
    };
    let api = ApiClient::new(&HttpSettings {
        requests_per_second: 1000.0,
        request_timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .expect("client");
    let p = Lightsail::new(&settings, api, Duration::from_secs(5), None).expect("provider");
    assert_eq!(p.capabilities().hold_mark, Some("tag snapwarden-hold"));
    let id = "DiskSnapshot/manual-data-1";
    let view_tags = || async {
        let v = crate::providers::tests::sim_view(addr, "/_sim/lightsail/snapshots").await;
        crate::providers::tests::item(&v["snapshots"], "name", "manual-data-1")["tags"].clone()
    };
    let listed_tags = || async {
        let out = p
            .client
            .call("GetDiskSnapshots", |c| c.get_disk_snapshots().send())
            .await
            .expect("GetDiskSnapshots");
        let s = out
            .disk_snapshots()
            .iter()
            .find(|s| s.name() == Some("manual-data-1"))
            .expect("listed")
            .clone();
        ids::tags_of(s.tags())
    };

    // A comma is not a tag character: it becomes `_`.
    p.mark_hold(
        id,
        "manual-data-1",
        Some("held until 2026-12-24T00:00:00Z by ann, legal"),
    )
    .await
    .expect("tag");
    let want = "held until 2026-12-24T00:00:00Z by ann_ legal";
    assert_eq!(view_tags().await, json!([{"key": TAG_HOLD, "value": want}]));
    assert_eq!(
        listed_tags().await,
        vec![(TAG_HOLD.to_string(), want.to_string())]
    );
    // A second hold replaces the value (one value per key), cut to 256.
    p.mark_hold(id, "manual-data-1", Some(&"y".repeat(300)))
        .await
        .expect("tag again");
    assert_eq!(
        listed_tags().await,
        vec![(TAG_HOLD.to_string(), "y".repeat(256))]
    );

    p.mark_hold(id, "manual-data-1", None).await.expect("untag");
    assert_eq!(view_tags().await, json!([]));
    assert!(listed_tags().await.is_empty());

    for note in [Some("x"), None] {
        let e = p
            .mark_hold("DiskSnapshot/no-such-snap", "no-such-snap", note)
            .await
            .expect_err("unknown snapshot");
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert_eq!(e.code.as_deref(), Some("NotFoundException"), "{e}");
    }
    let e = p
        .mark_hold("not-an-id", "x", Some("x"))
        .await
        .expect_err("not our id form");
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
}
