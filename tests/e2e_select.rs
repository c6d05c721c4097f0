//! End to end: target selection. A daemon with a selector policy on
//! QingCloud picks volumes by name glob and tag at every run, picks up a
//! volume seeded while it runs, leaves a non-matching one alone, keeps the
//! snapshots of a volume that leaves the selector, and raises
//! `selector_empty` for a selector that matches nothing. Then, per other
//! cloud (Lightsail, UCloudStack, KakaoCloud, PowerVS), `plan --json` and
//! `snapshot` with a selector against the simulator.

mod clouds;
mod util;

use serde_json::{json, Value};
use util::*;

fn seed(sim: &Sim, id: &str, name: &str, tags: Value) {
    sim.post(
        "/_sim/qingcloud/volumes",
        json!({"zone": ZONE, "volume_id": id, "volume_name": name, "tags": tags}),
    );
}

/// Successful DeleteSnapshots requests for any of `snapshots`.
fn deletes_of(sim: &Sim, snapshots: &[String]) -> usize {
    sim.requests("DeleteSnapshots")
        .iter()
        .filter(|r| r["ret_code"] == 0)
        .filter(|r| {
            r["params"]["snapshots.1"]
                .as_str()
                .is_some_and(|s| snapshots.iter().any(|x| x == s))
        })
        .count()
}

#[test]
fn selector_follows_the_cloud_at_every_run() {
    let (sim, wd) = sim_with_volumes("100ms", &[]);
    let prod = json!({"env": "prod"});
    seed(&sim, "vol-web00001", "web-1", prod.clone());
    seed(&sim, "vol-web00002", "web-2", prod.clone());
    seed(&sim, "vol-db000001", "db-1", prod.clone()); // name does not match
    seed(&sim, "vol-web00003", "web-3", json!({"env": "dev"})); // tag does not match
    let alerts = wd.dir.path().join("alerts.jsonl");
    let cfg = wd.write_config(&format!(
        r#"[daemon]
state_path = "{state}"

[alerts]
command = ["sh", "-c", "cat >> '{out}'; echo >> '{out}'"]
on = ["failure", "selector_empty"]

[providers.qc]
kind = "qingcloud"
zone = "{ZONE}"
access_key_id = "{ACCESS_KEY}"
secret_access_key_env = "{env}"
endpoint = "{endpoint}"
requests_per_second = 50

[[policy]]
name = "web"
provider = "qc"
resource = "volume"
select = {{ name = "web-*", tags = {{ env = "prod" }} }}
schedule = "* * * * * *"
retain = 2
poll_interval = "100ms"
timeout = "5s"

[[policy]]
name = "none"
provider = "qc"
resource = "volume"
select = {{ name = "nothing-*" }}
schedule = "*/2 * * * * *"
retain = 2
poll_interval = "100ms"
timeout = "5s"
"#,
        state = wd.state_path().display(),
        out = alerts.display(),
        env = secret_env_name(SECRET),
        endpoint = sim.endpoint(),
    ));
    let daemon = Daemon::start(&cfg, SECRET);

    // The two matching volumes get snapshots; the others never do.
    wait_for("snapshots of both matching volumes", MINUTE, || {
        (sim.live_snapshots("vol-web00001").len() >= 2
            && sim.live_snapshots("vol-web00002").len() >= 2)
            .then_some(())
    });

    // Seeded while the daemon runs: a matching one and a non-matching one.
    seed(&sim, "vol-web00004", "web-4", prod.clone());
    seed(
        &sim,
        "vol-web00005",
        "web-5",
        json!({"env": "dev", "team": "a"}),
    );
    wait_for("the new matching volume is picked up", MINUTE, || {
        (!sim.live_snapshots("vol-web00004").is_empty()).then_some(())
    });

    // vol-web00001 leaves the selector (untagged): its snapshots stay.
    seed(&sim, "vol-web00001", "web-1", json!({}));
    // A run already past its listing may still finish for it: let two
    // runs go by, then nothing more may happen to it.
    let web4 = sim.creates_for("vol-web00004");
    wait_for("two more runs of the selector", MINUTE, || {
        (sim.creates_for("vol-web00004") >= web4 + 2).then_some(())
    });
    wait_for("no operation left on the volume that left", MINUTE, || {
        sim.live_snapshots("vol-web00001")
            .iter()
            .all(|s| s["status"] == "available")
            .then_some(())
    });
    let creates_before = sim.creates_for("vol-web00001");
    let kept = sim.live_ids("vol-web00001");
    let web4 = sim.creates_for("vol-web00004");
    wait_for("three more runs of the selector", MINUTE, || {
        (sim.creates_for("vol-web00004") >= web4 + 3).then_some(())
    });
    assert_eq!(
        sim.creates_for("vol-web00001"),
        creates_before,
        "a volume that left the selector is not snapshotted any more"
    );
    let still = sim.live_ids("vol-web00001");
    assert!(
        kept.iter().all(|k| still.contains(k)),
        "its snapshots are kept: before {kept:?}, now {still:?}"
    );
    assert!(!still.is_empty());

    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    for never in ["vol-db000001", "vol-web00003", "vol-web00005"] {
        assert_eq!(sim.creates_for(never), 0, "{never} does not match");
    }
    // Snapshots of the volume that left are never deleted once it left.
    assert_eq!(deletes_of(&sim, &kept), 0);

    // The empty selector raised selector_empty; nothing failed.
    let text = std::fs::read_to_string(&alerts).unwrap_or_default();
    let events: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "selector_empty" && e["policy"] == "none"),
        "selector_empty for policy none: {text}"
    );
    assert!(
        !events.iter().any(|e| e["policy"] == "web"),
        "no alert for the matching selector: {text}"
    );

    // plan shows what the selector matches now.
    let plan = wd.json_ok(
        &["plan", "--json", "-c", &cfg.display().to_string()],
        SECRET,
    );
    let entries = plan.as_array().expect("plan array");
    let web = entries
        .iter()
        .find(|e| e["policy"] == "web" && e.get("matches").is_some())
        .expect("selector entry for web");
    let mut matched: Vec<&str> = field_strs(&web["matches"], "id");
    matched.sort_unstable();
    assert_eq!(matched, ["vol-web00002", "vol-web00004"]);
    let targets: Vec<&str> = entries
        .iter()
        .filter(|e| e["policy"] == "web")
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(entries
        .iter()
        .filter(|e| e["policy"] == "web" && e.get("target").is_some())
        .all(|e| e["source"] == "select"));
    let none = entries
        .iter()
        .find(|e| e["policy"] == "none")
        .expect("selector entry for none");
    assert_eq!(none["matches"], json!([]));
}

// ------------------------------------------- selection on the other clouds

/// One row of the per-cloud table: what to seed, the selector, and which
/// seeded resource it must pick (the others must not be picked).
struct Case {
    kind: clouds::Kind,
    /// The policy's `resource`.
    resource: &'static str,
    /// The inline table after `select = `.
    select: &'static str,
    /// Seeds the resources; returns (the matching id, the non-matching ids).
    seed: fn(&Sim) -> (String, Vec<String>),
}

fn seed_lightsail(sim: &Sim) -> (String, Vec<String>) {
    for (name, env) in [
        ("data-sel-1", "prod"),
        ("data-sel-2", "dev"),
        ("logs-1", "prod"),
    ] {
        sim.post(
            "/_sim/lightsail/disks",
            json!({"name": name, "tags": [{"key": "env", "value": env}, {"key": "backup"}]}),
        );
    }
    (
        "data-sel-1".to_string(),
        vec!["data-sel-2".to_string(), "logs-1".to_string()],
    )
}

fn seed_ucloudstack(sim: &Sim) -> (String, Vec<String>) {
    for (id, name) in [("disk-sel00001", "db-data"), ("disk-sel00002", "web-data")] {
        sim.post(
            "/_sim/ucloudstack/disks",
            json!({"region": "cn", "zone": "zone-01", "disk_id": id, "name": name}),
        );
    }
    (
        "disk-sel00001".to_string(),
        vec!["disk-sel00002".to_string()],
    )
}

fn seed_kakaocloud(sim: &Sim) -> (String, Vec<String>) {
    for (id, name) in [("vol-kc-sel-1", "pg-data"), ("vol-kc-sel-2", "cache")] {
        sim.post(
            "/_sim/kakaocloud/volumes",
            json!({"volume_id": id, "name": name}),
        );
    }
    ("vol-kc-sel-1".to_string(), vec!["vol-kc-sel-2".to_string()])
}

fn seed_powervs(sim: &Sim) -> (String, Vec<String>) {
    for (id, name) in [
        ("pvm-sel-0001", "lpar-db-1"),
        ("pvm-sel-0002", "lpar-app-1"),
    ] {
        sim.post(
            "/_sim/powervs/instances",
            json!({"cloud_instance_id": "ws-torture-0001", "pvm_instance_id": id, "name": name}),
        );
    }
    ("pvm-sel-0001".to_string(), vec!["pvm-sel-0002".to_string()])
}

fn select_cases() -> Vec<Case> {
    vec![
        Case {
            kind: clouds::Kind::Lightsail,
            resource: "disk",
            select: r#"{ name = "data-sel-*", tags = { env = "prod" } }"#,
            seed: seed_lightsail,
        },
        Case {
            kind: clouds::Kind::UCloudStack,
            resource: "disk",
            select: r#"{ name = "db-*" }"#,
            seed: seed_ucloudstack,
        },
        Case {
            kind: clouds::Kind::KakaoCloud,
            resource: "volume",
            select: r#"{ name = "pg-*" }"#,
            seed: seed_kakaocloud,
        },
        Case {
            kind: clouds::Kind::PowerVs,
            resource: "instance",
            select: r#"{ name = "lpar-db-*" }"#,
            seed: seed_powervs,
        },
    ]
}

/// Per cloud: `plan --json` shows that the selector matches the seeded
/// matching resource and not the others, then `snapshot` creates exactly
/// one snapshot, of the match (counted in the simulator's journal and its
/// own view of the snapshots).
#[test]
fn selector_resolves_on_every_selectable_cloud() {
    for case in select_cases() {
        let kind = case.kind;
        let (sim, wd) = sim_with_volumes("100ms", &[]);
        kind.prepare(&sim);
        let (hit, misses) = (case.seed)(&sim);
        let policy = format!("sel{}", kind.provider());
        let cfg = wd.write_config(&format!(
            r#"[daemon]
state_path = "{state}"

{section}
[[policy]]
name = "{policy}"
provider = "{provider}"
resource = "{resource}"
select = {select}
schedule = "0 0 3 * * *"
retain = 3
poll_interval = "100ms"
poll_max_interval = "300ms"
timeout = "30s"
"#,
            state = wd.state_path().display(),
            section = kind.provider_section(&sim, "requests_per_second = 50"),
            provider = kind.provider(),
            resource = case.resource,
            select = case.select,
        ));
        let cfg_s = cfg.display().to_string();

        let out = clouds::cmd(wd.dir.path(), &["plan", "--json", "-c", &cfg_s]);
        let text = output_text(&out);
        assert!(out.status.success(), "{kind:?}: plan failed: {text}");
        let plan: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{kind:?}: plan json: {e}: {text}"));
        let entries = plan.as_array().cloned().unwrap_or_default();
        let sel = entries
            .iter()
            .find(|e| e["policy"] == policy.as_str() && e.get("matches").is_some())
            .unwrap_or_else(|| panic!("{kind:?}: no selector entry: {plan}"));
        let matched: Vec<&str> = sel["matches"]
            .as_array()
            .map(|m| m.iter().filter_map(|r| r["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(matched, [hit.as_str()], "{kind:?}: {sel}");

        let out = clouds::cmd(
            wd.dir.path(),
            &["snapshot", "-c", &cfg_s, "--policy", &policy],
        );
        assert!(
            out.status.success(),
            "{kind:?}: snapshot failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let creates: Vec<Value> = kind
            .requests(&sim, kind.create_action())
            .into_iter()
            .filter(|r| r["http_status"].as_u64().is_some_and(|c| c < 300))
            .collect();
        assert_eq!(creates.len(), 1, "{kind:?}: one create: {creates:?}");
        let snaps = kind.snapshots(&sim, &[policy.as_str()]);
        let ours: Vec<&clouds::Snap> = snaps.iter().filter(|s| s.marker.is_some()).collect();
        assert_eq!(ours.len(), 1, "{kind:?}: {snaps:?}");
        assert_eq!(ours[0].source, hit, "{kind:?}");
        for miss in &misses {
            assert!(
                !snaps.iter().any(|s| &s.source == miss),
                "{kind:?}: {miss} does not match the selector"
            );
        }
    }
}
