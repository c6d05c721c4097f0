//! The simulator over real loopback HTTP, as a client sees it: a server on
//! `127.0.0.1:0`, reqwest, signed QingCloud calls and the control API.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use super::qingcloud::testing::signed_query;
use super::testing::{serve_on_loopback, texts};
use super::{Simulator, DEFAULT_QINGCLOUD_ACCESS_KEY_ID, DEFAULT_QINGCLOUD_SECRET};

const ZONE: &str = "pek3a";
const JOB_MS: u64 = 250;

struct Harness {
    sim: Simulator,
    base: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Harness {
    let (sim, addr, stop) = serve_on_loopback(JOB_MS).await;
    Harness {
        sim,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

/// A GET query for `action` in `zone`, signed now with the default key.
fn signed_get(path: &str, action: &str, zone: &str, extra: &[(&str, &str)]) -> String {
    signed_query(
        "GET",
        path,
        DEFAULT_QINGCLOUD_ACCESS_KEY_ID,
        DEFAULT_QINGCLOUD_SECRET,
        &now_stamp(),
        action,
        zone,
        extra,
    )
}

/// A request's JSON answer, whatever its status.
async fn json_of(resp: reqwest::Result<reqwest::Response>) -> Value {
    resp.expect("answer").json().await.expect("JSON")
}

/// Sends `req`; the answer's status and JSON body.
async fn status_and_json(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("answer");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON answer"))
}

fn now_stamp() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Harness {
    async fn raw(
        &self,
        method: &str,
        secret: &str,
        time_stamp: &str,
        action: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        let query = signed_query(
            method,
            "/iaas/",
            DEFAULT_QINGCLOUD_ACCESS_KEY_ID,
            secret,
            time_stamp,
            action,
            ZONE,
            extra,
        );
        let url = format!("{}/iaas/", self.base);
        if method == "POST" {
            self.client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(query)
                .send()
                .await
        } else {
            self.client.get(format!("{url}?{query}")).send().await
        }
    }

    /// A GET signed now with the default secret.
    async fn signed_now(
        &self,
        action: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        self.raw("GET", DEFAULT_QINGCLOUD_SECRET, &now_stamp(), action, extra)
            .await
    }

    /// A correctly signed GET; the JSON answer.
    async fn call(&self, action: &str, extra: &[(&str, &str)]) -> Value {
        let resp = self.signed_now(action, extra).await.expect("answer");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("JSON answer")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET of `path` (with its query), answered with JSON whatever the status.
    async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.1
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("answer")
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        status_and_json(self.client.get(self.url(path))).await
    }

    /// Adds the fault `spec` (JSON) through the control API.
    async fn fault(&self, spec: &str) -> (u16, Value) {
        self.post("/_sim/faults", spec).await
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        status_and_json(req).await
    }

    async fn create(&self, volume: &str, is_full: &str) -> (String, String) {
        let r = self
            .call(
                "CreateSnapshots",
                &[
                    ("resources.1", volume),
                    ("snapshot_name", "nightly"),
                    ("is_full", is_full),
                ],
            )
            .await;
        assert_eq!(r["ret_code"], 0, "{r}");
        let job = r["job_id"].as_str().expect("job id string").to_string();
        let ss = r["snapshots"][0].as_str().expect("snapshot id").to_string();
        (job, ss)
    }

    async fn snapshot(&self, id: &str) -> Value {
        let r = self.call("DescribeSnapshots", &[("snapshots.1", id)]).await;
        r["snapshot_set"][0].clone()
    }

    async fn job_status(&self, id: &str) -> String {
        let r = self.call("DescribeJobs", &[("jobs.1", id)]).await;
        r["job_set"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn wait_jobs() {
    tokio::time::sleep(Duration::from_millis(JOB_MS + 50)).await;
}

#[tokio::test]
async fn authentication_errors() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-a", "db");
    let ok = h.call("DescribeVolumes", &[]).await;
    assert_eq!(ok["ret_code"], 0);
    assert_eq!(ok["action"], "DescribeVolumesResponse");
    assert_eq!(ok["volume_set"][0]["volume_id"], "vol-a");

    let bad = json_of(
        h.raw("GET", "wrong-secret", &now_stamp(), "DescribeVolumes", &[])
            .await,
    )
    .await;
    assert_eq!(bad["ret_code"], 1200, "{bad}");
    assert!(bad["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("AuthFailure")));

    let stale = json_of(
        h.raw(
            "GET",
            DEFAULT_QINGCLOUD_SECRET,
            "2020-01-01T00:00:00Z",
            "DescribeVolumes",
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(stale["ret_code"], 1300, "{stale}");

    let later = (Utc::now() + chrono::TimeDelta::minutes(20))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let with_expires = json_of(
        h.raw(
            "GET",
            DEFAULT_QINGCLOUD_SECRET,
            "2020-01-01T00:00:00Z",
            "DescribeVolumes",
            &[("expires", &later)],
        )
        .await,
    )
    .await;
    assert_eq!(with_expires["ret_code"], 0, "{with_expires}");

    let unknown = h.call("RebootTheCloud", &[]).await;
    assert_eq!(unknown["ret_code"], 1101);

    // POST signs with "POST"; the same body sent as GET would not verify.
    let post = json_of(
        h.raw(
            "POST",
            DEFAULT_QINGCLOUD_SECRET,
            &now_stamp(),
            "DescribeVolumes",
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(post["ret_code"], 0, "{post}");

    let missing = h.get_json("/iaas/?action=DescribeVolumes&zone=pek3a").await;
    assert_eq!(missing["ret_code"], 1100, "{missing}");

    // A space sent as '+' decodes to the same string that was signed.
    let query = signed_get(
        "/iaas/",
        "DescribeSnapshots",
        ZONE,
        &[("search_word", "a b")],
    )
    .replace("a%20b", "a+b");
    let plus: Value = h.get_json(&format!("/iaas/?{query}")).await;
    assert_eq!(plus["ret_code"], 0, "{plus}");

    let (_, log) = h.get("/_sim/requests?dialect=qingcloud").await;
    let requests = log["requests"].as_array().expect("array");
    assert_eq!(requests.len(), 8);
    assert!(requests
        .iter()
        .all(|r| r["params"].get("signature").is_none()));
    assert_eq!(requests[1]["ret_code"], 1200);

    // The counters agree with the journal, per action, and clear with it.
    let (_, counted) = h.get("/_sim/counters").await;
    assert_eq!(counted["total"], 8, "{counted}");
    let per_action: u64 = counted["counters"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["dialect"] == "qingcloud" && c["action"] == "DescribeSnapshots")
        .filter_map(|c| c["requests"].as_u64())
        .sum();
    let journaled = requests
        .iter()
        .filter(|r| r["action"] == "DescribeSnapshots")
        .count() as u64;
    assert_eq!(per_action, journaled);
    h.delete("/_sim/requests").await;
    let (_, counted) = h.get("/_sim/counters").await;
    assert_eq!(counted["total"], 0, "{counted}");
}

#[tokio::test]
async fn create_runs_its_job_to_available() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-a", "db");
    let (job, ss) = h.create("vol-a", "1").await;
    assert!(
        job.starts_with("j-") && (10..=14).contains(&job.len()),
        "{job}"
    );
    assert!(ss.starts_with("ss-") && ss.len() == 11, "{ss}");

    let s = h.snapshot(&ss).await;
    assert_eq!(s["status"], "pending");
    assert_eq!(s["transition_status"], "creating");
    assert_eq!(s["is_taken"], 0);
    // Pending for the first quarter of the duration, then working.
    let early = h.job_status(&job).await;
    assert!(early == "pending" || early == "working", "{early}");

    // A second create while the first is pending is refused as busy.
    let busy = h.call("CreateSnapshots", &[("resources.1", "vol-a")]).await;
    assert_eq!(busy["ret_code"], 1400);
    assert_eq!(
        busy["message"],
        "PermissionDenied, resource [vol-a] is [creating], please try later"
    );
    // A pending snapshot cannot be deleted either.
    let del = h.call("DeleteSnapshots", &[("snapshots.1", &ss)]).await;
    assert_eq!(del["ret_code"], 1400);

    wait_jobs().await;
    assert_eq!(h.job_status(&job).await, "successful");
    let s = h.snapshot(&ss).await;
    assert_eq!(s["status"], "available");
    assert_eq!(s["transition_status"], "");
    assert_eq!(s["is_taken"], 1);
    assert_eq!(s["is_head"], 1);
    assert_eq!(s["snapshot_type"], 1);
    assert_eq!(s["parent_id"], "self");
    assert_eq!(s["root_id"], ss.as_str());
    assert_eq!(s["resource"]["resource_name"], "db");
    assert_eq!(s["resource"]["resource_type"], "volume");

    let job_json = h.call("DescribeJobs", &[("jobs.1", &job)]).await;
    assert_eq!(job_json["job_set"][0]["job_action"], "CreateSnapshots");
    assert_eq!(
        job_json["job_set"][0]["resource_ids"],
        format!("vol-a {ss}")
    );

    let unknown = h.call("DescribeJobs", &[("jobs.1", "j-nothere1")]).await;
    assert_eq!(unknown["ret_code"], 2100);
    let no_volume = h
        .call("CreateSnapshots", &[("resources.1", "vol-ghost")])
        .await;
    assert_eq!(no_volume["ret_code"], 2100);
    assert_eq!(
        no_volume["message"],
        "ResourceNotFound, resource [vol-ghost] not found"
    );
    // The same volume asked for in another zone does not exist there.
    h.sim.seed_qingcloud_volume("gd2", "vol-gd", "other");
    let wrong_zone = h
        .call("CreateSnapshots", &[("resources.1", "vol-gd")])
        .await;
    assert_eq!(wrong_zone["ret_code"], 2100);

    let (_, settings) = h
        .post("/_sim/settings", r#"{"job_id_as_array":true}"#)
        .await;
    assert_eq!(settings["job_id_as_array"], true);
    let r = h.call("CreateSnapshots", &[("resources.1", "vol-a")]).await;
    assert!(r["job_id"].is_array(), "{r}");
}

#[tokio::test]
async fn chains_and_cascading_deletes() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-a", "db");
    let (_, full) = h.create("vol-a", "1").await;
    wait_jobs().await;
    let (_, inc1) = h.create("vol-a", "0").await;
    wait_jobs().await;
    let (_, inc2) = h.create("vol-a", "0").await;
    wait_jobs().await;

    let s1 = h.snapshot(&inc1).await;
    assert_eq!(s1["snapshot_type"], 0);
    assert_eq!(s1["root_id"], full.as_str());
    assert_eq!(s1["parent_id"], full.as_str());
    assert_eq!(s1["is_head"], 0);
    let s2 = h.snapshot(&inc2).await;
    assert_eq!(s2["parent_id"], inc1.as_str());
    assert_eq!(s2["is_head"], 1);
    let root = h.snapshot(&full).await;
    assert_eq!(root["total_count"], 3);
    assert_eq!(root["head_chain"], 1);

    // Deleting the middle point takes its descendant along.
    let del = h.call("DeleteSnapshots", &[("snapshots.1", &inc1)]).await;
    assert_eq!(del["ret_code"], 0, "{del}");
    let deleting = h.snapshot(&inc2).await;
    assert_eq!(deleting["transition_status"], "deleting");
    wait_jobs().await;
    assert_eq!(h.snapshot(&inc1).await["status"], "deleted");
    assert_eq!(h.snapshot(&inc2).await["status"], "deleted");
    assert_eq!(h.snapshot(&full).await["status"], "available");
    assert_eq!(h.snapshot(&full).await["is_head"], 1);
    // Deleting a deleted snapshot again: it is gone.
    let again = h.call("DeleteSnapshots", &[("snapshots.1", &inc1)]).await;
    assert_eq!(again["ret_code"], 2100);

    // The head is back on the full snapshot: the next point hangs off it.
    let (_, inc3) = h.create("vol-a", "0").await;
    wait_jobs().await;
    assert_eq!(h.snapshot(&inc3).await["parent_id"], full.as_str());

    // Deleting the full snapshot deletes the whole chain.
    let del = h.call("DeleteSnapshots", &[("snapshots.1", &full)]).await;
    assert_eq!(del["ret_code"], 0);
    wait_jobs().await;
    assert_eq!(h.snapshot(&inc3).await["status"], "deleted");
    let available = h
        .call(
            "DescribeSnapshots",
            &[("resource_id", "vol-a"), ("status.1", "available")],
        )
        .await;
    assert_eq!(available["total_count"], 0);
    let all = h
        .call("DescribeSnapshots", &[("resource_id", "vol-a")])
        .await;
    assert_eq!(all["total_count"], 4);

    // With no available head, is_full=0 still makes a full snapshot.
    let (_, fresh) = h.create("vol-a", "0").await;
    assert_eq!(h.snapshot(&fresh).await["snapshot_type"], 1);

    let (_, control) = h.get("/_sim/qingcloud/snapshots").await;
    let listed = control["snapshots"].as_array().expect("array");
    assert_eq!(listed.len(), 5);
    assert!(listed
        .iter()
        .any(|s| s["snapshot_id"] == full.as_str() && s["deleted_at"].is_string()));
}

#[tokio::test]
async fn pagination_filters_and_order() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-a", "db");
    let base = Utc::now() - chrono::TimeDelta::days(1);
    for i in 0..130 {
        let t = base + chrono::TimeDelta::minutes(i);
        h.sim
            .seed_qingcloud_snapshot(ZONE, "vol-a", &format!("manual-{i:03}"), Some(t));
    }
    let first = h.call("DescribeSnapshots", &[]).await;
    assert_eq!(first["total_count"], 130);
    assert_eq!(first["snapshot_set"].as_array().map(Vec::len), Some(20));
    assert_eq!(first["snapshot_set"][0]["snapshot_name"], "manual-129");

    let capped = h
        .call("DescribeSnapshots", &[("limit", "500"), ("offset", "10")])
        .await;
    assert_eq!(capped["snapshot_set"].as_array().map(Vec::len), Some(100));
    assert_eq!(capped["snapshot_set"][0]["snapshot_name"], "manual-119");

    let tail = h
        .call("DescribeSnapshots", &[("limit", "100"), ("offset", "120")])
        .await;
    assert_eq!(tail["snapshot_set"].as_array().map(Vec::len), Some(10));
    assert_eq!(tail["total_count"], 130);

    let search = h
        .call("DescribeSnapshots", &[("search_word", "manual-12")])
        .await;
    assert_eq!(search["total_count"], 10); // manual-120 ..= manual-129
    let full_only = h.call("DescribeSnapshots", &[("snapshot_type", "0")]).await;
    assert_eq!(full_only["total_count"], 0);
    let bad = h.call("DescribeSnapshots", &[("limit", "many")]).await;
    assert_eq!(bad["ret_code"], 1100);
    let query = signed_get("/iaas/", "DescribeSnapshots", "gd2", &[]);
    let other_zone = h.get_json(&format!("/iaas/?{query}")).await;
    assert_eq!(other_zone["total_count"], 0);
}

#[tokio::test]
async fn faults_hit_as_configured() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-a", "db");

    let (status, added) = h
        .fault(r#"{"dialect":"qingcloud","action":"DescribeVolumes","fault":"throttle","count":2}"#)
        .await;
    assert_eq!(status, 200);
    assert!(added["id"].is_string());
    for _ in 0..2 {
        let r = h.call("DescribeVolumes", &[]).await;
        assert_eq!(r["ret_code"], 5100);
        assert_eq!(r["message"], "ServerBusy, please try later");
    }
    assert_eq!(h.call("DescribeVolumes", &[]).await["ret_code"], 0);

    // fail_job: the job ends failed and the snapshot disappears.
    h.fault(r#"{"dialect":"qingcloud","action":"CreateSnapshots","fault":"fail_job","count":1}"#)
        .await;
    let (job, ss) = h.create("vol-a", "1").await;
    wait_jobs().await;
    assert_eq!(h.job_status(&job).await, "failed");
    let gone = h.call("DescribeSnapshots", &[("snapshots.1", &ss)]).await;
    assert_eq!(gone["total_count"], 0);
    let (job, _) = h.create("vol-a", "1").await;
    wait_jobs().await;
    assert_eq!(h.job_status(&job).await, "successful");

    for (fault, check) in [("quota", 2500), ("server_error", 503), ("malformed", 200)] {
        h.fault(&json!({"dialect":"qingcloud","fault":fault,"count":1}).to_string())
            .await;
        let resp = h.signed_now("DescribeJobs", &[]).await.expect("answer");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body");
        match fault {
            "quota" => {
                let v: Value = serde_json::from_str(&body).expect("JSON");
                assert_eq!(v["ret_code"], check);
            }
            "server_error" => {
                assert_eq!(status, 503);
                assert!(serde_json::from_str::<Value>(&body).is_err());
            }
            _ => {
                assert_eq!(status, 200);
                assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
            }
        }
    }

    h.fault(r#"{"dialect":"qingcloud","fault":"drop_connection","count":1}"#)
        .await;
    let dropped = h.signed_now("DescribeJobs", &[]).await;
    assert!(dropped.is_err(), "expected a dropped connection");

    h.fault(r#"{"dialect":"qingcloud","fault":"latency","latency_ms":150,"count":1}"#)
        .await;
    let started = std::time::Instant::now();
    assert_eq!(h.call("DescribeJobs", &[]).await["ret_code"], 0);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let (_, faults) = h.get("/_sim/requests?action=DescribeJobs").await;
    let hit = texts(&faults["requests"], "fault");
    assert_eq!(
        hit,
        [
            "quota",
            "server_error",
            "malformed",
            "drop_connection",
            "latency"
        ]
    );

    h.fault(r#"{"dialect":"qingcloud","fault":"never_finish"}"#)
        .await;
    let resp = h.delete("/_sim/faults").await;
    assert_eq!(resp.status(), 200);
    let (_, list) = h.get("/_sim/faults").await;
    assert_eq!(list["faults"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn never_finish_keeps_the_job_working() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-a", "db");
    h.fault(r#"{"dialect":"qingcloud","fault":"never_finish","count":1}"#)
        .await;
    let (job, ss) = h.create("vol-a", "1").await;
    wait_jobs().await;
    assert_eq!(h.job_status(&job).await, "working");
    assert_eq!(h.snapshot(&ss).await["status"], "pending");
}

#[tokio::test]
async fn control_endpoints() {
    let h = start().await;
    assert_eq!(h.get("/_sim/health").await, (200, json!({"ok": true})));

    let (status, body) = h.get("/_sim/nothing").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());

    let (status, body) = h.post("/_sim/qingcloud/volumes", "{not json").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().is_some_and(|m| m.contains("JSON")));
    let (status, _) = h
        .fault(r#"{"dialect":"qingcloud","fault":"explode"}"#)
        .await;
    assert_eq!(status, 400);

    let (status, _) = h
        .post(
            "/_sim/qingcloud/credentials",
            r#"{"access_key_id":"QYOTHER","secret_access_key":"s3cret"}"#,
        )
        .await;
    assert_eq!(status, 200);
    let query = signed_query(
        "GET",
        "/iaas",
        "QYOTHER",
        "s3cret",
        &now_stamp(),
        "DescribeInstances",
        ZONE,
        &[],
    );
    h.post(
        "/_sim/qingcloud/instances",
        r#"{"zone":"pek3a","instance_id":"i-web1","instance_name":"web"}"#,
    )
    .await;
    let r: Value = h.get_json(&format!("/iaas?{query}")).await;
    assert_eq!(r["ret_code"], 0, "{r}");
    assert_eq!(r["instance_set"][0]["instance_name"], "web");

    h.post(
        "/_sim/qingcloud/volumes",
        r#"{"zone":"pek3a","volume_id":"vol-a"}"#,
    )
    .await;
    let (status, seeded) = h
        .post(
            "/_sim/qingcloud/snapshots",
            r#"{"zone":"pek3a","resource_id":"vol-a","snapshot_name":"by hand","create_time":"2024-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(status, 200);
    let id = seeded["snapshot_id"].as_str().expect("id").to_string();
    let s = h.snapshot(&id).await;
    assert_eq!(s["status"], "available");
    assert_eq!(s["create_time"], "2024-01-01T00:00:00Z");
    assert_eq!(s["snapshot_type"], 1);

    let (_, settings) = h.post("/_sim/settings", r#"{"job_duration_ms":10}"#).await;
    assert_eq!(settings["job_duration_ms"], 10);
    let (_, jobs) = h.get("/_sim/qingcloud/jobs").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0));

    // An absurd duration means "never finishes", not a crash.
    h.post(
        "/_sim/settings",
        &json!({"job_duration_ms": u64::MAX}).to_string(),
    )
    .await;
    let r = h.call("CreateSnapshots", &[("resources.1", "vol-a")]).await;
    assert_eq!(r["ret_code"], 0, "{r}");
    let (_, jobs) = h.get("/_sim/qingcloud/jobs").await;
    assert_eq!(jobs["jobs"][0]["status"], "pending");
}

/// The indexed paths (a volume filter, snapshot ids, job ids) answer exactly
/// what the whole listing, filtered by hand, holds: same items, same order,
/// same totals; other zones, unknown and repeated ids included.
#[tokio::test]
async fn indexed_lookups_match_the_full_listing() {
    let h = start().await;
    let base = Utc::now() - chrono::TimeDelta::days(3);
    let mut snapshots = Vec::new();
    for v in 0..4 {
        for k in 0..5 {
            // Equal create times across volumes: the tie-break (seq) counts.
            let t = base + chrono::TimeDelta::hours(k);
            snapshots.push(json!({"zone": ZONE, "resource_id": format!("vol-{v}"),
                                  "snapshot_name": format!("s-{v}-{k}"),
                                  "create_time": t.to_rfc3339()}));
        }
    }
    snapshots.push(json!({"zone": "gd2", "resource_id": "vol-1", "snapshot_name": "far"}));
    let volumes: Vec<Value> = (0..4)
        .map(|v| json!({"zone": ZONE, "volume_id": format!("vol-{v}"), "volume_name": "db"}))
        .collect();
    let body = json!({ "volumes": volumes, "snapshots": snapshots }).to_string();
    let (status, seeded) = h.post("/_sim/qingcloud/seed", &body).await;
    assert_eq!(status, 200, "{seeded}");
    let ids: Vec<String> = seeded["snapshot_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 21);
    // Two incrementals on vol-2 (a chain) and a full one on vol-3.
    let (_, inc) = h.create("vol-2", "0").await;
    wait_jobs().await;
    let (job_b, _) = h.create("vol-2", "0").await;
    let (job_c, _) = h.create("vol-3", "1").await;
    wait_jobs().await; // nothing changes between the calls compared below

    let all = h.call("DescribeSnapshots", &[("limit", "100")]).await;
    assert_eq!(all["total_count"], 23);
    let everything = all["snapshot_set"].as_array().expect("set").clone();
    for vol in ["vol-0", "vol-2", "vol-3", "vol-9"] {
        let by_hand: Vec<&Value> = everything
            .iter()
            .filter(|s| s["resource"]["resource_id"] == vol)
            .collect();
        let r = h
            .call(
                "DescribeSnapshots",
                &[("resource_id", vol), ("limit", "3"), ("offset", "1")],
            )
            .await;
        assert_eq!(r["total_count"], by_hand.len(), "{vol}");
        let page: Vec<&Value> = r["snapshot_set"].as_array().expect("set").iter().collect();
        let expected: Vec<&Value> = by_hand.iter().skip(1).take(3).copied().collect();
        assert_eq!(page, expected, "{vol}");
    }
    // Chain totals on the full snapshot come from the chain index.
    let root = h.snapshot(&inc).await["root_id"].clone();
    let root_item = everything
        .iter()
        .find(|s| s["snapshot_id"] == root)
        .expect("root listed");
    assert_eq!(root_item["total_count"], 3, "{root_item}");

    // Ids: any order, repeated, unknown and other-zone ones left out.
    let far = ids[20].as_str();
    let picked = [
        ids[7].as_str(),
        ids[2].as_str(),
        ids[7].as_str(),
        "ss-nothere",
        far,
    ];
    let params: Vec<(String, &str)> = picked
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("snapshots.{}", i + 1), *id))
        .collect();
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let r = h.call("DescribeSnapshots", &params).await;
    let by_hand: Vec<&Value> = everything
        .iter()
        .filter(|s| s["snapshot_id"] == ids[7] || s["snapshot_id"] == ids[2])
        .collect();
    assert_eq!(r["total_count"], 2);
    assert_eq!(
        r["snapshot_set"]
            .as_array()
            .expect("set")
            .iter()
            .collect::<Vec<_>>(),
        by_hand
    );

    let jobs = h.call("DescribeJobs", &[("limit", "100")]).await;
    let all_jobs = jobs["job_set"].as_array().expect("jobs").clone();
    assert_eq!(all_jobs.len(), 3);
    let r = h
        .call(
            "DescribeJobs",
            &[("jobs.1", &job_b), ("jobs.2", &job_c), ("jobs.3", &job_b)],
        )
        .await;
    let by_hand: Vec<&Value> = all_jobs
        .iter()
        .filter(|j| j["job_id"] == job_b.as_str() || j["job_id"] == job_c.as_str())
        .collect();
    assert_eq!(r["total_count"], 2);
    let got: Vec<&Value> = r["job_set"].as_array().expect("set").iter().collect();
    // status_time may move on between the two calls; compare the rest.
    let strip = |v: &&Value| {
        let mut v = (*v).clone();
        v["status"] = Value::Null;
        v["status_time"] = Value::Null;
        v
    };
    assert_eq!(
        got.iter().map(strip).collect::<Vec<_>>(),
        by_hand.iter().map(strip).collect::<Vec<_>>()
    );
    let unknown = h
        .call(
            "DescribeJobs",
            &[("jobs.1", &job_b), ("jobs.2", "j-nothere")],
        )
        .await;
    assert_eq!(unknown["ret_code"], 2100, "{unknown}");
}

#[tokio::test]
async fn bulk_seed_checks_every_item_before_applying_any() {
    let h = start().await;
    let body = json!({
        "volumes": [{"zone": ZONE, "volume_id": "vol-ok"}],
        "snapshots": [{"zone": ZONE, "resource_id": "vol-ok", "snapshot_name": "a"},
                      {"zone": ZONE, "resource_id": " ", "snapshot_name": "b"}],
    });
    let (status, err) = h.post("/_sim/qingcloud/seed", &body.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "snapshots[1].resource_id must not be empty");
    let (_, listed) = h.get("/_sim/qingcloud/snapshots").await;
    assert_eq!(listed["snapshots"].as_array().map(Vec::len), Some(0));
    let r = h.call("DescribeVolumes", &[("volumes.1", "vol-ok")]).await;
    assert_eq!(r["total_count"], 0);
}

/// ModifySnapshotAttributes: the envelope only, the description in
/// DescribeSnapshots and the control view (null again when cleared), the
/// name kept unless given, and the errors of a missing snapshot parameter
/// (1100) and an unknown or deleted snapshot (2100).
#[tokio::test]
async fn modify_snapshot_attributes_sets_and_clears_the_description() {
    let h = start().await;
    let id = h
        .sim
        .seed_qingcloud_snapshot(ZONE, "vol-mark0001", "manual-1", None);
    let r = h
        .call(
            "ModifySnapshotAttributes",
            &[("snapshot", &id), ("description", "held by ann")],
        )
        .await;
    assert_eq!(
        r,
        json!({"action": "ModifySnapshotAttributesResponse", "ret_code": 0})
    );
    let s = h.snapshot(&id).await;
    assert_eq!(s["description"], "held by ann", "{s}");
    assert_eq!(s["snapshot_name"], "manual-1", "{s}");
    let view = h.get_json("/_sim/qingcloud/snapshots").await;
    let mine: Vec<&Value> = view["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .filter(|s| s["snapshot_id"] == id.as_str())
        .collect();
    assert_eq!(mine[0]["description"], "held by ann", "{view}");

    h.call(
        "ModifySnapshotAttributes",
        &[("snapshot", &id), ("snapshot_name", "renamed")],
    )
    .await;
    let s = h.snapshot(&id).await;
    assert_eq!(s["snapshot_name"], "renamed", "{s}");
    assert_eq!(s["description"], "held by ann", "left out = kept: {s}");
    h.call(
        "ModifySnapshotAttributes",
        &[("snapshot", &id), ("description", "")],
    )
    .await;
    assert!(h.snapshot(&id).await["description"].is_null());

    let r = h
        .call("ModifySnapshotAttributes", &[("description", "x")])
        .await;
    assert_eq!(r["ret_code"], 1100, "{r}");
    let r = h
        .call("ModifySnapshotAttributes", &[("snapshot", "ss-nosuch01")])
        .await;
    assert_eq!(r["ret_code"], 2100, "{r}");
    assert_eq!(
        r["message"],
        "ResourceNotFound, resource [ss-nosuch01] not found"
    );
    let r = h.call("DeleteSnapshots", &[("snapshots.1", &id)]).await;
    assert_eq!(r["ret_code"], 0, "{r}");
    wait_jobs().await;
    let r = h
        .call(
            "ModifySnapshotAttributes",
            &[("snapshot", &id), ("description", "x")],
        )
        .await;
    assert_eq!(r["ret_code"], 2100, "deleted: {r}");
}

#[tokio::test]
async fn a_restored_volume_is_pending_while_its_job_runs() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-src", "db");
    let (job, ss) = h.create("vol-src", "1").await;
    // A snapshot still being made cannot be restored: the documented 1400
    // without "please try later".
    let early = h
        .call("CreateVolumeFromSnapshot", &[("snapshot", &ss)])
        .await;
    assert_eq!(early["ret_code"], 1400, "{early}");
    assert_eq!(
        early["message"],
        format!(
            "PermissionDenied, snapshot [{ss}] is not available, can not create volume from it"
        )
    );
    wait_jobs().await;
    assert_eq!(h.job_status(&job).await, "successful");

    let r = h
        .call(
            "CreateVolumeFromSnapshot",
            &[("snapshot", &ss), ("volume_name", "restore-2")],
        )
        .await;
    assert_eq!(r["ret_code"], 0, "{r}");
    let vol = r["volume_id"].as_str().expect("volume id").to_string();
    let restore_job = r["job_id"].as_str().expect("job id").to_string();
    let v = &h.call("DescribeVolumes", &[("volumes.1", &vol)]).await["volume_set"][0];
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["transition_status"], "creating", "{v}");
    assert_eq!(v["volume_name"], "restore-2");
    // Every field the CLI transcript shows for a volume.
    for field in [
        "status",
        "resources",
        "zone_id",
        "volume_id",
        "instance",
        "lastest_snapshot_time",
        "sub_code",
        "transition_status",
        "volume_type",
        "status_time",
        "instances",
        "repl",
        "create_time",
        "extra",
        "volume_name",
        "owner",
        "place_group_id",
        "size",
        "resource_project_info",
        "tags",
        "description",
    ] {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
    assert_eq!(v["size"], 20, "the source volume's size: {v}");
    // status.N filters on the state of the moment.
    let pending = h.call("DescribeVolumes", &[("status.1", "pending")]).await;
    assert_eq!(pending["total_count"], 1, "{pending}");
    assert_eq!(pending["volume_set"][0]["volume_id"], vol.as_str());
    let available = h
        .call(
            "DescribeVolumes",
            &[("status.1", "available"), ("status.2", "in-use")],
        )
        .await;
    assert_eq!(available["total_count"], 1, "{available}");
    assert_eq!(available["volume_set"][0]["volume_id"], "vol-src");

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while h.job_status(&restore_job).await != "successful" {
        assert!(
            std::time::Instant::now() < deadline,
            "restore job never ended"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let v = &h.call("DescribeVolumes", &[("volumes.1", &vol)]).await["volume_set"][0];
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["transition_status"], "", "{v}");
    let all = h
        .call("DescribeVolumes", &[("status.1", "available")])
        .await;
    assert_eq!(all["total_count"], 2, "{all}");

    // A restore whose job fails leaves no volume behind.
    h.fault(r#"{"dialect":"qingcloud","action":"CreateVolumeFromSnapshot","fault":"fail_job","count":1}"#)
        .await;
    let r = h
        .call("CreateVolumeFromSnapshot", &[("snapshot", &ss)])
        .await;
    let failed = r["volume_id"].as_str().expect("volume id").to_string();
    wait_jobs().await;
    let gone = h.call("DescribeVolumes", &[("volumes.1", &failed)]).await;
    assert_eq!(gone["total_count"], 0, "{gone}");
    let ceased = h
        .call(
            "DescribeVolumes",
            &[("volumes.1", &failed), ("status.1", "ceased")],
        )
        .await;
    assert_eq!(ceased["volume_set"][0]["status"], "ceased", "{ceased}");
}

#[tokio::test]
async fn tags_are_made_listed_and_attached() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-t", "db");
    let ss = h.sim.seed_qingcloud_snapshot(ZONE, "vol-t", "manual", None);
    let r = h.call("CreateTag", &[("tag_name", "snapwarden")]).await;
    assert_eq!(r["action"], "CreateTagResponse", "{r}");
    assert_eq!(r["ret_code"], 0, "{r}");
    let tag = r["tag_id"].as_str().expect("tag id").to_string();
    assert!(tag.starts_with("tag-") && tag.len() == 12, "{tag}");
    let dup = h.call("CreateTag", &[("tag_name", "snapwarden")]).await;
    assert_eq!(dup["ret_code"], 2110, "{dup}");
    assert_eq!(h.call("CreateTag", &[]).await["ret_code"], 1100);
    h.call("CreateTag", &[("tag_name", "other"), ("color", "#ff0000")])
        .await;

    let r = h
        .call(
            "AttachTags",
            &[
                ("resource_tag_pairs.1.tag_id", &tag),
                ("resource_tag_pairs.1.resource_type", "snapshot"),
                ("resource_tag_pairs.1.resource_id", &ss),
                ("resource_tag_pairs.2.tag_id", &tag),
                ("resource_tag_pairs.2.resource_type", "volume"),
                ("resource_tag_pairs.2.resource_id", "vol-t"),
            ],
        )
        .await;
    assert_eq!(r, json!({"action": "AttachTagsResponse", "ret_code": 0}));
    // Each pair is checked before any is attached.
    let bad = h
        .call(
            "AttachTags",
            &[
                ("resource_tag_pairs.1.tag_id", &tag),
                ("resource_tag_pairs.1.resource_type", "snapshot"),
                ("resource_tag_pairs.1.resource_id", "ss-nosuch01"),
            ],
        )
        .await;
    assert_eq!(bad["ret_code"], 2100, "{bad}");
    let half = h
        .call(
            "AttachTags",
            &[
                ("resource_tag_pairs.1.tag_id", &tag),
                ("resource_tag_pairs.1.resource_id", &ss),
            ],
        )
        .await;
    assert_eq!(half["ret_code"], 1100, "{half}");
    let no_tag = h
        .call(
            "AttachTags",
            &[
                ("resource_tag_pairs.1.tag_id", "tag-nosuch01"),
                ("resource_tag_pairs.1.resource_type", "snapshot"),
                ("resource_tag_pairs.1.resource_id", &ss),
            ],
        )
        .await;
    assert_eq!(no_tag["ret_code"], 2100, "{no_tag}");

    let all = h.call("DescribeTags", &[]).await;
    assert_eq!(all["total_count"], 2, "{all}");
    let mine = h
        .call(
            "DescribeTags",
            &[("search_word", "snapw"), ("verbose", "1")],
        )
        .await;
    assert_eq!(mine["total_count"], 1, "{mine}");
    let t = &mine["tag_set"][0];
    assert_eq!(t["tag_id"], tag.as_str());
    assert_eq!(t["tag_name"], "snapwarden");
    assert_eq!(t["resource_count"], 2, "{t}");
    assert_eq!(
        t["resource_tag_pairs"].as_array().map(Vec::len),
        Some(2),
        "{t}"
    );
    let by_resource = h.call("DescribeTags", &[("resources.1", &ss)]).await;
    assert_eq!(by_resource["total_count"], 1, "{by_resource}");
    assert!(by_resource["tag_set"][0]
        .get("resource_tag_pairs")
        .is_none());

    // The snapshot lists its tag and the tag filter finds it.
    let s = h.snapshot(&ss).await;
    assert_eq!(s["tags"][0]["tag_id"], tag.as_str(), "{s}");
    let tagged = h.call("DescribeSnapshots", &[("tags.1", &tag)]).await;
    assert_eq!(tagged["total_count"], 1, "{tagged}");
    let v = h.call("DescribeVolumes", &[("volumes.1", "vol-t")]).await;
    assert_eq!(
        v["volume_set"][0]["tags"][0]["tag_name"], "snapwarden",
        "{v}"
    );
}

#[tokio::test]
async fn apply_snapshots_rolls_back_under_a_job() {
    let h = start().await;
    h.sim.seed_qingcloud_volume(ZONE, "vol-r", "db");
    let (_, first) = h.create("vol-r", "1").await;
    wait_jobs().await;
    let (_, second) = h.create("vol-r", "0").await;
    // A snapshot still being made cannot be applied.
    let busy = h.call("ApplySnapshots", &[("snapshots.1", &second)]).await;
    assert_eq!(busy["ret_code"], 1400, "{busy}");
    wait_jobs().await;
    assert_eq!(h.snapshot(&second).await["is_head"], 1);

    let r = h.call("ApplySnapshots", &[("snapshots.1", &first)]).await;
    assert_eq!(r["action"], "ApplySnapshotsResponse", "{r}");
    assert_eq!(r["ret_code"], 0, "{r}");
    let job = r["job_id"].as_str().expect("job id").to_string();
    let j = &h.call("DescribeJobs", &[("jobs.1", &job)]).await["job_set"][0];
    assert_eq!(j["job_action"], "ApplySnapshots", "{j}");
    assert_eq!(j["resource_ids"], format!("{first} vol-r"));
    let early = j["status"].as_str().unwrap_or_default().to_string();
    assert!(early == "pending" || early == "working", "{early}");
    wait_jobs().await;
    assert_eq!(h.job_status(&job).await, "successful");
    // The applied point is the volume's current one now.
    assert_eq!(h.snapshot(&first).await["is_head"], 1);
    assert_eq!(h.snapshot(&second).await["is_head"], 0);

    assert_eq!(h.call("ApplySnapshots", &[]).await["ret_code"], 1100);
    let missing = h
        .call("ApplySnapshots", &[("snapshots.1", "ss-nosuch01")])
        .await;
    assert_eq!(missing["ret_code"], 2100, "{missing}");
    let same_volume = h
        .call(
            "ApplySnapshots",
            &[("snapshots.1", &first), ("snapshots.2", &second)],
        )
        .await;
    assert_eq!(same_volume["ret_code"], 1100, "{same_volume}");
}
