//! High availability on a shared PostgreSQL ledger: two real daemons
//! (nodes `a` and `b`) against one simulator and one throwaway PostgreSQL
//! cluster. Exactly one leads; a standby takes over when the leader dies,
//! is paused past its lease, or stops; a paused leader that wakes sends
//! nothing more; no slot is ever created twice.
//!
//! Each node signs its QingCloud requests with its own access key, so the
//! simulator's journal tells which node sent what.

mod util;

#[path = "support/pg_cluster.rs"]
mod pg_cluster;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use util::*;

/// Short leases so the tests are quick: a takeover within 3 s + a
/// second's retry.
const LEASE: Duration = Duration::from_secs(3);

/// The access key node `node` signs with (the simulator knows both).
fn key_of(node: &str) -> String {
    format!("QYNODE{}", node.to_uppercase())
}

/// One node's policy file: the shared ledger at `url`, this node's name
/// and key, every second a snapshot of `vol-ha` (kept: no deletes).
fn node_config(wd: &Workdir, sim: &Sim, url: &str, node: &str) -> std::path::PathBuf {
    let text = format!(
        r#"[daemon]
state_url = "{url}?sslmode=disable"
node_name = "{node}"
lease_duration = "3s"
lease_renew_every = "1s"
takeover_grace = "10s"
log_format = "text"

[providers.qc]
kind = "qingcloud"
zone = "{ZONE}"
access_key_id = "{key}"
secret_access_key_env = "TEST_QY_SECRET"
endpoint = "{endpoint}"
requests_per_second = 50

[[policy]]
name = "db"
provider = "qc"
resource = "volume"
targets = ["vol-ha"]
schedule = "* * * * * *"
retain = 1000
poll_interval = "200ms"
"#,
        key = key_of(node),
        endpoint = sim.endpoint(),
    )
    .replace("TEST_QY_SECRET", &secret_env_name(SECRET));
    let path = wd.dir.path().join(format!("{node}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

struct Pair {
    sim: Sim,
    wd: Workdir,
    db: String,
    cluster: &'static pg_cluster::PgCluster,
}

/// A simulator with `vol-ha`, both nodes' keys, and a fresh database.
fn pair(test: &str) -> Option<Pair> {
    let cluster = pg_cluster::shared_or_skip(test)?;
    let db = cluster.create_database().expect("a database");
    let (sim, wd) = sim_with_volumes("300ms", &["vol-ha"]);
    for node in ["a", "b"] {
        sim.post(
            "/_sim/qingcloud/credentials",
            json!({"access_key_id": key_of(node), "secret_access_key": SECRET}),
        );
    }
    Some(Pair {
        sim,
        wd,
        db,
        cluster,
    })
}

impl Pair {
    fn start(&self, node: &str) -> Daemon {
        let url = self.cluster.url(&self.db);
        Daemon::start(&node_config(&self.wd, &self.sim, &url, node), SECRET)
    }

    /// Successful creates, each with the key that sent it and its name.
    fn creates(&self) -> Vec<(String, String)> {
        self.sim
            .requests("CreateSnapshots")
            .iter()
            .filter(|r| r["ret_code"] == 0)
            .map(|r| {
                (
                    r["params"]["access_key_id"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    r["params"]["snapshot_name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    }

    /// Requests that change something (create, delete) sent with `node`'s key.
    fn changes_by(&self, node: &str) -> usize {
        ["CreateSnapshots", "DeleteSnapshots"]
            .iter()
            .flat_map(|a| self.sim.requests(a))
            .filter(|r| r["params"]["access_key_id"] == key_of(node).as_str())
            .count()
    }

    fn wait_creates_by(&self, node: &str, n: usize) {
        wait_for(
            &format!("{n} creates by node {node}"),
            Duration::from_secs(30),
            || {
                let k = key_of(node);
                (self.creates().iter().filter(|(key, _)| *key == k).count() >= n).then_some(())
            },
        );
    }

    /// No snapshot name (one per slot) was created twice.
    fn assert_no_duplicate(&self) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (_, name) in self.creates() {
            *seen.entry(name).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "created twice: {twice:?}");
    }

    fn sql(&self, q: &str) -> String {
        self.cluster.psql(&self.db, q).expect("psql")
    }
}

/// Which of the two leads now (by the lease row).
fn leader_of(p: &Pair) -> Option<String> {
    // Before the first node migrated the database there is no table yet.
    let row = p
        .cluster
        .psql(
            &p.db,
            "SELECT node FROM leader_lease WHERE name = 'scheduler' AND expires_at > now()",
        )
        .ok()?;
    (!row.is_empty()).then_some(row)
}

#[test]
fn two_nodes_started_at_once_one_leads_and_nothing_is_created_twice() {
    let Some(p) = pair("two_nodes_started_at_once") else {
        return;
    };
    let a = p.start("a");
    let b = p.start("b");
    let leader = wait_for("a leader", Duration::from_secs(20), || leader_of(&p));
    let (lead, wait) = if leader == "a" { (&a, &b) } else { (&b, &a) };
    lead.wait_log("leads (epoch 1)", Duration::from_secs(10));
    wait.wait_log("standby:", Duration::from_secs(10));
    p.wait_creates_by(&leader, 3);
    let other = if leader == "a" { "b" } else { "a" };
    assert_eq!(p.changes_by(other), 0, "the standby sent nothing");
    assert_eq!(
        p.sql("SELECT count(*) FROM leader_lease"),
        "1",
        "one lease row"
    );
    p.assert_no_duplicate();
    a.stop();
    b.stop();
}

#[test]
fn a_killed_leader_is_replaced_within_the_lease_and_no_slot_is_doubled_or_lost() {
    let Some(p) = pair("a_killed_leader_is_replaced") else {
        return;
    };
    let a = p.start("a");
    a.wait_log("leads (epoch 1)", Duration::from_secs(20));
    let b = p.start("b");
    b.wait_log("standby:", Duration::from_secs(10));
    p.wait_creates_by("a", 2);
    // Right after a create reached the simulator: its answer may or may
    // not be in the ledger.
    let before = p.creates().len();
    wait_for("a new create", Duration::from_secs(10), || {
        (p.creates().len() > before).then_some(())
    });
    a.kill9();
    let killed = Instant::now();
    b.wait_log("took over as the leader", LEASE + Duration::from_secs(5));
    let took = killed.elapsed();
    assert!(
        took <= LEASE + Duration::from_secs(5),
        "took over after {took:?}"
    );
    p.wait_creates_by("b", 2);
    // What the killed leader left open is carried to its end by the new
    // one: every run of a slot before the kill is over, none failed.
    wait_for(
        "the runs left by the killed leader to end",
        Duration::from_secs(20),
        || {
            let open = p.sql(&format!(
                "SELECT count(*) FROM runs WHERE state IN ('intent', 'creating', 'pruning') \
                 AND slot < now() - interval '{} milliseconds'",
                killed.elapsed().as_millis()
            ));
            (open == "0").then_some(())
        },
    );
    assert_eq!(
        p.sql("SELECT count(*) FROM runs WHERE state = 'failed'"),
        "0",
        "{}",
        p.sql("SELECT id, slot, state, error FROM runs ORDER BY id")
    );
    // No slot fell into the handover: one run (a snapshot, or a skip
    // that was alerted) for every second from the first to the last.
    let slots: Vec<i64> = p
        .sql("SELECT extract(epoch FROM slot)::bigint FROM runs ORDER BY slot")
        .lines()
        .map(|l| l.parse().expect("a slot"))
        .collect();
    let gaps: Vec<_> = slots.windows(2).filter(|w| w[1] - w[0] != 1).collect();
    assert!(
        gaps.is_empty(),
        "slots missing between {gaps:?}: {}",
        p.sql("SELECT id, slot, state, error FROM runs ORDER BY slot")
    );
    p.assert_no_duplicate();
    b.stop();
}

#[test]
fn a_paused_leader_that_wakes_after_a_takeover_sends_nothing_and_exits() {
    let Some(p) = pair("a_paused_leader_that_wakes") else {
        return;
    };
    let mut a = p.start("a");
    a.wait_log("leads (epoch 1)", Duration::from_secs(20));
    let b = p.start("b");
    b.wait_log("standby:", Duration::from_secs(10));
    p.wait_creates_by("a", 1);
    a.signal("STOP");
    b.wait_log("took over as the leader", LEASE + Duration::from_secs(5));
    p.wait_creates_by("b", 2);
    let sent_by_a = p.changes_by("a");
    a.signal("CONT");
    let code = a.wait_exit(Duration::from_secs(10));
    assert_ne!(
        code,
        Some(0),
        "the old leader exits with a failure, for a restart"
    );
    assert!(a.log.text().contains("leadership lost"), "{}", a.log.text());
    // Let anything it might still have sent arrive.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(p.changes_by("a"), sent_by_a, "nothing sent after it woke");
    p.assert_no_duplicate();
    b.stop();
}

#[test]
fn a_clean_stop_hands_the_lease_over_at_once() {
    let Some(p) = pair("a_clean_stop_hands_the_lease_over") else {
        return;
    };
    let a = p.start("a");
    a.wait_log("leads (epoch 1)", Duration::from_secs(20));
    let b = p.start("b");
    b.wait_log("standby:", Duration::from_secs(10));
    p.wait_creates_by("a", 1);
    let (code, _) = a.stop();
    assert_eq!(code, Some(0));
    let stopped = Instant::now();
    b.wait_log("took over as the leader", Duration::from_secs(5));
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(2), "handover took {took:?}");
    p.wait_creates_by("b", 1);
    p.assert_no_duplicate();
    b.stop();
}
