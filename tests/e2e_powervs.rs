//! End to end on PowerVS / IP4G: the real binary against the built-in
//! simulator's `powervs` dialect, with each of the three auth modes and the
//! `login` device flow, asserting on what the simulator saw and on the
//! ledger.
//! The scenarios every cloud shares (auth, throttling, failed snapshots,
//! lost answers, restore) are in `e2e_clouds.rs`.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use util::*;

const CID: &str = "ws-e2e-0001";
const PVM: &str = "pvm-e2e-0001";

fn crn() -> String {
    format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{CID}::")
}

/// A workspace with one instance (a data and a boot volume).
/// A simulator whose jobs take `job_duration`, holding the workspace and
/// the instance with its two volumes.
fn seeded_sim(job_duration: &str) -> Sim {
    let sim = Sim::start(job_duration);
    sim.post(
        "/_sim/powervs/workspaces",
        json!({"cloud_instance_id": CID, "crn": crn()}),
    );
    sim.post(
        "/_sim/powervs/instances",
        json!({"cloud_instance_id": CID, "pvm_instance_id": PVM,
               "volume_ids": ["vol-data", "vol-boot"]}),
    );
    sim
}

fn settings(sim: &Sim, body: Value) {
    sim.post("/_sim/powervs/settings", body);
}

fn manual_snapshot(sim: &Sim, name: &str) -> String {
    let v = sim.post(
        "/_sim/powervs/snapshots",
        json!({"cloud_instance_id": CID, "pvm_instance_id": PVM, "name": name,
               "description": "taken by hand"}),
    );
    v["snapshot_id"].as_str().expect("snapshot_id").to_string()
}

fn requests(sim: &Sim, action: &str) -> Vec<Value> {
    sim.journal("powervs", Some(action))
}

fn all_requests(sim: &Sim) -> Vec<Value> {
    sim.journal("powervs", None)
}

fn live_snapshots(sim: &Sim) -> Vec<Value> {
    sim.get("/_sim/powervs/snapshots")["snapshots"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["gone"] == false)
        .collect()
}

fn status(r: &Value) -> u64 {
    r["http_status"].as_u64().unwrap_or(0)
}

/// The policy file: `auth` holds the auth lines of the provider section.
fn config(wd: &Workdir, sim: &Sim, auth: &str, retain: u32) -> std::path::PathBuf {
    wd.write_config(&format!(
        r#"[daemon]
state_path = "{state}"

[providers.pvs]
kind = "powervs"
endpoint = "{url}/powervs"
cloud_instance_id = "{CID}"
crn = "{crn}"
requests_per_second = 100
{auth}

[[policy]]
name = "lpar"
provider = "pvs"
resource = "instance"
targets = ["{PVM}"]
volume_ids = ["vol-data"]
schedule = "0 30 2 * * *"
retain = {retain}
poll_interval = "100ms"
poll_max_interval = "300ms"
timeout = "30s"
"#,
        state = wd.state_path().display(),
        url = sim.url,
        crn = crn(),
    ))
}

fn api_key_auth(sim: &Sim, key: &str) -> String {
    format!(
        "api_key_env = \"{}\"\niam_endpoint = \"{}/powervs/identity/token\"",
        secret_env_name(key),
        sim.url
    )
}

/// An access token from the simulator's IAM for the right API key.
fn iam_token(sim: &Sim, http: &reqwest::blocking::Client) -> String {
    let v: Value = http
        .post(format!("{}/powervs/identity/token", sim.url))
        .form(&[
            ("grant_type", "urn:ibm:params:oauth:grant-type:apikey"),
            ("apikey", PVS_API_KEY),
        ])
        .send()
        .and_then(|r| r.json())
        .expect("IAM token");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// `snapwarden snapshot` once, with `secret` in its variable.
fn snapshot(wd: &Workdir, secret: &str) -> Output {
    let cfg = wd.config_path();
    wd.cmd(
        &[
            "snapshot",
            "-c",
            cfg.to_str().expect("utf-8"),
            "--policy",
            "lpar",
        ],
        secret,
    )
}

/// Nothing the engine saw failed: no retry, no failed poll.
fn assert_no_failed_call_reached_the_engine(out: &Output) {
    let t = output_text(out);
    for needle in ["retrying", "poll failed", "operation failed", "WARN"] {
        assert!(!t.contains(needle), "{needle:?} in the output:\n{t}");
    }
}

/// IBM Cloud API key: three runs, each followed to `available` while the
/// short-lived tokens are renewed mid-run, pruned to retain = 2; the
/// manual snapshot (whose name looks like ours) is untouched; snapshots
/// carry our description and only the policy's volume.
#[test]
fn api_key_runs_follow_to_available_refresh_tokens_and_prune() {
    let sim = seeded_sim("2500ms");
    settings(&sim, json!({"token_lifetime_s": 2}));
    let manual = manual_snapshot(&sim, &format!("lpar-{PVM}-19990101T000000Z"));
    let wd = Workdir::new();
    config(&wd, &sim, &api_key_auth(&sim, PVS_API_KEY), 2);

    for _ in 0..3 {
        let out = snapshot(&wd, PVS_API_KEY);
        assert!(out.status.success(), "{}", output_text(&out));
        assert!(
            output_text(&out).contains("ok, 1 created"),
            "{}",
            output_text(&out)
        );
        assert_no_failed_call_reached_the_engine(&out);
        assert!(
            !output_text(&out).contains(PVS_API_KEY),
            "the key must not be logged"
        );
    }

    // Tokens were renewed within runs: more exchanges than processes, and
    // no pcloud call was ever refused.
    let iam = requests(&sim, "iam.token");
    assert!(iam.len() > 3, "only {} token exchanges", iam.len());
    assert!(iam.iter().all(|r| status(r) == 200));
    assert!(iam.iter().all(|r| r["params"].get("apikey").is_none()));
    let pcloud: Vec<Value> = all_requests(&sim)
        .into_iter()
        .filter(|r| r["action"].as_str().unwrap_or("").starts_with("pcloud."))
        .collect();
    let deleted: Vec<Value> = requests(&sim, "pcloud.cloudinstances.snapshots.delete");
    let refused: Vec<&Value> = pcloud
        .iter()
        .filter(|r| status(r) >= 400)
        // The 404 that confirms a delete is the expected answer.
        .filter(|r| {
            !(status(r) == 404
                && r["action"] == "pcloud.cloudinstances.snapshots.get"
                && deleted
                    .iter()
                    .any(|d| d["params"]["snapshot_id"] == r["params"]["snapshot_id"]))
        })
        .collect();
    assert!(refused.is_empty(), "pcloud calls refused: {refused:?}");
    assert!(pcloud.iter().all(|r| r["params"]["crn"] == crn().as_str()));

    let creates = requests(&sim, "pcloud.pvminstances.snapshots.post");
    assert_eq!(creates.len(), 3);
    for c in &creates {
        assert_eq!(status(c), 202);
        assert_eq!(c["params"]["volumeIDs"], "vol-data");
        let d = c["params"]["description"].as_str().unwrap_or("");
        assert!(
            d.starts_with(&format!("snapwarden policy=lpar target={PVM} slot=")),
            "{d}"
        );
    }
    let gets = requests(&sim, "pcloud.cloudinstances.snapshots.get");
    assert!(!gets.is_empty(), "completion was read with GET");

    let live = live_snapshots(&sim);
    let own = assert_two_kept_beside_manual(&live, "snapshot_id", &manual, PVM);
    assert!(own.iter().all(|s| s["volume_ids"] == json!(["vol-data"])));
    let deletes = requests(&sim, "pcloud.cloudinstances.snapshots.delete");
    assert_eq!(deletes.len(), 1);
    assert_eq!(status(&deletes[0]), 202);

    assert_eq!(wd.available_and_deleted(None), (2, 1));
}

/// A token revoked mid-run: pcloud answers 401, the client re-issues once
/// and repeats the call; the run succeeds without the engine seeing it.
#[test]
fn a_revoked_token_is_reissued_once_without_failing_the_run() {
    let sim = seeded_sim("1500ms");
    let wd = Workdir::new();
    let cfg = config(&wd, &sim, &api_key_auth(&sim, PVS_API_KEY), 2);
    let child = wd.spawn_as(&cfg, &["snapshot", "--policy", "lpar"], PVS_API_KEY);
    wait_for("the create call", MINUTE, || {
        (!requests(&sim, "pcloud.pvminstances.snapshots.post").is_empty()).then_some(())
    });
    sim.post("/_sim/powervs/revoke_access_tokens", json!({}));
    let out = child.wait_with_output().expect("snapshot exits");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_no_failed_call_reached_the_engine(&out);
    let rejected: Vec<Value> = all_requests(&sim)
        .into_iter()
        .filter(|r| status(r) == 401)
        .collect();
    assert_eq!(rejected.len(), 1, "exactly one 401, then a fresh token");
    assert_eq!(requests(&sim, "iam.token").len(), 2);
}

/// IP4G refresh tokens rotate on every use; the newest is kept in the
/// state database, so a second process (a restart) uses it, although the
/// configured one was retired by the first exchange.
#[test]
fn ip4g_refresh_tokens_rotate_and_the_newest_survives_a_restart() {
    let sim = seeded_sim("2500ms");
    settings(&sim, json!({"token_lifetime_s": 2}));
    let first = "ip4g-first-refresh-token-e2e";
    sim.post(
        "/_sim/powervs/refresh_tokens",
        json!({"refresh_token": first}),
    );
    let wd = Workdir::new();
    config(
        &wd,
        &sim,
        &format!("refresh_token_env = \"{}\"", secret_env_name(first)),
        2,
    );
    for _ in 0..2 {
        let out = snapshot(&wd, first);
        assert!(out.status.success(), "{}", output_text(&out));
        assert_no_failed_call_reached_the_engine(&out);
        assert!(!output_text(&out).contains(first));
    }
    let exchanges = requests(&sim, "ip4g.token");
    assert!(exchanges.len() >= 3, "renewed mid-run: {exchanges:?}");
    assert!(exchanges.iter().all(|r| status(r) == 200), "{exchanges:?}");
    let tokens = sim.get("/_sim/powervs/tokens");
    assert_eq!(
        tokens["refresh_tokens_retired"].as_u64(),
        Some(exchanges.len() as u64),
        "every exchange retired the previous refresh token: {tokens}"
    );
    assert_eq!(
        live_snapshots(&sim)
            .iter()
            .filter(|s| s["status"] == "available")
            .count(),
        2
    );
}

/// `login` runs the device flow against the simulator and stores the
/// first refresh token; a section with only `auth = "refresh_token"` then
/// works. Before the login, the run says what to do.
#[test]
fn login_device_flow_then_refresh_token_auth() {
    let sim = seeded_sim("300ms");
    let wd = Workdir::new();
    let cfg = config(&wd, &sim, "auth = \"refresh_token\"", 2);

    let out = snapshot(&wd, "unused");
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("snapwarden login -c FILE --provider pvs"),
        "{}",
        output_text(&out)
    );

    let mut child = Command::new(BIN)
        .args([
            "login",
            "-c",
            cfg.to_str().expect("utf-8"),
            "--provider",
            "pvs",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start login");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let code = loop {
        let line = lines
            .next()
            .expect("login prints the code")
            .expect("readable line");
        if let Some(rest) = line.split("enter the code ").nth(1) {
            assert!(line.contains("/powervs/device"), "{line}");
            break rest.trim().to_string();
        }
    };
    // Not approved yet: the login keeps polling.
    wait_for("a pending device poll", MINUTE, || {
        requests(&sim, "ip4g.device.token")
            .iter()
            .any(|r| status(r) == 400)
            .then_some(())
    });
    sim.post("/_sim/powervs/device/approve", json!({"user_code": code}));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().expect("login exits");
    assert!(exit.success(), "login failed: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("Signed in")), "{rest:?}");

    let out = snapshot(&wd, "unused");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_no_failed_call_reached_the_engine(&out);
}

/// A static bearer token works until it expires; then the error says so.
#[test]
fn bearer_token_works_and_an_expired_one_is_named_plainly() {
    let sim = seeded_sim("300ms");
    let http = reqwest::blocking::Client::new();
    let good = iam_token(&sim, &http);
    let wd = Workdir::new();
    config(
        &wd,
        &sim,
        &format!("bearer_token_env = \"{}\"", secret_env_name(&good)),
        2,
    );
    let out = snapshot(&wd, &good);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!output_text(&out).contains(&good));

    settings(&sim, json!({"token_lifetime_s": 1}));
    let short = iam_token(&sim, &http);
    std::thread::sleep(Duration::from_millis(2100));
    config(
        &wd,
        &sim,
        &format!("bearer_token_env = \"{}\"", secret_env_name(&short)),
        2,
    );
    let creates_before = requests(&sim, "pcloud.pvminstances.snapshots.post").len();
    let out = snapshot(&wd, &short);
    assert!(!out.status.success());
    let t = output_text(&out);
    assert!(t.contains("static bearer_token expired at"), "{t}");
    assert!(!t.contains(&short));
    assert_eq!(
        requests(&sim, "pcloud.pvminstances.snapshots.post").len(),
        creates_before,
        "nothing is sent with an expired token"
    );
}

/// Another snapshot in progress on the instance: the create answers 409,
/// which is retried until the other one is done.
#[test]
fn a_409_for_a_snapshot_in_progress_is_retried() {
    let sim = seeded_sim("800ms");
    // Someone else starts a snapshot of the instance through the API.
    let http = reqwest::blocking::Client::new();
    let token = iam_token(&sim, &http);
    let r = http
        .post(format!(
            "{}/powervs/pcloud/v1/cloud-instances/{CID}/pvm-instances/{PVM}/snapshots",
            sim.url
        ))
        .bearer_auth(&token)
        .header("CRN", crn())
        .json(&json!({"name": "by-hand-in-progress"}))
        .send()
        .expect("manual create");
    assert_eq!(r.status().as_u16(), 202);

    let wd = Workdir::new();
    config(&wd, &sim, &api_key_auth(&sim, PVS_API_KEY), 2);
    let out = snapshot(&wd, PVS_API_KEY);
    assert!(out.status.success(), "{}", output_text(&out));
    let ours: Vec<Value> = requests(&sim, "pcloud.pvminstances.snapshots.post")
        .into_iter()
        .filter(|r| r["params"]["name"] != "by-hand-in-progress")
        .collect();
    assert!(
        ours.len() >= 2 && status(&ours[0]) == 409,
        "first a 409, then more attempts: {ours:?}"
    );
    assert_eq!(status(ours.last().expect("one")), 202);
    assert!(
        output_text(&out).contains("retrying"),
        "{}",
        output_text(&out)
    );
    assert_eq!(live_snapshots(&sim).len(), 2, "ours and the other one");
}
