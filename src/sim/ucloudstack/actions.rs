//! The UCloudStack actions the simulator answers (the snapshot actions of
//! the API's newer revision), their parameters (0-based
//! arrays `Name.N`, `Offset`/`Limit`) and their JSON shapes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::model::{NewSnapshot, Snapshot, UcsState};
use super::{Params, DIALECT};
use crate::sim::faults::{FaultKind, FaultRegistry};
use crate::sim::form::{self, Paging};

/// `Limit` default and cap (the reference: "默认为20，最大100", default 20,
/// at most 100).
const PAGING: Paging = Paging {
    offset: "Offset",
    limit: "Limit",
    default_limit: 20,
    max_limit: 100,
};
const MAX_NAME_CHARS: usize = 30;
const MAX_REMARK_CHARS: usize = 100;
const TYPES: &[&str] = &["Manual", "Automatic"];

/// What one action may touch.
pub(crate) struct Ctx<'a> {
    pub ucs: &'a mut UcsState,
    pub faults: &'a mut FaultRegistry,
    pub duration: Duration,
    /// Set when a `fail_job`/`never_finish` fault shaped a new snapshot.
    pub fault_hit: Option<FaultKind>,
    pub params: &'a Params,
    pub region: &'a str,
    pub zone: &'a str,
    pub now: DateTime<Utc>,
}

/// Runs `action`; the answer carries `Action`, `RetCode` 0 and `Message`.
pub(crate) fn dispatch(action: &str, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let mut body = match action {
        "CreateSnapshot" => create_snapshot(ctx)?,
        "DescribeSnapshot" => describe_snapshot(ctx)?,
        "DescribeDisk" => describe_disk(ctx)?,
        "DeleteSnapshot" => delete_snapshot(ctx)?,
        "RollbackSnapshot" => rollback_snapshot(ctx)?,
        "ModifyNameAndRemark" => modify_name_and_remark(ctx)?,
        other => return Err(ApiError::unknown_action(other)),
    };
    body.insert("Action".into(), json!(format!("{action}Response")));
    body.insert("RetCode".into(), json!(0));
    body.insert("Message".into(), json!(""));
    Ok(Value::Object(body))
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::missing(name))
}

fn create_snapshot(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let p = ctx.params;
    let disk_id = required(p, "DiskID")?;
    let name = required(p, "Name")?;
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid("Name", "长度不能超过30个字符"));
    }
    let remark = p.get("Remark").map_or("", String::as_str);
    if remark.chars().count() > MAX_REMARK_CHARS {
        return Err(ApiError::invalid("Remark", "长度不能超过100个字符"));
    }
    let snapshot_type = match p.get("Type").map(String::as_str) {
        None | Some("") => "Manual",
        Some(t) if TYPES.contains(&t) => t,
        Some(_) => return Err(ApiError::invalid("Type", "取值为 Manual 或 Automatic")),
    };
    for key in ["CompanyID", "MemberID"] {
        if let Some(v) = p.get(key).filter(|v| !v.is_empty()) {
            if v.parse::<i64>().is_err() {
                return Err(ApiError::invalid(key, "应为整数"));
            }
        }
    }
    let new = NewSnapshot {
        region: ctx.region,
        zone: ctx.zone,
        disk_id,
        name,
        remark,
        snapshot_type,
    };
    let (faults, duration, hit) = (&mut *ctx.faults, ctx.duration, &mut ctx.fault_hit);
    let id = ctx.ucs.create_snapshot(&new, ctx.now, || {
        (duration, faults.job_outcome(DIALECT, "CreateSnapshot", hit))
    })?;
    let mut out = Map::new();
    out.insert("SnapshotID".into(), json!(id));
    Ok(out)
}

fn delete_snapshot(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let id = required(ctx.params, "SnapshotID")?;
    ctx.ucs
        .delete_snapshot(ctx.region, id, ctx.now, ctx.duration)?;
    Ok(Map::new())
}

fn rollback_snapshot(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let disk_id = required(ctx.params, "DiskID")?;
    let id = required(ctx.params, "SnapshotID")?;
    ctx.ucs
        .rollback(ctx.region, disk_id, id, ctx.now, ctx.duration)?;
    Ok(Map::new())
}

/// ModifyNameAndRemark `ResourceID`, `Name` (both required), `Remark`
/// (optional, may be empty): the generic rename call, served here for
/// snapshots. `Name` is 1-30 characters of letters, digits, `.`, `_` and
/// `-`; `Remark` at most 100 characters and no `http://` / `https://`
/// (the API reference's limits). A `Remark` left out keeps the old one.
/// Answers only the envelope.
fn modify_name_and_remark(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let p = ctx.params;
    let id = required(p, "ResourceID")?;
    let name = required(p, "Name")?;
    let name_ok = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.chars().count() > MAX_NAME_CHARS || !name.chars().all(name_ok) {
        return Err(ApiError::invalid(
            "Name",
            "长度为1-30个字符，只能包含中英文、数字、点、下划线和中划线",
        ));
    }
    let remark = p.get("Remark").map(String::as_str);
    if let Some(r) = remark {
        let lower = r.to_ascii_lowercase();
        if r.chars().count() > MAX_REMARK_CHARS
            || lower.contains("http://")
            || lower.contains("https://")
        {
            return Err(ApiError::invalid(
                "Remark",
                "长度为0-100个字符，不能使用http://或https://",
            ));
        }
    }
    ctx.ucs
        .rename_snapshot(ctx.region, id, name, remark, ctx.now)?;
    Ok(Map::new())
}

fn describe_snapshot(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let p = ctx.params;
    let ids = list_param(p, "SnapshotIDs")?;
    let projects = list_param(p, "ProjectIDs")?;
    let text = |name: &str| p.get(name).map(String::as_str).filter(|s| !s.is_empty());
    let (disk_id, keyword) = (text("DiskID"), text("Keyword"));
    let (offset, limit) = paging(p)?;
    let (ucs, now, region, zone) = (&*ctx.ucs, ctx.now, ctx.region, ctx.zone);
    let matching: Vec<&Snapshot> = ucs
        .snapshots_newest_first()
        .into_iter()
        .filter(|s| {
            s.status(now).is_some()
                && s.region == region
                && (zone.is_empty() || s.zone == zone)
                && (ids.is_empty() || ids.contains(&s.id))
                // No project is modelled: a project filter matches none.
                && projects.is_empty()
                && disk_id.is_none_or(|d| s.disk_id == d)
                && keyword.is_none_or(|k| s.id.contains(k) || s.name.contains(k))
        })
        .collect();
    let keys = ("TotalCount", "Infos");
    Ok(form::page(&matching, (offset, limit), keys, |s| {
        snapshot_info(ucs, s, now)
    }))
}

/// DescribeDisk (SG-disk): the region's (and zone's) disks by `DiskID`,
/// filtered by `DiskIDs.N`, paged by `Offset`/`Limit`, with `TotalCount`.
fn describe_disk(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let p = ctx.params;
    let ids = list_param(p, "DiskIDs")?;
    let (offset, limit) = paging(p)?;
    let (region, zone) = (ctx.region, ctx.zone);
    let mut matching: Vec<_> = ctx
        .ucs
        .disks
        .values()
        .filter(|d| {
            d.region == region
                && (zone.is_empty() || d.zone == zone)
                && (ids.is_empty() || ids.contains(&d.id))
        })
        .collect();
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    let (ucs, now) = (&*ctx.ucs, ctx.now);
    let keys = ("TotalCount", "Infos");
    Ok(form::page(&matching, (offset, limit), keys, |d| {
        json!({
            "Region": d.region,
            "Zone": d.zone,
            "DiskID": d.id,
            "Name": d.name,
            "Remark": "",
            "Size": 40,
            "SetType": "Normal",
            "DiskStatus": ucs.disk_status(d, now),
            "AttachResourceID": if d.vm_running { "vm-simulated" } else { "" },
            "ChargeType": "Dynamic",
            "CreateTime": 1_700_000_000,
            "ExpireTime": 0,
        })
    }))
}

/// One `SnapshotInfo` with the fields the API answers with.
fn snapshot_info(ucs: &UcsState, s: &Snapshot, now: DateTime<Utc>) -> Value {
    let disk = ucs.disks.get(&s.disk_id);
    json!({
        "Region": s.region,
        "Zone": s.zone,
        "Name": s.name,
        "Remark": s.remark,
        "CompanyID": 1,
        "ProjectID": "",
        "ProjectName": "",
        "SnapshotID": s.id,
        "SnapshotStatus": s.status(now).map_or("Released", |st| st.as_str()),
        "Type": s.snapshot_type,
        "DiskID": s.disk_id,
        "DiskType": "Data",
        "DiskAttachResourceID": if disk.is_some_and(|d| d.vm_running) { "vm-simulated" } else { "" },
        "DiskAttachResourceType": if disk.is_some_and(|d| d.vm_running) { "VM" } else { "" },
        "CreateTime": s.create_time.timestamp(),
        "SnapshotSize": s.size_gb(),
    })
}

/// `name.0`, `name.1`, … in index order (so `.10` comes after `.2`).
fn list_param(params: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    form::list_param(params, name, 0)
}

/// `Offset` (default 0) and `Limit` (default 20, at most 100).
fn paging(params: &Params) -> Result<(usize, usize), ApiError> {
    PAGING.read(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::form::{check_list_param, check_paging};

    #[test]
    fn arrays_are_zero_based_in_index_order() {
        check_list_param(list_param, "SnapshotIDs", 0, 140);
    }

    #[test]
    fn paging_defaults_and_cap() {
        check_paging(paging, ("Offset", "Limit"), (20, 100), 140);
    }

    /// ModifyNameAndRemark: the envelope on success, the new name and
    /// Remark in DescribeSnapshot, and the error codes of a missing or
    /// missing (229) or bad (140) parameter and an unknown snapshot (8102).
    #[test]
    fn modify_name_and_remark_answers_and_errors() {
        let now = Utc::now();
        let mut ucs = UcsState::default();
        let id = ucs.seed_snapshot(
            &NewSnapshot {
                region: "cn",
                zone: "zone-01",
                disk_id: "disk-1",
                name: "snap-a",
                remark: "first",
                snapshot_type: "Manual",
            },
            now,
            Duration::ZERO,
        );
        let mut faults = FaultRegistry::default();
        let mut run = |action: &str, pairs: &[(&str, &str)]| {
            let params: Params = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut ctx = Ctx {
                ucs: &mut ucs,
                faults: &mut faults,
                duration: Duration::ZERO,
                fault_hit: None,
                params: &params,
                region: "cn",
                zone: "zone-01",
                now,
            };
            dispatch(action, &mut ctx).map_err(|e| e.ret_code)
        };
        let ok = run(
            "ModifyNameAndRemark",
            &[("ResourceID", &id), ("Name", "snap-b"), ("Remark", "held")],
        )
        .expect("modified");
        assert_eq!(
            ok,
            json!({"Action": "ModifyNameAndRemarkResponse", "RetCode": 0, "Message": ""})
        );
        let listed = run("DescribeSnapshot", &[("SnapshotIDs.0", &id)]).expect("described");
        assert_eq!(listed["Infos"][0]["Name"], "snap-b");
        assert_eq!(listed["Infos"][0]["Remark"], "held");
        // A Remark left out is kept; an empty one clears it.
        run(
            "ModifyNameAndRemark",
            &[("ResourceID", &id), ("Name", "snap-b")],
        )
        .expect("kept");
        let listed = run("DescribeSnapshot", &[("SnapshotIDs.0", &id)]).expect("described");
        assert_eq!(listed["Infos"][0]["Remark"], "held");
        run(
            "ModifyNameAndRemark",
            &[("ResourceID", &id), ("Name", "snap-b"), ("Remark", "")],
        )
        .expect("cleared");
        let listed = run("DescribeSnapshot", &[("SnapshotIDs.0", &id)]).expect("described");
        assert_eq!(listed["Infos"][0]["Remark"], "");

        let long = "r".repeat(MAX_REMARK_CHARS + 1);
        for (pairs, code) in [
            (vec![("ResourceID", id.as_str())], 229),
            (vec![("Name", "x")], 229),
            (vec![("ResourceID", id.as_str()), ("Name", "bad name")], 140),
            (
                vec![("ResourceID", id.as_str()), ("Name", &"n".repeat(31))],
                140,
            ),
            (
                vec![
                    ("ResourceID", id.as_str()),
                    ("Name", "x"),
                    ("Remark", &long),
                ],
                140,
            ),
            (
                vec![
                    ("ResourceID", id.as_str()),
                    ("Name", "x"),
                    ("Remark", "see https://x"),
                ],
                140,
            ),
            (vec![("ResourceID", "snap-nosuch"), ("Name", "x")], 8102),
        ] {
            assert_eq!(run("ModifyNameAndRemark", &pairs), Err(code), "{pairs:?}");
        }
    }
}
