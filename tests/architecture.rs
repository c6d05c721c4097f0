//! The arrows ARCHITECTURE.md says must never exist, checked on the
//! production code of `src/` (unit tests may reach anywhere): a room's
//! files must not name the crate modules it may not depend on.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What a room may name of the crate.
enum May {
    /// Only these modules (and itself): anything else, also a module added
    /// later, is forbidden.
    Only(&'static [&'static str]),
    /// Anything but these.
    Never(&'static [&'static str]),
}

/// Each room and what it may depend on.
const RULES: &[(&str, May)] = &[
    // The shared vocabulary depends on nothing.
    ("domain", May::Only(&[])),
    // Retention is a pure function of the vocabulary and the calendar.
    ("retention", May::Only(&["domain", "schedule"])),
    ("schedule", May::Only(&["domain"])),
    // The simulator checks the clients: it shares nothing with them.
    ("sim", May::Only(&[])),
    // Config is read without knowing any cloud's client.
    (
        "config",
        May::Never(&[
            "commands",
            "daemon",
            "engine",
            "observe",
            "providers",
            "sim",
            "state",
        ]),
    ),
    // A cloud knows nothing of the engine, the ledger or the daemon.
    (
        "providers",
        May::Never(&["commands", "daemon", "engine", "retention", "sim", "state"]),
    ),
    // The engine knows the provider trait, never a cloud.
    (
        "engine",
        May::Never(&[
            "cli",
            "commands",
            "daemon",
            "sim",
            "providers::qingcloud",
            "providers::ucloudstack",
            "providers::lightsail",
            "providers::powervs",
            "providers::kakaocloud",
        ]),
    ),
    (
        "state",
        May::Never(&["commands", "daemon", "engine", "sim"]),
    ),
    (
        "observe",
        May::Never(&["commands", "daemon", "engine", "sim"]),
    ),
];

impl May {
    /// Whether a room may name `crate::path`; if not, the forbidden part.
    fn forbids(&self, room: &str, path: &str) -> Option<String> {
        let top = path.split("::").next().unwrap_or(path);
        match self {
            May::Only(allowed) => (top != room && !allowed.contains(&top)).then(|| top.to_string()),
            May::Never(never) => never
                .iter()
                .find(|m| path == **m || path.starts_with(&format!("{m}::")))
                .map(|m| m.to_string()),
        }
    }
}

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
    for (room, may) in RULES {
        let files = room_files(room);
        assert!(!files.is_empty(), "room {room} has no files");
        for file in files {
            let text = fs::read_to_string(&file).expect("read a source file");
            for (n, code) in production_lines(&text) {
                for path in crate_paths(code) {
                    if let Some(bad) = may.forbids(room, &path) {
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

#[test]
fn an_allow_list_forbids_modules_added_later() {
    let only = May::Only(&["domain"]);
    assert_eq!(only.forbids("schedule", "domain::Period"), None);
    assert_eq!(only.forbids("schedule", "schedule::waker"), None);
    assert_eq!(
        only.forbids("schedule", "someday::Thing"),
        Some("someday".to_string())
    );
    let never = May::Never(&["providers::qingcloud"]);
    assert_eq!(never.forbids("engine", "providers::Provider"), None);
    assert_eq!(
        never.forbids("engine", "providers::qingcloud::QingCloud"),
        Some("providers::qingcloud".to_string())
    );
}
