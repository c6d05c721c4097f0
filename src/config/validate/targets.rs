//! What a policy snapshots: `targets`, `select` and `volume_ids`, each
//! against what the provider's kind can do.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::policy::Entry;
use crate::config::diagnostics::{list, Diagnostics};
use crate::config::kinds::Kind;
use crate::config::model::{Selector, Targets};
use crate::config::raw::RawSelect;
use crate::config::Cx;
use crate::domain::{Capabilities, ResourceKind, Selectable};

/// `targets` and/or `select`, and `volume_ids`. `kind` and `resource` are
/// `None` where they were invalid (already reported).
pub(super) fn policy_targets(
    entry: &Entry<'_>,
    kind: Option<Kind>,
    resource: Option<ResourceKind>,
    cx: &mut Cx<'_>,
) -> Option<Targets> {
    let raw = entry.raw;
    let named = match (&raw.targets, &raw.select) {
        (None, None) => {
            entry.missing(
                "targets",
                "an array of volume or instance ids, and/or `select` to pick them by name or tags",
                cx,
            );
            None
        }
        (None, Some(_)) => Some(Vec::new()),
        (Some(t), _) => named_targets(t, kind, resource, cx),
    };
    let select = match &raw.select {
        None => Some(None),
        Some(s) => select(s, kind, resource, cx).map(Some),
    };
    let volume_ids = match &raw.volume_ids {
        None => Some(None),
        Some(v) => {
            let kind = kind.map(|k| (k.name(), k.capabilities()));
            volume_ids(v, kind, &mut cx.diag).map(Some)
        }
    };
    Some(Targets {
        named: named?,
        select: select?,
        volume_ids: volume_ids?,
    })
}

/// `targets`: non-empty when given, no duplicates, each id of the shape
/// the kind expects.
fn named_targets(
    value: &Spanned<Vec<Spanned<String>>>,
    kind: Option<Kind>,
    resource: Option<ResourceKind>,
    cx: &mut Cx<'_>,
) -> Option<Vec<String>> {
    let items = value.get_ref();
    if items.is_empty() {
        cx.diag.error(
            value.span(),
            "`targets` is empty: list at least one volume or instance id",
        );
        return None;
    }
    let mut ok = true;
    let mut seen: BTreeMap<&str, Range<usize>> = BTreeMap::new();
    for t in items {
        let id = t.get_ref().as_str();
        if id.trim().is_empty() {
            cx.diag
                .error(t.span(), "`targets`: a target id must not be empty");
            ok = false;
            continue;
        }
        if id.contains(|c: char| c.is_whitespace() || c.is_control()) {
            cx.diag.error(
                t.span(),
                format!("`targets`: target id {id:?} must not contain spaces"),
            );
            ok = false;
            continue;
        }
        if let Some(first) = seen.get(id) {
            let (line, col) = cx.diag.line_col(first.start);
            cx.diag.error(
                t.span(),
                format!("`targets`: duplicate target {id:?} (already listed at {line}:{col})"),
            );
            ok = false;
            continue;
        }
        seen.insert(id, t.span());
        if let (Some(kind), Some(resource)) = (kind, resource) {
            if let Err(msg) = kind.check_target(resource, id) {
                cx.diag.error(t.span(), format!("`targets`: {msg}"));
                ok = false;
            }
        }
    }
    ok.then(|| items.iter().map(|t| t.get_ref().clone()).collect())
}

/// `select`: a name glob and/or tags, on a resource the kind can list (and
/// tags only where it has them).
fn select(
    value: &Spanned<RawSelect>,
    kind: Option<Kind>,
    resource: Option<ResourceKind>,
    cx: &mut Cx<'_>,
) -> Option<Selector> {
    let raw = value.get_ref();
    let tags_given = raw.tags.as_ref().is_some_and(|t| !t.get_ref().is_empty());
    if raw.name.is_none() && !tags_given {
        cx.diag.error(
            value.span(),
            "`select` is empty: give `name` (a glob such as \"web-*\") and/or `tags` \
             (e.g. { env = \"prod\" }), or remove it",
        );
        return None;
    }
    let mut ok = true;
    let selectable = match (kind, resource) {
        (Some(kind), Some(resource)) => {
            let s = selectable(value.span(), kind, resource, cx);
            ok &= s.is_some();
            s.map(|s| (s, kind))
        }
        _ => None,
    };
    let name = raw.name.as_ref().map(|n| select_name(n, cx));
    ok &= name.as_ref().is_none_or(Option::is_some);
    let tags = match &raw.tags {
        None => Some(BTreeMap::new()),
        Some(t) => select_tags(t, raw.name.is_some(), selectable, cx),
    };
    if !ok {
        return None;
    }
    Some(Selector {
        name: name.flatten(),
        tags: tags?,
    })
}

/// How the kind lists `resource`, or an error at `span` if it cannot.
fn selectable(
    span: Range<usize>,
    kind: Kind,
    resource: ResourceKind,
    cx: &mut Cx<'_>,
) -> Option<Selectable> {
    let caps = kind.capabilities();
    if let Some(s) = caps.selectable(resource) {
        return Some(s);
    }
    let can: Vec<&str> = caps.select.iter().map(|s| s.resource.as_str()).collect();
    let hint = if can.is_empty() {
        "it cannot list resources".to_string()
    } else {
        format!("it can list: {}", list(&can))
    };
    cx.diag.error(
        span,
        format!(
            "`select` is not supported for resource {resource:?} by provider \
             kind {} ({hint}); name the targets in `targets`",
            kind.name()
        ),
    );
    None
}

/// `select.name`: a glob.
fn select_name(n: &Spanned<String>, cx: &mut Cx<'_>) -> Option<glob::Pattern> {
    if n.get_ref().trim().is_empty() {
        cx.diag.error(
            n.span(),
            "`select.name` is empty: give a glob such as \"web-*\" or remove the key",
        );
        return None;
    }
    match glob::Pattern::new(n.get_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            cx.diag.error(
                n.span(),
                format!(
                    "`select.name`: {:?} is not a valid glob: {} (at character {}; \
                     `*` any text, `?` one character, `[abc]` one of a set)",
                    n.get_ref(),
                    e.msg,
                    e.pos + 1
                ),
            );
            None
        }
    }
}

/// `select.tags`: only where the kind has tags on the resource (`on`: how
/// it is listed, `None` where that is unknown); no empty key.
fn select_tags(
    t: &Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
    name_given: bool,
    on: Option<(Selectable, Kind)>,
    cx: &mut Cx<'_>,
) -> Option<BTreeMap<String, String>> {
    let mut ok = true;
    if let Some((s, kind)) = on {
        if !s.tags {
            cx.diag.error(
                t.span(),
                format!(
                    "`select.tags`: provider kind {} has no tags on {}s; select by `name` \
                     instead",
                    kind.name(),
                    s.resource
                ),
            );
            ok = false;
        }
    }
    if t.get_ref().is_empty() && name_given {
        cx.diag.error(
            t.span(),
            "`select.tags` is empty: list key = \"value\" pairs or remove the key",
        );
        ok = false;
    }
    let mut tags = BTreeMap::new();
    for (k, v) in t.get_ref() {
        if k.get_ref().trim().is_empty() {
            cx.diag
                .error(k.span(), "`select.tags`: a tag key must not be empty");
            ok = false;
        }
        tags.insert(k.get_ref().clone(), v.get_ref().clone());
    }
    ok.then_some(tags)
}

/// `volume_ids`: only where the kind can snapshot a subset of an
/// instance's volumes; a non-empty list of distinct ids without spaces.
fn volume_ids(
    value: &Spanned<Vec<Spanned<String>>>,
    kind: Option<(&str, Capabilities)>,
    diag: &mut Diagnostics<'_>,
) -> Option<Vec<String>> {
    if let Some((name, caps)) = kind {
        if !caps.volume_subset {
            diag.error(
                value.span(),
                format!(
                    "`volume_ids` is not supported by provider kind {name}: it cannot \
                     snapshot a subset of an instance's volumes (remove the key)"
                ),
            );
            return None;
        }
    }
    if value.get_ref().is_empty() {
        diag.error(
            value.span(),
            "`volume_ids` is empty: list volume ids, or remove the key to include every \
             volume of the instance",
        );
        return None;
    }
    let mut ok = true;
    let mut seen = BTreeSet::new();
    for id in value.get_ref() {
        let v = id.get_ref();
        if v.trim().is_empty() || v.contains(|c: char| c.is_whitespace() || c.is_control()) {
            diag.error(
                id.span(),
                format!("`volume_ids`: {v:?} is not a volume id (non-empty, no spaces)"),
            );
            ok = false;
        } else if !seen.insert(v.as_str()) {
            diag.error(id.span(), format!("`volume_ids`: {v:?} is listed twice"));
            ok = false;
        }
    }
    ok.then(|| {
        value
            .get_ref()
            .iter()
            .map(|i| i.get_ref().clone())
            .collect()
    })
}
