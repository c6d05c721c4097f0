//! Lightsail's snapshot ids (`InstanceSnapshot/<name>`, `DiskSnapshot/<name>`),
//! a listed snapshot of either family, and the marker tags.

use aws_sdk_lightsail::types::{DiskSnapshot, InstanceSnapshot, Tag};
use chrono::{DateTime, Utc};

use super::super::{
    parse_slot_label, unsupported_resource, ErrorKind, Marker, ProviderError, SnapshotState,
};
use crate::domain::{Cloud, ResourceKind};

/// The ownership marker's tag keys.
pub const TAG_POLICY: &str = "snapwarden:policy";
pub const TAG_TARGET: &str = "snapwarden:target";
pub const TAG_SLOT: &str = "snapwarden:slot";
/// The tag that marks a held snapshot; its value is the hold's note.
pub const TAG_HOLD: &str = "snapwarden-hold";
/// Longest tag value Lightsail takes (256 characters).
const TAG_VALUE_MAX: usize = 256;

/// A hold note as a tag value: at most 256 characters, each one Lightsail
/// allows in a tag (letters, digits, spaces and `+ - = . _ : / @`); any
/// other character becomes `_` so that the tag is never refused.
pub(super) fn hold_tag_value(note: &str) -> String {
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c);
    let clean: String = note
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .collect();
    crate::providers::fit_note(&clean, TAG_VALUE_MAX)
}

/// Which of Lightsail's two snapshot families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Instance,
    Disk,
}

impl Family {
    /// Position in [`Lightsail::listings`].
    pub(super) fn index(self) -> usize {
        match self {
            Family::Instance => 0,
            Family::Disk => 1,
        }
    }

    pub(super) fn of_resource(resource: ResourceKind, call: &str) -> Result<Family, ProviderError> {
        match resource {
            ResourceKind::Instance => Ok(Family::Instance),
            ResourceKind::Disk => Ok(Family::Disk),
            other => Err(unsupported_resource(Cloud::Lightsail, call, other)),
        }
    }

    /// Lightsail's `resourceType` name, used as the id prefix.
    pub(super) fn type_name(self) -> &'static str {
        match self {
            Family::Instance => "InstanceSnapshot",
            Family::Disk => "DiskSnapshot",
        }
    }

    pub(super) fn id(self, name: &str) -> String {
        format!("{}/{name}", self.type_name())
    }

    /// `InstanceSnapshot/<name>` or `DiskSnapshot/<name>`.
    pub(super) fn parse_id<'a>(
        id: &'a str,
        call: &str,
    ) -> Result<(Family, &'a str), ProviderError> {
        let parsed = match id.trim().split_once('/') {
            Some(("InstanceSnapshot", name)) => Some((Family::Instance, name)),
            Some(("DiskSnapshot", name)) => Some((Family::Disk, name)),
            _ => None,
        };
        parsed.filter(|(_, n)| !n.is_empty()).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Permanent,
                call,
                format!(
                    "{id:?} is not a Lightsail snapshot id of snapwarden's form \
                     (InstanceSnapshot/<name> or DiskSnapshot/<name>)"
                ),
            )
        })
    }

    pub(super) fn get_call(self) -> &'static str {
        match self {
            Family::Instance => "GetInstanceSnapshot",
            Family::Disk => "GetDiskSnapshot",
        }
    }
}

/// A snapshot of either family, reduced to what snapwarden reads.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub(super) name: String,
    /// `fromInstanceName` (instance) or `fromDiskName` (disk).
    pub(super) source: Option<String>,
    pub(super) created_at: Option<DateTime<Utc>>,
    pub(super) state: SnapshotState,
    /// The raw state, for messages.
    pub(super) raw_state: String,
    pub(super) progress: Option<u8>,
    pub(super) tags: Vec<(String, String)>,
    pub(super) from_auto: bool,
    pub(super) bundle_id: Option<String>,
    pub(super) size_in_gb: Option<i32>,
}

impl Listed {
    pub(super) fn from_instance(s: &InstanceSnapshot) -> Listed {
        let raw = s.state().map(|x| x.as_str()).unwrap_or_default();
        Listed {
            source: s.from_instance_name().map(str::to_string),
            bundle_id: s.from_bundle_id().map(str::to_string),
            // `pending` and anything new: never Available.
            ..Listed::of_family(
                (s.name(), raw, "available"),
                s.created_at(),
                s.tags(),
                s.is_from_auto_snapshot(),
                s.size_in_gb(),
            )
        }
    }

    pub(super) fn from_disk(s: &DiskSnapshot) -> Listed {
        let raw = s.state().map(|x| x.as_str()).unwrap_or_default();
        Listed {
            source: s.from_disk_name().map(str::to_string),
            progress: s
                .progress()
                .and_then(|p| p.trim().trim_end_matches('%').parse::<u8>().ok())
                .map(|p| p.min(100)),
            // `pending`, `unknown` and anything new: never Available.
            ..Listed::of_family(
                (s.name(), raw, "completed"),
                s.created_at(),
                s.tags(),
                s.is_from_auto_snapshot(),
                s.size_in_gb(),
            )
        }
    }

    /// The fields both families read alike: the name, the raw state and
    /// the family's state word for a usable snapshot (`error` is Failed,
    /// any other word Creating), the creation time, the tags, whether it is
    /// a copy of an automatic snapshot, and its size. Source, progress and
    /// bundle are left for the family.
    fn of_family(
        (name, raw, available): (Option<&str>, &str, &str),
        created_at: Option<&aws_sdk_lightsail::primitives::DateTime>,
        tags: &[Tag],
        from_auto: Option<bool>,
        size_in_gb: Option<i32>,
    ) -> Listed {
        Listed {
            name: name.unwrap_or_default().to_string(),
            source: None,
            created_at: created_at.and_then(to_chrono),
            state: match raw {
                r if r == available => SnapshotState::Available,
                "error" => SnapshotState::Failed,
                _ => SnapshotState::Creating,
            },
            raw_state: raw.to_string(),
            progress: None,
            tags: tags_of(tags),
            from_auto: from_auto == Some(true),
            bundle_id: None,
            size_in_gb,
        }
    }

    /// The slot of snapwarden's marker tags for `policy` and `target`;
    /// copies of automatic snapshots are never ours.
    pub(super) fn marker_slot(&self, policy: &str, target: &str) -> Option<DateTime<Utc>> {
        if self.from_auto || policy.is_empty() || target.is_empty() {
            return None;
        }
        let tag = |key: &str| {
            self.tags
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if tag(TAG_POLICY) != Some(policy) || tag(TAG_TARGET) != Some(target) {
            return None;
        }
        tag(TAG_SLOT).and_then(parse_slot_label)
    }
}

pub(super) fn tags_of(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| {
            t.key()
                .map(|k| (k.to_string(), t.value().unwrap_or_default().to_string()))
        })
        .collect()
}

/// The three marker tags for a create.
pub(super) fn marker_tags(m: &Marker) -> Vec<Tag> {
    [
        (TAG_POLICY, m.policy.clone()),
        (TAG_TARGET, m.target.clone()),
        (TAG_SLOT, crate::domain::slot_label(m.slot)),
    ]
    .into_iter()
    .map(|(k, v)| Tag::builder().key(k).value(v).build())
    .collect()
}

pub(super) fn to_chrono(t: &aws_sdk_lightsail::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}
