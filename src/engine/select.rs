//! Target selection: a policy's targets for one run are its explicit
//! `targets` plus the resources its `select` matches now, through the
//! provider trait's listing. The engine knows no cloud here either.
//!
//! A target that leaves the selector is simply not in the next run: its
//! snapshots stay (pruning only ever runs for the targets of a run), until
//! an operator deals with them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn};

use super::{Engine, EngineError};
use crate::config::Policy;
use crate::providers::Resource;
use crate::state::TargetSummary;

/// The longest a selector's listing is retried before that run's
/// selector part fails (the policy's `timeout` when shorter).
const LIST_DEADLINE: Duration = Duration::from_secs(600);

/// What one policy's targets are for a run.
#[derive(Debug)]
pub struct Resolved {
    /// Explicit targets first (in file order), then the selected ones not
    /// already listed (in listing order). Without a selector, or when its
    /// listing failed, just the explicit targets.
    pub targets: Vec<String>,
    /// The selector's part: `None` without a selector; `Some(Ok(matched))`
    /// (possibly empty) or `Some(Err(_))` when the listing failed.
    pub selected: Option<Result<Vec<Resource>, EngineError>>,
}

impl Resolved {
    /// True when the policy has a selector and it matched nothing.
    pub fn selector_empty(&self) -> bool {
        matches!(&self.selected, Some(Ok(m)) if m.is_empty())
    }
}

impl Engine {
    /// The resources the policy's `select` matches now (all pages of the
    /// provider's listing, retried by the one retry policy); empty without
    /// a selector. Never a partial answer: a failed listing is an error.
    pub async fn select_resources(&self, policy: &Policy) -> Result<Vec<Resource>, EngineError> {
        let Some(selector) = &policy.targets.select else {
            return Ok(Vec::new());
        };
        let ps = self.slot(policy)?;
        let deadline = Utc::now()
            + chrono::Duration::from_std(policy.timing.timeout.min(LIST_DEADLINE))
                .unwrap_or(chrono::Duration::minutes(10));
        let listed = self
            .retrying(policy, deadline, "listing resources", || {
                ps.provider.list_resources(policy.resource)
            })
            .await?;
        let named = named_by_explicit(&policy.targets.named, &listed);
        let mut seen = BTreeSet::new();
        Ok(listed
            .into_iter()
            .filter(|r| selector.matches(r))
            .filter(|r| match named.get(r.id.as_str()) {
                Some(t) => {
                    info!(policy = %policy.name, target = %t, id = %r.id, "the selector matches an explicit target (named, not by id): one target");
                    false
                }
                None => true,
            })
            .filter(|r| seen.insert(r.id.clone()))
            .collect())
    }

    /// The policy's targets now: explicit `targets` ∪ what `select`
    /// matches. Fails if the selector's listing fails (for commands that
    /// need the whole answer).
    pub async fn resolve_targets(&self, policy: &Policy) -> Result<Vec<String>, EngineError> {
        let selected = self.select_resources(policy).await?;
        Ok(union(&policy.targets.named, &selected))
    }

    /// Like [`Engine::resolve_targets`], but a failed listing only fails
    /// the selector's part (the explicit targets still run). Logs what the
    /// selector matched, and a warning when it matched nothing.
    pub async fn resolve_for_run(&self, policy: &Policy) -> Resolved {
        if policy.targets.select.is_none() {
            return Resolved {
                targets: policy.targets.named.clone(),
                selected: None,
            };
        }
        let selected = self.select_resources(policy).await;
        let targets = match &selected {
            Ok(matched) => {
                if matched.is_empty() {
                    warn!(policy = %policy.name, selector = %selector_text(policy), "selector matched nothing");
                } else {
                    let ids: Vec<&str> = matched.iter().map(|r| r.id.as_str()).collect();
                    info!(policy = %policy.name, selector = %selector_text(policy), matched = %ids.join(","), "selector resolved");
                }
                union(&policy.targets.named, matched)
            }
            Err(e) => {
                warn!(policy = %policy.name, selector = %selector_text(policy), error = %e, "selector listing failed; only the explicit targets run");
                policy.targets.named.clone()
            }
        };
        Resolved {
            targets,
            selected: Some(selected),
        }
    }
}

fn selector_text(policy: &Policy) -> String {
    policy
        .targets
        .select
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// The listed resources an explicit target names by their name rather
/// than their id (a target that is no listed id and exactly one listed
/// name, as clouds that take names resolve it), id → target: the selector
/// matching one of them must not make it a second target (two snapshots
/// per slot under two markers).
fn named_by_explicit(explicit: &[String], listed: &[Resource]) -> BTreeMap<String, String> {
    let ids: BTreeSet<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    let mut out = BTreeMap::new();
    for t in explicit.iter().filter(|t| !ids.contains(t.as_str())) {
        let mut named = listed.iter().filter(|r| r.name == *t);
        if let (Some(r), None) = (named.next(), named.next()) {
            out.insert(r.id.clone(), t.clone());
        }
    }
    out
}

/// Explicit targets, then selected ids not already there.
fn union(explicit: &[String], selected: &[Resource]) -> Vec<String> {
    let mut out: Vec<String> = explicit.to_vec();
    let mut seen: BTreeSet<&str> = explicit.iter().map(String::as_str).collect();
    for r in selected {
        if seen.insert(r.id.as_str()) {
            out.push(r.id.clone());
        }
    }
    out
}

/// Targets a read-only command (status, monitor, the stale check) should
/// watch for a policy without calling the cloud: the explicit ones, and
/// for a selector policy the targets of its most recent slot in the ledger
/// (a target that left the selector drops out once a later slot ran
/// without it; a stopped daemon still shows up as stale).
pub fn ledger_targets(policy: &Policy, summaries: &[TargetSummary]) -> Vec<String> {
    let mut out = policy.targets.named.clone();
    if policy.targets.select.is_none() {
        return out;
    }
    let mine: Vec<&TargetSummary> = summaries
        .iter()
        .filter(|s| s.policy == policy.name && s.provider == policy.provider)
        .collect();
    let latest = mine
        .iter()
        .filter_map(|s| s.last_run.as_ref().map(|r| r.slot))
        .max();
    for s in mine {
        let current = s.last_run.as_ref().map(|r| r.slot) == latest;
        if current && !out.contains(&s.target) {
            out.push(s.target.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn res(id: &str) -> Resource {
        Resource {
            id: id.into(),
            name: id.into(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn union_keeps_explicit_first_and_drops_duplicates() {
        let got = union(
            &["vol-a".to_string(), "vol-b".to_string()],
            &[res("vol-c"), res("vol-a"), res("vol-d"), res("vol-c")],
        );
        assert_eq!(got, ["vol-a", "vol-b", "vol-c", "vol-d"]);
        assert!(union(&[], &[]).is_empty());
    }

    #[test]
    fn an_explicit_name_covers_the_resource_it_names() {
        let r = |id: &str, name: &str| Resource {
            id: id.into(),
            name: name.into(),
            tags: BTreeMap::new(),
        };
        let listed = [
            r("i-1", "web-01"),
            r("i-2", "web-02"),
            r("i-3", "twin"),
            r("i-4", "twin"),
            r("i-5", "i-1"),
        ];
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let named = named_by_explicit(&t(&["web-01", "twin", "i-1", "gone"]), &listed);
        // By name: web-01 is i-1. An ambiguous name and an id name nothing
        // (i-5 is named "i-1", but "i-1" is an id).
        assert_eq!(
            named,
            BTreeMap::from([("i-1".to_string(), "web-01".to_string())])
        );
    }
}

#[cfg(test)]
mod selector_tests {
    use std::collections::BTreeMap;

    use crate::config::Selector;
    use crate::providers::Resource;

    fn res(name: &str, tags: &[(&str, &str)]) -> Resource {
        Resource {
            id: format!("vol-{name}"),
            name: name.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn name_glob_and_every_tag_must_match() {
        let sel = Selector {
            name: glob::Pattern::new("web-*").ok(),
            tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        };
        assert!(sel.matches(&res("web-1", &[("env", "prod"), ("team", "a")])));
        assert!(!sel.matches(&res("web-1", &[("env", "dev")])));
        assert!(!sel.matches(&res("web-1", &[])));
        assert!(!sel.matches(&res("db-1", &[("env", "prod")])));
        let by_name = Selector {
            name: glob::Pattern::new("db-?").ok(),
            tags: BTreeMap::new(),
        };
        assert!(by_name.matches(&res("db-1", &[])));
        assert!(!by_name.matches(&res("db-12", &[])));
        let by_tag = Selector {
            name: None,
            tags: BTreeMap::from([("backup".to_string(), String::new())]),
        };
        assert!(by_tag.matches(&res("anything", &[("backup", "")])));
        assert!(!by_tag.matches(&res("anything", &[("backup", "no")])));
        assert_eq!(
            Selector {
                name: glob::Pattern::new("web-*").ok(),
                tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            }
            .to_string(),
            r#"name="web-*" tags={env="prod"}"#
        );
    }
}
