//! The operations snapwarden follows, and why deletes wait.

/// The kinds of operation the engine tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Create,
    Delete,
    /// A restore; succeeded means the restored volume/instance (or the
    /// rollback) is ready.
    Restore,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Restore => "restore",
        }
    }
}

/// Why deletes retention wanted were held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldCause {
    /// New rules (a reload, or a file edited while the daemon was down)
    /// would delete more than `max_deletes_per_run`: nothing is deleted
    /// until the operator confirms with `prune --yes`.
    Reload,
    /// A run's own guards: the deletion budget, a newest snapshot that is
    /// not good, a failed delete in a chain, a snapshot being restored from.
    Guard,
    /// The policy's blackout window: deletes wait for its end (no alert;
    /// the first run after the window prunes).
    Blackout,
}

impl HoldCause {
    /// The word alerts carry (`budget` for the run's own guards, as it has
    /// always been).
    pub fn as_str(self) -> &'static str {
        match self {
            HoldCause::Reload => "reload",
            HoldCause::Guard => "budget",
            HoldCause::Blackout => "blackout",
        }
    }
}

/// Deletes held back, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub cause: HoldCause,
    /// What the operator reads: the reason, and what to do about it.
    pub reason: String,
}
