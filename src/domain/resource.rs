//! What a policy snapshots: the kinds of resource, and a resource as a
//! cloud's listing shows it.

use std::collections::BTreeMap;
use std::fmt;

/// A policy's `resource`. Which kinds a cloud takes is in its
/// [`Capabilities`](super::Capabilities). Debug-printed as the quoted word
/// (`"volume"`), the way messages have always shown it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Volume,
    Disk,
    Instance,
}

impl ResourceKind {
    /// The word the policy file uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Volume => "volume",
            ResourceKind::Disk => "disk",
            ResourceKind::Instance => "instance",
        }
    }

    /// The kind a policy file names, if it is one.
    pub fn from_name(name: &str) -> Option<ResourceKind> {
        [
            ResourceKind::Volume,
            ResourceKind::Disk,
            ResourceKind::Instance,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

impl fmt::Debug for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for ResourceKind {
    fn eq(&self, word: &&str) -> bool {
        self.as_str() == *word
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A volume, disk or instance as a listing shows it, for target selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// What a policy's `targets` would name (the id the create call takes).
    pub id: String,
    /// The human name a `select.name` glob is matched against.
    pub name: String,
    /// Tags or labels as key → value (empty where the cloud has none).
    pub tags: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for k in [
            ResourceKind::Volume,
            ResourceKind::Disk,
            ResourceKind::Instance,
        ] {
            assert_eq!(ResourceKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(ResourceKind::from_name("Volume"), None);
    }
}
