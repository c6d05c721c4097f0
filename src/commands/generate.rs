//! `snapwarden generate` (hidden): shell completions and man pages made from
//! the clap definitions, so they can never disagree with the binary.
//! packaging/build-deb.sh runs it before `cargo deb`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Exit, Outcome};
use crate::cli::{Cli, GenerateWhat};

pub fn run(what: &GenerateWhat) -> Outcome {
    match what {
        GenerateWhat::Completions { shell } => {
            let mut out = io::stdout().lock();
            completions(*shell, &mut out)
                .and_then(|()| out.flush())
                .map_err(|e| Exit::failure(format!("cannot write the {shell} completions: {e}")))
        }
        GenerateWhat::Man { dir } => match man_pages(dir) {
            Ok(files) => {
                for f in files {
                    say!("{}", f.display());
                }
                Ok(())
            }
            Err(e) => Err(Exit::failure(format!(
                "cannot write the man pages into {}: {e}",
                dir.display()
            ))),
        },
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = visible_command();
    // clap_complete panics on a write error; render into memory first.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "snapwarden", &mut buf);
    out.write_all(&buf)
}

/// The command line without its hidden subcommands: clap_complete offers
/// hidden subcommands too, and `generate` is not for users.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("snapwarden")
        .version(crate::cli::VERSION)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
        .subcommand_required(full.is_subcommand_required_set());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

/// `snapwarden.1` plus one page per visible subcommand
/// (`snapwarden-check.1`, ...) in `dir` (created if missing). Returns the
/// files written, the main page first.
pub fn man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut files = Vec::new();
    write_pages(cmd, dir, &mut files)?;
    Ok(files)
}

fn write_pages(cmd: clap::Command, dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    files.push(clap_mangen::Man::new(cmd).generate_to(dir)?);
    for sub in subcommands {
        write_pages(sub, dir, files)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the subcommands a user sees (not the hidden `generate`).
    fn visible_subcommands() -> Vec<String> {
        let cmd = Cli::command();
        let names: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect();
        // Sanity: the list is the real one, not empty by accident.
        for known in ["run", "check", "status", "restore", "monitor"] {
            assert!(names.iter().any(|n| n == known), "{known} in {names:?}");
        }
        names
    }

    fn completion(shell: Shell) -> String {
        let mut buf = Vec::new();
        completions(shell, &mut buf).expect("in-memory write");
        String::from_utf8(buf).expect("completions are UTF-8")
    }

    #[test]
    fn completions_offer_every_subcommand_and_not_the_hidden_one() {
        let names = visible_subcommands();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = completion(shell);
            for name in &names {
                assert!(
                    script.contains(name.as_str()),
                    "{shell} completion lacks `{name}`"
                );
            }
            assert!(
                !script.contains("generate"),
                "{shell} completion offers the hidden `generate`"
            );
        }
        // Each shell's own form of a subcommand entry, so a bare word in a
        // comment or help text cannot satisfy the check above alone.
        // Each shell's entry for a subcommand name.
        type Entry = fn(&str) -> String;
        let entries: [(Shell, Entry); 3] = [
            (Shell::Fish, |name| format!("-f -a \"{name}\"")),
            (Shell::Zsh, |name| format!("'{name}:")),
            (Shell::Bash, |name| format!("snapwarden,{name})")),
        ];
        for (shell, entry) in entries {
            let script = completion(shell);
            for name in &names {
                assert!(
                    script.contains(&entry(name)),
                    "{shell}: no entry for {name}"
                );
            }
        }
    }

    #[test]
    fn man_pages_cover_every_subcommand() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = man_pages(dir.path()).expect("write man pages");
        let names = visible_subcommands();
        let main = dir.path().join("snapwarden.1");
        assert_eq!(files.first(), Some(&main));
        let page = std::fs::read_to_string(&main).expect("snapwarden.1");
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "roff: {page:.80}");
        assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
        for name in &names {
            // The SUBCOMMANDS section lists it (as `snapwarden-NAME(1)`,
            // every hyphen escaped in roff).
            assert!(
                page.contains(&format!("snapwarden\\-{}(1)", name.replace('-', "\\-"))),
                "snapwarden.1 does not list {name}"
            );
            let sub = dir.path().join(format!("snapwarden-{name}.1"));
            assert!(files.contains(&sub), "{} not written", sub.display());
            let text = std::fs::read_to_string(&sub).expect("subcommand page");
            assert!(text.contains(".SH SYNOPSIS"), "{}", sub.display());
        }
        assert!(!page.contains("generate"), "the hidden command is listed");
        assert_eq!(files.len(), names.len() + 1, "{files:?}");
        // The version line carries the git commit too.
        assert!(page.contains(crate::cli::VERSION), "version missing");
    }

    #[test]
    fn version_names_the_crate_version_and_the_commit() {
        let version = crate::cli::VERSION;
        let pkg = env!("CARGO_PKG_VERSION");
        let rest = version
            .strip_prefix(&format!("{pkg} ("))
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{version:?} is not `{pkg} (COMMIT)`"));
        assert_eq!(
            Cli::command().render_version().to_string(),
            format!("snapwarden {version}\n")
        );
        let commit = rest.strip_suffix("-dirty").unwrap_or(rest);
        match env!("SNAPWARDEN_GIT_COMMIT_SOURCE") {
            "git" => {}
            "none" => return assert_eq!(rest, "unknown"),
            _ => return, // SNAPWARDEN_GIT_COMMIT given at build time
        }
        assert!(
            commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{commit:?}"
        );
        // Built from git: the commit is the one checked out (build.rs
        // reruns when HEAD moves, so test and build agree).
        let out = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("git ran at build time, so it runs now");
        let full = String::from_utf8_lossy(&out.stdout);
        assert!(full.trim().starts_with(commit), "{commit} vs {full}");
    }
}
