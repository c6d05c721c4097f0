//! KakaoCloud's snapshots in the engine's words: the description marker,
//! per-volume names, states, operation status and incremental chains.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::wire::Snapshot;
use crate::providers::{
    parse_slot_label, ChainInfo, OpKind, OpStatus, RemoteSnapshot, SnapshotState,
};

/// The description that marks a snapshot as snapwarden's.
pub fn marker_text(policy: &str, target: &str, slot: DateTime<Utc>) -> String {
    format!(
        "{}{}",
        marker_prefix(policy, target),
        crate::domain::slot_label(slot)
    )
}

fn marker_prefix(policy: &str, target: &str) -> String {
    format!("snapwarden policy={policy} target={target} slot=")
}

/// The slot of a description that is exactly our marker for `policy` and
/// `target`, and nothing else but a hold mark after it.
pub fn marker_slot(description: Option<&str>, policy: &str, target: &str) -> Option<DateTime<Utc>> {
    if policy.is_empty() || target.is_empty() {
        return None;
    }
    crate::providers::without_hold(description?)
        .strip_prefix(&marker_prefix(policy, target))
        .and_then(parse_slot_label)
}

pub(super) fn marker_of(description: Option<&str>, policy: &str, target: &str) -> bool {
    marker_slot(description, policy, target).is_some()
}

/// `{name}-{volume_id}`: one name per volume of an instance target.
pub fn volume_snapshot_name(name: &str, volume_id: &str) -> String {
    format!("{name}-{volume_id}")
}

/// `available` → Available, `error` → Failed, `deleting` → Deleting;
/// `creating`, `restoring` and anything unknown → Creating, never
/// Available.
/// A listed snapshot of `volume` in the engine's words; `by_id` is the
/// volume's listing (for the chain).
pub(super) fn remote_snapshot(
    s: &Snapshot,
    by_id: &HashMap<&str, &Snapshot>,
    volume: &str,
    policy: &str,
    target: &str,
) -> RemoteSnapshot {
    RemoteSnapshot {
        id: s.id.clone(),
        name: s.name.clone().unwrap_or_default(),
        source: s.volume_id.clone().unwrap_or_else(|| volume.to_string()),
        created_at: s.created_at(),
        state: snapshot_state(s.status.as_deref()),
        marker_slot: marker_slot(s.description.as_deref(), policy, target),
        chain: chain_info(s, by_id),
        cloud_id: None,
        size_bytes: s.real_size.and_then(|b| u64::try_from(b).ok()),
    }
}

pub(super) fn snapshot_state(status: Option<&str>) -> SnapshotState {
    match status.unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "available" => SnapshotState::Available,
        "error" => SnapshotState::Failed,
        "deleting" => SnapshotState::Deleting,
        "deleted" => SnapshotState::Gone,
        _ => SnapshotState::Creating,
    }
}

/// Where a create or delete stands, from a GET of the snapshot.
pub(super) fn op_status(kind: OpKind, id: &str, snapshot: Option<&Snapshot>) -> OpStatus {
    let pending = OpStatus::Pending { progress: None };
    let status = snapshot
        .and_then(|s| s.status.as_deref())
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match (kind, snapshot) {
        // Right after create the snapshot may not be visible yet (the
        // official provider retries 404s); the policy timeout bounds this.
        (OpKind::Create, None) => pending,
        (OpKind::Create, Some(_)) => match status.as_str() {
            "available" => OpStatus::Succeeded,
            "error" => OpStatus::Failed {
                reason: format!("snapshot {id} ended in status error"),
            },
            "deleting" | "deleted" => OpStatus::Failed {
                reason: format!("snapshot {id} is {status} before it became available"),
            },
            _ => pending,
        },
        (OpKind::Delete, None) => OpStatus::Succeeded,
        (OpKind::Delete, Some(_)) => match status.as_str() {
            "deleted" => OpStatus::Succeeded,
            "error" => OpStatus::Failed {
                reason: format!("snapshot {id} went to status error instead of being deleted"),
            },
            _ => pending,
        },
        (OpKind::Restore, _) => OpStatus::Failed {
            reason: "a restore is followed by its volume".to_string(),
        },
    }
}

/// Chain facts: a snapshot is full when `is_incremental` is false (or,
/// when the field is absent, when it has no parent). The root is found by
/// walking `parent_id` through the same volume's listing; an incremental
/// without a parent cannot be described and gets no chain info (the
/// listing then keeps everything older with it, see
/// [`super::chains::protect_unknown_chains`]).
pub(super) fn chain_info(s: &Snapshot, by_id: &HashMap<&str, &Snapshot>) -> Option<ChainInfo> {
    let parent = non_empty(s.parent_id.as_deref());
    let full = match (s.is_incremental, &parent) {
        (Some(inc), _) => !inc,
        (None, p) => p.is_none(),
    };
    if full {
        return Some(ChainInfo {
            full: true,
            root_id: s.id.clone(),
            parent_id: None,
        });
    }
    let parent = parent?;
    let mut root = parent.clone();
    let mut steps = 0;
    while let Some(p) = by_id.get(root.as_str()) {
        let is_full = match (p.is_incremental, non_empty(p.parent_id.as_deref())) {
            (Some(inc), _) => !inc,
            (None, pp) => pp.is_none(),
        };
        match non_empty(p.parent_id.as_deref()) {
            Some(next) if !is_full && steps < by_id.len() => {
                root = next;
                steps += 1;
            }
            _ => break,
        }
    }
    Some(ChainInfo {
        full: false,
        root_id: root,
        parent_id: Some(parent),
    })
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Distinct non-empty values in first-seen order.
pub(super) fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .filter(|v| !v.is_empty() && seen.insert(*v))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn unknown_or_missing_status_is_never_available() {
        for raw in [
            Some("weird"),
            Some(""),
            None,
            Some("backing-up"),
            Some("availabl"),
        ] {
            assert_eq!(snapshot_state(raw), SnapshotState::Creating, "{raw:?}");
        }
        assert_eq!(snapshot_state(Some("AVAILABLE")), SnapshotState::Available);
        assert_eq!(snapshot_state(Some("error")), SnapshotState::Failed);
    }
}
