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
metrics_listen = "127.0.0.1:0"

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
    cluster: Cluster,
    /// Alerts go to the work directory's file (`wd.alerts()`).
    alerts: bool,
}

/// The test binary's shared cluster, or one of the test's own (stopped
/// and removed when the test ends, however it ends).
enum Cluster {
    Shared(&'static pg_cluster::PgCluster),
    Own(pg_cluster::PgCluster),
}

impl std::ops::Deref for Cluster {
    type Target = pg_cluster::PgCluster;

    fn deref(&self) -> &pg_cluster::PgCluster {
        match self {
            Cluster::Shared(c) => c,
            Cluster::Own(c) => c,
        }
    }
}

/// A simulator with `vol-ha`, both nodes' keys, and a fresh database of
/// the test binary's shared cluster.
fn pair(test: &str) -> Option<Pair> {
    let cluster = pg_cluster::shared_or_skip(test)?;
    pair_on(Cluster::Shared(cluster), false)
}

/// [`pair`] on a cluster of the test's own, which it may stop and
/// restart, with alerts recorded.
fn pair_with_own_cluster(test: &str) -> Option<Pair> {
    if pg_cluster::skip_pg() {
        eprintln!("{test}: skipped (SNAPWARDEN_SKIP_PG)");
        return None;
    }
    let cluster = pg_cluster::PgCluster::start().expect("a PostgreSQL cluster");
    pair_on(Cluster::Own(cluster), true)
}

fn pair_on(cluster: Cluster, alerts: bool) -> Option<Pair> {
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
        alerts,
    })
}

impl Pair {
    fn start(&self, node: &str) -> Daemon {
        self.start_with_env(node, &[])
    }

    fn start_with_env(&self, node: &str, env: &[(&str, &str)]) -> Daemon {
        let url = self.cluster.url(&self.db);
        let path = node_config(&self.wd, &self.sim, &url, node);
        if self.alerts {
            let text = std::fs::read_to_string(&path).expect("config");
            std::fs::write(&path, self.wd.with_alert_command(&text)).expect("config");
        }
        Daemon::start_with_env(&path, SECRET, env)
    }

    /// [`Pair::start`] with `keys` added to the policy, and `HOOK_NODE`
    /// set to the node's name (for the hooks to say who ran them).
    fn start_with_policy_keys(&self, node: &str, keys: &str) -> Daemon {
        self.start_edited(node, |text| format!("{text}{keys}\n"))
    }

    /// [`Pair::start`] with its policy file changed by `edit` first.
    fn start_edited(&self, node: &str, edit: impl FnOnce(String) -> String) -> Daemon {
        let url = self.cluster.url(&self.db);
        let path = node_config(&self.wd, &self.sim, &url, node);
        let text = std::fs::read_to_string(&path).expect("config");
        std::fs::write(&path, edit(text)).expect("config");
        Daemon::start_with_env(&path, SECRET, &[("HOOK_NODE", node)])
    }

    /// Successful creates so far.
    fn create_count(&self) -> usize {
        self.creates().len()
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
    // The slots that came due while nobody led (the schedule fires every
    // second, `catch_up` is off) are run by the new leader.
    b.wait_log(
        "running a slot that came due during the handover",
        Duration::from_secs(5),
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

/// A PostgreSQL restart while both nodes run: the leader keeps its lease
/// across a short outage or gives it up and exits (systemd would restart
/// it; the test does); either way a node leads again, the runs go on and
/// no slot is created twice.
#[test]
fn a_database_restart_while_both_run_is_survived_without_a_duplicate() {
    let Some(p) = pair_with_own_cluster("a_database_restart") else {
        return;
    };
    let mut a = p.start("a");
    a.wait_log("leads (epoch 1)", Duration::from_secs(20));
    let mut b = p.start("b");
    b.wait_log("standby:", Duration::from_secs(10));
    p.wait_creates_by("a", 2);
    p.cluster.restart("fast").expect("restart PostgreSQL");
    let restarted = p.create_count();
    // Whoever exited (a leader that lost its lease) is started again.
    std::thread::sleep(LEASE + Duration::from_secs(1));
    let mut exited = Vec::new();
    for (node, d) in [("a", &mut a), ("b", &mut b)] {
        if !d.is_running() {
            assert!(
                d.log.text().contains("leadership lost"),
                "{node}: {}",
                d.log.text()
            );
            exited.push(node);
        }
    }
    let mut again: Vec<Daemon> = exited.iter().map(|n| p.start(n)).collect();
    wait_for("creates after the restart", Duration::from_secs(30), || {
        (p.create_count() >= restarted + 3).then_some(())
    });
    assert!(leader_of(&p).is_some(), "a node leads");
    p.assert_no_duplicate();
    for d in again.drain(..) {
        d.stop();
    }
    for d in [a, b] {
        d.kill9();
    }
}

/// The database unreachable: the leader sends no create once its lease
/// deadline has passed, gives up and exits; the standby alerts that it
/// cannot reach the ledger.
#[test]
fn with_the_database_unreachable_no_create_is_sent_and_an_alert_fires() {
    let Some(p) = pair_with_own_cluster("with_the_database_unreachable") else {
        return;
    };
    let mut a = p.start("a");
    a.wait_log("leads (epoch 1)", Duration::from_secs(20));
    let b = p.start("b");
    b.wait_log("standby:", Duration::from_secs(10));
    p.wait_creates_by("a", 2);
    p.cluster.stop("immediate").expect("stop PostgreSQL");
    // The leader's act deadline: the lease less one renewal period after
    // its last renewal, at most LEASE from now.
    std::thread::sleep(LEASE);
    let then = p.create_count();
    let code = a.wait_exit(Duration::from_secs(10));
    assert_ne!(code, Some(0), "the leader exits for a restart");
    assert!(a.log.text().contains("leadership lost"), "{}", a.log.text());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(p.create_count(), then, "no create without the ledger");
    wait_for(
        "an alert that the ledger is unreachable",
        Duration::from_secs(15),
        || {
            p.wd.alerts().into_iter().find(|al| {
                al["kind"] == "leadership"
                    && al["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("cannot reach the shared ledger"))
            })
        },
    );
    p.assert_no_duplicate();
    b.stop();
}

/// `status` shows the leader and each node's role; a one-shot command that
/// writes (`snapshot`) is refused while a daemon leads and works, holding
/// the lease, once none does.
#[test]
fn status_shows_the_leader_and_one_shot_writes_wait_for_no_leader() {
    let Some(p) = pair("status_shows_the_leader") else {
        return;
    };
    // The daemons take no snapshot here (a yearly slot): a run of theirs
    // still open when they stop would make the one-shot's slot a skip.
    let yearly = |text: String| text.replace("\"* * * * * *\"", "\"0 0 0 1 1 *\"");
    let a = p.start_edited("a", yearly);
    a.wait_log("leads (epoch 1)", Duration::from_secs(20));
    let b = p.start_edited("b", yearly);
    b.wait_log("standby:", Duration::from_secs(10));
    let cfg = p.wd.dir.path().join("a.toml");
    let status = p.wd.json_ok(
        &["status", "-c", cfg.to_str().expect("utf-8"), "--json"],
        SECRET,
    );
    let leadership = &status["leadership"];
    assert_eq!(leadership["leader"]["node"], "a", "{status}");
    assert_eq!(leadership["leader"]["epoch"], 1);
    let roles: HashMap<String, String> = leadership["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap_or("").to_string(),
                n["role"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles.get("a").map(String::as_str),
        Some("leader"),
        "{roles:?}"
    );
    assert_eq!(
        roles.get("b").map(String::as_str),
        Some("standby"),
        "{roles:?}"
    );

    // `check` names the shared ledger and this node without connecting.
    let checked = p.wd.run(&cfg, &["check"]);
    assert!(checked.status.success(), "{}", output_text(&checked));
    assert!(
        output_text(&checked).contains("(PostgreSQL, shared; this node: a, lease 3s"),
        "{}",
        output_text(&checked)
    );
    let refused = p.wd.run(&cfg, &["snapshot", "--policy", "db"]);
    assert_eq!(refused.status.code(), Some(2), "{}", output_text(&refused));
    assert!(
        output_text(&refused).contains("led by node a"),
        "{}",
        output_text(&refused)
    );
    b.stop();
    a.stop();
    let before = p.create_count();
    let out = p.wd.run(&cfg, &["snapshot", "--policy", "db"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        p.create_count(),
        before + 1,
        "the one-shot snapshot was taken"
    );
    assert_eq!(
        p.sql("SELECT expires_at <= now() FROM leader_lease"),
        "t",
        "and its lease handed back"
    );
}

/// What systemd and Prometheus see: the leader's STATUS= says it leads with
/// its epoch, the standby's that it waits (after READY=1, so systemd does
/// not time its start out); `snapwarden_leader` is 1 on the leader, 0 on
/// the standby, and `snapwarden_leader_changes_total` counts the takeover.
#[test]
fn systemd_and_metrics_tell_the_leader_from_the_standby() {
    use std::os::unix::net::UnixDatagram;
    let Some(p) = pair("systemd_and_metrics_tell_the_leader") else {
        return;
    };
    let socket = |node: &str| {
        let path = p.wd.dir.path().join(format!("notify-{node}.sock"));
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        (path, sock)
    };
    let (a_path, a_sock) = socket("a");
    let (b_path, b_sock) = socket("b");
    let a = p.start_with_env("a", &[("NOTIFY_SOCKET", a_path.to_str().expect("utf-8"))]);
    a.wait_log("leads (epoch 1)", Duration::from_secs(20));
    let b = p.start_with_env("b", &[("NOTIFY_SOCKET", b_path.to_str().expect("utf-8"))]);
    let read = |sock: &UnixDatagram, seen: &mut Vec<String>| {
        let mut buf = [0u8; 4096];
        if let Ok(n) = sock.recv(&mut buf) {
            seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            );
        }
    };
    let (mut a_seen, mut b_seen) = (Vec::new(), Vec::new());
    wait_for(
        "the leader's READY and STATUS",
        Duration::from_secs(10),
        || {
            read(&a_sock, &mut a_seen);
            (a_seen.iter().any(|l| l == "READY=1")
                && a_seen
                    .iter()
                    .any(|l| l.starts_with("STATUS=leader (epoch 1)")))
            .then_some(())
        },
    );
    wait_for(
        "the standby's READY and STATUS",
        Duration::from_secs(10),
        || {
            read(&b_sock, &mut b_seen);
            (b_seen.iter().any(|l| l == "READY=1")
                && b_seen
                    .iter()
                    .any(|l| l == "STATUS=standby; a leads (epoch 1)"))
            .then_some(())
        },
    );
    let metric = |d: &Daemon, series: &str| {
        let (_, text) = http_get(&format!("http://{}/metrics", metrics_addr(d)));
        metric_sample(&text, series)
    };
    assert_eq!(metric(&a, "snapwarden_leader"), Some(1.0));
    assert_eq!(metric(&a, "snapwarden_leader_epoch"), Some(1.0));
    assert_eq!(metric(&b, "snapwarden_leader"), Some(0.0));
    a.stop();
    b.wait_log("took over as the leader", Duration::from_secs(5));
    wait_for("the new leader's metrics", Duration::from_secs(5), || {
        (metric(&b, "snapwarden_leader") == Some(1.0)).then_some(())
    });
    assert_eq!(metric(&b, "snapwarden_leader_epoch"), Some(2.0));
    assert_eq!(metric(&b, "snapwarden_leader_changes_total"), Some(1.0));
    b.stop();
}

/// A leader killed while its pre hook runs: the node that takes over runs
/// the post hook it left owed, once, before it creates anything.
#[test]
fn the_node_that_takes_over_runs_the_thaw_the_dead_leader_owed() {
    let Some(p) = pair("the_node_that_takes_over_runs_the_thaw") else {
        return;
    };
    let hooks = HookScript::new(&p.wd);
    hooks.hold("pre");
    let a = p.start_with_policy_keys("a", &hooks.keys());
    a.wait_log("leads (epoch 1)", Duration::from_secs(20));
    let b = p.start_with_policy_keys("b", &hooks.keys());
    b.wait_log("standby:", Duration::from_secs(10));
    hooks.wait_line("pre");
    a.kill9();
    std::fs::remove_file(hooks.dir.join("hold-pre")).expect("unhold");
    hooks.go("pre");
    b.wait_log("running a post hook left owed", Duration::from_secs(20));
    p.wait_creates_by("b", 2);
    b.stop();

    assert_eq!(p.changes_by("a"), 0, "a was killed in its first pre hook");
    let lines = hooks.lines();
    let thaws: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("post interrupted"))
        .collect();
    assert_eq!(thaws.len(), 1, "{lines:?}");
    assert!(thaws[0].ends_with("node=b"), "{lines:?}");
    assert_eq!(p.sql("SELECT count(*) FROM post_hooks_owed"), "0");
    p.assert_no_duplicate();
}
