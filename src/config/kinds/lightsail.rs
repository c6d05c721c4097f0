//! `kind = "lightsail"`: AWS Lightsail instance and disk snapshots.
//!
//! Credentials: static keys (`access_key_id` + `secret_access_key[_file|_env]`)
//! when given, else the standard AWS chain, optionally with a named
//! `profile`. The two are exclusive so the operator always knows which one
//! is used.

use serde::Deserialize;
use toml::Spanned;

use super::Section;
use crate::config::model::{LightsailCredentials, LightsailSettings};
use crate::config::raw::RawSecret;
use crate::config::secrets::{self, SecretKeys};
use crate::config::values;
use crate::config::Cx;
use crate::domain::ResourceKind;

/// The keys of a lightsail section besides the common ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLightsail {
    region: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    access_key_id: Option<Spanned<String>>,
    secret_access_key: Option<Spanned<RawSecret>>,
    secret_access_key_file: Option<Spanned<String>>,
    secret_access_key_env: Option<Spanned<String>>,
}

pub(super) fn build(
    section: &Section<'_, '_>,
    raw: &RawLightsail,
    endpoint: Option<&Spanned<String>>,
    cx: &mut Cx<'_>,
) -> Option<LightsailSettings> {
    let region = section
        .required(
            raw.region.as_ref(),
            "region",
            "the AWS region, e.g. \"eu-central-1\"",
            cx,
        )
        .and_then(|r| {
            if is_region(r.get_ref()) {
                return Some(r.get_ref().clone());
            }
            cx.diag.error(
                r.span(),
                format!(
                    "`region` {:?} is not an AWS region name (expected e.g. \"us-east-2\" or \
                     \"eu-central-1\")",
                    r.get_ref()
                ),
            );
            None
        });

    let credentials = credentials(section, raw, cx);

    let endpoint = match endpoint {
        None => Some(None),
        Some(e) => values::http_url(e, "endpoint", &mut cx.diag).map(|u| Some(u.to_string())),
    };

    Some(LightsailSettings {
        region: region?,
        credentials: credentials?,
        endpoint: endpoint?,
    })
}

/// Static keys, or the AWS chain (with `profile` if given): never both.
fn credentials(
    section: &Section<'_, '_>,
    raw: &RawLightsail,
    cx: &mut Cx<'_>,
) -> Option<LightsailCredentials> {
    let secret = SecretKeys {
        name: "secret_access_key",
        literal: raw.secret_access_key.as_ref(),
        file: raw.secret_access_key_file.as_ref(),
        env: raw.secret_access_key_env.as_ref(),
    };
    let mut ok = true;
    let credentials = match (&raw.access_key_id, secret.given()) {
        (None, false) => Some(LightsailCredentials::Chain {
            profile: match &raw.profile {
                None => None,
                Some(p) if p.get_ref().trim().is_empty() => {
                    cx.diag.error(p.span(), "`profile` must not be empty");
                    ok = false;
                    None
                }
                Some(p) => Some(p.get_ref().clone()),
            },
        }),
        (None, true) => {
            section.missing(
                "access_key_id",
                "a secret access key is given, so its access key id is needed too",
                cx,
            );
            None
        }
        (Some(id), _) => {
            if let Some(p) = &raw.profile {
                cx.diag.error(
                    p.span(),
                    "`profile` and `access_key_id` exclude each other: give static keys or a \
                     profile of the AWS credential chain, not both",
                );
                ok = false;
            }
            let access_key_id = values::word(id, "access_key_id", "key id", &mut cx.diag);
            let secret = secrets::resolve(secret, section.span.clone(), cx);
            match (access_key_id, secret) {
                (Some(access_key_id), Some(secret_access_key)) => {
                    Some(LightsailCredentials::Static {
                        access_key_id,
                        secret_access_key,
                    })
                }
                _ => None,
            }
        }
    };
    credentials.filter(|_| ok)
}

/// `us-east-2`, `eu-central-1`, `ap-southeast-5`, `us-gov-west-1`.
fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Lightsail resource names follow `\w[\w\-]*\w` (no dots, at least two
/// characters); the snapshot name built from them must too.
pub(super) fn check_target(resource: ResourceKind, target: &str) -> Result<(), String> {
    if is_resource_name(target) {
        Ok(())
    } else {
        Err(format!(
            "target {target:?} is not a Lightsail {resource} name (letters, digits, `_` and `-`, \
             at least two characters, starting and ending with a letter, digit or `_`)"
        ))
    }
}

fn is_resource_name(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.len() >= 2
        && s.starts_with(word)
        && s.ends_with(word)
        && s.chars().all(|c| word(c) || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_names() {
        for ok in [
            "us-east-2",
            "eu-central-1",
            "ap-southeast-5",
            "us-gov-west-1",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in ["", "us", "useast2", "US-EAST-2", "us-east-", "us--1"] {
            assert!(!is_region(bad), "{bad}");
        }
        for ok in ["web-1", "data_disk", "a1"] {
            assert!(check_target(ResourceKind::Instance, ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-web", "web-", "web.1", "web 1", ""] {
            assert!(check_target(ResourceKind::Disk, bad).is_err(), "{bad}");
        }
    }
}
