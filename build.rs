//! Build script: records the git commit the binary was built from, for
//! `snapwarden --version` (`0.1.0 (1a2b3c4)`, `(1a2b3c4-dirty)` with
//! uncommitted changes to tracked files, `(unknown)` outside a git checkout
//! or without git). `SNAPWARDEN_GIT_COMMIT` overrides it, for builds from a
//! source tarball whose commit is known.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SNAPWARDEN_GIT_COMMIT");
    // Whatever happens below, rerun when the manifest or the build script
    // change (a `rerun-if-changed` line replaces cargo's default of "any
    // file of the package").
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");

    let (commit, source) = match std::env::var("SNAPWARDEN_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => (c.trim().to_string(), "override"),
        _ => match from_git() {
            Some(c) => (c, "git"),
            None => ("unknown".to_string(), "none"),
        },
    };
    println!("cargo:rustc-env=SNAPWARDEN_GIT_COMMIT={commit}");
    // Where it came from, for the test of the version string.
    println!("cargo:rustc-env=SNAPWARDEN_GIT_COMMIT_SOURCE={source}");
}

/// `git` with the arguments, run in the package's folder; its trimmed
/// standard output when it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn from_git() -> Option<String> {
    let hash = git(&["rev-parse", "--short", "HEAD"]).filter(|h| !h.is_empty())?;
    // Rerun when HEAD moves: HEAD itself (checkout), the branch's ref
    // (commit) and packed-refs (gc). `--git-path` resolves these in
    // linked worktrees too, where `.git` is a file.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in &watched {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            let path = Path::new(&path);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                match std::env::var_os("CARGO_MANIFEST_DIR") {
                    Some(dir) => Path::new(&dir).join(path),
                    None => continue,
                }
            };
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    // Edits to the sources make the build "-dirty"; watching the source
    // folder also turns it back to clean after a commit (HEAD changes).
    println!("cargo:rerun-if-changed=src");
    // `--no-optional-locks`: do not refresh the index on disk, which
    // would change a watched file and rerun this script on every build.
    let dirty = git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}
