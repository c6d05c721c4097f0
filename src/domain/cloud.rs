//! The five clouds and what each can do. Config checks policies against
//! these capabilities; each provider reports its own from here, so the two
//! never disagree and config needs no cloud module.

use super::ResourceKind;
use ResourceKind::{Disk, Instance, Volume};

/// A provider `kind` that this build supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    QingCloud,
    UCloudStack,
    KakaoCloud,
    PowerVs,
    Lightsail,
}

impl Cloud {
    /// Every kind, in the order shown to users.
    pub const ALL: [Cloud; 5] = [
        Cloud::QingCloud,
        Cloud::UCloudStack,
        Cloud::Lightsail,
        Cloud::PowerVs,
        Cloud::KakaoCloud,
    ];

    /// The config `kind`.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::QingCloud => "qingcloud",
            Cloud::UCloudStack => "ucloudstack",
            Cloud::KakaoCloud => "kakaocloud",
            Cloud::PowerVs => "powervs",
            Cloud::Lightsail => "lightsail",
        }
    }

    pub fn from_name(name: &str) -> Option<Cloud> {
        Cloud::ALL.into_iter().find(|c| c.name() == name)
    }

    /// What policies of this kind may ask for.
    pub const fn capabilities(self) -> Capabilities {
        match self {
            Cloud::QingCloud => QINGCLOUD,
            Cloud::UCloudStack => UCLOUDSTACK,
            Cloud::KakaoCloud => KAKAOCLOUD,
            Cloud::PowerVs => POWERVS,
            Cloud::Lightsail => LIGHTSAIL,
        }
    }
}

const QINGCLOUD: Capabilities = Capabilities {
    resources: &[Volume, Instance],
    // DescribeJobs and DescribeSnapshots answer at most 100 items a call.
    max_status_batch: 100,
    incremental: true,
    restore: RestoreMode::NewResource,
    volume_subset: false,
    create_reconciles: false,
    select: &[Selectable::tagged(Volume), Selectable::tagged(Instance)],
    hold_mark: Some("description"),
};

const UCLOUDSTACK: Capabilities = Capabilities {
    resources: &[Disk],
    // DescribeSnapshot takes up to 100 ids a call (its `Limit`).
    max_status_batch: 100,
    incremental: false,
    restore: RestoreMode::InPlace,
    volume_subset: false,
    create_reconciles: false,
    select: &[Selectable::untagged(Disk)],
    hold_mark: Some("Remark"),
};

const POWERVS: Capabilities = Capabilities {
    resources: &[Instance],
    // One workspace listing answers any number of snapshots.
    max_status_batch: 100,
    incremental: false,
    restore: RestoreMode::InPlace,
    volume_subset: true,
    create_reconciles: false,
    select: &[Selectable::untagged(Instance)],
    hold_mark: Some("description"),
};

const KAKAOCLOUD: Capabilities = Capabilities {
    resources: &[Volume, Instance],
    // One GET per snapshot: the list's `id` filter takes a single id.
    max_status_batch: 50,
    incremental: true,
    restore: RestoreMode::NewResource,
    volume_subset: false,
    // One create call per volume, each first looking for this
    // slot's snapshot of its volume.
    create_reconciles: true,
    select: &[Selectable::untagged(Volume), Selectable::untagged(Instance)],
    hold_mark: Some("description"),
};

const LIGHTSAIL: Capabilities = Capabilities {
    resources: &[Instance, Disk],
    // One poll carries every due operation: it picks a shared
    // listing or single lookups itself.
    max_status_batch: 100_000,
    incremental: false,
    restore: RestoreMode::NewResource,
    volume_subset: false,
    create_reconciles: false,
    select: &[Selectable::tagged(Instance), Selectable::tagged(Disk)],
    hold_mark: Some("tag snapwarden-hold"),
};

/// How a cloud restores a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMode {
    /// Into a new volume/instance; the original is untouched.
    NewResource,
    /// In place (rollback): the target's current data is replaced.
    InPlace,
}

/// What a provider can do, checked when the config loads.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Values of a policy's `resource` this provider accepts.
    pub resources: &'static [ResourceKind],
    /// How many operations one status call may carry.
    pub max_status_batch: usize,
    /// Whether `full_every` (incremental chains) is supported.
    pub incremental: bool,
    /// How `restore` works on this cloud.
    pub restore: RestoreMode,
    /// Whether a policy may name `volume_ids` (a subset of an instance's
    /// volumes).
    pub volume_subset: bool,
    /// Whether `create` finds the snapshots an earlier attempt of the same
    /// slot made (by the marker) and makes only the missing ones. A target
    /// whose slot takes several create calls (one per volume) must say so:
    /// after an answer that may have been lost, the engine then calls
    /// `create` again, so a slot is never left with some volumes only.
    /// Otherwise the engine reconciles by listing the target.
    pub create_reconciles: bool,
    /// The resources a policy's `select` may pick from (every one of them
    /// by name), and whether by tags too. Empty: no target selection.
    pub select: &'static [Selectable],
    /// Where a hold is marked on the snapshot so that it shows in the
    /// cloud's console (e.g. `description`, `tag snapwarden-hold`); None
    /// where this cloud's snapshots have no field for it.
    pub hold_mark: Option<&'static str>,
}

impl Capabilities {
    /// How `resource` can be selected, if at all.
    pub fn selectable(&self, resource: ResourceKind) -> Option<Selectable> {
        self.select.iter().copied().find(|s| s.resource == resource)
    }

    /// Whether a policy may snapshot `resource` here.
    pub fn takes(&self, resource: ResourceKind) -> bool {
        self.resources.contains(&resource)
    }
}

/// One kind of resource a provider can list for target selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selectable {
    /// A value of the policy's `resource`.
    pub resource: ResourceKind,
    /// Whether the cloud has tags (labels) on it that a selector may match.
    pub tags: bool,
}

impl Selectable {
    const fn tagged(resource: ResourceKind) -> Selectable {
        Selectable {
            resource,
            tags: true,
        }
    }

    const fn untagged(resource: ResourceKind) -> Selectable {
        Selectable {
            resource,
            tags: false,
        }
    }
}
