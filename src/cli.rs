//! Command-line definitions (clap): one variant per subcommand. Parsing
//! only; the work is in `commands/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// `snapwarden --version`: the crate version and the git commit it was
/// built from (see build.rs), e.g. `0.1.0 (1a2b3c4)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SNAPWARDEN_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "snapwarden",
    version = VERSION,
    about = "Scheduled cloud snapshots with job tracking and retention"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `-c FILE`, shared by the commands that read the policy file.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// The policy file.
    #[arg(
        short = 'c',
        long = "config",
        env = "SNAPWARDEN_CONFIG",
        default_value = "/etc/snapwarden/snapwarden.toml",
        value_name = "FILE"
    )]
    pub path: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify).
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the policy file and print each policy's next run times.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Dry run: what the next run creates and what retention would delete now.
    Plan {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this policy.
        #[arg(long)]
        policy: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// One run now, in the foreground: create, wait until terminal, prune.
    Snapshot {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        policy: String,
        /// Only this target of the policy.
        #[arg(long)]
        target: Option<String>,
        /// Hold the snapshot(s) this run makes for this long (e.g. 14d): kept
        /// outside retention, like `hold`, with the reason "on demand".
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        keep_for: Option<std::time::Duration>,
    },
    /// Retention alone.
    Prune {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        policy: Option<String>,
        /// Print the decisions without deleting anything.
        #[arg(long)]
        dry_run: bool,
        /// Delete beyond max_deletes_per_run and lift a reload's hold (needs --policy).
        #[arg(long)]
        yes: bool,
    },
    /// Restore the newest (or a given) snapshot; in place only with --yes.
    Restore {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        policy: String,
        #[arg(long)]
        target: String,
        /// This snapshot instead of the newest good one.
        #[arg(long)]
        snapshot: Option<String>,
        /// Name of the new volume/instance, where the cloud makes one.
        #[arg(long)]
        new_name: Option<String>,
        /// Confirm an in-place restore (rollback).
        #[arg(long)]
        yes: bool,
    },
    /// Pause a policy (or every one): its slots are recorded skipped, not
    /// run, until `resume` or the end of --for. A running daemon honours it
    /// within a second.
    Pause {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this policy (default: every policy).
        #[arg(long)]
        policy: Option<String>,
        /// Lift the pause by itself after this long (e.g. 2h, 1d).
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        for_: Option<std::time::Duration>,
        /// Why: shown by status, in the ledger and in the skipped runs.
        #[arg(long)]
        reason: String,
    },
    /// Keep a snapshot (--snapshot) or every snapshot a target has now
    /// from ever being deleted, outside retention, until --for/--until
    /// ends or `release`. Marked on the cloud where it has a field for it.
    Hold {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        policy: String,
        #[arg(long)]
        target: String,
        /// Only this snapshot (the cloud's id), not every one the target has.
        #[arg(long)]
        snapshot: Option<String>,
        /// The hold ends by itself after this long (e.g. 30d).
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "until")]
        for_: Option<std::time::Duration>,
        /// The hold ends at this time: RFC 3339, or a date (and HH:MM) in
        /// the policy's time zone.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Why: shown by plan and status, kept in the ledger and the audit trail.
        #[arg(long)]
        reason: String,
    },
    /// Lift a hold made with `hold` (the one of --snapshot, or the
    /// target-wide one).
    Release {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        policy: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        snapshot: Option<String>,
    },
    /// Lift a pause made with `pause` (the one of --policy, or the
    /// every-policy one).
    Resume {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        policy: Option<String>,
    },
    /// Per policy and target: last run, last success, next run, snapshots kept.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
    /// The evidence an auditor asks for, per policy and target, over the
    /// last --since: slots due, made, failed, skipped (by reason) and
    /// missed, snapshots deleted, the oldest and newest good snapshot, and
    /// the longest gap between good snapshots. Read only.
    Report {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this policy.
        #[arg(long)]
        policy: Option<String>,
        /// How far back (e.g. 30d, 12h).
        #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// The audit trail: who created, deleted or restored which snapshot,
    /// who paused or resumed what, and why (oldest first).
    History {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this policy's entries (and those of every policy).
        #[arg(long)]
        policy: Option<String>,
        /// How far back (e.g. 1h, 7d, 90d).
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// Nagios-style freshness check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Monitor {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Snapshots with our marker that no configured policy/target owns, and
    /// stuck or failed deletes; deleted only with --delete --yes.
    Orphans {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
        /// Delete the orphans that are ours (marker and ledger); needs --yes.
        #[arg(long)]
        delete: bool,
        /// Confirm --delete.
        #[arg(long)]
        yes: bool,
        /// At most this many deletes in one go (default: the daemon's
        /// max_deletes_per_run); the rest wait for the next invocation.
        #[arg(long, value_name = "N")]
        max_deletes: Option<u32>,
    },
    /// The built-in cloud simulator alone.
    Sim {
        /// Address to listen on (loopback).
        #[arg(long, default_value = "127.0.0.1:8710")]
        listen: SocketAddr,
        /// How long simulated snapshot jobs take.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        job_duration: Duration,
        /// Serve HTTPS with this certificate chain (PEM, leaf first).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Device-flow sign-in for providers that need one (IP4G); stores the
    /// refresh token in the state database.
    Login {
        #[command(flatten)]
        config: ConfigArg,
        /// The `[providers.NAME]` section to sign in for.
        #[arg(long)]
        provider: String,
    },
    /// Copy the SQLite ledger into an empty PostgreSQL ledger (daemon
    /// stopped), check the copy, and mark the SQLite file as moved.
    MigrateState {
        #[command(flatten)]
        config: ConfigArg,
        /// The SQLite ledger (default: the config's state_path).
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
        /// The PostgreSQL ledger, postgres://USER@HOST/DB?sslmode=...,
        /// without a password (default: the config's state_url).
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// The environment variable that holds the password of --to
        /// (when --to is not the config's state_url, whose
        /// state_password_file/_env is used).
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// The simulator and the daemon together, with config/demo.toml.
    Demo {
        /// Use this policy file instead of the built-in demo one.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Shell completions and man pages from these definitions (packaging).
    #[command(hide = true, subcommand)]
    Generate(GenerateWhat),
}

/// `snapwarden generate ...`, used by packaging/build-deb.sh.
#[derive(Debug, Subcommand)]
pub enum GenerateWhat {
    /// The completion script for SHELL, on standard output.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// snapwarden.1 and one page per subcommand (snapwarden-check.1, ...)
    /// into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}
