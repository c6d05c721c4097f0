//! Crash torture: the daemon runs a 1-second schedule on every dialect of
//! one simulator and is killed with SIGKILL at random moments — also right
//! after a create request reached the simulator and right after a delete
//! request did — and restarted each time, against the same simulator and
//! state database. At the end no slot has two snapshots, every marked
//! snapshot is in the ledger, retention holds, and no manual snapshot was
//! touched. And no slot is a silent gap: every run that succeeded has a
//! good snapshot of every volume of its target (one fleet is a KakaoCloud
//! instance of two volumes), and every run that failed or was skipped was
//! alerted.
//!
//! Short by default (30 kills, for CI). Longer by hand:
//! `SNAPWARDEN_TORTURE_KILLS=500` and/or `SNAPWARDEN_TORTURE_SECONDS=600`
//! (both must be reached); `SNAPWARDEN_TORTURE_SEED=N` replays a seed.

mod clouds;
mod util;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use snapwarden::state::{LedgerState, RunRow, RunState};

use clouds::{Kind, ALL};
use util::*;

const RETAIN: u32 = 2;
/// Answers to creates and deletes that are held back (the request is
/// processed first): widens the window in which a kill leaves an intent
/// without an id, or a delete whose answer was never recorded.
const HOLD_PROBABILITY: f64 = 0.3;
const HOLD_MS: u64 = 400;

struct Fleet {
    kind: Kind,
    policy: String,
    /// The policy's `resource`, where it differs from the kind's usual one.
    resource: Option<&'static str>,
    targets: Vec<String>,
    /// The volumes each target stands for (a target is its own volume
    /// unless it is an instance of several).
    volumes: BTreeMap<String, Vec<String>>,
    /// Ids of snapshots snapwarden must never touch.
    foreign: Vec<String>,
}

impl Fleet {
    fn volumes_of(&self, target: &str) -> Vec<String> {
        self.volumes
            .get(target)
            .cloned()
            .unwrap_or_else(|| vec![target.to_string()])
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a whole number"),
    }
}

#[derive(Clone, Copy, Debug)]
enum KillAt {
    Random(Duration),
    AfterCreate(Kind),
    AfterDelete(Kind),
}

fn config(wd: &Workdir, sim: &Sim, fleets: &[Fleet], schedule: &str) -> std::path::PathBuf {
    let alerts = alerts_path(wd);
    let mut text = clouds::config_text(wd, sim, &ALL, "requests_per_second = 200", &[]).replace(
        "log_format = \"text\"\n",
        &format!(
            "log_format = \"text\"\n\n\
             [alerts]\ncommand = [\"sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\n",
            alerts.display(),
            alerts.display()
        ),
    );
    for f in fleets {
        let mut section = clouds::policy(&f.policy, f.kind, &f.targets, schedule, RETAIN, "");
        if let Some(resource) = f.resource {
            section = section.replace(
                &format!("resource = \"{}\"", f.kind.resource()),
                &format!("resource = \"{resource}\""),
            );
        }
        text.push_str(&section);
        text.push('\n');
    }
    wd.write_config(&text)
}

fn alerts_path(wd: &Workdir) -> std::path::PathBuf {
    wd.dir.path().join("alerts.jsonl")
}

/// The alerts delivered: (kind, policy, target, at).
fn alerts(wd: &Workdir) -> Vec<(String, String, String, DateTime<Utc>)> {
    std::fs::read_to_string(alerts_path(wd))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|a| {
            let at = a["at"].as_str()?.parse().ok()?;
            Some((
                a["kind"].as_str()?.to_string(),
                a["policy"].as_str()?.to_string(),
                a["target"].as_str()?.to_string(),
                at,
            ))
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_never_duplicates_loses_or_wrongly_deletes() {
    let started = Instant::now();
    let seed = env_u64("SNAPWARDEN_TORTURE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let kills_wanted = env_u64("SNAPWARDEN_TORTURE_KILLS").unwrap_or(30).max(30);
    let seconds_wanted = Duration::from_secs(env_u64("SNAPWARDEN_TORTURE_SECONDS").unwrap_or(0));
    println!("torture: seed {seed} (replay with SNAPWARDEN_TORTURE_SEED={seed}), {kills_wanted} kills, at least {seconds_wanted:?}");
    let mut rng = StdRng::seed_from_u64(seed);

    let sim = Sim::start("400ms");
    let wd = Workdir::new();
    let mut fleets = Vec::new();
    for kind in ALL {
        kind.prepare(&sim);
        let n = match kind {
            Kind::Lightsail | Kind::PowerVs => 2,
            _ => 3,
        };
        let policy = format!("t{}", kind.provider());
        let targets: Vec<String> = (1..=n).map(|i| kind.target_id("t", i)).collect();
        let mut foreign = Vec::new();
        for t in &targets {
            kind.seed_target(&sim, t);
            foreign.push(kind.seed_manual(&sim, t));
            foreign.extend(kind.seed_lookalike(&sim, &policy, t));
        }
        for action in [kind.create_action(), kind.delete_action()] {
            sim.fault(
                json!({"dialect": kind.dialect(), "action": action, "fault": "latency",
                             "latency_ms": HOLD_MS, "probability": HOLD_PROBABILITY}),
            );
        }
        fleets.push(Fleet {
            kind,
            policy,
            resource: None,
            targets,
            volumes: BTreeMap::new(),
            foreign,
        });
    }
    // A KakaoCloud instance of two volumes: one create call per volume, so
    // a kill can fall between them; every slot must still cover both.
    {
        let (instance, volumes) = (
            "9d2c7e4a-0000-4000-8000-0000000000f1".to_string(),
            vec!["vol-kci-root".to_string(), "vol-kci-data".to_string()],
        );
        sim.post(
            "/_sim/kakaocloud/instances",
            json!({"instance_id": instance, "name": "torture-web",
                   "volumes": [{"volume_id": volumes[0], "is_root": true},
                               {"volume_id": volumes[1], "is_root": false}]}),
        );
        let foreign = vec![Kind::KakaoCloud.seed_manual(&sim, &volumes[1])];
        fleets.push(Fleet {
            kind: Kind::KakaoCloud,
            policy: "tkcinstance".into(),
            resource: Some("instance"),
            targets: vec![instance.clone()],
            volumes: BTreeMap::from([(instance, volumes)]),
            foreign,
        });
    }
    let cfg = config(&wd, &sim, &fleets, "* * * * * *");

    let (mut kills, mut after_create, mut after_delete) = (0u32, 0u32, 0u32);
    let mut logs: Vec<Lines> = Vec::new();
    while kills < kills_wanted as u32 || started.elapsed() < seconds_wanted {
        let daemon = clouds::daemon(wd.dir.path(), &cfg);
        logs.push(daemon.log.clone());
        let at = match rng.random_range(0..3) {
            0 => KillAt::Random(Duration::from_millis(rng.random_range(300..3000))),
            1 => KillAt::AfterCreate(ALL[rng.random_range(0..ALL.len())]),
            _ => KillAt::AfterDelete(ALL[rng.random_range(0..ALL.len())]),
        };
        match at {
            KillAt::Random(d) => std::thread::sleep(d),
            KillAt::AfterCreate(kind) | KillAt::AfterDelete(kind) => {
                let action = match at {
                    KillAt::AfterCreate(_) => kind.create_action(),
                    _ => kind.delete_action(),
                };
                let before = kind.requests(&sim, action).len();
                let deadline = Instant::now() + Duration::from_secs(8);
                let mut seen = false;
                while Instant::now() < deadline {
                    if kind.requests(&sim, action).len() > before {
                        seen = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                if seen {
                    match at {
                        KillAt::AfterCreate(_) => after_create += 1,
                        _ => after_delete += 1,
                    }
                }
            }
        }
        daemon.kill9();
        kills += 1;
    }
    let kill_phase = started.elapsed();

    // A clean run with no slot due lets every intent and operation left by
    // the kills settle, then a final prune.
    let settle_cfg = config(&wd, &sim, &fleets, "0 0 3 1 1 *");
    let daemon = clouds::daemon(wd.dir.path(), &settle_cfg);
    logs.push(daemon.log.clone());
    wait_for(
        "every run and operation to settle",
        Duration::from_secs(60),
        || {
            let st = wd.try_state()?;
            (st.open_runs().ok()?.is_empty() && st.ops_in_flight().ok()?.is_empty()).then_some(())
        },
    );
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0), "the settling daemon exits 0 on SIGTERM");
    let out = clouds::cmd(
        wd.dir.path(),
        &["prune", "-c", settle_cfg.to_str().expect("utf-8 path")],
    );
    assert!(
        out.status.success(),
        "final prune failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // ---------------------------------------------------------- verdicts
    let ledger = wd.state().all_snapshots().expect("ledger snapshots");
    let runs_by_state = {
        let st = wd.state();
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for f in &fleets {
            for t in &f.targets {
                for r in st.runs_for(&f.policy, t, 100_000).expect("runs") {
                    *m.entry(format!("{:?}", r.state)).or_default() += 1;
                    if let Some(e) = &r.error {
                        println!(
                            "torture: {}/{} slot {} {:?}: {e}",
                            r.policy, r.target, r.slot, r.state
                        );
                    }
                }
            }
        }
        m
    };
    let delivered = alerts(&wd);
    let (mut created, mut deleted) = (0usize, 0usize);
    let mut problems = Vec::new();
    for f in &fleets {
        let kind = f.kind;
        let snaps = kind.snapshots(&sim, &[f.policy.as_str()]);
        let mut per_slot: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        for s in &snaps {
            let Some((p, t, slot)) = &s.marker else {
                continue;
            };
            if p != &f.policy {
                continue;
            }
            created += 1;
            if s.deleted {
                deleted += 1;
            }
            if !f.volumes_of(t).contains(&s.source) {
                problems.push(format!(
                    "{kind:?}: {} is marked for {t} but is of {}",
                    s.id, s.source
                ));
            }
            per_slot
                .entry((t.clone(), slot.clone(), s.source.clone()))
                .or_default()
                .push(s.id.clone());
            // Known to the ledger, and not written off while it still exists.
            let rows: Vec<_> = ledger
                .iter()
                .filter(|r| {
                    // Lightsail's ledger id is `DiskSnapshot/{name}`.
                    r.snapshot_id == s.id
                        || r.snapshot_id == s.name
                        || r.snapshot_id.rsplit('/').next() == Some(s.name.as_str())
                })
                .collect();
            if rows.is_empty() {
                let same_slot: Vec<String> = ledger
                    .iter()
                    .filter(|r| r.policy == *p && r.target == *t)
                    .filter(|r| snapwarden::schedule::slot_label(r.slot) == *slot)
                    .map(|r| format!("{:?}", r))
                    .collect();
                problems.push(format!(
                    "{kind:?}: marked snapshot {} ({}, {}) is not in the ledger; ledger rows of its slot: {same_slot:?}",
                    s.id, s.name, s.status
                ));
            } else if s.live && rows.iter().all(|r| r.state == LedgerState::Deleted) {
                let lines: Vec<String> = logs
                    .iter()
                    .flat_map(|l| l.all())
                    .filter(|l| l.contains(&s.name) || l.contains(&s.id))
                    .collect();
                problems.push(format!(
                    "{kind:?}: snapshot {} still exists but the ledger has it deleted; log:\n{}",
                    s.id,
                    lines.join("\n")
                ));
            }
        }
        for ((t, slot, source), ids) in &per_slot {
            if ids.len() > 1 {
                problems.push(format!(
                    "{kind:?}: slot {slot} of {t} ({source}) has {} snapshots: {ids:?}",
                    ids.len()
                ));
            }
        }
        for t in &f.targets {
            for v in f.volumes_of(t) {
                let own_live = snaps
                    .iter()
                    .filter(|s| s.live && s.source == v)
                    .filter(|s| s.marker.as_ref().is_some_and(|(p, _, _)| *p == f.policy))
                    .count();
                if own_live > RETAIN as usize {
                    problems.push(format!(
                        "{kind:?}: {t} ({v}) keeps {own_live} own snapshots, retain is {RETAIN}"
                    ));
                }
            }
        }
        // No silent gap: a run that succeeded made a snapshot of every
        // volume of its target, each good (or since pruned); a run that
        // failed or was skipped was alerted.
        let st = wd.state();
        for t in &f.targets {
            for run in st.runs_for(&f.policy, t, 100_000).expect("runs") {
                let label = snapwarden::schedule::slot_label(run.slot);
                match run.state {
                    RunState::Succeeded => {
                        for v in f.volumes_of(t) {
                            if !per_slot.contains_key(&(t.clone(), label.clone(), v.clone())) {
                                problems.push(format!(
                                    "{kind:?}: run {} of {t} slot {label} succeeded without a snapshot of {v}",
                                    run.id
                                ));
                            }
                        }
                        let rows = st.run_snapshots(run.id).expect("run snapshots");
                        if rows.len() != f.volumes_of(t).len()
                            || rows.iter().any(|r| {
                                !matches!(r.state, LedgerState::Available | LedgerState::Deleted)
                            })
                        {
                            problems.push(format!(
                                "{kind:?}: run {} of {t} slot {label} succeeded with ledger snapshots {rows:?}",
                                run.id
                            ));
                        }
                    }
                    RunState::Failed | RunState::Skipped
                        if !alerted(&delivered, &f.policy, t, &run) =>
                    {
                        problems.push(format!(
                            "{kind:?}: run {} of {t} slot {label} ended {:?} ({}) without an alert",
                            run.id,
                            run.state,
                            run.error.as_deref().unwrap_or("")
                        ));
                    }
                    _ => {}
                }
            }
        }
        let deletes: Vec<String> = kind
            .requests(&sim, kind.delete_action())
            .iter()
            .map(|r| r.to_string())
            .collect();
        for id in &f.foreign {
            match snaps.iter().find(|s| s.id == *id) {
                Some(s) if s.live => {}
                other => problems.push(format!(
                    "{kind:?}: foreign snapshot {id} is gone: {other:?}"
                )),
            }
            if deletes
                .iter()
                .any(|d| d.contains(&format!("\"{id}\"")) || d.contains(&format!("{id}\"")))
            {
                problems.push(format!(
                    "{kind:?}: a delete request named foreign snapshot {id}"
                ));
            }
        }
    }
    let text_of_logs: Vec<String> = logs.iter().map(Lines::text).collect();
    let count =
        |needle: &str| -> usize { text_of_logs.iter().map(|t| t.matches(needle).count()).sum() };
    let panics = count("panicked");
    println!(
        "torture figures: seed {seed}; kills {kills} (after a create request {after_create}, after a delete request {after_delete}); \
         marked snapshots created {created}, deleted by retention {deleted}; adopted by name {}, runs resumed {}; \
         runs {runs_by_state:?}; kill phase {kill_phase:.1?}, total {:.1?}",
        count("adopting it"),
        count("resuming run"),
        started.elapsed()
    );
    assert_eq!(panics, 0, "the daemon panicked");
    assert!(
        after_create > 0 && after_delete > 0,
        "both targeted kill kinds happened"
    );
    assert!(
        created >= 20,
        "too little happened to prove anything: {created} snapshots"
    );
    assert!(deleted > 0, "retention never deleted anything");
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Every fleet's ledger agrees with what exists: not one run left open.
    let st = wd.state();
    assert!(st.open_runs().expect("open runs").is_empty());
}

/// Whether the operator heard of a run that failed or was skipped: a
/// `failure` or `slot_skipped` alert for its target came after its slot
/// with no `recovery` in between, or a `failure` alert was still standing
/// (not recovered) at its slot. One `failure` covers a whole failing
/// streak, and `slot_skipped` is sent once per `repeat_after` (24 h here)
/// while slots keep being skipped.
fn alerted(
    alerts: &[(String, String, String, DateTime<Utc>)],
    policy: &str,
    target: &str,
    run: &RunRow,
) -> bool {
    let mine: Vec<(&str, DateTime<Utc>)> = alerts
        .iter()
        .filter(|(_, p, t, _)| p == policy && t == target)
        .map(|(k, _, _, at)| (k.as_str(), *at))
        .collect();
    let bad = |k: &str| k == "failure" || k == "slot_skipped";
    let told_after = mine.iter().any(|(k, at)| {
        bad(k)
            && *at >= run.slot
            && !mine
                .iter()
                .any(|(r, rat)| *r == "recovery" && *rat > run.slot && rat < at)
    });
    let standing = mine
        .iter()
        .filter(|(k, at)| (*k == "failure" || *k == "recovery") && *at <= run.slot)
        .max_by_key(|(_, at)| *at)
        .is_some_and(|(k, _)| *k == "failure");
    let skipped_told =
        run.state == RunState::Skipped && mine.iter().any(|(k, _)| *k == "slot_skipped");
    told_after || standing || skipped_told
}
