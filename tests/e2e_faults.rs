//! Cloud faults end to end, through the simulator's `/_sim/faults`:
//! throttling, 5xx, connection resets, answers slower than the client's
//! `request_timeout`, truncated JSON, jobs that never finish or end failed.
//! The daemon never panics, retries what is retryable, fails what is not
//! with a clear message, never duplicates a create whose answer was lost,
//! and keeps serving the other policies meanwhile.

mod clouds;
mod util;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use snapwarden::state::{LedgerState, RunState};

use clouds::{Kind, ALL};
use util::*;

fn config_text(wd: &Workdir, sim: &Sim, provider_extra: &str, policies: &[String]) -> String {
    clouds::config_text(wd, sim, &ALL, provider_extra, policies)
}

/// Marked snapshots of `policy` per (target, slot), deleted ones included.
fn per_slot(kind: Kind, sim: &Sim, policy: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut m: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for s in kind.snapshots(sim, &[policy]) {
        if let Some((p, t, slot)) = s.marker {
            if p == policy {
                m.entry((t, slot)).or_default().push(s.id);
            }
        }
    }
    m
}

fn assert_no_slot_doubled(kind: Kind, sim: &Sim, policy: &str) -> usize {
    let slots = per_slot(kind, sim, policy);
    for ((t, slot), ids) in &slots {
        assert_eq!(ids.len(), 1, "{kind:?}: slot {slot} of {t} has {ids:?}");
    }
    slots.len()
}

fn runs(wd: &Workdir, policy: &str, target: &str) -> Vec<snapwarden::state::RunRow> {
    wd.state().runs_for(policy, target, 1000).expect("runs")
}

fn status_json(wd: &Workdir, cfg: &std::path::Path) -> Value {
    let out = clouds::cmd(
        wd.dir.path(),
        &["status", "--json", "-c", cfg.to_str().expect("utf-8")],
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", output_text(&out)))
}

fn target_status<'a>(doc: &'a Value, policy: &str, target: &str) -> &'a Value {
    doc["targets"]
        .as_array()
        .and_then(|ts| {
            ts.iter()
                .find(|t| t["policy"] == policy && t["target"] == target)
        })
        .unwrap_or_else(|| panic!("{policy}/{target} not in status: {doc}"))
}

/// 20 % throttling, 10 % 5xx, connection resets and truncated JSON on
/// every QingCloud and KakaoCloud request while the daemon runs a 1-second
/// schedule: their runs still succeed through retries, no slot is doubled,
/// the healthy UCloudStack policy succeeds on every slot, and SIGTERM ends
/// the daemon with 0.
#[test]
fn mixed_faults_are_retried_and_other_policies_keep_succeeding() {
    let (sim, wd) = sim_with_volumes("300ms", &[]);
    let faulted = [Kind::QingCloud, Kind::KakaoCloud];
    let mut policies = Vec::new();
    let mut fleets = Vec::new();
    for kind in faulted.iter().copied().chain([Kind::UCloudStack]) {
        kind.prepare(&sim);
        let targets: Vec<String> = (1..=2).map(|i| kind.target_id("f", i)).collect();
        for t in &targets {
            kind.seed_target(&sim, t);
        }
        let policy = format!("f{}", kind.provider());
        policies.push(clouds::policy(
            &policy,
            kind,
            &targets,
            "* * * * * *",
            3,
            "",
        ));
        fleets.push((kind, policy, targets));
    }
    for kind in faulted {
        for (fault, p) in [
            ("throttle", 0.2),
            ("server_error", 0.1),
            ("drop_connection", 0.05),
            ("malformed", 0.05),
        ] {
            sim.fault(json!({"dialect": kind.dialect(), "fault": fault, "probability": p}));
        }
    }
    let cfg = wd.write_config(&config_text(
        &wd,
        &sim,
        "requests_per_second = 200\nrequest_timeout = \"2s\"",
        &policies,
    ));
    let mut daemon = clouds::daemon(wd.dir.path(), &cfg);
    wait_for("four succeeded runs on every target", MINUTE, || {
        let st = wd.try_state()?;
        fleets
            .iter()
            .all(|(_, p, ts)| {
                ts.iter().all(|t| {
                    st.runs_for(p, t, 1000).is_ok_and(|rs| {
                        rs.iter().filter(|r| r.state == RunState::Succeeded).count() >= 4
                    })
                })
            })
            .then_some(())
    });
    assert!(daemon.is_running(), "the daemon is still alive");
    let log = daemon.log.clone();
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0), "exit 0 on SIGTERM");
    let log = log.text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("retrying"), "faults were retried:\n{log}");

    for kind in faulted {
        let hit: usize = ["throttle", "server_error", "drop_connection", "malformed"]
            .iter()
            .map(|f| {
                sim.journal(kind.dialect(), None)
                    .iter()
                    .filter(|r| r["fault"].as_str().is_some_and(|x| x.contains(f)))
                    .count()
            })
            .sum();
        assert!(hit > 0, "{kind:?}: no request was faulted");
    }
    for (kind, policy, targets) in &fleets {
        let slots = assert_no_slot_doubled(*kind, &sim, policy);
        assert!(slots >= 8, "{kind:?}: only {slots} slots snapshotted");
        if *kind == Kind::UCloudStack {
            for t in targets {
                let rs = runs(&wd, policy, t);
                assert!(
                    rs.iter().all(
                        |r| matches!(r.state, RunState::Succeeded | RunState::Skipped)
                            || r.state.is_open()
                    ),
                    "the healthy policy never fails: {rs:?}"
                );
            }
        }
    }
}

/// The create request is processed but its answer is lost (slower than
/// `request_timeout`, connection reset, truncated JSON): the run still ends
/// with exactly one snapshot for the slot on every dialect, because the
/// create is reconciled by name before it is retried.
#[test]
fn lost_create_answer_never_duplicates_on_any_dialect() {
    let sim = Sim::start("200ms");
    let mut failures = Vec::new();
    for kind in ALL {
        kind.prepare(&sim);
        for (i, (fault, extra)) in [
            ("latency", json!({"latency_ms": 2500})),
            ("drop_connection", json!({})),
            ("malformed", json!({})),
        ]
        .into_iter()
        .enumerate()
        {
            let wd = Workdir::new();
            let target = kind.target_id(&format!("l{i}"), 1);
            kind.seed_target(&sim, &target);
            let policy = format!("l{}{i}", kind.provider());
            let mut spec = json!({"dialect": kind.dialect(), "action": kind.create_action(),
                                  "fault": fault, "count": 1});
            if let (Some(o), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            sim.fault(spec);
            let cfg = wd.write_config(&config_text(
                &wd,
                &sim,
                "requests_per_second = 200\nrequest_timeout = \"1s\"",
                &[clouds::policy(
                    &policy,
                    kind,
                    std::slice::from_ref(&target),
                    "0 0 3 * * *",
                    3,
                    "",
                )],
            ));
            let out = clouds::cmd(
                wd.dir.path(),
                &[
                    "snapshot",
                    "-c",
                    cfg.to_str().expect("utf-8"),
                    "--policy",
                    &policy,
                ],
            );
            let slots = per_slot(kind, &sim, &policy);
            let faulted = kind
                .requests(&sim, kind.create_action())
                .iter()
                .filter(|r| r["fault"].as_str().is_some_and(|f| f.contains(fault)))
                .count();
            let ok = out.status.success()
                && slots.len() == 1
                && slots.values().all(|ids| ids.len() == 1)
                && faulted >= 1;
            if !ok {
                failures.push(format!(
                    "{kind:?} / {fault}: exit {:?}, slots {slots:?}, faulted creates {faulted}\n{}",
                    out.status.code(),
                    output_text(&out)
                ));
            }
            // Clear what is left (a fault that did not hit) before the next case.
            reqwest::blocking::Client::new()
                .delete(format!("{}/_sim/faults", sim.url))
                .send()
                .expect("clear faults");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A job that never finishes fails its run at the policy's timeout, a job
/// that ends failed fails its run, each with a clear message in the ledger
/// and in `status --json`; neither run prunes; a healthy policy on another
/// dialect succeeds on every slot meanwhile; the daemon stays up.
#[test]
fn stuck_and_failed_jobs_fail_clearly_while_other_policies_keep_succeeding() {
    let (sim, wd) = sim_with_volumes("300ms", &[]);
    let stuck = (Kind::QingCloud, "sq", "vol-sq0001");
    let failed = (Kind::Lightsail, "sl", "data-sl-1");
    let healthy = (Kind::UCloudStack, "su", "disk-su0001");
    for (kind, _, target) in [stuck, failed, healthy] {
        kind.prepare(&sim);
        kind.seed_target(&sim, target);
    }
    sim.fault(
        json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "never_finish"}),
    );
    sim.fault(json!({"dialect": "lightsail", "action": Kind::Lightsail.create_action(), "fault": "fail_job"}));
    let schedule = seconds_from_now(&[2, 6]);
    let policies: Vec<String> = [stuck, failed, healthy]
        .iter()
        .map(|(kind, p, t)| {
            clouds::policy(p, *kind, &[t.to_string()], &schedule, 1, "timeout = \"2s\"")
        })
        .collect();
    let cfg = wd.write_config(&config_text(
        &wd,
        &sim,
        "requests_per_second = 200",
        &policies,
    ));
    let mut daemon = clouds::daemon(wd.dir.path(), &cfg);
    wait_for("both slots to end on every policy", MINUTE, || {
        let st = wd.try_state()?;
        [stuck, failed, healthy]
            .iter()
            .all(|(_, p, t)| {
                st.runs_for(p, t, 10)
                    .is_ok_and(|rs| rs.len() >= 2 && rs.iter().all(|r| !r.state.is_open()))
            })
            .then_some(())
    });
    assert!(daemon.is_running(), "the daemon is still alive");
    let doc = status_json(&wd, &cfg);
    let log = daemon.log.clone();
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    assert!(!log.text().contains("panicked"));

    let healthy_runs = runs(&wd, healthy.1, healthy.2);
    assert!(
        healthy_runs.iter().all(|r| r.state == RunState::Succeeded),
        "{healthy_runs:?}"
    );
    for ((kind, p, t), words) in [(stuck, ["time", "out"]), (failed, ["fail", "fail"])] {
        let rs = runs(&wd, p, t);
        assert!(
            rs.iter().all(|r| r.state == RunState::Failed),
            "{kind:?}: {rs:?}"
        );
        // The first slot's run meets the fault itself; a later one may
        // instead find the volume still busy with the stuck job.
        let first = rs.iter().min_by_key(|r| r.slot).expect("a run");
        let e = first.error.as_deref().unwrap_or("").to_lowercase();
        assert!(
            words.iter().all(|w| e.contains(w)),
            "{kind:?}: unclear error {e:?}"
        );
        assert!(rs
            .iter()
            .all(|r| r.error.as_deref().is_some_and(|e| !e.is_empty())));
        let st = target_status(&doc, p, t);
        assert!(
            st["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{kind:?}: status shows no error: {st}"
        );
        assert!(
            st["consecutive_failures"].as_u64().unwrap_or(0) >= 1,
            "{st}"
        );
        assert!(
            kind.requests(&sim, kind.delete_action()).is_empty(),
            "{kind:?}: a failed run pruned"
        );
        // Nothing the engine recorded is counted as good.
        let ledger = wd.state().all_snapshots().expect("ledger");
        assert!(
            ledger
                .iter()
                .filter(|s| s.policy == *p)
                .all(|s| s.state != LedgerState::Available),
            "{kind:?}: {ledger:?}"
        );
    }
}
