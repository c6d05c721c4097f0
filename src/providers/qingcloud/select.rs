//! Target selection on QingCloud: DescribeVolumes / DescribeInstances, all
//! pages, with each resource's tags from the item's `tags` field.
//!
//! A QingCloud tag has a name and, on newer accounts, a key: a tag with a
//! `tag_key` reads as `tag_key = tag_name`, one without as `tag_name = ""`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::client::QingCloudApi as Api;
use super::errors;
use super::QingCloud;
use crate::domain::ResourceKind;
use crate::providers::query_api::paging::{self, Page, Paging};
use crate::providers::query_api::{is_gone, required_id, Dialect};
use crate::providers::{not_selectable, ProviderError, Resource};

const DESCRIBE_VOLUMES: &str = "DescribeVolumes";
const DESCRIBE_INSTANCES: &str = "DescribeInstances";
const PAGE: u64 = 100;

/// Statuses of a resource that still exists (deleted, ceased and
/// terminated ones are left out).
const VOLUME_STATUSES: &[&str] = &["pending", "available", "in-use", "suspended"];
const INSTANCE_STATUSES: &[&str] = &["pending", "running", "stopped", "suspended"];

#[derive(Debug, Deserialize)]
struct ListPage {
    #[serde(default)]
    volume_set: Option<Vec<Item>>,
    #[serde(default)]
    instance_set: Option<Vec<Item>>,
    #[serde(default, deserialize_with = "crate::providers::wire::flex_u64")]
    total_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default, alias = "instance_id")]
    volume_id: Option<String>,
    #[serde(default, alias = "instance_name")]
    volume_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tags: Option<Vec<Tag>>,
}

#[derive(Debug, Deserialize)]
struct Tag {
    #[serde(default)]
    tag_key: Option<String>,
    #[serde(default)]
    tag_name: Option<String>,
}

impl QingCloud {
    pub(super) async fn select_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<Resource>, ProviderError> {
        let (call, list, statuses) = match resource {
            ResourceKind::Volume => (DESCRIBE_VOLUMES, "volume_set", VOLUME_STATUSES),
            ResourceKind::Instance => (DESCRIBE_INSTANCES, "instance_set", INSTANCE_STATUSES),
            other => return Err(not_selectable("qingcloud", DESCRIBE_VOLUMES, other)),
        };
        let mut out = Vec::new();
        let paging = Paging::of::<Api>(call, "resources");
        let fetch = |offset: u64| async move {
            let mut params = Api::list_param("status", statuses);
            params.push(("verbose".into(), "0".into()));
            params.push(("limit".into(), PAGE.to_string()));
            params.push(("offset".into(), offset.to_string()));
            let page: ListPage = self.client.call(call, params).await?;
            let items = match list {
                "volume_set" => page.volume_set,
                _ => page.instance_set,
            }
            .ok_or_else(|| errors::unexpected(call, format!("no {list} in a listing")));
            Ok(Page {
                total: page.total_count,
                items,
            })
        };
        let id_of = |item: &Item| required_id(&item.volume_id, call, "an item without an id");
        paging::read_all(&paging, fetch, id_of, |id, item| {
            if !is_gone(item.status.as_deref(), &["deleted", "ceased", "terminated"]) {
                out.push(Resource {
                    id,
                    name: item.volume_name.unwrap_or_default(),
                    tags: tags_of(item.tags.unwrap_or_default()),
                });
            }
        })
        .await?;
        Ok(out)
    }
}

fn tags_of(tags: Vec<Tag>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for t in tags {
        let name = t.tag_name.unwrap_or_default();
        match t.tag_key.filter(|k| !k.is_empty()) {
            Some(key) => out.insert(key, name),
            None if !name.is_empty() => out.insert(name, String::new()),
            None => None,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_as_key_value_or_name() {
        let tags = vec![
            Tag {
                tag_key: Some("env".into()),
                tag_name: Some("prod".into()),
            },
            Tag {
                tag_key: None,
                tag_name: Some("backup".into()),
            },
            Tag {
                tag_key: Some(String::new()),
                tag_name: Some("db".into()),
            },
        ];
        let got = tags_of(tags);
        assert_eq!(got.get("env").map(String::as_str), Some("prod"));
        assert_eq!(got.get("backup").map(String::as_str), Some(""));
        assert_eq!(got.get("db").map(String::as_str), Some(""));
        assert_eq!(got.len(), 3);
    }
}
