//! Parity, continued: the audit trail.

use super::*;

on_both!(
    audit_entries_read_back_oldest_first_from_a_time,
    the_policy_filter_keeps_entries_of_no_policy,
    audit_entries_outlive_the_run_history,
);

fn entry(at: DateTime<Utc>, action: AuditAction, policy: Option<&str>, detail: &str) -> AuditEntry {
    AuditEntry {
        at,
        actor: "daemon (node a)".into(),
        action,
        policy: policy.map(str::to_string),
        target: policy.map(|_| "vol-1".to_string()),
        snapshot: policy.map(|_| "ss-1".to_string()),
        detail: detail.into(),
    }
}

async fn audit_entries_read_back_oldest_first_from_a_time(l: &dyn Ledger) {
    assert!(l.audit_log(t(0), None).await.expect("none yet").is_empty());
    l.record_audit(&[]).await.expect("nothing to record");
    assert!(l
        .audit_log(t(0), None)
        .await
        .expect("still none")
        .is_empty());

    // Kept to the millisecond, as every time of the ledger; each action
    // reads back as itself; entries of one time keep the order recorded.
    let odd = t(1) + chrono::Duration::nanoseconds(1_234_567);
    let mut entries: Vec<AuditEntry> = AuditAction::ALL
        .into_iter()
        .map(|a| entry(t(5), a, Some("db"), &format!("{a} ✓")))
        .collect();
    entries.push(entry(odd, AuditAction::Pause, None, "freeze"));
    l.record_audit(&entries).await.expect("record");
    l.record_audit(&[entry(
        t(3),
        AuditAction::Resume,
        None,
        "resumed (was: freeze)",
    )])
    .await
    .expect("record one");

    let all = l.audit_log(t(0), None).await.expect("all");
    let mut want = vec![
        AuditEntry {
            at: t(1) + chrono::Duration::milliseconds(1),
            ..entries[8].clone()
        },
        entry(t(3), AuditAction::Resume, None, "resumed (was: freeze)"),
    ];
    want.extend(entries[..8].iter().cloned());
    assert_eq!(all, want);

    // `since` is inclusive.
    let from_3 = l.audit_log(t(3), None).await.expect("from 3");
    assert_eq!(from_3, want[1..].to_vec());
    let from_4 = l.audit_log(t(4), None).await.expect("from 4");
    assert_eq!(from_4, want[2..].to_vec());
    assert!(l.audit_log(t(6), None).await.expect("later").is_empty());
}

async fn the_policy_filter_keeps_entries_of_no_policy(l: &dyn Ledger) {
    let entries = [
        entry(t(1), AuditAction::Create, Some("db"), "slot of db"),
        entry(t(2), AuditAction::Pause, None, "every policy"),
        entry(t(3), AuditAction::Delete, Some("web"), "beyond keep_last 1"),
        entry(t(4), AuditAction::Delete, Some("db"), "beyond keep_last 1"),
    ];
    l.record_audit(&entries).await.expect("record");
    assert_eq!(
        l.audit_log(t(0), Some("db")).await.expect("db"),
        vec![entries[0].clone(), entries[1].clone(), entries[3].clone()]
    );
    assert_eq!(
        l.audit_log(t(0), Some("web")).await.expect("web"),
        vec![entries[1].clone(), entries[2].clone()]
    );
    assert_eq!(
        l.audit_log(t(0), Some("none"))
            .await
            .expect("no such policy"),
        vec![entries[1].clone()]
    );
    assert_eq!(
        l.audit_log(t(3), Some("db")).await.expect("db from 3"),
        vec![entries[3].clone()]
    );
}

async fn audit_entries_outlive_the_run_history(l: &dyn Ledger) {
    // Trim's audit horizon is measured from the real clock.
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    let old = entry(
        days(AUDIT_HISTORY_DAYS + 1),
        AuditAction::Create,
        Some("db"),
        "old",
    );
    let kept = entry(
        days(AUDIT_HISTORY_DAYS - 1),
        AuditAction::Delete,
        Some("db"),
        "kept",
    );
    let recent = entry(days(1), AuditAction::Pause, None, "recent");
    l.record_audit(&[old.clone(), kept.clone(), recent.clone()])
        .await
        .expect("record");

    // A run history of a day goes far later than the audit's horizon:
    // only the entry older than it goes.
    let trimmed = l.trim(days(0)).await.expect("trim");
    assert_eq!(trimmed.audit, 1);
    let left: Vec<String> = l
        .audit_log(days(AUDIT_HISTORY_DAYS * 2), None)
        .await
        .expect("left")
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert_eq!(left, vec!["kept", "recent"]);

    // A run history longer than the audit's horizon keeps the audit as
    // long.
    let between = entry(
        days(AUDIT_HISTORY_DAYS + 100),
        AuditAction::Restore,
        Some("db"),
        "between",
    );
    l.record_audit(std::slice::from_ref(&between))
        .await
        .expect("record");
    let trimmed = l.trim(days(AUDIT_HISTORY_DAYS * 3)).await.expect("trim");
    assert_eq!(trimmed.audit, 0);
    assert_eq!(
        l.audit_log(days(AUDIT_HISTORY_DAYS * 2), None)
            .await
            .expect("left")
            .len(),
        3
    );
}
