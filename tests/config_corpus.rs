//! The config corpus: every file under `tests/configs/invalid/` must fail to
//! load with exactly the problems its `# expect: LINE:COLUMN: text` header
//! lines announce; every file under `tests/configs/valid/` and the shipped
//! `config/example.toml` must load, with exactly the warnings announced by
//! `# warn: LINE:COLUMN: text` lines.

use std::path::{Path, PathBuf};

use snapwarden::config;

/// The environment variable the corpus files name as their secret. Files
/// testing a missing variable use another name that is never set.
const SECRET_ENV: &str = "SNAPWARDEN_CORPUS_SECRET";
const SECRET_VALUE: &str = "corpus-secret-value-never-shown";

fn set_env() {
    // Edition 2021: `set_var` is safe; every test sets the same value, and
    // nothing in these tests reads the variable while it changes.
    std::env::set_var(SECRET_ENV, SECRET_VALUE);
    std::env::set_var("QY_SECRET_ACCESS_KEY", SECRET_VALUE);
    std::env::set_var("UCS_PRIVATE_KEY", SECRET_VALUE);
    std::env::set_var("KC_SECRET_ACCESS_KEY", SECRET_VALUE);
    std::env::set_var("IBMCLOUD_API_KEY", SECRET_VALUE);
    std::env::remove_var("SNAPWARDEN_CORPUS_NEVER_SET");
}

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// One `# expect: LINE:COLUMN: text` line.
#[derive(Debug)]
struct Expectation {
    line: usize,
    column: usize,
    text: String,
}

/// The `# expect:` (problem) or `# warn:` (warning) lines in the leading
/// comment block of a file.
fn expectations(text: &str, file: &Path, prefix: &str) -> Vec<Expectation> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| {
            let rest = rest.trim_start();
            let mut parts = rest.splitn(3, ':');
            let parse = |s: Option<&str>| -> usize {
                s.and_then(|s| s.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{}: malformed expect line: {rest}", file.display()))
            };
            let line = parse(parts.next());
            let column = parse(parts.next());
            let text = parts.next().unwrap_or_default().trim().to_string();
            Expectation { line, column, text }
        })
        .collect()
}

/// Whether one of `found` is at the expected position with the text.
fn announced(found: &[String], exp: &Expectation) -> bool {
    found.iter().any(|p| {
        split_problem(p).is_some_and(|(line, column, message)| {
            line == exp.line && column == exp.column && message.contains(&exp.text)
        })
    })
}

/// `FILE:LINE:COLUMN: message` -> (line, column, message). The file part is
/// matched loosely: it may contain ':' only on exotic systems.
fn split_problem(problem: &str) -> Option<(usize, usize, &str)> {
    let (head, message) = problem.split_once(": ")?;
    let mut it = head.rsplitn(3, ':');
    let column = it.next()?.parse().ok()?;
    let line = it.next()?.parse().ok()?;
    Some((line, column, message))
}

#[test]
fn every_invalid_config_fails_with_the_announced_problems() {
    set_env();
    let files = corpus("invalid");
    assert!(
        files.len() >= 25,
        "the invalid corpus shrank to {} files",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("corpus file readable");
        let expected = expectations(&text, file, "# expect:");
        let problems = match config::load(file) {
            Ok(_) => {
                failures.push(format!("{}: loaded, but must fail", file.display()));
                continue;
            }
            Err(e) => e.problems,
        };
        let shown = problems.join("\n    ");
        if expected.is_empty() {
            failures.push(format!(
                "{}: no `# expect:` lines; it reports:\n    {shown}",
                file.display()
            ));
            continue;
        }
        for p in &problems {
            assert!(
                p.starts_with(&file.display().to_string()),
                "{p} does not name its file"
            );
            assert!(!p.contains(SECRET_VALUE), "{p} shows the secret");
        }
        for exp in &expected {
            if !announced(&problems, exp) {
                failures.push(format!(
                    "{}: expected {}:{}: {:?}; it reports:\n    {shown}",
                    file.display(),
                    exp.line,
                    exp.column,
                    exp.text
                ));
            }
        }
        if problems.len() != expected.len() {
            failures.push(format!(
                "{}: {} problems expected, {} reported:\n    {shown}",
                file.display(),
                expected.len(),
                problems.len()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_valid_config_loads() {
    set_env();
    let files = corpus("valid");
    assert!(!files.is_empty());
    for file in &files {
        let text = std::fs::read_to_string(file).expect("corpus file readable");
        let c = config::load(file).unwrap_or_else(|e| panic!("{}:\n{e}", file.display()));
        assert!(!c.policies.is_empty());
        // The mode of a checked-out secret file depends on the umask, so
        // that one warning is allowed without being announced.
        let warnings: Vec<String> = c
            .warnings
            .into_iter()
            .filter(|w| !w.contains("readable by group or others"))
            .collect();
        let expected = expectations(&text, file, "# warn:");
        for exp in &expected {
            assert!(
                announced(&warnings, exp),
                "{}: expected warning {}:{}: {:?}; got {warnings:#?}",
                file.display(),
                exp.line,
                exp.column,
                exp.text
            );
        }
        assert_eq!(
            warnings.len(),
            expected.len(),
            "{}: unexpected warnings {warnings:#?}",
            file.display()
        );
    }
}

#[test]
fn the_shipped_example_loads_without_warnings() {
    set_env();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let c = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    // One section per supported kind; QingCloud's policies come first.
    assert!(c.providers.contains_key("qc-prod"));
    let names: Vec<&str> = c.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names[..2], ["db-nightly", "web-weekly"]);
    assert_eq!(c.policies[0].resource, "volume");
    assert_eq!(c.policies[1].resource, "instance");
    let hooks = c.policies[0].hooks.as_ref().expect("db-nightly has hooks");
    assert_eq!(hooks.pre.as_ref().map(|p| p[1].as_str()), Some("--freeze"));
    assert!(!format!("{c:?}").contains(SECRET_VALUE));
}

#[test]
fn an_unreadable_file_is_one_problem_without_position() {
    let e = config::load(Path::new("/nonexistent/snapwarden.toml")).expect_err("no such file");
    assert_eq!(e.problems.len(), 1);
    assert!(e.problems[0].starts_with("/nonexistent/snapwarden.toml: cannot read"));
}

#[test]
fn the_demo_config_loads_without_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let text = std::fs::read_to_string(&path).expect("read demo.toml");
    let env = |name: &str| {
        matches!(name, "SNAPWARDEN_DEMO_SECRET" | "SNAPWARDEN_DEMO_UCS_KEY")
            .then(|| "demo-secret".to_string())
    };
    let c = config::load_with_env(&text, &path, &env).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    // QingCloud demo policy first; each other kind appends its own.
    assert_eq!(c.policies[0].name, "db-demo");
    assert_eq!(c.policies[0].rules.retain, Some(3));
    assert_eq!(c.policies[0].schedule.expr(), "*/5 * * * * *");
}
