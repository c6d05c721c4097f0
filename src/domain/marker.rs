//! How snapwarden marks what it makes: the marker, its slot label (one
//! format, one parser) and the chain facts of incremental snapshots.

use chrono::{DateTime, Utc};

/// The identity snapwarden stamps on every snapshot it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub policy: String,
    pub target: String,
    pub slot: DateTime<Utc>,
}

impl Marker {
    /// `{policy}-{target}-{slot label}`: the deterministic name.
    pub fn default_name(&self) -> String {
        format!("{}-{}-{}", self.policy, self.target, slot_label(self.slot))
    }

    /// The name prefix shared by every snapshot of this policy and target.
    pub fn name_prefix(policy: &str, target: &str) -> String {
        format!("{policy}-{target}-")
    }

    /// The slot of a name that is exactly `{policy}-{target}-{slot label}`
    /// and nothing else (so `db-vol-12-…` never matches target `vol-1`).
    pub fn slot_of_name(name: &str, policy: &str, target: &str) -> Option<DateTime<Utc>> {
        if policy.is_empty() || target.is_empty() {
            return None;
        }
        name.strip_prefix(&Marker::name_prefix(policy, target))
            .and_then(parse_slot_label)
    }
}

/// A slot as used in snapshot names: `20260308T070000Z`.
pub fn slot_label(slot: DateTime<Utc>) -> String {
    slot.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Parses what [`slot_label`] writes (exactly 16 ASCII characters).
pub fn parse_slot_label(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shaped = b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    if !shaped {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(&s[..15], "%Y%m%dT%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

/// Incremental-chain facts for clouds that have chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// True for a full (chain-root) snapshot.
    pub full: bool,
    /// The full snapshot at the root of this chain.
    pub root_id: String,
    /// The snapshot this one is an increment of (None for a full one).
    pub parent_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn slot_of_name_needs_the_exact_prefix_and_a_slot_label() {
        let slot = Utc.with_ymd_and_hms(2024, 1, 1, 2, 30, 0).single();
        assert_eq!(
            Marker::slot_of_name("db-vol-1-20240101T023000Z", "db", "vol-1"),
            slot
        );
        assert_eq!(
            Marker::slot_of_name("db-vol-12-20240101T023000Z", "db", "vol-1"),
            None
        );
        assert_eq!(
            Marker::slot_of_name("db-vol-1-20241301T023000Z", "db", "vol-1"),
            None
        );
        assert_eq!(
            Marker::slot_of_name("db-vol-1-20240101T023000Z-x", "db", "vol-1"),
            None
        );
        assert_eq!(
            Marker::slot_of_name("-vol-1-20240101T023000Z", "", "vol-1"),
            None
        );
        let m = Marker {
            policy: "db".into(),
            target: "vol-1".into(),
            slot: slot.expect("valid"),
        };
        assert_eq!(
            Marker::slot_of_name(&m.default_name(), "db", "vol-1"),
            Some(m.slot)
        );
    }

    #[test]
    fn the_slot_label_round_trips() {
        let slot = Utc
            .with_ymd_and_hms(2026, 3, 8, 7, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(slot_label(slot), "20260308T070000Z");
        assert_eq!(parse_slot_label(&slot_label(slot)), Some(slot));
        assert_eq!(parse_slot_label("2026-03-08T07:00"), None);
    }
}
