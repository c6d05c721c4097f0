//! The policy file: TOML schema, validation, secrets.
//!
//! `load` turns a file into a checked [`Config`] or into every problem found,
//! each with file, line and column. Nothing here talks to a cloud.
//!
//! Two stages, like ripgrep's `LowArgs` -> `HiArgs`:
//! 1. `raw`: the TOML tree (with byte spans) is deserialized section by
//!    section into serde structs that deny unknown keys and keep a span on
//!    every value;
//! 2. `validate` (and `kinds/` for provider sections): every value is
//!    checked, all problems are collected, and the plain [`Config`] of
//!    `model.rs` is built only if there were none.
//!
//! The only I/O after reading the file is reading secret files, the CA file
//! and environment variables (`secrets.rs`, `kinds/`).

mod diagnostics;
mod kinds;
mod model;
mod raw;
mod secrets;
mod validate;
mod values;

pub use model::*;
pub use validate::host_name;

use std::path::{Path, PathBuf};

use diagnostics::Diagnostics;

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    /// Each line is `FILE:LINE:COLUMN: message` (or `FILE: message` where no
    /// position applies, e.g. an unreadable file).
    pub problems: Vec<String>,
}

/// Read, parse and validate the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, path),
        Err(e) => Err(ConfigError {
            problems: vec![format!(
                "{}: cannot read the config file: {e}",
                path.display()
            )],
        }),
    }
}

/// Parse and validate `text` as if read from `path` (used in messages and
/// as the base for relative `*_file` and `ca_file` paths). For tests and
/// for SIGHUP reloads.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    load_with_env(text, path, &|name| std::env::var(name).ok())
}

/// [`load_str`] with the environment given as a lookup function, so that
/// tests need not touch the process environment.
pub fn load_with_env(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut cx = Cx {
        diag: Diagnostics::new(path, text),
        base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        env,
        secret_env: Vec::new(),
    };

    let (root, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The recovered tree is a guess; checking it would add noise.
        cx.diag.syntax_errors(&syntax_errors);
        let (problems, _) = cx.diag.into_parts();
        return Err(ConfigError { problems });
    }

    let config = validate::document(root.get_ref(), path.to_path_buf(), &mut cx);
    let (problems, warnings) = cx.diag.into_parts();
    match config {
        Some(mut config) if problems.is_empty() => {
            config.warnings = warnings;
            Ok(config)
        }
        _ => Err(ConfigError { problems }),
    }
}

/// What every check may need besides the value itself.
pub(crate) struct Cx<'t> {
    pub diag: Diagnostics<'t>,
    /// The config file's folder: relative paths in the file are relative
    /// to it, not to the daemon's working directory.
    base_dir: PathBuf,
    env: &'t dyn Fn(&str) -> Option<String>,
    /// The environment variables secrets were read from.
    secret_env: Vec<String>,
}

impl Cx<'_> {
    pub(crate) fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

#[cfg(test)]
mod tests;
