//! Parity, continued: the post hooks owed (a thaw is never lost).

use super::*;

on_both!(
    an_owed_post_hook_is_listed_until_it_ran,
    owed_post_hooks_are_listed_oldest_first,
    trimming_keeps_a_run_that_owes_a_post_hook,
);

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

async fn an_owed_post_hook_is_listed_until_it_ran(l: &dyn Ledger) {
    let run = NewRun {
        name: "db-vol-1-20260101".into(),
        ..new_run(t(0))
    };
    let id = started(l, &run, t(0)).await;
    assert!(l.post_hooks_owed().await.expect("none yet").is_empty());
    let thaw = argv(&[
        "/usr/sbin/fsfreeze",
        "--unfreeze",
        "/srv/data dir",
        "données ✓ 雪",
    ]);
    // Kept to the millisecond, as every time of the ledger.
    let since = t(1) + chrono::Duration::nanoseconds(1_234_567);
    l.owe_post_hook(id, &thaw, "disk-1 (/srv/data)", since)
        .await
        .expect("owe");
    let want = OwedHook {
        run_id: id,
        policy: "db".into(),
        target: "vol-1".into(),
        provider: "qc".into(),
        slot: t(0),
        name: "db-vol-1-20260101".into(),
        resource: "disk-1 (/srv/data)".into(),
        command: thaw,
        since: t(1) + chrono::Duration::milliseconds(1),
    };
    assert_eq!(l.post_hooks_owed().await.expect("owed"), vec![want.clone()]);

    // Recorded again (a retried freeze, a changed configuration): the
    // command and resource are the new ones, the debt dates from the first.
    let again = argv(&["thaw", "--all"]);
    l.owe_post_hook(id, &again, "disk-2", t(5))
        .await
        .expect("owe again");
    assert_eq!(
        l.post_hooks_owed().await.expect("owed"),
        vec![OwedHook {
            command: again,
            resource: "disk-2".into(),
            ..want
        }]
    );

    // An empty argv is refused and writes nothing.
    let err = l
        .owe_post_hook(id, &[], "disk-3", t(6))
        .await
        .expect_err("an empty command");
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
    assert_eq!(
        l.post_hooks_owed().await.expect("owed")[0].resource,
        "disk-2"
    );

    assert!(l.post_hook_ran(id).await.expect("ran"));
    assert!(l.post_hooks_owed().await.expect("owed").is_empty());
    assert!(!l.post_hook_ran(id).await.expect("ran again"));
    assert!(!l.post_hook_ran(999).await.expect("no such run"));
}

async fn owed_post_hooks_are_listed_oldest_first(l: &dyn Ledger) {
    let mut ids = Vec::new();
    for target in ["vol-a", "vol-b", "vol-c"] {
        let run = NewRun {
            target: target.into(),
            ..new_run(t(0))
        };
        ids.push(started(l, &run, t(0)).await);
    }
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    // Recorded out of order; b and c owe since the same time (then by
    // run id).
    l.owe_post_hook(c, &argv(&["post-c"]), "c", t(1))
        .await
        .expect("c");
    l.owe_post_hook(a, &argv(&["post-a"]), "a", t(2))
        .await
        .expect("a");
    l.owe_post_hook(b, &argv(&["post-b"]), "b", t(1))
        .await
        .expect("b");
    let order: Vec<_> = l
        .post_hooks_owed()
        .await
        .expect("owed")
        .into_iter()
        .map(|h| (h.run_id, h.target, h.command))
        .collect();
    assert_eq!(
        order,
        vec![
            (b, "vol-b".to_string(), argv(&["post-b"])),
            (c, "vol-c".to_string(), argv(&["post-c"])),
            (a, "vol-a".to_string(), argv(&["post-a"])),
        ]
    );
}

/// A run long finished whose post hook never ran (the daemon died in
/// between) is not history: a trim past it keeps it, so the restart
/// finds its thaw; once the hook ran, the next trim takes it.
async fn trimming_keeps_a_run_that_owes_a_post_hook(l: &dyn Ledger) {
    let day = |d: u32| t(0) + chrono::Duration::days(d as i64);
    let mut ids = Vec::new();
    for d in 0..3u32 {
        let id = started(l, &new_run(day(d)), day(d)).await;
        l.set_run_state(id, RunState::Succeeded, None, day(d))
            .await
            .expect("succeeded");
        ids.push(id);
    }
    l.owe_post_hook(ids[0], &argv(&["thaw"]), "vol-1", day(0))
        .await
        .expect("owe");
    // Days 0 and 1 are older than the newest success (day 2): both would
    // go, but day 0 still owes its thaw.
    let trimmed = l.trim(day(10)).await.expect("trim");
    assert_eq!(trimmed.runs, 1);
    let slots: Vec<_> = l
        .runs_for("db", "vol-1", 10)
        .await
        .expect("runs")
        .iter()
        .map(|r| r.slot)
        .collect();
    assert_eq!(slots, vec![day(2), day(0)]);
    let owed = l.post_hooks_owed().await.expect("owed");
    assert_eq!(
        owed.iter().map(|h| (h.run_id, h.slot)).collect::<Vec<_>>(),
        vec![(ids[0], day(0))]
    );

    assert!(l.post_hook_ran(ids[0]).await.expect("ran"));
    assert_eq!(l.trim(day(10)).await.expect("trim again").runs, 1);
    assert_eq!(l.runs_for("db", "vol-1", 10).await.expect("runs").len(), 1);
}
