//! `snapwarden migrate-state` with the real binary: a daemon on SQLite is
//! stopped with creates in flight and deletions held by a reload; the
//! ledger is copied into PostgreSQL; a daemon on PostgreSQL finishes the
//! creates, keeps the hold and creates nothing twice; the old SQLite
//! ledger refuses to be used again, naming where its state went.

mod util;

#[path = "support/pg_cluster.rs"]
mod pg_cluster;

use std::path::PathBuf;

use util::*;

const VOL: &str = "vol-m";

/// The policy: one slot a minute (a few seconds from now), snapshots that
/// take 12 s (the simulator's jobs), `retain` kept, at most 5 deletes a run.
fn policy(schedule: &str, retain: u32) -> String {
    qc_policy(
        "db",
        &[VOL],
        schedule,
        &format!(
            "retain = {retain}\nmax_deletes_per_run = 5\npoll_interval = \"200ms\"\n\
             poll_max_interval = \"500ms\"\ntimeout = \"60s\""
        ),
    )
}

fn sqlite_config(wd: &Workdir, sim: &Sim, policy: &str) -> PathBuf {
    wd.write_qc_config(sim, policy)
}

/// The same policy on the PostgreSQL ledger `url`.
fn pg_config(wd: &Workdir, sim: &Sim, url: &str, policy: &str) -> PathBuf {
    let text = wd.qingcloud_config(sim, SECRET, policy).replace(
        &format!("state_path = \"{}\"", wd.state_path().display()),
        &format!(
            "state_url = \"{url}\"\nnode_name = \"pg-node\"\nlease_duration = \"3s\"\n\
             lease_renew_every = \"1s\""
        ),
    );
    let path = wd.dir.path().join("pg.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn a_ledger_moved_to_postgres_carries_on_where_sqlite_stopped() {
    let test = "a_ledger_moved_to_postgres_carries_on_where_sqlite_stopped";
    let Some(cluster) = pg_cluster::shared_or_skip(test) else {
        return;
    };
    let db = cluster.create_database().expect("a database");
    let url = format!("{}?sslmode=disable", cluster.url(&db));
    let (sim, wd) = sim_with_volumes("12s", &[VOL]);
    let seeded = seed_days(&sim, &wd, "db", VOL, 12);
    let schedule = seconds_from_now(&[2]);

    // On SQLite: the slot's create starts, then a reload to retain = 2
    // would delete 10 > 5 at once, so deletions are held.
    let cfg = sqlite_config(&wd, &sim, &policy(&schedule, 20));
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("the slot's create", MINUTE, || {
        (sim.creates_for(VOL) == 1).then_some(())
    });
    let cfg = sqlite_config(&wd, &sim, &policy(&schedule, 2));
    daemon.signal("HUP");
    daemon.wait_deletions_held(10, "12 seeded, retain 2");
    // While the daemon runs (it holds the ledger's lock), the copy is
    // refused.
    let out = wd.run(&cfg, &["migrate-state", "--to", &url]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("stop the daemon first"), "{text}");
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    let sqlite = wd.state();
    let in_flight = sqlite.ops_in_flight().expect("ops");
    assert_eq!(
        in_flight.len(),
        1,
        "the create is still running: {in_flight:?}"
    );
    assert_eq!(sqlite.delete_holds().expect("holds").len(), 1);
    let new_snapshot = in_flight[0].snapshot_id.clone();
    drop(sqlite);

    let started = std::time::Instant::now();
    let out = wd.run(&cfg, &["migrate-state", "--to", &url]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("runs")
            && text.contains("delete_holds")
            && text.contains("is marked as moved"),
        "{text}"
    );
    eprintln!("migrate-state took {:?}:\n{text}", started.elapsed());

    // The old ledger refuses, naming the new one; so does a second copy.
    let out = wd.run(&cfg, &["status"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("was moved to {url}")), "{text}");
    let out = wd.run(&cfg, &["migrate-state", "--to", &url]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("already moved"), "{text}");
    // Usage errors: no target, and a password on the command line.
    let out = wd.run(&cfg, &["migrate-state"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("no PostgreSQL ledger to copy into"), "{text}");
    let out = wd.run(
        &cfg,
        &["migrate-state", "--to", "postgres://sw:hunter2@127.0.0.1/x"],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("--password-env") && !text.contains("hunter2"),
        "{text}"
    );

    // On PostgreSQL: the create finishes, the hold stays, nothing is made
    // twice and nothing is deleted.
    let pg_cfg = pg_config(&wd, &sim, &url, &policy(&schedule, 2));
    let pg_daemon = Daemon::start(&pg_cfg, SECRET);
    let psql = |sql: &str| cluster.psql(&db, sql).expect("psql");
    wait_for("the create to finish on PostgreSQL", MINUTE, || {
        (psql(&format!(
            "SELECT state FROM snapshots WHERE snapshot_id = '{new_snapshot}'"
        )) == "available")
            .then_some(())
    });
    assert_eq!(
        psql("SELECT count(*) FROM operations WHERE finished_at IS NULL"),
        "0"
    );
    assert_eq!(
        psql("SELECT policy || '/' || target FROM delete_holds"),
        format!("db/{VOL}")
    );
    assert!(sim
        .live_snapshots(VOL)
        .iter()
        .any(|s| s["snapshot_id"] == new_snapshot.as_str() && s["status"] == "available"));
    assert_eq!(sim.creates_for(VOL), 1, "no slot created twice");
    assert!(
        sim.deleted_ids().is_empty(),
        "the hold keeps every snapshot"
    );
    assert_eq!(sim.live_ids(VOL).len(), seeded.len() + 1);
    let (code, _) = pg_daemon.stop();
    assert_eq!(code, Some(0));

    // The daemon on the old file refuses to start, naming the new place.
    let out = wd.run(&cfg, &["run"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("was moved to {url}")) && text.contains("state_url"),
        "{text}"
    );
}
