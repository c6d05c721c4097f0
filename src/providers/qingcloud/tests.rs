//! Tests of the QingCloud client: pure mapping rules, and HTTP-level
//! behaviour (signing on the wire, batching, fallback, pagination) against
//! a tiny canned-JSON server on loopback. The server is a fixture, not the
//! simulator: it checks signatures and answers what each test scripts.

use crate::providers::tests::{op_ref, restore_request, ShiftingListing};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::Router;
use chrono::{TimeZone, Utc};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use super::*;
use crate::config::Secret;
use crate::providers::query_api::fake::{self, api, listen, ok, p, reply, Fake, Params, Reply};

const AK: &str = "QYACCESSKEYIDEXAMPLE";
const SK: &str = "SECRETACCESSKEY";

// ---------------------------------------------------------------- pure rules

#[test]
fn marked_needs_exact_prefix_and_slot_label() {
    assert!(is_marked("db-vol-1-20240101T023000Z", "db", "vol-1"));
    // Another target whose id extends ours.
    assert!(!is_marked("db-vol-12-20240101T023000Z", "db", "vol-1"));
    assert!(is_marked("db-vol-12-20240101T023000Z", "db", "vol-12"));
    // Another policy whose name extends ours, or that ours extends.
    assert!(!is_marked("db2-vol-1-20240101T023000Z", "db", "vol-1"));
    assert!(!is_marked("db-vol-1-20240101T023000Z", "d", "b-vol-1"));
    assert!(!is_marked("xdb-vol-1-20240101T023000Z", "db", "vol-1"));
    // Anything but exactly a slot label after the prefix.
    assert!(!is_marked("db-vol-1-20240101T023000Z-copy", "db", "vol-1"));
    assert!(!is_marked("db-vol-1-20240101T023000", "db", "vol-1"));
    assert!(!is_marked("db-vol-1-2024-01-01T02:30:00Z", "db", "vol-1"));
    assert!(!is_marked("db-vol-1-x20240101T023000Z", "db", "vol-1"));
    assert!(!is_marked("db-vol-1-２0240101T023000Z", "db", "vol-1"));
    assert!(!is_marked("db-vol-1-", "db", "vol-1"));
    assert!(!is_marked("", "db", "vol-1"));
    assert!(!is_marked("manual backup", "db", "vol-1"));
    assert!(!is_marked("-vol-1-20240101T023000Z", "", "vol-1"));
}

#[test]
fn marked_matches_what_the_marker_names() {
    let m = Marker {
        policy: "db-nightly".into(),
        target: "vol-df3m8oal".into(),
        slot: Utc
            .with_ymd_and_hms(2024, 1, 1, 2, 30, 0)
            .single()
            .unwrap_or_default(),
    };
    let name = m.default_name();
    assert_eq!(name, "db-nightly-vol-df3m8oal-20240101T023000Z");
    assert!(is_marked(&name, &m.policy, &m.target));
}

#[test]
fn snapshot_states() {
    use SnapshotState::*;
    let cases: &[(Option<&str>, Option<&str>, SnapshotState)] = &[
        (Some("pending"), Some("creating"), Creating),
        (Some("available"), Some(""), Available),
        (Some("suspended"), None, Available),
        (Some("deleted"), None, Gone),
        (Some("ceased"), Some("deleting"), Gone),
        (Some("available"), Some("deleting"), Deleting),
        (Some("pending"), Some("deleting"), Deleting),
        (Some("AVAILABLE"), None, Available),
        (Some("frozen"), None, Creating),
        (None, None, Creating),
    ];
    for (status, transition, want) in cases {
        assert_eq!(
            snapshot_state(*status, *transition),
            *want,
            "{status:?} {transition:?}"
        );
    }
}

fn snap(v: Value) -> Snapshot {
    match serde_json::from_value(v) {
        Ok(s) => s,
        Err(e) => panic!("bad fixture: {e}"),
    }
}

#[test]
fn chains() {
    let full =
        snap(json!({"snapshot_id":"ss-a","snapshot_type":1,"root_id":"ss-a","parent_id":"self"}));
    assert_eq!(
        chain_info(&full),
        Some(ChainInfo {
            full: true,
            root_id: "ss-a".into(),
            parent_id: None
        })
    );
    let inc =
        snap(json!({"snapshot_id":"ss-b","snapshot_type":"0","root_id":"ss-a","parent_id":"ss-a"}));
    assert_eq!(
        chain_info(&inc),
        Some(ChainInfo {
            full: false,
            root_id: "ss-a".into(),
            parent_id: Some("ss-a".into())
        })
    );
    // Full without root_id is its own root; type from parent "self".
    let full2 = snap(json!({"snapshot_id":"ss-c","parent_id":"self"}));
    assert_eq!(
        chain_info(&full2),
        Some(ChainInfo {
            full: true,
            root_id: "ss-c".into(),
            parent_id: None
        })
    );
    // Incremental without a root: its parent stands in for the root.
    let orphan = snap(json!({"snapshot_id":"ss-d","snapshot_type":0,"parent_id":"ss-a"}));
    assert_eq!(
        chain_info(&orphan),
        Some(ChainInfo {
            full: false,
            root_id: "ss-a".into(),
            parent_id: Some("ss-a".into())
        })
    );
    // No parent, or no type at all: left to the listing-wide fail-safe.
    let rootless = snap(json!({"snapshot_id":"ss-f","snapshot_type":0,"root_id":"ss-a"}));
    assert_eq!(chain_info(&rootless), None);
    assert_eq!(chain_info(&snap(json!({"snapshot_id":"ss-e"}))), None);
}

#[test]
fn remote_snapshot_mapping() {
    let s = snap(json!({
        "snapshot_id":"ss-69wldt5b","snapshot_name":"db-vol-df3m8oal-20231231T023000Z",
        "snapshot_type":1,"status":"available","transition_status":"","root_id":"ss-69wldt5b",
        "parent_id":"self","snapshot_time":"2023-12-31T02:30:02Z","create_time":"2023-12-31T02:30:03Z",
        "lastest_snapshot_time":"2024-01-01T02:30:02Z","description":null,"size":10240,
        "resource":{"resource_id":"vol-df3m8oal","resource_name":"db","resource_type":"volume"}
    }));
    let r = remote_snapshot(&s, "db", "vol-df3m8oal");
    assert_eq!(r.id, "ss-69wldt5b");
    assert_eq!(r.size_bytes, Some(10 << 30), "10240 MiB");
    assert!(r.marker_slot.is_some());
    assert_eq!(r.state, SnapshotState::Available);
    assert_eq!(
        r.created_at,
        Utc.with_ymd_and_hms(2023, 12, 31, 2, 30, 3).single()
    );
    assert!(r.chain.is_some_and(|c| c.full));
    // No name at all: not ours.
    let s = snap(json!({"snapshot_id":"ss-x","status":"pending"}));
    let r = remote_snapshot(&s, "db", "vol-df3m8oal");
    assert!(r.marker_slot.is_none());
    assert_eq!(r.name, "");
    assert_eq!(r.size_bytes, None, "no size: unknown, not 0");
}

#[test]
fn job_states() {
    assert_eq!(job_state("j-1", None, Some("pending")), JobState::Running);
    assert_eq!(job_state("j-1", None, Some("working")), JobState::Running);
    assert_eq!(
        job_state("j-1", None, Some("successful")),
        JobState::Successful
    );
    for bad in [
        Some("failed"),
        Some("done with failure"),
        Some("succeeded"),
        Some(""),
        None,
    ] {
        match job_state("j-1", Some("CreateSnapshots"), bad) {
            JobState::Failed(reason) => {
                assert!(reason.contains("j-1 (CreateSnapshots)"), "{reason}");
                assert!(reason.contains(bad.unwrap_or("")), "{reason}");
            }
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
}

fn create_response(v: Value) -> Result<Vec<Created>, ProviderError> {
    created_from_response(snap_any(v))
}

fn snap_any<T: serde::de::DeserializeOwned>(v: Value) -> T {
    match serde_json::from_value(v) {
        Ok(s) => s,
        Err(e) => panic!("bad fixture: {e}"),
    }
}

fn created(s: &str, j: &str) -> Created {
    Created {
        snapshot_id: s.into(),
        operation: j.into(),
    }
}

#[test]
fn create_responses() {
    assert_eq!(
        create_response(json!({"job_id":"j-1","snapshots":["ss-1","ss-2"],"ret_code":0})).ok(),
        Some(vec![created("ss-1", "j-1"), created("ss-2", "j-1")])
    );
    assert_eq!(
        create_response(json!({"job_id":["j-1"],"snapshots":["ss-1"],"ret_code":0})).ok(),
        Some(vec![created("ss-1", "j-1")])
    );
    assert_eq!(
        create_response(json!({"job_id":["j-1","j-2"],"snapshots":["ss-1","ss-2"]})).ok(),
        Some(vec![created("ss-1", "j-1"), created("ss-2", "j-2")])
    );
    for bad in [
        json!({"job_id":"j-1","snapshots":[],"ret_code":0}),
        json!({"job_id":"j-1","ret_code":0}),
        json!({"snapshots":["ss-1"],"ret_code":0}),
        json!({"job_id":["j-1","j-2"],"snapshots":["ss-1","ss-2","ss-3"]}),
    ] {
        match create_response(bad.clone()) {
            Err(e) => assert_eq!(e.kind, ErrorKind::Transient, "{bad}"),
            Ok(c) => panic!("{bad} gave {c:?}"),
        }
    }
}

// ------------------------------------------------------------- fake server

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Checks the query the way QingCloud does: it must be exactly the
/// canonical form followed by `&signature=`, with a valid signature.
async fn handle(State(fake): State<Arc<Fake>>, RawQuery(q): RawQuery) -> Reply {
    let q = q.unwrap_or_default();
    let Some((canonical, sig)) = q.rsplit_once("&signature=") else {
        return reply(200, json!({"ret_code":1100,"message":"no signature"}));
    };
    let pairs: Vec<(String, String)> = canonical
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let params: Params = pairs.iter().cloned().collect();
    let expected = sign::sign("GET", "/iaas/", &pairs, SK);
    if sign::canonical_query(&pairs) != canonical || decode(sig) != expected.signature {
        return reply(
            200,
            json!({"ret_code":1200,"message":format!("signature mismatch for {q} with key {SK}")}),
        );
    }
    for common in [
        "time_stamp",
        "access_key_id",
        "zone",
        "version",
        "signature_method",
        "signature_version",
        "action",
    ] {
        assert!(params.contains_key(common), "missing {common}");
    }
    fake.answer(params)
}

async fn serve(
    respond: impl Fn(&Params) -> (u16, Value) + Send + Sync + 'static,
) -> (QingCloud, Arc<Fake>) {
    let fake = Fake::new("action", respond);
    let app = Router::new()
        .route("/iaas/", get(handle))
        .with_state(fake.clone());
    let addr = listen(app).await;
    let settings = QingCloudSettings {
        zone: "ap2a".into(),
        access_key_id: AK.into(),
        secret_access_key: Secret::new(SK),
        endpoint: format!("http://{addr}/iaas/"),
    };
    (QingCloud::new(&settings, api()), fake)
}

/// The values of `name.1..N`, in index order.
fn list_of(params: &Params, name: &str) -> Vec<String> {
    fake::list_of(params, name, 1)
}

fn req(full: bool) -> CreateRequest {
    let marker = Marker {
        policy: "db".into(),
        target: "vol-df3m8oal".into(),
        slot: Utc
            .with_ymd_and_hms(2024, 1, 1, 2, 30, 0)
            .single()
            .unwrap_or_default(),
    };
    CreateRequest {
        resource: ResourceKind::Volume,
        target: "vol-df3m8oal".into(),
        name: marker.default_name(),
        marker,
        full,
        volume_ids: None,
    }
}

fn pending() -> OpStatus {
    OpStatus::Pending { progress: None }
}

// ------------------------------------------------------------- HTTP tests

#[tokio::test]
async fn create_sends_signed_request_and_reads_ids() {
    let (qc, fake) = serve(|_| {
        ok(json!({"action":"CreateSnapshotsResponse","job_id":"j-aj3b6pjl","snapshots":["ss-qhnolmyt"],"ret_code":0}))
    })
    .await;
    let got = qc.create(&req(true)).await;
    assert_eq!(got.ok(), Some(vec![created("ss-qhnolmyt", "j-aj3b6pjl")]));
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(p(c, "action"), "CreateSnapshots");
    assert_eq!(p(c, "resources.1"), "vol-df3m8oal");
    assert_eq!(p(c, "snapshot_name"), "db-vol-df3m8oal-20240101T023000Z");
    assert_eq!(p(c, "is_full"), "1");
    assert_eq!(p(c, "zone"), "ap2a");
    assert_eq!(p(c, "access_key_id"), AK);
    assert_eq!(p(c, "version"), "1");
    assert_eq!(p(c, "signature_method"), "HmacSHA256");
    assert_eq!(p(c, "signature_version"), "1");
    assert!(wire::parse_time(Some(p(c, "time_stamp"))).is_some());

    let _ = qc.create(&req(false)).await;
    assert_eq!(p(&fake.calls()[1], "is_full"), "0");
}

#[tokio::test]
async fn names_with_spaces_are_signed_as_sent() {
    let (qc, fake) =
        serve(|_| ok(json!({"job_id":["j-1"],"snapshots":["ss-1"],"ret_code":0}))).await;
    let mut r = req(true);
    r.name = "snapd 2024-01-01 00:00 ü+/=".into();
    // A signature mismatch would come back as 1200 (Auth).
    assert_eq!(qc.create(&r).await.ok(), Some(vec![created("ss-1", "j-1")]));
    assert_eq!(
        p(&fake.calls()[0], "snapshot_name"),
        "snapd 2024-01-01 00:00 ü+/="
    );
}

#[tokio::test]
async fn create_errors_are_classified() {
    let (qc, _) = serve(|_| {
        ok(json!({"ret_code":1400,"message":"PermissionDenied, resource [vol-df3m8oal] is [creating], please try later"}))
    })
    .await;
    let e = qc.create(&req(true)).await.err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Busy));
    assert_eq!(e.as_ref().and_then(|e| e.code.clone()), Some("1400".into()));
    assert_eq!(e.map(|e| e.call), Some("CreateSnapshots".into()));

    let (qc, _) = serve(|_| ok(json!({"job_id":"j-1","snapshots":[],"ret_code":0}))).await;
    assert_eq!(
        qc.create(&req(true)).await.err().map(|e| e.kind),
        Some(ErrorKind::Transient)
    );

    let mut bad = req(true);
    bad.resource = ResourceKind::Disk;
    assert_eq!(
        qc.create(&bad).await.err().map(|e| e.kind),
        Some(ErrorKind::Permanent)
    );
}

#[tokio::test]
async fn secret_and_signature_never_reach_the_error() {
    // A server that echoes the request (and the secret) in its 1200 text.
    let (qc, _) = serve(|_| ok(json!({}))).await;
    let wrong = QingCloudSettings {
        zone: "ap2a".into(),
        access_key_id: AK.into(),
        secret_access_key: Secret::new("WRONGSECRET"),
        endpoint: qc_endpoint(&qc),
    };
    let qc2 = QingCloud::new(&wrong, api());
    let e = qc2.delete("ss-1").await.err();
    let Some(e) = e else {
        panic!("expected an error")
    };
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(e.message.contains("[redacted]"), "{}", e.message);
    let text = e.to_string();
    assert!(!text.contains("signature=") || text.contains("[redacted]"));
    // The fake echoes its own key, which this client does not know; the
    // client's own secret must not appear.
    assert!(!text.contains("WRONGSECRET"));
    // The signature part after "&signature=" in the echo was replaced.
    if let Some((_, after)) = e.message.split_once("signature=") {
        assert!(after.starts_with("[redacted]"), "{}", e.message);
    }
}

fn qc_endpoint(qc: &QingCloud) -> String {
    qc.client.endpoint_for_tests()
}

#[tokio::test]
async fn http_level_failures() {
    let (qc, _) = serve(|_| (429, json!({"ret_code":0}))).await;
    let e = qc.delete("ss-1").await.err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Throttled));
    assert_eq!(e.and_then(|e| e.retry_after), Some(Duration::from_secs(7)));

    let (qc, _) = serve(|_| (502, Value::String("<html>bad gateway</html>".into()))).await;
    let e = qc.delete("ss-1").await.err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Transient));
    assert!(e.is_some_and(|e| !e.message.contains("html")));

    let huge = format!("<html>{}</html>", "x".repeat(100_000));
    let (qc, _) = serve(move |_| (200, Value::String(huge.clone()))).await;
    let e = qc.delete("ss-1").await.err();
    let Some(e) = e else {
        panic!("expected an error")
    };
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(
        e.message
            .starts_with("malformed response from DeleteSnapshots: "),
        "{}",
        e.message
    );
    assert!(e.message.len() < 600, "{}", e.message.len());

    let (qc, _) = serve(|_| ok(json!({"ret_code":0,"job_set":"nope"}))).await;
    let e = qc
        .poll(&[op_ref(OpKind::Create, "j-1", "ss-1")])
        .await
        .err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Transient));
    assert!(e.is_some_and(|e| e.message.contains("malformed response from DescribeJobs")));

    let (qc, _) = serve(|_| ok(json!({"ret_code":1300,"message":"request expired"}))).await;
    let e = qc.delete("ss-1").await.err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Transient));
    assert!(e.is_some_and(|e| e.message.contains("host clock")));
}

#[tokio::test]
async fn delete_tracks_job_or_reports_gone() {
    let (qc, fake) = serve(|params| match p(params, "snapshots.1") {
        "ss-gone" => ok(json!({"ret_code":2100,"message":"ResourceNotFound, resource [ss-gone] not found"})),
        "ss-busy" => ok(json!({"ret_code":1400,"message":"PermissionDenied, resource [ss-busy] is [creating], please try later"})),
        "ss-arr" => ok(json!({"ret_code":0,"job_id":["j-arr"]})),
        _ => ok(json!({"action":"DeleteSnapshotsResponse","job_id":"j-vijsvn8h","ret_code":0})),
    })
    .await;
    assert_eq!(
        qc.delete("ss-69wldt5b").await.ok(),
        Some(DeleteStarted::Tracking("j-vijsvn8h".into()))
    );
    assert_eq!(
        qc.delete("ss-arr").await.ok(),
        Some(DeleteStarted::Tracking("j-arr".into()))
    );
    assert_eq!(
        qc.delete("ss-gone").await.ok(),
        Some(DeleteStarted::AlreadyGone)
    );
    assert_eq!(
        qc.delete("ss-busy").await.err().map(|e| e.kind),
        Some(ErrorKind::Busy)
    );
    assert_eq!(fake.actions(), vec!["DeleteSnapshots"; 4]);
    assert_eq!(p(&fake.calls()[0], "snapshots.1"), "ss-69wldt5b");
    assert!(qc.delete("").await.is_err());
    assert_eq!(fake.calls().len(), 4);
}

/// A scripted account: jobs by id and snapshots by id. Unknown ids in a
/// batch poison it with 2100, as QingCloud does.
fn account(
    jobs: Vec<(&str, &str)>,
    snaps: Vec<(&str, &str)>,
) -> impl Fn(&Params) -> (u16, Value) + Send + Sync {
    let jobs: BTreeMap<String, String> = jobs
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
    let snaps: BTreeMap<String, String> = snaps
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
    move |params| match p(params, "action") {
        "DescribeJobs" => {
            assert_eq!(p(params, "limit"), "100");
            let ids = list_of(params, "jobs");
            assert!(ids.len() <= 100);
            if let Some(unknown) = ids.iter().find(|id| !jobs.contains_key(*id)) {
                return ok(
                    json!({"ret_code":2100,"message":format!("ResourceNotFound, resource [{unknown}] not found")}),
                );
            }
            let set: Vec<Value> = ids
                .iter()
                .map(|id| json!({"job_id":id,"status":jobs[id],"job_action":"CreateSnapshots","extra":1}))
                .collect();
            ok(
                json!({"action":"DescribeJobsResponse","ret_code":0,"total_count":set.len(),"job_set":set}),
            )
        }
        "DescribeSnapshots" => {
            assert_eq!(p(params, "verbose"), "0");
            assert_eq!(p(params, "limit"), "100");
            let ids = list_of(params, "snapshots");
            assert!(ids.len() <= 100);
            let set: Vec<Value> = ids
                .iter()
                .filter_map(|id| {
                    snaps
                        .get(id)
                        .map(|st| json!({"snapshot_id":id,"status":st,"snapshot_type":1}))
                })
                .collect();
            ok(json!({"ret_code":0,"total_count":set.len(),"snapshot_set":set}))
        }
        other => panic!("unexpected action {other}"),
    }
}

#[tokio::test]
async fn poll_maps_jobs_and_confirms_only_successful_ones() {
    let (qc, fake) = serve(account(
        vec![
            ("j-ok", "successful"),
            ("j-run", "working"),
            ("j-wait", "pending"),
            ("j-fail", "failed"),
            ("j-part", "done with failure"),
            ("j-odd", "exploded"),
            ("j-del", "successful"),
            ("j-del2", "successful"),
            ("j-gone", "successful"),
            ("j-slow", "successful"),
        ],
        vec![
            ("ss-ok", "available"),
            ("ss-del2", "available"),
            ("ss-slow", "pending"),
            ("ss-gone", "ceased"),
        ],
    ))
    .await;
    let ops = vec![
        op_ref(OpKind::Create, "j-ok", "ss-ok"),
        op_ref(OpKind::Create, "j-run", "ss-run"),
        op_ref(OpKind::Create, "j-wait", "ss-wait"),
        op_ref(OpKind::Create, "j-fail", "ss-fail"),
        op_ref(OpKind::Create, "j-part", "ss-part"),
        op_ref(OpKind::Create, "j-odd", "ss-odd"),
        op_ref(OpKind::Delete, "j-del", "ss-del"), // absent → gone
        op_ref(OpKind::Delete, "j-del2", "ss-del2"), // still there
        op_ref(OpKind::Create, "j-gone", "ss-gone"), // ceased after success
        op_ref(OpKind::Create, "j-slow", "ss-slow"), // job done, snapshot pending
        op_ref(OpKind::Create, "j-ok", "ss-ok"),   // duplicate op
    ];
    let got = match qc.poll(&ops).await {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(got.len(), ops.len());
    assert_eq!(got[0], OpStatus::Succeeded);
    assert_eq!(got[1], pending());
    assert_eq!(got[2], pending());
    for (i, status) in [(3, "failed"), (4, "done with failure"), (5, "exploded")] {
        match &got[i] {
            OpStatus::Failed { reason } => {
                assert!(reason.contains(&ops[i].operation), "{reason}");
                assert!(reason.contains(status), "{reason}");
            }
            other => panic!("op {i}: {other:?}"),
        }
    }
    assert_eq!(got[6], OpStatus::Succeeded);
    assert_eq!(got[7], pending());
    assert!(matches!(got[8], OpStatus::Failed { .. }), "{:?}", got[8]);
    assert_eq!(got[9], pending());
    assert_eq!(got[10], OpStatus::Succeeded);

    // Minimal calls: one DescribeJobs with each job once, one
    // DescribeSnapshots with only the snapshots of successful jobs.
    let calls = fake.calls();
    assert_eq!(fake.actions(), vec!["DescribeJobs", "DescribeSnapshots"]);
    assert_eq!(list_of(&calls[0], "jobs").len(), 10);
    let mut confirmed = list_of(&calls[1], "snapshots");
    confirmed.sort();
    assert_eq!(
        confirmed,
        vec!["ss-del", "ss-del2", "ss-gone", "ss-ok", "ss-slow"]
    );
}

#[tokio::test]
async fn poll_falls_back_when_an_unknown_job_poisons_the_batch() {
    let (qc, fake) = serve(account(
        vec![("j-a", "successful"), ("j-b", "working")],
        vec![("ss-a", "available"), ("ss-expired", "available")],
    ))
    .await;
    let ops = vec![
        op_ref(OpKind::Create, "j-a", "ss-a"),
        op_ref(OpKind::Create, "j-zombie", "ss-z"),
        op_ref(OpKind::Create, "j-b", "ss-b"),
        // A job DescribeJobs forgot (expired while the daemon
        // was down) whose snapshot is good: good, not written off.
        op_ref(OpKind::Create, "j-expired", "ss-expired"),
    ];
    let got = match qc.poll(&ops).await {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(got[0], OpStatus::Succeeded);
    match &got[1] {
        OpStatus::Failed { reason } => assert!(reason.contains("j-zombie"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(got[2], pending());
    assert_eq!(
        got[3],
        OpStatus::Succeeded,
        "an expired job's good snapshot"
    );
    // 1 poisoned batch + 4 single calls + 1 confirmation.
    assert_eq!(
        fake.actions(),
        vec![
            "DescribeJobs",
            "DescribeJobs",
            "DescribeJobs",
            "DescribeJobs",
            "DescribeJobs",
            "DescribeSnapshots"
        ]
    );
}

#[tokio::test]
async fn poll_splits_into_batches_of_100() {
    let names: Vec<(String, String)> = (0..150)
        .map(|i| (format!("j-{i}"), format!("ss-{i}")))
        .collect();
    let jobs: Vec<(&str, &str)> = names
        .iter()
        .map(|(j, _)| (j.as_str(), "successful"))
        .collect();
    let snaps: Vec<(&str, &str)> = names
        .iter()
        .map(|(_, s)| (s.as_str(), "available"))
        .collect();
    let (qc, fake) = serve(account(jobs, snaps)).await;
    let ops: Vec<OperationRef> = names
        .iter()
        .map(|(j, s)| op_ref(OpKind::Create, j, s))
        .collect();
    let got = qc.poll(&ops).await.unwrap_or_default();
    assert_eq!(got, vec![OpStatus::Succeeded; 150]);
    assert_eq!(
        fake.actions(),
        vec![
            "DescribeJobs",
            "DescribeJobs",
            "DescribeSnapshots",
            "DescribeSnapshots"
        ]
    );
}

#[tokio::test]
async fn poll_without_job_id_checks_the_snapshot_itself() {
    let (qc, fake) = serve(account(vec![], vec![("ss-a", "available")])).await;
    let ops = [
        op_ref(OpKind::Create, "", "ss-a"),
        op_ref(OpKind::Delete, " ", "ss-b"),
        op_ref(OpKind::Delete, "", ""),
    ];
    let got = qc.poll(&ops).await.unwrap_or_default();
    assert_eq!(got[0], OpStatus::Succeeded);
    assert_eq!(got[1], OpStatus::Succeeded);
    assert!(matches!(got[2], OpStatus::Failed { .. }), "{:?}", got[2]);
    assert_eq!(fake.actions(), vec!["DescribeSnapshots"]);
}

#[tokio::test]
async fn poll_refuses_a_cut_confirmation() {
    // Job done, but the snapshot lookup says 2 exist and sends 1: the
    // missing one must not be taken as deleted.
    let (qc, _) = serve(|params| match p(params, "action") {
        "DescribeJobs" => ok(json!({"ret_code":0,"total_count":1,
            "job_set":[{"job_id":"j-1","status":"successful"}]})),
        _ => ok(json!({"ret_code":0,"total_count":2,
            "snapshot_set":[{"snapshot_id":"ss-1","status":"available"}]})),
    })
    .await;
    let ops = [
        op_ref(OpKind::Delete, "j-1", "ss-1"),
        op_ref(OpKind::Delete, "j-1", "ss-2"),
    ];
    assert_eq!(
        qc.poll(&ops).await.err().map(|e| e.kind),
        Some(ErrorKind::Transient)
    );
}

#[tokio::test]
async fn poll_of_nothing_makes_no_calls_and_errors_propagate() {
    let (qc, fake) = serve(|_| ok(json!({"ret_code":1200,"message":"auth failed"}))).await;
    assert_eq!(qc.poll(&[]).await.ok(), Some(vec![]));
    assert!(fake.calls().is_empty());
    assert_eq!(
        qc.poll(&[op_ref(OpKind::Create, "j-1", "ss-1")])
            .await
            .err()
            .map(|e| e.kind),
        Some(ErrorKind::Auth)
    );
}

/// `count` snapshots of vol-1; `mutate(call_index, page)` may tamper.
fn lister(
    count: usize,
    mutate: impl Fn(usize, &mut Vec<Value>, &mut usize) + Send + Sync + 'static,
) -> impl Fn(&Params) -> (u16, Value) + Send + Sync {
    let counter = Mutex::new(0usize);
    move |params| {
        assert_eq!(p(params, "action"), "DescribeSnapshots");
        assert_eq!(p(params, "resource_id"), "vol-1");
        assert_eq!(p(params, "verbose"), "0");
        assert_eq!(p(params, "limit"), "100");
        let offset: usize = p(params, "offset").parse().unwrap_or(usize::MAX);
        let all: Vec<Value> = (0..count)
            .map(|i| {
                json!({
                    "snapshot_id": format!("ss-{i:04}"),
                    "snapshot_name": if i % 2 == 0 { format!("db-vol-1-202401{:02}T000000Z", i % 28 + 1) } else { format!("manual {i}") },
                    "snapshot_type": if i % 3 == 0 { json!(1) } else { json!("0") },
                    "root_id": "ss-0000", "parent_id": if i % 3 == 0 { "self" } else { "ss-0000" },
                    "status": "available", "description": null,
                    "create_time": "2024-01-01T00:00:00Z", "unknown_field": [1, 2]
                })
            })
            .collect();
        let mut page: Vec<Value> = all.iter().skip(offset).take(100).cloned().collect();
        let mut total = count;
        let n = {
            let Ok(mut c) = counter.lock() else {
                panic!("lock")
            };
            *c += 1;
            *c - 1
        };
        mutate(n, &mut page, &mut total);
        ok(
            json!({"action":"DescribeSnapshotsResponse","ret_code":0,"total_count":total,"snapshot_set":page}),
        )
    }
}

#[tokio::test]
async fn list_reads_every_page() {
    let (qc, fake) = serve(lister(250, |_, _, _| {})).await;
    let got = match qc.list(ResourceKind::Volume, "vol-1", "db").await {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(got.len(), 250);
    assert_eq!(fake.param("offset"), vec!["0", "99", "198"]);
    assert_eq!(got.iter().filter(|s| s.marker_slot.is_some()).count(), 125);
    assert!(got.iter().all(|s| s.state == SnapshotState::Available));
    assert!(got[0].chain.as_ref().is_some_and(|c| c.full));
    assert!(got[1]
        .chain
        .as_ref()
        .is_some_and(|c| !c.full && c.root_id == "ss-0000"));

    // Other policy: nothing is marked.
    let other = qc
        .list(ResourceKind::Volume, "vol-1", "d")
        .await
        .unwrap_or_default();
    assert_eq!(other.iter().filter(|s| s.marker_slot.is_some()).count(), 0);
}

#[tokio::test]
async fn list_of_nothing_is_one_call() {
    let (qc, fake) = serve(lister(0, |_, _, _| {})).await;
    assert_eq!(
        qc.list(ResourceKind::Volume, "vol-1", "db").await.ok(),
        Some(vec![])
    );
    assert_eq!(fake.calls().len(), 1);
}

async fn assert_incomplete(qc: &QingCloud, want: &str) {
    match qc.list(ResourceKind::Volume, "vol-1", "db").await {
        Ok(got) => panic!("a partial listing was returned ({} items)", got.len()),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Transient);
            assert_eq!(e.call, "DescribeSnapshots");
            assert_eq!(e.message, want);
        }
    }
}

#[tokio::test]
async fn list_refuses_an_empty_page_before_the_end() {
    let (qc, _) = serve(lister(250, |call, page, _| {
        if call == 1 {
            page.clear();
        }
    }))
    .await;
    assert_incomplete(&qc, "listing incomplete: empty page at offset 100 of 250").await;
}

#[tokio::test]
async fn list_refuses_a_changing_total() {
    let (qc, _) = serve(lister(250, |call, _, total| {
        if call == 2 {
            *total = 251;
        }
    }))
    .await;
    assert_incomplete(
        &qc,
        "listing incomplete: total_count changed from 250 to 251 between pages",
    )
    .await;
}

#[tokio::test]
async fn list_refuses_items_shifted_between_pages() {
    // Page 2 repeats the last item of page 1 (a snapshot before it was
    // deleted while another was created): same total, one item unseen.
    let (qc, _) = serve(lister(150, |call, page, _| {
        if call == 1 {
            page.insert(0, json!({"snapshot_id":"ss-0099","status":"available"}));
            page.pop();
        }
    }))
    .await;
    assert_incomplete(
        &qc,
        "listing incomplete: 149 distinct snapshots read, total_count is 150 (items moved between pages)",
    )
    .await;
}

#[tokio::test]
async fn list_without_total_count_is_refused() {
    let (qc, _) = serve(|_| ok(json!({"ret_code":0,"snapshot_set":[]}))).await;
    let e = qc.list(ResourceKind::Volume, "vol-1", "db").await.err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Transient));
    assert_eq!(
        e.map(|e| e.message).as_deref(),
        Some("unexpected response from DescribeSnapshots: no total_count in a listing")
    );
}

#[tokio::test]
async fn each_call_is_signed_fresh() {
    let (qc, fake) = serve(|_| ok(json!({"ret_code":0,"job_id":"j-1"}))).await;
    let _ = qc.delete("ss-1").await;
    let _ = qc.delete("ss-1").await;
    // Both passed the fixture's signature check; time stamps are
    // per-call (equal within the same second, which is fine).
    assert_eq!(fake.calls().len(), 2);
    let kind: &dyn Provider = &qc;
    assert_eq!(kind.kind(), "qingcloud");
    assert_eq!(kind.capabilities().max_status_batch, 100);
}

#[tokio::test]
async fn restore_creates_a_volume_and_is_judged_by_its_job() {
    let (qc, fake) = serve(|params| match p(params, "action") {
        "CreateVolumeFromSnapshot" => ok(json!({
            "action":"CreateVolumeFromSnapshotResponse","ret_code":0,
            "job_id":"j-2m5nvqud","volume_id":"vol-2rtnfux2"
        })),
        _ => ok(json!({"action":"DescribeJobsResponse","ret_code":0,"total_count":1,
            "job_set":[{"job_id":"j-2m5nvqud","job_action":"CreateVolumeFromSnapshot","status":"successful"}]})),
    })
    .await;
    let req = restore_request(
        ResourceKind::Volume,
        "vol-1",
        "ss-qhnolmyt",
        Some("restore-test"),
    );
    let started = qc.restore(&req).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started.resource_id.as_deref(), Some("vol-2rtnfux2"));
    assert_eq!(started.operation, "j-2m5nvqud");
    assert_eq!(p(&fake.calls()[0], "snapshot"), "ss-qhnolmyt");
    assert_eq!(p(&fake.calls()[0], "volume_name"), "restore-test");

    let status = qc
        .poll(&[op_ref(OpKind::Restore, "j-2m5nvqud", "ss-qhnolmyt")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, vec![OpStatus::Succeeded]);
    // The job alone decides: no DescribeSnapshots confirmation.
    assert_eq!(
        fake.actions(),
        vec!["CreateVolumeFromSnapshot", "DescribeJobs"]
    );

    let instance = qc
        .restore(&restore_request(
            ResourceKind::Instance,
            "i-1",
            "ss-1",
            None,
        ))
        .await;
    assert_eq!(instance.err().map(|e| e.kind), Some(ErrorKind::Permanent));
}

// ------------------------------------------------------- target selection

fn volumes_fake(total: usize) -> impl Fn(&Params) -> (u16, Value) + Send + Sync + 'static {
    move |params: &Params| {
        let offset: usize = p(params, "offset").parse().unwrap_or(0);
        let limit: usize = p(params, "limit").parse().unwrap_or(20);
        let set: Vec<Value> = (offset..total.min(offset + limit))
            .map(|i| {
                json!({
                    "volume_id": format!("vol-{i:04}"),
                    "volume_name": format!("web-{i}"),
                    "status": "available",
                    "tags": if i % 2 == 0 {
                        json!([{"tag_id": "tag-1", "tag_key": "env", "tag_name": "prod"}])
                    } else {
                        json!([])
                    },
                })
            })
            .collect();
        ok(json!({"ret_code": 0, "total_count": total, "volume_set": set}))
    }
}

#[tokio::test]
async fn list_resources_reads_every_page_with_tags() {
    let (qc, fake) = serve(volumes_fake(230)).await;
    let got = match qc.list_resources(ResourceKind::Volume).await {
        Ok(g) => g,
        Err(e) => panic!("list_resources: {e}"),
    };
    assert_eq!(got.len(), 230);
    assert_eq!(got[0].id, "vol-0000");
    assert_eq!(got[0].name, "web-0");
    assert_eq!(got[0].tags.get("env").map(String::as_str), Some("prod"));
    assert!(got[1].tags.is_empty());
    let calls = fake.calls();
    assert_eq!(
        calls.len(),
        3,
        "⌈230/100⌉ pages (each later one starts an item early)"
    );
    assert!(calls.iter().all(|c| p(c, "action") == "DescribeVolumes"));
    assert_eq!(
        calls.iter().map(|c| p(c, "offset")).collect::<Vec<_>>(),
        ["0", "99", "198"]
    );
    assert_eq!(
        list_of(&calls[0], "status"),
        ["pending", "available", "in-use", "suspended"]
    );
}

#[tokio::test]
async fn list_resources_of_instances_and_refusals() {
    let (qc, fake) = serve(|params| {
        if p(params, "action") == "DescribeInstances" {
            ok(json!({"ret_code": 0, "total_count": 2, "instance_set": [
                {"instance_id": "i-1", "instance_name": "app", "status": "running", "tags": []},
                {"instance_id": "i-2", "instance_name": "old", "status": "terminated"},
            ]}))
        } else {
            // Says 5, returns 2 and then nothing: never a partial answer.
            let offset = p(params, "offset");
            let set = if offset == "0" {
                json!([{"volume_id": "vol-a"}, {"volume_id": "vol-b"}])
            } else {
                json!([])
            };
            ok(json!({"ret_code": 0, "total_count": 5, "volume_set": set}))
        }
    })
    .await;
    let got = qc
        .list_resources(ResourceKind::Instance)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.len(), 1, "terminated instances are left out: {got:?}");
    assert_eq!((got[0].id.as_str(), got[0].name.as_str()), ("i-1", "app"));
    match qc.list_resources(ResourceKind::Volume).await {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Transient);
            assert_eq!(e.call, "DescribeVolumes");
            assert_eq!(e.message, "listing incomplete: empty page at offset 2 of 5");
        }
        Ok(v) => panic!("a short listing must fail, got {v:?}"),
    }
    match qc.list_resources(ResourceKind::Disk).await {
        Err(e) => assert_eq!(e.kind, ErrorKind::Permanent),
        Ok(v) => panic!("disk is not a qingcloud resource, got {v:?}"),
    }
    assert_eq!(fake.actions().len(), 3);
}

// ------------------------------------------------------------- fuzz entry

#[test]
fn fuzz_entry_reads_answers_of_every_action_without_panicking() {
    let bodies = [
        r#"{"ret_code":0,"total_count":2,"job_set":[{"job_id":"j-1","status":"successful","job_action":"CreateSnapshots"},{"job_id":"j-2","status":"failed"}]}"#,
        r#"{"ret_code":0,"total_count":1,"snapshot_set":[{"snapshot_id":"ss-1","snapshot_name":"daily-vol-fuzz-20240101T000000Z","status":"available","snapshot_type":0,"parent_id":"ss-0"}]}"#,
        r#"{"ret_code":0,"job_id":["j-1","j-2"],"snapshots":["ss-1"],"volume_id":"vol-2"}"#,
        r#"{"ret_code":2100,"message":"not found"}"#,
        r#"{"ret_code":"0","job_set":null,"snapshot_set":[],"total_count":-1}"#,
        r#"[0,"m"]"#,
        "",
        "{",
    ];
    for body in bodies {
        fuzz_parse_response(body.as_bytes());
    }
}

// ------------------------------------------- chains the API half describes

/// What retention (newest 1) keeps of the listing `items` of vol-1, all
/// of them ours and good, as `qc.list` maps them.
async fn kept_by_retain_1(items: Vec<Value>) -> Vec<String> {
    let total = items.len();
    let (qc, _) =
        serve(move |_| ok(json!({"ret_code":0,"total_count":total,"snapshot_set":items.clone()})))
            .await;
    let listed = qc
        .list(ResourceKind::Volume, "vol-1", "db")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    crate::providers::tests::kept_by_retain_1(&listed)
}

/// A full snapshot, the root of its own chain, taken on `day`.
fn full_item(id: &str, day: u32) -> Value {
    chain_item(
        id,
        day,
        json!({"snapshot_type": 1, "root_id": id, "parent_id": "self"}),
    )
}

/// An increment on `parent` in the chain rooted at `root`.
fn increment_item(id: &str, day: u32, root: &str, parent: &str) -> Value {
    chain_item(
        id,
        day,
        json!({"snapshot_type": 0, "root_id": root, "parent_id": parent}),
    )
}

fn chain_item(id: &str, day: u32, chain: Value) -> Value {
    let mut v = json!({
        "snapshot_id": id, "snapshot_name": format!("db-vol-1-202401{day:02}T000000Z"),
        "status": "available", "create_time": format!("2024-01-{day:02}T00:00:00Z"),
        "resource": {"resource_id": "vol-1", "resource_type": "volume"}
    });
    if let (Some(v), Some(c)) = (v.as_object_mut(), chain.as_object()) {
        v.extend(c.clone());
    }
    v
}

#[tokio::test]
async fn an_increment_without_root_id_still_keeps_its_parents() {
    let kept = kept_by_retain_1(vec![
        full_item("ss-f", 1),
        increment_item("ss-i1", 2, "ss-f", "ss-f"),
        chain_item("ss-i2", 3, json!({"snapshot_type":0,"parent_id":"ss-i1"})),
    ])
    .await;
    assert_eq!(kept, ["ss-f", "ss-i1", "ss-i2"]);
}

#[tokio::test]
async fn an_increment_without_root_or_parent_keeps_everything_older() {
    // ss-old is a full snapshot of an earlier chain: with no parent named,
    // the increment may hang on any older point (chains branch after a
    // rollback), so all of them stay.
    let kept = kept_by_retain_1(vec![
        full_item("ss-old", 1),
        full_item("ss-f", 2),
        increment_item("ss-i1", 3, "ss-f", "ss-f"),
        chain_item("ss-i2", 4, json!({"snapshot_type":0})),
    ])
    .await;
    assert_eq!(kept, ["ss-f", "ss-i1", "ss-i2", "ss-old"]);
    // Root known, parent not: the points between are unknown too.
    let kept = kept_by_retain_1(vec![
        full_item("ss-f", 1),
        increment_item("ss-i1", 2, "ss-f", "ss-f"),
        chain_item("ss-i2", 3, json!({"snapshot_type":0,"root_id":"ss-f"})),
    ])
    .await;
    assert_eq!(kept, ["ss-f", "ss-i1", "ss-i2"]);
    // Snapshots newer than the last unknown one keep their own chains.
    let kept = kept_by_retain_1(vec![
        full_item("ss-f", 1),
        chain_item("ss-u", 2, json!({})),
        full_item("ss-g", 3),
        increment_item("ss-g1", 4, "ss-g", "ss-g"),
    ])
    .await;
    assert_eq!(kept, ["ss-g", "ss-g1"]);
}

// ------------------------------------------ a listing that changes under us

#[tokio::test]
async fn list_detects_an_item_skipped_while_the_count_adds_up() {
    // Oldest first, 150 snapshots. Between page 1 and page 2 one snapshot
    // of page 1 is deleted and a new one is created: the total stays 150,
    // 150 distinct ids are read, and without a check ss-0100 (the first of
    // page 2 before the delete) is never seen.
    let ids: Vec<String> = (0..150).map(|i| format!("ss-{i:04}")).collect();
    let state = Mutex::new(ShiftingListing::new(ids, "ss-0010", "ss-0150"));
    let (qc, fake) = serve(move |params| {
        let offset: usize = p(params, "offset").parse().unwrap_or(0);
        let Ok(mut s) = state.lock() else {
            panic!("lock")
        };
        let ids = s.next_call();
        let page: Vec<Value> = ids
            .iter()
            .skip(offset)
            .take(100)
            .map(|id| json!({"snapshot_id": id, "status": "available", "snapshot_type": 1}))
            .collect();
        ok(json!({"ret_code":0,"total_count":ids.len(),"snapshot_set":page}))
    })
    .await;
    match qc.list(ResourceKind::Volume, "vol-1", "db").await {
        Ok(got) => {
            let skipped = !got.iter().any(|s| s.id == "ss-0100");
            panic!(
                "a listing that changed under the reader was returned ({} items, ss-0100 {})",
                got.len(),
                if skipped { "skipped" } else { "present" }
            )
        }
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Transient);
            assert!(e.message.contains("changed while it was read"), "{e}");
        }
    }
    // One call per page, none extra.
    assert_eq!(fake.calls().len(), 2);
}

// ------------------------------------------------------ against the simulator

/// mark_hold sets and clears the description on the built-in simulator:
/// its control view and DescribeSnapshots (through `list`'s call) show it,
/// the name stays, and an unknown snapshot is 2100, NotFound.
#[tokio::test]
async fn mark_hold_sets_and_clears_the_description_on_the_simulator() {
    let (sim, addr, _stop) = crate::sim::testing::serve_on_loopback(50).await;
    sim.add_qingcloud_credentials(AK, SK);
    let id = sim.seed_qingcloud_snapshot("ap2a", "vol-hold0001", "manual-1", None);
    let settings = QingCloudSettings {
        zone: "ap2a".into(),
        access_key_id: AK.into(),
        secret_access_key: Secret::new(SK),
        endpoint: format!("http://{addr}/iaas/"),
    };
    let qc = QingCloud::new(&settings, api());
    assert_eq!(
        qc.capabilities().hold_mark,
        Some("description"),
        "capabilities name the field"
    );
    // DescribeSnapshots as the cloud answers it (the provider's own
    // shapes do not read the description).
    async fn described(qc: &QingCloud, id: &str) -> Value {
        let params = vec![("snapshots.1".to_string(), id.to_string())];
        let r: Value = qc
            .client
            .call("DescribeSnapshots", params)
            .await
            .expect("DescribeSnapshots");
        r["snapshot_set"][0]["description"].clone()
    }
    let view = || crate::providers::tests::sim_view(addr, "/_sim/qingcloud/snapshots");

    let note = "held until 2026-12-24T00:00:00Z by ann: legal";
    qc.mark_hold(&id, "manual-1", Some(note))
        .await
        .expect("set the mark");
    let held = format!("hold: {note}");
    let v = view().await;
    let s = crate::providers::tests::item(&v["snapshots"], "snapshot_id", &id);
    assert_eq!(s["description"], held.as_str(), "{s}");
    assert_eq!(s["snapshot_name"], "manual-1", "the name is kept: {s}");
    assert_eq!(described(&qc, &id).await, held.as_str());

    // A note longer than the cap is cut, never refused.
    let long = "x".repeat(HOLD_NOTE_MAX + 40);
    qc.mark_hold(&id, "manual-1", Some(&long))
        .await
        .expect("long mark");
    let d = described(&qc, &id).await;
    assert_eq!(d.as_str().map(|s| s.chars().count()), Some(HOLD_NOTE_MAX));

    qc.mark_hold(&id, "manual-1", None)
        .await
        .expect("clear the mark");
    let v = view().await;
    let s = crate::providers::tests::item(&v["snapshots"], "snapshot_id", &id);
    assert!(s["description"].is_null(), "{s}");
    assert_eq!(s["snapshot_name"], "manual-1", "{s}");
    assert!(described(&qc, &id).await.is_null());

    // An operator's description stays, first, and comes back whole.
    sim.lock()
        .qingcloud
        .snapshots
        .get_mut(&id)
        .expect("seeded")
        .description = Some("keep: audit".into());
    qc.mark_hold(&id, "manual-1", Some(note))
        .await
        .expect("set");
    assert_eq!(
        described(&qc, &id).await,
        format!("keep: audit | hold: {note}").as_str()
    );
    qc.mark_hold(&id, "manual-1", None).await.expect("clear");
    assert_eq!(described(&qc, &id).await, "keep: audit");

    let e = qc
        .mark_hold("ss-nosuch01", "x", Some(note))
        .await
        .expect_err("unknown snapshot");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert_eq!(e.code.as_deref(), Some("2100"), "{e}");
    assert_eq!(e.call, "ModifySnapshotAttributes");
}
