//! End to end on UCloudStack: the real binary against the built-in
//! simulator's UCloudStack dialect on loopback, asserting on what the
//! simulator saw and on the ledger.
//! The scenarios every cloud shares (auth, throttling, failed snapshots,
//! lost answers, restore) are in `e2e_clouds.rs`.

mod clouds;
mod util;

use std::time::Duration;

use chrono::TimeZone;
use clouds::Kind;
use serde_json::{json, Value};
use snapwarden::providers::ucloudstack::{remark, snapshot_name};
use snapwarden::providers::Marker;
use snapwarden::state::RunState;
use util::*;

const REGION: &str = "cn";
const UCS_ZONE: &str = "zone-01";

/// The simulator's UCloudStack control API, in the domain's words.
struct Ucs<'a>(&'a Sim);

impl Ucs<'_> {
    fn disk(&self, id: &str) {
        self.0.post(
            "/_sim/ucloudstack/disks",
            json!({"region": REGION, "zone": UCS_ZONE, "disk_id": id, "name": id}),
        );
    }

    /// A snapshot made outside snapwarden; returns its id.
    fn foreign_snapshot(
        &self,
        disk: &str,
        name: &str,
        remark: &str,
        kind: &str,
        creating_ms: u64,
    ) -> String {
        let v = self.0.post(
            "/_sim/ucloudstack/snapshots",
            json!({"region": REGION, "zone": UCS_ZONE, "disk_id": disk, "name": name,
                   "remark": remark, "type": kind, "creating_ms": creating_ms}),
        );
        v["snapshot_id"].as_str().expect("snapshot_id").to_string()
    }

    fn cap(&self, n: u32) {
        self.0
            .post("/_sim/ucloudstack/limits", json!({"snapshots_per_disk": n}));
    }

    /// Snapshots of `disk` the API still lists as existing.
    fn live(&self, disk: &str) -> Vec<Value> {
        self.0.get("/_sim/ucloudstack/snapshots")["snapshots"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["disk_id"] == disk && s["deleted"] == false)
            .collect()
    }

    fn requests(&self, action: &str) -> Vec<Value> {
        self.0.journal("ucloudstack", Some(action))
    }

    fn ok_requests(&self, action: &str) -> Vec<Value> {
        self.requests(action)
            .into_iter()
            .filter(|r| r["ret_code"] == 0)
            .collect()
    }
}

fn config(wd: &Workdir, sim: &Sim, policy: &str) -> String {
    clouds::one_policy_config(
        wd,
        sim,
        Kind::UCloudStack,
        "requests_per_second = 50",
        policy,
    )
}

fn policy(targets: &[&str], schedule: &str, retain: u32) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"name = "db"
provider = "ucs"
resource = "disk"
targets = [{}]
schedule = "{schedule}"
retain = {retain}
poll_interval = "100ms"
poll_max_interval = "400ms"
timeout = "30s"
"#,
        targets.join(", ")
    )
}

/// Three scheduled slots on two disks: Type=Automatic snapshots with our
/// Remark, polled to Normal in batched DescribeSnapshot calls, pruned to
/// retain = 2; a Manual snapshot with exactly our name and Remark and an
/// Automatic one without our Remark are both left alone.
#[test]
fn scheduled_runs_create_automatic_snapshots_and_prune_to_retain() {
    let (sim, wd) = sim_with_volumes("300ms", &[]);
    let ucs = Ucs(&sim);
    let disks = ["disk-aaaa0001", "disk-bbbb0002"];
    let mut foreign = Vec::new();
    for d in disks {
        ucs.disk(d);
        let old = Marker {
            policy: "db".into(),
            target: d.into(),
            slot: chrono::Utc
                .with_ymd_and_hms(1999, 1, 1, 0, 0, 0)
                .single()
                .expect("valid time"),
        };
        foreign.push(ucs.foreign_snapshot(d, &snapshot_name(&old), &remark(&old), "Manual", 0));
        foreign.push(ucs.foreign_snapshot(
            d,
            &snapshot_name(&old),
            "platform timer",
            "Automatic",
            0,
        ));
    }
    let cfg = wd.write_config(&config(
        &wd,
        &sim,
        &policy(&disks, &seconds_from_now(&[2, 4, 6]), 2),
    ));
    let daemon = Daemon::start(&cfg, UCS_PRIVATE_KEY);
    wd.wait_succeeded_runs("db", &disks, 3);
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));

    let creates = ucs.ok_requests("CreateSnapshot");
    assert_eq!(creates.len(), 6);
    for c in &creates {
        let p = &c["params"];
        assert_eq!(p["Type"], "Automatic", "{c}");
        assert_eq!(p["Region"], REGION);
        assert_eq!(p["Zone"], UCS_ZONE);
        let name = p["Name"].as_str().unwrap_or("");
        assert!(name.len() <= 30 && name.starts_with("sw-"), "{name}");
        let rem = p["Remark"].as_str().unwrap_or("");
        assert!(
            rem.starts_with(&format!(
                "snapwarden policy=db target={} slot=",
                p["DiskID"].as_str().unwrap_or("")
            )),
            "{rem}"
        );
    }
    for d in disks {
        let live = ucs.live(d);
        let own: Vec<&Value> = live
            .iter()
            .filter(|s| !foreign.contains(&s["snapshot_id"].as_str().unwrap_or("").to_string()))
            .collect();
        assert_eq!(own.len(), 2, "two own snapshots kept on {d}: {live:?}");
        assert!(own
            .iter()
            .all(|s| s["status"] == "Normal" && s["type"] == "Automatic"));
        assert_eq!(
            live.len(),
            4,
            "both foreign snapshots on {d} untouched: {live:?}"
        );
        assert_eq!(wd.available_and_deleted(Some(d)), (2, 1));
    }
    let deletes = ucs.ok_requests("DeleteSnapshot");
    assert_eq!(deletes.len(), 2);
    for d in &deletes {
        assert!(!foreign.contains(&d["params"]["SnapshotID"].as_str().unwrap_or("").to_string()));
    }
    // Completion followed by SnapshotIDs.N, the two disks' snapshots of one
    // slot in one call.
    let polls = ucs.requests("DescribeSnapshot");
    assert!(
        polls
            .iter()
            .any(|r| r["params"]["SnapshotIDs.0"].is_string()
                && r["params"]["SnapshotIDs.1"].is_string()),
        "no batched DescribeSnapshot: {polls:?}"
    );
    assert!(polls.iter().all(|r| r["ret_code"] == 0));
}

/// 2502 (another snapshot of the disk in progress) is retried and the run
/// ends in success with one snapshot. (Throttling, 165, is in
/// `e2e_clouds.rs`.)
#[test]
fn busy_disk_is_retried_to_success() {
    let (sim, wd) = sim_with_volumes("100ms", &[]);
    let ucs = Ucs(&sim);
    ucs.disk("disk-aaaa0001");
    let cfg = wd.write_config(&config(
        &wd,
        &sim,
        &policy(&["disk-aaaa0001"], "0 0 3 * * *", 2),
    ));
    let path = cfg.to_str().expect("utf-8 path");

    // The platform's own timer is taking a snapshot for the next 400 ms.
    ucs.foreign_snapshot("disk-aaaa0001", "timer", "", "Automatic", 400);
    wd.cmd_ok(&["snapshot", "-c", path, "--policy", "db"], UCS_PRIVATE_KEY);
    let creates = ucs.requests("CreateSnapshot");
    assert!(creates.iter().any(|r| r["ret_code"] == 2502), "{creates:?}");
    assert_eq!(creates.iter().filter(|r| r["ret_code"] == 0).count(), 1);
    assert_eq!(
        creates.last().map(|r| r["ret_code"].clone()),
        Some(json!(0))
    );
    let runs = wd
        .state()
        .runs_for("db", "disk-aaaa0001", 10)
        .expect("runs");
    assert_eq!(
        runs.iter()
            .filter(|r| r.state == RunState::Succeeded)
            .count(),
        1
    );
    assert_eq!(ucs.live("disk-aaaa0001").len(), 2, "timer snapshot + own");
}

/// The per-disk cap (2500): a failed run whose message tells the operator
/// to lower `retain` or raise the cap, no retry, and no pruning.
#[test]
fn snapshot_cap_fails_the_run_with_advice_and_no_pruning() {
    let (sim, wd) = sim_with_volumes("100ms", &[]);
    let ucs = Ucs(&sim);
    ucs.disk("disk-aaaa0001");
    ucs.cap(3);
    ucs.foreign_snapshot("disk-aaaa0001", "by hand", "", "Manual", 0);
    let cfg = wd.write_config(&config(
        &wd,
        &sim,
        &policy(&["disk-aaaa0001"], "0 0 3 * * *", 2),
    ));
    let path = cfg.to_str().expect("utf-8 path");
    for _ in 0..2 {
        wd.cmd_ok(&["snapshot", "-c", path, "--policy", "db"], UCS_PRIVATE_KEY);
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(ucs.live("disk-aaaa0001").len(), 3);

    // retain 1 would delete one, but the run fails at the cap first.
    wd.write_config(&config(
        &wd,
        &sim,
        &policy(&["disk-aaaa0001"], "0 0 3 * * *", 1),
    ));
    let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], UCS_PRIVATE_KEY);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("quota error") && stderr.contains("2500"),
        "{stderr}"
    );
    assert!(stderr.contains("lower the policy's `retain`"), "{stderr}");
    assert_eq!(
        ucs.requests("CreateSnapshot").len(),
        3,
        "2500 is not retried"
    );
    assert!(
        ucs.requests("DeleteSnapshot").is_empty(),
        "no pruning after a failed run"
    );
    assert_eq!(ucs.live("disk-aaaa0001").len(), 3);

    let out = wd.cmd(&["status", "--json", "-c", path], UCS_PRIVATE_KEY);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("status json");
    let t = &doc["targets"][0];
    assert_eq!(t["last_run"]["state"], "failed", "{doc}");
    assert!(
        t["last_error"].as_str().unwrap_or("").contains("retain"),
        "{doc}"
    );
}
