//! AWS Lightsail provider: instance snapshots (`resource = "instance"`) and
//! disk snapshots (`resource = "disk"`) through the official AWS SDK.
//!
//! Owns the Lightsail dialect: the SDK client (`client`), error names
//! (`errors`), and here the mapping of operations, snapshot states and tags
//! onto the engine's words. It never retries or sleeps (the engine owns the
//! retry policy, the SDK's own retries are off) and never decides what to
//! keep or delete.
//!
//! - Marker: every snapshot is created with the tags `snapwarden:policy`,
//!   `snapwarden:target` and `snapwarden:slot`; a listed snapshot is ours
//!   only if it carries all three for the listed policy and target and is
//!   not a copy of a Lightsail automatic snapshot.
//! - Names: `{policy}-{target}-p{N}-{slot}`, N the policy name's length
//!   ([`snapshot_name`]). Lightsail names are unique in the account, and
//!   every character a name may hold may also be in a policy name, so the
//!   plain `{policy}-{target}-{slot}` of two pairs could be the same
//!   (policy `db` on `prod-web`, `db-prod` on `web`); the length tells
//!   where the policy ends. Ownership never rests on the name (the tags
//!   decide), so snapshots named the old way are still recognised.
//! - Ids: a snapshot's id is `InstanceSnapshot/<name>` or
//!   `DiskSnapshot/<name>`. Lightsail addresses snapshots by name, and the
//!   trait's `delete`/`poll` get no resource type, so the id carries it.
//! - Operations: a create returns two operations (one on the snapshot, one
//!   on the source); the engine's operation string holds both ids,
//!   comma-separated, and an operation is done only when every one is
//!   terminal. Then the snapshot's own state is confirmed.

mod client;
mod errors;
mod ids;
mod listing;
mod poll;
mod select;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use async_trait::async_trait;

use super::http::{ApiClient, ClientBuildError};
use super::{
    cloud_identity, require_target_and_name, CreateRequest, Created, DeleteStarted, ErrorKind,
    Marker, OpStatus, OperationRef, Provider, ProviderError, RemoteSnapshot, RestoreRequest,
    RestoreStarted,
};
use crate::config::LightsailSettings;
use crate::domain::{Cloud, ResourceKind};
use ids::{marker_tags, Family, Listed};
pub use ids::{TAG_HOLD, TAG_POLICY, TAG_SLOT, TAG_TARGET};
use listing::SharedListing;
#[cfg(test)]
use listing::{listing_gap, FIRST_LISTING_AT, MAX_LISTING_GAP};
use poll::operation_ids;

/// The deterministic name of a marker's snapshot:
/// `{policy}-{target}-p{N}-{slot}`, where N is the length of the policy
/// name. It is a pure function of the marker and different for every
/// (policy, target, slot): the slot label has a fixed length and ends the
/// name, `p{N}` is the last `-`-separated part before it and holds no `-`,
/// and N then says where the policy ends and the target begins. Policy
/// names (`[A-Za-z0-9][A-Za-z0-9_-]*`) and target names (Lightsail's
/// `\w[\w-]*\w`) keep it within Lightsail's name rules.
pub fn snapshot_name(marker: &Marker) -> String {
    format!(
        "{}-{}-p{}-{}",
        marker.policy,
        marker.target,
        marker.policy.len(),
        crate::domain::slot_label(marker.slot)
    )
}

/// One Lightsail account in one region.
pub struct Lightsail {
    client: client::Client,
    region: String,
    /// The rate limit (shared with `client`), which paces full listings.
    api: ApiClient,
    /// The newest full listing of each family ([`Family::index`]).
    listings: [SharedListing; 2],
}

impl Lightsail {
    pub fn new(
        settings: &LightsailSettings,
        api: ApiClient,
        request_timeout: std::time::Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Lightsail, ClientBuildError> {
        Ok(Lightsail {
            api: api.clone(),
            client: client::Client::new(settings, api, request_timeout, ca_file)?,
            region: settings.region.clone(),
            listings: Default::default(),
        })
    }

    /// One snapshot by name, in a shape both families share.
    async fn get_snapshot(&self, family: Family, name: &str) -> Result<Listed, ProviderError> {
        let call = family.get_call();
        match family {
            Family::Instance => {
                let out = self
                    .client
                    .call(call, |c| {
                        c.get_instance_snapshot()
                            .instance_snapshot_name(name)
                            .send()
                    })
                    .await?;
                out.instance_snapshot()
                    .map(Listed::from_instance)
                    .ok_or_else(|| unexpected(call, "no instanceSnapshot in the answer"))
            }
            Family::Disk => {
                let out = self
                    .client
                    .call(call, |c| {
                        c.get_disk_snapshot().disk_snapshot_name(name).send()
                    })
                    .await?;
                out.disk_snapshot()
                    .map(Listed::from_disk)
                    .ok_or_else(|| unexpected(call, "no diskSnapshot in the answer"))
            }
        }
    }

    /// A create failed because the name is taken. Ours (an earlier create
    /// of this very slot whose answer was lost) → a transient error, so the
    /// engine looks again by listing and adopts it; anything else → conflict.
    async fn collision(
        &self,
        family: Family,
        req: &CreateRequest,
        err: ProviderError,
    ) -> ProviderError {
        match self.get_snapshot(family, &req.name).await {
            Ok(found)
                if found.source.as_deref() == Some(req.target.as_str())
                    && found.marker_slot(&req.marker.policy, &req.marker.target)
                        == Some(req.marker.slot) =>
            {
                ProviderError::new(
                    ErrorKind::Transient,
                    err.call.clone(),
                    format!(
                        "snapshot {} already exists and carries snapwarden's tags for this slot \
                         (an earlier create whose answer was lost); reconciling",
                        req.name
                    ),
                )
                .with_code(err.code.clone().unwrap_or_default())
            }
            Ok(_) => ProviderError::new(
                ErrorKind::Conflict,
                err.call.clone(),
                format!(
                    "the name {} is taken by a {} that is not snapwarden's for this slot: {}",
                    req.name,
                    family.type_name(),
                    err.message
                ),
            ),
            Err(e) if e.kind == ErrorKind::NotFound => ProviderError::new(
                ErrorKind::Conflict,
                err.call.clone(),
                format!(
                    "the name {} is taken by another Lightsail resource: {}",
                    req.name, err.message
                ),
            ),
            Err(e) => e,
        }
    }
}

#[async_trait]
impl Provider for Lightsail {
    cloud_identity!(Cloud::Lightsail, names: snapshot_name);

    /// One CreateInstanceSnapshot / CreateDiskSnapshot call, tagged.
    async fn create(&self, req: &CreateRequest) -> Result<Vec<Created>, ProviderError> {
        let call = match req.resource {
            ResourceKind::Disk => "CreateDiskSnapshot",
            _ => "CreateInstanceSnapshot",
        };
        let family = Family::of_resource(req.resource, call)?;
        require_target_and_name(call, req)?;
        let tags = marker_tags(&req.marker);
        let answer = match family {
            Family::Instance => self
                .client
                .call(call, |c| {
                    c.create_instance_snapshot()
                        .instance_name(&req.target)
                        .instance_snapshot_name(&req.name)
                        .set_tags(Some(tags))
                        .send()
                })
                .await
                .map(|o| o.operations().to_vec()),
            Family::Disk => self
                .client
                .call(call, |c| {
                    c.create_disk_snapshot()
                        .disk_name(&req.target)
                        .disk_snapshot_name(&req.name)
                        .set_tags(Some(tags))
                        .send()
                })
                .await
                .map(|o| o.operations().to_vec()),
        };
        match answer {
            Ok(ops) => {
                let ids = operation_ids(&ops);
                if ids.is_empty() {
                    // Accepted, but nothing to follow: the snapshot may well
                    // exist, so this must be reconciled, never re-created.
                    return Err(ProviderError::new(
                        ErrorKind::Transient,
                        call,
                        "the create was answered without operations",
                    ));
                }
                Ok(vec![Created {
                    snapshot_id: family.id(&req.name),
                    operation: ids.join(","),
                }])
            }
            Err(e) if e.kind == ErrorKind::Conflict => Err(self.collision(family, req, e).await),
            Err(e) => Err(e),
        }
    }

    /// See [`Lightsail::poll_all`].
    async fn poll(&self, ops: &[OperationRef]) -> Result<Vec<OpStatus>, ProviderError> {
        self.poll_all(ops).await
    }

    /// GetInstanceSnapshots / GetDiskSnapshots, every page, kept to the
    /// snapshots of `target`.
    async fn list(
        &self,
        resource: ResourceKind,
        target: &str,
        policy: &str,
    ) -> Result<Vec<RemoteSnapshot>, ProviderError> {
        let family = Family::of_resource(resource, "list")?;
        let all = self.list_fresh(family).await?;
        let mut seen = HashSet::new();
        Ok(all
            .iter()
            .filter(|s| s.source.as_deref() == Some(target))
            .filter(|s| seen.insert(s.name.clone()))
            .cloned()
            .map(|s| RemoteSnapshot {
                id: family.id(&s.name),
                marker_slot: s.marker_slot(policy, target),
                source: target.to_string(),
                created_at: s.created_at,
                state: s.state,
                // Lightsail's tools take the bare name.
                cloud_id: Some(s.name.clone()),
                size_bytes: s
                    .size_in_gb
                    .and_then(|gb| u64::try_from(gb).ok())
                    .map(|gb| gb << 30),
                name: s.name,
                chain: None,
            })
            .collect())
    }

    /// DeleteInstanceSnapshot / DeleteDiskSnapshot; its operation is
    /// followed to terminal, then the snapshot confirmed gone.
    async fn delete(&self, snapshot_id: &str) -> Result<DeleteStarted, ProviderError> {
        let (family, name) = Family::parse_id(snapshot_id, "DeleteSnapshot")?;
        let answer = match family {
            Family::Instance => self
                .client
                .call("DeleteInstanceSnapshot", |c| {
                    c.delete_instance_snapshot()
                        .instance_snapshot_name(name)
                        .send()
                })
                .await
                .map(|o| o.operations().to_vec()),
            Family::Disk => self
                .client
                .call("DeleteDiskSnapshot", |c| {
                    c.delete_disk_snapshot().disk_snapshot_name(name).send()
                })
                .await
                .map(|o| o.operations().to_vec()),
        };
        match answer {
            // No operation to follow: the poll goes straight to the check
            // that the snapshot is gone.
            Ok(ops) => Ok(DeleteStarted::Tracking(operation_ids(&ops).join(","))),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(DeleteStarted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// CreateInstancesFromSnapshot / CreateDiskFromSnapshot into a new
    /// resource in the source's availability zone (or `<region>a` when the
    /// source is gone), with the snapshot's bundle or size.
    async fn restore(&self, req: &RestoreRequest) -> Result<RestoreStarted, ProviderError> {
        let call = match req.resource {
            ResourceKind::Disk => "CreateDiskFromSnapshot",
            _ => "CreateInstancesFromSnapshot",
        };
        let family = Family::of_resource(req.resource, call)?;
        let name = match Family::parse_id(&req.snapshot_id, call) {
            Ok((f, name)) if f == family => name.to_string(),
            Ok(_) => {
                return Err(ProviderError::new(
                    ErrorKind::Permanent,
                    call,
                    format!("{} is not a {} snapshot", req.snapshot_id, req.resource),
                ))
            }
            // A bare snapshot name as an operator would type it.
            Err(_) => req.snapshot_id.trim().to_string(),
        };
        let new_name = req
            .new_name
            .clone()
            .unwrap_or_else(|| format!("{}-restored", req.target));
        let snap = self.get_snapshot(family, &name).await?;
        let source = snap.source.clone().unwrap_or_else(|| req.target.clone());
        let zone = self.zone_of(family, &source).await?;
        let ops = match family {
            Family::Instance => {
                let bundle = snap.bundle_id.clone().ok_or_else(|| {
                    unexpected(call, "the instance snapshot names no fromBundleId")
                })?;
                self.client
                    .call(call, |c| {
                        c.create_instances_from_snapshot()
                            .instance_names(&new_name)
                            .instance_snapshot_name(&name)
                            .availability_zone(&zone)
                            .bundle_id(bundle)
                            .send()
                    })
                    .await?
                    .operations()
                    .to_vec()
            }
            Family::Disk => {
                let size = snap
                    .size_in_gb
                    .ok_or_else(|| unexpected(call, "the disk snapshot has no sizeInGb"))?;
                self.client
                    .call(call, |c| {
                        c.create_disk_from_snapshot()
                            .disk_name(&new_name)
                            .disk_snapshot_name(&name)
                            .availability_zone(&zone)
                            .size_in_gb(size)
                            .send()
                    })
                    .await?
                    .operations()
                    .to_vec()
            }
        };
        let ids = operation_ids(&ops);
        if ids.is_empty() {
            return Err(unexpected(
                call,
                "the restore was answered without operations",
            ));
        }
        Ok(RestoreStarted {
            resource_id: Some(new_name),
            operation: ids.join(","),
        })
    }

    /// GetInstances / GetDisks, every page, tags included.
    async fn list_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<super::Resource>, ProviderError> {
        self.select_resources(resource).await
    }

    /// TagResource with the tag `snapwarden-hold` = note (cut to a tag
    /// value's 256 characters), or UntagResource of that key to clear;
    /// `resourceName` is the snapshot's name. The marker tags are other
    /// keys and stay as they are. Both calls answer with operations, which
    /// are not followed: the tag is visible once the call returns.
    async fn mark_hold(
        &self,
        snapshot_id: &str,
        _name: &str,
        note: Option<&str>,
    ) -> Result<(), ProviderError> {
        match note {
            Some(note) => {
                let call = "TagResource";
                let (_, name) = Family::parse_id(snapshot_id, call)?;
                let tag = aws_sdk_lightsail::types::Tag::builder()
                    .key(ids::TAG_HOLD)
                    .value(ids::hold_tag_value(note))
                    .build();
                self.client
                    .call(call, |c| {
                        c.tag_resource().resource_name(name).tags(tag).send()
                    })
                    .await
                    .map(|_| ())
            }
            None => {
                let call = "UntagResource";
                let (_, name) = Family::parse_id(snapshot_id, call)?;
                self.client
                    .call(call, |c| {
                        c.untag_resource()
                            .resource_name(name)
                            .tag_keys(ids::TAG_HOLD)
                            .send()
                    })
                    .await
                    .map(|_| ())
            }
        }
    }
}

impl Lightsail {
    /// The availability zone of a snapshot's source, or `<region>a` when
    /// the source no longer exists.
    async fn zone_of(&self, family: Family, source: &str) -> Result<String, ProviderError> {
        let fallback = format!("{}a", self.region);
        let zone = match family {
            Family::Instance => self
                .client
                .call("GetInstance", |c| {
                    c.get_instance().instance_name(source).send()
                })
                .await
                .map(|o| {
                    o.instance()
                        .and_then(|i| i.location())
                        .and_then(|l| l.availability_zone())
                        .map(str::to_string)
                }),
            Family::Disk => self
                .client
                .call("GetDisk", |c| c.get_disk().disk_name(source).send())
                .await
                .map(|o| {
                    o.disk()
                        .and_then(|d| d.location())
                        .and_then(|l| l.availability_zone())
                        .map(str::to_string)
                }),
        };
        match zone {
            Ok(z) => Ok(z
                .filter(|z| !z.is_empty() && z != "all")
                .unwrap_or(fallback)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(fallback),
            Err(e) => Err(e),
        }
    }
}

fn unexpected(call: &str, detail: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Transient,
        call,
        format!("unexpected answer: {detail}"),
    )
}
