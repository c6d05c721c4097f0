//! Lightsail's state and operations: instances, disks, snapshots of both
//! families in one name space, and the operations every create and delete
//! returns. Operation and snapshot states are derived from timestamps when
//! read: an operation is `Started` until its end, then `Succeeded` (the
//! snapshot's) or `Completed` (the source's), or `Failed` under a
//! `fail_job` fault; a snapshot is `pending` until then, then `available`
//! (instance) / `completed` (disk) or `error`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{epoch, ApiError, DIALECT};
use crate::sim::faults::{FaultKind, FaultRegistry};

/// Region the simulated account lives in (ARNs and locations).
const REGION: &str = "us-east-2";
const ACCOUNT: &str = "111122223333";
/// Snapshots per page of GetInstanceSnapshots / GetDiskSnapshots: small,
/// so every test pages (the real size is not published).
pub(crate) const DEFAULT_PAGE_SIZE: usize = 3;
/// Size of every simulated disk snapshot, and the bundle every simulated
/// instance snapshot was taken from (`sizeInGb`, `fromBundleId`).
const DISK_SNAPSHOT_GB: i64 = 8;
const INSTANCE_SNAPSHOT_BUNDLE: &str = "small_3_0";
/// Tag limits (lightsail.md §4).
const MAX_TAGS: usize = 50;
/// A deleted snapshot is kept (for the control API's view) this long after
/// it is gone, then forgotten.
const GONE_KEPT: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// A gone snapshot leaves the listing index this long after it is gone: a
/// request whose clock was read a moment before another's may still be
/// served after it, and must see the snapshot exactly as its own clock
/// says (the listing filters by that clock; the index only narrows).
const UNLIST_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Instance,
    Disk,
}

impl Family {
    fn type_name(self) -> &'static str {
        match self {
            Family::Instance => "InstanceSnapshot",
            Family::Disk => "DiskSnapshot",
        }
    }
    fn source_type(self) -> &'static str {
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
struct Resource {
    zone: String,
    arn_id: String,
    /// The snapshot a restore made it from (None: seeded).
    from_snapshot: Option<String>,
    /// When a restore's resource is ready (seeded ones: at once); None:
    /// never.
    ready_at: Option<DateTime<Utc>>,
    /// A restore that ends failed (`fail_job`): the resource ends in error.
    fails: bool,
    /// Disk size (disks) or bundle (instances) it was created with.
    size_in_gb: Option<i64>,
    bundle_id: Option<String>,
    created_at: DateTime<Utc>,
    /// Tags as key → value (None: a tag without a value).
    tags: Vec<(String, Option<String>)>,
}

impl Resource {
    fn seeded(zone: String) -> Self {
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
struct Snap {
    name: String,
    family: Family,
    source: String,
    created_at: DateTime<Utc>,
    /// None: never finishes.
    ready_at: Option<DateTime<Utc>>,
    fails: bool,
    tags: Vec<(String, Option<String>)>,
    from_auto: bool,
    /// Set by a delete: listed until then, gone after.
    gone_at: Option<DateTime<Utc>>,
    arn_id: String,
}

#[derive(Debug, Clone)]
struct Op {
    id: String,
    resource_name: String,
    resource_type: &'static str,
    op_type: String,
    details: String,
    zone: String,
    created_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    fails: bool,
    /// `Succeeded` or `Completed` when done.
    success_word: &'static str,
}

#[derive(Default)]
pub(crate) struct LightsailState {
    credentials: HashMap<String, String>,
    instances: BTreeMap<String, Resource>,
    disks: BTreeMap<String, Resource>,
    snapshots: BTreeMap<String, Snap>,
    operations: HashMap<String, Op>,
    page_size: Option<usize>,
    /// Names of the snapshots a listing can show, per family (index 0
    /// instances, 1 disks), in name order: a page resumes after its last
    /// name in O(log n) and skips neither the other family nor the long
    /// gone. Holds every snapshot until [`UNLIST_SLACK`] after it is gone.
    listed: [BTreeSet<String>; 2],
    /// `(gone_at, name)` of deleted snapshots, soonest first: when each
    /// leaves `listed`, and when it is forgotten ([`GONE_KEPT`]).
    to_unlist: BTreeSet<(DateTime<Utc>, String)>,
    to_forget: BTreeSet<(DateTime<Utc>, String)>,
}

fn family_index(family: Family) -> usize {
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
    pub(crate) fn add_credentials(&mut self, id: &str, secret: &str) {
        self.credentials.insert(id.to_string(), secret.to_string());
    }

    pub(super) fn secret(&self, id: &str) -> Option<&str> {
        self.credentials.get(id).map(String::as_str)
    }

    pub(crate) fn set_page_size(&mut self, n: usize) {
        self.page_size = Some(n.max(1));
    }

    fn page_size(&self) -> usize {
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
            gone_at: None,
            arn_id: uuid_like(),
        });
        Ok(())
    }

    /// The one way a snapshot enters the state (replacing a gone one of
    /// the same name, if any): the map and the listing index.
    fn insert_snapshot(&mut self, snap: Snap) {
        if let Some(old) = self.snapshots.get(&snap.name) {
            self.listed[family_index(old.family)].remove(&snap.name);
        }
        self.listed[family_index(snap.family)].insert(snap.name.clone());
        self.snapshots.insert(snap.name.clone(), snap);
    }

    /// A delete: the snapshot is listed until `at`, then gone.
    fn mark_gone(&mut self, name: &str, at: DateTime<Utc>) {
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
    fn expire(&mut self, now: DateTime<Utc>) {
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

    fn live(&self, name: &str, now: DateTime<Utc>) -> Option<&Snap> {
        self.snapshots
            .get(name)
            .filter(|s| s.gone_at.is_none_or(|t| now < t))
    }

    /// One name space across resource types (lightsail.md §4).
    fn name_in_use(&self, name: &str, now: DateTime<Utc>) -> bool {
        self.instances.contains_key(name)
            || self.disks.contains_key(name)
            || self.live(name, now).is_some()
    }
}

/// What an action may touch.
pub(super) struct Ctx<'a> {
    pub state: &'a mut LightsailState,
    pub faults: &'a mut FaultRegistry,
    pub duration: Duration,
    pub now: DateTime<Utc>,
    pub fault_hit: Option<FaultKind>,
}

impl Ctx<'_> {
    fn ends(&mut self, action: &str) -> (Option<DateTime<Utc>>, bool) {
        let fault = self.faults.for_job(DIALECT, action);
        if fault.is_some() {
            self.fault_hit = fault;
        }
        let end = self.now + chrono::Duration::from_std(self.duration).unwrap_or_default();
        match fault {
            Some(FaultKind::NeverFinish) => (None, false),
            Some(FaultKind::FailJob) => (Some(end), true),
            _ => (Some(end), false),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_op(
        &mut self,
        resource_name: &str,
        resource_type: &'static str,
        op_type: &str,
        details: &str,
        zone: &str,
        ends_at: Option<DateTime<Utc>>,
        fails: bool,
        success_word: &'static str,
    ) -> Value {
        let op = Op {
            id: uuid_like(),
            resource_name: resource_name.to_string(),
            resource_type,
            op_type: op_type.to_string(),
            details: details.to_string(),
            zone: zone.to_string(),
            created_at: self.now,
            ends_at,
            fails,
            success_word,
        };
        let v = op_json(&op, self.now);
        self.state.operations.insert(op.id.clone(), op);
        v
    }
}

pub(super) fn dispatch(
    action: &str,
    input: &Map<String, Value>,
    ctx: &mut Ctx<'_>,
) -> Result<Value, ApiError> {
    let now = ctx.now;
    ctx.state.expire(now);
    match action {
        "CreateInstanceSnapshot" => create(ctx, input, Family::Instance, action),
        "CreateDiskSnapshot" => create(ctx, input, Family::Disk, action),
        "GetInstanceSnapshots" => list(ctx, input, Family::Instance),
        "GetDiskSnapshots" => list(ctx, input, Family::Disk),
        "GetInstanceSnapshot" => get(ctx, input, Family::Instance),
        "GetDiskSnapshot" => get(ctx, input, Family::Disk),
        "DeleteInstanceSnapshot" => delete(ctx, input, Family::Instance, action),
        "DeleteDiskSnapshot" => delete(ctx, input, Family::Disk, action),
        "GetOperation" => {
            let id = required(input, "operationId")?;
            let op = ctx.state.operations.get(id).ok_or_else(|| {
                ApiError::not_found(format!("The operation does not exist: {id}"))
            })?;
            Ok(json!({ "operation": op_json(op, now) }))
        }
        "GetAutoSnapshots" => {
            let name = required(input, "resourceName")?;
            let family = if ctx.state.instances.contains_key(name) {
                Family::Instance
            } else if ctx.state.disks.contains_key(name) {
                Family::Disk
            } else {
                return Err(ApiError::not_found(format!(
                    "The resource does not exist: {name}"
                )));
            };
            let autos: Vec<Value> = ctx
                .state
                .snapshots
                .values()
                .filter(|s| s.from_auto && s.source == name && s.gone_at.is_none())
                .map(|s| {
                    json!({
                        "date": s.created_at.format("%Y-%m-%d").to_string(),
                        "createdAt": epoch(s.created_at),
                        "status": "Success",
                        "fromAttachedDisks": [],
                    })
                })
                .collect();
            Ok(json!({
                "resourceName": name,
                "resourceType": family.source_type(),
                "autoSnapshots": autos,
            }))
        }
        "GetInstances" => list_resources(ctx, input, Family::Instance),
        "GetDisks" => list_resources(ctx, input, Family::Disk),
        "GetInstance" | "GetDisk" => {
            let (key, family, out) = if action == "GetInstance" {
                ("instanceName", Family::Instance, "instance")
            } else {
                ("diskName", Family::Disk, "disk")
            };
            let name = required(input, key)?;
            let map = match family {
                Family::Instance => &ctx.state.instances,
                Family::Disk => &ctx.state.disks,
            };
            let r = map.get(name).ok_or_else(|| {
                ApiError::not_found(format!(
                    "The {} does not exist: {name}",
                    family.source_type()
                ))
            })?;
            Ok(json!({ out: resource_json(name, r, family, now) }))
        }
        "CreateDiskFromSnapshot" => restore_disk(ctx, input, action),
        "CreateInstancesFromSnapshot" => restore_instances(ctx, input, action),
        other => Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("the simulator does not serve Lightsail operation {other:?}"),
        )),
    }
}

fn required<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match input.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(ApiError::invalid(format!("{key} is required"))),
        Some(_) => Err(ApiError::new(
            400,
            "SerializationException",
            format!("{key} must be a string"),
        )),
    }
}

/// `\w[\w\-]*\w` (lightsail.md §4).
fn valid_name(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.len() >= 2
        && s.starts_with(word)
        && s.ends_with(word)
        && s.chars().all(|c| word(c) || c == '-')
}

fn parse_tags(input: &Map<String, Value>) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let Some(raw) = input.get("tags") else {
        return Ok(Vec::new());
    };
    let list = raw
        .as_array()
        .ok_or_else(|| ApiError::new(400, "SerializationException", "tags must be a list"))?;
    if list.len() > MAX_TAGS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_TAGS} tags per resource"
        )));
    }
    let mut out = Vec::new();
    for t in list {
        let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
        let value = t.get("value").and_then(Value::as_str).map(str::to_string);
        if key.is_empty() || key.chars().count() > 128 || key.starts_with("aws:") {
            return Err(ApiError::invalid(format!("invalid tag key {key:?}")));
        }
        if value.as_ref().is_some_and(|v| v.chars().count() > 256) {
            return Err(ApiError::invalid(format!(
                "tag value of {key:?} is too long"
            )));
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn create(
    ctx: &mut Ctx<'_>,
    input: &Map<String, Value>,
    family: Family,
    action: &str,
) -> Result<Value, ApiError> {
    let now = ctx.now;
    let (name_key, source) = match family {
        Family::Instance => (
            "instanceSnapshotName",
            required(input, "instanceName")?.to_string(),
        ),
        Family::Disk => {
            let disk = input.get("diskName").and_then(Value::as_str);
            let inst = input.get("instanceName").and_then(Value::as_str);
            match (disk, inst) {
                (Some(d), None) => ("diskSnapshotName", d.to_string()),
                (None, Some(_)) => {
                    return Err(ApiError::invalid(
                        "the simulator snapshots disks by diskName only",
                    ))
                }
                _ => {
                    return Err(ApiError::invalid(
                        "give exactly one of diskName or instanceName",
                    ))
                }
            }
        }
    };
    let name = required(input, name_key)?.to_string();
    if !valid_name(&name) {
        return Err(ApiError::invalid(format!(
            "{name_key} {name:?} does not match \\w[\\w\\-]*\\w"
        )));
    }
    let tags = parse_tags(input)?;
    let zone = match family {
        Family::Instance => ctx.state.instances.get(&source),
        Family::Disk => ctx.state.disks.get(&source),
    }
    .map(|r| r.zone.clone())
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "The {} does not exist: {source}",
            family.source_type()
        ))
    })?;
    if ctx.state.name_in_use(&name, now) {
        return Err(ApiError::invalid(format!(
            "Some names are already in use: {name}"
        )));
    }
    let (ends_at, fails) = ctx.ends(action);
    ctx.state.insert_snapshot(Snap {
        name: name.clone(),
        family,
        source: source.clone(),
        created_at: now,
        ready_at: ends_at,
        fails,
        tags,
        from_auto: false,
        gone_at: None,
        arn_id: uuid_like(),
    });
    let on_snapshot = ctx.new_op(
        &name,
        family.type_name(),
        action,
        &source,
        "all",
        ends_at,
        fails,
        "Succeeded",
    );
    let on_source = ctx.new_op(
        &source,
        family.source_type(),
        action,
        &name,
        &zone,
        ends_at,
        fails,
        "Completed",
    );
    Ok(json!({ "operations": [on_snapshot, on_source] }))
}

fn list(ctx: &mut Ctx<'_>, input: &Map<String, Value>, family: Family) -> Result<Value, ApiError> {
    let now = ctx.now;
    let after = match input.get("pageToken").and_then(Value::as_str) {
        None | Some("") => None,
        Some(t) => Some(
            decode_snapshot_token(t)
                .ok_or_else(|| ApiError::invalid("The pageToken is not valid"))?,
        ),
    };
    let state = &*ctx.state;
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let size = state.page_size();
    // Snapshots by name, this family, not gone at `now`; one more than a
    // page tells whether another page follows.
    let found: Vec<&Snap> = state.listed[family_index(family)]
        .range::<String, _>((start, Bound::Unbounded))
        .filter_map(|name| state.snapshots.get(name))
        .filter(|s| s.family == family && s.gone_at.is_none_or(|t| now < t))
        .take(size + 1)
        .collect();
    let page: Vec<Value> = found
        .iter()
        .take(size)
        .map(|s| snapshot_json(s, now))
        .collect();
    let key = match family {
        Family::Instance => "instanceSnapshots",
        Family::Disk => "diskSnapshots",
    };
    let mut out = json!({ key: page });
    if found.len() > size {
        if let Some(last) = found.get(size - 1) {
            out["nextPageToken"] = json!(encode_snapshot_token(&last.name));
        }
    }
    Ok(out)
}

/// GetInstances / GetDisks: a page of `page_size` resources by name, with
/// `nextPageToken` while more remain.
fn list_resources(
    ctx: &mut Ctx<'_>,
    input: &Map<String, Value>,
    family: Family,
) -> Result<Value, ApiError> {
    let offset = match input.get("pageToken").and_then(Value::as_str) {
        None | Some("") => 0,
        Some(t) => {
            decode_token(t).ok_or_else(|| ApiError::invalid("The pageToken is not valid"))?
        }
    };
    let (map, key) = match family {
        Family::Instance => (&ctx.state.instances, "instances"),
        Family::Disk => (&ctx.state.disks, "disks"),
    };
    let size = ctx.state.page_size();
    let now = ctx.now;
    let page: Vec<Value> = map
        .iter()
        .skip(offset)
        .take(size)
        .map(|(name, r)| resource_json(name, r, family, now))
        .collect();
    let mut out = json!({ key: page });
    if offset + size < map.len() {
        out["nextPageToken"] = json!(encode_token(offset + size));
    }
    Ok(out)
}

fn get(ctx: &mut Ctx<'_>, input: &Map<String, Value>, family: Family) -> Result<Value, ApiError> {
    let (key, out) = match family {
        Family::Instance => ("instanceSnapshotName", "instanceSnapshot"),
        Family::Disk => ("diskSnapshotName", "diskSnapshot"),
    };
    let name = required(input, key)?;
    let s = ctx
        .state
        .live(name, ctx.now)
        .filter(|s| s.family == family)
        .ok_or_else(|| {
            ApiError::not_found(format!("The {} does not exist: {name}", family.type_name()))
        })?;
    Ok(json!({ out: snapshot_json(s, ctx.now) }))
}

fn delete(
    ctx: &mut Ctx<'_>,
    input: &Map<String, Value>,
    family: Family,
    action: &str,
) -> Result<Value, ApiError> {
    let now = ctx.now;
    let key = match family {
        Family::Instance => "instanceSnapshotName",
        Family::Disk => "diskSnapshotName",
    };
    let name = required(input, key)?.to_string();
    let found = ctx
        .state
        .live(&name, now)
        .filter(|s| s.family == family && s.gone_at.is_none())
        .map(|s| s.source.clone());
    let Some(source) = found else {
        return Err(ApiError::not_found(format!(
            "The {} does not exist: {name}",
            family.type_name()
        )));
    };
    let (ends_at, fails) = ctx.ends(action);
    if !fails {
        // Never-finishing deletes keep the snapshot listed.
        ctx.state
            .mark_gone(&name, ends_at.unwrap_or(DateTime::<Utc>::MAX_UTC));
    }
    let op = ctx.new_op(
        &name,
        family.type_name(),
        action,
        &source,
        "all",
        ends_at,
        fails,
        "Succeeded",
    );
    Ok(json!({ "operations": [op] }))
}

/// `availabilityZone*`: a zone of the simulated region (`us-east-2a`…).
fn zone_input(input: &Map<String, Value>) -> Result<String, ApiError> {
    let zone = required(input, "availabilityZone")?;
    let ok = zone
        .strip_prefix(REGION)
        .is_some_and(|rest| rest.len() == 1 && rest.chars().all(|c| c.is_ascii_lowercase()));
    if !ok {
        return Err(ApiError::invalid(format!(
            "The availability zone {zone} is not valid in {REGION}"
        )));
    }
    Ok(zone.to_string())
}

/// A snapshot of `family` a restore may start from: live and good.
fn usable_snapshot<'a>(
    state: &'a LightsailState,
    name: &str,
    family: Family,
    now: DateTime<Utc>,
) -> Result<&'a Snap, ApiError> {
    let s = state
        .live(name, now)
        .filter(|s| s.family == family && s.gone_at.is_none())
        .ok_or_else(|| {
            ApiError::not_found(format!("The {} does not exist: {name}", family.type_name()))
        })?;
    if s.fails || s.ready_at.is_none_or(|t| now < t) {
        return Err(ApiError::invalid(format!(
            "The {} {name} is not in a state that allows this action",
            family.type_name()
        )));
    }
    Ok(s)
}

/// CreateDiskFromSnapshot: `diskName*`, `availabilityZone*`, `sizeInGb*`,
/// `diskSnapshotName` (the simulator restores from a named snapshot only,
/// not from `sourceDiskName` + auto snapshots) → one operation on the new
/// disk, `CreateDiskFromSnapshot`, `Succeeded` when the disk is ready.
fn restore_disk(
    ctx: &mut Ctx<'_>,
    input: &Map<String, Value>,
    action: &str,
) -> Result<Value, ApiError> {
    let now = ctx.now;
    let disk = required(input, "diskName")?.to_string();
    if !valid_name(&disk) {
        return Err(ApiError::invalid(format!(
            "diskName {disk:?} does not match \\w[\\w\\-]*\\w"
        )));
    }
    let zone = zone_input(input)?;
    let size = match input.get("sizeInGb") {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::invalid("sizeInGb must be an integer"))?,
        None => return Err(ApiError::invalid("sizeInGb is required")),
        Some(_) => {
            return Err(ApiError::new(
                400,
                "SerializationException",
                "sizeInGb must be a number",
            ))
        }
    };
    let Some(snap_name) = input.get("diskSnapshotName").and_then(Value::as_str) else {
        return Err(ApiError::invalid(
            "the simulator restores disks from diskSnapshotName only",
        ));
    };
    let snap = usable_snapshot(ctx.state, snap_name, Family::Disk, now)?;
    let snap_size = DISK_SNAPSHOT_GB;
    if size < snap_size {
        return Err(ApiError::invalid(format!(
            "sizeInGb {size} is smaller than the snapshot ({snap_size} GB)"
        )));
    }
    let snap_name = snap.name.clone();
    // Tags given to the new resource are kept on it.
    let tags = parse_tags(input)?;
    if ctx.state.name_in_use(&disk, now) {
        return Err(ApiError::invalid(format!(
            "Some names are already in use: {disk}"
        )));
    }
    let (ends_at, fails) = ctx.ends(action);
    ctx.state.disks.insert(
        disk.clone(),
        Resource {
            zone: zone.clone(),
            arn_id: uuid_like(),
            from_snapshot: Some(snap_name.clone()),
            ready_at: ends_at,
            fails,
            size_in_gb: Some(size),
            bundle_id: None,
            created_at: now,
            tags: tags.clone(),
        },
    );
    let op = ctx.new_op(
        &disk,
        "Disk",
        action,
        &snap_name,
        &zone,
        ends_at,
        fails,
        "Succeeded",
    );
    Ok(json!({ "operations": [op] }))
}

/// CreateInstancesFromSnapshot: `instanceNames*` (list), `availabilityZone*`,
/// `bundleId*`, `instanceSnapshotName` → one operation per new instance,
/// `CreateInstancesFromSnapshot`, `Succeeded` when it is running.
fn restore_instances(
    ctx: &mut Ctx<'_>,
    input: &Map<String, Value>,
    action: &str,
) -> Result<Value, ApiError> {
    let now = ctx.now;
    let names: Vec<String> = match input.get("instanceNames") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::new(
                        400,
                        "SerializationException",
                        "instanceNames must be a list of strings",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => return Err(ApiError::invalid("instanceNames is required")),
        Some(_) => {
            return Err(ApiError::new(
                400,
                "SerializationException",
                "instanceNames must be a list",
            ))
        }
    };
    if names.is_empty() {
        return Err(ApiError::invalid("instanceNames is required"));
    }
    for n in &names {
        if !valid_name(n) {
            return Err(ApiError::invalid(format!(
                "instance name {n:?} does not match \\w[\\w\\-]*\\w"
            )));
        }
    }
    let zone = zone_input(input)?;
    let bundle = required(input, "bundleId")?.to_string();
    let Some(snap_name) = input.get("instanceSnapshotName").and_then(Value::as_str) else {
        return Err(ApiError::invalid(
            "the simulator restores instances from instanceSnapshotName only",
        ));
    };
    let snap_name = usable_snapshot(ctx.state, snap_name, Family::Instance, now)?
        .name
        .clone();
    if bundle != INSTANCE_SNAPSHOT_BUNDLE {
        return Err(ApiError::invalid(format!(
            "The bundle {bundle} is smaller than the snapshot's ({INSTANCE_SNAPSHOT_BUNDLE})"
        )));
    }
    let in_use: Vec<&String> = names
        .iter()
        .filter(|n| ctx.state.name_in_use(n, now))
        .collect();
    if !in_use.is_empty() || (1..names.len()).any(|i| names[..i].contains(&names[i])) {
        return Err(ApiError::invalid(format!(
            "Some names are already in use: {}",
            names.join(", ")
        )));
    }
    let tags = parse_tags(input)?;
    let (ends_at, fails) = ctx.ends(action);
    let mut ops = Vec::new();
    for n in &names {
        ctx.state.instances.insert(
            n.clone(),
            Resource {
                zone: zone.clone(),
                arn_id: uuid_like(),
                from_snapshot: Some(snap_name.clone()),
                ready_at: ends_at,
                fails,
                size_in_gb: None,
                bundle_id: Some(bundle.clone()),
                created_at: now,
                tags: tags.clone(),
            },
        );
        ops.push(ctx.new_op(
            n,
            "Instance",
            action,
            &snap_name,
            &zone,
            ends_at,
            fails,
            "Succeeded",
        ));
    }
    Ok(json!({ "operations": ops }))
}

/// An instance (`state` `{code, name}`: pending → running, or stopped when
/// its restore failed) or a disk (`state` pending → available, or error).
fn resource_json(name: &str, r: &Resource, family: Family, now: DateTime<Utc>) -> Value {
    let ready = r.ready_at.is_some_and(|t| now >= t);
    let tags: Vec<Value> = r
        .tags
        .iter()
        .map(|(k, v)| match v {
            Some(v) => json!({ "key": k, "value": v }),
            None => json!({ "key": k }),
        })
        .collect();
    let mut v = json!({
        "name": name,
        "arn": format!("arn:aws:lightsail:{REGION}:{ACCOUNT}:{}/{}", family.source_type(), r.arn_id),
        "supportCode": format!("{ACCOUNT}/{}", &r.arn_id[..8]),
        "createdAt": epoch(r.created_at),
        "location": { "availabilityZone": r.zone, "regionName": REGION },
        "resourceType": family.source_type(),
        "tags": tags,
        "addOns": [],
    });
    match family {
        Family::Instance => {
            let (code, state) = match (ready, r.fails) {
                (false, _) => (0, "pending"),
                (true, true) => (80, "stopped"),
                (true, false) => (16, "running"),
            };
            v["state"] = json!({ "code": code, "name": state });
            v["blueprintId"] = json!("ubuntu_22_04");
            v["bundleId"] = json!(r.bundle_id.as_deref().unwrap_or(INSTANCE_SNAPSHOT_BUNDLE));
        }
        Family::Disk => {
            v["state"] = json!(match (ready, r.fails) {
                (false, _) => "pending",
                (true, true) => "error",
                (true, false) => "available",
            });
            v["sizeInGb"] = json!(r.size_in_gb.unwrap_or(DISK_SNAPSHOT_GB));
            v["isAttached"] = json!(false);
        }
    }
    v
}

fn op_json(o: &Op, now: DateTime<Utc>) -> Value {
    let done = o.ends_at.is_some_and(|t| now >= t);
    let status = match (done, o.fails) {
        (false, _) => "Started",
        (true, true) => "Failed",
        (true, false) => o.success_word,
    };
    let changed = if done {
        o.ends_at.unwrap_or(o.created_at)
    } else {
        o.created_at
    };
    let mut v = json!({
        "id": o.id,
        "resourceName": o.resource_name,
        "resourceType": o.resource_type,
        "createdAt": epoch(o.created_at),
        "location": { "availabilityZone": o.zone, "regionName": REGION },
        "isTerminal": done,
        "operationDetails": o.details,
        "operationType": o.op_type,
        "status": status,
        "statusChangedAt": epoch(changed),
    });
    if done && o.fails {
        v["errorCode"] = json!("InternalError");
        v["errorDetails"] = json!(format!(
            "The {} operation failed (simulated fault)",
            o.op_type
        ));
    }
    v
}

fn snapshot_json(s: &Snap, now: DateTime<Utc>) -> Value {
    let ready = s.ready_at.is_some_and(|t| now >= t);
    let tags: Vec<Value> = s
        .tags
        .iter()
        .map(|(k, v)| match v {
            Some(v) => json!({ "key": k, "value": v }),
            None => json!({ "key": k }),
        })
        .collect();
    let arn = format!(
        "arn:aws:lightsail:{REGION}:{ACCOUNT}:{}/{}",
        s.family.type_name(),
        s.arn_id
    );
    let source_arn = format!(
        "arn:aws:lightsail:{REGION}:{ACCOUNT}:{}/{}",
        s.family.source_type(),
        s.arn_id
    );
    match s.family {
        Family::Instance => json!({
            "name": s.name,
            "arn": arn,
            "supportCode": format!("{ACCOUNT}/ami-{}", &s.arn_id[..8]),
            "createdAt": epoch(s.created_at),
            "location": { "availabilityZone": "all", "regionName": REGION },
            "resourceType": "InstanceSnapshot",
            "tags": tags,
            "state": match (ready, s.fails) { (false, _) => "pending", (true, true) => "error", (true, false) => "available" },
            "fromAttachedDisks": [],
            "fromInstanceName": s.source,
            "fromInstanceArn": source_arn,
            "fromBlueprintId": "ubuntu_22_04",
            "fromBundleId": INSTANCE_SNAPSHOT_BUNDLE,
            "isFromAutoSnapshot": s.from_auto,
            "sizeInGb": 40,
        }),
        Family::Disk => {
            let progress = match (ready, s.ready_at) {
                (true, _) => 100,
                (false, Some(end)) => {
                    let total = (end - s.created_at).num_milliseconds().max(1);
                    let done = (now - s.created_at).num_milliseconds().clamp(0, total);
                    (done * 100 / total).min(99)
                }
                (false, None) => 0,
            };
            json!({
                "name": s.name,
                "arn": arn,
                "supportCode": format!("{ACCOUNT}/snap-{}", &s.arn_id[..8]),
                "createdAt": epoch(s.created_at),
                "location": { "availabilityZone": "all", "regionName": REGION },
                "resourceType": "DiskSnapshot",
                "tags": tags,
                "sizeInGb": DISK_SNAPSHOT_GB,
                "state": match (ready, s.fails) { (false, _) => "pending", (true, true) => "error", (true, false) => "completed" },
                "progress": format!("{progress}%"),
                "fromDiskName": s.source,
                "fromDiskArn": source_arn,
                "isFromAutoSnapshot": s.from_auto,
            })
        }
    }
}

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"v\":1,\"o\":{offset}}}"))
}

/// A snapshot listing's token: the page resumes after this name (stable
/// while snapshots come and go between pages, as an offset is not).
fn encode_snapshot_token(after: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!({ "v": 2, "after": after }).to_string())
}

fn decode_snapshot_token(t: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    if v.get("v")?.as_u64()? != 2 {
        return None;
    }
    Some(v.get("after")?.as_str()?.to_string())
}

fn decode_token(t: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    usize::try_from(v.get("o")?.as_u64()?).ok()
}

/// A GUID-shaped id, as Lightsail's operation ids are.
fn uuid_like() -> String {
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
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(names: &[(&str, Family)], page: usize) -> LightsailState {
        let mut st = LightsailState::default();
        st.set_page_size(page);
        let t0 = Utc::now() - chrono::TimeDelta::days(1);
        for (name, family) in names {
            let seed = SeedSnapshot {
                name: name.to_string(),
                source: "web-1".to_string(),
                resource: if *family == Family::Disk {
                    "disk"
                } else {
                    "instance"
                }
                .to_string(),
                tags: Vec::new(),
                auto: false,
                created_at: Some(t0),
            };
            st.seed_snapshot(&seed, t0).expect("seeded");
        }
        st
    }

    fn call(
        st: &mut LightsailState,
        faults: &mut FaultRegistry,
        action: &str,
        input: Value,
    ) -> Value {
        let mut ctx = Ctx {
            state: st,
            faults,
            duration: Duration::from_millis(100),
            now: Utc::now(),
            fault_hit: None,
        };
        let Value::Object(input) = input else {
            panic!("input must be an object");
        };
        dispatch(action, &input, &mut ctx).expect("answered")
    }

    /// Every page of a listing: the names in order, and how many pages.
    fn pages(
        st: &mut LightsailState,
        faults: &mut FaultRegistry,
        action: &str,
    ) -> (Vec<String>, usize) {
        let key = if action == "GetInstanceSnapshots" {
            "instanceSnapshots"
        } else {
            "diskSnapshots"
        };
        let (mut names, mut token, mut n) = (Vec::new(), None::<String>, 0);
        loop {
            let input = token.map_or(json!({}), |t| json!({ "pageToken": t }));
            let page = call(st, faults, action, input);
            n += 1;
            for s in page[key].as_array().expect("list") {
                names.push(s["name"].as_str().expect("name").to_string());
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(t) => token = Some(t.to_string()),
                None => return (names, n),
            }
        }
    }

    #[test]
    fn pages_cover_each_family_in_name_order_with_no_empty_last_page() {
        let mut names: Vec<(String, Family)> = (0..7)
            .map(|i| (format!("inst-{i}"), Family::Instance))
            .collect();
        names.extend((0..5).map(|i| (format!("a-disk-{i}"), Family::Disk)));
        let refs: Vec<(&str, Family)> = names.iter().map(|(n, f)| (n.as_str(), *f)).collect();
        let mut st = state_with(&refs, 3);
        let mut faults = FaultRegistry::default();
        let (inst, n) = pages(&mut st, &mut faults, "GetInstanceSnapshots");
        let want: Vec<String> = (0..7).map(|i| format!("inst-{i}")).collect();
        assert_eq!((inst, n), (want, 3));
        let (disks, n) = pages(&mut st, &mut faults, "GetDiskSnapshots");
        assert_eq!(disks.len(), 5);
        assert_eq!(n, 2);
        // Exactly one full page: no token, no empty page after it.
        let mut st = state_with(&refs[..3], 3);
        assert_eq!(pages(&mut st, &mut faults, "GetInstanceSnapshots").1, 1);
        let bad = {
            let mut ctx = Ctx {
                state: &mut st,
                faults: &mut faults,
                duration: Duration::ZERO,
                now: Utc::now(),
                fault_hit: None,
            };
            let input = json!({ "pageToken": encode_token(3) });
            let Value::Object(input) = input else {
                unreachable!()
            };
            dispatch("GetInstanceSnapshots", &input, &mut ctx).expect_err("old offset token")
        };
        assert_eq!(bad.type_name, "InvalidInputException");
    }

    #[test]
    fn a_page_resumes_after_its_last_name_when_snapshots_go_in_between() {
        let names: Vec<String> = (0..6).map(|i| format!("s-{i}")).collect();
        let refs: Vec<(&str, Family)> = names
            .iter()
            .map(|n| (n.as_str(), Family::Instance))
            .collect();
        let mut st = state_with(&refs, 2);
        let mut faults = FaultRegistry::default();
        let first = call(&mut st, &mut faults, "GetInstanceSnapshots", json!({}));
        let token = first["nextPageToken"].as_str().expect("token").to_string();
        // s-0 (already read) goes: an offset would now skip s-2.
        st.mark_gone("s-0", Utc::now() - chrono::TimeDelta::seconds(5));
        let next = call(
            &mut st,
            &mut faults,
            "GetInstanceSnapshots",
            json!({ "pageToken": token }),
        );
        let got: Vec<&str> = next["instanceSnapshots"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(got, ["s-2", "s-3"]);
    }

    #[test]
    fn gone_snapshots_leave_the_listing_then_the_state_and_names_can_be_reused() {
        let mut st = state_with(&[("a1", Family::Instance), ("b1", Family::Instance)], 10);
        let mut faults = FaultRegistry::default();
        let now = Utc::now();
        st.mark_gone("a1", now - chrono::TimeDelta::minutes(11));
        st.mark_gone("b1", now + chrono::TimeDelta::hours(1));
        let (names, _) = pages(&mut st, &mut faults, "GetInstanceSnapshots");
        assert_eq!(names, ["b1"]);
        assert!(
            !st.snapshots.contains_key("a1"),
            "forgotten after 10 minutes"
        );
        assert!(!st.listed[0].contains("a1"));
        // A never-ending delete keeps it listed, and the next request does
        // not trip over the end of time.
        st.mark_gone("b1", DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            pages(&mut st, &mut faults, "GetInstanceSnapshots").0,
            ["b1"]
        );
        // A name gone and taken again by the other family lists there only.
        st.mark_gone("b1", now - chrono::TimeDelta::seconds(30));
        let seed = SeedSnapshot {
            name: "b1".into(),
            source: "d1".into(),
            resource: "disk".into(),
            tags: Vec::new(),
            auto: false,
            created_at: None,
        };
        st.seed_snapshot(&seed, now).expect("name free again");
        assert!(pages(&mut st, &mut faults, "GetInstanceSnapshots")
            .0
            .is_empty());
        assert_eq!(pages(&mut st, &mut faults, "GetDiskSnapshots").0, ["b1"]);
    }
}
