//! End to end on KakaoCloud: the real binary against the built-in
//! simulator's KakaoCloud dialect on loopback, asserting on what the
//! simulator saw (its request journal and state) and on the ledger.
//! The scenarios every cloud shares (auth, throttling, failed snapshots,
//! lost answers, restore) are in `e2e_clouds.rs`.

mod clouds;
mod util;

use std::process::Output;
use std::time::Duration;

use chrono::Utc;
use clouds::Kind;
use serde_json::{json, Value};
use snapwarden::state::{LedgerState, RunState, SqliteLedger};
use util::*;

// ------------------------------------------------------------------ helpers

/// A policy file with one KakaoCloud provider pointed at `sim`.
fn config(wd: &Workdir, sim: &Sim, policy: &str) -> String {
    clouds::one_policy_config(
        wd,
        sim,
        Kind::KakaoCloud,
        "requests_per_second = 200",
        policy,
    )
}

fn policy(resource: &str, targets: &[&str], retain: u32, extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"name = "db"
provider = "kc"
resource = "{resource}"
targets = [{}]
schedule = "0 0 3 * * *"
retain = {retain}
poll_interval = "100ms"
poll_max_interval = "300ms"
timeout = "30s"
{extra}
"#,
        targets.join(", ")
    )
}

trait KakaoSim {
    fn kc_volume(&self, id: &str);
    fn kc_instance(&self, id: &str, name: &str, volumes: &[(&str, bool)]);
    fn kc_manual(&self, volume: &str, name: &str) -> String;
    fn kc_snapshots(&self) -> Vec<Value>;
    fn kc_live(&self, volume: &str) -> Vec<Value>;
    fn kc_requests(&self, action: &str) -> Vec<Value>;
}

impl KakaoSim for Sim {
    fn kc_volume(&self, id: &str) {
        self.post("/_sim/kakaocloud/volumes", json!({"volume_id": id}));
    }

    fn kc_instance(&self, id: &str, name: &str, volumes: &[(&str, bool)]) {
        let volumes: Vec<Value> = volumes
            .iter()
            .map(|(v, root)| json!({"volume_id": v, "is_root": root}))
            .collect();
        self.post(
            "/_sim/kakaocloud/instances",
            json!({"instance_id": id, "name": name, "volumes": volumes}),
        );
    }

    /// A snapshot made by hand (not by snapwarden); returns its id.
    fn kc_manual(&self, volume: &str, name: &str) -> String {
        let v = self.post(
            "/_sim/kakaocloud/snapshots",
            json!({"volume_id": volume, "name": name, "description": "made by hand"}),
        );
        v["snapshot_id"].as_str().expect("snapshot_id").to_string()
    }

    /// Every snapshot, deleted ones included, oldest first.
    fn kc_snapshots(&self) -> Vec<Value> {
        self.get("/_sim/kakaocloud/snapshots")["snapshots"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn kc_live(&self, volume: &str) -> Vec<Value> {
        self.kc_snapshots()
            .into_iter()
            .filter(|s| s["volume_id"] == volume && s["status"] != "deleted")
            .collect()
    }

    fn kc_requests(&self, action: &str) -> Vec<Value> {
        self.journal("kakaocloud", Some(action))
    }
}

fn accepted(requests: &[Value]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| {
            r["http_status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
        })
        .cloned()
        .collect()
}

/// `snapwarden snapshot` for policy `db`, asserting success.
fn snapshot_ok(wd: &Workdir, cfg: &std::path::Path) -> Output {
    wd.run_ok(cfg, &["snapshot", "--policy", "db"], KC_SECRET)
}

/// Instance `web-01` with a root and a data volume; returns their ids.
fn web_01(sim: &Sim) -> (&'static str, &'static str) {
    let (root, data) = (
        "aaaa0000-root-0000-0000-000000000001",
        "bbbb0000-data-0000-0000-000000000002",
    );
    sim.kc_instance(
        "9d2c7e4a-0000-4000-8000-00000000000a",
        "web-01",
        &[(root, true), (data, false)],
    );
    (root, data)
}

/// The next slot is the next whole second.
fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// A volume `v` of policy `db` keeping 2 in chains of three
/// (`full_every = 3`), snapshotted `runs` times a second apart; `after`
/// sees each run's number and every snapshot then. Returns the snapshot
/// ids in the order they were made.
fn chain_runs(
    sim: &Sim,
    wd: &Workdir,
    v: &str,
    runs: usize,
    mut after: impl FnMut(usize, &[Value]),
) -> std::path::PathBuf {
    sim.kc_volume(v);
    let cfg = wd.write_config(&config(
        wd,
        sim,
        &policy("volume", &[v], 2, "full_every = 3"),
    ));
    for run in 1..=runs {
        if run > 1 {
            next_second();
        }
        snapshot_ok(wd, &cfg);
        after(run, &sim.kc_snapshots());
    }
    cfg
}

// -------------------------------------------------------------------- tests

/// Three slots on two volumes: every snapshot followed to `available`,
/// retain = 2 per volume, the manual snapshots untouched; the token is
/// issued once per process and sent on every call.
#[test]
fn volume_targets_are_snapshotted_and_pruned_per_volume() {
    let (sim, wd) = sim_with_volumes("300ms", &[]);
    let vols = [
        "3f500f00-0000-4566-a057-e31760226f9a",
        "7c1d2e3f-1111-4a5b-8c9d-0e1f2a3b4c5d",
    ];
    let mut manual = Vec::new();
    for v in vols {
        sim.kc_volume(v);
        manual.push(sim.kc_manual(v, &format!("db-{v}-19990101T000000Z")));
    }
    let cfg = wd.write_config(&config(&wd, &sim, &policy("volume", &vols, 2, "")));
    for i in 0..3 {
        if i > 0 {
            next_second();
        }
        snapshot_ok(&wd, &cfg);
    }

    let creates = accepted(&sim.kc_requests("CreateSnapshot"));
    for (v, manual_id) in vols.iter().zip(&manual) {
        let mine: Vec<&Value> = creates
            .iter()
            .filter(|r| r["params"]["volume_id"] == *v)
            .collect();
        assert_eq!(mine.len(), 3, "three creates on {v}");
        assert!(mine
            .iter()
            .all(|r| r["params"]["snapshot.is_incremental"] == "false"));
        assert!(mine.iter().all(|r| r["params"]["snapshot.description"]
            .as_str()
            .is_some_and(|d| d.starts_with(&format!("snapwarden policy=db target={v} slot=")))));
        assert_two_kept_beside_manual(&sim.kc_live(v), "id", manual_id, v);
        assert_eq!(wd.available_and_deleted(Some(v)), (2, 1));
    }
    assert_eq!(accepted(&sim.kc_requests("DeleteSnapshot")).len(), 2);
    assert!(
        !sim.kc_requests("GetSnapshot").is_empty(),
        "completion followed by GET"
    );
    // One token per process, never a 401.
    assert_eq!(sim.kc_requests("IssueToken").len(), 3);
    let all = sim.journal("kakaocloud", None);
    assert!(all.iter().all(|r| r["http_status"] != 401), "no 401s");
    assert!(all.iter().all(|r| !r.to_string().contains(KC_SECRET)));
}

/// An instance (given by name) with a root and a data volume: two
/// snapshots per slot, each followed to `available`, retain per volume.
#[test]
fn instance_target_snapshots_every_attached_volume() {
    let (sim, wd) = sim_with_volumes("300ms", &[]);
    let (root, data) = web_01(&sim);
    // Another instance whose name contains ours must not be picked.
    sim.kc_instance(
        "9d2c7e4a-0000-4000-8000-00000000000b",
        "web-01-canary",
        &[("cccc-other", true)],
    );
    let manual = sim.kc_manual(data, "before-upgrade");
    let cfg = wd.write_config(&config(&wd, &sim, &policy("instance", &["web-01"], 2, "")));
    for i in 0..3 {
        if i > 0 {
            next_second();
        }
        let out = snapshot_ok(&wd, &cfg);
        assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 2 created"));
    }
    let creates = accepted(&sim.kc_requests("CreateSnapshot"));
    assert_eq!(creates.len(), 6, "two per slot");
    assert!(creates
        .iter()
        .all(|r| r["params"]["volume_id"] != "cccc-other"));
    for v in [root, data] {
        let mine: Vec<&Value> = creates
            .iter()
            .filter(|r| r["params"]["volume_id"] == v)
            .collect();
        assert_eq!(mine.len(), 3);
        assert!(mine.iter().all(|r| r["params"]["snapshot.name"]
            .as_str()
            .is_some_and(|n| n.starts_with("db-web-01-") && n.ends_with(&format!("-{v}")))));
        let own: Vec<Value> = sim
            .kc_live(v)
            .into_iter()
            .filter(|s| s["id"] != manual.as_str())
            .collect();
        assert_eq!(own.len(), 2, "retain 2 on {v}: {own:?}");
        assert!(own.iter().all(|s| s["status"] == "available"));
    }
    assert!(sim.kc_live(data).iter().any(|s| s["id"] == manual.as_str()));
    assert_eq!(wd.state().all_snapshots().expect("ledger").len(), 6);
    assert_eq!(wd.available_and_deleted(None), (4, 2));
    // The instance was looked up with the API's filters.
    let lookups = sim.kc_requests("ListInstances");
    assert!(lookups.iter().any(|r| r["params"]["name"] == "web-01"));
}

/// A token that lives 1 s, and snapshots that take 2.5 s: the client
/// renews before expiry (no 401). Then every token is revoked mid-run: one
/// 401, one re-issue, and the run still succeeds.
#[test]
fn token_is_renewed_mid_run_and_reissued_after_a_401() {
    let (sim, wd) = sim_with_volumes("2500ms", &[]);
    sim.kc_volume("vol-a");
    sim.post("/_sim/kakaocloud/settings", json!({"token_ttl_ms": 1000}));
    let cfg = wd.write_config(&config(&wd, &sim, &policy("volume", &["vol-a"], 3, "")));
    snapshot_ok(&wd, &cfg);
    let issues = sim.kc_requests("IssueToken").len();
    assert!(issues >= 3, "renewed during the run: {issues} issues");
    let all = sim.journal("kakaocloud", None);
    assert!(
        all.iter().all(|r| r["http_status"] != 401),
        "renewed before expiry"
    );

    // Long-lived tokens now; revoke them while the next run polls.
    sim.post(
        "/_sim/kakaocloud/settings",
        json!({"token_ttl_ms": 3_600_000}),
    );
    next_second();
    let child = wd.spawn_as(&cfg, &["snapshot", "--policy", "db"], KC_SECRET);
    wait_for("the second create", MINUTE, || {
        (accepted(&sim.kc_requests("CreateSnapshot")).len() == 2).then_some(())
    });
    sim.post("/_sim/kakaocloud/tokens/revoke", json!({}));
    let out = child.wait_with_output().expect("snapshot output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = sim.journal("kakaocloud", None);
    assert_eq!(
        all.iter().filter(|r| r["http_status"] == 401).count(),
        1,
        "one 401, then a fresh token"
    );
    assert_eq!(sim.kc_live("vol-a").len(), 2);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("gAAAA"),
        "token never logged"
    );
}

/// An instance that matches nothing is a failed run naming it: in the
/// command's output, the log and `status`; nothing is created.
#[test]
fn unknown_instance_is_a_clear_error() {
    let (sim, wd) = sim_with_volumes("300ms", &[]);
    sim.kc_instance("i-real", "web-01", &[("v-root", true)]);
    let cfg = wd.write_config(&config(
        &wd,
        &sim,
        &policy("instance", &["ghost-01"], 2, ""),
    ));
    let path = cfg.to_str().expect("utf-8");
    let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], KC_SECRET);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("instance \"ghost-01\" not found"),
        "{stdout}"
    );
    assert!(
        stderr.contains("instance \\\"ghost-01\\\" not found")
            || stderr.contains("instance \"ghost-01\" not found"),
        "{stderr}"
    );
    assert!(sim.kc_requests("CreateSnapshot").is_empty());

    let out = wd.cmd(&["status", "--json", "-c", path], KC_SECRET);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("status json");
    let t = &doc["targets"][0];
    assert_eq!(t["last_run"]["state"], "failed", "{doc}");
    assert!(
        t["last_error"].as_str().unwrap_or("").contains("ghost-01"),
        "{doc}"
    );
    let runs = wd.state().runs_for("db", "ghost-01", 5).expect("runs");
    assert_eq!(runs[0].state, RunState::Failed);
}

/// full_every = 3: full, incremental, incremental, full, … With retain = 2
/// pruning deletes the first chain only once nothing kept depends on it,
/// leaf first, and never leaves an incremental without its parent.
#[test]
fn full_every_three_builds_chains_and_prunes_whole_chains() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    let mut ids: Vec<String> = Vec::new();
    chain_runs(&sim, &wd, "vol-chain", 6, |run, all| {
        let newest = all.last().expect("a snapshot");
        ids.push(newest["id"].as_str().expect("id").to_string());
        // Chains stay whole: every live incremental's parent is live.
        let live: Vec<&Value> = all.iter().filter(|s| s["status"] != "deleted").collect();
        for s in &live {
            if let Some(p) = s["parent_id"].as_str() {
                assert!(
                    live.iter().any(|l| l["id"] == p),
                    "run {run}: {s} lost its parent"
                );
            }
        }
        let live_ids: Vec<&str> = live.iter().filter_map(|s| s["id"].as_str()).collect();
        let expect: Vec<&str> = match run {
            1..=4 => ids.iter().map(String::as_str).collect(),
            // The first chain (1, 2, 3) goes as a whole once 4 and 5 are kept.
            _ => ids[3..].iter().map(String::as_str).collect(),
        };
        assert_eq!(live_ids, expect, "after run {run}");
    });
    let pattern: Vec<bool> = accepted(&sim.kc_requests("CreateSnapshot"))
        .iter()
        .map(|r| r["params"]["snapshot.is_incremental"] == "true")
        .collect();
    assert_eq!(pattern, [false, true, true, false, true, true]);
    let all = sim.kc_snapshots();
    assert_eq!(all[1]["parent_id"], all[0]["id"]);
    assert_eq!(all[2]["parent_id"], all[1]["id"]);
    assert_eq!(all[4]["parent_id"], all[3]["id"]);
    // The deletes of chain one went leaf first.
    let deletes: Vec<String> = accepted(&sim.kc_requests("DeleteSnapshot"))
        .iter()
        .filter_map(|r| r["params"]["snapshot_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(deletes, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
}

/// The answer to the first volume's create is lost (the cloud
/// made the snapshot), so the engine must reconcile before creating again.
/// An instance target's slot is complete only when every attached volume
/// has its snapshot: the retry makes the missing one and reuses the one
/// that exists, never adopting a part-made slot as the whole.
#[test]
fn a_lost_create_answer_on_an_instance_still_snapshots_every_volume_once() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    let (root, data) = ("aaaa-root-1", "bbbb-data-1");
    sim.kc_instance(
        "9d2c7e4a-0000-4000-8000-0000000000c1",
        "web-01",
        &[(root, true), (data, false)],
    );
    let cfg = wd.write_config(&config(&wd, &sim, &policy("instance", &["web-01"], 5, "")));
    sim.fault(json!({"dialect": "kakaocloud", "action": "CreateSnapshot",
                     "fault": "drop_connection", "count": 1}));
    let out = snapshot_ok(&wd, &cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok, 2 created"), "{stdout}");
    for v in [root, data] {
        let live = sim.kc_live(v);
        assert_eq!(live.len(), 1, "one snapshot of the slot on {v}: {live:?}");
        assert_eq!(live[0]["status"], "available", "{live:?}");
    }
    let rows = wd.state().all_snapshots().expect("ledger");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.state == LedgerState::Available));
    let runs = wd.state().runs_for("db", "web-01", 5).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Succeeded);
}

/// One volume's snapshot of an instance slot already ended
/// failed in the ledger (its outcome was recorded while the other volume's
/// was still followed) when the daemon stopped. On restart the run is
/// finished from the operation still open, and must fail: a slot is good
/// only when every volume's snapshot is good (before, it was reported as
/// succeeded, never alerted, and pruned after).
#[test]
fn a_run_resumed_with_a_failed_volume_already_recorded_fails() {
    use snapwarden::providers::Created;
    use snapwarden::state::{Begin, NewRun, PollPlan};
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    let (root, data) = ("aaaa-root-8", "bbbb-data-8");
    sim.kc_instance(
        "9d2c7e4a-0000-4000-8000-0000000000c8",
        "web-01",
        &[(root, true), (data, false)],
    );
    let root_snap = sim.kc_manual(root, "db-web-01-root");
    let data_snap = sim.kc_manual(data, "db-web-01-data");
    let cfg = wd.write_config(&config(&wd, &sim, &policy("instance", &["web-01"], 5, "")));
    let now = Utc::now();
    {
        let state = SqliteLedger::open(&wd.state_path()).expect("ledger");
        let Begin::Started(run) = state
            .begin_run(
                &NewRun {
                    policy: "db".into(),
                    target: "web-01".into(),
                    provider: "kc".into(),
                    slot: now,
                    name: "db-web-01".into(),
                    full: true,
                },
                now,
            )
            .expect("intent")
        else {
            panic!("a fresh slot must start");
        };
        let created: Vec<Created> = [&root_snap, &data_snap]
            .iter()
            .map(|id| Created {
                snapshot_id: id.to_string(),
                operation: id.to_string(),
            })
            .collect();
        let ops = state
            .record_created(
                run,
                &created,
                now,
                PollPlan {
                    first_poll: now,
                    interval: Duration::from_millis(100),
                    deadline: now + chrono::Duration::minutes(5),
                },
            )
            .expect("record");
        state
            .finish_op(ops[1].id, Some("volume snapshot ended in error"), now)
            .expect("record the failed volume");
    }
    let daemon = Daemon::start(&cfg, KC_SECRET);
    let run = wait_for("the resumed run to end", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", "web-01", 5).ok()?;
        runs.into_iter().find(|r| !r.state.is_open())
    });
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains(&data_snap) && e.contains("ended in error")),
        "{run:?}"
    );
    drop(daemon);
}

/// A chain is deleted leaf first, and stops at its first
/// failed delete. The leaf's delete fails every attempt; the snapshot it
/// depends on is then not asked for (before, its delete was refused with
/// 409 and retried until the run's timeout, stalling the run). The next
/// run, with the cloud healthy again, deletes the whole chain.
#[test]
fn a_chain_stops_at_its_first_failed_delete() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    let v = "vol-chain-stop";
    let mut ids: Vec<String> = Vec::new();
    let cfg = chain_runs(&sim, &wd, v, 4, |_, all| {
        ids.push(
            all.last().expect("a snapshot")["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    });
    sim.fault(json!({"dialect": "kakaocloud", "action": "DeleteSnapshot",
                     "fault": "server_error", "count": 12}));
    next_second();
    let started = std::time::Instant::now();
    let out = wd.cmd(
        &[
            "snapshot",
            "-c",
            cfg.to_str().expect("utf-8"),
            "--policy",
            "db",
        ],
        KC_SECRET,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run must not wait out its timeout on a refused parent: {stdout}"
    );
    let asked: Vec<String> = sim
        .kc_requests("DeleteSnapshot")
        .iter()
        .filter_map(|r| r["params"]["snapshot_id"].as_str().map(str::to_string))
        .collect();
    assert!(
        asked.iter().all(|id| *id == ids[2]),
        "only the leaf: {asked:?}"
    );
    for id in &ids[..3] {
        assert!(
            sim.kc_live(v).iter().any(|s| s["id"] == id.as_str()),
            "{id} still there"
        );
    }
    next_second();
    snapshot_ok(&wd, &cfg);
    let live: Vec<String> = sim
        .kc_live(v)
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    assert!(
        ids[..3].iter().all(|id| !live.contains(id)),
        "the first chain went whole: {live:?}"
    );
}

/// An instance named in `targets` that the policy's selector also matches
/// (by id): one target, so one snapshot per volume for the slot, not one
/// under the name and another under the id.
#[test]
fn an_instance_named_and_selected_is_snapshotted_once_per_slot() {
    let (sim, wd) = sim_with_volumes("300ms", &[]);
    let (root, data) = ("vol-root-1", "vol-data-1");
    sim.kc_instance("i-1", "web-01", &[(root, true), (data, false)]);
    sim.kc_instance("i-2", "db-01", &[("vol-db-1", true)]);
    let cfg = wd.write_config(&config(
        &wd,
        &sim,
        &policy("instance", &["web-01"], 2, r#"select = { name = "web-*" }"#),
    ));
    let out = snapshot_ok(&wd, &cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let creates = accepted(&sim.kc_requests("CreateSnapshot"));
    let per_volume = |v: &str| {
        creates
            .iter()
            .filter(|r| r["params"]["volume_id"] == v)
            .count()
    };
    assert_eq!(
        (per_volume(root), per_volume(data), creates.len()),
        (1, 1, 2),
        "one snapshot per volume for the slot:\n{stdout}\n{creates:?}"
    );
    let rows = wd.state().all_snapshots().expect("ledger");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.target == "web-01"), "{rows:?}");
}

/// A volume detached from an instance target leaves the
/// target's listing. Its snapshots still exist: the ledger must not write
/// them off as deleted (they would become invisible), and `orphans` lists
/// them (ours, no longer part of the target).
#[test]
fn a_detached_volumes_snapshots_are_not_written_off() {
    let (sim, wd) = sim_with_volumes("100ms", &[]);
    let (_, data) = web_01(&sim);
    let cfg = wd.write_config(&config(&wd, &sim, &policy("instance", &["web-01"], 5, "")));
    snapshot_ok(&wd, &cfg);
    next_second();
    snapshot_ok(&wd, &cfg);
    let data_ids: Vec<String> = sim
        .kc_live(data)
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(data_ids.len(), 2);

    sim.post(
        "/_sim/kakaocloud/volumes",
        json!({"volume_id": data, "detach": true}),
    );
    next_second();
    let out = snapshot_ok(&wd, &cfg);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok, 1 created"),
        "only the root volume is attached now"
    );
    let rows = wd.state().all_snapshots().expect("ledger");
    for id in &data_ids {
        let row = rows
            .iter()
            .find(|r| &r.snapshot_id == id)
            .expect("ledger row");
        assert_eq!(
            row.state,
            LedgerState::Available,
            "{id} still exists on the cloud; it must not be written off"
        );
    }
    assert_eq!(sim.kc_live(data).len(), 2, "still on the cloud");

    let doc = wd.json_ok(
        &["orphans", "-c", cfg.to_str().expect("utf-8"), "--json"],
        KC_SECRET,
    );
    let listed: Vec<&str> = field_strs(&doc["orphans"], "snapshot_id");
    for id in &data_ids {
        assert!(listed.contains(&id.as_str()), "{id} listed: {doc}");
    }
    // Never deleted, never marked gone by `orphans --delete --yes`.
    wd.run_ok(&cfg, &["orphans", "--delete", "--yes"], KC_SECRET);
    assert_eq!(sim.kc_live(data).len(), 2);
    let rows = wd.state().all_snapshots().expect("ledger");
    assert!(rows
        .iter()
        .filter(|r| data_ids.contains(&r.snapshot_id))
        .all(|r| r.state == LedgerState::Available));
}

/// A snapshot a restore is still reading from is not pruned
/// under it. The restore (its new volume not ready yet) is in flight in the
/// ledger; retention wants the two older snapshots gone: the one being
/// restored from stays (held, saying why), the other goes.
#[test]
fn a_snapshot_being_restored_from_is_not_pruned() {
    use snapwarden::state::PollPlan;
    let (sim, wd) = sim_with_volumes("100ms", &[]);
    let v = "vol-restoring";
    sim.kc_volume(v);
    let cfg = wd.write_config(&config(&wd, &sim, &policy("volume", &[v], 5, "")));
    for run in 0..3 {
        if run > 0 {
            next_second();
        }
        snapshot_ok(&wd, &cfg);
    }
    let rows = wd.state().all_snapshots().expect("ledger");
    assert_eq!(rows.len(), 3);
    let (oldest, middle) = (rows[0].clone(), rows[1].clone());
    {
        let state = SqliteLedger::open(&wd.state_path()).expect("ledger");
        let now = Utc::now();
        state
            .begin_restore(
                oldest.id,
                "vol-being-made-from-the-oldest",
                now,
                PollPlan {
                    first_poll: now,
                    interval: Duration::from_secs(1),
                    deadline: now + chrono::Duration::hours(1),
                },
            )
            .expect("restore in flight");
    }
    let cfg = wd.write_config(&config(&wd, &sim, &policy("volume", &[v], 1, "")));
    let out = wd.cmd(
        &[
            "prune",
            "-c",
            cfg.to_str().expect("utf-8"),
            "--policy",
            "db",
        ],
        KC_SECRET,
    );
    let text = output_text(&out);
    let live: Vec<String> = sim
        .kc_live(v)
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    assert!(live.contains(&oldest.snapshot_id), "{text}");
    assert!(!live.contains(&middle.snapshot_id), "{text}");
    assert!(text.contains("being restored from"), "{text}");
}
