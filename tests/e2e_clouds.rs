//! The scenarios every cloud must pass, end to end: the real binary against
//! the built-in simulator, one test per scenario, run for each cloud of a
//! `clouds::Kind` table. A cloud's own facts (its error codes, its retry
//! signals, how it restores) are extra checks of that cloud inside the
//! same scenario; what only one dialect has stays in its own file
//! (`e2e_qingcloud.rs`, `e2e_kakaocloud.rs`, ...).
//!
//! The clouds of one test run in parallel threads, each with its own
//! simulator and ledger; a failure names the cloud (the thread's name).

mod clouds;
mod util;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};
use snapwarden::state::{LedgerState, RunState};

use clouds::{Kind, Snap, ALL};
use util::*;

/// Runs `scenario` for each of `kinds` at once, and fails naming every
/// cloud whose run panicked (its panic is printed under its name).
fn each_cloud(kinds: &[Kind], scenario: impl Fn(Kind) + Sync) {
    let scenario = &scenario;
    let failed: Vec<Kind> = std::thread::scope(|s| {
        let runs: Vec<_> = kinds
            .iter()
            .map(|&kind| {
                let run = std::thread::Builder::new()
                    .name(format!("{kind:?}"))
                    .spawn_scoped(s, move || scenario(kind))
                    .expect("spawn a thread");
                (kind, run)
            })
            .collect();
        runs.into_iter()
            .filter_map(|(kind, run)| run.join().is_err().then_some(kind))
            .collect()
    });
    assert!(failed.is_empty(), "failed on {failed:?}");
}

/// Slot names have whole seconds: the next run of `snapshot` is a new slot
/// after this.
fn next_slot() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// Where a cloud's error is looked for: UCloudStack's on stderr (the log),
/// the others' in all the command printed.
fn said_by(kind: Kind, out: &Output) -> String {
    match kind {
        Kind::UCloudStack => String::from_utf8_lossy(&out.stderr).into_owned(),
        _ => output_text(out),
    }
}

/// One cloud of its own simulator, with one target of policy `db`.
struct Cloud {
    kind: Kind,
    /// The policy's resource (Lightsail: "instance" or "disk").
    resource: &'static str,
    sim: Sim,
    wd: Workdir,
    target: String,
}

impl Cloud {
    /// The cloud's usual resource, jobs of 200 ms.
    fn on(kind: Kind) -> Cloud {
        Cloud::start(kind, kind.resource(), "200ms")
    }

    fn start(kind: Kind, resource: &'static str, job_duration: &str) -> Cloud {
        let sim = Sim::start(job_duration);
        kind.prepare(&sim);
        let target = kind.target_id("e", 1);
        if kind == Kind::Lightsail && resource == "instance" {
            sim.post("/_sim/lightsail/instances", json!({"name": target}));
        } else {
            kind.seed_target(&sim, &target);
        }
        Cloud {
            kind,
            resource,
            sim,
            wd: Workdir::new(),
            target,
        }
    }

    fn lightsail_instance(&self) -> bool {
        self.kind == Kind::Lightsail && self.resource == "instance"
    }

    /// Writes the policy file: `db` on the target on `schedule`, keeping
    /// `retain`, its provider reading its credential from the variable
    /// named after `secret`.
    fn config_with(&self, secret: &str, schedule: &str, retain: u32) -> PathBuf {
        // PowerVS snapshots only the volumes a policy names.
        let extra = match self.kind {
            Kind::PowerVs => format!("volume_ids = [\"{}-data\"]", self.target),
            _ => String::new(),
        };
        let policy = clouds::policy_on(
            "db",
            self.kind,
            self.resource,
            std::slice::from_ref(&self.target),
            schedule,
            retain,
            &extra,
        );
        let text = clouds::config_text(
            &self.wd,
            &self.sim,
            &[self.kind],
            "requests_per_second = 50",
            &[policy],
        );
        self.wd.write_config(&text.replace(
            &secret_env_name(self.kind.secret()),
            &secret_env_name(secret),
        ))
    }

    /// [`Cloud::config_with`] the right credential, never scheduled.
    fn config(&self, retain: u32) -> PathBuf {
        self.config_with(self.kind.secret(), "0 0 3 * * *", retain)
    }

    fn path(&self) -> String {
        self.wd.config_path().display().to_string()
    }

    fn cmd(&self, args: &[&str]) -> Output {
        clouds::cmd(self.wd.dir.path(), args)
    }

    /// A command with `secret` in its variable too.
    fn cmd_as(&self, secret: &str, args: &[&str]) -> Output {
        let secret = (secret_env_name(secret), secret.to_string());
        clouds::cmd_with(self.wd.dir.path(), args, &[secret])
    }

    /// `snapshot --policy db`, with `secret` in its variable too.
    fn snapshot_as(&self, secret: &str) -> Output {
        let path = self.path();
        self.cmd_as(secret, &["snapshot", "-c", path.as_str(), "--policy", "db"])
    }

    fn snapshot(&self) -> Output {
        self.snapshot_as(self.kind.secret())
    }

    fn snapshot_ok(&self) -> Output {
        let out = self.snapshot();
        assert!(out.status.success(), "snapshot: {}", output_text(&out));
        out
    }

    fn restore(&self, extra: &[&str]) -> Output {
        let path = self.path();
        let mut args = vec![
            "restore",
            "-c",
            path.as_str(),
            "--policy",
            "db",
            "--target",
            self.target.as_str(),
        ];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    /// The target's entry in `status --json`.
    fn status(&self) -> Value {
        self.status_as(self.kind.secret())
    }

    fn status_as(&self, secret: &str) -> Value {
        let out = self.cmd_as(secret, &["status", "--json", "-c", &self.path()]);
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}\n{}", output_text(&out)));
        doc["targets"][0].clone()
    }

    fn fault(&self, action: &str, fault: &str, count: u32) {
        self.sim
            .fault(json!({"dialect": self.kind.dialect(), "action": action,
                              "fault": fault, "count": count}));
    }

    fn requests(&self, action: &str) -> Vec<Value> {
        self.kind.requests(&self.sim, action)
    }

    fn create_action(&self) -> &'static str {
        if self.lightsail_instance() {
            "CreateInstanceSnapshot"
        } else {
            self.kind.create_action()
        }
    }

    fn creates(&self) -> Vec<Value> {
        self.requests(self.create_action())
    }

    fn deletes(&self) -> Vec<Value> {
        if self.lightsail_instance() {
            self.requests("DeleteInstanceSnapshot")
        } else {
            self.requests(self.kind.delete_action())
        }
    }

    /// The cloud took the request (a retry signal or an error is not).
    fn accepted(&self, r: &Value) -> bool {
        match self.kind {
            Kind::QingCloud | Kind::UCloudStack => r["ret_code"] == 0,
            _ => r["http_status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s)),
        }
    }

    /// Every snapshot of the target, deleted ones included.
    fn snaps(&self) -> Vec<Snap> {
        self.kind
            .snapshots(&self.sim, &["db"])
            .into_iter()
            .filter(|s| s.source == self.target)
            .collect()
    }

    /// Our snapshots of the target that are not deleted.
    fn own_live(&self) -> Vec<Snap> {
        self.snaps()
            .into_iter()
            .filter(|s| s.live && s.marker.is_some())
            .collect()
    }

    /// Our snapshots of the target that are done and good.
    fn own_good(&self) -> Vec<Snap> {
        let good = match self.kind {
            Kind::UCloudStack => "Normal",
            Kind::Lightsail => "completed",
            _ => "available",
        };
        self.own_live()
            .into_iter()
            .filter(|s| s.status == good)
            .collect()
    }

    /// The id of our newest live snapshot (slots are a second apart).
    fn newest(&self) -> String {
        self.own_live()
            .into_iter()
            .max_by_key(|s| s.marker.clone().map(|m| m.2))
            .map(|s| s.id)
            .expect("a snapshot")
    }
}

/// `kind`'s own resource, but instances on Lightsail (whose own is disks),
/// so the Lightsail checks are on the instance calls.
fn instance_or_own(kind: Kind) -> &'static str {
    match kind {
        Kind::Lightsail => "instance",
        _ => kind.resource(),
    }
}

/// Two good runs, then `retain` 1 (the next good run would delete one) and
/// a snapshot that ends failed: the run fails (exit 1, `status`), nothing
/// is pruned, both good snapshots stay.
#[test]
fn a_failed_snapshot_fails_the_run_and_prunes_nothing() {
    each_cloud(&ALL, |kind| {
        let c = Cloud::on(kind);
        c.config(2);
        for _ in 0..2 {
            c.snapshot_ok();
            next_slot();
        }
        assert_eq!(c.own_good().len(), 2);

        c.config(1);
        c.fault(c.create_action(), "fail_job", 1);
        let out = c.snapshot();
        let text = said_by(kind, &out);
        assert_eq!(out.status.code(), Some(1), "a failed run exits 1: {text}");
        assert!(c.deletes().is_empty(), "no pruning after a failed run");
        assert_eq!(c.own_good().len(), 2, "retain 1 is not applied");
        // The cloud's own words for the failure.
        let said: &[&str] = match kind {
            Kind::UCloudStack => &["Failure"],
            Kind::Lightsail => &["errorCode InternalError"],
            Kind::PowerVs => &["\"error\"", "storage backend reported an error"],
            _ => &[],
        };
        for needle in said {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }

        let t = c.status();
        assert_eq!(t["consecutive_failures"], 1, "{t}");
        assert_eq!(t["last_run"]["state"], "failed", "{t}");
        let error = t["last_error"].as_str().unwrap_or("");
        let named = match kind {
            Kind::QingCloud => "failed",
            Kind::UCloudStack => "Failure",
            Kind::Lightsail => "InternalError",
            Kind::PowerVs | Kind::KakaoCloud => "error",
        };
        assert!(error.contains(named), "{t}");
    });
}

/// A wrong credential: `snapshot` exits 1 with a clear authentication
/// error in the cloud's words, the credential is never printed, nothing is
/// created; the right credential then works. On QingCloud the daemon also
/// keeps running through the failures and `status` shows them.
#[test]
fn a_wrong_credential_is_a_clear_auth_error_and_nothing_is_created() {
    each_cloud(&ALL, |kind| {
        // Lightsail: an instance policy, so the SigV4 check is on the
        // instance calls.
        let c = Cloud::start(kind, instance_or_own(kind), "200ms");
        let wrong = format!("not-the-{}-credential", kind.dialect());
        if kind == Kind::QingCloud {
            qingcloud_daemon_keeps_running_through_auth_failures(&c, &wrong);
            next_slot(); // the daemon's last slot is not run again
        }
        c.config_with(&wrong, "0 0 3 * * *", 2);
        let out = c.snapshot_as(&wrong);
        let text = said_by(kind, &out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let said: &[&str] = match kind {
            Kind::QingCloud => &["auth error", "1200"],
            // RetCode 171, naming the key to check.
            Kind::UCloudStack => &["auth error", "171", "private_key"],
            // The simulator recomputed the SigV4 signature; it did not match.
            Kind::Lightsail => &["auth error", "InvalidSignatureException"],
            Kind::PowerVs => &[
                "IBM Cloud IAM rejected the api_key",
                "Provided API key could not be found",
            ],
            Kind::KakaoCloud => &["auth error"],
        };
        for needle in said {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        assert!(!text.contains(&wrong), "the credential is printed: {text}");
        let creates = c.creates();
        assert!(creates.iter().all(|r| !c.accepted(r)), "{creates:?}");
        assert!(c.snaps().is_empty());
        // An auth error is not retried.
        match kind {
            Kind::UCloudStack => assert_eq!(creates.len(), 1, "{creates:?}"),
            Kind::PowerVs => {
                assert_eq!(c.requests("iam.token").len(), 1);
                assert!(creates.is_empty());
            }
            _ => {}
        }

        // The right credential through the same endpoint works (Lightsail:
        // the path `/lightsail` is signed by the SDK and recomputed by the
        // simulator).
        next_slot(); // the failed slot is not run again
        c.config(2);
        c.snapshot_ok();
    });
}

/// QingCloud: the daemon with a wrong secret logs each failed run with a
/// clear authentication error (ret_code 1200), never the secret; `status`
/// shows the failures; nothing is created; the daemon keeps running.
fn qingcloud_daemon_keeps_running_through_auth_failures(c: &Cloud, wrong: &str) {
    let cfg = c.config_with(wrong, "* * * * * *", 2);
    let envs = clouds::envs(c.wd.dir.path());
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut daemon = Daemon::start_with_env(&cfg, wrong, &envs);
    daemon.wait_log("run failed", MINUTE);
    let line = daemon
        .log
        .all()
        .into_iter()
        .find(|l| l.contains("run failed"))
        .expect("failure line");
    assert!(
        line.contains("auth error") && line.contains("1200"),
        "{line}"
    );
    assert!(
        !line.contains(wrong),
        "the secret must not be logged: {line}"
    );

    let t = c.status_as(wrong);
    assert!(t["consecutive_failures"].as_u64().unwrap_or(0) >= 1, "{t}");
    assert!(
        t["last_error"].as_str().unwrap_or("").contains("auth"),
        "{t}"
    );
    assert!(
        daemon.is_running(),
        "the daemon keeps running after auth failures"
    );
    assert!(c.creates().iter().all(|r| !c.accepted(r)));
    assert!(c.snaps().is_empty());
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}

/// The answer to a create is lost (the connection drops after the cloud
/// made the snapshot): the engine looks the slot up by our marker before
/// creating again and adopts it, so there is exactly one snapshot, in the
/// ledger too. On QingCloud also: killed (-9) while the answer is held
/// back, the restarted daemon reconciles by name.
#[test]
fn a_lost_create_answer_is_reconciled_without_a_duplicate() {
    each_cloud(&ALL, |kind| {
        let c = Cloud::start(kind, instance_or_own(kind), "300ms");
        c.config(2);
        c.fault(c.create_action(), "drop_connection", 1);
        if kind == Kind::PowerVs {
            // Throttled listings on the way are retried.
            c.fault("pcloud.cloudinstances.snapshots.getall", "throttle", 1);
        }
        let out = c.snapshot_ok();
        if kind == Kind::PowerVs {
            assert!(
                output_text(&out).contains("adopting"),
                "{}",
                output_text(&out)
            );
        }
        assert_eq!(c.creates().len(), 1, "no second create");
        let live = c.own_live();
        assert_eq!(live.len(), 1, "{live:?}");
        let rows = c.wd.state().all_snapshots().expect("ledger");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].state, LedgerState::Available);
        // Lightsail's ledger ids carry the family: `InstanceSnapshot/NAME`.
        let id = match kind {
            Kind::Lightsail => format!("InstanceSnapshot/{}", live[0].id),
            _ => live[0].id.clone(),
        };
        assert_eq!(rows[0].snapshot_id, id);

        if kind == Kind::QingCloud {
            qingcloud_kill_nine_before_the_answer_reconciles_by_name();
        }
    });
}

/// kill -9 after the create request reached the cloud but before its answer
/// was recorded: on restart the intent is reconciled by name and adopted.
fn qingcloud_kill_nine_before_the_answer_reconciles_by_name() {
    let c = Cloud::start(Kind::QingCloud, "volume", "300ms");
    // The simulator makes the snapshot, then holds the answer back.
    c.sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "latency", "latency_ms": 20000, "count": 1}));
    let cfg = c.config_with(SECRET, &seconds_from_now(&[2]), 2);
    let daemon = clouds::daemon(c.wd.dir.path(), &cfg);
    wait_for("the create request to reach the simulator", MINUTE, || {
        (!c.snaps().is_empty()).then_some(())
    });
    daemon.kill9();
    let runs = c.wd.state().runs_for("db", &c.target, 10).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].state,
        RunState::Intent,
        "only the intent was recorded"
    );

    let daemon = clouds::daemon(c.wd.dir.path(), &cfg);
    wait_for("the reconciled run to succeed", MINUTE, || {
        let runs = c.wd.try_state()?.runs_for("db", &c.target, 10).ok()?;
        (runs.len() == 1 && runs[0].state == RunState::Succeeded).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    let rows = c.wd.state().all_snapshots().expect("ledger");
    assert!(rows.len() == 1 && rows[0].state == LedgerState::Available);
    assert_eq!(c.own_live().len(), 1, "exactly one snapshot for the slot");
    assert_eq!(c.creates().len(), 1, "no create after the restart");
}

/// Throttling on create (twice) is retried and the run ends with one
/// snapshot. Each cloud says "throttled" its own way; Lightsail's status
/// lookups and listings are throttled too, and QingCloud's quota error is
/// not retried.
#[test]
fn throttling_is_retried_to_one_snapshot() {
    each_cloud(&ALL, |kind| {
        let c = Cloud::start(kind, instance_or_own(kind), "100ms");
        if kind == Kind::QingCloud {
            // `job_id` given as an array is understood.
            c.sim
                .post("/_sim/settings", json!({"job_id_as_array": true}));
        }
        c.config(2);
        c.fault(c.create_action(), "throttle", 2);
        if kind == Kind::Lightsail {
            for action in ["GetInstanceSnapshot", "GetInstanceSnapshots"] {
                c.fault(action, "throttle", 2);
            }
        }
        c.snapshot_ok();
        let creates = c.creates();
        assert_eq!(creates.len(), 3, "two throttled, then success: {creates:?}");
        assert_eq!(
            creates.iter().filter(|r| r["fault"] == "throttle").count(),
            2
        );
        assert_eq!(creates.iter().filter(|r| c.accepted(r)).count(), 1);
        assert_eq!(c.own_live().len(), 1);
        let runs = c.wd.state().runs_for("db", &c.target, 10).expect("runs");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].state, RunState::Succeeded);
        match kind {
            Kind::QingCloud => {
                assert_eq!(creates.iter().filter(|r| r["ret_code"] == 5100).count(), 2);
                qingcloud_quota_error_is_not_retried(&c);
            }
            Kind::UCloudStack => {
                assert_eq!(creates.iter().filter(|r| r["ret_code"] == 165).count(), 2);
            }
            Kind::Lightsail => {
                assert!(creates
                    .iter()
                    .take(2)
                    .all(|r| r["params"]["__error"] == "ThrottlingException"));
                let lookups = c.requests("GetInstanceSnapshot");
                assert_eq!(
                    lookups.iter().filter(|r| r["fault"] == "throttle").count(),
                    2
                );
            }
            _ => {}
        }
    });
}

/// QingCloud: a quota error (2500) is not retried and fails the run.
fn qingcloud_quota_error_is_not_retried(c: &Cloud) {
    std::thread::sleep(Duration::from_millis(1050));
    c.fault("CreateSnapshots", "quota", 1);
    let out = c.snapshot();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(c.creates().len(), 4, "a quota error is not retried");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("quota error") && stderr.contains("2500"),
        "{stderr}"
    );
    assert!(c.deletes().is_empty());
}

/// `restore` after two runs. Where the cloud makes a new resource from a
/// snapshot (QingCloud, KakaoCloud), it is made from the newest own one
/// and followed to the end, one call. Where it rolls back in place
/// (UCloudStack, PowerVS), without `--yes` it only says what it would do
/// (exit 1, no call), and with `--yes` it does it, one call. Lightsail's
/// restores are in `e2e_lightsail.rs`.
#[test]
fn restore_uses_the_newest_own_snapshot() {
    let kinds = [
        Kind::QingCloud,
        Kind::KakaoCloud,
        Kind::UCloudStack,
        Kind::PowerVs,
    ];
    each_cloud(&kinds, |kind| {
        let c = Cloud::on(kind);
        c.config(3);
        c.snapshot_ok();
        next_slot();
        c.snapshot_ok();
        let newest = c.newest();
        match kind {
            Kind::QingCloud | Kind::KakaoCloud => restore_into_new(&c, &newest),
            _ => restore_in_place(&c),
        }
    });
}

fn restore_into_new(c: &Cloud, newest: &str) {
    let out = c.restore(&["--new-name", "restored"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(stdout.contains("into new resource"), "{stdout}");
    // The audit trail says what was restored to what, by whom.
    let audit =
        c.wd.state()
            .audit_log(chrono::DateTime::<chrono::Utc>::MIN_UTC, None)
            .expect("audit trail");
    let restores: Vec<_> = audit
        .iter()
        .filter(|e| e.action == snapwarden::state::AuditAction::Restore)
        .collect();
    assert_eq!(restores.len(), 1, "{audit:#?}");
    assert_eq!(restores[0].snapshot.as_deref(), Some(newest));
    assert_eq!(restores[0].target.as_deref(), Some(c.target.as_str()));
    assert!(
        restores[0].detail.contains(newest) && restores[0].detail.contains("into new"),
        "{:?}",
        restores[0]
    );
    assert!(
        !restores[0].actor.starts_with("daemon"),
        "{:?}",
        restores[0]
    );
    match c.kind {
        Kind::QingCloud => {
            assert!(stdout.contains("into new resource vol-"), "{stdout}");
            let calls = c.requests("CreateVolumeFromSnapshot");
            assert_eq!(calls.len(), 1, "one restore call");
            assert_eq!(calls[0]["params"]["snapshot"], newest);
            assert_eq!(calls[0]["params"]["volume_name"], "restored");
        }
        _ => {
            let calls: Vec<Value> = c
                .requests("RestoreSnapshot")
                .into_iter()
                .filter(|r| c.accepted(r))
                .collect();
            assert_eq!(calls.len(), 1, "one restore call, never repeated");
            assert!(
                calls[0].to_string().contains(newest),
                "the newest snapshot was restored: {calls:?}"
            );
        }
    }
}

fn restore_in_place(c: &Cloud) {
    let (action, done) = match c.kind {
        Kind::UCloudStack => ("RollbackSnapshot", format!("rolled {} back", c.target)),
        _ => (
            "pcloud.pvminstances.snapshots.restore.post",
            "back to snapshot".to_string(),
        ),
    };
    let out = c.restore(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("in place"), "{stdout}");
    assert!(c.requests(action).is_empty(), "nothing without --yes");

    let out = c.restore(&["--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(stdout.contains(&done), "{stdout}");
    assert_eq!(c.requests(action).len(), 1);
    let audit =
        c.wd.state()
            .audit_log(chrono::DateTime::<chrono::Utc>::MIN_UTC, None)
            .expect("audit trail");
    let restores: Vec<_> = audit
        .iter()
        .filter(|e| e.action == snapwarden::state::AuditAction::Restore)
        .collect();
    assert_eq!(restores.len(), 1, "only the one done: {audit:#?}");
    assert!(restores[0].detail.contains("in place"), "{:?}", restores[0]);
}
