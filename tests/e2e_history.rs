//! The audit trail end to end: the real daemon against the simulator
//! makes and prunes snapshots, an operator pauses and resumes, and
//! `snapwarden history` tells who did what, to what, and why.

mod util;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use util::*;

const DB_VOLUME: &str = "vol-hist0001";
const WEB_VOLUME: &str = "vol-hist0002";

/// `snapwarden ARGS[0] -c CFG ARGS[1..]` as the operator "ann".
fn as_ann(cfg: &Path, args: &[&str]) -> Output {
    run_as_user(cfg, args, "ann")
}

/// `history --json` with `extra` options: its entries.
fn history(cfg: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["history", "--json"];
    args.extend_from_slice(extra);
    let out = as_ann(cfg, &args);
    assert!(out.status.success(), "{args:?}: {}", output_text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", output_text(&out)));
    doc.as_array().expect("an array of entries").clone()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

#[test]
fn history_tells_who_did_what_and_why() {
    let (sim, wd) = sim_with_volumes("200ms", &[DB_VOLUME, WEB_VOLUME]);
    let rest = "timezone = \"UTC\"\nretain = 1\npoll_interval = \"100ms\"\n\
                poll_max_interval = \"200ms\"\ntimeout = \"1m\"";
    let policies = format!(
        "{}\n[[policy]]\n{}",
        qc_policy("db", &[DB_VOLUME], "*/2 * * * * *", rest),
        qc_policy("web", &[WEB_VOLUME], "*/2 * * * * *", rest)
    );
    let cfg = wd.write_qc_config(&sim, &policies);

    let daemon = Daemon::start(&cfg, SECRET);
    // Each policy made snapshots and retention deleted some.
    wait_for("deletes of both policies", MINUTE, || {
        let rows = wd.try_state()?.all_snapshots().ok()?;
        let deleted = |volume: &str| {
            rows.iter()
                .filter(|r| r.target == volume)
                .filter(|r| r.state == snapwarden::state::LedgerState::Deleted)
                .count()
        };
        (deleted(DB_VOLUME) >= 1 && deleted(WEB_VOLUME) >= 1).then_some(())
    });
    daemon.stop();

    let all = history(&cfg, &[]);
    let of = |action: &str, policy: &str| -> Vec<Value> {
        all.iter()
            .filter(|e| text(e, "action") == action && text(e, "policy") == policy)
            .cloned()
            .collect()
    };
    for policy in ["db", "web"] {
        let creates = of("create", policy);
        let deletes = of("delete", policy);
        assert!(creates.len() >= 2, "{policy}: {all:#?}");
        assert!(!deletes.is_empty(), "{policy}: {all:#?}");
        for e in creates.iter().chain(&deletes) {
            assert!(text(e, "actor").starts_with("daemon (node "), "{e}");
            assert!(!text(e, "snapshot").is_empty(), "{e}");
            assert!(!text(e, "target").is_empty(), "{e}");
        }
        for e in &creates {
            assert!(
                text(e, "detail").contains(&format!("of policy {policy}")),
                "{e}"
            );
        }
        // A delete says why: retention's reason.
        for e in &deletes {
            let why = text(e, "detail");
            assert!(
                why.contains("retention") && why.contains("kept by no rule"),
                "{e}"
            );
        }
        // Every deleted snapshot of the ledger has its delete entry.
        let deleted: Vec<String> = wd
            .state()
            .all_snapshots()
            .expect("ledger")
            .into_iter()
            .filter(|r| r.policy == policy && r.state == snapwarden::state::LedgerState::Deleted)
            .map(|r| r.snapshot_id)
            .collect();
        for id in &deleted {
            assert!(
                deletes.iter().any(|e| text(e, "snapshot") == *id),
                "no delete entry for {id}: {all:#?}"
            );
        }
    }
    // Oldest first, with every key.
    let times: Vec<String> = all.iter().map(|e| text(e, "at")).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    for e in &all {
        let mut keys: Vec<&str> = e
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["action", "actor", "at", "detail", "policy", "snapshot", "target"]
        );
    }

    // The operator's pause and resume, with who and why.
    for args in [
        &["pause", "--policy", "db", "--reason", "db migration"][..],
        &["resume", "--policy", "db"],
        &["pause", "--reason", "change freeze"],
        &["resume"],
    ] {
        let out = as_ann(&cfg, args);
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
    }
    let all = history(&cfg, &[]);
    let controls: Vec<(String, String, Value)> = all
        .iter()
        .filter(|e| ["pause", "resume"].contains(&text(e, "action").as_str()))
        .map(|e| (text(e, "action"), text(e, "actor"), e["policy"].clone()))
        .collect();
    assert_eq!(
        controls,
        vec![
            ("pause".to_string(), "ann".to_string(), Value::from("db")),
            ("resume".into(), "ann".into(), Value::from("db")),
            ("pause".into(), "ann".into(), Value::Null),
            ("resume".into(), "ann".into(), Value::Null),
        ]
    );
    let pause = all
        .iter()
        .find(|e| text(e, "action") == "pause")
        .expect("pause");
    assert!(text(pause, "detail").contains("db migration"), "{pause}");
    let resume = all
        .iter()
        .find(|e| text(e, "action") == "resume")
        .expect("resume");
    assert!(
        text(resume, "detail").starts_with("resumed (was:"),
        "{resume}"
    );
    assert!(text(resume, "detail").contains("db migration"), "{resume}");

    // --policy: that policy's entries and those of every policy.
    let web = history(&cfg, &["--policy", "web"]);
    assert!(
        web.iter().any(|e| text(e, "action") == "delete"),
        "{web:#?}"
    );
    for e in &web {
        assert!(e["policy"] == "web" || e["policy"].is_null(), "{e}");
    }
    assert_eq!(
        web.iter().filter(|e| e["policy"].is_null()).count(),
        2,
        "the every-policy pause and resume: {web:#?}"
    );

    // The text form: one line per entry.
    let out = as_ann(&cfg, &["history", "--policy", "db"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        lines.lines().count(),
        history(&cfg, &["--policy", "db"]).len(),
        "{lines}"
    );
    assert!(
        lines.contains(" pause    db ") && lines.contains(" ann: until resumed: db migration"),
        "{lines}"
    );

    // --since: entries older than it are left out.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(history(&cfg, &["--since", "1s"]).is_empty());
    let out = as_ann(&cfg, &["history", "--since", "1s"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("no entries since "),
        "{}",
        output_text(&out)
    );
    assert_eq!(history(&cfg, &["--since", "1h"]).len(), all.len());

    // An unknown policy is refused, naming it.
    let out = as_ann(&cfg, &["history", "--policy", "nope"]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("no policy named \"nope\""),
        "{}",
        output_text(&out)
    );
}
