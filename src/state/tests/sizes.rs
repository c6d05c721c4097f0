//! Parity, continued: the sizes of snapshots, as the clouds' listings
//! give them, and the bytes a target keeps.

use super::*;

on_both!(
    sizes_are_recorded_read_back_and_overwritten,
    a_size_the_ledger_cannot_store_is_refused_and_nothing_is_written,
    bytes_kept_is_the_sum_only_when_every_kept_snapshot_has_a_size,
);

/// A run of `slot` on vol-1 with one available snapshot per id; their
/// ledger rows, in the order given.
async fn available(l: &dyn Ledger, slot: DateTime<Utc>, ids: &[&str]) -> Vec<i64> {
    let run = started(l, &new_run(slot), slot).await;
    let made: Vec<Created> = ids
        .iter()
        .map(|id| created(id, &format!("j-{id}")))
        .collect();
    let ops = l
        .record_created(run, &made, slot, plan(slot))
        .await
        .expect("record");
    let outcomes: Vec<(i64, Option<&str>)> = ops.iter().map(|o| (o.id, None)).collect();
    l.finish_ops(&outcomes, slot).await.expect("finish");
    l.set_run_state(run, RunState::Succeeded, None, slot)
        .await
        .expect("succeeded");
    ops.iter().map(|o| o.snapshot_row).collect()
}

/// Each row's size as `snapshot`, `live_snapshots` and `all_snapshots`
/// read it (they must agree).
async fn sizes(l: &dyn Ledger, rows: &[i64]) -> Vec<Option<u64>> {
    let live = l.live_snapshots("qc", "db", "vol-1").await.expect("live");
    let all = l.all_snapshots().await.expect("all");
    let mut out = Vec::new();
    for row in rows {
        let one = l.snapshot(*row).await.expect("one").size_bytes;
        let of = |rows: &[SnapshotRow]| rows.iter().find(|s| s.id == *row).map(|s| s.size_bytes);
        assert_eq!(of(&live), Some(one), "live_snapshots, row {row}");
        assert_eq!(of(&all), Some(one), "all_snapshots, row {row}");
        out.push(one);
    }
    out
}

async fn sizes_are_recorded_read_back_and_overwritten(l: &dyn Ledger) {
    let rows = available(l, t(0), &["ss-1", "ss-2", "ss-3"]).await;
    assert_eq!(sizes(l, &rows).await, vec![None, None, None]);

    // A row id the ledger does not have (a listing racing a trim) is
    // skipped; the others are recorded. Sizes past 4 GiB and up to
    // i64::MAX are kept whole.
    let big = i64::MAX as u64;
    l.record_sizes(&[(rows[0], 100), (999_999, 7), (rows[1], big)])
        .await
        .expect("record");
    assert_eq!(sizes(l, &rows).await, vec![Some(100), Some(big), None]);

    // A later listing overwrites; rows it does not name keep their size.
    l.record_sizes(&[(rows[0], 5_000_000_000), (rows[2], 0)])
        .await
        .expect("record again");
    assert_eq!(
        sizes(l, &rows).await,
        vec![Some(5_000_000_000), Some(big), Some(0)]
    );
    l.record_sizes(&[]).await.expect("nothing to record");
    assert_eq!(
        l.run_snapshots(1).await.expect("of run")[0].size_bytes,
        Some(5_000_000_000)
    );
}

async fn a_size_the_ledger_cannot_store_is_refused_and_nothing_is_written(l: &dyn Ledger) {
    let rows = available(l, t(0), &["ss-1", "ss-2"]).await;
    l.record_sizes(&[(rows[0], 10)]).await.expect("record");
    let err = l
        .record_sizes(&[(rows[0], 20), (rows[1], i64::MAX as u64 + 1)])
        .await
        .expect_err("a size above i64::MAX");
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
    assert_eq!(sizes(l, &rows).await, vec![Some(10), None]);
}

/// (snapshots_kept, bytes_kept) of db/vol-1, as `summaries` and
/// `target_summary` give them (they must agree).
async fn kept(l: &dyn Ledger) -> (u32, Option<u64>) {
    let all = l.summaries().await.expect("summaries");
    let one = l
        .target_summary("db", "vol-1")
        .await
        .expect("one")
        .expect("known");
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].snapshots_kept, all[0].bytes_kept),
        (one.snapshots_kept, one.bytes_kept),
        "summaries and target_summary agree"
    );
    (one.snapshots_kept, one.bytes_kept)
}

async fn bytes_kept_is_the_sum_only_when_every_kept_snapshot_has_a_size(l: &dyn Ledger) {
    // A target that ran and keeps nothing: no bytes, not 0.
    let run = started(l, &new_run(t(0)), t(0)).await;
    l.set_run_state(run, RunState::Failed, Some("x"), t(0))
        .await
        .expect("failed");
    assert_eq!(kept(l).await, (0, None));

    let rows = available(l, t(10), &["ss-1", "ss-2", "ss-3"]).await;
    assert_eq!(kept(l).await, (3, None), "no size recorded");
    l.record_sizes(&[(rows[0], 100), (rows[1], 20)])
        .await
        .expect("record");
    assert_eq!(kept(l).await, (3, None), "one kept snapshot has no size");

    // A deleted snapshot is not kept: neither its missing size nor a
    // recorded one counts.
    l.mark_deleted(rows[2], t(11)).await.expect("deleted");
    assert_eq!(kept(l).await, (2, Some(120)));
    l.record_sizes(&[(rows[2], 5)]).await.expect("record");
    assert_eq!(kept(l).await, (2, Some(120)));

    // A snapshot being deleted is still kept, as `snapshots_kept` counts.
    l.begin_delete(rows[1], "d-1", t(12), plan(t(12)))
        .await
        .expect("delete");
    assert_eq!(kept(l).await, (2, Some(120)));
    l.record_sizes(&[(rows[1], 1_000_000_000_000)])
        .await
        .expect("record");
    assert_eq!(kept(l).await, (2, Some(1_000_000_000_100)));
}
