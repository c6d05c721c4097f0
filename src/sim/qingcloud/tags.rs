//! QingCloud tags: CreateTag, DescribeTags, AttachTags, with the official
//! SDKs' parameter names (`tag_name`; `tags.N`, `resources.N`,
//! `search_word`, `verbose`, `offset`, `limit`;
//! `resource_tag_pairs.N.tag_id` / `.resource_type` / `.resource_id`) and
//! the Go SDK's `Tag` fields in `tag_set`.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::actions::Ctx;
use super::errors::ApiError;
use super::model::{QingState, ResourceKind, SnapStatus, OWNER};
use super::{format_time, Params};
use crate::sim::form;

/// The colour the console gives a tag made without one.
const DEFAULT_COLOR: &str = "#9f9bb7";
/// The resource types a tag is attached to here.
const RESOURCE_TYPES: &[&str] = &["snapshot", "volume", "instance"];

/// A tag made by CreateTag. Tags belong to the account, not to a zone.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub id: String,
    pub seq: u64,
    pub name: String,
    pub color: String,
    pub create_time: DateTime<Utc>,
    /// (resource_type, resource_id) it is attached to, in attach order.
    pub pairs: Vec<(String, String)>,
}

impl Tag {
    /// One `tags` item of a snapshot, volume or instance.
    pub(crate) fn short_json(&self) -> Value {
        json!({
            "tag_id": self.id,
            "tag_name": self.name,
            "tag_key": "",
            "color": self.color,
        })
    }
}

/// CreateTag `tag_name` (required, unique), `color`: answers `tag_id`.
pub(crate) fn create_tag(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let name = ctx
        .params
        .get("tag_name")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("tag_name"))?;
    let color = ctx
        .params
        .get("color")
        .filter(|s| !s.is_empty())
        .map_or(DEFAULT_COLOR, String::as_str);
    let id = ctx.qing.create_tag(name, color, ctx.now)?;
    let mut out = Map::new();
    out.insert("tag_id".into(), json!(id));
    Ok(out)
}

/// AttachTags: every pair is checked before any is attached; attaching a
/// tag a resource already has is a no-op.
pub(crate) fn attach_tags(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let pairs = pairs_param(ctx.params)?;
    if pairs.is_empty() {
        return Err(ApiError::missing("resource_tag_pairs.1.tag_id"));
    }
    ctx.qing.attach_tags(ctx.zone, &pairs, ctx.now)?;
    Ok(Map::new())
}

/// DescribeTags, newest first; `resource_tag_pairs` only with `verbose=1`.
pub(crate) fn describe_tags(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let p = ctx.params;
    let ids = form::list_param::<ApiError>(p, "tags", 1)?;
    let resources = form::list_param::<ApiError>(p, "resources", 1)?;
    let search_word = p.get("search_word").filter(|s| !s.is_empty());
    let verbose = match p.get("verbose").map(String::as_str) {
        None | Some("" | "0") => false,
        Some("1") => true,
        Some(other) => return Err(ApiError::invalid("verbose", other)),
    };
    let (offset, limit) = super::actions::paging(p)?;
    let mut matching: Vec<&Tag> = ctx
        .qing
        .tags
        .values()
        .filter(|t| {
            (ids.is_empty() || ids.contains(&t.id))
                && (resources.is_empty() || t.pairs.iter().any(|(_, rid)| resources.contains(rid)))
                && search_word.is_none_or(|w| t.name.contains(w.as_str()) || t.id == *w)
        })
        .collect();
    matching.sort_by_key(|t| std::cmp::Reverse((t.create_time, t.seq)));
    let keys = ("total_count", "tag_set");
    Ok(form::page(&matching, (offset, limit), keys, |t| {
        let mut counts: Vec<Value> = RESOURCE_TYPES
            .iter()
            .map(|kind| {
                let n = t.pairs.iter().filter(|(k, _)| k.as_str() == *kind).count();
                (kind, n)
            })
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| json!({"resource_type": kind, "count": n}))
            .collect();
        counts.sort_by_key(|c| c["resource_type"].as_str().map(str::to_string));
        let mut item = json!({
            "tag_id": t.id,
            "tag_name": t.name,
            "tag_key": "",
            "color": t.color,
            "description": null,
            "owner": OWNER,
            "create_time": format_time(t.create_time),
            "resource_count": t.pairs.len(),
            "resource_type_count": counts,
        });
        if verbose {
            item["resource_tag_pairs"] = t
                .pairs
                .iter()
                .map(|(kind, rid)| {
                    json!({"tag_id": t.id, "resource_type": kind, "resource_id": rid})
                })
                .collect();
        }
        item
    }))
}

/// `resource_tag_pairs.N.{tag_id,resource_type,resource_id}` in index
/// order; each of the three is required in every pair given.
fn pairs_param(params: &Params) -> Result<Vec<(String, String, String)>, ApiError> {
    const PREFIX: &str = "resource_tag_pairs.";
    let mut indexes: Vec<u32> = Vec::new();
    for key in params.keys().filter_map(|k| k.strip_prefix(PREFIX)) {
        let (n, field) = key
            .split_once('.')
            .ok_or_else(|| ApiError::invalid(&format!("{PREFIX}{key}"), ""))?;
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::invalid(&format!("{PREFIX}{key}"), n))?;
        if !["tag_id", "resource_type", "resource_id"].contains(&field) {
            return Err(ApiError::invalid(&format!("{PREFIX}{key}"), field));
        }
        if !indexes.contains(&n) {
            indexes.push(n);
        }
    }
    indexes.sort_unstable();
    indexes
        .into_iter()
        .map(|n| -> Result<(String, String, String), ApiError> {
            let get = |field: &str| {
                let name = format!("{PREFIX}{n}.{field}");
                params
                    .get(&name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .ok_or_else(|| ApiError::missing(&name))
            };
            Ok((get("tag_id")?, get("resource_type")?, get("resource_id")?))
        })
        .collect()
}

impl QingState {
    /// A new tag; a name already taken is ResourceAlreadyExists (names are
    /// unique per account).
    pub(crate) fn create_tag(
        &mut self,
        name: &str,
        color: &str,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        if self.tags.values().any(|t| t.name == name) {
            return Err(ApiError::exists("tag", name));
        }
        let id = loop {
            let id = crate::sim::random_id("tag-", 8);
            if !self.tags.contains_key(&id) {
                break id;
            }
        };
        let seq = self.next_seq();
        self.tags.insert(
            id.clone(),
            Tag {
                id: id.clone(),
                seq,
                name: name.to_string(),
                color: color.to_string(),
                create_time: now,
                pairs: Vec::new(),
            },
        );
        Ok(id)
    }

    /// AttachTags: each tag must exist, each resource must exist in `zone`
    /// with the type given (a deleted snapshot does not).
    pub(crate) fn attach_tags(
        &mut self,
        zone: &str,
        pairs: &[(String, String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        for (tag_id, kind, rid) in pairs {
            if !self.tags.contains_key(tag_id) {
                return Err(ApiError::not_found(tag_id));
            }
            let exists = match kind.as_str() {
                "snapshot" => self.snapshots.get(rid).is_some_and(|s| {
                    s.zone == zone
                        && matches!(
                            self.view(s, now).status,
                            SnapStatus::Pending | SnapStatus::Available
                        )
                }),
                "volume" | "instance" => self.resources.get(rid).is_some_and(|r| {
                    let want = if kind == "volume" {
                        ResourceKind::Volume
                    } else {
                        ResourceKind::Instance
                    };
                    r.zone == zone && r.kind == want
                }),
                other => return Err(ApiError::invalid("resource_type", other)),
            };
            if !exists {
                return Err(ApiError::not_found(rid));
            }
        }
        for (tag_id, kind, rid) in pairs {
            if let Some(tag) = self.tags.get_mut(tag_id) {
                let pair = (kind.clone(), rid.clone());
                if !tag.pairs.contains(&pair) {
                    tag.pairs.push(pair);
                }
            }
        }
        Ok(())
    }

    /// The tags attached to `resource_id`, oldest first.
    pub(crate) fn tags_of(&self, resource_id: &str) -> Vec<&Tag> {
        let mut tags: Vec<&Tag> = self
            .tags
            .values()
            .filter(|t| t.pairs.iter().any(|(_, rid)| rid == resource_id))
            .collect();
        tags.sort_by_key(|t| (t.create_time, t.seq));
        tags
    }
}
