//! The arrows ARCHITECTURE.md says must never exist, checked on the
//! production code of `src/` (unit tests may reach anywhere): a room's
//! files must not name the crate modules it may not depend on.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Each room and the crate modules it must never name.
const NEVER: &[(&str, &[&str])] = &[
    // The shared vocabulary depends on nothing.
    (
        "domain",
        &[
            "cli",
            "commands",
            "config",
            "daemon",
            "engine",
            "observe",
            "providers",
            "retention",
            "schedule",
            "shutdown",
            "sim",
            "state",
        ],
    ),
    // Retention is a pure function of the vocabulary and the calendar.
    (
        "retention",
        &[
            "cli",
            "commands",
            "config",
            "daemon",
            "engine",
            "observe",
            "providers",
            "sim",
            "state",
        ],
    ),
    (
        "schedule",
        &[
            "cli",
            "commands",
            "config",
            "daemon",
            "engine",
            "observe",
            "providers",
            "retention",
            "sim",
            "state",
        ],
    ),
    // Config is read without knowing any cloud's client.
    (
        "config",
        &[
            "commands",
            "daemon",
            "engine",
            "observe",
            "providers",
            "sim",
            "state",
        ],
    ),
    // A cloud knows nothing of the engine, the ledger or the daemon.
    (
        "providers",
        &["commands", "daemon", "engine", "retention", "sim", "state"],
    ),
    // The engine knows the provider trait, never a cloud.
    (
        "engine",
        &[
            "cli",
            "commands",
            "daemon",
            "sim",
            "providers::qingcloud",
            "providers::ucloudstack",
            "providers::lightsail",
            "providers::powervs",
            "providers::kakaocloud",
        ],
    ),
    ("state", &["commands", "daemon", "engine", "sim"]),
    ("observe", &["commands", "daemon", "engine", "sim"]),
    // The simulator checks the clients: it shares nothing with them.
    (
        "sim",
        &[
            "cli",
            "commands",
            "config",
            "daemon",
            "domain",
            "engine",
            "observe",
            "providers",
            "retention",
            "schedule",
            "state",
        ],
    ),
];

/// A room's production files (`src/room.rs` and `src/room/**`), without
/// test files.
fn room_files(room: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let single = src.join(format!("{room}.rs"));
    if single.is_file() {
        out.push(single);
    }
    let mut dirs = vec![src.join(room)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".rs") && name != "tests.rs" && name != "fake.rs" {
                out.push(path);
            }
        }
    }
    out
}

/// The lines of `text` outside `#[cfg(test)]` items and comments.
fn production_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut skip_depth: Option<i64> = None;
    let mut pending_test = false;
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if let Some(depth) = skip_depth.as_mut() {
            *depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if line.trim_start().starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        if pending_test {
            if line.trim_start().starts_with("#[") {
                continue;
            }
            pending_test = false;
            let depth = code.matches('{').count() as i64 - code.matches('}').count() as i64;
            if depth > 0 {
                skip_depth = Some(depth);
            }
            continue;
        }
        if line.trim_start().starts_with("//") {
            continue;
        }
        out.push((n + 1, code));
    }
    out
}

/// Every `crate::a::b` path a line names, also inside grouped imports
/// (`use crate::{a, b::c}`).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            out.extend(inner.split(',').map(|p| p.trim().to_string()));
        } else {
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path);
        }
    }
    out
}

#[test]
fn no_room_depends_on_what_it_must_not() {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (room, never) in NEVER {
        let files = room_files(room);
        assert!(!files.is_empty(), "room {room} has no files");
        for file in files {
            let text = fs::read_to_string(&file).expect("read a source file");
            for (n, code) in production_lines(&text) {
                for path in crate_paths(code) {
                    if let Some(bad) = never
                        .iter()
                        .find(|m| path == **m || path.starts_with(&format!("{m}::")))
                    {
                        found
                            .entry(format!("{room} → {bad}"))
                            .or_default()
                            .push(format!("{}:{n}", file.display()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "arrows that must never exist (see ARCHITECTURE.md): {found:#?}"
    );
}

#[test]
fn the_checker_sees_grouped_imports_and_skips_tests() {
    assert_eq!(
        crate_paths("use crate::{engine::Engine, state};"),
        vec!["engine::Engine", "state"]
    );
    let text = "use crate::state::State;\n#[cfg(test)]\nmod tests {\n    use crate::engine;\n}\n// crate::daemon\nfn f() {}\n";
    let lines: Vec<&str> = production_lines(text).into_iter().map(|(_, l)| l).collect();
    assert_eq!(lines, vec!["use crate::state::State;", "fn f() {}"]);
}
