//! Tests of the UCloudStack client: naming and marking rules, status
//! mapping, and HTTP-level behaviour (form POST, signature, batching,
//! pagination, error mapping) against a tiny canned-JSON server on
//! loopback. The server is a fixture, not the simulator.

use crate::providers::tests::assert_not_selectable;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use chrono::{TimeZone, Utc};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use super::*;
use crate::config::Secret;
use crate::providers::query_api::fake::{self, api, listen, ok, p, reply, Fake, Params, Reply};

const PUB: &str = "UCSPUBLICKEY";
const PRIV: &str = "ucs-private-key";

fn slot(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, h, 30, 0)
        .single()
        .unwrap_or_default()
}

fn marker(policy: &str, target: &str, h: u32) -> Marker {
    Marker {
        policy: policy.into(),
        target: target.into(),
        slot: slot(h),
    }
}

fn info(v: Value) -> SnapshotInfo {
    match serde_json::from_value(v) {
        Ok(s) => s,
        Err(e) => panic!("bad fixture: {e}"),
    }
}

// ---------------------------------------------------------------- pure rules

#[test]
fn names_fit_30_characters_and_are_unique_per_slot() {
    let long_policy = "p".repeat(40);
    let names = [
        snapshot_name(&marker("db", "disk-1", 2)),
        snapshot_name(&marker("db", "disk-1", 3)),
        snapshot_name(&marker("db", "disk-2", 2)),
        snapshot_name(&marker("db2", "disk-1", 2)),
        snapshot_name(&marker(
            &long_policy,
            "disk-with-a-very-long-id-0123456789",
            2,
        )),
    ];
    for n in &names {
        assert_eq!(n.chars().count(), MAX_NAME_CHARS, "{n}");
        assert!(n.starts_with(NAME_PREFIX), "{n}");
    }
    let distinct: HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len());
    // Deterministic.
    assert_eq!(names[0], snapshot_name(&marker("db", "disk-1", 2)));
    assert!(names[0].ends_with("-20240101T023000Z"), "{}", names[0]);
}

#[test]
fn remarks_fit_100_characters() {
    let m = marker("db", "disk-1", 2);
    assert_eq!(
        remark(&m),
        "snapwarden policy=db target=disk-1 slot=20240101T023000Z"
    );
    let long = marker(&"p".repeat(40), &"d".repeat(64), 2);
    let r = remark(&long);
    assert!(r.chars().count() <= MAX_REMARK_CHARS, "{r}");
    assert!(r.starts_with("snapwarden ref="), "{r}");
    assert_eq!(remark_slot(&r, &long.policy, &long.target), Some(slot(2)));
    assert_eq!(remark_slot(&r, &long.policy, "other"), None);
}

#[test]
fn marker_needs_type_remark_and_name_to_agree() {
    let m = marker("db", "disk-1", 2);
    let ours = |t: Value, name: &str, rem: &str| {
        let i = info(
            json!({"SnapshotID":"snap-1","Name":name,"Remark":rem,"Type":t,"SnapshotStatus":"Normal"}),
        );
        marker_slot(&i, "db", "disk-1")
    };
    let (name, rem) = (snapshot_name(&m), remark(&m));
    assert_eq!(ours(json!("Automatic"), &name, &rem), Some(slot(2)));
    // Older deployments: no Type at all.
    assert_eq!(ours(Value::Null, &name, &rem), Some(slot(2)));
    // A manual snapshot that copies our name and Remark is not ours.
    assert_eq!(ours(json!("Manual"), &name, &rem), None);
    assert_eq!(ours(json!("automatic"), &name, &rem), None);
    // Our name without our Remark, or a Remark for another slot/target/policy.
    assert_eq!(ours(json!("Automatic"), &name, ""), None);
    assert_eq!(
        ours(
            json!("Automatic"),
            &name,
            &remark(&marker("db", "disk-1", 3))
        ),
        None
    );
    assert_eq!(
        ours(
            json!("Automatic"),
            &name,
            &remark(&marker("db", "disk-12", 2))
        ),
        None
    );
    assert_eq!(
        ours(
            json!("Automatic"),
            &name,
            &remark(&marker("d", "disk-1", 2))
        ),
        None
    );
    // Our Remark on a name that is not the one we give that slot.
    assert_eq!(ours(json!("Automatic"), "my-own-name", &rem), None);
    // Remark tampering: extra words, duplicated keys.
    assert_eq!(ours(json!("Automatic"), &name, &format!("{rem} x=y")), None);
    assert_eq!(
        ours(
            json!("Automatic"),
            &name,
            &format!("{rem} slot=20240101T023000Z")
        ),
        None
    );
    assert_eq!(
        ours(
            json!("Automatic"),
            &name,
            &rem.replace("snapwarden", "snapwardenx")
        ),
        None
    );
}

#[test]
fn status_mapping() {
    use SnapshotState::*;
    let cases: &[(&str, SnapshotState)] = &[
        ("Createing", Creating),
        ("Normal", Available),
        ("RollBacking", Available),
        ("Failure", Failed),
        ("Failed", Failed),
        ("Released", Gone),
        ("Deleting", Gone),
        ("Deleted", Gone),
        ("Exploded", Creating),
        ("", Creating),
    ];
    for (status, want) in cases {
        let r = remote_snapshot(
            &info(json!({"SnapshotID":"snap-1","SnapshotStatus":status,"DiskID":"disk-1"})),
            "db",
            "disk-1",
        );
        assert_eq!(r.state, *want, "{status}");
        assert_eq!(r.source, "disk-1");
        assert!(r.marker_slot.is_none());
        assert_eq!(r.size_bytes, None, "no SnapshotSize: unknown, not 0");
    }
    let sized = remote_snapshot(
        &info(json!({"SnapshotID":"snap-1","SnapshotStatus":"Normal","SnapshotSize":"40"})),
        "db",
        "disk-1",
    );
    assert_eq!(sized.size_bytes, Some(40 << 30));
    let op = |kind| OperationRef {
        kind,
        operation: "snap-1".into(),
        snapshot_id: "snap-1".into(),
    };
    let with = |s: &str| info(json!({"SnapshotID":"snap-1","SnapshotStatus":s}));
    let pending = OpStatus::Pending { progress: None };
    // (kind, SnapshotStatus, expected): the listed answers with one status.
    let listed = [
        (OpKind::Create, "Createing", pending.clone()),
        (OpKind::Create, "Normal", OpStatus::Succeeded),
        (OpKind::Create, "Brand-new", pending.clone()),
        (OpKind::Delete, "Released", OpStatus::Succeeded),
        (OpKind::Delete, "Normal", pending.clone()),
        (OpKind::Restore, "RollBacking", pending.clone()),
        (OpKind::Restore, "Normal", OpStatus::Succeeded),
    ];
    for (kind, status, want) in listed {
        assert_eq!(
            op_status(&op(kind), Some(&with(status))),
            want,
            "{kind:?} {status}"
        );
    }
    for bad in ["Failure", "Failed", "Released", "Deleted"] {
        assert!(
            matches!(op_status(&op(OpKind::Create), Some(&with(bad))), OpStatus::Failed { ref reason } if reason.contains(bad)),
            "{bad}"
        );
    }
    assert!(matches!(
        op_status(&op(OpKind::Create), None),
        OpStatus::Failed { .. }
    ));
    assert_eq!(op_status(&op(OpKind::Delete), None), OpStatus::Succeeded);
    assert!(matches!(
        op_status(&op(OpKind::Restore), None),
        OpStatus::Failed { .. }
    ));
}

// ------------------------------------------------------------- fake server

fn decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Checks the form POST the way UCloudStack does (171 on a bad signature).
async fn handle(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Reply {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    assert!(form, "not a form POST");
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut params = Params::new();
    for kv in text.split('&') {
        if let Some((k, v)) = kv.split_once('=') {
            params.insert(decode(k), decode(v));
        }
    }
    let Some(sig) = params.remove("Signature") else {
        return reply(200, json!({"RetCode":170,"Message":"missing signature"}));
    };
    let pairs: Vec<(String, String)> = params.clone().into_iter().collect();
    if sign::signature(&pairs, PRIV) != sig {
        return reply(
            200,
            json!({"RetCode":171,"Message":format!("登录签名验证失败 {sig}")}),
        );
    }
    for common in ["Action", "PublicKey", "Region", "Zone"] {
        assert!(params.contains_key(common), "missing {common}");
    }
    fake.answer(params)
}

fn settings(endpoint: String, key: &str) -> UCloudStackSettings {
    UCloudStackSettings {
        endpoint,
        region: "cn".into(),
        zone: "zone-01".into(),
        public_key: PUB.into(),
        private_key: Secret::new(key),
        project_id: None,
        company_id: None,
        member_id: None,
    }
}

async fn serve_with(
    respond: impl Fn(&Params) -> (u16, Value) + Send + Sync + 'static,
    tweak: impl FnOnce(&mut UCloudStackSettings),
) -> (UCloudStack, Arc<Fake>) {
    let fake = Fake::new("Action", respond);
    let app = Router::new()
        .route("/api", post(handle))
        .with_state(fake.clone());
    let addr = listen(app).await;
    let mut s = settings(format!("http://{addr}/api"), PRIV);
    tweak(&mut s);
    (UCloudStack::new(&s, api()), fake)
}

async fn serve(
    respond: impl Fn(&Params) -> (u16, Value) + Send + Sync + 'static,
) -> (UCloudStack, Arc<Fake>) {
    serve_with(respond, |_| {}).await
}

/// The values of `name.0..N`, in index order.
fn list_of(params: &Params, name: &str) -> Vec<String> {
    fake::list_of(params, name, 0)
}

fn create_req() -> CreateRequest {
    let m = marker("db", "disk-3f9kq2", 2);
    CreateRequest {
        resource: ResourceKind::Disk,
        target: "disk-3f9kq2".into(),
        name: snapshot_name(&m),
        marker: m,
        full: true,
        volume_ids: None,
    }
}

fn op(kind: OpKind, id: &str) -> OperationRef {
    OperationRef {
        kind,
        operation: id.into(),
        snapshot_id: id.into(),
    }
}

// ------------------------------------------------------------- HTTP tests

#[tokio::test]
async fn create_sends_type_automatic_and_the_remark() {
    let (ucs, fake) = serve(|_| {
        ok(json!({"Action":"CreateSnapshotResponse","RetCode":0,"Message":"","SnapshotID":"snap-8d2kxm"}))
    })
    .await;
    let got = ucs.create(&create_req()).await;
    assert_eq!(
        got.ok(),
        Some(vec![Created {
            snapshot_id: "snap-8d2kxm".into(),
            operation: "snap-8d2kxm".into()
        }])
    );
    let c = &fake.calls()[0];
    assert_eq!(p(c, "Action"), "CreateSnapshot");
    assert_eq!(p(c, "DiskID"), "disk-3f9kq2");
    assert_eq!(p(c, "Type"), "Automatic");
    assert_eq!(p(c, "Region"), "cn");
    assert_eq!(p(c, "Zone"), "zone-01");
    assert_eq!(p(c, "PublicKey"), PUB);
    assert_eq!(p(c, "Name"), snapshot_name(&marker("db", "disk-3f9kq2", 2)));
    assert_eq!(
        p(c, "Remark"),
        "snapwarden policy=db target=disk-3f9kq2 slot=20240101T023000Z"
    );
    for absent in ["ProjectID", "CompanyID", "MemberID"] {
        assert!(!c.contains_key(absent), "{absent} sent without config");
    }

    // Optional keys only when configured; ProjectID only on create.
    let (ucs, fake) = serve_with(
        |params| match p(params, "Action") {
            "CreateSnapshot" => ok(json!({"RetCode":0,"SnapshotID":"snap-1"})),
            _ => ok(json!({"RetCode":0,"TotalCount":0,"Infos":[]})),
        },
        |s| {
            s.project_id = Some("proj-1".into());
            s.company_id = Some(7);
            s.member_id = Some(9);
        },
    )
    .await;
    assert!(ucs.create(&create_req()).await.is_ok());
    assert!(ucs.poll(&[op(OpKind::Create, "snap-1")]).await.is_ok());
    let calls = fake.calls();
    assert_eq!(p(&calls[0], "ProjectID"), "proj-1");
    assert_eq!(p(&calls[0], "CompanyID"), "7");
    assert_eq!(p(&calls[0], "MemberID"), "9");
    assert!(!calls[1].contains_key("ProjectID"));
    assert_eq!(p(&calls[1], "CompanyID"), "7");

    let mut bad = create_req();
    bad.resource = ResourceKind::Volume;
    assert_eq!(
        ucs.create(&bad).await.err().map(|e| e.kind),
        Some(ErrorKind::Permanent)
    );
    let mut long = create_req();
    long.name = "x".repeat(31);
    assert_eq!(
        ucs.create(&long).await.err().map(|e| e.kind),
        Some(ErrorKind::Permanent)
    );
    assert_eq!(fake.calls().len(), 2, "invalid requests make no call");
}

#[tokio::test]
async fn ret_codes_become_typed_errors() {
    for (code, kind) in [
        (2502, ErrorKind::Busy),
        (165, ErrorKind::Throttled),
        (2500, ErrorKind::Quota),
        (2201, ErrorKind::NotFound),
        (130, ErrorKind::Transient),
        (240, ErrorKind::Auth),
    ] {
        let (ucs, _) = serve(move |_| {
            ok(json!({"Action":"CreateSnapshotResponse","RetCode":code,"Message":"m"}))
        })
        .await;
        let e = ucs.create(&create_req()).await.err();
        assert_eq!(e.as_ref().map(|e| e.kind), Some(kind), "{code}");
        assert_eq!(e.and_then(|e| e.code), Some(code.to_string()));
    }
    let (ucs, _) = serve(|_| ok(json!({"RetCode":0}))).await;
    assert_eq!(
        ucs.create(&create_req()).await.err().map(|e| e.kind),
        Some(ErrorKind::Transient)
    );
    let (ucs, _) = serve(|_| (503, Value::String("<html>down</html>".into()))).await;
    let e = ucs.create(&create_req()).await.err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Transient));
    assert!(e.is_some_and(|e| !e.message.contains("html")));
    let (ucs, _) = serve(|_| ok(Value::String("{\"RetCode\":0,".into()))).await;
    assert_eq!(
        ucs.create(&create_req()).await.err().map(|e| e.kind),
        Some(ErrorKind::Transient)
    );
}

#[tokio::test]
async fn wrong_private_key_is_a_clear_auth_error_without_secrets() {
    let (ucs, _) = serve(|_| ok(json!({"RetCode":0}))).await;
    let endpoint = match &ucs.client_endpoint() {
        Some(e) => e.clone(),
        None => panic!("endpoint"),
    };
    let wrong = UCloudStack::new(&settings(endpoint, "WRONG-PRIVATE-KEY"), api());
    let Some(e) = wrong.delete("snap-1").await.err() else {
        panic!("expected an error")
    };
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.code.as_deref(), Some("171"));
    assert!(e.message.contains("private_key"), "{}", e.message);
    // The fixture echoes the signature: scrubbed.
    assert!(e.message.contains("[redacted]"), "{}", e.message);
    assert!(!e.to_string().contains("WRONG-PRIVATE-KEY"));
}

/// A scripted account: snapshots by id with their status and type.
/// (id, SnapshotStatus, Type): an automatic snapshot done, one in
/// progress, one failed and one released.
fn automatic_in_each_state() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("snap-ok", "Normal", "Automatic"),
        ("snap-run", "Createing", "Automatic"),
        ("snap-bad", "Failure", "Automatic"),
        ("snap-rel", "Released", "Automatic"),
    ]
}

fn account(snaps: Vec<(&str, &str, &str)>) -> impl Fn(&Params) -> (u16, Value) + Send + Sync {
    let snaps: BTreeMap<String, (String, String)> = snaps
        .into_iter()
        .map(|(id, st, ty)| (id.into(), (st.into(), ty.into())))
        .collect();
    move |params| match p(params, "Action") {
        "DescribeSnapshot" => {
            assert_eq!(p(params, "Limit"), "100");
            let ids = list_of(params, "SnapshotIDs");
            assert!(ids.len() <= 100);
            let infos: Vec<Value> = ids
                .iter()
                .filter_map(|id| {
                    snaps.get(id).map(|(st, ty)| {
                        json!({"SnapshotID":id,"SnapshotStatus":st,"Type":ty,"DiskID":"disk-1"})
                    })
                })
                .collect();
            ok(json!({"RetCode":0,"TotalCount":infos.len(),"Infos":infos}))
        }
        "DeleteSnapshot" => ok(json!({"Action":"DeleteSnapshotResponse","RetCode":0,"Message":""})),
        other => panic!("unexpected action {other}"),
    }
}

#[tokio::test]
async fn poll_is_one_batched_describe() {
    let (ucs, fake) = serve(account(automatic_in_each_state())).await;
    let ops = vec![
        op(OpKind::Create, "snap-ok"),
        op(OpKind::Create, "snap-run"),
        op(OpKind::Create, "snap-bad"),
        op(OpKind::Delete, "snap-rel"),
        op(OpKind::Delete, "snap-absent"),
        op(OpKind::Create, "snap-ok"),
    ];
    let got = ucs.poll(&ops).await.unwrap_or_default();
    assert_eq!(got.len(), ops.len());
    assert_eq!(got[0], OpStatus::Succeeded);
    assert_eq!(got[1], OpStatus::Pending { progress: None });
    assert!(matches!(got[2], OpStatus::Failed { .. }));
    assert_eq!(got[3], OpStatus::Succeeded);
    assert_eq!(got[4], OpStatus::Succeeded);
    assert_eq!(got[5], OpStatus::Succeeded);
    let calls = fake.calls();
    assert_eq!(fake.actions(), vec!["DescribeSnapshot"]);
    assert_eq!(list_of(&calls[0], "SnapshotIDs").len(), 5, "each id once");
    assert!(!calls[0].contains_key("DiskID"));

    assert_eq!(ucs.poll(&[]).await.ok(), Some(vec![]));
    assert_eq!(fake.calls().len(), 1, "no call for no ops");
}

#[tokio::test]
async fn poll_splits_into_calls_of_100_and_follows_offset() {
    let ids: Vec<String> = (0..150).map(|i| format!("snap-{i:03}")).collect();
    let snaps: Vec<(&str, &str, &str)> = ids
        .iter()
        .map(|i| (i.as_str(), "Normal", "Automatic"))
        .collect();
    let (ucs, fake) = serve(account(snaps)).await;
    let ops: Vec<OperationRef> = ids.iter().map(|i| op(OpKind::Create, i)).collect();
    assert_eq!(
        ucs.poll(&ops).await.unwrap_or_default(),
        vec![OpStatus::Succeeded; 150]
    );
    assert_eq!(fake.actions(), vec!["DescribeSnapshot"; 2]);

    // A server that sends 10 per page despite Limit=100.
    let (ucs, fake) = serve(|params| {
        let ids = list_of(params, "SnapshotIDs");
        let offset: usize = p(params, "Offset").parse().unwrap_or(usize::MAX);
        let page: Vec<Value> = ids
            .iter()
            .skip(offset)
            .take(10)
            .map(|id| json!({"SnapshotID":id,"SnapshotStatus":"Normal"}))
            .collect();
        ok(json!({"RetCode":0,"TotalCount":ids.len(),"Infos":page}))
    })
    .await;
    let ops: Vec<OperationRef> = ids.iter().take(25).map(|i| op(OpKind::Create, i)).collect();
    assert_eq!(
        ucs.poll(&ops).await.unwrap_or_default(),
        vec![OpStatus::Succeeded; 25]
    );
    assert_eq!(fake.param("Offset"), vec!["0", "10", "20"]);
}

/// `count` snapshots of disk-1: even ones ours, odd ones manual lookalikes.
fn lister(count: usize) -> impl Fn(&Params) -> (u16, Value) + Send + Sync {
    move |params| {
        assert_eq!(p(params, "Action"), "DescribeSnapshot");
        assert_eq!(p(params, "DiskID"), "disk-1");
        assert_eq!(p(params, "Limit"), "100");
        let offset: usize = p(params, "Offset").parse().unwrap_or(usize::MAX);
        let all: Vec<Value> = (0..count)
            .map(|i| {
                let m = Marker {
                    policy: "db".into(),
                    target: "disk-1".into(),
                    slot: slot(0) + chrono::Duration::hours(i as i64),
                };
                json!({
                    "SnapshotID": format!("snap-{i:04}"),
                    "Name": snapshot_name(&m),
                    "Remark": remark(&m),
                    "Type": if i % 2 == 0 { "Automatic" } else { "Manual" },
                    "SnapshotStatus": "Normal",
                    "DiskID": "disk-1",
                    "CreateTime": 1_704_067_200 + i as i64 * 3600,
                })
            })
            .collect();
        let page: Vec<Value> = all.iter().skip(offset).take(100).cloned().collect();
        ok(json!({"RetCode":0,"TotalCount":count,"Infos":page}))
    }
}

#[tokio::test]
async fn list_reads_every_page_and_marks_only_automatic_ones() {
    let (ucs, fake) = serve(lister(250)).await;
    let got = match ucs.list(ResourceKind::Disk, "disk-1", "db").await {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(got.len(), 250);
    assert_eq!(fake.param("Offset"), vec!["0", "99", "198"]);
    assert_eq!(got.iter().filter(|s| s.marker_slot.is_some()).count(), 125);
    assert!(got
        .iter()
        .filter(|s| s.marker_slot.is_some())
        .all(|s| s.id.ends_with(['0', '2', '4', '6', '8'])));
    assert_eq!(
        got[1].created_at.map(|t| t.timestamp()),
        Some(1_704_070_800)
    );
    // Other policy: nothing is ours.
    let other = ucs
        .list(ResourceKind::Disk, "disk-1", "d")
        .await
        .unwrap_or_default();
    assert_eq!(other.iter().filter(|s| s.marker_slot.is_some()).count(), 0);

    let (ucs, fake) = serve(lister(0)).await;
    assert_eq!(
        ucs.list(ResourceKind::Disk, "disk-1", "db").await.ok(),
        Some(vec![])
    );
    assert_eq!(fake.calls().len(), 1);

    let (ucs, _) = serve(|_| ok(json!({"RetCode":0,"TotalCount":5,"Infos":[]}))).await;
    let e = ucs.list(ResourceKind::Disk, "disk-1", "db").await.err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Transient));
    assert_eq!(
        e.map(|e| e.message).as_deref(),
        Some("listing incomplete: empty page at Offset 0 of 5")
    );
}

#[tokio::test]
async fn delete_only_normal_automatic_snapshots() {
    let mut snaps = automatic_in_each_state();
    snaps.push(("snap-man", "Normal", "Manual"));
    let (ucs, fake) = serve(account(snaps)).await;
    assert_eq!(
        ucs.delete("snap-ok").await.ok(),
        Some(DeleteStarted::Tracking("snap-ok".into()))
    );
    assert_eq!(
        ucs.delete("snap-run").await.err().map(|e| e.kind),
        Some(ErrorKind::Busy)
    );
    assert_eq!(
        ucs.delete("snap-man").await.err().map(|e| e.kind),
        Some(ErrorKind::Permanent)
    );
    assert_eq!(
        ucs.delete("snap-rel").await.ok(),
        Some(DeleteStarted::AlreadyGone)
    );
    assert_eq!(
        ucs.delete("snap-gone").await.ok(),
        Some(DeleteStarted::AlreadyGone)
    );
    assert_eq!(
        ucs.delete("snap-bad").await.err().map(|e| e.kind),
        Some(ErrorKind::Permanent)
    );
    assert!(ucs.delete(" ").await.is_err());
    let deletes: Vec<Params> = fake
        .calls()
        .into_iter()
        .filter(|c| p(c, "Action") == "DeleteSnapshot")
        .collect();
    assert_eq!(deletes.len(), 1, "only the Normal automatic snapshot");
    assert_eq!(p(&deletes[0], "SnapshotID"), "snap-ok");

    // Not found on delete (gone between lookup and call): already gone.
    let (ucs, _) = serve(|params| match p(params, "Action") {
        "DescribeSnapshot" => ok(json!({"RetCode":0,"TotalCount":1,"Infos":[{"SnapshotID":"snap-1","SnapshotStatus":"Normal","Type":"Automatic"}]})),
        _ => ok(json!({"RetCode":8102,"Message":"资源不存在或已销毁"})),
    })
    .await;
    assert_eq!(
        ucs.delete("snap-1").await.ok(),
        Some(DeleteStarted::AlreadyGone)
    );
}

#[tokio::test]
async fn restore_rolls_back_in_place() {
    let (ucs, fake) = serve(|params| match p(params, "Action") {
        "RollbackSnapshot" if p(params, "DiskID") == "disk-running" => ok(json!({
            "Action":"RollbackSnapshotResponse","RetCode":2501,"Message":"虚拟机未关机"
        })),
        "RollbackSnapshot" => ok(json!({"Action":"RollbackSnapshotResponse","RetCode":0,"Message":""})),
        _ => ok(json!({"RetCode":0,"TotalCount":1,"Infos":[{"SnapshotID":"snap-1","SnapshotStatus":"RollBacking"}]})),
    })
    .await;
    let req = |disk: &str| RestoreRequest {
        resource: ResourceKind::Disk,
        target: disk.into(),
        snapshot_id: "snap-1".into(),
        new_name: None,
    };
    let started = ucs
        .restore(&req("disk-1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started.resource_id, None);
    assert_eq!(started.operation, "snap-1");
    let c = &fake.calls()[0];
    assert_eq!(p(c, "Action"), "RollbackSnapshot");
    assert_eq!(p(c, "DiskID"), "disk-1");
    assert_eq!(p(c, "SnapshotID"), "snap-1");
    let status = ucs
        .poll(&[op(OpKind::Restore, "snap-1")])
        .await
        .unwrap_or_default();
    assert_eq!(status, vec![OpStatus::Pending { progress: None }]);

    let Some(e) = ucs.restore(&req("disk-running")).await.err() else {
        panic!("expected 2501")
    };
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("VM powered off"), "{}", e.message);
    assert_eq!(
        crate::domain::Cloud::UCloudStack.capabilities().restore,
        crate::domain::RestoreMode::InPlace
    );
}

// ------------------------------------------------------- target selection

/// `count` disks by DescribeDisk pages; disk 1 is being released, disk 2
/// is being snapshotted and disk 3 rolled back (both still targets).
fn disks(count: usize) -> impl Fn(&Params) -> (u16, Value) + Send + Sync {
    move |params| {
        assert_eq!(p(params, "Action"), "DescribeDisk");
        assert_eq!(p(params, "Limit"), "100");
        let offset: usize = p(params, "Offset").parse().unwrap_or(usize::MAX);
        let page: Vec<Value> = (0..count)
            .skip(offset)
            .take(100)
            .map(|i| {
                json!({
                    "DiskID": format!("disk-{i:04}"),
                    "Name": format!("data-{i}"),
                    "DiskStatus": match i {
                        1 => "Releasing",
                        2 => "Snapshoting",
                        3 => "Rollbacking",
                        _ => "Bound",
                    },
                })
            })
            .collect();
        // TotalCount as a string, as the docs' example has it.
        ok(json!({"RetCode":0,"TotalCount":count.to_string(),"Infos":page}))
    }
}

#[tokio::test]
async fn list_resources_reads_every_disk_page() {
    let (ucs, fake) = serve(disks(230)).await;
    let got = ucs
        .list_resources(ResourceKind::Disk)
        .await
        .unwrap_or_else(|e| panic!("list_resources: {e}"));
    assert_eq!(got.len(), 229, "the disk being released is left out");
    assert_eq!(
        (got[0].id.as_str(), got[0].name.as_str()),
        ("disk-0000", "data-0")
    );
    assert!(got.iter().all(|r| r.tags.is_empty() && r.id != "disk-0001"));
    assert!(
        ["disk-0002", "disk-0003"]
            .iter()
            .all(|id| got.iter().any(|r| r.id == *id)),
        "a disk being snapshotted or rolled back is still a target"
    );
    assert_eq!(fake.param("Offset"), vec!["0", "99", "198"]);
}

#[tokio::test]
async fn list_resources_refuses_a_count_mismatch() {
    // TotalCount says 150; the second page (which starts, as asked, at
    // the first one's last disk) repeats the first one's disks.
    let (ucs, _) = serve(|params| {
        let first = p(params, "Offset") == "0";
        let page: Vec<Value> = (if first { 0..100 } else { 99..100 })
            .chain(0..if first { 0 } else { 50 })
            .map(|i| json!({"DiskID": format!("disk-{i}"), "Name": "d", "DiskStatus": "Bound"}))
            .collect();
        ok(json!({"RetCode":0,"TotalCount":150,"Infos":page}))
    })
    .await;
    match ucs.list_resources(ResourceKind::Disk).await {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Transient);
            assert_eq!(e.call, "DescribeDisk");
            assert_eq!(
                e.message,
                "listing incomplete: 100 distinct disks read, TotalCount is 150"
            );
        }
        Ok(v) => panic!("a listing with repeats must fail, got {} disks", v.len()),
    }
    // A TotalCount that changes between pages.
    let (ucs, _) = serve(|params| {
        let first = p(params, "Offset") == "0";
        let page: Vec<Value> = (0..if first { 100 } else { 1 })
            .map(|i| json!({"DiskID": format!("disk-{i}-{first}"), "Name": "d"}))
            .collect();
        ok(json!({"RetCode":0,"TotalCount":if first { 101 } else { 102 },"Infos":page}))
    })
    .await;
    let e = ucs.list_resources(ResourceKind::Disk).await.err();
    assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Transient));
    assert_eq!(
        e.map(|e| e.message).as_deref(),
        Some("listing incomplete: TotalCount changed from 101 to 102 between pages")
    );
    assert_not_selectable(&ucs, ResourceKind::Instance).await;
}

// ------------------------------------------------------------- fuzz entry

#[test]
fn fuzz_entry_reads_answers_of_every_action_without_panicking() {
    let bodies = [
        r#"{"RetCode":0,"TotalCount":2,"Infos":[{"SnapshotID":"snap-1","SnapshotStatus":"Normal","Type":"Automatic","Remark":"snapwarden policy=daily target=disk-fuzz slot=20240101T000000Z"},{"SnapshotID":"snap-2","SnapshotStatus":"Exploded"}]}"#,
        r#"{"RetCode":0,"SnapshotID":" snap-3 "}"#,
        r#"{"RetCode":8102,"Message":"gone"}"#,
        r#"{"RetCode":"0","Infos":null,"TotalCount":"x"}"#,
        r#"[0,"m"]"#,
        "",
        "{",
    ];
    for body in bodies {
        fuzz_parse_response(body.as_bytes());
    }
}

// ------------------------------------------------------ against the simulator

/// mark_hold on the built-in simulator: the Remark keeps snapwarden's
/// marker first and the hold after it (so `list` still knows the snapshot
/// as ours), the name stays, clearing gives the marker back exactly, and
/// an unknown snapshot is NotFound.
#[tokio::test]
async fn mark_hold_keeps_the_marker_in_the_remark_on_the_simulator() {
    use crate::sim::{DEFAULT_UCLOUDSTACK_PRIVATE_KEY, DEFAULT_UCLOUDSTACK_PUBLIC_KEY};
    let (sim, addr, _stop) = crate::sim::testing::serve_on_loopback(20).await;
    sim.seed_ucloudstack_disk("cn", "zone-01", "disk-3f9kq2", "db-data");
    let mut s = settings(
        format!("http://{addr}/ucloudstack/api"),
        DEFAULT_UCLOUDSTACK_PRIVATE_KEY,
    );
    s.public_key = DEFAULT_UCLOUDSTACK_PUBLIC_KEY.into();
    let ucs = UCloudStack::new(&s, api());
    assert_eq!(ucs.capabilities().hold_mark, Some("Remark"));
    let req = create_req();
    let created = ucs.create(&req).await.expect("create");
    let id = created[0].snapshot_id.clone();
    let marker = remark(&req.marker);
    let view = || async {
        let v = crate::providers::tests::sim_view(addr, "/_sim/ucloudstack/snapshots").await;
        crate::providers::tests::item(&v["snapshots"], "snapshot_id", &id).clone()
    };
    let ours = || async {
        let listed = ucs
            .list(ResourceKind::Disk, "disk-3f9kq2", "db")
            .await
            .expect("list");
        listed
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.marker_slot)
    };

    let note = "held until 2026-12-24T00:00:00Z by ann: legal";
    ucs.mark_hold(&id, &req.name, Some(note))
        .await
        .expect("set");
    let v = view().await;
    let want = format!("{marker} | hold: {note}");
    let want: String = want.chars().take(MAX_REMARK_CHARS).collect();
    assert_eq!(v["remark"], want.as_str(), "{v}");
    assert!(
        want.starts_with(&format!("{marker} | hold: held until")),
        "{want}"
    );
    assert_eq!(v["name"], req.name.as_str(), "the name is kept: {v}");
    assert_eq!(ours().await, Some(req.marker.slot), "still ours while held");
    // DescribeSnapshot answers the same Remark.
    let described = ucs
        .describe_by_ids(std::slice::from_ref(&id))
        .await
        .expect("describe");
    assert_eq!(described[&id].remark.as_deref(), Some(want.as_str()));

    // A URL is broken up: the API refuses `http://` in a Remark.
    ucs.mark_hold(&id, &req.name, Some("see https://t/1"))
        .await
        .expect("set a URL");
    assert_eq!(
        view().await["remark"],
        format!("{marker} | hold: see https: //t/1").as_str()
    );

    ucs.mark_hold(&id, &req.name, None).await.expect("clear");
    let v = view().await;
    assert_eq!(v["remark"], marker.as_str(), "{v}");
    assert_eq!(v["name"], req.name.as_str(), "{v}");
    assert_eq!(ours().await, Some(req.marker.slot));

    let e = ucs
        .mark_hold("snap-nosuch", "x", Some(note))
        .await
        .expect_err("unknown snapshot");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}
