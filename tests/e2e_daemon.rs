//! Daemon behaviour end to end: overlap guard, catch-up, JSON logs without
//! secrets, plan and prune, signals, and the shipped systemd unit.

mod util;

use std::process::Command;
use std::time::Duration;

use snapwarden::state::RunState;
use util::*;

fn policy(schedule: &str, retain: u32, extra: &str) -> String {
    let rest = format!(
        "retain = {retain}\npoll_interval = \"100ms\"\npoll_max_interval = \"300ms\"\n\
         timeout = \"30s\"\n{extra}"
    );
    qc_policy("db", &["vol-aaaa0001"], schedule, &rest)
}

/// A slot that comes while the previous run is still in flight is skipped,
/// logged and counted, never doubled.
#[test]
fn overlapping_slots_are_skipped_not_doubled() {
    let (sim, wd) = sim_with_volumes("2500ms", &["vol-aaaa0001"]);
    let cfg = wd.write_qc_config(&sim, &policy("* * * * * *", 5, ""));
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("two skipped slots", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", "vol-aaaa0001", 50).ok()?;
        (runs.iter().filter(|r| r.state == RunState::Skipped).count() >= 2).then_some(())
    });
    daemon.wait_log("slot skipped", Duration::from_secs(5));
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));

    let runs = wd.state().runs_for("db", "vol-aaaa0001", 50).expect("runs");
    let ran = runs.iter().filter(|r| r.state != RunState::Skipped).count();
    assert_eq!(
        sim.creates_for("vol-aaaa0001"),
        ran,
        "one create per run that was not skipped"
    );
    // Never two creates in flight on the volume: the simulator would have
    // answered 1400 "please try later" to the second.
    assert!(sim
        .requests("CreateSnapshots")
        .iter()
        .all(|r| r["ret_code"] == 0));

    let out = wd.cmd(
        &["status", "--json", "-c", cfg.to_str().expect("utf-8")],
        SECRET,
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert!(
        doc["targets"][0]["skipped_slots"].as_u64().unwrap_or(0) >= 2,
        "{doc}"
    );
}

/// `catch_up = true`: a slot missed while the daemon was down runs once at
/// start-up.
#[test]
fn catch_up_runs_one_missed_slot() {
    let (sim, wd) = sim_with_volumes("100ms", &["vol-aaaa0001"]);
    let cfg = wd.write_qc_config(&sim, &policy("*/2 * * * * *", 5, "catch_up = true"));
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("a first successful run", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", "vol-aaaa0001", 10).ok()?;
        runs.iter()
            .any(|r| r.state == RunState::Succeeded)
            .then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    let before = wd
        .state()
        .runs_for("db", "vol-aaaa0001", 50)
        .expect("runs")
        .len();

    // Down for more than two slots.
    std::thread::sleep(Duration::from_millis(4500));
    let restarted = chrono::Utc::now();
    let daemon = Daemon::start(&cfg, SECRET);
    daemon.wait_log("catching up one missed slot", Duration::from_secs(10));
    wait_for("the caught-up run to succeed", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", "vol-aaaa0001", 50).ok()?;
        runs.iter()
            .any(|r| {
                r.slot < restarted && r.state == RunState::Succeeded && r.started_at >= restarted
            })
            .then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    assert_eq!(
        daemon_count(&wd, restarted),
        1,
        "exactly one missed slot is caught up"
    );
    assert!(
        wd.state()
            .runs_for("db", "vol-aaaa0001", 50)
            .expect("runs")
            .len()
            > before
    );
}

/// Runs started after `t` for slots before `t`: catch-up runs.
fn daemon_count(wd: &Workdir, t: chrono::DateTime<chrono::Utc>) -> usize {
    wd.state()
        .runs_for("db", "vol-aaaa0001", 50)
        .expect("runs")
        .iter()
        .filter(|r| r.slot < t && r.started_at >= t)
        .count()
}

/// JSON logs are one object per line with structured fields, and the
/// secret never appears in them; SIGINT stops the daemon with exit 0.
#[test]
fn json_logs_are_structured_and_secret_free() {
    let (sim, wd) = sim_with_volumes("100ms", &["vol-aaaa0001"]);
    let text = wd
        .qingcloud_config(&sim, SECRET, &policy("* * * * * *", 2, ""))
        .replace("log_format = \"text\"", "log_format = \"json\"");
    let cfg = wd.write_config(&text);
    let daemon = Daemon::start(&cfg, SECRET);
    daemon.wait_log("delete job succeeded", MINUTE);
    daemon.signal("INT");
    let log = daemon.log.clone();
    let (code, took) = daemon.stop_after_signal();
    assert_eq!(code, Some(0), "SIGINT is a clean stop");
    assert!(took < Duration::from_secs(10));

    let lines = log.all();
    assert!(!lines.is_empty());
    let mut saw_run = false;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["message"] == "create job succeeded; snapshot available" {
            saw_run = true;
            for field in ["policy", "target", "provider", "snapshot", "job"] {
                assert!(v[field].is_string(), "field {field} in {line}");
            }
        }
        assert!(!line.contains(SECRET), "secret in a log line: {line}");
    }
    assert!(saw_run);
}

/// `plan` and `prune --dry-run` show the decisions with reasons and change
/// nothing; `prune` then deletes exactly those.
#[test]
fn plan_and_prune_show_reasons_and_delete_only_what_they_said() {
    let (sim, wd) = sim_with_volumes("100ms", &["vol-aaaa0001"]);
    let manual = sim.manual_snapshot("vol-aaaa0001", "before-upgrade");
    let cfg = wd.write_qc_config(&sim, &policy("0 0 3 * * *", 5, ""));
    let path = cfg.to_str().expect("utf-8");
    for _ in 0..3 {
        wd.cmd_ok(&["snapshot", "-c", path, "--policy", "db"], SECRET);
        std::thread::sleep(Duration::from_millis(1050));
    }
    wd.write_qc_config(&sim, &policy("0 0 3 * * *", 1, ""));

    let plan = wd.json_ok(&["plan", "--json", "-c", path], SECRET);
    let snaps = plan[0]["snapshots"].as_array().expect("snapshots");
    assert_eq!(snaps.len(), 4);
    let deletes: Vec<&str> = snaps
        .iter()
        .filter(|s| s["action"] == "delete")
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(deletes.len(), 2);
    let m = snaps
        .iter()
        .find(|s| s["id"] == manual.as_str())
        .expect("manual listed");
    assert_eq!(m["action"], "keep");
    assert!(m["reasons"].to_string().contains("not made by this policy"));
    // Each entry also says what the snapshot is, with its size (QingCloud
    // lists it in MiB: a full snapshot of the simulator's 20 GB volume).
    assert_eq!(m["name"], "before-upgrade", "{m}");
    assert_eq!(m["status"], "available", "{m}");
    assert!(m["created_at"].is_string(), "{m}");
    assert_eq!(m["size"].as_u64(), Some(20 << 30), "{m}");
    assert!(plan[0]["next_run"].is_string());

    let out = wd.cmd(&["prune", "--dry-run", "-c", path], SECRET);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("WOULD DELETE")
            .count(),
        2
    );
    assert!(
        sim.requests("DeleteSnapshots").is_empty(),
        "a dry run deletes nothing"
    );

    wd.cmd_ok(&["prune", "-c", path], SECRET);
    let deleted: Vec<String> = sim
        .requests("DeleteSnapshots")
        .iter()
        .filter_map(|r| r["params"]["snapshots.1"].as_str().map(str::to_string))
        .collect();
    let mut expected: Vec<String> = deletes.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let mut got = deleted.clone();
    got.sort();
    assert_eq!(got, expected, "prune deleted exactly what plan said");
    assert_eq!(
        sim.live_snapshots("vol-aaaa0001").len(),
        2,
        "one own snapshot and the manual one"
    );
}

/// The shipped unit passes `systemd-analyze verify` (where systemd is
/// installed; the CI machine has it).
#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed; unit not verified on this machine");
        return;
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/snapwarden.service"
    ))
    .expect("read unit");
    for needle in [
        "Type=notify",
        // A clock stepped back after start leaves a gap: start
        // once time sync says the clock is right, without pulling it in.
        "After=network-online.target time-sync.target\n",
        "ExecStartPre=/usr/bin/snapwarden check",
        "StateDirectory=snapwarden",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle:?}");
    }
    // systemd.special(7): order after time-sync.target, never pull it in.
    assert!(!unit.contains("Wants=time-sync.target"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snapwarden.service");
    std::fs::write(&path, unit.replace("/usr/bin/snapwarden", BIN)).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

/// Under systemd (`Type=notify`): READY=1 after start-up, WATCHDOG=1 while
/// the loop runs when `WatchdogSec` is set, STOPPING=1 on shutdown.
#[test]
fn systemd_notifications_ready_watchdog_stopping() {
    use std::os::unix::net::UnixDatagram;
    let (sim, wd) = sim_with_volumes("100ms", &["vol-aaaa0001"]);
    let cfg = wd.write_qc_config(&sim, &policy("0 0 3 * * *", 2, ""));
    let sock_path = wd.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let daemon = Daemon::start_with_env(
        &cfg,
        SECRET,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().expect("utf-8")),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read = |seen: &mut Vec<String>| {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            );
        }
    };
    wait_for(
        "READY=1 and two watchdog pings",
        Duration::from_secs(20),
        || {
            read(&mut seen);
            (seen.iter().any(|l| l == "READY=1")
                && seen.iter().filter(|l| *l == "WATCHDOG=1").count() >= 2)
                .then_some(())
        },
    );
    assert!(seen.iter().any(|l| l.starts_with("STATUS=")), "{seen:?}");
    daemon.signal("TERM");
    wait_for("STOPPING=1", Duration::from_secs(10), || {
        read(&mut seen);
        seen.iter().any(|l| l == "STOPPING=1").then_some(())
    });
    let (code, _) = daemon.stop_after_signal();
    assert_eq!(code, Some(0));
}

/// `full_every = 3`: a full snapshot, then two incrementals, and pruning
/// removes whole chains only.
#[test]
fn full_every_makes_chains_and_pruning_keeps_them_whole() {
    let (sim, wd) = sim_with_volumes("100ms", &["vol-aaaa0001"]);
    let cfg = wd.write_qc_config(&sim, &policy("0 0 3 * * *", 10, "full_every = 3"));
    let path = cfg.to_str().expect("utf-8");
    for _ in 0..5 {
        wd.cmd_ok(&["snapshot", "-c", path, "--policy", "db"], SECRET);
        std::thread::sleep(Duration::from_millis(1050));
    }
    let mut snaps = sim.live_snapshots("vol-aaaa0001");
    snaps.sort_by(|a, b| a["create_time"].as_str().cmp(&b["create_time"].as_str()));
    let types: Vec<i64> = snaps
        .iter()
        .map(|s| s["snapshot_type"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(types, vec![1, 0, 0, 1, 0], "full, incr, incr, full, incr");

    // retain 2 keeps the two newest (chain 2: full + incr); chain 1 goes whole.
    wd.write_qc_config(&sim, &policy("0 0 3 * * *", 2, "full_every = 3"));
    wd.cmd_ok(&["prune", "-c", path], SECRET);
    let live: Vec<String> = sim
        .live_snapshots("vol-aaaa0001")
        .iter()
        .filter_map(|s| s["snapshot_id"].as_str().map(str::to_string))
        .collect();
    let want: Vec<String> = snaps[3..]
        .iter()
        .filter_map(|s| s["snapshot_id"].as_str().map(str::to_string))
        .collect();
    let mut live_sorted = live.clone();
    live_sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(live_sorted, want_sorted);

    // retain 1 would keep only the newest increment, which needs its full
    // snapshot: nothing may go.
    wd.write_qc_config(&sim, &policy("0 0 3 * * *", 1, "full_every = 3"));
    let out = wd.cmd(&["prune", "-c", path], SECRET);
    assert!(out.status.success());
    assert_eq!(
        sim.live_snapshots("vol-aaaa0001").len(),
        2,
        "a chain still needed stays whole"
    );
}

/// `max_in_flight = 1`: three targets due at once are created one after
/// the other, each only once the previous snapshot is terminal.
#[test]
fn max_in_flight_bounds_concurrent_snapshots() {
    let vols = ["vol-aaaa0001", "vol-aaaa0002", "vol-aaaa0003"];
    let (sim, wd) = sim_with_volumes("500ms", &vols);
    let text = wd
        .qingcloud_config(&sim, SECRET, &policy("0 0 3 * * *", 5, ""))
        .replace(
            "requests_per_second = 50",
            "requests_per_second = 50\nmax_in_flight = 1",
        )
        .replace(
            r#"targets = ["vol-aaaa0001"]"#,
            r#"targets = ["vol-aaaa0001", "vol-aaaa0002", "vol-aaaa0003"]"#,
        );
    let cfg = wd.write_config(&text);
    wd.run_ok(&cfg, &["snapshot", "--policy", "db"], SECRET);
    let mut times: Vec<chrono::DateTime<chrono::Utc>> = sim
        .requests("CreateSnapshots")
        .iter()
        .filter_map(|r| r["time"].as_str().and_then(|t| t.parse().ok()))
        .collect();
    assert_eq!(times.len(), 3);
    times.sort();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::milliseconds(450),
            "creates overlapped: {gap}"
        );
    }
}
