use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn cx() -> HookContext {
    HookContext {
        policy: "db".into(),
        target: "vol-1".into(),
        slot: "2026-01-01T00:00:00Z".into(),
        snapshot_name: "sw-db-vol-1-20260101T000000Z".into(),
        provider: "qc".into(),
        resource: "volume".into(),
    }
}

/// A shell script in `dir` as a hook's command.
fn script(dir: &Path, name: &str, body: &str) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    let mut perms = std::fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("chmod");
    vec![path.to_string_lossy().into_owned()]
}

fn hook(argv: &[String], timeout: Duration) -> Hook<'_> {
    Hook {
        argv,
        timeout,
        scrub_env: &[],
    }
}

#[tokio::test]
async fn a_hook_is_told_its_run_and_phase_in_its_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let argv = script(
        dir.path(),
        "h",
        &format!(
            "env | grep -E '^SNAPWARDEN_(POLICY|TARGET|SLOT|SNAPSHOT_NAME|PROVIDER|RESOURCE|PHASE|OUTCOME)=' \
             | sort > {}; echo \"args: $*\" >> {}",
            out.display(),
            out.display()
        ),
    );
    let mut with_args = argv.clone();
    with_args.extend(["one".to_string(), "two words".to_string()]);
    hook(&with_args, Duration::from_secs(10))
        .run(Phase::Post, &cx(), Some(Outcome::Accepted))
        .await
        .expect("the hook succeeds");
    let seen = std::fs::read_to_string(&out).expect("the hook wrote");
    assert_eq!(
        seen,
        "SNAPWARDEN_OUTCOME=accepted\n\
         SNAPWARDEN_PHASE=post\n\
         SNAPWARDEN_POLICY=db\n\
         SNAPWARDEN_PROVIDER=qc\n\
         SNAPWARDEN_RESOURCE=volume\n\
         SNAPWARDEN_SLOT=2026-01-01T00:00:00Z\n\
         SNAPWARDEN_SNAPSHOT_NAME=sw-db-vol-1-20260101T000000Z\n\
         SNAPWARDEN_TARGET=vol-1\n\
         args: one two words\n"
    );
}

#[tokio::test]
async fn a_pre_hook_has_no_outcome_and_never_sees_a_scrubbed_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let argv = script(
        dir.path(),
        "h",
        &format!(
            "echo \"outcome=${{SNAPWARDEN_OUTCOME-unset}} path=${{PATH:+set}} secret=${{SW_TEST_SECRET_FOR_HOOKS-unset}}\" > {}",
            out.display()
        ),
    );
    // Set for the whole test process: a variable no other test reads.
    std::env::set_var("SW_TEST_SECRET_FOR_HOOKS", "hunter2");
    let scrub = ["SW_TEST_SECRET_FOR_HOOKS".to_string()];
    Hook {
        argv: &argv,
        timeout: Duration::from_secs(10),
        scrub_env: &scrub,
    }
    .run(Phase::Pre, &cx(), None)
    .await
    .expect("the hook succeeds");
    let seen = std::fs::read_to_string(&out).expect("the hook wrote");
    assert_eq!(seen, "outcome=unset path=set secret=unset\n");
}

#[tokio::test]
async fn a_failing_hook_is_an_error_naming_its_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let argv = script(dir.path(), "h", "echo frozen? no >&2; exit 3");
    let e = hook(&argv, Duration::from_secs(10))
        .run(Phase::Pre, &cx(), None)
        .await
        .expect_err("exit 3 is a failure");
    let text = e.to_string();
    assert!(matches!(e, HookError::Failed { .. }), "{e:?}");
    assert!(
        text.contains("pre hook") && text.contains("exit status: 3"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_program_cannot_start() {
    let argv = vec!["/nonexistent/snapwarden-hook".to_string()];
    let e = hook(&argv, Duration::from_secs(10))
        .run(Phase::Post, &cx(), Some(Outcome::Failed))
        .await
        .expect_err("no such program");
    assert!(matches!(e, HookError::Spawn { .. }), "{e:?}");
    assert!(
        e.to_string().contains("/nonexistent/snapwarden-hook"),
        "{e}"
    );
}

#[tokio::test]
async fn a_hanging_hook_and_its_children_are_killed_at_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("child.pid");
    // The hook starts a child that would outlive it, then hangs.
    let argv = script(
        dir.path(),
        "h",
        &format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display()),
    );
    let started = Instant::now();
    let e = hook(&argv, Duration::from_millis(500))
        .run(Phase::Pre, &cx(), None)
        .await
        .expect_err("killed at its timeout");
    assert!(matches!(e, HookError::TimedOut { .. }), "{e:?}");
    assert!(e.to_string().contains("500ms"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let child: i32 = std::fs::read_to_string(&pidfile)
        .expect("the hook wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid");
    // The child was killed with its group (it may linger as a zombie of
    // init for a moment: gone or a zombie both count).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        if stat.is_empty() || state == Some("Z") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hook's child {child} still runs: {stat}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hook_whose_child_keeps_the_output_open_still_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The child holds stdout open long after the hook itself has exited.
    let argv = script(dir.path(), "h", "sleep 5 & echo done");
    let started = Instant::now();
    hook(&argv, Duration::from_secs(10))
        .run(Phase::Post, &cx(), Some(Outcome::Accepted))
        .await
        .expect("the hook itself succeeded");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited on the child: {:?}",
        started.elapsed()
    );
}
