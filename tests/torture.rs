//! Crash torture: the daemon runs a 1-second schedule on every dialect of
//! one simulator and is killed with SIGKILL at random moments — also right
//! after a create request reached the simulator and right after a delete
//! request did — and restarted each time, against the same simulator and
//! state database. At the end no slot has two snapshots, every marked
//! snapshot is in the ledger, retention holds, and no manual snapshot was
//! touched. Now and then an operator holds a live snapshot while the
//! daemon runs: no delete request names it after that. And no slot is a silent gap: every run that succeeded has a
//! good snapshot of every volume of its target (one fleet is a KakaoCloud
//! instance of two volumes), and every run that failed or was skipped was
//! alerted.
//!
//! Short by default (30 kills, for CI). Longer by hand:
//! `SNAPWARDEN_TORTURE_KILLS=500` and/or `SNAPWARDEN_TORTURE_SECONDS=600`
//! (both must be reached); `SNAPWARDEN_TORTURE_SEED=N` replays a seed.

mod clouds;
mod util;

#[path = "support/pg_cluster.rs"]
mod pg_cluster;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use snapwarden::state::{
    Ledger, LedgerState, PgLedger, PgOptions, RunRow, RunState, SnapshotRow, SqliteLedger,
};

use clouds::{Kind, ALL};
use util::*;

const RETAIN: u32 = 2;
/// Answers to creates and deletes that are held back (the request is
/// processed first): widens the window in which a kill leaves an intent
/// without an id, or a delete whose answer was never recorded.
const HOLD_PROBABILITY: f64 = 0.3;
const HOLD_MS: u64 = 400;
/// A schedule that is never due while a test runs: the settling daemon
/// only carries what the kills left open to its end.
const SETTLE_SCHEDULE: &str = "0 0 3 1 1 *";

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

/// The policy file's text: every fleet's policy on `schedule`, alerts
/// appended to the work directory's file.
fn config_text(wd: &Workdir, sim: &Sim, fleets: &[Fleet], schedule: &str) -> String {
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
    text
}

fn config(wd: &Workdir, sim: &Sim, fleets: &[Fleet], schedule: &str) -> PathBuf {
    wd.write_config(&config_text(wd, sim, fleets, schedule))
}

/// The policy file of node `node` of a pair on the shared ledger at `url`
/// (short leases, so a takeover takes about 4 s), written to
/// `{file}.toml` in the work directory.
fn node_config(
    wd: &Workdir,
    sim: &Sim,
    fleets: &[Fleet],
    schedule: &str,
    url: &str,
    node: &str,
    file: &str,
) -> PathBuf {
    let own = format!("state_path = \"{}\"\n", wd.state_path().display());
    let text = config_text(wd, sim, fleets, schedule);
    assert!(text.contains(&own), "the config names the SQLite ledger");
    let text = text.replace(
        &own,
        &format!(
            "state_url = \"{url}\"\nnode_name = \"{node}\"\nlease_duration = \"3s\"\n\
             lease_renew_every = \"1s\"\ntakeover_grace = \"10s\"\n"
        ),
    );
    let path = wd.dir.path().join(format!("{file}.toml"));
    std::fs::write(&path, text).expect("write a node's config");
    path
}

fn alerts_path(wd: &Workdir) -> PathBuf {
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

/// A synchronous view of a ledger (the SQLite file of one daemon, or the
/// PostgreSQL ledger of a pair) for the verdicts: one verdict code reads
/// both through [`Ledger`].
struct View {
    ledger: Arc<dyn Ledger>,
    rt: tokio::runtime::Runtime,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

impl View {
    /// The SQLite ledger of `wd`, read-only; `None` until the daemon has
    /// created it.
    fn sqlite(wd: &Workdir) -> Option<View> {
        let ledger = SqliteLedger::open_read_only(&wd.state_path()).ok()?;
        Some(View {
            ledger: Arc::new(ledger),
            rt: runtime(),
        })
    }

    /// The shared ledger at `url`; `None` while it cannot be reached.
    fn postgres(url: &str) -> Option<View> {
        let rt = runtime();
        let ledger = rt
            .block_on(PgLedger::connect(url, None, PgOptions::default()))
            .ok()?;
        Some(View {
            ledger: Arc::new(ledger),
            rt,
        })
    }

    fn all_snapshots(&self) -> Vec<SnapshotRow> {
        self.rt
            .block_on(self.ledger.all_snapshots())
            .expect("ledger snapshots")
    }

    fn runs_for(&self, policy: &str, target: &str) -> Vec<RunRow> {
        self.rt
            .block_on(self.ledger.runs_for(policy, target, 100_000))
            .expect("runs")
    }

    fn run_snapshots(&self, run_id: i64) -> Vec<SnapshotRow> {
        self.rt
            .block_on(self.ledger.run_snapshots(run_id))
            .expect("run snapshots")
    }

    fn open_runs(&self) -> Vec<RunRow> {
        self.rt
            .block_on(self.ledger.open_runs())
            .expect("open runs")
    }

    /// Whether no run and no operation is open (`None`: not readable now).
    fn settled(&self) -> Option<bool> {
        let runs = self.rt.block_on(self.ledger.open_runs()).ok()?;
        let ops = self.rt.block_on(self.ledger.ops_in_flight()).ok()?;
        Some(runs.is_empty() && ops.is_empty())
    }
}

/// What both tortures share: a simulator with every dialect's fleets (and
/// their foreign snapshots), create and delete answers held back at
/// random, and a scratch directory.
struct Bench {
    sim: Sim,
    wd: Workdir,
    fleets: Vec<Fleet>,
}

/// The seed (from `SNAPWARDEN_TORTURE_SEED`, else the clock), the kills
/// wanted (at least `min_kills`) and the time wanted.
fn seed_and_goals(min_kills: u64) -> (u64, u32, Duration) {
    let seed = env_u64("SNAPWARDEN_TORTURE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let kills_wanted = env_u64("SNAPWARDEN_TORTURE_KILLS")
        .unwrap_or(min_kills)
        .max(min_kills);
    let seconds_wanted = Duration::from_secs(env_u64("SNAPWARDEN_TORTURE_SECONDS").unwrap_or(0));
    println!("torture: seed {seed} (replay with SNAPWARDEN_TORTURE_SEED={seed}), {kills_wanted} kills, at least {seconds_wanted:?}");
    (seed, kills_wanted as u32, seconds_wanted)
}

fn bench() -> Bench {
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
    Bench { sim, wd, fleets }
}

/// Kill counters: all kills, and those right after a create or a delete
/// request reached the simulator.
#[derive(Default)]
struct Kills {
    all: u32,
    after_create: u32,
    after_delete: u32,
}

/// Picks the moment of the next kill and waits for it: a random delay,
/// or until a create (or delete) request of a random dialect reaches the
/// simulator (at most 8 s; counted only when one did).
fn wait_for_kill_moment(sim: &Sim, rng: &mut StdRng, kills: &mut Kills) {
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
            let before = kind.requests(sim, action).len();
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut seen = false;
            while Instant::now() < deadline {
                if kind.requests(sim, action).len() > before {
                    seen = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if seen {
                match at {
                    KillAt::AfterCreate(_) => kills.after_create += 1,
                    _ => kills.after_delete += 1,
                }
            }
        }
    }
}

/// Waits (at most 60 s) until the ledger `open` reads has no run and no
/// operation open.
fn wait_settled(open: impl Fn() -> Option<View>) {
    let mut view: Option<View> = None;
    wait_for(
        "every run and operation to settle",
        Duration::from_secs(60),
        || {
            if view.is_none() {
                view = open();
            }
            view.as_ref()?.settled()?.then_some(())
        },
    );
}

/// The final `prune` with `cfg`; it must succeed.
fn final_prune(wd: &Workdir, cfg: &Path) {
    let out = clouds::cmd(
        wd.dir.path(),
        &["prune", "-c", cfg.to_str().expect("utf-8 path")],
    );
    assert!(
        out.status.success(),
        "final prune failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the verdicts found.
struct Verdict {
    created: usize,
    deleted: usize,
    runs_by_state: BTreeMap<String, usize>,
    problems: Vec<String>,
    panics: usize,
    adopted: usize,
    resumed: usize,
}

/// Reads the simulator, the ledger (through `view`), the alerts and the
/// daemons' logs after the settle and the final prune.
fn verdicts(bench: &Bench, view: &View, logs: &[Lines], held: &[HeldSnap]) -> Verdict {
    let Bench { sim, wd, fleets } = bench;
    let ledger = view.all_snapshots();
    let runs_by_state = {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for f in fleets {
            for t in &f.targets {
                for r in view.runs_for(&f.policy, t) {
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
    let delivered = alerts(wd);
    let (mut created, mut deleted) = (0usize, 0usize);
    let mut problems = Vec::new();
    for f in fleets {
        let kind = f.kind;
        let snaps = kind.snapshots(sim, &[f.policy.as_str()]);
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
                // Held snapshots are kept outside retention.
                let own_live = snaps
                    .iter()
                    .filter(|s| s.live && s.source == v)
                    .filter(|s| s.marker.as_ref().is_some_and(|(p, _, _)| *p == f.policy))
                    .filter(|s| !held.iter().any(|h| h.names(&s.id) || h.names(&s.name)))
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
        for t in &f.targets {
            for run in view.runs_for(&f.policy, t) {
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
                        let rows = view.run_snapshots(run.id);
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
            .requests(sim, kind.delete_action())
            .iter()
            .map(|r| r.to_string())
            .collect();
        let all_deletes = kind.requests(sim, kind.delete_action());
        for h in held.iter().filter(|h| h.policy == f.policy) {
            let after: Vec<String> = all_deletes
                .iter()
                .skip(h.deletes_before)
                .map(|r| r.to_string())
                .filter(|d| h.named_in(d))
                .collect();
            if !after.is_empty() {
                problems.push(format!(
                    "{kind:?}: held snapshot {} was named by a delete request after its hold: {after:?}",
                    h.snapshot_id
                ));
            }
            let named_before = all_deletes
                .iter()
                .take(h.deletes_before)
                .any(|r| h.named_in(&r.to_string()));
            let live = snaps
                .iter()
                .any(|s| s.live && (h.names(&s.id) || h.names(&s.name)));
            if !live && !named_before {
                problems.push(format!("{kind:?}: held snapshot {} is gone", h.snapshot_id));
            }
        }
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
    Verdict {
        created,
        deleted,
        runs_by_state,
        problems,
        panics: count_in(logs, "panicked"),
        adopted: count_in(logs, "adopting it"),
        resumed: count_in(logs, "resuming run"),
    }
}

/// A snapshot an operator held (with no end) while the daemon ran.
struct HeldSnap {
    policy: String,
    /// As the ledger has it (Lightsail: `DiskSnapshot/NAME`).
    snapshot_id: String,
    /// How many delete requests its dialect had seen before the hold.
    deletes_before: usize,
}

impl HeldSnap {
    /// Whether a cloud's id or name is this snapshot's.
    fn names(&self, id: &str) -> bool {
        !id.is_empty()
            && (self.snapshot_id == id || self.snapshot_id.rsplit('/').next() == Some(id))
    }

    /// Whether a logged request names this snapshot.
    fn named_in(&self, request: &str) -> bool {
        let short = self.snapshot_id.rsplit('/').next().unwrap_or_default();
        request.contains(&format!("\"{short}\""))
            || request.contains(&format!("{short}\""))
            || request.contains(&format!("/{short}"))
    }
}

/// Hold one live snapshot the ledger has, picked at random, with
/// `snapwarden hold` beside the running daemon (as an operator would). A
/// hold may come too late (a delete of it claimed meanwhile): then it is
/// refused, which is fine; anything else is not.
fn hold_one(bench: &Bench, cfg: &Path, rng: &mut StdRng, held: &mut Vec<HeldSnap>) {
    let Some(view) = View::sqlite(&bench.wd) else {
        return;
    };
    let live: Vec<SnapshotRow> = view
        .all_snapshots()
        .into_iter()
        .filter(|r| r.state == LedgerState::Available)
        .filter(|r| !held.iter().any(|h| h.snapshot_id == r.snapshot_id))
        .collect();
    if live.is_empty() {
        return;
    }
    let row = &live[rng.random_range(0..live.len())];
    let Some(fleet) = bench.fleets.iter().find(|f| f.policy == row.policy) else {
        return;
    };
    let deletes_before = fleet
        .kind
        .requests(&bench.sim, fleet.kind.delete_action())
        .len();
    let out = clouds::cmd(
        bench.wd.dir.path(),
        &[
            "hold",
            "-c",
            cfg.to_str().expect("utf-8 path"),
            "--policy",
            &row.policy,
            "--target",
            &row.target,
            "--snapshot",
            &row.snapshot_id,
            "--reason",
            "torture: legal hold",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        held.push(HeldSnap {
            policy: row.policy.clone(),
            snapshot_id: row.snapshot_id.clone(),
            deletes_before,
        });
    } else {
        assert!(
            text.contains("not held:") || text.contains("has no snapshot"),
            "hold of {} failed: {text}",
            row.snapshot_id
        );
    }
}

/// How often `needle` occurs in the daemons' logs.
fn count_in(logs: &[Lines], needle: &str) -> usize {
    logs.iter().map(|l| l.text().matches(needle).count()).sum()
}

/// The assertions both tortures end with.
fn assert_verdict(seed: u64, v: &Verdict, kills: &Kills, view: &View) {
    assert_eq!(v.panics, 0, "the daemon panicked");
    assert!(
        kills.after_create > 0 && kills.after_delete > 0,
        "both targeted kill kinds happened"
    );
    assert!(
        v.created >= 20,
        "too little happened to prove anything: {} snapshots",
        v.created
    );
    assert!(v.deleted > 0, "retention never deleted anything");
    assert!(
        v.problems.is_empty(),
        "seed {seed}: {} problem(s):\n{}",
        v.problems.len(),
        v.problems.join("\n")
    );
    // Every fleet's ledger agrees with what exists: not one run left open.
    assert!(view.open_runs().is_empty());
}

#[test]
fn sigkill_at_random_moments_never_duplicates_loses_or_wrongly_deletes() {
    let started = Instant::now();
    let (seed, kills_wanted, seconds_wanted) = seed_and_goals(30);
    let mut rng = StdRng::seed_from_u64(seed);
    let bench = bench();
    let (sim, wd, fleets) = (&bench.sim, &bench.wd, &bench.fleets);
    let cfg = config(wd, sim, fleets, "* * * * * *");

    let mut kills = Kills::default();
    let mut logs: Vec<Lines> = Vec::new();
    let mut held: Vec<HeldSnap> = Vec::new();
    while kills.all < kills_wanted || started.elapsed() < seconds_wanted {
        let daemon = clouds::daemon(wd.dir.path(), &cfg);
        logs.push(daemon.log.clone());
        if kills.all % 5 == 2 {
            hold_one(&bench, &cfg, &mut rng, &mut held);
        }
        wait_for_kill_moment(sim, &mut rng, &mut kills);
        daemon.kill9();
        kills.all += 1;
    }
    let kill_phase = started.elapsed();

    // A clean run with no slot due lets every intent and operation left by
    // the kills settle, then a final prune.
    let settle_cfg = config(wd, sim, fleets, SETTLE_SCHEDULE);
    let daemon = clouds::daemon(wd.dir.path(), &settle_cfg);
    logs.push(daemon.log.clone());
    wait_settled(|| View::sqlite(wd));
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0), "the settling daemon exits 0 on SIGTERM");
    final_prune(wd, &settle_cfg);

    let view = View::sqlite(wd).expect("open state read-only");
    let v = verdicts(&bench, &view, &logs, &held);
    assert!(!held.is_empty(), "no hold was placed");
    println!("torture holds: {} placed", held.len());
    println!(
        "torture figures: seed {seed}; kills {} (after a create request {}, after a delete request {}); \
         marked snapshots created {}, deleted by retention {}; adopted by name {}, runs resumed {}; \
         runs {:?}; kill phase {kill_phase:.1?}, total {:.1?}",
        kills.all,
        kills.after_create,
        kills.after_delete,
        v.created,
        v.deleted,
        v.adopted,
        v.resumed,
        v.runs_by_state,
        started.elapsed()
    );
    assert_verdict(seed, &v, &kills, &view);
}

/// One node of the pair: its name, its policy file, and the process now
/// running it.
struct Node {
    name: &'static str,
    cfg: PathBuf,
    daemon: Daemon,
}

/// The node holding the lease now and its epoch (`None`: nobody leads,
/// or the ledger has no lease table yet).
fn lease_holder(cluster: &pg_cluster::PgCluster, db: &str) -> Option<(String, i64)> {
    let row = cluster
        .psql(
            db,
            "SELECT node, epoch FROM leader_lease WHERE name = 'scheduler' AND expires_at > now()",
        )
        .ok()?;
    let (node, epoch) = row.split_once('|')?;
    Some((node.to_string(), epoch.parse().ok()?))
}

/// Waits (at most 20 s: a lease, a retry and a start are about 5 s) until
/// a node holds the lease in an epoch after `killed_epoch`, calling
/// `meanwhile` on each look (every 100 ms: each look runs psql).
fn wait_for_new_leader(
    cluster: &pg_cluster::PgCluster,
    db: &str,
    killed_epoch: i64,
    mut meanwhile: impl FnMut(),
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        meanwhile();
        if lease_holder(cluster, db).is_some_and(|(_, epoch)| epoch > killed_epoch) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no node leads 20 s after the leader of epoch {killed_epoch} was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many takeovers the logs show: the distinct epochs a node took over
/// in (its alert of the takeover repeats the line).
fn takeovers(logs: &[Lines]) -> usize {
    let epochs: std::collections::BTreeSet<String> = logs
        .iter()
        .flat_map(Lines::all)
        .filter_map(|l| {
            let (_, rest) = l.split_once("took over as the leader (epoch ")?;
            Some(rest.split(')').next()?.to_string())
        })
        .collect();
    epochs.len()
}

/// Starts again every node whose process ended by itself (a leader that
/// could not renew its lease exits for a restart, as systemd would
/// restart it); records each such exit in `exits`.
fn restart_exited(
    nodes: &mut [Node],
    scratch: &Path,
    logs: &mut Vec<Lines>,
    exits: &mut Vec<String>,
) {
    for n in nodes.iter_mut() {
        if n.daemon.is_running() {
            continue;
        }
        let code = n.daemon.wait_exit(Duration::from_secs(1));
        let why = n
            .daemon
            .log
            .all()
            .into_iter()
            .rev()
            .find(|l| l.contains("ERROR") || l.contains("leadership lost"))
            .unwrap_or_default();
        exits.push(format!("{} exited {code:?}: {why}", n.name));
        n.daemon = clouds::daemon(scratch, &n.cfg);
        logs.push(n.daemon.log.clone());
    }
}

/// Two nodes share a PostgreSQL ledger; whichever leads is killed with
/// SIGKILL (at a random moment, or right after a create or a delete
/// request reached the simulator) and started again at once, as systemd
/// would; the standby takes over each time. The same verdicts as for one
/// daemon hold at the end.
#[test]
fn two_nodes_sigkill_whichever_leads_never_duplicates_loses_or_wrongly_deletes() {
    let test = "two_nodes_sigkill_whichever_leads";
    if pg_cluster::skip_pg() {
        eprintln!("{test}: skipped, {} is set", pg_cluster::SKIP_ENV);
        return;
    }
    let cluster = pg_cluster::shared_or_skip(test).expect("the shared PostgreSQL cluster");
    let started = Instant::now();
    let (seed, kills_wanted, seconds_wanted) = seed_and_goals(20);
    let mut rng = StdRng::seed_from_u64(seed);
    let db = cluster.create_database().expect("a database");
    let url = format!("{}?sslmode=disable", cluster.url(&db));
    let bench = bench();
    let (sim, wd, fleets) = (&bench.sim, &bench.wd, &bench.fleets);
    let scratch = wd.dir.path();

    let mut logs: Vec<Lines> = Vec::new();
    let mut nodes: Vec<Node> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let cfg = node_config(wd, sim, fleets, "* * * * * *", &url, name, name);
            let daemon = clouds::daemon(scratch, &cfg);
            logs.push(daemon.log.clone());
            Node { name, cfg, daemon }
        })
        .collect();
    let mut kills = Kills::default();
    let mut exits: Vec<String> = Vec::new();
    let mut slowest_handover = Duration::ZERO;
    // The epoch of the lease last killed: the next leader holds a later one.
    let mut killed_epoch = 0i64;
    let mut killed_at: Option<Instant> = None;
    while kills.all < kills_wanted || started.elapsed() < seconds_wanted {
        wait_for_new_leader(cluster, &db, killed_epoch, || {
            restart_exited(&mut nodes, scratch, &mut logs, &mut exits)
        });
        if let Some(at) = killed_at.take() {
            slowest_handover = slowest_handover.max(at.elapsed());
        }
        wait_for_kill_moment(sim, &mut rng, &mut kills);
        // Whoever leads now (the lease may have moved during the wait).
        let Some((leader, epoch)) = lease_holder(cluster, &db) else {
            // Nobody leads at this moment (a leader gave up its lease):
            // no kill; wait for the next leader.
            continue;
        };
        let i = nodes
            .iter()
            .position(|n| n.name == leader)
            .unwrap_or_else(|| panic!("the lease names an unknown node {leader:?}"));
        let Node { name, cfg, daemon } = nodes.swap_remove(i);
        daemon.kill9();
        let daemon = clouds::daemon(scratch, &cfg);
        logs.push(daemon.log.clone());
        nodes.push(Node { name, cfg, daemon });
        killed_at = Some(Instant::now());
        killed_epoch = epoch;
        kills.all += 1;
    }
    wait_for_new_leader(cluster, &db, killed_epoch, || {
        restart_exited(&mut nodes, scratch, &mut logs, &mut exits)
    });
    if let Some(at) = killed_at {
        slowest_handover = slowest_handover.max(at.elapsed());
    }
    let kill_phase = started.elapsed();

    // Both stop; one node with no slot due lets every intent and operation
    // left by the kills settle, then the final prune takes the free lease.
    for n in nodes {
        n.daemon.stop();
    }
    let settle_cfg = node_config(wd, sim, fleets, SETTLE_SCHEDULE, &url, "a", "settle");
    let daemon = clouds::daemon(scratch, &settle_cfg);
    logs.push(daemon.log.clone());
    wait_for("the settling node to lead", Duration::from_secs(20), || {
        daemon
            .log
            .all()
            .iter()
            .any(|l| {
                l.contains("node a leads (epoch") || l.contains("node a took over as the leader")
            })
            .then_some(())
    });
    wait_settled(|| View::postgres(&url));
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0), "the settling node exits 0 on SIGTERM");
    final_prune(wd, &settle_cfg);

    let view = View::postgres(&url).expect("the shared ledger");
    let v = verdicts(&bench, &view, &logs, &[]);
    println!(
        "torture figures (two nodes): seed {seed}; kills of the leader {} (after a create request {}, after a delete request {}); \
         nodes that exited by themselves {}; takeovers {}, slowest handover {slowest_handover:.1?}; \
         marked snapshots created {}, deleted by retention {}; adopted by name {}, runs resumed {}; \
         runs {:?}; kill phase {kill_phase:.1?}, total {:.1?}",
        kills.all,
        kills.after_create,
        kills.after_delete,
        exits.len(),
        takeovers(&logs),
        v.created,
        v.deleted,
        v.adopted,
        v.resumed,
        v.runs_by_state,
        started.elapsed()
    );
    for e in &exits {
        println!("torture: node {e}");
    }
    assert_verdict(seed, &v, &kills, &view);
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
