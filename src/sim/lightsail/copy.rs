//! CopySnapshot and the automatic snapshots a copy or a disk restore may
//! start from. The simulator has one region: a copy names it as
//! `sourceRegion` (AWS's own examples copy within one region this way); a
//! copy from any other region finds nothing there.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::actions::{flag, optional, required, usable_snapshot, valid_name, Ctx};
use super::model::{uuid_like, Family, LightsailState, Snap, REGION};
use super::ApiError;

type Input = serde_json::Map<String, Value>;

/// The regions `sourceRegion` may name (the model's `RegionName`).
const REGION_NAMES: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-2",
    "ca-central-1",
    "ap-east-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "sa-east-1",
];

/// The automatic snapshot of `source` (of `family`) that `restoreDate`
/// (`YYYY-MM-DD`) or `useLatestRestorableAutoSnapshot` picks: exactly one
/// of the two. The simulator's automatic snapshots are the kept ones
/// (`isFromAutoSnapshot`), as GetAutoSnapshots lists them; none that
/// matches is `NotFoundException`.
pub(super) fn auto_snapshot<'a>(
    state: &'a LightsailState,
    input: &Input,
    source: &str,
    family: Family,
    now: DateTime<Utc>,
) -> Result<&'a Snap, ApiError> {
    let date = optional(input, "restoreDate")?;
    let latest = flag(input, "useLatestRestorableAutoSnapshot")?;
    if date.is_some() == latest {
        return Err(ApiError::invalid(
            "The restore date and use latest restorable auto snapshot parameters are mutually \
             exclusive; define exactly one",
        ));
    }
    if let Some(d) = date {
        if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() || d.len() != 10 {
            return Err(ApiError::invalid(format!(
                "restoreDate {d:?} must be in YYYY-MM-DD format"
            )));
        }
    }
    let mut autos = state.snapshots.values().filter(|s| {
        s.from_auto
            && s.family == family
            && s.source == source
            && s.gone_at.is_none()
            && !s.fails
            && s.ready_at.is_some_and(|t| now >= t)
    });
    let found = match date {
        Some(d) => autos.find(|s| s.created_at.format("%Y-%m-%d").to_string() == d),
        None => autos.max_by_key(|s| s.created_at),
    };
    found.ok_or_else(|| {
        ApiError::not_found(format!(
            "No automatic snapshot of {source} {}",
            date.map_or_else(|| "can be restored".to_string(), |d| format!("for {d}"))
        ))
    })
}

/// CopySnapshot: `targetSnapshotName*`, `sourceRegion*`, and
/// `sourceSnapshotName` (a manual snapshot) or `sourceResourceName` with
/// `restoreDate` / `useLatestRestorableAutoSnapshot` (an automatic one) →
/// one operation on the new manual snapshot, `CopySnapshot`, its details
/// `<sourceRegion>:<source name>`, location `all`. A copy of an automatic
/// snapshot is a manual snapshot with `isFromAutoSnapshot`.
pub(super) fn copy_snapshot(
    ctx: &mut Ctx<'_>,
    input: &Input,
    action: &str,
) -> Result<Value, ApiError> {
    let now = ctx.now;
    let target = required(input, "targetSnapshotName")?.to_string();
    if !valid_name(&target) {
        return Err(ApiError::invalid(format!(
            "targetSnapshotName {target:?} does not match \\w[\\w\\-]*\\w"
        )));
    }
    let region = required(input, "sourceRegion")?.to_string();
    if !REGION_NAMES.contains(&region.as_str()) {
        return Err(ApiError::invalid(format!(
            "sourceRegion {region:?} is not a Lightsail region"
        )));
    }
    let by_name = optional(input, "sourceSnapshotName")?;
    let by_resource = optional(input, "sourceResourceName")?;
    let (src, source_name) = match (by_name, by_resource) {
        (Some(name), None) => {
            if input.contains_key("restoreDate") || flag(input, "useLatestRestorableAutoSnapshot")?
            {
                return Err(ApiError::invalid(
                    "Define restoreDate or useLatestRestorableAutoSnapshot only when copying an \
                     automatic snapshot (with sourceResourceName)",
                ));
            }
            // Nothing lives in another region of the simulated account.
            let found = (region == REGION)
                .then(|| ctx.state.live(name, now))
                .flatten()
                .filter(|s| s.gone_at.is_none())
                .map(|s| s.family);
            let family = found.ok_or_else(|| {
                ApiError::not_found(format!("The snapshot does not exist: {name}"))
            })?;
            (
                usable_snapshot(ctx.state, name, family, now)?,
                name.to_string(),
            )
        }
        (None, Some(resource)) => {
            let family = if region != REGION {
                None
            } else if ctx.state.instances.contains_key(resource) {
                Some(Family::Instance)
            } else if ctx.state.disks.contains_key(resource) {
                Some(Family::Disk)
            } else {
                None
            };
            let family = family.ok_or_else(|| {
                ApiError::not_found(format!("The resource does not exist: {resource}"))
            })?;
            let snap = auto_snapshot(ctx.state, input, resource, family, now)?;
            (snap, resource.to_string())
        }
        _ => {
            return Err(ApiError::invalid(
                "Define exactly one of sourceSnapshotName (a manual snapshot) or \
                 sourceResourceName (an automatic snapshot)",
            ))
        }
    };
    let copy_of_auto = by_resource.is_some();
    let (family, source, from_auto, of_system_disk) = (
        src.family,
        src.source.clone(),
        src.from_auto || copy_of_auto,
        src.of_system_disk,
    );
    if ctx.state.name_in_use(&target, now) {
        return Err(ApiError::invalid(format!(
            "Some names are already in use: {target}"
        )));
    }
    let (ends_at, fails) = ctx.ends(action);
    ctx.state.insert_snapshot(Snap {
        name: target.clone(),
        family,
        source,
        created_at: now,
        ready_at: ends_at,
        fails,
        tags: Vec::new(),
        from_auto,
        of_system_disk,
        gone_at: None,
        arn_id: uuid_like(),
    });
    let details = format!("{region}:{source_name}");
    let op = ctx.new_op(
        &target,
        family.type_name(),
        action,
        &details,
        "all",
        ends_at,
        fails,
        "Succeeded",
    );
    Ok(json!({ "operations": [op] }))
}
