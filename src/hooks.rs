//! Pre and post snapshot hooks: an operator's command run around a create
//! (freeze a filesystem, flush a database, then thaw), with the run's
//! facts in its environment, a time limit, and its output in the log.
//!
//! A hook is started directly (no shell), in a process group of its own,
//! with standard input closed. At its time limit the whole group is
//! killed, so a hook's children cannot outlive it either. The variables
//! the configuration reads secrets from are removed from its environment,
//! so a hook never sees, and never prints, a cloud's secret.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tracing::{info, warn};

/// Lines of one stream of a hook that reach the log; the rest are counted.
const LOGGED_LINES: usize = 200;
/// Longest line logged; a longer one is cut.
const LOGGED_LINE_CHARS: usize = 1_000;
/// How long the output of a hook that ended is still read: a child it
/// left running in the background may keep the pipes open.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// Which side of the create a hook runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// How the create went, as a post hook is told in `SNAPWARDEN_OUTCOME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The cloud accepted the create: the point in time is taken.
    Accepted,
    /// The create failed, or no snapshot was started.
    Failed,
    /// The run's timeout passed before the create was accepted.
    TimedOut,
    /// The pre hook failed; no snapshot was started.
    PreFailed,
    /// The daemon stopped (or died, and this is its restart) between the
    /// pre hook and the create's answer.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::PreFailed => "pre_failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// What a hook is told about its run, in `SNAPWARDEN_*` variables.
#[derive(Debug, Clone)]
pub struct HookContext {
    pub policy: String,
    pub target: String,
    /// RFC 3339, UTC.
    pub slot: String,
    pub snapshot_name: String,
    pub provider: String,
    pub resource: String,
}

/// Why a hook did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("the {phase} hook has no command")]
    Empty { phase: &'static str },
    #[error("cannot start the {phase} hook {program}: {source}")]
    Spawn {
        phase: &'static str,
        program: String,
        source: std::io::Error,
    },
    #[error("the {phase} hook {program} failed: {status}")]
    Failed {
        phase: &'static str,
        program: String,
        status: ExitStatus,
    },
    #[error("the {phase} hook {program} ran past its hook_timeout ({timeout}) and was killed")]
    TimedOut {
        phase: &'static str,
        program: String,
        timeout: String,
    },
    #[error("lost track of the {phase} hook {program}: {source}")]
    Wait {
        phase: &'static str,
        program: String,
        source: std::io::Error,
    },
}

/// A hook to run: its command (program and arguments), its time limit,
/// and the environment variables it must not inherit.
#[derive(Debug, Clone)]
pub struct Hook<'a> {
    pub argv: &'a [String],
    pub timeout: Duration,
    pub scrub_env: &'a [String],
}

impl Hook<'_> {
    /// Run the hook for `phase` of the run `cx` (a post hook with the
    /// create's `outcome`) to its end or its time limit. Its output goes
    /// to the log, line by line, with the run's fields.
    pub async fn run(
        &self,
        phase: Phase,
        cx: &HookContext,
        outcome: Option<Outcome>,
    ) -> Result<(), HookError> {
        let phase_name = phase.as_str();
        let Some((program, args)) = self.argv.split_first() else {
            return Err(HookError::Empty { phase: phase_name });
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for name in self.scrub_env {
            cmd.env_remove(name);
        }
        cmd.env("SNAPWARDEN_POLICY", &cx.policy)
            .env("SNAPWARDEN_TARGET", &cx.target)
            .env("SNAPWARDEN_SLOT", &cx.slot)
            .env("SNAPWARDEN_SNAPSHOT_NAME", &cx.snapshot_name)
            .env("SNAPWARDEN_PROVIDER", &cx.provider)
            .env("SNAPWARDEN_RESOURCE", &cx.resource)
            .env("SNAPWARDEN_PHASE", phase_name);
        match outcome {
            Some(o) => cmd.env("SNAPWARDEN_OUTCOME", o.as_str()),
            None => cmd.env_remove("SNAPWARDEN_OUTCOME"),
        };
        let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
            phase: phase_name,
            program: program.clone(),
            source,
        })?;
        info!(policy = %cx.policy, target = %cx.target, slot = %cx.slot, phase = phase_name, program = %program, outcome = outcome.map(Outcome::as_str), "hook started");
        let stdout = child
            .stdout
            .take()
            .map(|s| tokio::spawn(log_lines(s, cx.clone(), phase_name, "stdout")));
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(log_lines(s, cx.clone(), phase_name, "stderr")));
        let waited = tokio::time::timeout(self.timeout, child.wait()).await;
        let result = match waited {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(HookError::Failed {
                phase: phase_name,
                program: program.clone(),
                status,
            }),
            Ok(Err(source)) => Err(HookError::Wait {
                phase: phase_name,
                program: program.clone(),
                source,
            }),
            Err(_) => {
                kill_group(&mut child).await;
                Err(HookError::TimedOut {
                    phase: phase_name,
                    program: program.clone(),
                    timeout: humantime::format_duration(self.timeout).to_string(),
                })
            }
        };
        // A child the hook left running may hold the pipes open: its
        // output is read a moment longer, then no more.
        for reader in [stdout, stderr].into_iter().flatten() {
            let abort = reader.abort_handle();
            if tokio::time::timeout(OUTPUT_DRAIN, reader).await.is_err() {
                abort.abort();
            }
        }
        match &result {
            Ok(()) => {
                info!(policy = %cx.policy, target = %cx.target, slot = %cx.slot, phase = phase_name, "hook succeeded")
            }
            Err(e) => {
                warn!(policy = %cx.policy, target = %cx.target, slot = %cx.slot, phase = phase_name, error = %e, "hook failed")
            }
        }
        result
    }
}

/// Kill a hook that ran out of time, with every process of its group,
/// and reap it.
async fn kill_group(child: &mut tokio::process::Child) {
    // Not yet reaped, so its id is still its group's (process_group(0)
    // made the hook the leader), and no other process can have it.
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill().await;
}

/// Log each line of one of a hook's streams, up to [`LOGGED_LINES`].
async fn log_lines(
    stream: impl AsyncRead + Unpin,
    cx: HookContext,
    phase: &'static str,
    name: &'static str,
) {
    let mut lines = BufReader::new(stream).lines();
    let mut seen = 0usize;
    // Up to the end, or to what is not text or a broken pipe: the rest
    // is not logged.
    while let Ok(Some(line)) = lines.next_line().await {
        seen += 1;
        if seen <= LOGGED_LINES {
            let line: String = line.chars().take(LOGGED_LINE_CHARS).collect();
            info!(policy = %cx.policy, target = %cx.target, slot = %cx.slot, phase, stream = name, "hook: {line}");
        }
    }
    if seen > LOGGED_LINES {
        info!(policy = %cx.policy, target = %cx.target, slot = %cx.slot, phase, stream = name, "hook: {} more lines not logged", seen - LOGGED_LINES);
    }
}

#[cfg(test)]
mod tests;
