//! Target selection on Lightsail: GetInstances / GetDisks, every page by
//! `pageToken` (no server-side tag filter exists), each
//! resource's name and tags (`key` → `value`, a value-less tag reads "").

use std::collections::{BTreeMap, HashSet};

use aws_sdk_lightsail::types::Tag;

use super::listing::{Pages, MAX_PAGES};
use super::{unexpected, Lightsail};
use crate::domain::ResourceKind;
use crate::providers::{not_selectable, ProviderError, Resource};

const GET_INSTANCES: &str = "GetInstances";
const GET_DISKS: &str = "GetDisks";

/// One listed instance or disk.
struct Item {
    name: Option<String>,
    tags: BTreeMap<String, String>,
    /// A terminated instance: left out.
    gone: bool,
}

impl Lightsail {
    pub(super) async fn select_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<Resource>, ProviderError> {
        let call = match resource {
            ResourceKind::Instance => GET_INSTANCES,
            ResourceKind::Disk => GET_DISKS,
            other => return Err(not_selectable("lightsail", GET_INSTANCES, other)),
        };
        let mut out: Vec<Resource> = Vec::new();
        let mut names = HashSet::new();
        let mut token: Option<String> = None;
        let mut pages = Pages::default();
        for _ in 0..MAX_PAGES {
            let (items, next): (Vec<Item>, _) = if call == GET_INSTANCES {
                let page = self
                    .client
                    .call(call, |c| {
                        c.get_instances().set_page_token(token.clone()).send()
                    })
                    .await?;
                let items = page
                    .instances()
                    .iter()
                    .map(|i| {
                        let gone = i
                            .state()
                            .and_then(|s| s.name())
                            .is_some_and(|s| s == "terminated");
                        Item {
                            name: i.name().map(str::to_string),
                            tags: tags_map(i.tags()),
                            gone,
                        }
                    })
                    .collect();
                (items, page.next_page_token().map(str::to_string))
            } else {
                let page = self
                    .client
                    .call(call, |c| c.get_disks().set_page_token(token.clone()).send())
                    .await?;
                let items = page
                    .disks()
                    .iter()
                    .map(|d| Item {
                        name: d.name().map(str::to_string),
                        tags: tags_map(d.tags()),
                        gone: false,
                    })
                    .collect();
                (items, page.next_page_token().map(str::to_string))
            };
            for Item { name, tags, gone } in items {
                let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
                    return Err(unexpected(call, "an item without a name"));
                };
                if gone || !names.insert(name.clone()) {
                    continue;
                }
                out.push(Resource {
                    id: name.clone(),
                    name,
                    tags,
                });
            }
            match pages.next(call, next)? {
                None => return Ok(out),
                Some(t) => token = Some(t),
            }
        }
        Err(Pages::too_many(call))
    }
}

/// Lightsail tags as key → value (a tag without a value reads "").
fn tags_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            t.key()
                .map(|k| (k.to_string(), t.value().unwrap_or_default().to_string()))
        })
        .collect()
}
