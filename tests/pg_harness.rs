//! The throwaway PostgreSQL harness itself: clusters start, answer, survive
//! restarts, serve TLS, and leave no postmaster or directory behind.

#[path = "support/pg_cluster.rs"]
mod pg_cluster;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pg_cluster::PgCluster;

/// The environment variable that tells the child-process test to report
/// the shared cluster it started.
const CHILD_ENV: &str = "SNAPWARDEN_PG_HARNESS_CHILD";

/// A private cluster, or `None` when PostgreSQL tests are skipped.
fn private(test: &str) -> Option<PgCluster> {
    if pg_cluster::skip_pg() {
        eprintln!("{test}: skipped, {} is set", pg_cluster::SKIP_ENV);
        return None;
    }
    Some(PgCluster::start().unwrap_or_else(|e| panic!("{test}: {e}")))
}

/// True once `pid` is no process, or only a zombie nobody has reaped yet
/// (an exited postmaster is reparented to PID 1, which may not reap).
fn process_gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Polls until `pid` is gone; false if it is still there after 10 s.
fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_private_cluster_answers_and_leaves_nothing_after_drop() {
    let Some(cluster) = private("a_private_cluster_answers_and_leaves_nothing_after_drop") else {
        return;
    };
    assert_eq!(
        cluster.psql("postgres", "SELECT 40 + 2").expect("query"),
        "42"
    );
    assert_eq!(
        cluster
            .psql("postgres", "SHOW listen_addresses")
            .expect("listen_addresses"),
        "127.0.0.1"
    );
    assert_eq!(
        cluster.psql("postgres", "SHOW port").expect("port"),
        cluster.port().to_string()
    );
    assert_eq!(
        cluster.url("x"),
        format!("postgres://postgres@127.0.0.1:{}/x", cluster.port())
    );
    let pid = cluster.postmaster_pid().expect("postmaster.pid");
    assert!(!process_gone(pid), "the postmaster {pid} runs");
    let dir: PathBuf = cluster.socket_dir().to_path_buf();
    assert!(cluster.data_dir().starts_with(&dir));
    assert!(cluster.log_path().is_file(), "the server log exists");

    drop(cluster);
    assert!(wait_gone(pid), "postmaster {pid} still runs after drop");
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[test]
fn databases_on_the_shared_cluster_are_independent() {
    let Some(cluster) =
        pg_cluster::shared_or_skip("databases_on_the_shared_cluster_are_independent")
    else {
        return;
    };
    let a = cluster.create_database().expect("first database");
    let b = cluster.create_database().expect("second database");
    assert_ne!(a, b);
    cluster
        .psql(
            &a,
            "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1)",
        )
        .expect("table in a");
    assert_eq!(
        cluster
            .psql(
                &b,
                "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
            )
            .expect("catalog of b"),
        "0"
    );
    let err = cluster
        .psql(&b, "SELECT x FROM only_in_a")
        .expect_err("b has no such table");
    assert!(err.contains("only_in_a"), "{err}");
    assert_eq!(cluster.psql(&a, "SELECT x FROM only_in_a").expect("a"), "1");
    // Every call gives the same cluster.
    assert_eq!(pg_cluster::shared().expect("shared").port(), cluster.port());
}

#[test]
fn psql_returns_rows_unaligned_and_fails_on_sql_errors() {
    let Some(cluster) =
        pg_cluster::shared_or_skip("psql_returns_rows_unaligned_and_fails_on_sql_errors")
    else {
        return;
    };
    let db = cluster.create_database().expect("database");
    let out = cluster
        .psql(
            &db,
            "CREATE TABLE t (id int, name text);\
             INSERT INTO t VALUES (1, 'it''s'), (2, 'two words');\
             SELECT id, name FROM t ORDER BY id",
        )
        .expect("round trip");
    assert_eq!(out, "1|it's\n2|two words");
    let err = cluster
        .psql(
            &db,
            "INSERT INTO t VALUES (3, 'x'); SELECT nonsense FROM t; INSERT INTO t VALUES (4, 'y')",
        )
        .expect_err("a broken statement is an error");
    assert!(err.contains("nonsense"), "{err}");
    // ON_ERROR_STOP and one transaction per -c string: nothing of it stays.
    assert_eq!(
        cluster.psql(&db, "SELECT count(*) FROM t").expect("count"),
        "2"
    );
    let url = format!("{}?application_name=harness", cluster.url(&db));
    assert_eq!(
        cluster
            .psql_url(&url, "SELECT current_setting('application_name')")
            .expect("url"),
        "harness"
    );
}

#[test]
fn an_immediate_restart_keeps_committed_data() {
    let Some(cluster) = private("an_immediate_restart_keeps_committed_data") else {
        return;
    };
    let db = cluster.create_database().expect("database");
    cluster
        .psql(
            &db,
            "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)",
        )
        .expect("commit");
    let pid_before = cluster.postmaster_pid().expect("pid");
    cluster.restart("immediate").expect("restart immediate");
    assert_ne!(cluster.postmaster_pid().expect("pid"), pid_before);
    assert_eq!(
        cluster
            .psql(&db, "SELECT x FROM kept")
            .expect("after crash"),
        "7"
    );
    let log = std::fs::read_to_string(cluster.log_path()).expect("log");
    assert!(
        log.contains("not properly shut down") || log.contains("automatic recovery"),
        "the restart was a crash and a recovery:\n{log}"
    );
    cluster.restart("fast").expect("restart fast");
    assert_eq!(
        cluster.psql(&db, "SELECT x FROM kept").expect("after fast"),
        "7"
    );
    assert!(cluster.restart("sideways").is_err(), "unknown mode refused");
}

#[test]
fn a_stopped_cluster_refuses_connections_and_starts_again_on_its_port() {
    let Some(cluster) =
        private("a_stopped_cluster_refuses_connections_and_starts_again_on_its_port")
    else {
        return;
    };
    let db = cluster.create_database().expect("database");
    cluster
        .psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (5)")
        .expect("commit");
    let port = cluster.port();
    let pid = cluster.postmaster_pid().expect("pid");
    cluster.stop("fast").expect("stop");
    assert!(wait_gone(pid), "postmaster {pid} gone after stop");
    let err = cluster
        .psql(&db, "SELECT 1")
        .expect_err("no server while stopped");
    assert!(err.contains("Connection refused"), "{err}");
    cluster.start_again().expect("start again");
    assert_eq!(cluster.port(), port);
    assert_eq!(
        cluster.psql(&db, "SHOW port").expect("port"),
        port.to_string()
    );
    assert_eq!(cluster.psql(&db, "SELECT x FROM t").expect("data"), "5");
}

#[test]
fn a_tls_cluster_serves_ssl() {
    if pg_cluster::skip_pg() {
        eprintln!("a_tls_cluster_serves_ssl: skipped");
        return;
    }
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    let cluster = PgCluster::start_with_tls(&made.cert.pem(), &made.key_pair.serialize_pem())
        .expect("start with TLS");
    assert_eq!(
        cluster.psql("postgres", "SHOW ssl").expect("show ssl"),
        "on"
    );
    let key = cluster.data_dir().join("server.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("key file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    let url = format!("{}?sslmode=require", cluster.url("postgres"));
    assert_eq!(
        cluster
            .psql_url(
                &url,
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            .expect("TLS connection"),
        "t"
    );
    let plain = format!("{}?sslmode=disable", cluster.url("postgres"));
    assert_eq!(
        cluster
            .psql_url(
                &plain,
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            .expect("plain connection"),
        "f"
    );
}

/// Run by `the_shared_cluster_is_gone_after_the_test_process_exits` in a
/// child process: starts the shared cluster, prints where it is, exits.
#[test]
#[ignore = "run in a child process by the_shared_cluster_is_gone_after_the_test_process_exits"]
fn shared_cluster_child() {
    let cluster = pg_cluster::shared().expect("shared cluster");
    assert_eq!(cluster.psql("postgres", "SELECT 1").expect("query"), "1");
    if std::env::var_os(CHILD_ENV).is_some() {
        println!("PG_DIR={}", cluster.socket_dir().display());
        println!("PG_PID={}", cluster.postmaster_pid().expect("pid"));
    }
}

#[test]
fn the_shared_cluster_is_gone_after_the_test_process_exits() {
    if pg_cluster::skip_pg() {
        eprintln!("the_shared_cluster_is_gone_after_the_test_process_exits: skipped");
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "shared_cluster_child",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("child printed no {name}:\n{stdout}"))
            .to_string()
    };
    let dir = field("PG_DIR=");
    let pid: i32 = field("PG_PID=").parse().expect("PID");
    assert!(
        wait_gone(pid),
        "shared postmaster {pid} outlived its test process"
    );
    assert!(!Path::new(&dir).exists(), "{dir} outlived its test process");
}

#[test]
fn the_highest_installed_version_is_used_and_none_is_a_clear_error() {
    let root = tempfile::tempdir().expect("temp dir");
    let versions = root.path().join("postgresql");
    for v in ["9.6", "13", "15", "16"] {
        let bin = versions.join(v).join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        // 16 has no initdb (only the client): not a server installation.
        if v != "16" {
            std::fs::write(bin.join("initdb"), "").expect("initdb");
        }
    }
    std::fs::create_dir_all(versions.join("common")).expect("non-version dir");
    let no_pg_config = root.path().join("no-pg_config");
    assert_eq!(
        pg_cluster::find_bindir_in(&no_pg_config, &versions, None).expect("found"),
        versions.join("15").join("bin")
    );

    let empty = root.path().join("empty");
    let err = pg_cluster::find_bindir_in(&no_pg_config, &empty, Some(empty.clone().into()))
        .expect_err("nothing installed");
    assert!(err.contains("postgresql"), "{err}");
    assert!(err.contains(pg_cluster::SKIP_ENV), "{err}");

    // initdb on PATH (Debian's postgresql-common may link it there).
    let on_path = root.path().join("path");
    std::fs::create_dir_all(&on_path).expect("path dir");
    std::os::unix::fs::symlink(versions.join("13/bin/initdb"), on_path.join("initdb"))
        .expect("symlink");
    assert_eq!(
        pg_cluster::find_bindir_in(&no_pg_config, &empty, Some(on_path.into())).expect("found"),
        versions.join("13").join("bin")
    );
}
