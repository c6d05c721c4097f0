//! Lightsail's state: instances, disks, snapshots of both
//! families in one name space, and the operations every create and delete
//! returns. Operation and snapshot states are derived from timestamps when
//! read: an operation is `Started` until its end, then `Succeeded` (the
//! snapshot's) or `Completed` (the source's), or `Failed` under a
//! `fail_job` fault; a snapshot is `pending` until then, then `available`
//! (instance) / `completed` (disk) or `error`. The operations on this
//! state are in `actions`, their JSON shapes in `json`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::{op_json, resource_json, snapshot_json};

/// Region the simulated account lives in (ARNs and locations).
pub(super) const REGION: &str = "us-east-2";
pub(super) const ACCOUNT: &str = "111122223333";
/// Snapshots per page of GetInstanceSnapshots / GetDiskSnapshots: small,
/// so every test pages (the real size is not published).
pub(crate) const DEFAULT_PAGE_SIZE: usize = 3;
/// Size of every simulated disk snapshot, and the bundle every simulated
/// instance snapshot was taken from (`sizeInGb`, `fromBundleId`).
pub(super) const DISK_SNAPSHOT_GB: i64 = 8;
pub(super) const INSTANCE_SNAPSHOT_BUNDLE: &str = "small_3_0";
/// Tag limits.
pub(super) const MAX_TAGS: usize = 50;
/// A deleted snapshot is kept (for the control API's view) this long after
/// it is gone, then forgotten.
pub(super) const GONE_KEPT: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// A gone snapshot leaves the listing index this long after it is gone: a
/// request whose clock was read a moment before another's may still be
/// served after it, and must see the snapshot exactly as its own clock
/// says (the listing filters by that clock; the index only narrows).
pub(super) const UNLIST_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Instance,
    Disk,
}

impl Family {
    pub(super) fn type_name(self) -> &'static str {
        match self {
            Family::Instance => "InstanceSnapshot",
            Family::Disk => "DiskSnapshot",
        }
    }
    pub(super) fn source_type(self) -> &'static str {
        match self {
            Family::Instance => "Instance",
            Family::Disk => "Disk",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Family> {
        match s {
            "instance" => Some(Family::Instance),
            "disk" => Some(Family::Disk),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Resource {
    pub(super) zone: String,
    pub(super) arn_id: String,
    /// The snapshot a restore made it from (None: seeded).
    pub(super) from_snapshot: Option<String>,
    /// When a restore's resource is ready (seeded ones: at once); None:
    /// never.
    pub(super) ready_at: Option<DateTime<Utc>>,
    /// A restore that ends failed (`fail_job`): the resource ends in error.
    pub(super) fails: bool,
    /// Disk size (disks) or bundle (instances) it was created with.
    pub(super) size_in_gb: Option<i64>,
    pub(super) bundle_id: Option<String>,
    pub(super) created_at: DateTime<Utc>,
    /// Tags as key → value (None: a tag without a value).
    pub(super) tags: Vec<(String, Option<String>)>,
}

impl Resource {
    pub(super) fn seeded(zone: String) -> Self {
        Resource {
            zone,
            arn_id: uuid_like(),
            from_snapshot: None,
            ready_at: Some(DateTime::<Utc>::MIN_UTC),
            fails: false,
            size_in_gb: None,
            bundle_id: None,
            created_at: Utc::now(),
            tags: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Snap {
    pub(super) name: String,
    pub(super) family: Family,
    pub(super) source: String,
    pub(super) created_at: DateTime<Utc>,
    /// None: never finishes.
    pub(super) ready_at: Option<DateTime<Utc>>,
    pub(super) fails: bool,
    pub(super) tags: Vec<(String, Option<String>)>,
    pub(super) from_auto: bool,
    /// A disk snapshot of an instance's system disk (`source` is the
    /// instance): it names `fromInstanceName`, not `fromDiskName`.
    pub(super) of_system_disk: bool,
    /// Set by a delete: listed until then, gone after.
    pub(super) gone_at: Option<DateTime<Utc>>,
    pub(super) arn_id: String,
}

#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) id: String,
    pub(super) resource_name: String,
    pub(super) resource_type: &'static str,
    pub(super) op_type: String,
    pub(super) details: String,
    pub(super) zone: String,
    pub(super) created_at: DateTime<Utc>,
    pub(super) ends_at: Option<DateTime<Utc>>,
    pub(super) fails: bool,
    /// `Succeeded` or `Completed` when done.
    pub(super) success_word: &'static str,
}

#[derive(Default)]
pub(crate) struct LightsailState {
    pub(super) credentials: HashMap<String, String>,
    /// The session token each temporary access key was issued with; a key
    /// not here is a long-term key, used without a token.
    pub(super) session_tokens: HashMap<String, String>,
    pub(super) instances: BTreeMap<String, Resource>,
    pub(super) disks: BTreeMap<String, Resource>,
    pub(super) snapshots: BTreeMap<String, Snap>,
    pub(super) operations: HashMap<String, Op>,
    pub(super) page_size: Option<usize>,
    /// Names of the snapshots a listing can show, per family (index 0
    /// instances, 1 disks), in name order: a page resumes after its last
    /// name in O(log n) and skips neither the other family nor the long
    /// gone. Holds every snapshot until [`UNLIST_SLACK`] after it is gone.
    pub(super) listed: [BTreeSet<String>; 2],
    /// `(gone_at, name)` of deleted snapshots, soonest first: when each
    /// leaves `listed`, and when it is forgotten ([`GONE_KEPT`]).
    pub(super) to_unlist: BTreeSet<(DateTime<Utc>, String)>,
    pub(super) to_forget: BTreeSet<(DateTime<Utc>, String)>,
}

pub(super) fn family_index(family: Family) -> usize {
    match family {
        Family::Instance => 0,
        Family::Disk => 1,
    }
}

/// A snapshot seeded through the control API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeedSnapshot {
    pub name: String,
    /// The instance or disk it is of (registered if unknown).
    pub source: String,
    /// `instance` or `disk`.
    pub resource: String,
    #[serde(default)]
    pub tags: Vec<SeedTag>,
    /// A kept copy of a Lightsail automatic snapshot (`isFromAutoSnapshot`).
    #[serde(default)]
    pub auto: bool,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeedTag {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
}

impl LightsailState {
    /// A long-term access key: requests signed with it carry no session
    /// token.
    pub(crate) fn add_credentials(&mut self, id: &str, secret: &str) {
        self.credentials.insert(id.to_string(), secret.to_string());
        self.session_tokens.remove(id);
    }

    /// Temporary credentials: requests signed with `id` must carry exactly
    /// `token` in `X-Amz-Security-Token`.
    pub(crate) fn add_session_credentials(&mut self, id: &str, secret: &str, token: &str) {
        self.credentials.insert(id.to_string(), secret.to_string());
        self.session_tokens
            .insert(id.to_string(), token.to_string());
    }

    pub(super) fn secret(&self, id: &str) -> Option<&str> {
        self.credentials.get(id).map(String::as_str)
    }

    /// The session token `id` was issued with (None: a long-term key).
    pub(super) fn session_token(&self, id: &str) -> Option<&str> {
        self.session_tokens.get(id).map(String::as_str)
    }

    pub(crate) fn set_page_size(&mut self, n: usize) {
        self.page_size = Some(n.max(1));
    }

    pub(super) fn page_size(&self) -> usize {
        self.page_size.unwrap_or(DEFAULT_PAGE_SIZE)
    }

    /// Registers an instance or disk; seeding it again with `tags`
    /// replaces its tags (as TagResource/UntagResource would).
    pub(crate) fn seed_resource(
        &mut self,
        family: Family,
        name: &str,
        zone: Option<&str>,
        tags: Option<Vec<SeedTag>>,
    ) {
        let map = match family {
            Family::Instance => &mut self.instances,
            Family::Disk => &mut self.disks,
        };
        let r = map.entry(name.to_string()).or_insert_with(|| {
            Resource::seeded(zone.map_or_else(|| format!("{REGION}a"), str::to_string))
        });
        if let Some(tags) = tags {
            r.tags = tags.into_iter().map(|t| (t.key, t.value)).collect();
        }
    }

    /// A snapshot made outside snapwarden: available at once.
    pub(crate) fn seed_snapshot(
        &mut self,
        seed: &SeedSnapshot,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let family = Family::parse(&seed.resource).ok_or_else(|| {
            format!(
                "resource must be \"instance\" or \"disk\", got {:?}",
                seed.resource
            )
        })?;
        if self.name_in_use(&seed.name, now) {
            return Err(format!("the name {} is already in use", seed.name));
        }
        self.seed_resource(family, &seed.source, None, None);
        let created = seed.created_at.unwrap_or(now);
        self.insert_snapshot(Snap {
            name: seed.name.clone(),
            family,
            source: seed.source.clone(),
            created_at: created,
            ready_at: Some(created),
            fails: false,
            tags: seed
                .tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
            from_auto: seed.auto,
            of_system_disk: false,
            gone_at: None,
            arn_id: uuid_like(),
        });
        Ok(())
    }

    /// The one way a snapshot enters the state (replacing a gone one of
    /// the same name, if any): the map and the listing index.
    pub(super) fn insert_snapshot(&mut self, snap: Snap) {
        if let Some(old) = self.snapshots.get(&snap.name) {
            self.listed[family_index(old.family)].remove(&snap.name);
        }
        self.listed[family_index(snap.family)].insert(snap.name.clone());
        self.snapshots.insert(snap.name.clone(), snap);
    }

    /// A delete: the snapshot is listed until `at`, then gone.
    pub(super) fn mark_gone(&mut self, name: &str, at: DateTime<Utc>) {
        let Some(s) = self.snapshots.get_mut(name) else {
            return;
        };
        s.gone_at = Some(at);
        // A never-ending delete (`at` = the end of time) stays listed and
        // kept for good.
        if let Some(t) = at.checked_add_signed(UNLIST_SLACK) {
            self.to_unlist.insert((t, name.to_string()));
        }
        if let Some(t) = at.checked_add_signed(GONE_KEPT) {
            self.to_forget.insert((t, name.to_string()));
        }
    }

    /// Drops from the listing index the snapshots gone for a moment and
    /// forgets those gone for [`GONE_KEPT`]: the work is what expired since
    /// the last call, not the whole account.
    pub(super) fn expire(&mut self, now: DateTime<Utc>) {
        // An entry applies only while its snapshot still has that gone time
        // (the name may have been taken again since).
        while let Some((t, name)) = self.to_unlist.first().cloned() {
            if t > now {
                break;
            }
            self.to_unlist.pop_first();
            if let Some(s) = self.snapshots.get(&name) {
                if s.gone_at.and_then(|g| g.checked_add_signed(UNLIST_SLACK)) == Some(t) {
                    self.listed[family_index(s.family)].remove(&name);
                }
            }
        }
        while let Some((t, name)) = self.to_forget.first().cloned() {
            if t > now {
                break;
            }
            self.to_forget.pop_first();
            let expired = self.snapshots.get(&name).is_some_and(|s| {
                s.gone_at.and_then(|g| g.checked_add_signed(GONE_KEPT)) == Some(t)
            });
            if expired {
                if let Some(s) = self.snapshots.remove(&name) {
                    self.listed[family_index(s.family)].remove(&name);
                }
            }
        }
    }

    /// Every snapshot, gone ones included (`"gone": true`), for tests.
    pub(crate) fn snapshots_view(&self, now: DateTime<Utc>) -> Vec<Value> {
        self.snapshots
            .values()
            .map(|s| {
                let mut v = snapshot_json(s, now);
                if let Value::Object(m) = &mut v {
                    m.insert("gone".into(), json!(s.gone_at.is_some_and(|t| now >= t)));
                    m.insert("deleting".into(), json!(s.gone_at.is_some()));
                }
                v
            })
            .collect()
    }

    /// Every instance or disk, with the snapshot a restore made it from,
    /// for tests.
    pub(crate) fn resources_view(&self, family: Family, now: DateTime<Utc>) -> Vec<Value> {
        let map = match family {
            Family::Instance => &self.instances,
            Family::Disk => &self.disks,
        };
        map.iter()
            .map(|(name, r)| {
                let mut v = resource_json(name, r, family, now);
                v["fromSnapshot"] = json!(r.from_snapshot);
                v
            })
            .collect()
    }

    pub(crate) fn operations_view(&self, now: DateTime<Utc>) -> Vec<Value> {
        let mut ops: Vec<&Op> = self.operations.values().collect();
        ops.sort_by_key(|o| (o.created_at, o.id.clone()));
        ops.into_iter().map(|o| op_json(o, now)).collect()
    }

    pub(super) fn live(&self, name: &str, now: DateTime<Utc>) -> Option<&Snap> {
        self.snapshots
            .get(name)
            .filter(|s| s.gone_at.is_none_or(|t| now < t))
    }

    /// One name space across resource types.
    pub(super) fn name_in_use(&self, name: &str, now: DateTime<Utc>) -> bool {
        self.instances.contains_key(name)
            || self.disks.contains_key(name)
            || self.live(name, now).is_some()
    }
}

/// A random version-4 UUID, as Lightsail's operation ids and AWS's request
/// ids are.
pub(super) fn uuid_like() -> String {
    let hex = crate::sim::random_id("", 32);
    let hex: String = hex
        .chars()
        .map(|c| {
            if c.is_ascii_digit() || ('a'..='f').contains(&c) {
                c
            } else {
                char::from(b'a' + (c as u8 % 6))
            }
        })
        .collect();
    // A version-4 UUID: version nibble 4, variant bits 10.
    let variant = ['8', '9', 'a', 'b'][usize::from(hex.as_bytes()[16] % 4)];
    format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        variant,
        &hex[17..20],
        &hex[20..]
    )
}
