//! UCloudStack's world as the simulator keeps it: key pairs, regions and
//! zones, disks and their snapshots, and the API's rules
//! (one snapshot at a time per disk, a per-disk snapshot cap, only `Normal`
//! snapshots can be deleted or rolled back to).
//!
//! Only facts are stored (when a snapshot was made, when it will be ready,
//! when it was deleted); `SnapshotStatus` is derived from the clock when
//! read, so nothing needs a timer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::errors::ApiError;

/// The per-disk snapshot cap a fresh simulator enforces (the admin
/// setting's default); 0 = unlimited.
pub(crate) const DEFAULT_SNAPSHOT_CAP: u32 = 10;
/// Size reported for every snapshot, in GB.
const SNAPSHOT_SIZE_GB: u64 = 20;

pub(crate) use crate::sim::faults::Outcome;

/// `SnapshotStatus` of the reference revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Sic: the API's spelling.
    Createing,
    Normal,
    RollBacking,
    Failure,
    Released,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Createing => "Createing",
            Status::Normal => "Normal",
            Status::RollBacking => "RollBacking",
            Status::Failure => "Failure",
            Status::Released => "Released",
        }
    }

    fn in_progress(self) -> bool {
        matches!(self, Status::Createing | Status::RollBacking)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Disk {
    pub id: String,
    pub region: String,
    pub zone: String,
    pub name: String,
    /// Bound to a VM that is powered on: rollback is refused (2501).
    pub vm_running: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub id: String,
    pub seq: u64,
    pub region: String,
    pub zone: String,
    pub disk_id: String,
    pub name: String,
    pub remark: String,
    /// `Manual` or `Automatic`.
    pub snapshot_type: String,
    pub create_time: DateTime<Utc>,
    ready_at: DateTime<Utc>,
    outcome: Outcome,
    rollback_until: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// When a deleted snapshot stops being listed (as `Released`).
    removed_at: Option<DateTime<Utc>>,
}

impl Snapshot {
    /// The status at `now`; `None` once a deleted snapshot is no longer
    /// listed at all.
    pub(crate) fn status(&self, now: DateTime<Utc>) -> Option<Status> {
        if self.deleted_at.is_some() {
            return match self.removed_at {
                Some(t) if now >= t => None,
                _ => Some(Status::Released),
            };
        }
        if self.rollback_until.is_some_and(|t| now < t) {
            return Some(Status::RollBacking);
        }
        Some(match self.outcome {
            Outcome::Never => Status::Createing,
            _ if now < self.ready_at => Status::Createing,
            Outcome::Succeed => Status::Normal,
            Outcome::Fail => Status::Failure,
        })
    }

    pub(crate) fn size_gb(&self) -> u64 {
        SNAPSHOT_SIZE_GB
    }
}

/// `start + duration`, saturating: an absurd duration means "never".
fn after(start: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(duration)
        .ok()
        .and_then(|d| start.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What CreateSnapshot asks for.
pub(crate) struct NewSnapshot<'a> {
    pub region: &'a str,
    pub zone: &'a str,
    pub disk_id: &'a str,
    pub name: &'a str,
    pub remark: &'a str,
    pub snapshot_type: &'a str,
}

pub(crate) struct UcsState {
    credentials: HashMap<String, String>,
    /// Region → its zones.
    regions: BTreeMap<String, BTreeSet<String>>,
    pub(crate) disks: BTreeMap<String, Disk>,
    pub(crate) snapshots: HashMap<String, Snapshot>,
    /// Per-disk snapshot cap; 0 = unlimited.
    pub(crate) snapshot_cap: u32,
    next_seq: u64,
}

impl Default for UcsState {
    fn default() -> Self {
        UcsState {
            credentials: HashMap::new(),
            regions: BTreeMap::new(),
            disks: BTreeMap::new(),
            snapshots: HashMap::new(),
            snapshot_cap: DEFAULT_SNAPSHOT_CAP,
            next_seq: 0,
        }
    }
}

impl UcsState {
    pub(crate) fn add_credentials(&mut self, public_key: &str, private_key: &str) {
        self.credentials
            .insert(public_key.to_string(), private_key.to_string());
    }

    pub(crate) fn private_key(&self, public_key: &str) -> Option<&str> {
        self.credentials.get(public_key).map(String::as_str)
    }

    pub(crate) fn add_zone(&mut self, region: &str, zone: &str) {
        self.regions
            .entry(region.to_string())
            .or_default()
            .insert(zone.to_string());
    }

    /// 162 for an unknown Region, 163 for an unknown Zone (when given).
    pub(crate) fn check_location(&self, region: &str, zone: &str) -> Result<(), ApiError> {
        let zones = self
            .regions
            .get(region)
            .ok_or_else(|| ApiError::no_region(region))?;
        if !zone.is_empty() && !zones.contains(zone) {
            return Err(ApiError::no_zone(zone));
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub(crate) fn seed_disk(
        &mut self,
        region: &str,
        zone: &str,
        id: &str,
        name: &str,
        vm_running: bool,
    ) {
        self.add_zone(region, zone);
        self.disks.insert(
            id.to_string(),
            Disk {
                id: id.to_string(),
                region: region.to_string(),
                zone: zone.to_string(),
                name: name.to_string(),
                vm_running,
            },
        );
    }

    /// A snapshot made outside snapwarden, `Normal` after `creating` from
    /// now; the disk is registered first if unknown so that seeding never
    /// fails. The cap is not applied: this is how the account already looks.
    pub(crate) fn seed_snapshot(
        &mut self,
        new: &NewSnapshot<'_>,
        create_time: DateTime<Utc>,
        creating: Duration,
    ) -> String {
        if !self.disks.contains_key(new.disk_id) {
            self.seed_disk(new.region, new.zone, new.disk_id, "", false);
        }
        let ready_at = after(Utc::now(), creating).max(create_time);
        self.insert_snapshot(new, create_time, ready_at, Outcome::Succeed)
    }

    fn insert_snapshot(
        &mut self,
        new: &NewSnapshot<'_>,
        create_time: DateTime<Utc>,
        ready_at: DateTime<Utc>,
        outcome: Outcome,
    ) -> String {
        let id = loop {
            let id = crate::sim::random_id("snap-", 8);
            if !self.snapshots.contains_key(&id) {
                break id;
            }
        };
        let seq = self.next_seq();
        self.snapshots.insert(
            id.clone(),
            Snapshot {
                id: id.clone(),
                seq,
                region: new.region.to_string(),
                zone: new.zone.to_string(),
                disk_id: new.disk_id.to_string(),
                name: new.name.to_string(),
                remark: new.remark.to_string(),
                snapshot_type: new.snapshot_type.to_string(),
                create_time,
                ready_at,
                outcome,
                rollback_until: None,
                deleted_at: None,
                removed_at: None,
            },
        );
        id
    }

    /// `DiskStatus` at `now`: `Snapshoting` while a snapshot of the disk is
    /// being made, `Rollbacking` while one is rolled back onto it, else
    /// `Bound`/`Unbound` (the disk status list of the DescribeDisk page).
    pub(crate) fn disk_status(&self, disk: &Disk, now: DateTime<Utc>) -> &'static str {
        let statuses = self
            .snapshots
            .values()
            .filter(|s| s.disk_id == disk.id)
            .filter_map(|s| s.status(now));
        let mut creating = false;
        for status in statuses {
            match status {
                Status::RollBacking => return "Rollbacking",
                Status::Createing => creating = true,
                _ => {}
            }
        }
        if creating {
            "Snapshoting"
        } else if disk.vm_running {
            "Bound"
        } else {
            "Unbound"
        }
    }

    fn disk_busy(&self, disk_id: &str, now: DateTime<Utc>) -> bool {
        self.snapshots
            .values()
            .any(|s| s.disk_id == disk_id && s.status(now).is_some_and(Status::in_progress))
    }

    /// CreateSnapshot: the disk must exist here, have no snapshot in
    /// progress (2502) and be under the cap (2500). `plan` is asked only
    /// once the request is valid, so a job fault is used by a real snapshot.
    pub(crate) fn create_snapshot(
        &mut self,
        new: &NewSnapshot<'_>,
        now: DateTime<Utc>,
        plan: impl FnOnce() -> (Duration, Outcome),
    ) -> Result<String, ApiError> {
        let here = self
            .disks
            .get(new.disk_id)
            .is_some_and(|d| d.region == new.region && (new.zone.is_empty() || d.zone == new.zone));
        if !here {
            return Err(ApiError::no_disk(new.disk_id));
        }
        if self.disk_busy(new.disk_id, now) {
            return Err(ApiError::disk_busy(new.disk_id));
        }
        let count = self
            .snapshots
            .values()
            .filter(|s| s.disk_id == new.disk_id)
            .filter(|s| s.status(now).is_some_and(|st| st != Status::Released))
            .count();
        if self.snapshot_cap > 0 && count >= self.snapshot_cap as usize {
            return Err(ApiError::snapshot_cap(self.snapshot_cap));
        }
        let (duration, outcome) = plan();
        let zone = match self.disks.get(new.disk_id) {
            Some(d) => d.zone.clone(),
            None => new.zone.to_string(),
        };
        let placed = NewSnapshot {
            zone: &zone,
            ..*new
        };
        Ok(self.insert_snapshot(&placed, now, after(now, duration), outcome))
    }

    fn snapshot_in(
        &self,
        region: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<&Snapshot, ApiError> {
        self.snapshots
            .get(id)
            .filter(|s| {
                s.region == region && s.status(now).is_some_and(|st| st != Status::Released)
            })
            .ok_or_else(|| ApiError::no_snapshot(id))
    }

    /// ModifyNameAndRemark on a snapshot: in any state it is listed in
    /// (the API edits a snapshot's name and remark whatever its state);
    /// an unknown or released one is 8102.
    pub(crate) fn rename_snapshot(
        &mut self,
        region: &str,
        id: &str,
        name: &str,
        remark: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        self.snapshot_in(region, id, now)?;
        if let Some(s) = self.snapshots.get_mut(id) {
            s.name = name.to_string();
            if let Some(r) = remark {
                s.remark = r.to_string();
            }
        }
        Ok(())
    }

    /// DeleteSnapshot: only `Normal` snapshots; the snapshot is `Released`
    /// for `duration`, then no longer listed.
    pub(crate) fn delete_snapshot(
        &mut self,
        region: &str,
        id: &str,
        now: DateTime<Utc>,
        duration: Duration,
    ) -> Result<(), ApiError> {
        let snap = self.snapshot_in(region, id, now)?;
        match snap.status(now) {
            Some(Status::Normal) => {}
            Some(s) if s.in_progress() => return Err(ApiError::disk_busy(&snap.disk_id)),
            Some(s) => {
                return Err(ApiError::invalid(
                    "SnapshotID",
                    &format!("快照状态为 {}, 仅 Normal 状态可删除", s.as_str()),
                ))
            }
            None => return Err(ApiError::no_snapshot(id)),
        }
        if let Some(s) = self.snapshots.get_mut(id) {
            s.deleted_at = Some(now);
            s.removed_at = Some(after(now, duration));
        }
        Ok(())
    }

    /// RollbackSnapshot: a `Normal` snapshot of this disk, the disk idle and
    /// not bound to a running VM; the snapshot is `RollBacking` for
    /// `duration`.
    pub(crate) fn rollback(
        &mut self,
        region: &str,
        disk_id: &str,
        id: &str,
        now: DateTime<Utc>,
        duration: Duration,
    ) -> Result<(), ApiError> {
        let disk = self
            .disks
            .get(disk_id)
            .filter(|d| d.region == region)
            .ok_or_else(|| ApiError::no_disk(disk_id))?;
        let snap = self.snapshot_in(region, id, now)?;
        if snap.disk_id != disk_id {
            return Err(ApiError::invalid(
                "SnapshotID",
                &format!("快照不属于硬盘 {disk_id}"),
            ));
        }
        if self.disk_busy(disk_id, now) {
            return Err(ApiError::disk_busy(disk_id));
        }
        if snap.status(now) != Some(Status::Normal) {
            return Err(ApiError::invalid(
                "SnapshotID",
                "仅 Normal 状态的快照可回滚",
            ));
        }
        if disk.vm_running {
            return Err(ApiError::vm_running(disk_id));
        }
        if let Some(s) = self.snapshots.get_mut(id) {
            s.rollback_until = Some(after(now, duration));
        }
        Ok(())
    }

    /// Snapshots, newest first.
    pub(crate) fn snapshots_newest_first(&self) -> Vec<&Snapshot> {
        let mut list: Vec<&Snapshot> = self.snapshots.values().collect();
        list.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(b.seq.cmp(&a.seq)));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_status_follows_its_snapshot_and_rollback() {
        let mut ucs = UcsState::default();
        ucs.seed_disk("cn", "zone-01", "disk-a", "db", false);
        ucs.seed_disk("cn", "zone-01", "disk-b", "app", true);
        let t0 = Utc::now();
        let job = Duration::from_millis(200);
        let at = |ms: i64| t0 + chrono::TimeDelta::milliseconds(ms);
        let status = |ucs: &UcsState, id: &str, t| {
            let disk = ucs.disks.get(id).expect("seeded disk");
            ucs.disk_status(disk, t)
        };
        assert_eq!(status(&ucs, "disk-a", t0), "Unbound");
        assert_eq!(status(&ucs, "disk-b", t0), "Bound");
        let new = NewSnapshot {
            region: "cn",
            zone: "zone-01",
            disk_id: "disk-a",
            name: "s1",
            remark: "",
            snapshot_type: "Automatic",
        };
        let id = ucs
            .create_snapshot(&new, t0, || (job, Outcome::Succeed))
            .expect("snapshot accepted");
        assert_eq!(status(&ucs, "disk-a", at(100)), "Snapshoting");
        assert_eq!(
            status(&ucs, "disk-b", at(100)),
            "Bound",
            "other disks untouched"
        );
        assert_eq!(status(&ucs, "disk-a", at(250)), "Unbound");
        ucs.rollback("cn", "disk-a", &id, at(300), job)
            .expect("rollback accepted");
        assert_eq!(status(&ucs, "disk-a", at(400)), "Rollbacking");
        assert_eq!(status(&ucs, "disk-a", at(550)), "Unbound");

        // A bound disk goes back to Bound after its snapshot.
        let new_b = NewSnapshot {
            disk_id: "disk-b",
            ..new
        };
        ucs.create_snapshot(&new_b, at(600), || (job, Outcome::Succeed))
            .expect("snapshot accepted");
        assert_eq!(status(&ucs, "disk-b", at(650)), "Snapshoting");
        assert_eq!(status(&ucs, "disk-b", at(900)), "Bound");
        // A failed snapshot does not leave the disk Snapshoting.
        ucs.create_snapshot(&new, at(1000), || (job, Outcome::Fail))
            .expect("snapshot accepted");
        assert_eq!(status(&ucs, "disk-a", at(1300)), "Unbound");
    }
}
