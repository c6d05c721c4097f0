//! Secrets given as `NAME` (literal, warned about), `NAME_file` (file
//! contents, trimmed) or `NAME_env` (an environment variable), exactly one
//! of them.
//!
//! This is the only place in config loading that reads files or the
//! environment for a value. No message built here may contain a secret: it
//! names the key and the file or variable, never what was read.

use std::io::ErrorKind;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::model::Secret;
use super::raw::RawSecret;
use super::Cx;

/// The three keys of one secret as found in a section.
pub(crate) struct SecretKeys<'a> {
    /// The base key, e.g. `secret_access_key`.
    pub name: &'static str,
    pub literal: Option<&'a Spanned<RawSecret>>,
    pub file: Option<&'a Spanned<String>>,
    pub env: Option<&'a Spanned<String>>,
}

impl SecretKeys<'_> {
    /// Whether the secret is given in any form.
    pub(crate) fn given(&self) -> bool {
        self.literal.is_some() || self.file.is_some() || self.env.is_some()
    }
}

/// The secret, or `None` with a problem reported. `section` is where a
/// missing secret is reported.
pub(crate) fn resolve(
    keys: SecretKeys<'_>,
    section: Range<usize>,
    cx: &mut Cx<'_>,
) -> Option<Secret> {
    let name = keys.name;
    let given: Vec<(String, Range<usize>)> = [
        keys.literal.map(|v| (name.to_string(), v.span())),
        keys.file.map(|v| (format!("{name}_file"), v.span())),
        keys.env.map(|v| (format!("{name}_env"), v.span())),
    ]
    .into_iter()
    .flatten()
    .collect();

    if given.len() > 1 {
        // Report at the last one in the file: the earlier one is usually the
        // old setting that the operator forgot to remove.
        let (_, span) = given
            .iter()
            .max_by_key(|(_, s)| s.start)
            .expect("more than one form was given");
        let forms: Vec<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
        cx.diag.error(
            span.clone(),
            format!(
                "secret `{name}` is given {} ways ({}): give exactly one of `{name}_file`, \
                 `{name}_env` or `{name}`",
                given.len(),
                forms.join(", ")
            ),
        );
        return None;
    }

    if let Some(file) = keys.file {
        return from_file(name, file, cx);
    }
    if let Some(env) = keys.env {
        return from_env(name, env, cx);
    }
    if let Some(literal) = keys.literal {
        if literal.get_ref().0.trim().is_empty() {
            cx.diag
                .error(literal.span(), format!("secret `{name}` is empty"));
            return None;
        }
        cx.diag.warn(
            literal.span(),
            format!(
                "secret `{name}` is written in the config file in clear text; prefer \
                 `{name}_file` (a file only the service can read) or `{name}_env`"
            ),
        );
        return Some(Secret::new(literal.get_ref().0.trim()));
    }
    cx.diag.error(
        section,
        format!(
            "missing secret `{name}`: give one of `{name}_file` (path of a file holding it), \
             `{name}_env` (name of an environment variable) or `{name}`"
        ),
    );
    None
}

fn from_file(name: &str, file: &Spanned<String>, cx: &mut Cx<'_>) -> Option<Secret> {
    let key = format!("{name}_file");
    let raw = file.get_ref();
    if raw.trim().is_empty() {
        cx.diag.error(
            file.span(),
            format!("`{key}` must be a file path, got an empty string"),
        );
        return None;
    }
    let path = cx.resolve_path(raw);
    let shown = path.display();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Not echoed: a value that names no file may be the secret
            // itself, pasted into the wrong key. The position says which.
            cx.diag.error(
                file.span(),
                format!(
                    "`{key}`: the secret file given here does not exist (its path is not \
                     repeated in case the value is the secret itself)"
                ),
            );
            return None;
        }
        Err(e) => {
            let why = match e.kind() {
                ErrorKind::PermissionDenied => "cannot be read (permission denied)".to_string(),
                _ => format!("cannot be read ({e})"),
            };
            cx.diag
                .error(file.span(), format!("`{key}`: secret file {shown} {why}"));
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        cx.diag.error(
            file.span(),
            format!("`{key}`: secret file {shown} is not UTF-8 text"),
        );
        return None;
    };
    let value = text.trim();
    if value.is_empty() {
        cx.diag.error(
            file.span(),
            format!("`{key}`: secret file {shown} is empty"),
        );
        return None;
    }
    if let Some(mode) = loose_mode(&path) {
        cx.diag.warn(
            file.span(),
            format!(
                "`{key}`: secret file {shown} is readable by group or others (mode {mode:o}); \
                 restrict it with `chmod 600`"
            ),
        );
    }
    Some(Secret::new(value))
}

fn from_env(name: &str, env: &Spanned<String>, cx: &mut Cx<'_>) -> Option<Secret> {
    let key = format!("{name}_env");
    let var = env.get_ref();
    let well_formed = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        // Not echoed: a value that is no variable name may be the secret
        // itself, pasted into the wrong key.
        cx.diag.error(
            env.span(),
            format!(
                "`{key}` must be the name of an environment variable (letters, digits and \
                 `_`, e.g. \"QY_SECRET_ACCESS_KEY\"), not the secret itself"
            ),
        );
        return None;
    }
    cx.secret_env.push(var.clone());
    match (cx.env)(var) {
        None => {
            cx.diag.error(
                env.span(),
                format!("`{key}`: environment variable {var} is not set"),
            );
            None
        }
        Some(value) if value.trim().is_empty() => {
            cx.diag.error(
                env.span(),
                format!("`{key}`: environment variable {var} is empty"),
            );
            None
        }
        Some(value) => Some(Secret::new(value.trim())),
    }
}

/// The permission bits if group or others may read the file.
#[cfg(unix)]
fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn loose_mode(_path: &Path) -> Option<u32> {
    None
}
