//! Lightsail's operations: dispatch by name, input checks, and every
//! create, list, get, delete and restore on [`LightsailState`].

use std::ops::Bound;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::copy::{auto_snapshot, copy_snapshot};
use super::history::{get_active_names, get_operations};
use super::json::{op_json, resource_json, snapshot_json};
use super::model::{
    family_index, uuid_like, Family, LightsailState, Op, Resource, Snap, DISK_SNAPSHOT_GB,
    INSTANCE_SNAPSHOT_BUNDLE, MAX_TAGS, REGION,
};
use super::paging::{decode_snapshot_token, decode_token, encode_snapshot_token, encode_token};
use super::{epoch, ApiError, DIALECT};
use crate::sim::faults::{FaultKind, FaultRegistry, Outcome};

/// An operation's input: the request body's members.
type Input = Map<String, Value>;
/// An operation's answer.
type Answer = Result<Value, ApiError>;

/// A restore from the snapshot `from`: where, by which action, how it ends
/// and the tags its new resources get.
pub(super) struct Restore<'a> {
    from: &'a str,
    zone: &'a str,
    action: &'a str,
    ends: (Option<DateTime<Utc>>, bool),
    tags: Vec<(String, Option<String>)>,
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
    pub(super) fn ends(&mut self, action: &str) -> (Option<DateTime<Utc>>, bool) {
        let outcome = self
            .faults
            .job_outcome(DIALECT, action, &mut self.fault_hit);
        let end = self.now + chrono::Duration::from_std(self.duration).unwrap_or_default();
        match outcome {
            Outcome::Never => (None, false),
            Outcome::Fail => (Some(end), true),
            Outcome::Succeed => (Some(end), false),
        }
    }

    /// An operation on the snapshot `name` of `family` (its location is
    /// `all`), `Succeeded` when it ends well.
    fn snapshot_op(
        &mut self,
        name: &str,
        family: Family,
        action: &str,
        source: &str,
        (ends_at, fails): (Option<DateTime<Utc>>, bool),
    ) -> Value {
        let type_name = family.type_name();
        self.new_op(
            name,
            type_name,
            action,
            source,
            "all",
            ends_at,
            fails,
            "Succeeded",
        )
    }

    /// A restore from `from` by `action`: how it ends is decided now.
    fn plan_restore<'a>(
        &mut self,
        from: &'a str,
        zone: &'a str,
        action: &'a str,
        tags: Vec<(String, Option<String>)>,
    ) -> Restore<'a> {
        let ends = self.ends(action);
        Restore {
            from,
            zone,
            action,
            ends,
            tags,
        }
    }

    /// Files `name`, a resource of `family` being restored (with its size
    /// or bundle, `shape`), and answers the operation on it.
    fn restore(
        &mut self,
        family: Family,
        name: &str,
        r: &Restore<'_>,
        (size_in_gb, bundle_id): (Option<i64>, Option<String>),
    ) -> Value {
        let (ends_at, fails) = r.ends;
        let resource = Resource {
            zone: r.zone.to_string(),
            arn_id: uuid_like(),
            from_snapshot: Some(r.from.to_string()),
            ready_at: ends_at,
            fails,
            size_in_gb,
            bundle_id,
            created_at: self.now,
            tags: r.tags.clone(),
        };
        let map = match family {
            Family::Instance => &mut self.state.instances,
            Family::Disk => &mut self.state.disks,
        };
        map.insert(name.to_string(), resource);
        let resource_type = family.source_type();
        self.new_op(
            name,
            resource_type,
            r.action,
            r.from,
            r.zone,
            ends_at,
            fails,
            "Succeeded",
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_op(
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

pub(super) fn dispatch(action: &str, input: &Input, ctx: &mut Ctx<'_>) -> Answer {
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
                return Err(not_found("resource", name));
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
        "TagResource" => tag_resource(ctx, input, action),
        "UntagResource" => untag_resource(ctx, input, action),
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
            let r = map
                .get(name)
                .ok_or_else(|| not_found(family.source_type(), name))?;
            Ok(json!({ out: resource_json(name, r, family, now) }))
        }
        "CreateDiskFromSnapshot" => restore_disk(ctx, input, action),
        "CopySnapshot" => copy_snapshot(ctx, input, action),
        "GetOperations" => get_operations(ctx, input, None),
        "GetOperationsForResource" => {
            let name = required(input, "resourceName")?.to_string();
            get_operations(ctx, input, Some(&name))
        }
        "GetActiveNames" => get_active_names(ctx, input),
        "CreateInstancesFromSnapshot" => restore_instances(ctx, input, action),
        other => Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("the simulator does not serve Lightsail operation {other:?}"),
        )),
    }
}

/// A string member that may be absent (an empty string counts as absent).
pub(super) fn optional<'a>(
    input: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, ApiError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::serialization(format!("{key} must be a string"))),
    }
}

/// A boolean member; absent is false.
pub(super) fn flag(input: &Input, key: &str) -> Result<bool, ApiError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::serialization(format!("{key} must be a boolean"))),
    }
}

pub(super) fn required<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match input.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(ApiError::invalid(format!("{key} is required"))),
        Some(_) => Err(ApiError::serialization(format!("{key} must be a string"))),
    }
}

/// `\w[\w\-]*\w`.
pub(super) fn valid_name(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.len() >= 2
        && s.starts_with(word)
        && s.ends_with(word)
        && s.chars().all(|c| word(c) || c == '-')
}

pub(super) fn parse_tags(input: &Input) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let Some(raw) = input.get("tags") else {
        return Ok(Vec::new());
    };
    let list = raw
        .as_array()
        .ok_or_else(|| ApiError::serialization("tags must be a list"))?;
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

pub(super) fn create(ctx: &mut Ctx<'_>, input: &Input, family: Family, action: &str) -> Answer {
    let now = ctx.now;
    // CreateDiskSnapshot takes `diskName` or `instanceName` (then the
    // snapshot is of that instance's system disk), never both.
    let (name_key, source, of_system_disk) = match family {
        Family::Instance => (
            "instanceSnapshotName",
            required(input, "instanceName")?.to_string(),
            false,
        ),
        Family::Disk => {
            let disk = optional(input, "diskName")?;
            let inst = optional(input, "instanceName")?;
            match (disk, inst) {
                (Some(d), None) => ("diskSnapshotName", d.to_string(), false),
                (None, Some(i)) => ("diskSnapshotName", i.to_string(), true),
                _ => {
                    return Err(ApiError::invalid(
                        "The disk name and instance name parameters are mutually exclusive; \
                         define exactly one",
                    ))
                }
            }
        }
    };
    let source_family = if of_system_disk {
        Family::Instance
    } else {
        family
    };
    let name = required(input, name_key)?.to_string();
    if !valid_name(&name) {
        return Err(ApiError::invalid(format!(
            "{name_key} {name:?} does not match \\w[\\w\\-]*\\w"
        )));
    }
    let tags = parse_tags(input)?;
    let zone = match source_family {
        Family::Instance => ctx.state.instances.get(&source),
        Family::Disk => ctx.state.disks.get(&source),
    }
    .map(|r| r.zone.clone())
    .ok_or_else(|| not_found(source_family.source_type(), &source))?;
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
        of_system_disk,
        gone_at: None,
        arn_id: uuid_like(),
    });
    let on_snapshot = ctx.snapshot_op(&name, family, action, &source, (ends_at, fails));
    let on_source = ctx.new_op(
        &source,
        source_family.source_type(),
        action,
        &name,
        &zone,
        ends_at,
        fails,
        "Completed",
    );
    Ok(json!({ "operations": [on_snapshot, on_source] }))
}

pub(super) fn list(ctx: &mut Ctx<'_>, input: &Input, family: Family) -> Answer {
    let now = ctx.now;
    let after = page_token(input, decode_snapshot_token)?;
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
pub(super) fn list_resources(ctx: &mut Ctx<'_>, input: &Input, family: Family) -> Answer {
    let offset = page_token(input, decode_token)?.unwrap_or(0);
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

pub(super) fn get(ctx: &mut Ctx<'_>, input: &Input, family: Family) -> Answer {
    let out = match family {
        Family::Instance => "instanceSnapshot",
        Family::Disk => "diskSnapshot",
    };
    let name = required(input, snapshot_name_key(family))?;
    let s = ctx
        .state
        .live(name, ctx.now)
        .filter(|s| s.family == family)
        .ok_or_else(|| not_found(family.type_name(), name))?;
    Ok(json!({ out: snapshot_json(s, ctx.now) }))
}

pub(super) fn delete(ctx: &mut Ctx<'_>, input: &Input, family: Family, action: &str) -> Answer {
    let now = ctx.now;
    let name = required(input, snapshot_name_key(family))?.to_string();
    let found = ctx
        .state
        .live(&name, now)
        .filter(|s| s.family == family && s.gone_at.is_none())
        .map(|s| s.source.clone());
    let Some(source) = found else {
        return Err(not_found(family.type_name(), &name));
    };
    let (ends_at, fails) = ctx.ends(action);
    if !fails {
        // Never-finishing deletes keep the snapshot listed.
        ctx.state
            .mark_gone(&name, ends_at.unwrap_or(DateTime::<Utc>::MAX_UTC));
    }
    let op = ctx.snapshot_op(&name, family, action, &source, (ends_at, fails));
    Ok(json!({ "operations": [op] }))
}

/// A resource's tags as the model keeps them, key and optional value.
type Tags = Vec<(String, Option<String>)>;

/// The tags of the live snapshot, instance or disk named `name` (one name
/// space), with its resource type and location for the operation.
fn tags_of_named<'a>(
    ctx: &'a mut Ctx<'_>,
    name: &str,
) -> Result<(&'a mut Tags, &'static str, String), ApiError> {
    let now = ctx.now;
    let state = &mut *ctx.state;
    let live = state
        .snapshots
        .get(name)
        .is_some_and(|s| s.gone_at.is_none_or(|t| now < t));
    if live {
        if let Some(s) = state.snapshots.get_mut(name) {
            return Ok((&mut s.tags, s.family.type_name(), "all".to_string()));
        }
    }
    if let Some(r) = state.instances.get_mut(name) {
        let zone = r.zone.clone();
        return Ok((&mut r.tags, Family::Instance.source_type(), zone));
    }
    if let Some(r) = state.disks.get_mut(name) {
        let zone = r.zone.clone();
        return Ok((&mut r.tags, Family::Disk.source_type(), zone));
    }
    Err(not_found("resource", name))
}

/// TagResource `{resourceName*, resourceArn, tags*}`: each key gets the
/// given value (one value per key: an existing key is overwritten), at
/// most [`MAX_TAGS`] in all. Answers `{"operations": [op]}`, done at once.
pub(super) fn tag_resource(ctx: &mut Ctx<'_>, input: &Input, action: &str) -> Answer {
    let name = required(input, "resourceName")?.to_string();
    if !input.contains_key("tags") {
        return Err(ApiError::invalid("tags is required"));
    }
    let new = parse_tags(input)?;
    let (tags, resource_type, zone) = tags_of_named(ctx, &name)?;
    let mut merged = tags.clone();
    for (key, value) in new {
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => merged.push((key, value)),
        }
    }
    if merged.len() > MAX_TAGS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_TAGS} tags per resource"
        )));
    }
    *tags = merged;
    let now = ctx.now;
    let op = ctx.new_op(
        &name,
        resource_type,
        action,
        "",
        &zone,
        Some(now),
        false,
        "Succeeded",
    );
    Ok(json!({ "operations": [op] }))
}

/// UntagResource `{resourceName*, resourceArn, tagKeys*}`: the named keys
/// go; a key the resource does not carry is ignored (UNCONFIRMED: the
/// service may refuse it; the reference says nothing).
pub(super) fn untag_resource(ctx: &mut Ctx<'_>, input: &Input, action: &str) -> Answer {
    let name = required(input, "resourceName")?.to_string();
    let keys: Vec<String> = match input.get("tagKeys") {
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::serialization("tagKeys must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::serialization("tagKeys must be a list")),
        None => return Err(ApiError::invalid("tagKeys is required")),
    };
    let (tags, resource_type, zone) = tags_of_named(ctx, &name)?;
    tags.retain(|(k, _)| !keys.contains(k));
    let now = ctx.now;
    let op = ctx.new_op(
        &name,
        resource_type,
        action,
        "",
        &zone,
        Some(now),
        false,
        "Succeeded",
    );
    Ok(json!({ "operations": [op] }))
}

/// `pageToken` decoded, `None` when absent or empty.
fn page_token<T>(input: &Input, decode: fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    match input.get("pageToken").and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(t) => decode(t)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("The pageToken is not valid")),
    }
}

/// The input member naming a snapshot of `family`.
fn snapshot_name_key(family: Family) -> &'static str {
    match family {
        Family::Instance => "instanceSnapshotName",
        Family::Disk => "diskSnapshotName",
    }
}

/// `NotFoundException` for a missing `what` (an instance, a disk snapshot…).
fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("The {what} does not exist: {name}"))
}

/// `availabilityZone*`: a zone of the simulated region (`us-east-2a`…).
pub(super) fn zone_input(input: &Input) -> Result<String, ApiError> {
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
pub(super) fn usable_snapshot<'a>(
    state: &'a LightsailState,
    name: &str,
    family: Family,
    now: DateTime<Utc>,
) -> Result<&'a Snap, ApiError> {
    let s = state
        .live(name, now)
        .filter(|s| s.family == family && s.gone_at.is_none())
        .ok_or_else(|| not_found(family.type_name(), name))?;
    if s.fails || s.ready_at.is_none_or(|t| now < t) {
        return Err(ApiError::invalid(format!(
            "The {} {name} is not in a state that allows this action",
            family.type_name()
        )));
    }
    Ok(s)
}

/// CreateDiskFromSnapshot: `diskName*`, `availabilityZone*`, `sizeInGb*`,
/// and `diskSnapshotName` or `sourceDiskName` with `restoreDate` or
/// `useLatestRestorableAutoSnapshot` → one operation on the new disk,
/// `CreateDiskFromSnapshot`, `Succeeded` when the disk is ready.
pub(super) fn restore_disk(ctx: &mut Ctx<'_>, input: &Input, action: &str) -> Answer {
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
        Some(_) => return Err(ApiError::serialization("sizeInGb must be a number")),
    };
    // A manual snapshot by `diskSnapshotName`, or an automatic one of
    // `sourceDiskName` by `restoreDate` or `useLatestRestorableAutoSnapshot`.
    let snap = match (
        optional(input, "diskSnapshotName")?,
        optional(input, "sourceDiskName")?,
    ) {
        (Some(name), None) => {
            if input.contains_key("restoreDate") || flag(input, "useLatestRestorableAutoSnapshot")?
            {
                return Err(ApiError::invalid(
                    "Define restoreDate or useLatestRestorableAutoSnapshot only when creating \
                     a disk from an automatic snapshot (with sourceDiskName)",
                ));
            }
            usable_snapshot(ctx.state, name, Family::Disk, now)?
        }
        (None, Some(source)) => {
            if !ctx.state.disks.contains_key(source) {
                return Err(not_found("Disk", source));
            }
            auto_snapshot(ctx.state, input, source, Family::Disk, now)?
        }
        _ => {
            return Err(ApiError::invalid(
                "The disk snapshot name and source disk name parameters are mutually \
                 exclusive; define exactly one",
            ))
        }
    };
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
    let restore = ctx.plan_restore(&snap_name, &zone, action, tags);
    let op = ctx.restore(Family::Disk, &disk, &restore, (Some(size), None));
    Ok(json!({ "operations": [op] }))
}

/// CreateInstancesFromSnapshot: `instanceNames*` (list), `availabilityZone*`,
/// `bundleId*`, `instanceSnapshotName` → one operation per new instance,
/// `CreateInstancesFromSnapshot`, `Succeeded` when it is running.
pub(super) fn restore_instances(ctx: &mut Ctx<'_>, input: &Input, action: &str) -> Answer {
    let now = ctx.now;
    let names: Vec<String> = match input.get("instanceNames") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::serialization("instanceNames must be a list of strings")
                })
            })
            .collect::<Result<_, _>>()?,
        None => return Err(ApiError::invalid("instanceNames is required")),
        Some(_) => return Err(ApiError::serialization("instanceNames must be a list")),
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
    let restore = ctx.plan_restore(&snap_name, &zone, action, tags);
    let shape = (None, Some(bundle));
    let ops: Vec<Value> = names
        .iter()
        .map(|n| ctx.restore(Family::Instance, n, &restore, shape.clone()))
        .collect();
    Ok(json!({ "operations": ops }))
}

#[cfg(test)]
mod tests {
    use super::super::model::SeedSnapshot;
    use super::*;
    use crate::sim::testing::texts;

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
        let got = texts(&next["instanceSnapshots"], "name");
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

    /// The error of `action` on `input`: its HTTP status and `__type`.
    fn refused(
        st: &mut LightsailState,
        faults: &mut FaultRegistry,
        action: &str,
        input: Value,
    ) -> (u16, &'static str) {
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
        let e = dispatch(action, &input, &mut ctx).expect_err("refused");
        (e.status.as_u16(), e.type_name)
    }

    /// TagResource / UntagResource on a snapshot: one succeeded operation
    /// of the snapshot's type, the tags in GetDiskSnapshots (a key given
    /// again replaces its value, other keys stay), and the errors of an
    /// unknown resource (NotFoundException), a missing or bad member.
    #[test]
    fn tag_and_untag_resource_answers_and_errors() {
        let mut st = state_with(&[("snap-a", Family::Disk)], 10);
        let mut faults = FaultRegistry::default();
        let r = call(
            &mut st,
            &mut faults,
            "TagResource",
            json!({"resourceName": "snap-a", "tags": [
                {"key": "keep", "value": "1"},
                {"key": "snapwarden-hold", "value": "first"}
            ]}),
        );
        let op = &r["operations"][0];
        assert_eq!(op["resourceName"], "snap-a", "{r}");
        assert_eq!(op["resourceType"], "DiskSnapshot", "{r}");
        assert_eq!(op["operationType"], "TagResource", "{r}");
        assert_eq!(op["status"], "Succeeded", "{r}");
        call(
            &mut st,
            &mut faults,
            "TagResource",
            json!({"resourceName": "snap-a", "tags": [{"key": "snapwarden-hold", "value": "second"}]}),
        );
        let listed = call(&mut st, &mut faults, "GetDiskSnapshots", json!({}));
        assert_eq!(
            listed["diskSnapshots"][0]["tags"],
            json!([{"key": "keep", "value": "1"}, {"key": "snapwarden-hold", "value": "second"}])
        );
        let r = call(
            &mut st,
            &mut faults,
            "UntagResource",
            json!({"resourceName": "snap-a", "tagKeys": ["snapwarden-hold", "absent"]}),
        );
        assert_eq!(r["operations"][0]["operationType"], "UntagResource", "{r}");
        let listed = call(&mut st, &mut faults, "GetDiskSnapshots", json!({}));
        assert_eq!(
            listed["diskSnapshots"][0]["tags"],
            json!([{"key": "keep", "value": "1"}])
        );

        let cases = [
            (
                "TagResource",
                json!({"resourceName": "nope", "tags": [{"key": "k"}]}),
                (400, "NotFoundException"),
            ),
            (
                "UntagResource",
                json!({"resourceName": "nope", "tagKeys": ["k"]}),
                (400, "NotFoundException"),
            ),
            (
                "TagResource",
                json!({"tags": [{"key": "k"}]}),
                (400, "InvalidInputException"),
            ),
            (
                "TagResource",
                json!({"resourceName": "snap-a"}),
                (400, "InvalidInputException"),
            ),
            (
                "TagResource",
                json!({"resourceName": "snap-a", "tags": [{"key": "aws:x"}]}),
                (400, "InvalidInputException"),
            ),
            (
                "TagResource",
                json!({"resourceName": "snap-a", "tags": [{"key": "k", "value": "v".repeat(257)}]}),
                (400, "InvalidInputException"),
            ),
            (
                "TagResource",
                json!({"resourceName": "snap-a", "tags": "k"}),
                (400, "SerializationException"),
            ),
            (
                "UntagResource",
                json!({"resourceName": "snap-a"}),
                (400, "InvalidInputException"),
            ),
            (
                "UntagResource",
                json!({"resourceName": "snap-a", "tagKeys": [1]}),
                (400, "SerializationException"),
            ),
        ];
        for (action, input, want) in cases {
            let shown = input.to_string();
            assert_eq!(
                refused(&mut st, &mut faults, action, input),
                want,
                "{action} {shown}"
            );
        }
    }
}
