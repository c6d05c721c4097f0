//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary
//! directory, a postmaster on a free loopback port, gone again when the
//! value is dropped (or, for the process-wide [`shared`] cluster, when the
//! test process exits).
//!
//! Self-contained (std, `libc`, `tempfile`) so it can be included both by
//! integration tests and by the library's unit tests:
//!
//! ```ignore
//! // tests/util/mod.rs or a test file:
//! #[path = "../support/pg_cluster.rs"]
//! mod pg_cluster;
//! // src/...: the library's unit tests
//! #[cfg(test)]
//! #[path = "../../tests/support/pg_cluster.rs"]
//! mod pg_cluster;
//! ```
//!
//! Include it once per test crate: every inclusion has its own [`shared`]
//! cluster.
//!
//! Typical use: `let db = pg_cluster::shared()?.create_database()?;` gives a
//! test its own empty database on the one cluster of the test process;
//! tests that restart or stop the server start a private
//! [`PgCluster::start`] instead, so they do not disturb the others.
//!
//! Binaries: `pg_config --bindir`, else the highest
//! `/usr/lib/postgresql/<version>/bin`, else `initdb` on `PATH` (Debian does
//! not put the server binaries on `PATH`). `initdb` refuses to run as root,
//! so as root the server tools run as the `postgres` user through
//! `runuser -u postgres --` and the temporary directory belongs to that
//! user; as any other user they run directly. `psql` always runs as the
//! current user (it only connects over TCP, with `trust` authentication).
//!
//! The server settings (port, socket directory, loopback-only listening,
//! `fsync = off`, TLS) are written to `harness.conf` in the data directory,
//! included from `postgresql.conf`, rather than passed with `pg_ctl -o`: a
//! restart or a start after a stop then gets the same settings without
//! repeating them, and no path needs shell quoting.

#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that makes [`skip_pg`] true.
pub const SKIP_ENV: &str = "SNAPWARDEN_SKIP_PG";

/// The superuser `initdb` creates; tests connect as this role.
pub const SUPERUSER: &str = "postgres";

/// How many times a start is retried when the chosen port was taken
/// between picking it and the postmaster binding it.
const PORT_ATTEMPTS: usize = 5;

/// How many lines of the server log an error message carries.
const LOG_TAIL_LINES: usize = 30;

/// True when the developer asked to skip PostgreSQL tests
/// (`SNAPWARDEN_SKIP_PG` set to anything but empty or `0`). CI never sets
/// it, so there a missing PostgreSQL fails the tests loudly.
pub fn skip_pg() -> bool {
    std::env::var_os(SKIP_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The process-wide cluster, or `None` (with a note on stderr) when
/// [`skip_pg`] is set. Panics with the start error otherwise: a test that
/// needs PostgreSQL must fail when it is missing.
pub fn shared_or_skip(test: &str) -> Option<&'static PgCluster> {
    if skip_pg() {
        eprintln!("{test}: skipped, {SKIP_ENV} is set");
        return None;
    }
    match shared() {
        Ok(cluster) => Some(cluster),
        Err(e) => panic!("{test}: {e}"),
    }
}

static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();

/// One cluster per test process, started on first use. Many tests share it
/// and each takes its own database with [`PgCluster::create_database`].
/// A start error is kept: every later call returns it without retrying.
pub fn shared() -> Result<&'static PgCluster, String> {
    SHARED
        .get_or_init(|| {
            let started = PgCluster::start();
            if started.is_ok() {
                // A static is never dropped, so without this hook the
                // postmaster would outlive the test process and its
                // directory would stay in /tmp. The hook runs when the test
                // harness returns from main or calls exit (also after a
                // failed test); a process killed by a signal skips it.
                // SAFETY: registers a plain `extern "C" fn` without
                // arguments, as atexit requires.
                let registered = unsafe { libc::atexit(stop_shared_at_exit) };
                if registered != 0 {
                    eprintln!(
                        "pg_cluster: atexit failed; the shared cluster may outlive the tests"
                    );
                }
            }
            started
        })
        .as_ref()
        .map_err(Clone::clone)
}

extern "C" fn stop_shared_at_exit() {
    // A panic must not unwind out of an `extern "C"` function.
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(cluster)) = SHARED.get() {
            cluster.shut_down();
        }
    });
}

/// A running (or deliberately stopped) PostgreSQL cluster in a temporary
/// directory that is removed when the value is dropped.
pub struct PgCluster {
    /// Holds the socket, `log` and `data/`; owned by `postgres` when root.
    dir: tempfile::TempDir,
    bindir: PathBuf,
    /// `postgres`'s uid and gid when the server tools run through `runuser`.
    run_as: Option<(libc::uid_t, libc::gid_t)>,
    port: u16,
    shut_down: AtomicBool,
}

impl PgCluster {
    /// A fresh cluster on a free loopback port.
    pub fn start() -> Result<PgCluster, String> {
        Self::start_inner(None)
    }

    /// A fresh cluster with TLS on (`ssl = on`), serving `cert_pem` with
    /// `key_pem` (both PEM text), so a client can connect with
    /// `sslmode=verify-full` to a certificate the test made. The files are
    /// `server.crt` and `server.key` (mode 0600) in the data directory.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Result<PgCluster, String> {
        Self::start_inner(Some((cert_pem, key_pem)))
    }

    fn start_inner(tls: Option<(&str, &str)>) -> Result<PgCluster, String> {
        let bindir = find_bindir()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("snapwarden-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory for PostgreSQL: {e}"))?;
        let cluster = PgCluster {
            dir,
            bindir,
            run_as,
            port: 0,
            shut_down: AtomicBool::new(false),
        };
        cluster.give_to_server_user(cluster.dir.path())?;
        cluster.initdb()?;
        if let Some((cert, key)) = tls {
            cluster.write_server_file("server.crt", cert, 0o600)?;
            cluster.write_server_file("server.key", key, 0o600)?;
        }
        let conf = cluster.data_dir().join("postgresql.conf");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| format!("cannot open {}: {e}", conf.display()))?;
        file.write_all(b"\n# The test harness's settings.\ninclude 'harness.conf'\n")
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        drop(file);
        cluster.start_on_free_port(tls.is_some())
    }

    /// Picks a port, writes the settings, starts; again with another port
    /// when the first was taken in between.
    fn start_on_free_port(mut self, tls: bool) -> Result<PgCluster, String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.port = free_port()?;
            self.write_server_file("harness.conf", &self.settings(tls), 0o600)?;
            // A fresh log per attempt, so a port clash is judged by this
            // attempt's messages only.
            let _ = fs::remove_file(self.log_path());
            match self.pg_ctl_start() {
                Ok(()) => return Ok(self),
                Err(e) if attempt < PORT_ATTEMPTS && self.log_says_port_taken() => {
                    eprintln!("pg_cluster: port {} was taken, retrying: {e}", self.port);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn settings(&self, tls: bool) -> String {
        let mut s = format!(
            "listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = {}\n\
             fsync = off\n",
            self.port,
            conf_string(self.dir.path())
        );
        if tls {
            let data = self.data_dir();
            s.push_str(&format!(
                "ssl = on\nssl_cert_file = {}\nssl_key_file = {}\n",
                conf_string(&data.join("server.crt")),
                conf_string(&data.join("server.key"))
            ));
        }
        s
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/db` (no password: trust).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server log (what `pg_ctl -l` writes).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// The directory of the server's Unix socket (also the temporary
    /// directory that holds everything else).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PID of the running postmaster (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Result<i32, String> {
        let path = self.data_dir().join("postmaster.pid");
        let text = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("{} has no PID on its first line", path.display()))
    }

    /// A new empty database with a name unique in this process and cluster
    /// (`t_<pid>_<counter>`), created from `template0`; returns its name.
    pub fn create_database(&self) -> Result<String, String> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} TEMPLATE template0"),
        )?;
        Ok(name)
    }

    /// Runs `sql` in database `db` with `psql -X -A -t -q -v ON_ERROR_STOP=1`
    /// and returns its stdout, trimmed: unaligned rows, `|` between
    /// columns, no headers and no command tags. Several statements may be
    /// given; the output holds the rows of each. Any SQL error is an `Err`
    /// with psql's message.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.psql_url(&self.url(db), sql)
    }

    /// Like [`PgCluster::psql`], connecting with a libpq URL or key=value
    /// string, e.g. `format!("{}?sslmode=require", cluster.url("postgres"))`.
    pub fn psql_url(&self, conninfo: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(self.client_bin("psql"));
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo)
            .arg("-c")
            .arg(sql)
            .env("PGCONNECT_TIMEOUT", "10")
            // psql's and libpq's messages in English whatever the
            // developer's locale, so tests can match them.
            .env_remove("LC_ALL")
            .env("LC_MESSAGES", "C");
        // Settings from the developer's environment would change what the
        // connection string asked for.
        for var in [
            "PGSSLMODE",
            "PGOPTIONS",
            "PGSERVICE",
            "PGPASSWORD",
            "PGTARGETSESSIONATTRS",
        ] {
            cmd.env_remove(var);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.client_bin("psql").display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql failed ({}) on {sql:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `pg_ctl restart -m <mode> -w`: `"smart"`, `"fast"` or `"immediate"`
    /// (a crash: the server recovers from WAL on the way up). Same port and
    /// settings; returns once the server accepts connections.
    pub fn restart(&self, mode: &str) -> Result<(), String> {
        check_mode(mode)?;
        let out = self.server_tool("pg_ctl", |c| {
            c.arg("restart")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .args(["-m", mode, "-w"]);
        })?;
        self.expect_success("pg_ctl restart", &out)
    }

    /// `pg_ctl stop -m <mode> -w`: the database goes away until
    /// [`PgCluster::start_again`].
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        check_mode(mode)?;
        let out = self.server_tool("pg_ctl", |c| {
            c.arg("stop")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", mode, "-w"]);
        })?;
        self.expect_success("pg_ctl stop", &out)
    }

    /// Starts the server again after [`PgCluster::stop`], on the same port.
    pub fn start_again(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }

    /// Stops the server (immediate) and removes the directory; once only.
    /// Errors are ignored: this runs from `Drop` and at exit.
    fn shut_down(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.server_tool("pg_ctl", |c| {
            c.arg("stop")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w"]);
        });
        let _ = fs::remove_dir_all(self.dir.path());
    }

    fn initdb(&self) -> Result<(), String> {
        let out = self.server_tool("initdb", |c| {
            c.arg("-D").arg(self.data_dir()).args([
                "-N",
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
            ]);
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "initdb failed ({}) in {}: {}",
                out.status,
                self.dir.path().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let out = self.server_tool("pg_ctl", |c| {
            c.arg("start")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .arg("-w");
        })?;
        self.expect_success("pg_ctl start", &out)
    }

    fn expect_success(&self, what: &str, out: &Output) -> Result<(), String> {
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{what} failed ({}) for the cluster in {} (port {}): {}\n\
             --- last lines of {} ---\n{}",
            out.status,
            self.data_dir().display(),
            self.port,
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log_path().display(),
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        match fs::read_to_string(self.log_path()) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(cannot read the log: {e})"),
        }
    }

    fn log_says_port_taken(&self) -> bool {
        fs::read_to_string(self.log_path()).is_ok_and(|t| t.contains("Address already in use"))
    }

    /// Runs a server tool from the cluster's bindir, through
    /// `runuser -u postgres --` when root, in the temporary directory (the
    /// caller's working directory may be closed to `postgres`).
    fn server_tool(&self, tool: &str, args: impl FnOnce(&mut Command)) -> Result<Output, String> {
        let bin = self.bindir.join(tool);
        let mut cmd = if self.run_as.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", SUPERUSER, "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.current_dir(self.dir.path());
        args(&mut cmd);
        cmd.output().map_err(|e| {
            if self.run_as.is_some() {
                format!(
                    "cannot run runuser -u {SUPERUSER} -- {}: {e}",
                    bin.display()
                )
            } else {
                format!("cannot run {}: {e}", bin.display())
            }
        })
    }

    /// psql of the same installation as the server, else the one on PATH.
    fn client_bin(&self, tool: &str) -> PathBuf {
        let bin = self.bindir.join(tool);
        if bin.is_file() {
            bin
        } else {
            PathBuf::from(tool)
        }
    }

    /// Writes `name` into the data directory with `mode`, owned by the
    /// server's user.
    fn write_server_file(&self, name: &str, text: &str, mode: u32) -> Result<(), String> {
        let path = self.data_dir().join(name);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.give_to_server_user(&path)
    }

    fn give_to_server_user(&self, path: &Path) -> Result<(), String> {
        let Some((uid, gid)) = self.run_as else {
            return Ok(());
        };
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
        // SAFETY: c_path is a valid NUL-terminated string for the call.
        if unsafe { libc::chown(c_path.as_ptr(), uid, gid) } != 0 {
            return Err(format!(
                "cannot chown {} to {SUPERUSER}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn check_mode(mode: &str) -> Result<(), String> {
    match mode {
        "smart" | "fast" | "immediate" => Ok(()),
        _ => Err(format!(
            "pg_ctl mode must be smart, fast or immediate, not {mode:?}"
        )),
    }
}

/// A PostgreSQL configuration string literal.
fn conf_string(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// A loopback port nobody listens on right now. Another process may take
/// it before the postmaster binds it; the start retries then.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind 127.0.0.1:0 to find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot read the bound port: {e}"))
}

/// `postgres`'s uid and gid, for running the server tools as root.
fn postgres_user() -> Result<(libc::uid_t, libc::gid_t), String> {
    // getpwnam returns a pointer into static storage that a concurrent call
    // overwrites; looking it up once, under the OnceLock, keeps tests that
    // start clusters in parallel from reading it while another writes it.
    static USER: OnceLock<Option<(libc::uid_t, libc::gid_t)>> = OnceLock::new();
    let ids = *USER.get_or_init(|| {
        let name = CString::new(SUPERUSER).ok()?;
        // SAFETY: name is NUL-terminated; the result is NULL or points to a
        // passwd record that is read at once, before any other lookup.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if pw.is_null() {
            None
        } else {
            // SAFETY: pw is non-null and points to a valid passwd record.
            Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
        }
    });
    ids.ok_or_else(|| {
        format!(
            "running as root, but there is no `{SUPERUSER}` user to run initdb as \
             (initdb refuses root); install Debian's `postgresql` package, which \
             creates it, or run the tests as a normal user"
        )
    })
}

/// The directory that holds `initdb`, `pg_ctl` and `postgres`: from
/// `pg_config --bindir`, else the highest `/usr/lib/postgresql/*/bin`,
/// else the directory of `initdb` on `PATH`.
pub fn find_bindir() -> Result<PathBuf, String> {
    find_bindir_in(
        Path::new("pg_config"),
        Path::new("/usr/lib/postgresql"),
        std::env::var_os("PATH"),
    )
}

/// [`find_bindir`] with the `pg_config` command, the versions directory and
/// the `PATH` value given, so a test can point them elsewhere.
pub fn find_bindir_in(
    pg_config: &Path,
    versions_dir: &Path,
    path_var: Option<std::ffi::OsString>,
) -> Result<PathBuf, String> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Ok(out) = Command::new(pg_config).arg("--bindir").output() {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_initdb(&dir) {
                return Ok(dir);
            }
        }
    }
    // Debian: /usr/lib/postgresql/<major>/bin, not on PATH; the highest
    // version wins when several are installed.
    if let Ok(entries) = fs::read_dir(versions_dir) {
        let mut best: Option<(Vec<u32>, PathBuf)> = None;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(version) = name
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if has_initdb(&bin) && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
        if let Some((_, bin)) = best {
            return Ok(bin);
        }
    }
    // initdb on PATH, possibly a symlink into the real bindir.
    if let Some(path) = path_var {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                let real = fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(parent) = real.parent() {
                    return Ok(parent.to_path_buf());
                }
            }
        }
    }
    Err(format!(
        "PostgreSQL is not installed: no initdb from `pg_config --bindir`, in \
         /usr/lib/postgresql/*/bin or on PATH. Install Debian's `postgresql` \
         package (apt-get install postgresql), or set {SKIP_ENV}=1 to skip the \
         PostgreSQL tests on a development machine"
    ))
}
