//! One ledger, one writer: an advisory lock on a file next to the ledger
//! (`state.db` → `state.db.lock`), held for as long as the ledger is open
//! for writing.
//!
//! The daemon holds it for its whole life; a one-shot command that writes
//! (`snapshot`, `prune`, `orphans --delete --yes`, `restore`) holds it while
//! it runs. A second process that asks for it is refused at once with the
//! holder's pid and command line, which the holder writes into the file.
//! The lock is `flock(2)` (std's `File::try_lock`): the kernel releases it
//! when the holder exits, also on `kill -9`, so a stale file never blocks
//! anyone; the file itself is left in place (removing it would let two
//! processes lock two different files of one name).
//!
//! Readers (`status`, `monitor`, `plan`, `check`) never take it: SQLite's
//! WAL mode lets them read while the holder writes.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Result, StateError};

/// The process that holds a ledger's lock, as it described itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holder {
    pub pid: Option<u32>,
    /// What the holder runs, e.g. `snapwarden run`.
    pub command: Option<String>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = self.command.as_deref().unwrap_or("another process");
        match self.pid {
            Some(pid) => write!(f, "{command} (pid {pid})"),
            None => write!(f, "{command} (pid unknown)"),
        }
    }
}

impl Holder {
    /// Parse what a holder wrote: its pid on the first line, its command
    /// on the second. Anything after that is left over from an earlier,
    /// longer content and ignored.
    fn parse(text: &str) -> Holder {
        let mut lines = text.lines();
        let pid = lines.next().and_then(|l| l.trim().parse().ok());
        let command = lines
            .next()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        Holder { pid, command }
    }
}

/// The lock on one ledger; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct LedgerLock {
    path: PathBuf,
    // Held for the flock; never read after locking.
    _file: File,
}

impl LedgerLock {
    /// The lock file of the ledger at `ledger`.
    pub fn path_for(ledger: &Path) -> PathBuf {
        let mut name = ledger.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Take the lock of the ledger at `ledger` without waiting, and write
    /// this process's pid and `command` into it. Held by another process:
    /// [`StateError::Locked`] naming it.
    pub fn acquire(ledger: &Path, command: &str) -> Result<LedgerLock> {
        let path = Self::path_for(ledger);
        let io_error = |source: std::io::Error| StateError::Lock {
            path: path.clone(),
            source,
        };
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => f,
            // A lock file another user created (root ran a command while
            // the service was stopped): flock works on a read-only
            // descriptor too; only the pid cannot be written then.
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                File::open(&path).map_err(io_error)?
            }
            Err(e) => return Err(io_error(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    ledger: ledger.to_path_buf(),
                    holder: read_holder(&path),
                    lock: path,
                })
            }
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        // One positioned write, then cut what an earlier, longer content
        // left behind: a reader never sees an empty file here.
        let text = format!("{}\n{command}\n", std::process::id());
        if file.write_all_at(text.as_bytes(), 0).is_ok() {
            let _ = file.set_len(text.len() as u64);
        }
        Ok(LedgerLock { path, _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds the lock at `path`. A holder that has only just taken a new
/// (empty) file may not have written itself yet: a few short retries.
fn read_holder(path: &Path) -> Holder {
    let mut holder = Holder::default();
    for _ in 0..10 {
        let mut text = String::new();
        if let Ok(mut f) = File::open(path) {
            let _ = f.read_to_string(&mut text);
        }
        holder = Holder::parse(&text);
        if holder.pid.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    holder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_ledger_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = dir.path().join("state.db");
        let first = LedgerLock::acquire(&ledger, "snapwarden run").expect("first lock");
        assert_eq!(first.path(), dir.path().join("state.db.lock"));
        let err = LedgerLock::acquire(&ledger, "snapwarden prune").expect_err("second lock");
        match &err {
            StateError::Locked { lock, holder, .. } => {
                assert_eq!(lock, first.path());
                assert_eq!(holder.pid, Some(std::process::id()));
                assert_eq!(holder.command.as_deref(), Some("snapwarden run"));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("state.db.lock"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        let again = LedgerLock::acquire(&ledger, "snapwarden prune").expect("free again");
        drop(again);
    }

    #[test]
    fn leftovers_of_a_longer_earlier_holder_are_ignored() {
        assert_eq!(
            Holder::parse("42\nsnapwarden run\nsnapwarden orphans --delete\n"),
            Holder {
                pid: Some(42),
                command: Some("snapwarden run".into())
            }
        );
        assert_eq!(Holder::parse(""), Holder::default());
    }
}
