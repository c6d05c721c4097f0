//! KakaoCloud's world as the simulator keeps it: application credentials
//! and the tokens issued for them, instances with their attached volumes,
//! volumes, and volume snapshots with their incremental chains, plus the
//! the API's rules that act on them.
//!
//! Only creation facts are stored. A snapshot's status (`creating` →
//! `available` or `error`; `deleting` → gone) and a restored volume's
//! (`creating` → `available`) are derived from the clock when read.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::ApiError;

/// Project and user shown on every object.
pub(crate) const PROJECT_ID: &str = "c11fcba4sim0project0000000000000";
pub(crate) const USER_ID: &str = "5a7e5d1csim0user00000000000000000";
/// Zone of seeded volumes and instances.
pub(crate) const DEFAULT_ZONE: &str = "kr-central-2-a";
const DEFAULT_SIZE_GB: u64 = 50;
/// The API's default `limit`.
pub(crate) const DEFAULT_LIMIT: u64 = 20;
/// Every simulated instance is running: `vm_state` `active`.
pub(crate) const VM_STATE: &str = "active";

pub(crate) use crate::sim::faults::Outcome;

#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub id: String,
    pub name: String,
    pub size_gb: u64,
    pub zone: String,
    pub instance_id: Option<String>,
    pub is_root: bool,
    pub created_at: DateTime<Utc>,
    pub seq: u64,
    /// Restored volumes are `creating` until then.
    pub ready_at: DateTime<Utc>,
    pub outcome: Outcome,
}

impl Volume {
    pub(crate) fn status(&self, now: DateTime<Utc>) -> &'static str {
        if now < self.ready_at {
            return "creating";
        }
        match (self.outcome, self.instance_id.is_some()) {
            (Outcome::Fail, _) => "error",
            (Outcome::Never, _) => "creating",
            (Outcome::Succeed, true) => "in_use",
            (Outcome::Succeed, false) => "available",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub id: String,
    pub seq: u64,
    pub name: String,
    pub description: Option<String>,
    pub volume_id: String,
    pub size_gb: u64,
    pub is_incremental: bool,
    pub parent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    ready_at: DateTime<Utc>,
    outcome: Outcome,
    /// Set by DELETE: when it started, when it ends, and how.
    delete: Option<(DateTime<Utc>, DateTime<Utc>, Outcome)>,
    /// Made through the control API, not the snapshot API.
    pub manual: bool,
}

/// A snapshot's status, or `None` once it is gone.
impl Snapshot {
    pub(crate) fn status(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if let Some((_, done, outcome)) = self.delete {
            return match outcome {
                _ if now < done => Some("deleting"),
                Outcome::Succeed => None,
                Outcome::Fail => Some("error"),
                Outcome::Never => Some("deleting"),
            };
        }
        if now < self.ready_at {
            return Some("creating");
        }
        Some(match self.outcome {
            Outcome::Succeed => "available",
            Outcome::Fail => "error",
            Outcome::Never => "creating",
        })
    }

    pub(crate) fn deleted_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.delete {
            Some((_, done, Outcome::Succeed)) if now >= done => Some(done),
            _ => None,
        }
    }

    pub(crate) fn updated_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.delete {
            Some((start, done, _)) => {
                if now >= done {
                    done
                } else {
                    start
                }
            }
            None if now >= self.ready_at && self.outcome != Outcome::Never => self.ready_at,
            None => self.created_at,
        }
    }

    /// The API's view (`VolumeSnapshot`).
    pub(crate) fn view(&self, now: DateTime<Utc>) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "size": self.size_gb,
            "real_size": if self.is_incremental { 536_870_912u64 } else { self.size_gb * 1_073_741_824 / 4 },
            "status": self.status(now),
            "volume_id": self.volume_id,
            "user_id": USER_ID,
            "project_id": PROJECT_ID,
            "parent_id": self.parent_id,
            "is_incremental": self.is_incremental,
            "is_dependent_snapshot": self.parent_id.is_some(),
            "schedule_id": null,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at(now)),
        })
    }
}

/// What a token was issued for, as validation answers it.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub credential_id: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub audit_id: String,
}

pub(crate) struct KakaoState {
    credentials: HashMap<String, String>,
    /// Issued tokens, by token.
    tokens: HashMap<String, IssuedToken>,
    /// Lifetime of a new token (12 h on the real service).
    pub token_ttl: Duration,
    /// Largest page the lists return, whatever `limit` asks.
    pub page_limit: u64,
    pub instances: BTreeMap<String, Instance>,
    pub volumes: BTreeMap<String, Volume>,
    pub snapshots: BTreeMap<String, Snapshot>,
    seq: u64,
}

impl Default for KakaoState {
    fn default() -> Self {
        KakaoState {
            credentials: HashMap::new(),
            tokens: HashMap::new(),
            token_ttl: Duration::from_secs(12 * 3600),
            page_limit: 1000,
            instances: BTreeMap::new(),
            volumes: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl KakaoState {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn add_credentials(&mut self, id: &str, secret: &str) {
        self.credentials.insert(id.to_string(), secret.to_string());
    }

    /// A new token for a known credential, with its expiry.
    pub(crate) fn issue_token(
        &mut self,
        id: &str,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Option<(String, IssuedToken)> {
        if self.credentials.get(id).map(String::as_str) != Some(secret) || secret.is_empty() {
            return None;
        }
        let ttl =
            chrono::TimeDelta::from_std(self.token_ttl).unwrap_or(chrono::TimeDelta::hours(12));
        let token = crate::sim::random_id("gAAAAABsim", 48);
        let expires = now + ttl;
        let issued = IssuedToken {
            credential_id: id.to_string(),
            issued_at: now,
            expires_at: expires,
            audit_id: crate::sim::random_id("", 22),
        };
        self.tokens.retain(|_, t| t.expires_at > now);
        self.tokens.insert(token.clone(), issued.clone());
        Some((token, issued))
    }

    /// The token, while it is known and not expired.
    pub(crate) fn live_token(&self, token: &str, now: DateTime<Utc>) -> Option<&IssuedToken> {
        self.tokens.get(token).filter(|t| t.expires_at > now)
    }

    pub(crate) fn token_valid(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.live_token(token, now).is_some()
    }

    pub(crate) fn revoke_tokens(&mut self) -> usize {
        let n = self.tokens.len();
        self.tokens.clear();
        n
    }

    pub(crate) fn seed_volume(
        &mut self,
        id: &str,
        name: &str,
        size_gb: Option<u64>,
        instance: Option<(&str, bool)>,
    ) {
        let now = Utc::now();
        let seq = self.next_seq();
        let v = self.volumes.entry(id.to_string()).or_insert(Volume {
            id: id.to_string(),
            name: name.to_string(),
            size_gb: size_gb.unwrap_or(DEFAULT_SIZE_GB),
            zone: DEFAULT_ZONE.to_string(),
            instance_id: None,
            is_root: false,
            created_at: now,
            seq,
            ready_at: now,
            outcome: Outcome::Succeed,
        });
        if let Some((instance_id, is_root)) = instance {
            v.instance_id = Some(instance_id.to_string());
            v.is_root = is_root;
        }
    }

    /// Detach a volume from its instance (it stays, with its snapshots).
    pub(crate) fn detach_volume(&mut self, id: &str) {
        if let Some(v) = self.volumes.get_mut(id) {
            v.instance_id = None;
            v.is_root = false;
        }
    }

    /// An instance with its volumes (`(volume_id, is_root)`), created or
    /// attached as needed.
    pub(crate) fn seed_instance(&mut self, id: &str, name: &str, volumes: &[(String, bool)]) {
        let now = Utc::now();
        let seq = self.next_seq();
        self.instances.entry(id.to_string()).or_insert(Instance {
            id: id.to_string(),
            name: name.to_string(),
            created_at: now,
            seq,
        });
        for (i, (vid, is_root)) in volumes.iter().enumerate() {
            let vname = format!("{name}-vol{i}");
            self.seed_volume(vid, &vname, None, Some((id, *is_root)));
        }
    }

    /// A snapshot made outside snapwarden: full, available at once.
    pub(crate) fn seed_snapshot(
        &mut self,
        volume_id: &str,
        name: &str,
        description: Option<&str>,
        created_at: DateTime<Utc>,
    ) -> String {
        if !self.volumes.contains_key(volume_id) {
            self.seed_volume(volume_id, volume_id, None, None);
        }
        let snapshot = self.new_snapshot(volume_id, name, description, created_at);
        self.insert_snapshot(snapshot)
    }

    /// A finished manual snapshot of `volume_id` (its size) with a fresh id
    /// and sequence number; a snapshot made by the API overrides the rest.
    fn new_snapshot(
        &mut self,
        volume_id: &str,
        name: &str,
        description: Option<&str>,
        created_at: DateTime<Utc>,
    ) -> Snapshot {
        let size_gb = self
            .volumes
            .get(volume_id)
            .map_or(DEFAULT_SIZE_GB, |v| v.size_gb);
        Snapshot {
            id: uuid_like(),
            seq: self.next_seq(),
            name: name.to_string(),
            description: description.map(str::to_string),
            volume_id: volume_id.to_string(),
            size_gb,
            is_incremental: false,
            parent_id: None,
            created_at,
            ready_at: created_at,
            outcome: Outcome::Succeed,
            delete: None,
            manual: true,
        }
    }

    /// Files `snapshot` under its id; returns the id.
    fn insert_snapshot(&mut self, snapshot: Snapshot) -> String {
        let id = snapshot.id.clone();
        self.snapshots.insert(id.clone(), snapshot);
        id
    }

    pub(crate) fn attached(&self, instance_id: &str) -> Vec<&Volume> {
        let mut v: Vec<&Volume> = self
            .volumes
            .values()
            .filter(|v| v.instance_id.as_deref() == Some(instance_id))
            .collect();
        v.sort_by_key(|v| (!v.is_root, v.seq));
        v
    }

    /// The API's view of an instance (`Instance`).
    pub(crate) fn instance_view(&self, i: &Instance, now: DateTime<Utc>) -> Value {
        let volumes: Vec<Value> = self
            .attached(&i.id)
            .into_iter()
            .map(|v| {
                json!({
                    "id": v.id,
                    "name": v.name,
                    "status": v.status(now),
                    "mount_point": if v.is_root { "/dev/vda" } else { "/dev/vdb" },
                    "type": "ssd",
                    "size": v.size_gb,
                    "is_delete_on_termination": v.is_root,
                    "created_at": format_time(v.created_at),
                    "is_root": v.is_root,
                })
            })
            .collect();
        json!({
            "id": i.id,
            "name": i.name,
            "description": null,
            "flavor": {"id": "sim-flavor", "name": "m2a.large", "vcpus": 2, "ram": 8192},
            "addresses": [],
            "image": {"id": "sim-image", "name": "Ubuntu 22.04"},
            "vm_state": VM_STATE,
            "task_state": null,
            "power_state": "RUNNING",
            "status": "active",
            "user_id": USER_ID,
            "project_id": PROJECT_ID,
            "key_name": null,
            "hostname": i.name,
            "availability_zone": DEFAULT_ZONE,
            "attached_volume_count": volumes.len(),
            "attached_volumes": volumes,
            "security_groups": [],
            "security_group_count": 0,
            "instance_type": "vm",
            "is_hyper_threading": false,
            "is_hadoop": false,
            "is_k8se": false,
            "created_at": format_time(i.created_at),
            "updated_at": format_time(i.created_at),
        })
    }

    pub(crate) fn volume_view(&self, v: &Volume, now: DateTime<Utc>) -> Value {
        let instance_name = v
            .instance_id
            .as_ref()
            .and_then(|i| self.instances.get(i))
            .map(|i| i.name.clone());
        json!({
            "id": v.id,
            "name": v.name,
            "description": null,
            "size": v.size_gb,
            "status": v.status(now),
            "is_bootable": v.is_root,
            "is_root": v.is_root,
            "is_encrypted": false,
            "mount_point": v.instance_id.as_ref().map(|_| if v.is_root { "/dev/vda" } else { "/dev/vdb" }),
            "metadata": {},
            "type": "ssd",
            "volume_type": "SSD",
            "availability_zone": v.zone,
            "attach_status": if v.instance_id.is_some() { "attached" } else { "detached" },
            "instance_id": v.instance_id,
            "instance_name": instance_name,
            "previous_status": null,
            "created_at": format_time(v.created_at),
            "updated_at": format_time(v.created_at),
        })
    }

    /// Snapshots still there (not gone) at `now`.
    pub(crate) fn live_snapshots(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Snapshot> {
        self.snapshots
            .values()
            .filter(move |s| s.status(now).is_some())
    }

    pub(crate) fn live_snapshot(&self, id: &str, now: DateTime<Utc>) -> Option<&Snapshot> {
        self.snapshots.get(id).filter(|s| s.status(now).is_some())
    }

    /// `POST /api/v1/volumes/{volume_id}/snapshots`.
    #[allow(clippy::too_many_arguments)] // the request's fields, flat
    pub(crate) fn create_snapshot(
        &mut self,
        volume_id: &str,
        name: &str,
        description: Option<&str>,
        is_incremental: bool,
        duration: Duration,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<&Snapshot, ApiError> {
        let Some(volume) = self.volumes.get(volume_id) else {
            return Err(ApiError::not_found(format!(
                "Volume {volume_id} could not be found."
            )));
        };
        if volume.status(now) == "creating" {
            return Err(ApiError::conflict(format!(
                "Volume {volume_id} is not ready (status creating)."
            )));
        }
        if let Some(busy) = self
            .live_snapshots(now)
            .find(|s| s.volume_id == volume_id && s.status(now) == Some("creating"))
        {
            return Err(ApiError::conflict(format!(
                "A snapshot of volume {volume_id} is already in progress ({}).",
                busy.id
            )));
        }
        let parent_id = if is_incremental {
            let parent = self
                .live_snapshots(now)
                .filter(|s| s.volume_id == volume_id && s.status(now) == Some("available"))
                .max_by_key(|s| s.seq)
                .map(|s| s.id.clone());
            match parent {
                Some(p) => Some(p),
                None => {
                    return Err(ApiError::bad_request(format!(
                        "Volume {volume_id} has no full snapshot yet: the first snapshot must be \
                         created with is_incremental false."
                    )))
                }
            }
        } else {
            None
        };
        let ready_at = now + chrono::TimeDelta::from_std(duration).unwrap_or_default();
        let snapshot = Snapshot {
            is_incremental,
            parent_id,
            ready_at,
            outcome,
            manual: false,
            ..self.new_snapshot(volume_id, name, description, now)
        };
        let id = self.insert_snapshot(snapshot);
        self.snapshots
            .get(&id)
            .ok_or_else(|| ApiError::internal("snapshot vanished"))
    }

    /// `DELETE /api/v1/snapshots/{id}`: refused while the snapshot is in
    /// transition or while a live snapshot depends on it.
    /// `PUT /api/v1/snapshots/{id}`: a new name and/or description
    /// (`Some(None)` clears it). Not while the snapshot is being created
    /// or deleted (409).
    pub(crate) fn update_snapshot(
        &mut self,
        id: &str,
        name: Option<&str>,
        description: Option<Option<&str>>,
        now: DateTime<Utc>,
    ) -> Result<&Snapshot, ApiError> {
        let Some(s) = self.live_snapshot(id, now) else {
            return Err(ApiError::not_found(format!(
                "Snapshot {id} could not be found."
            )));
        };
        if let Some(state @ ("creating" | "deleting")) = s.status(now) {
            return Err(ApiError::conflict(format!(
                "Snapshot {id} is {state}; try again later."
            )));
        }
        let s = self
            .snapshots
            .get_mut(id)
            .ok_or_else(|| ApiError::internal("snapshot vanished"))?;
        if let Some(n) = name {
            s.name = n.to_string();
        }
        if let Some(d) = description {
            s.description = d.map(str::to_string);
        }
        Ok(s)
    }

    pub(crate) fn delete_snapshot(
        &mut self,
        id: &str,
        duration: Duration,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let Some(s) = self.live_snapshot(id, now) else {
            return Err(ApiError::not_found(format!(
                "Snapshot {id} could not be found."
            )));
        };
        match s.status(now) {
            Some("creating") | Some("deleting") => {
                return Err(ApiError::conflict(format!(
                    "Snapshot {id} is {}; try again later.",
                    s.status(now).unwrap_or_default()
                )))
            }
            _ => {}
        }
        let dependants: Vec<String> = self
            .live_snapshots(now)
            .filter(|d| d.parent_id.as_deref() == Some(id))
            .map(|d| d.id.clone())
            .collect();
        if !dependants.is_empty() {
            return Err(ApiError::conflict(format!(
                "Snapshot {id} has dependent incremental snapshots ({}); delete them first.",
                dependants.join(", ")
            )));
        }
        let done = now + chrono::TimeDelta::from_std(duration).unwrap_or_default();
        if let Some(s) = self.snapshots.get_mut(id) {
            s.delete = Some((now, done, outcome));
        }
        Ok(())
    }

    /// `POST /api/v1/snapshots/{id}/restore`: a new detached volume.
    pub(crate) fn restore(
        &mut self,
        id: &str,
        name: &str,
        zone: &str,
        duration: Duration,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Volume, ApiError> {
        let Some(s) = self.live_snapshot(id, now) else {
            return Err(ApiError::not_found(format!(
                "Snapshot {id} could not be found."
            )));
        };
        if s.status(now) != Some("available") {
            return Err(ApiError::conflict(format!(
                "Snapshot {id} is {}; only an available snapshot can be restored.",
                s.status(now).unwrap_or_default()
            )));
        }
        let size = s.size_gb;
        let seq = self.next_seq();
        let v = Volume {
            id: uuid_like(),
            name: name.to_string(),
            size_gb: size,
            zone: zone.to_string(),
            instance_id: None,
            is_root: false,
            created_at: now,
            seq,
            ready_at: now + chrono::TimeDelta::from_std(duration).unwrap_or_default(),
            outcome,
        };
        self.volumes.insert(v.id.clone(), v.clone());
        Ok(v)
    }
}

/// `2026-07-01T15:00:03Z`.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random UUID-shaped id, as KakaoCloud's ids are.
pub(crate) fn uuid_like() -> String {
    let hex = crate::sim::random_id("", 32)
        .chars()
        .map(|c| {
            if c.is_ascii_hexdigit() {
                c
            } else {
                // Fold the rest of the alphabet onto hex digits.
                char::from(b'0' + (c as u8 % 10))
            }
        })
        .collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
