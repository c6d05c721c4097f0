//! Lightsail's JSON shapes of resources, operations and snapshots, as a
//! state reads at a given moment.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::epoch;
use super::model::{
    Family, Op, Resource, Snap, ACCOUNT, DISK_SNAPSHOT_GB, INSTANCE_SNAPSHOT_BUNDLE, REGION,
};

/// `[{key, value}]`, `value` left out for a key-only tag.
fn tags_json(tags: &[(String, Option<String>)]) -> Vec<Value> {
    tags.iter()
        .map(|(k, v)| match v {
            Some(v) => json!({ "key": k, "value": v }),
            None => json!({ "key": k }),
        })
        .collect()
}

/// A resource's or snapshot's ARN in the simulated region and account.
fn arn_of(resource_type: &str, id: &str) -> String {
    format!("arn:aws:lightsail:{REGION}:{ACCOUNT}:{resource_type}/{id}")
}

/// An instance (`state` `{code, name}`: pending → running, or stopped when
/// its restore failed) or a disk (`state` pending → available, or error).
pub(super) fn resource_json(name: &str, r: &Resource, family: Family, now: DateTime<Utc>) -> Value {
    let ready = r.ready_at.is_some_and(|t| now >= t);
    let tags = tags_json(&r.tags);
    let mut v = json!({
        "name": name,
        "arn": arn_of(family.source_type(), &r.arn_id),
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

pub(super) fn op_json(o: &Op, now: DateTime<Utc>) -> Value {
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

pub(super) fn snapshot_json(s: &Snap, now: DateTime<Utc>) -> Value {
    let ready = s.ready_at.is_some_and(|t| now >= t);
    let source_arn = arn_of(s.family.source_type(), &s.arn_id);
    let mut v = json!({
        "name": s.name,
        "arn": arn_of(s.family.type_name(), &s.arn_id),
        "createdAt": epoch(s.created_at),
        "location": { "availabilityZone": "all", "regionName": REGION },
        "tags": tags_json(&s.tags),
        "isFromAutoSnapshot": s.from_auto,
    });
    let own = match s.family {
        Family::Instance => json!({
            "supportCode": format!("{ACCOUNT}/ami-{}", &s.arn_id[..8]),
            "resourceType": "InstanceSnapshot",
            "state": match (ready, s.fails) { (false, _) => "pending", (true, true) => "error", (true, false) => "available" },
            "fromAttachedDisks": [],
            "fromInstanceName": s.source,
            "fromInstanceArn": source_arn,
            "fromBlueprintId": "ubuntu_22_04",
            "fromBundleId": INSTANCE_SNAPSHOT_BUNDLE,
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
            let mut own = json!({
                "supportCode": format!("{ACCOUNT}/snap-{}", &s.arn_id[..8]),
                "resourceType": "DiskSnapshot",
                "sizeInGb": DISK_SNAPSHOT_GB,
                "state": match (ready, s.fails) { (false, _) => "pending", (true, true) => "error", (true, false) => "completed" },
                "progress": format!("{progress}%"),
            });
            // A system-disk snapshot names the instance it was taken of,
            // a block-storage one its disk.
            if s.of_system_disk {
                own["fromInstanceName"] = json!(s.source);
                own["fromInstanceArn"] = json!(arn_of(Family::Instance.source_type(), &s.arn_id));
            } else {
                own["fromDiskName"] = json!(s.source);
                own["fromDiskArn"] = json!(source_arn);
            }
            own
        }
    };
    if let (Some(all), Value::Object(own)) = (v.as_object_mut(), own) {
        all.extend(own);
    }
    v
}
