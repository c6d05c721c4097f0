//! End to end on Lightsail: the real binary (AWS SDK inside) against the
//! built-in simulator's Lightsail dialect on loopback, asserting on what the
//! simulator saw and on the ledger. Static keys and an endpoint override
//! keep the SDK off the network; `AWS_EC2_METADATA_DISABLED` and empty AWS
//! config files make sure the credential chain could not reach out either.
//! The scenarios every cloud shares (auth, throttling, failed snapshots,
//! lost answers) are in `e2e_clouds.rs`; Lightsail's restores are here.

mod clouds;
mod util;

use std::process::Output;
use std::time::Duration;

use clouds::Kind;
use serde_json::{json, Value};
use util::*;

/// `[[policy]]` bodies for an instance policy `web` and a disk policy `data`.
fn policies(retain: u32) -> String {
    format!(
        r#"[[policy]]
name = "web"
provider = "ls"
resource = "instance"
targets = ["web-1"]
schedule = "0 0 3 * * *"
retain = {retain}
poll_interval = "100ms"
poll_max_interval = "300ms"
timeout = "30s"

[[policy]]
name = "data"
provider = "ls"
resource = "disk"
targets = ["data-1"]
schedule = "0 0 3 * * *"
retain = {retain}
poll_interval = "100ms"
poll_max_interval = "300ms"
timeout = "30s"
"#
    )
}

fn config(wd: &Workdir, sim: &Sim, policies: &str) -> std::path::PathBuf {
    let policies = policies.to_string();
    wd.write_config(&clouds::config_text(
        wd,
        sim,
        &[Kind::Lightsail],
        "requests_per_second = 50",
        &[policies],
    ))
}

/// One snapwarden command with `secret` in its variable (every other
/// cloud's secret in theirs) and the AWS chain fenced off from anything but
/// loopback.
fn run(wd: &Workdir, args: &[&str], secret: &str) -> Output {
    clouds::cmd_with(
        wd.dir.path(),
        args,
        &[(secret_env_name(secret), secret.to_string())],
    )
}

fn snapshot_now(wd: &Workdir, cfg: &std::path::Path, policy: &str, secret: &str) -> Output {
    run(
        wd,
        &[
            "snapshot",
            "-c",
            cfg.to_str().expect("utf-8 path"),
            "--policy",
            policy,
        ],
        secret,
    )
}

fn seed(sim: &Sim) {
    sim.post("/_sim/lightsail/instances", json!({"name": "web-1"}));
    sim.post("/_sim/lightsail/disks", json!({"name": "data-1"}));
}

/// Seeds, per source, snapshots snapwarden must never touch: two untagged
/// manual ones, a kept automatic one, and one tagged for another policy.
fn seed_foreign(sim: &Sim) -> Vec<String> {
    let mut names = Vec::new();
    for (source, resource) in [("web-1", "instance"), ("data-1", "disk")] {
        for (name, auto, tags) in [
            (format!("{source}-manual-a"), false, json!([])),
            (format!("{source}-manual-b"), false, json!([])),
            (format!("{source}-auto-2024-01-15"), true, json!([])),
            (
                format!("{source}-other-team"),
                false,
                json!([{"key": "snapwarden:policy", "value": "other"},
                       {"key": "snapwarden:target", "value": source},
                       {"key": "snapwarden:slot", "value": "20240101T000000Z"}]),
            ),
        ] {
            sim.post(
                "/_sim/lightsail/snapshots",
                json!({"name": name, "source": source, "resource": resource, "auto": auto, "tags": tags}),
            );
            names.push(name);
        }
    }
    names
}

fn sim_snapshots(sim: &Sim) -> Vec<Value> {
    sim.get("/_sim/lightsail/snapshots")["snapshots"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn live(sim: &Sim, source_key: &str, source: &str) -> Vec<Value> {
    sim_snapshots(sim)
        .into_iter()
        .filter(|s| s[source_key] == source && s["deleting"] == false)
        .collect()
}

fn requests(sim: &Sim, action: &str) -> Vec<Value> {
    sim.journal("lightsail", Some(action))
}

fn ok(r: &Value) -> bool {
    r["http_status"] == 200
}

/// Instance and disk policies: four runs each with retain 2. Every create
/// is tagged and both of its operations are followed to terminal; listing
/// pages (page size 3); pruning deletes exactly the two oldest own
/// snapshots per source and nothing seeded.
#[test]
fn instance_and_disk_policies_create_tag_follow_and_prune() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    seed(&sim);
    let foreign = seed_foreign(&sim);
    let cfg = config(&wd, &sim, &policies(2));
    for i in 0..4 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1050)); // a new slot (name) per second
        }
        for policy in ["web", "data"] {
            let out = snapshot_now(&wd, &cfg, policy, LS_SECRET);
            assert!(
                out.status.success(),
                "{policy} run {i}: {}",
                output_text(&out)
            );
        }
    }

    for (key, source, family, policy) in [
        ("fromInstanceName", "web-1", "InstanceSnapshot", "web"),
        ("fromDiskName", "data-1", "DiskSnapshot", "data"),
    ] {
        let live = live(&sim, key, source);
        let own: Vec<&Value> = live
            .iter()
            .filter(|s| clouds::lightsail_tag(s, "snapwarden:policy") == Some(policy))
            .collect();
        assert_eq!(own.len(), 2, "two own snapshots kept of {source}: {live:?}");
        for s in &own {
            assert_eq!(clouds::lightsail_tag(s, "snapwarden:target"), Some(source));
            assert!(clouds::lightsail_tag(s, "snapwarden:slot").is_some_and(|v| v.len() == 16));
            assert!(
                s["state"] == "available" || s["state"] == "completed",
                "{s}"
            );
            assert_eq!(s["resourceType"], family);
        }
        for name in foreign.iter().filter(|n| n.starts_with(source)) {
            assert!(
                live.iter().any(|s| s["name"] == name.as_str()),
                "{name} is untouched"
            );
        }
        // The ledger: two available, two deleted.
        assert_eq!(wd.available_and_deleted(Some(source)), (2, 2));
        assert!(wd
            .state()
            .all_snapshots()
            .expect("ledger")
            .iter()
            .filter(|r| r.target == source)
            .all(|r| r.snapshot_id.starts_with(&format!("{family}/"))));
    }

    // Creates were tagged on the wire; each returned two operations, both
    // terminal; each snapshot's completion was read from the cloud (by
    // name, or from a listing sent after its create was answered).
    let creates: Vec<Value> = ["CreateInstanceSnapshot", "CreateDiskSnapshot"]
        .iter()
        .flat_map(|a| requests(&sim, a))
        .collect();
    assert_eq!(creates.len(), 8);
    assert!(creates.iter().all(|r| ok(r)
        && r["params"]["tags"]
            .as_str()
            .unwrap_or("")
            .contains("snapwarden:slot")));
    let ops: Vec<Value> = sim_list(&sim, "operations");
    let create_ops: Vec<&Value> = ops
        .iter()
        .filter(|o| {
            o["operationType"]
                .as_str()
                .unwrap_or("")
                .starts_with("Create")
        })
        .collect();
    assert_eq!(create_ops.len(), 16, "two operations per create");
    assert!(create_ops.iter().all(|o| o["isTerminal"] == true));
    for c in &creates {
        let name = c["params"]["instanceSnapshotName"]
            .as_str()
            .or_else(|| c["params"]["diskSnapshotName"].as_str())
            .unwrap_or_default();
        let looked_up = ["GetInstanceSnapshot", "GetDiskSnapshot"]
            .iter()
            .flat_map(|a| requests(&sim, a))
            .any(|r| {
                ok(&r)
                    && [
                        &r["params"]["instanceSnapshotName"],
                        &r["params"]["diskSnapshotName"],
                    ]
                    .iter()
                    .any(|n| n.as_str() == Some(name))
            });
        let listed_after = ["GetInstanceSnapshots", "GetDiskSnapshots"]
            .iter()
            .flat_map(|a| requests(&sim, a))
            .any(|r| ok(&r) && r["seq"].as_u64() > c["seq"].as_u64());
        assert!(
            looked_up || listed_after,
            "the completion of {name} was read from the cloud"
        );
    }
    // Listing paged (page size 3, 7+ snapshots per family at its peak).
    for list in ["GetInstanceSnapshots", "GetDiskSnapshots"] {
        assert!(
            requests(&sim, list)
                .iter()
                .any(|r| r["params"]["pageToken"].is_string()),
            "{list} followed nextPageToken"
        );
    }
    // Deletes: only own names, two per family.
    for (action, policy) in [
        ("DeleteInstanceSnapshot", "web-web-1-"),
        ("DeleteDiskSnapshot", "data-data-1-"),
    ] {
        let deletes: Vec<Value> = requests(&sim, action);
        assert_eq!(deletes.len(), 2, "{action}: {deletes:?}");
        let key = if action == "DeleteInstanceSnapshot" {
            "instanceSnapshotName"
        } else {
            "diskSnapshotName"
        };
        assert!(deletes
            .iter()
            .all(|r| ok(r) && r["params"][key].as_str().unwrap_or("").starts_with(policy)));
    }
    // No auto-snapshot API was ever touched.
    assert!(requests(&sim, "DeleteAutoSnapshot").is_empty());
}

/// The ledger's restore operations: (outcome, error) of each finished one,
/// and how many are still open.
fn restore_ops(wd: &Workdir) -> (Vec<(String, Option<String>)>, usize) {
    let db = rusqlite::Connection::open(wd.state_path()).expect("ledger");
    let mut stmt = db
        .prepare(
            "SELECT outcome, error, finished_at IS NULL FROM operations WHERE kind = 'restore'",
        )
        .expect("query");
    let rows: Vec<(Option<String>, Option<String>, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let open = rows.iter().filter(|r| r.2).count();
    let done = rows
        .into_iter()
        .filter(|r| !r.2)
        .map(|(o, e, _)| (o.unwrap_or_default(), e))
        .collect();
    (done, open)
}

/// `restore --policy P --target T --new N` (`to` is `(P, T, N)`), which
/// must succeed, say it made N from `snapshot`, and send one accepted
/// `action`: that call's parameters.
fn restore_ok(
    sim: &Sim,
    wd: &Workdir,
    cfg: &std::path::Path,
    to: (&str, &str, &str),
    snapshot: &str,
    action: &str,
) -> Value {
    let (policy, target, new) = to;
    let out = restore(wd, cfg, policy, target, new);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("into new resource {new}")) && stdout.contains(snapshot),
        "{stdout}"
    );
    let calls = requests(sim, action);
    assert_eq!(calls.len(), 1, "one restore call: {calls:?}");
    assert!(ok(&calls[0]), "{calls:?}");
    calls[0]["params"].clone()
}

/// The simulator's Lightsail `what` (disks, instances, operations).
fn sim_list(sim: &Sim, what: &str) -> Vec<Value> {
    sim.get(&format!("/_sim/lightsail/{what}"))[what]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn restore(wd: &Workdir, cfg: &std::path::Path, policy: &str, target: &str, new: &str) -> Output {
    run(
        wd,
        &[
            "restore",
            "-c",
            cfg.to_str().expect("utf-8 path"),
            "--policy",
            policy,
            "--target",
            target,
            "--new-name",
            new,
        ],
        LS_SECRET,
    )
}

/// Two runs per policy, then `restore` of each: the disk policy makes a new
/// disk with CreateDiskFromSnapshot from the newest own snapshot, in the
/// source's zone and at the snapshot's size; the instance policy a new
/// instance with CreateInstancesFromSnapshot and the snapshot's bundle.
/// Both are followed to the end (GetOperation), printed, and finished in
/// the ledger; the sources are untouched.
#[test]
fn restore_creates_a_new_disk_and_a_new_instance_from_the_newest_snapshot() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    sim.post(
        "/_sim/lightsail/instances",
        json!({"name": "web-1", "availability_zone": "us-east-2b"}),
    );
    sim.post(
        "/_sim/lightsail/disks",
        json!({"name": "data-1", "availability_zone": "us-east-2c"}),
    );
    let cfg = config(&wd, &sim, &policies(3));
    for i in 0..2 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1050));
        }
        for policy in ["web", "data"] {
            let out = snapshot_now(&wd, &cfg, policy, LS_SECRET);
            assert!(
                out.status.success(),
                "{policy} run {i}: {}",
                output_text(&out)
            );
        }
    }
    let newest = |key: &str, source: &str| -> String {
        live(&sim, key, source)
            .iter()
            .max_by(|a, b| {
                a["createdAt"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b["createdAt"].as_f64().unwrap_or(0.0))
            })
            .and_then(|s| s["name"].as_str().map(str::to_string))
            .expect("a snapshot")
    };
    let newest_disk = newest("fromDiskName", "data-1");
    let newest_instance = newest("fromInstanceName", "web-1");

    let to = ("data", "data-1", "data-1-copy");
    let p = &restore_ok(&sim, &wd, &cfg, to, &newest_disk, "CreateDiskFromSnapshot");
    assert_eq!(p["diskSnapshotName"], newest_disk.as_str());
    assert_eq!(p["diskName"], "data-1-copy");
    assert_eq!(p["availabilityZone"], "us-east-2c", "the source's zone");
    assert_eq!(p["sizeInGb"], "8", "the snapshot's size");
    let disks = sim_list(&sim, "disks");
    let copy = disks
        .iter()
        .find(|d| d["name"] == "data-1-copy")
        .expect("the new disk exists");
    assert_eq!(copy["state"], "available", "followed until ready: {copy}");
    assert_eq!(copy["fromSnapshot"], newest_disk.as_str());
    assert!(disks
        .iter()
        .any(|d| d["name"] == "data-1" && d["fromSnapshot"].is_null()));

    let to = ("web", "web-1", "web-1-copy");
    let p = &restore_ok(
        &sim,
        &wd,
        &cfg,
        to,
        &newest_instance,
        "CreateInstancesFromSnapshot",
    );
    assert_eq!(p["instanceSnapshotName"], newest_instance.as_str());
    assert_eq!(p["instanceNames"], r#"["web-1-copy"]"#);
    assert_eq!(p["availabilityZone"], "us-east-2b");
    assert_eq!(p["bundleId"], "small_3_0");
    let instances = sim_list(&sim, "instances");
    let copy = instances
        .iter()
        .find(|d| d["name"] == "web-1-copy")
        .expect("the new instance exists");
    assert_eq!(copy["state"]["name"], "running", "{copy}");

    // Each restore's operation was followed to terminal and recorded.
    let ops: Vec<Value> = sim_list(&sim, "operations");
    let polled: Vec<String> = requests(&sim, "GetOperation")
        .iter()
        .filter(|r| ok(r))
        .filter_map(|r| r["params"]["operationId"].as_str().map(str::to_string))
        .collect();
    for kind in ["CreateDiskFromSnapshot", "CreateInstancesFromSnapshot"] {
        let op = ops
            .iter()
            .find(|o| o["operationType"] == kind)
            .expect("a restore operation");
        assert_eq!(op["isTerminal"], true);
        assert!(
            polled.iter().any(|p| op["id"] == p.as_str()),
            "{kind} followed"
        );
    }
    let (done, open) = restore_ops(&wd);
    assert_eq!(open, 0);
    assert_eq!(
        done,
        vec![
            ("succeeded".to_string(), None),
            ("succeeded".to_string(), None)
        ]
    );
    // Nothing was deleted, the sources are there.
    assert!(requests(&sim, "DeleteDiskSnapshot").is_empty());
    assert_eq!(live(&sim, "fromDiskName", "data-1").len(), 2);
}

/// A restore whose operation fails: exit 1 with Lightsail's errorCode, the
/// ledger's restore op finished as failed; a second restore to a name
/// already in use is refused by the cloud with a clear message.
#[test]
fn failed_restore_is_reported_and_recorded() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    seed(&sim);
    let cfg = config(&wd, &sim, &policies(3));
    let out = snapshot_now(&wd, &cfg, "data", LS_SECRET);
    assert!(out.status.success(), "{}", output_text(&out));
    sim.post(
        "/_sim/faults",
        json!({"dialect": "lightsail", "action": "CreateDiskFromSnapshot", "fault": "fail_job", "count": 1}),
    );
    let out = restore(&wd, &cfg, "data", "data-1", "data-1-copy");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("restore failed") && text.contains("InternalError"),
        "{text}"
    );
    let (done, open) = restore_ops(&wd);
    assert_eq!(open, 0);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, "failed");

    // The failed disk keeps its name (as in Lightsail, until deleted).
    let out = restore(&wd, &cfg, "data", "data-1", "data-1-copy");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("already in use"), "{text}");
    let calls = requests(&sim, "CreateDiskFromSnapshot");
    assert_eq!(calls.len(), 2, "never retried: {calls:?}");
}

/// `snapwarden run` against the simulator, the AWS chain fenced off as in
/// [`run`], with `/metrics` on a loopback port of its choosing.
fn daemon(cfg: &std::path::Path, wd: &Workdir) -> Daemon {
    let none = wd.dir.path().join("no-aws-config");
    let none = none.to_str().expect("utf-8 path");
    Daemon::start_with_env(
        cfg,
        LS_SECRET,
        &[
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", none),
            ("AWS_SHARED_CREDENTIALS_FILE", none),
        ],
    )
}

/// An instance policy `name` on `target` with `schedule`.
fn instance_policy(name: &str, target: &str, schedule: &str) -> String {
    format!(
        r#"[[policy]]
name = "{name}"
provider = "ls"
resource = "instance"
targets = ["{target}"]
schedule = "{schedule}"
retain = 5
poll_interval = "100ms"
poll_max_interval = "300ms"
timeout = "30s"
"#
    )
}

/// The finished runs of (policy, target) in the ledger, once there are
/// `n` of them.
fn finished_runs(
    wd: &Workdir,
    policy: &str,
    target: &str,
    n: usize,
) -> Option<Vec<snapwarden::state::RunRow>> {
    let runs: Vec<_> = wd
        .try_state()?
        .runs_for(policy, target, 100)
        .ok()?
        .into_iter()
        .filter(|r| r.finished_at.is_some())
        .collect();
    (runs.len() >= n).then_some(runs)
}

/// Policy "db" on instance "prod-web" and policy "db-prod" on
/// instance "web" used to get the same name `db-prod-web-<slot>` at every
/// shared slot, so one of them failed with "the name … is taken". Each now
/// gets its own snapshot at every slot, under a name no other (policy,
/// target) pair can have, tagged as before.
#[test]
fn pairs_whose_names_run_together_each_get_a_snapshot_every_slot() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    for name in ["prod-web", "web"] {
        sim.post("/_sim/lightsail/instances", json!({"name": name}));
    }
    let schedule = seconds_from_now(&[2, 4]);
    let policies = format!(
        "{}\n{}",
        instance_policy("db", "prod-web", &schedule),
        instance_policy("db-prod", "web", &schedule)
    );
    let cfg = config(&wd, &sim, &policies);
    let d = daemon(&cfg, &wd);
    let pairs = [("db", "prod-web"), ("db-prod", "web")];
    let runs: Vec<_> = pairs
        .iter()
        .map(|(p, t)| {
            wait_for(
                &format!("two finished runs of {p} on {t}"),
                Duration::from_secs(30),
                || finished_runs(&wd, p, t, 2),
            )
        })
        .collect();
    let log = d.log.text();
    drop(d);
    for ((policy, target), runs) in pairs.iter().zip(&runs) {
        for r in runs {
            assert_eq!(
                r.state,
                snapwarden::state::RunState::Succeeded,
                "{policy} on {target}, slot {}: {:?}\n{log}",
                r.slot,
                r.error
            );
        }
        let own: Vec<Value> = live(&sim, "fromInstanceName", target)
            .into_iter()
            .filter(|s| clouds::lightsail_tag(s, "snapwarden:policy") == Some(*policy))
            .collect();
        assert_eq!(own.len(), 2, "{policy} on {target}: {own:?}");
        for s in &own {
            assert_eq!(clouds::lightsail_tag(s, "snapwarden:target"), Some(*target));
            assert_eq!(s["state"], "available", "{s}");
        }
    }
    let names: std::collections::HashSet<String> = sim_snapshots(&sim)
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names.len(), 4, "four different names: {names:?}");
    assert!(!log.contains("is taken"), "{log}");
}

/// Lightsail's calls go through the AWS SDK, not the shared HTTP client:
/// they are counted in `snapwarden_api_requests_total` and timed in
/// `snapwarden_api_request_duration_seconds` with the labels the other
/// clouds' calls carry (provider, call, outcome), an error answer too.
#[test]
fn lightsail_calls_are_counted_and_timed_in_metrics() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    seed(&sim);
    // One throttled listing: an error answer is counted as such.
    sim.post(
        "/_sim/faults",
        json!({"dialect": "lightsail", "action": "GetInstanceSnapshots", "fault": "throttle", "count": 1}),
    );
    let schedule = seconds_from_now(&[2]);
    let text = config(&wd, &sim, &instance_policy("web", "web-1", &schedule));
    let text = std::fs::read_to_string(&text).expect("config").replace(
        "log_format = \"text\"",
        "log_format = \"text\"\nmetrics_listen = \"127.0.0.1:0\"",
    );
    let cfg = wd.write_config(&text);
    let d = daemon(&cfg, &wd);
    let addr = wait_for(
        "the metrics address in the log",
        Duration::from_secs(10),
        || {
            d.log.all().iter().find_map(|l| {
                l.split("metrics listening on ")
                    .nth(1)
                    .map(|a| a.split_whitespace().next().unwrap_or("").to_string())
            })
        },
    );
    let runs = wait_for("a finished run", Duration::from_secs(30), || {
        finished_runs(&wd, "web", "web-1", 1)
    });
    assert_eq!(
        runs[0].state,
        snapwarden::state::RunState::Succeeded,
        "{:?}",
        runs[0].error
    );
    let metrics = reqwest::blocking::get(format!("http://{addr}/metrics"))
        .and_then(|r| r.text())
        .expect("GET /metrics");
    drop(d);

    let sample = |series: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let sent = |action: &str, ok: bool| {
        requests(&sim, action)
            .iter()
            .filter(|r| (r["http_status"] == 200) == ok)
            .count() as f64
    };
    for (call, outcome, answered_ok) in [
        ("CreateInstanceSnapshot", "ok", true),
        ("GetInstanceSnapshots", "ok", true),
        ("GetInstanceSnapshots", "http_4xx", false),
    ] {
        let series = format!(
            r#"snapwarden_api_requests_total{{provider="ls",call="{call}",outcome="{outcome}"}}"#
        );
        let expected = sent(call, answered_ok);
        assert!(expected >= 1.0, "{call} {outcome} was sent");
        assert_eq!(sample(&series), Some(expected), "{series}\n{metrics}");
    }
    for call in ["CreateInstanceSnapshot", "GetInstanceSnapshots"] {
        let count = format!(
            r#"snapwarden_api_request_duration_seconds_count{{provider="ls",call="{call}"}}"#
        );
        assert_eq!(
            sample(&count),
            Some(sent(call, true) + sent(call, false)),
            "{count}\n{metrics}"
        );
    }
}

/// `plan --json` shows each snapshot under the cloud's own identifier (the
/// name `aws lightsail get-instance-snapshot --instance-snapshot-name`
/// takes), never the internal `InstanceSnapshot/<name>`, with its name,
/// creation time, status and size.
#[test]
fn plan_json_shows_the_cloud_identifier_and_details() {
    let (sim, wd) = sim_with_volumes("200ms", &[]);
    seed(&sim);
    let cfg = config(&wd, &sim, &policies(3));
    for policy in ["web", "data"] {
        let out = snapshot_now(&wd, &cfg, policy, LS_SECRET);
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let out = run(
        &wd,
        &["plan", "--json", "-c", cfg.to_str().expect("utf-8 path")],
        LS_SECRET,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("plan json");
    for (policy, source, size_gb) in [("web", "web-1", 40u64), ("data", "data-1", 8)] {
        let entry = doc
            .as_array()
            .and_then(|a| a.iter().find(|e| e["policy"] == policy))
            .unwrap_or_else(|| panic!("an entry for {policy}: {doc}"));
        let snaps = entry["snapshots"].as_array().cloned().unwrap_or_default();
        let own = live(
            &sim,
            if policy == "web" {
                "fromInstanceName"
            } else {
                "fromDiskName"
            },
            source,
        )
        .into_iter()
        .find(|s| clouds::lightsail_tag(s, "snapwarden:policy") == Some(policy))
        .expect("an own snapshot");
        let name = own["name"].as_str().expect("name");
        let s = snaps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {entry}"));
        assert_eq!(s["id"], name, "the cloud's identifier: {s}");
        assert!(
            snaps
                .iter()
                .all(|s| !s["id"].as_str().unwrap_or("").contains("Snapshot/")),
            "{entry}"
        );
        assert_eq!(s["status"], "available", "{s}");
        assert_eq!(s["size"], size_gb << 30, "{s}");
        let created = s["created_at"].as_str().expect("created_at");
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
        assert_eq!(s["action"], "keep", "{s}");
    }
}
