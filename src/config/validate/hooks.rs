//! A policy's hooks: `pre_snapshot`, `post_snapshot`, `hook_timeout` and
//! `on_pre_failure`. A hook's program must be an executable file named by
//! its absolute path: a hook that cannot start would only be found out at
//! the first slot, with a filesystem frozen or a snapshot skipped.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::policy::Entry;
use crate::config::model::{Hooks, OnPreFailure};
use crate::config::values::{self, DurationRule, HOUR};
use crate::config::Cx;

/// `Some(None)`: no hooks; `None`: a mistake, reported.
pub(super) fn policy_hooks(entry: &Entry<'_>, cx: &mut Cx<'_>) -> Option<Option<Hooks>> {
    let raw = entry.raw;
    let pre = raw
        .pre_snapshot
        .as_ref()
        .map(|v| command(v, "pre_snapshot", cx));
    let post = raw
        .post_snapshot
        .as_ref()
        .map(|v| command(v, "post_snapshot", cx));
    let timeout = values::duration_or(
        raw.hook_timeout.as_ref(),
        Duration::from_secs(60),
        &DurationRule::up_to("hook_timeout", HOUR),
        &mut cx.diag,
    );
    let on_pre_failure = match &raw.on_pre_failure {
        None => Some(OnPreFailure::Skip),
        Some(v) => match v.get_ref().as_str() {
            "skip" => Some(OnPreFailure::Skip),
            "snapshot" => Some(OnPreFailure::Snapshot),
            other => {
                cx.diag.error(
                    v.span(),
                    format!(
                        "`on_pre_failure` must be \"skip\" (the slot fails and alerts) or \
                         \"snapshot\" (taken anyway, crash-consistent), not {other:?}"
                    ),
                );
                None
            }
        },
    };
    if pre.is_none() && post.is_none() {
        for (key, span) in [
            ("hook_timeout", raw.hook_timeout.as_ref().map(Spanned::span)),
            (
                "on_pre_failure",
                raw.on_pre_failure.as_ref().map(Spanned::span),
            ),
        ] {
            if let Some(span) = span {
                cx.diag.warn(
                    span,
                    format!("`{key}` has no effect without `pre_snapshot` or `post_snapshot`"),
                );
            }
        }
        return Some(None);
    }
    if let (None, Some(v)) = (&pre, &raw.on_pre_failure) {
        cx.diag.warn(
            v.span(),
            "`on_pre_failure` has no effect without `pre_snapshot`",
        );
    }
    // Outer: the key is there; inner: its command is valid.
    let valid = |c: Option<Option<Vec<String>>>| match c {
        None => Some(None),
        Some(argv) => argv.map(Some),
    };
    Some(Some(Hooks {
        pre: valid(pre)?,
        post: valid(post)?,
        timeout: timeout?,
        on_pre_failure: on_pre_failure?,
    }))
}

/// A hook's command: a non-empty array whose first element is an
/// executable file's absolute path.
fn command(
    value: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    cx: &mut Cx<'_>,
) -> Option<Vec<String>> {
    let argv: Vec<String> = value
        .get_ref()
        .iter()
        .map(|a| a.get_ref().clone())
        .collect();
    let Some(program) = value.get_ref().first() else {
        cx.diag.error(
            value.span(),
            format!(
                "`{key}` must be a non-empty array whose first element is the program, \
                 e.g. [\"/usr/local/bin/fsfreeze-all\", \"--freeze\"]"
            ),
        );
        return None;
    };
    let path = Path::new(program.get_ref());
    if !path.is_absolute() {
        cx.diag.error(
            program.span(),
            format!(
                "`{key}`: the program must be an absolute path (hooks run without a shell \
                 or a search path), not {:?}",
                program.get_ref()
            ),
        );
        return None;
    }
    let problem = match std::fs::metadata(path) {
        Err(e) => Some(format!("cannot be read: {e}")),
        Ok(m) if !m.is_file() => Some("is not a file".to_string()),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            Some("is not executable (no x permission bit)".to_string())
        }
        Ok(_) => None,
    };
    if let Some(problem) = problem {
        cx.diag.error(
            program.span(),
            format!("`{key}`: {} {problem}", path.display()),
        );
        return None;
    }
    Some(argv)
}
