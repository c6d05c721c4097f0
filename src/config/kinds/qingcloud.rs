//! `kind = "qingcloud"`: QingCloud IaaS.

use serde::Deserialize;
use toml::Spanned;

use super::Section;
use crate::config::model::QingCloudSettings;
use crate::config::raw::RawSecret;
use crate::config::secrets::{self, SecretKeys};
use crate::config::values;
use crate::config::Cx;
use crate::domain::ResourceKind;

/// The public API; override with `endpoint` for private deployments.
const DEFAULT_ENDPOINT: &str = "https://api.qingcloud.com/iaas/";

/// The keys of a qingcloud section besides the common ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQingCloud {
    zone: Option<Spanned<String>>,
    access_key_id: Option<Spanned<String>>,
    secret_access_key: Option<Spanned<RawSecret>>,
    secret_access_key_file: Option<Spanned<String>>,
    secret_access_key_env: Option<Spanned<String>>,
}

pub(super) fn build(
    section: &Section<'_, '_>,
    raw: &RawQingCloud,
    endpoint: Option<&Spanned<String>>,
    cx: &mut Cx<'_>,
) -> Option<QingCloudSettings> {
    let zone = section
        .required(
            raw.zone.as_ref(),
            "zone",
            "the QingCloud zone id, e.g. \"ap2a\"",
            cx,
        )
        .and_then(|z| check_zone(z, cx));

    let access_key_id = section
        .required(
            raw.access_key_id.as_ref(),
            "access_key_id",
            "the API access key id",
            cx,
        )
        .and_then(|id| values::word(id, "access_key_id", "key id", &mut cx.diag));

    let secret_access_key = secrets::resolve(
        SecretKeys {
            name: "secret_access_key",
            literal: raw.secret_access_key.as_ref(),
            file: raw.secret_access_key_file.as_ref(),
            env: raw.secret_access_key_env.as_ref(),
        },
        section.span.clone(),
        cx,
    );

    let endpoint = values::http_url_or(endpoint, "endpoint", DEFAULT_ENDPOINT, &mut cx.diag);

    Some(QingCloudSettings {
        zone: zone?,
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        endpoint: endpoint?,
    })
}

/// Zone ids are lower-case (`pek3a`, `ap2a`); the API rejects others.
fn check_zone(zone: &Spanned<String>, cx: &mut Cx<'_>) -> Option<String> {
    let z = zone.get_ref();
    let valid = !z.is_empty()
        && z.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        return Some(z.clone());
    }
    let hint = if z.chars().any(|c| c.is_ascii_uppercase()) {
        format!(" (did you mean {:?}?)", z.to_ascii_lowercase())
    } else {
        String::new()
    };
    cx.diag.error(
        zone.span(),
        format!(
            "`zone` {z:?} is not a QingCloud zone id: expected lower-case letters, digits \
             and `-`, e.g. \"ap2a\" or \"pek3\"{hint}"
        ),
    );
    None
}

/// QingCloud ids carry their type as a prefix.
pub(super) fn check_target(resource: ResourceKind, target: &str) -> Result<(), String> {
    let prefix = match resource {
        ResourceKind::Volume => "vol-",
        ResourceKind::Instance => "i-",
        _ => return Ok(()),
    };
    if target.starts_with(prefix) && target.len() > prefix.len() {
        Ok(())
    } else {
        Err(format!(
            "target {target:?} is not a QingCloud {resource} id (expected \"{prefix}…\")"
        ))
    }
}
