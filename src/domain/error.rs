//! The kinds of failure every cloud's errors map onto.

use std::fmt;

/// What kind of failure a provider call ended in. The engine's retry policy
/// decides on this alone, so every cloud maps its codes onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Credentials or signature rejected. Never retried.
    Auth,
    /// The resource (volume, snapshot, job) does not exist.
    NotFound,
    /// The resource is busy (another snapshot in progress, "please try
    /// later"). Retried until the policy's timeout.
    Busy,
    /// The API asked us to slow down. Retried with a longer backoff.
    Throttled,
    /// A quota is exhausted (snapshot count, daily API quota). Not retried
    /// within a run; the operator must act.
    Quota,
    /// Network trouble, 5xx, internal error, a response we could not parse
    /// as the API's shape. Retried.
    Transient,
    /// A name or resource already exists.
    Conflict,
    /// Anything else the API rejected: bad parameter, permission, balance.
    Permanent,
}

impl ErrorKind {
    /// Whether a call that failed with this kind may be repeated.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Busy | ErrorKind::Throttled | ErrorKind::Transient
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Busy => "busy",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Quota => "quota",
            ErrorKind::Transient => "transient",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
