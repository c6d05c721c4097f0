//! The dialect over HTTP (request ids, session tokens, error statuses) and
//! the operations that list operations and names, copy snapshots, snapshot
//! system disks and restore from automatic snapshots.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::actions::{dispatch, Ctx};
use super::model::{Family, LightsailState, SeedSnapshot};
use super::signature::compute;
use super::{ApiError, REQUEST_ID_HEADER};
use crate::sim::faults::FaultRegistry;
use crate::sim::testing::{serve_on_loopback, texts};
use crate::sim::{DEFAULT_LIGHTSAIL_ACCESS_KEY_ID, DEFAULT_LIGHTSAIL_SECRET};

/// One signed call to `op`: its status, headers and JSON body.
async fn send(
    addr: SocketAddr,
    op: &str,
    body: Value,
    (key, secret, token): (&str, &str, Option<&str>),
) -> (u16, HeaderMap, Value) {
    let body = body.to_string();
    let now = Utc::now();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = HeaderMap::new();
    let host = format!("127.0.0.1:{}", addr.port());
    let mut put = |k: &'static str, v: &str| {
        headers.insert(k, HeaderValue::from_str(v).expect("header value"));
    };
    put("content-type", "application/x-amz-json-1.1");
    put("host", &host);
    put("x-amz-date", &amz_date);
    put("x-amz-target", &format!("Lightsail_20161128.{op}"));
    let mut signed = vec!["content-type", "host", "x-amz-date", "x-amz-target"];
    if let Some(t) = token {
        put("x-amz-security-token", t);
        signed.push("x-amz-security-token");
    }
    let sig = compute(
        key,
        secret,
        "us-east-2",
        now.into(),
        "POST",
        "/lightsail",
        "",
        &headers,
        &signed,
        body.as_bytes(),
    )
    .expect("signable");
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={key}/{}/us-east-2/lightsail/aws4_request, \
         SignedHeaders={}, Signature={sig}",
        now.format("%Y%m%d"),
        signed.join(";")
    );
    headers.insert(
        "authorization",
        HeaderValue::from_str(&auth).expect("header value"),
    );
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/lightsail"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, v)
}

const DEFAULT: (&str, &str, Option<&str>) = (
    DEFAULT_LIGHTSAIL_ACCESS_KEY_ID,
    DEFAULT_LIGHTSAIL_SECRET,
    None,
);

/// The `x-amzn-RequestId` of an answer, checked to be a version-4 UUID.
fn request_id(headers: &HeaderMap) -> String {
    let id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no x-amzn-RequestId in {headers:?}"))
        .to_string();
    let parts: Vec<&str> = id.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
    assert!(
        id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(parts[2].starts_with('4'), "version 4: {id}");
    assert!(parts[3].starts_with(['8', '9', 'a', 'b']), "variant: {id}");
    id
}

/// Answers, errors and refusals before authentication all carry a fresh
/// request id; NotFoundException is HTTP 400 as the API reference lists it.
#[tokio::test]
async fn every_answer_carries_a_request_id_and_not_found_is_400() {
    let (sim, addr, _stop) = serve_on_loopback(20).await;
    sim.seed_lightsail_resource("web-1", false);
    let (status, h1, body) = send(addr, "GetInstances", json!({}), DEFAULT).await;
    assert_eq!(status, 200, "{body}");
    let id1 = request_id(&h1);
    let (status, h2, body) = send(
        addr,
        "GetInstanceSnapshot",
        json!({"instanceSnapshotName": "nope"}),
        DEFAULT,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "NotFoundException", "{body}");
    let id2 = request_id(&h2);
    assert_ne!(id1, id2, "a fresh id per request");
    // Unsigned: refused before any operation, still with an id.
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/lightsail"))
        .header("x-amz-target", "Lightsail_20161128.GetInstances")
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 400);
    request_id(r.headers());
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
}

/// A session token the simulator did not issue for the key is refused as
/// AWS refuses it; long-term keys (every existing test's) take none, and
/// temporary credentials work only with their own token.
#[tokio::test]
async fn a_bogus_session_token_is_an_unrecognized_client() {
    let (sim, addr, _stop) = serve_on_loopback(20).await;
    sim.lock().lightsail.add_session_credentials(
        "ASIASIMTEMP000000001",
        "temp-secret",
        "issued-token",
    );
    let refused = |(status, headers, body): (u16, HeaderMap, Value)| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["__type"], "UnrecognizedClientException", "{body}");
        assert_eq!(
            body["message"],
            "The security token included in the request is invalid."
        );
        request_id(&headers);
    };
    let (key, secret) = (DEFAULT_LIGHTSAIL_ACCESS_KEY_ID, DEFAULT_LIGHTSAIL_SECRET);
    refused(
        send(
            addr,
            "GetInstances",
            json!({}),
            (key, secret, Some("bogus")),
        )
        .await,
    );
    let temp = ("ASIASIMTEMP000000001", "temp-secret");
    refused(
        send(
            addr,
            "GetInstances",
            json!({}),
            (temp.0, temp.1, Some("bogus")),
        )
        .await,
    );
    refused(send(addr, "GetInstances", json!({}), (temp.0, temp.1, None)).await);
    let (status, _, body) = send(
        addr,
        "GetInstances",
        json!({}),
        (temp.0, temp.1, Some("issued-token")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(addr, "GetInstances", json!({}), DEFAULT).await;
    assert_eq!(status, 200, "{body}");
    // The control API issues temporary credentials too.
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/_sim/lightsail/credentials"))
        .json(&json!({"access_key_id": "ASIASIMTEMP000000002",
                      "secret_access_key": "s2", "session_token": "t2"}))
        .send()
        .await
        .expect("sent");
    assert!(r.status().is_success());
    let (status, _, body) = send(
        addr,
        "GetInstances",
        json!({}),
        ("ASIASIMTEMP000000002", "s2", Some("t2")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

// ------------------------------------------------------------ operations

fn state(page: usize) -> LightsailState {
    let mut st = LightsailState::default();
    st.set_page_size(page);
    st.seed_resource(Family::Instance, "web-1", None, None);
    st.seed_resource(Family::Disk, "data-1", None, None);
    st
}

fn seed(
    st: &mut LightsailState,
    name: &str,
    source: &str,
    disk: bool,
    auto: bool,
    at: DateTime<Utc>,
) {
    let seed = SeedSnapshot {
        name: name.into(),
        source: source.into(),
        resource: if disk { "disk" } else { "instance" }.into(),
        tags: Vec::new(),
        auto,
        created_at: Some(at),
    };
    st.seed_snapshot(&seed, at).expect("seeded");
}

fn run(
    st: &mut LightsailState,
    action: &str,
    input: Value,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let mut faults = FaultRegistry::default();
    let mut ctx = Ctx {
        state: st,
        faults: &mut faults,
        duration: Duration::from_millis(100),
        now,
        fault_hit: None,
    };
    let Value::Object(input) = input else {
        panic!("input must be an object");
    };
    dispatch(action, &input, &mut ctx)
}

fn ok(st: &mut LightsailState, action: &str, input: Value, now: DateTime<Utc>) -> Value {
    let shown = input.to_string();
    run(st, action, input, now).unwrap_or_else(|e| panic!("{action} {shown}: {e:?}"))
}

fn err(st: &mut LightsailState, action: &str, input: Value) -> (u16, &'static str) {
    let shown = input.to_string();
    let e = run(st, action, input, Utc::now())
        .err()
        .unwrap_or_else(|| panic!("{action} {shown} should be refused"));
    (e.status.as_u16(), e.type_name)
}

/// Every page of `action` (`key` the list member): the items and how many
/// pages it took.
fn all_pages(
    st: &mut LightsailState,
    action: &str,
    mut input: Map<String, Value>,
    key: &str,
) -> (Vec<Value>, usize) {
    let (mut items, mut pages) = (Vec::new(), 0);
    loop {
        let page = ok(st, action, Value::Object(input.clone()), Utc::now());
        pages += 1;
        items.extend(page[key].as_array().expect("list").iter().cloned());
        match page.get("nextPageToken").and_then(Value::as_str) {
            Some(t) => {
                input.insert("pageToken".into(), json!(t));
            }
            None => return (items, pages),
        }
    }
}

/// GetOperations pages every operation oldest first, none twice, in the
/// model's shape; GetOperationsForResource only the named resource's; an
/// unknown resource or token is refused.
#[test]
fn get_operations_pages_oldest_first_and_per_resource() {
    let mut st = state(2);
    let t0 = Utc::now() - chrono::TimeDelta::minutes(5);
    for i in 0..3 {
        let at = t0 + chrono::TimeDelta::seconds(i);
        ok(
            &mut st,
            "CreateInstanceSnapshot",
            json!({"instanceName": "web-1", "instanceSnapshotName": format!("s-{i}")}),
            at,
        );
    }
    ok(
        &mut st,
        "CreateDiskSnapshot",
        json!({"diskName": "data-1", "diskSnapshotName": "d-0"}),
        t0 + chrono::TimeDelta::seconds(10),
    );
    let (ops, pages) = all_pages(&mut st, "GetOperations", Map::new(), "operations");
    assert_eq!(ops.len(), 8, "two operations per create");
    assert_eq!(pages, 4);
    let created: Vec<f64> = ops
        .iter()
        .map(|o| o["createdAt"].as_f64().expect("createdAt"))
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {created:?}"
    );
    let mut ids: Vec<&str> = ops.iter().map(|o| o["id"].as_str().expect("id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "none twice");
    for o in &ops {
        for key in [
            "id",
            "resourceName",
            "resourceType",
            "createdAt",
            "location",
            "isTerminal",
            "operationDetails",
            "operationType",
            "status",
            "statusChangedAt",
        ] {
            assert!(o.get(key).is_some(), "{key} missing in {o}");
        }
    }

    let mut input = Map::new();
    input.insert("resourceName".into(), json!("web-1"));
    let (web, pages) = all_pages(&mut st, "GetOperationsForResource", input, "operations");
    assert_eq!(texts(&json!(web), "resourceName"), ["web-1"; 3]);
    assert_eq!(
        texts(&json!(web), "operationDetails"),
        ["s-0", "s-1", "s-2"]
    );
    assert_eq!(pages, 2);
    let one = ok(
        &mut st,
        "GetOperationsForResource",
        json!({"resourceName": "d-0"}),
        Utc::now(),
    );
    assert_eq!(texts(&one["operations"], "resourceType"), ["DiskSnapshot"]);
    // A resource with no operations yet still answers (empty).
    st.seed_resource(Family::Disk, "quiet", None, None);
    let none = ok(
        &mut st,
        "GetOperationsForResource",
        json!({"resourceName": "quiet"}),
        Utc::now(),
    );
    assert_eq!(none, json!({"operations": []}));

    assert_eq!(
        err(
            &mut st,
            "GetOperationsForResource",
            json!({"resourceName": "nope"})
        ),
        (400, "NotFoundException")
    );
    assert_eq!(
        err(&mut st, "GetOperationsForResource", json!({})),
        (400, "InvalidInputException")
    );
    assert_eq!(
        err(&mut st, "GetOperations", json!({"pageToken": "garbage"})),
        (400, "InvalidInputException")
    );
    assert_eq!(
        err(&mut st, "GetOperations", json!({"pageToken": 3})),
        (400, "SerializationException")
    );
}

/// GetActiveNames: instances, disks and live snapshots in one name order,
/// paged; a deleted snapshot's name is no longer active.
#[test]
fn get_active_names_pages_every_live_name() {
    let mut st = state(2);
    let t0 = Utc::now() - chrono::TimeDelta::hours(1);
    seed(&mut st, "a-snap", "web-1", false, false, t0);
    seed(&mut st, "z-snap", "data-1", true, false, t0);
    seed(&mut st, "gone-snap", "data-1", true, false, t0);
    st.mark_gone("gone-snap", Utc::now() - chrono::TimeDelta::seconds(5));
    let (names, pages) = all_pages(&mut st, "GetActiveNames", Map::new(), "activeNames");
    let names: Vec<&str> = names.iter().map(|n| n.as_str().expect("name")).collect();
    assert_eq!(names, ["a-snap", "data-1", "web-1", "z-snap"]);
    assert_eq!(pages, 2, "no empty last page");
    assert_eq!(
        err(&mut st, "GetActiveNames", json!({"pageToken": "x"})),
        (400, "InvalidInputException")
    );
}

/// CreateDiskSnapshot with instanceName snapshots the instance's system
/// disk: a DiskSnapshot naming fromInstanceName, operations on the
/// snapshot and the instance; a disk can then be restored from it.
#[test]
fn create_disk_snapshot_of_an_instance_system_disk() {
    let mut st = state(10);
    let t0 = Utc::now() - chrono::TimeDelta::minutes(1);
    let r = ok(
        &mut st,
        "CreateDiskSnapshot",
        json!({"instanceName": "web-1", "diskSnapshotName": "web-1-sys"}),
        t0,
    );
    assert_eq!(
        texts(&r["operations"], "resourceType"),
        ["DiskSnapshot", "Instance"]
    );
    assert_eq!(
        texts(&r["operations"], "operationType"),
        ["CreateDiskSnapshot"; 2]
    );
    assert_eq!(
        r["operations"][1]["location"]["availabilityZone"],
        "us-east-2a"
    );
    let s = ok(
        &mut st,
        "GetDiskSnapshot",
        json!({"diskSnapshotName": "web-1-sys"}),
        Utc::now(),
    );
    let s = &s["diskSnapshot"];
    assert_eq!(s["fromInstanceName"], "web-1", "{s}");
    assert!(
        s["fromInstanceArn"]
            .as_str()
            .is_some_and(|a| a.contains(":Instance/")),
        "{s}"
    );
    assert!(s.get("fromDiskName").is_none(), "{s}");
    assert_eq!(s["state"], "completed");
    ok(
        &mut st,
        "CreateDiskFromSnapshot",
        json!({"diskName": "restored", "availabilityZone": "us-east-2a", "sizeInGb": 8,
              "diskSnapshotName": "web-1-sys"}),
        Utc::now(),
    );
    let cases = [
        json!({"instanceName": "web-1", "diskName": "data-1", "diskSnapshotName": "x1"}),
        json!({"diskSnapshotName": "x1"}),
        json!({"instanceName": 7, "diskSnapshotName": "x1"}),
        json!({"instanceName": "nope", "diskSnapshotName": "x1"}),
    ];
    let want = [
        (400, "InvalidInputException"),
        (400, "InvalidInputException"),
        (400, "SerializationException"),
        (400, "NotFoundException"),
    ];
    for (input, want) in cases.into_iter().zip(want) {
        let shown = input.to_string();
        assert_eq!(err(&mut st, "CreateDiskSnapshot", input), want, "{shown}");
    }
}

/// CreateDiskFromSnapshot from an automatic snapshot: sourceDiskName with
/// useLatestRestorableAutoSnapshot takes the newest, with restoreDate that
/// day's; none there is NotFoundException; mixed parameters are refused.
#[test]
fn create_disk_from_an_automatic_snapshot() {
    let mut st = state(10);
    let day1 = Utc::now() - chrono::TimeDelta::days(2);
    let day2 = Utc::now() - chrono::TimeDelta::days(1);
    seed(&mut st, "auto-1", "data-1", true, true, day1);
    seed(&mut st, "auto-2", "data-1", true, true, day2);
    seed(
        &mut st,
        "manual",
        "data-1",
        true,
        false,
        Utc::now() - chrono::TimeDelta::hours(1),
    );
    let base = json!({"availabilityZone": "us-east-2a", "sizeInGb": 8, "sourceDiskName": "data-1"});
    let with = |extra: Value| {
        let mut v = base.clone();
        if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        v
    };
    let r = ok(
        &mut st,
        "CreateDiskFromSnapshot",
        with(json!({"diskName": "r-latest", "useLatestRestorableAutoSnapshot": true})),
        Utc::now(),
    );
    assert_eq!(r["operations"][0]["operationDetails"], "auto-2", "{r}");
    let date = day1.format("%Y-%m-%d").to_string();
    let r = ok(
        &mut st,
        "CreateDiskFromSnapshot",
        with(json!({"diskName": "r-date", "restoreDate": date})),
        Utc::now(),
    );
    assert_eq!(r["operations"][0]["operationDetails"], "auto-1", "{r}");

    let cases = [
        (
            with(json!({"diskName": "x1", "restoreDate": "2001-01-01"})),
            (400, "NotFoundException"),
        ),
        (
            with(
                json!({"diskName": "x1", "sourceDiskName": "nope", "useLatestRestorableAutoSnapshot": true}),
            ),
            (400, "NotFoundException"),
        ),
        (
            with(json!({"diskName": "x1"})),
            (400, "InvalidInputException"),
        ),
        (
            with(
                json!({"diskName": "x1", "restoreDate": date, "useLatestRestorableAutoSnapshot": true}),
            ),
            (400, "InvalidInputException"),
        ),
        (
            with(json!({"diskName": "x1", "restoreDate": "yesterday"})),
            (400, "InvalidInputException"),
        ),
        (
            with(
                json!({"diskName": "x1", "diskSnapshotName": "manual", "useLatestRestorableAutoSnapshot": true}),
            ),
            (400, "InvalidInputException"),
        ),
        (
            with(json!({"diskName": "x1", "useLatestRestorableAutoSnapshot": "yes"})),
            (400, "SerializationException"),
        ),
    ];
    for (input, want) in cases {
        let shown = input.to_string();
        assert_eq!(
            err(&mut st, "CreateDiskFromSnapshot", input),
            want,
            "{shown}"
        );
    }
    // No automatic snapshot at all: the same NotFoundException.
    st.seed_resource(Family::Disk, "bare", None, None);
    assert_eq!(
        err(
            &mut st,
            "CreateDiskFromSnapshot",
            with(
                json!({"diskName": "x2", "sourceDiskName": "bare", "useLatestRestorableAutoSnapshot": true})
            )
        ),
        (400, "NotFoundException")
    );
}

/// CopySnapshot within the simulated region: a manual snapshot by name or
/// an automatic one by resource and date/latest, one CopySnapshot
/// operation as AWS's examples show; the copy lists as a manual snapshot
/// of the same source (isFromAutoSnapshot for a copied automatic one).
#[test]
fn copy_snapshot_within_the_region() {
    let mut st = state(10);
    let t0 = Utc::now() - chrono::TimeDelta::days(1);
    seed(&mut st, "web-1-manual", "web-1", false, false, t0);
    seed(&mut st, "web-1-auto", "web-1", false, true, t0);
    seed(&mut st, "data-1-manual", "data-1", true, false, t0);
    let now = Utc::now();
    let r = ok(
        &mut st,
        "CopySnapshot",
        json!({"sourceSnapshotName": "web-1-manual", "targetSnapshotName": "web-1-copy",
                      "sourceRegion": "us-east-2"}),
        now,
    );
    let ops = r["operations"].as_array().expect("operations");
    assert_eq!(ops.len(), 1, "{r}");
    let op = &ops[0];
    assert_eq!(op["resourceName"], "web-1-copy");
    assert_eq!(op["resourceType"], "InstanceSnapshot");
    assert_eq!(op["operationType"], "CopySnapshot");
    assert_eq!(op["operationDetails"], "us-east-2:web-1-manual");
    assert_eq!(
        op["location"],
        json!({"availabilityZone": "all", "regionName": "us-east-2"})
    );
    assert_eq!(op["status"], "Started");
    let later = now + chrono::TimeDelta::seconds(1);
    let got = ok(
        &mut st,
        "GetInstanceSnapshot",
        json!({"instanceSnapshotName": "web-1-copy"}),
        later,
    );
    assert_eq!(got["instanceSnapshot"]["fromInstanceName"], "web-1");
    assert_eq!(got["instanceSnapshot"]["state"], "available");
    assert_eq!(got["instanceSnapshot"]["isFromAutoSnapshot"], false);
    let op = ok(
        &mut st,
        "GetOperation",
        json!({"operationId": ops[0]["id"]}),
        later,
    );
    assert_eq!(op["operation"]["status"], "Succeeded");

    let r = ok(
        &mut st,
        "CopySnapshot",
        json!({"sourceResourceName": "web-1", "useLatestRestorableAutoSnapshot": true,
                      "targetSnapshotName": "kept-auto", "sourceRegion": "us-east-2"}),
        now,
    );
    assert_eq!(r["operations"][0]["operationDetails"], "us-east-2:web-1");
    let got = ok(
        &mut st,
        "GetInstanceSnapshot",
        json!({"instanceSnapshotName": "kept-auto"}),
        later,
    );
    assert_eq!(got["instanceSnapshot"]["isFromAutoSnapshot"], true);
    let r = ok(
        &mut st,
        "CopySnapshot",
        json!({"sourceSnapshotName": "data-1-manual", "targetSnapshotName": "data-1-copy",
                      "sourceRegion": "us-east-2"}),
        now,
    );
    assert_eq!(r["operations"][0]["resourceType"], "DiskSnapshot");
    let got = ok(
        &mut st,
        "GetDiskSnapshot",
        json!({"diskSnapshotName": "data-1-copy"}),
        later,
    );
    assert_eq!(got["diskSnapshot"]["fromDiskName"], "data-1");

    let cases = [
        (
            json!({"sourceSnapshotName": "web-1-manual", "targetSnapshotName": "c1", "sourceRegion": "us-west-2"}),
            (400, "NotFoundException"),
        ),
        (
            json!({"sourceSnapshotName": "nope", "targetSnapshotName": "c1", "sourceRegion": "us-east-2"}),
            (400, "NotFoundException"),
        ),
        (
            json!({"sourceResourceName": "nope", "useLatestRestorableAutoSnapshot": true, "targetSnapshotName": "c1", "sourceRegion": "us-east-2"}),
            (400, "NotFoundException"),
        ),
        (
            json!({"sourceResourceName": "data-1", "useLatestRestorableAutoSnapshot": true, "targetSnapshotName": "c1", "sourceRegion": "us-east-2"}),
            (400, "NotFoundException"),
        ),
        (
            json!({"sourceSnapshotName": "web-1-manual", "targetSnapshotName": "web-1-copy", "sourceRegion": "us-east-2"}),
            (400, "InvalidInputException"),
        ),
        (
            json!({"sourceSnapshotName": "web-1-manual", "targetSnapshotName": "c1", "sourceRegion": "mars-1"}),
            (400, "InvalidInputException"),
        ),
        (
            json!({"sourceSnapshotName": "web-1-manual", "targetSnapshotName": "c1"}),
            (400, "InvalidInputException"),
        ),
        (
            json!({"sourceSnapshotName": "web-1-manual", "sourceRegion": "us-east-2"}),
            (400, "InvalidInputException"),
        ),
        (
            json!({"sourceSnapshotName": "web-1-manual", "sourceResourceName": "web-1", "targetSnapshotName": "c1", "sourceRegion": "us-east-2"}),
            (400, "InvalidInputException"),
        ),
        (
            json!({"sourceResourceName": "web-1", "targetSnapshotName": "c1", "sourceRegion": "us-east-2"}),
            (400, "InvalidInputException"),
        ),
        (
            json!({"sourceSnapshotName": "web-1-manual", "restoreDate": "2020-01-01", "targetSnapshotName": "c1", "sourceRegion": "us-east-2"}),
            (400, "InvalidInputException"),
        ),
    ];
    for (input, want) in cases {
        let shown = input.to_string();
        assert_eq!(err(&mut st, "CopySnapshot", input), want, "{shown}");
    }
}
