//! GFS retention end to end over a simulated year: 365 nightly snapshots
//! with old creation times are seeded in the simulator and in the ledger,
//! then `plan` shows the decisions with reasons and `prune` keeps exactly
//! what the rules say.

mod util;

use chrono::{Duration as D, TimeZone, Utc};
use snapwarden::state::SqliteLedger;
use util::*;

const VOL: &str = "vol-aaaa0001";

#[test]
fn a_year_of_nightly_snapshots_under_gfs_rules() {
    let (sim, wd) = sim_with_volumes("50ms", &[VOL]);
    let manual = sim.manual_snapshot(VOL, "before-upgrade");

    let first = Utc
        .with_ymd_and_hms(2025, 1, 1, 2, 30, 0)
        .single()
        .expect("valid date");
    let mut ids = Vec::new();
    {
        let state = SqliteLedger::open(&wd.state_path()).expect("ledger");
        for day in 0..365 {
            let t = first + D::days(day);
            ids.push((t, seed_own(&sim, &state, "db", VOL, t)));
        }
    }
    let text = wd
        .qingcloud_config(
            &sim,
            SECRET,
            &format!(
                r#"name = "db"
provider = "qc"
resource = "volume"
targets = ["{VOL}"]
schedule = "0 30 2 * * *"
keep_daily = 7
keep_weekly = 4
keep_monthly = 12
keep_yearly = 1
poll_interval = "100ms"
poll_max_interval = "200ms"
timeout = "10m"
"#
            ),
        )
        .replace("requests_per_second = 50", "requests_per_second = 500");
    let cfg = wd.write_config(&text);
    let path = cfg.to_str().expect("utf-8");

    // What the rules keep, worked out by hand (UTC, nightly 02:30):
    // daily: 25–31 Dec; weekly (ISO): 2026-W01 (31 Dec), W52 (28 Dec),
    // W51 (21 Dec), W50 (14 Dec); monthly: the last day of each month of
    // 2025; yearly: 31 Dec.
    let mut expected: Vec<String> = (25..=31).map(|d| format!("2025-12-{d:02}")).collect();
    expected.extend(["2025-12-21".to_string(), "2025-12-14".to_string()]);
    for (m, last) in [
        (1, 31),
        (2, 28),
        (3, 31),
        (4, 30),
        (5, 31),
        (6, 30),
        (7, 31),
        (8, 31),
        (9, 30),
        (10, 31),
        (11, 30),
    ] {
        expected.push(format!("2025-{m:02}-{last:02}"));
    }
    expected.sort();
    let day_of = |id: &str| -> String {
        ids.iter()
            .find(|(_, i)| i == id)
            .map(|(t, _)| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| format!("unknown {id}"))
    };

    let plan = wd.json_ok(&["plan", "--json", "-c", path], SECRET);
    let snaps = plan[0]["snapshots"].as_array().expect("snapshots").clone();
    assert_eq!(snaps.len(), 366, "365 own and the manual one");
    let mut kept: Vec<String> = snaps
        .iter()
        .filter(|s| s["action"] == "keep" && s["id"] != manual.as_str())
        .filter_map(|s| s["id"].as_str().map(day_of))
        .collect();
    kept.sort();
    assert_eq!(kept, expected);
    let reasons_of = |day: &str| -> String {
        let id = ids
            .iter()
            .find(|(t, _)| t.format("%Y-%m-%d").to_string() == day)
            .map(|(_, i)| i.clone())
            .unwrap_or_default();
        snaps
            .iter()
            .find(|s| s["id"] == id.as_str())
            .map(|s| s["reasons"].to_string())
            .unwrap_or_default()
    };
    for (day, reason) in [
        ("2025-01-31", "monthly 2025-01"),
        ("2025-12-14", "weekly 2025-W50"),
        ("2025-12-31", "yearly 2025"),
        ("2025-06-15", "kept by no rule"),
    ] {
        let reasons = reasons_of(day);
        assert!(reasons.contains(reason), "{day}: {reasons}");
    }
    assert!(
        sim.requests("DeleteSnapshots").is_empty(),
        "plan deletes nothing"
    );

    // 340 deletes: beyond the per-run budget, so the operator confirms.
    wd.cmd_ok(&["prune", "-c", path, "--policy", "db", "--yes"], SECRET);
    let mut live: Vec<String> = sim
        .live_snapshots(VOL)
        .iter()
        .filter(|s| s["snapshot_id"] != manual.as_str())
        .filter_map(|s| s["snapshot_id"].as_str().map(day_of))
        .collect();
    live.sort();
    assert_eq!(live, expected, "prune kept exactly what plan said");
    assert!(sim
        .live_snapshots(VOL)
        .iter()
        .any(|s| s["snapshot_id"] == manual.as_str()));
}
