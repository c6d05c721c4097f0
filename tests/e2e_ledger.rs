//! The ledger end to end. One ledger, one writer: a second
//! daemon on the same ledger refuses to start and leaves the first alone;
//! one-shot commands that write refuse while the daemon runs and work once
//! it has stopped; commands that only read keep working next to it. And a
//! full disk under the ledger shows in `/healthz`.

mod util;

use std::process::Output;
use std::time::Duration;

use util::*;

const VOL: &str = "vol-aaaa0001";

fn policy(schedule: &str) -> String {
    let rest =
        "retain = 3\npoll_interval = \"100ms\"\npoll_max_interval = \"300ms\"\ntimeout = \"30s\"";
    qc_policy("db", &[VOL], schedule, rest)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every API request the simulator has seen, of any action.
fn all_requests(sim: &Sim) -> usize {
    sim.journal("qingcloud", None).len()
}

/// Daemon B on A's file exits 2 at once, naming the lock and A's pid; A
/// keeps taking its snapshots as if nothing happened.
#[test]
fn a_second_daemon_on_one_ledger_exits_2_and_the_first_keeps_creating() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    let cfg = wd.write_qc_config(&sim, &policy("*/2 * * * * *"));
    let mut a = Daemon::start(&cfg, SECRET);
    wait_for("A's first create", MINUTE, || {
        (sim.creates_for(VOL) >= 1).then_some(())
    });

    let b = Daemon::start(&cfg, SECRET);
    let b_log = b.log.clone();
    let (code, took) = b.stop_after_signal();
    let lock = format!("{}.lock", wd.state_path().display());
    let text = b_log.text();
    assert_eq!(code, Some(2), "B must refuse with exit 2: {text}");
    assert!(
        took < Duration::from_secs(10),
        "B refused at once: {took:?}"
    );
    assert!(text.contains(&lock), "B names the lock {lock}: {text}");
    assert!(
        text.contains(&format!("pid {}", a.pid())),
        "B names A's pid {}: {text}",
        a.pid()
    );
    assert!(
        !text.contains("policies scheduled"),
        "B never got as far as scheduling: {text}"
    );

    let before = sim.creates_for(VOL);
    wait_for("A to create twice more after B", MINUTE, || {
        (sim.creates_for(VOL) >= before + 2).then_some(())
    });
    assert!(a.is_running(), "A keeps running");
    let (code, _) = a.stop();
    assert_eq!(code, Some(0));
    // Every run of A was carried out once: no create failed or was doubled.
    assert!(sim
        .requests("CreateSnapshots")
        .iter()
        .all(|r| r["ret_code"] == 0));
}

/// While the daemon runs, `snapshot`, `prune`, `orphans --delete --yes` and
/// `restore` refuse with exit 2 and the daemon's pid, and send nothing to
/// the cloud; `status` and `plan` still work. After the daemon stops, the
/// writing commands work.
#[test]
fn writing_commands_refuse_while_the_daemon_runs_and_work_after_it_stops() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    // A schedule that does not fire during the test: every API request
    // after start-up would come from the one-shot commands.
    let cfg = wd.write_qc_config(&sim, &policy("0 0 3 * * *"));
    let path = cfg.to_str().expect("utf-8");
    let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], SECRET);
    assert!(out.status.success(), "{}", stderr(&out));

    let daemon = Daemon::start(&cfg, SECRET);
    daemon.wait_log("policies scheduled", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let requests = all_requests(&sim);
    let pid = format!("pid {}", daemon.pid());
    for args in [
        &["snapshot", "-c", path, "--policy", "db"][..],
        &["prune", "-c", path],
        &["prune", "-c", path, "--policy", "db", "--yes"],
        &["orphans", "-c", path, "--delete", "--yes"],
        &["restore", "-c", path, "--policy", "db", "--target", VOL],
    ] {
        let out = wd.cmd(args, SECRET);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} must refuse: {text}");
        assert!(
            text.contains(&pid),
            "{args:?} names the daemon's {pid}: {text}"
        );
        assert!(text.contains("snapwarden run"), "{args:?}: {text}");
    }
    assert_eq!(
        all_requests(&sim),
        requests,
        "a refused command sends nothing to the cloud"
    );
    // Reading commands are not held up by the lock.
    let out = wd.cmd(&["status", "-c", path], SECRET);
    assert!(out.status.success(), "status: {}", stderr(&out));
    let out = wd.cmd(&["plan", "-c", path], SECRET);
    assert!(out.status.success(), "plan: {}", stderr(&out));

    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    // A slot is a whole second: the first `snapshot` may have been less
    // than a second ago.
    std::thread::sleep(Duration::from_millis(1050));
    let creates = sim.creates_for(VOL);
    let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], SECRET);
    assert!(
        out.status.success(),
        "snapshot after stop: {}",
        stderr(&out)
    );
    assert_eq!(sim.creates_for(VOL), creates + 1);
    let out = wd.cmd(&["prune", "-c", path], SECRET);
    assert!(out.status.success(), "prune after stop: {}", stderr(&out));
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` at `dir`; `None` where mounting is not
    /// permitted (not root, no CAP_SYS_ADMIN, a container without mounts).
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "cannot mount a tmpfs here ({}): skipped",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The state directory on a small filesystem that fills up: `/healthz`
/// turns 503 with the cause while the disk is full (the health probe must
/// really write, not only take the write lock), and 200 again once there
/// is room. Needs permission to mount a tmpfs (root); skipped otherwise.
#[test]
fn a_full_disk_under_the_ledger_turns_healthz_503_until_there_is_room() {
    let wd = Workdir::new();
    let mnt = wd.dir.path().join("small");
    let Some(_tmpfs) = Tmpfs::mount(&mnt, "2m") else {
        eprintln!("SKIPPED a_full_disk_under_the_ledger_turns_healthz_503_until_there_is_room: no permission to mount a tmpfs (run as root to include it)");
        return;
    };
    let sim = Sim::start("100ms");
    sim.volume(VOL);
    let ledger = mnt.join("state.db");
    let text = wd
        .qingcloud_config(&sim, SECRET, &policy("0 0 3 * * *"))
        .replace(
            &format!("state_path = \"{}\"", wd.state_path().display()),
            &format!(
                "state_path = \"{}\"\nmetrics_listen = \"127.0.0.1:0\"",
                ledger.display()
            ),
        );
    let cfg = wd.write_config(&text);
    let daemon = Daemon::start(&cfg, SECRET);
    let log = daemon.log.clone();
    let addr = wait_for("the metrics address", Duration::from_secs(20), || {
        log.all().iter().find_map(|l| {
            l.split("metrics listening on ")
                .nth(1)
                .map(|a| a.split_whitespace().next().unwrap_or("").to_string())
        })
    });
    let healthz = format!("http://{addr}/healthz");
    wait_for("/healthz 200", Duration::from_secs(20), || {
        (http_get(&healthz).0 == 200).then_some(())
    });

    // Fill the filesystem to the last byte.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.write_all(&[0u8]);
        let _ = f.sync_all();
    }
    let body = wait_for("/healthz to turn 503", Duration::from_secs(20), || {
        let (code, body) = http_get(&healthz);
        (code == 503).then_some(body)
    });
    assert!(body.contains("full"), "{body}");

    std::fs::remove_file(&filler).expect("make room");
    wait_for("/healthz 200 again", Duration::from_secs(20), || {
        (http_get(&healthz).0 == 200).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}
