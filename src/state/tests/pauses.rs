//! Parity, continued: the pauses an operator sets, and the slots skipped
//! on purpose.

use super::*;

on_both!(
    a_pause_is_replaced_keeping_its_start_and_lifted_once,
    every_policy_and_one_policy_are_distinct_pauses,
    pauses_in_force_leave_out_the_ended_and_list_every_policy_first,
    skipped_slots_are_recorded_once_with_their_reason,
    a_slot_skipped_or_begun_is_never_recorded_twice,
);

async fn a_pause_is_replaced_keeping_its_start_and_lifted_once(l: &dyn Ledger) {
    assert!(l.pauses(t(0)).await.expect("none yet").is_empty());
    // Kept to the millisecond, as every time of the ledger.
    let since = t(1) + chrono::Duration::nanoseconds(1_234_567);
    l.pause(Some("db"), "migration ✓", "ann", since, Some(t(50)))
        .await
        .expect("pause");
    let first = Pause {
        policy: Some("db".into()),
        reason: "migration ✓".into(),
        by: "ann".into(),
        since: t(1) + chrono::Duration::milliseconds(1),
        until: Some(t(50)),
    };
    assert_eq!(l.pauses(t(2)).await.expect("paused"), vec![first.clone()]);

    // Paused again: reason, by and until are the new ones (no end now),
    // the pause dates from the first.
    l.pause(Some("db"), "longer migration", "bob", t(10), None)
        .await
        .expect("pause again");
    let replaced = Pause {
        reason: "longer migration".into(),
        by: "bob".into(),
        until: None,
        ..first
    };
    assert_eq!(
        l.pauses(t(55)).await.expect("still paused"),
        vec![replaced.clone()]
    );

    assert_eq!(l.resume(Some("db")).await.expect("resume"), Some(replaced));
    assert!(l.pauses(t(11)).await.expect("lifted").is_empty());
    assert_eq!(l.resume(Some("db")).await.expect("resume again"), None);
    assert_eq!(l.resume(None).await.expect("nothing paused"), None);

    // The empty name is not a policy: refused, nothing written.
    let err = l
        .pause(Some(""), "typo", "ann", t(12), None)
        .await
        .expect_err("an empty policy name");
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
    assert!(l.pauses(t(12)).await.expect("none").is_empty());
}

async fn every_policy_and_one_policy_are_distinct_pauses(l: &dyn Ledger) {
    l.pause(None, "freeze week", "ann", t(1), None)
        .await
        .expect("pause all");
    l.pause(Some("db"), "migration", "bob", t(2), None)
        .await
        .expect("pause db");
    let all = Pause {
        policy: None,
        reason: "freeze week".into(),
        by: "ann".into(),
        since: t(1),
        until: None,
    };
    let db = Pause {
        policy: Some("db".into()),
        reason: "migration".into(),
        by: "bob".into(),
        since: t(2),
        until: None,
    };
    assert_eq!(
        l.pauses(t(3)).await.expect("both"),
        vec![all.clone(), db.clone()]
    );
    // Lifting every policy's pause leaves the policy's own, and the other
    // way round.
    assert_eq!(l.resume(None).await.expect("resume all"), Some(all.clone()));
    assert_eq!(l.pauses(t(3)).await.expect("db"), vec![db.clone()]);
    l.pause(None, "freeze week", "ann", t(1), None)
        .await
        .expect("pause all again");
    assert_eq!(l.resume(Some("db")).await.expect("resume db"), Some(db));
    assert_eq!(l.pauses(t(3)).await.expect("all"), vec![all]);
    assert_eq!(l.resume(Some("web")).await.expect("web never paused"), None);
}

async fn pauses_in_force_leave_out_the_ended_and_list_every_policy_first(l: &dyn Ledger) {
    // Policy names whose byte order differs from a natural collation's
    // (upper case before lower, "é" after "z").
    for (policy, until) in [
        (Some("zeta"), None),
        (Some("éclair"), None),
        (Some("Beta"), None),
        (Some("alpha"), Some(t(20))),
        (None, Some(t(30))),
        (Some("short"), Some(t(10))),
    ] {
        l.pause(policy, "why", "ann", t(0), until)
            .await
            .expect("pause");
    }
    let listed = |pauses: Vec<Pause>| -> Vec<Option<String>> {
        pauses.into_iter().map(|p| p.policy).collect()
    };
    let some = |p: &str| Some(p.to_string());
    assert_eq!(
        listed(l.pauses(t(5)).await.expect("at 5")),
        vec![
            None,
            some("Beta"),
            some("alpha"),
            some("short"),
            some("zeta"),
            some("éclair")
        ]
    );
    // A pause ends at its `until`: at that instant it is no longer in
    // force.
    assert_eq!(
        listed(l.pauses(t(10)).await.expect("at 10")),
        vec![
            None,
            some("Beta"),
            some("alpha"),
            some("zeta"),
            some("éclair")
        ]
    );
    assert_eq!(
        listed(l.pauses(t(30)).await.expect("at 30")),
        vec![some("Beta"), some("zeta"), some("éclair")]
    );
    // An ended pause may be removed (by a later pause) but never comes
    // back in force.
    l.pause(Some("zeta"), "again", "bob", t(31), None)
        .await
        .expect("pause at 31");
    assert_eq!(
        listed(l.pauses(t(31)).await.expect("at 31")),
        vec![some("Beta"), some("zeta"), some("éclair")]
    );
    assert_eq!(
        listed(l.pauses(t(0)).await.expect("at 0, after the removal")),
        vec![some("Beta"), some("zeta"), some("éclair")],
        "ended pauses are removed when a pause is written"
    );
}

async fn skipped_slots_are_recorded_once_with_their_reason(l: &dyn Ledger) {
    // vol-0 already ran its slot.
    let ran = started(
        l,
        &NewRun {
            target: "vol-0".into(),
            ..new_run(t(0))
        },
        t(0),
    )
    .await;
    let runs: Vec<NewRun> = (0..3)
        .map(|i| NewRun {
            target: format!("vol-{i}"),
            name: format!("db-vol-{i}-x"),
            ..new_run(t(0))
        })
        .collect();
    let why = "skipped: paused by ann: db migration";
    let now = t(2) + chrono::Duration::nanoseconds(7_654_321);
    assert_eq!(
        l.skip_runs(&runs, why, now).await.expect("skip"),
        vec![false, true, true]
    );
    // The run already recorded is as it was.
    let kept = l.run(ran).await.expect("the run that ran");
    assert_eq!((kept.state, kept.error), (RunState::Intent, None));
    for run in &runs[1..] {
        let rows = l.runs_for("db", &run.target, 10).await.expect("runs");
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!(
            (
                r.state,
                r.slot,
                r.name.as_str(),
                r.provider.as_str(),
                r.full,
                r.started_at,
                r.finished_at,
                r.error.as_deref()
            ),
            (
                RunState::Skipped,
                t(0),
                run.name.as_str(),
                "qc",
                true,
                t(2) + chrono::Duration::milliseconds(7),
                Some(t(2) + chrono::Duration::milliseconds(7)),
                Some(why)
            )
        );
        assert_eq!(
            l.newest_skipped("db", &run.target).await.expect("skipped"),
            Some((t(0), Some(why.to_string())))
        );
        // Skipped, not open: the target's next slot starts.
        assert!(matches!(
            l.begin_run(
                &NewRun {
                    slot: t(10),
                    ..run.clone()
                },
                t(10)
            )
            .await
            .expect("next slot"),
            Begin::Started(_)
        ));
    }
    // Skipping the same slots again records nothing.
    assert_eq!(
        l.skip_runs(&runs, "skipped: blackout", t(3))
            .await
            .expect("skip again"),
        vec![false, false, false]
    );
    assert_eq!(
        l.newest_skipped("db", "vol-1").await.expect("skipped"),
        Some((t(0), Some(why.to_string())))
    );
    // The targets it recorded are known to status.
    let summary = l
        .target_summary("db", "vol-2")
        .await
        .expect("summary")
        .expect("vol-2 is known");
    assert_eq!(summary.skipped, 1);
    assert!(l.skip_runs(&[], why, t(4)).await.expect("none").is_empty());
}

async fn a_slot_skipped_or_begun_is_never_recorded_twice(l: &dyn Ledger) {
    // Skipped, then begun: the begin finds it recorded.
    let first = new_run(t(0));
    assert_eq!(
        l.skip_runs(std::slice::from_ref(&first), "skipped: blackout", t(0))
            .await
            .expect("skip"),
        vec![true]
    );
    assert_eq!(
        l.begin_run(&first, t(1)).await.expect("begin"),
        Begin::AlreadyRecorded
    );
    assert_eq!(
        l.begin_runs(std::slice::from_ref(&first), t(1))
            .await
            .expect("begin many"),
        vec![Begin::AlreadyRecorded]
    );
    // Begun, then skipped: the skip leaves it alone.
    let second = new_run(t(10));
    let id = started(l, &second, t(10)).await;
    assert_eq!(
        l.skip_runs(std::slice::from_ref(&second), "skipped: paused", t(11))
            .await
            .expect("skip"),
        vec![false]
    );
    assert_eq!(l.run(id).await.expect("run").state, RunState::Intent);
    let slots: Vec<_> = l
        .runs_for("db", "vol-1", 10)
        .await
        .expect("runs")
        .into_iter()
        .map(|r| (r.slot, r.state))
        .collect();
    assert_eq!(
        slots,
        vec![(t(10), RunState::Intent), (t(0), RunState::Skipped)]
    );
}
