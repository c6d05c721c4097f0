//! Fail-safe chain facts for listings whose API leaves an incremental
//! snapshot's parent out (QingCloud without `parent_id`, KakaoCloud with
//! `is_incremental` and no `parent_id`): retention must still keep what
//! such a snapshot may depend on, since deleting that would cascade into
//! it (or break it).

use super::{ChainInfo, RemoteSnapshot, SnapshotState};

/// Fail-safe for snapshots whose chain the API did not describe (an
/// incremental without a parent, or of unknown type): such a snapshot may
/// hang on any older point of its resource (chains branch after a
/// rollback), and deleting that point would cascade into it. So per
/// source, every listed snapshot up to the newest undescribed one (oldest
/// first; no creation time counts as newest) is linked to the one before
/// it: whatever retention keeps there keeps everything older, and
/// deletions among them go newest first. Later snapshots keep their own
/// chains. Only for kinds whose every snapshot has chain facts (`None`
/// here means "not described", not "no chains").
pub(crate) fn protect_unknown_chains(listed: &mut [RemoteSnapshot]) {
    let mut sources: Vec<&str> = listed.iter().map(|s| s.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let sources: Vec<String> = sources.into_iter().map(str::to_string).collect();
    for source in sources {
        let mut order: Vec<usize> = (0..listed.len())
            .filter(|&i| listed[i].source == source && listed[i].state != SnapshotState::Gone)
            .collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| (listed[i].created_at.is_none(), listed[i].created_at);
            key(a)
                .cmp(&key(b))
                .then_with(|| listed[a].id.cmp(&listed[b].id))
        });
        let Some(last) = order.iter().rposition(|&i| listed[i].chain.is_none()) else {
            continue;
        };
        let root = listed[order[0]].id.clone();
        tracing::info!(
            source = %source,
            snapshot = %listed[order[last]].id,
            older = last,
            "incremental snapshot without parent_id: keeping every older snapshot it may depend on"
        );
        for pos in 0..=last {
            let parent = pos.checked_sub(1).map(|p| listed[order[p]].id.clone());
            let s = &mut listed[order[pos]];
            s.chain = Some(ChainInfo {
                full: s.chain.as_ref().is_some_and(|c| c.full) && parent.is_none(),
                root_id: root.clone(),
                parent_id: parent,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn snap(
        id: &str,
        source: &str,
        day: Option<u32>,
        chain: Option<(bool, &str)>,
    ) -> RemoteSnapshot {
        RemoteSnapshot {
            id: id.into(),
            name: String::new(),
            source: source.into(),
            created_at: day.and_then(|d| Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).single()),
            state: SnapshotState::Available,
            marker_slot: None,
            chain: chain.map(|(full, parent)| ChainInfo {
                full,
                root_id: parent.into(),
                parent_id: (!full).then(|| parent.to_string()),
            }),
            cloud_id: None,
            size_bytes: None,
        }
    }

    fn parents(listed: &[RemoteSnapshot]) -> Vec<(&str, Option<&str>)> {
        listed
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    s.chain.as_ref().and_then(|c| c.parent_id.as_deref()),
                )
            })
            .collect()
    }

    #[test]
    fn everything_up_to_the_newest_undescribed_snapshot_is_linked_oldest_first() {
        let mut listed = vec![
            snap("c", "v1", Some(3), None),
            snap("a", "v1", Some(1), Some((true, "a"))),
            snap("b", "v1", Some(2), Some((false, "a"))),
            snap("d", "v1", Some(4), Some((true, "d"))),
            snap("e", "v1", Some(5), Some((false, "d"))),
            snap("x", "v2", Some(1), Some((true, "x"))),
            snap("y", "v2", None, None),
        ];
        let mut gone = snap("g", "v1", Some(2), Some((true, "g")));
        gone.state = SnapshotState::Gone;
        listed.push(gone);
        protect_unknown_chains(&mut listed);
        assert_eq!(
            parents(&listed),
            [
                ("c", Some("b")),
                ("a", None),
                ("b", Some("a")),
                ("d", None),
                ("e", Some("d")),
                ("x", None),
                ("y", Some("x")),
                ("g", None),
            ]
        );
        assert!(listed[1].chain.as_ref().is_some_and(|c| c.full));
        assert!(listed[0]
            .chain
            .as_ref()
            .is_some_and(|c| !c.full && c.root_id == "a"));
        // Nothing undescribed: nothing changes.
        let mut whole = vec![snap("a", "v1", Some(1), Some((true, "a")))];
        let before = whole.clone();
        protect_unknown_chains(&mut whole);
        assert_eq!(whole, before);
    }
}
