//! `kind = "ucloudstack"`: UCloudStack (UCloud's private cloud API).

use serde::Deserialize;
use toml::Spanned;

use super::Section;
use crate::config::model::UCloudStackSettings;
use crate::config::raw::RawSecret;
use crate::config::secrets::{self, SecretKeys};
use crate::config::values;
use crate::config::Cx;
use crate::domain::ResourceKind;

/// The keys of a ucloudstack section besides the common ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUCloudStack {
    region: Option<Spanned<String>>,
    zone: Option<Spanned<String>>,
    public_key: Option<Spanned<String>>,
    private_key: Option<Spanned<RawSecret>>,
    private_key_file: Option<Spanned<String>>,
    private_key_env: Option<Spanned<String>>,
    project_id: Option<Spanned<String>>,
    company_id: Option<Spanned<i64>>,
    member_id: Option<Spanned<i64>>,
}

pub(super) fn build(
    section: &Section<'_, '_>,
    raw: &RawUCloudStack,
    endpoint: Option<&Spanned<String>>,
    cx: &mut Cx<'_>,
) -> Option<UCloudStackSettings> {
    // A private cloud has no public default: the URL is per deployment.
    let endpoint = section
        .required(
            endpoint,
            "endpoint",
            "the deployment's API URL, e.g. \"https://console.example.com/api\"",
            cx,
        )
        .and_then(|e| values::http_url(e, "endpoint", &mut cx.diag).map(|u| u.to_string()));
    let region = word(
        section,
        raw.region.as_ref(),
        "region",
        "the Region, e.g. \"cn\"",
        cx,
    );
    let zone = word(
        section,
        raw.zone.as_ref(),
        "zone",
        "the Zone, e.g. \"zone-01\"",
        cx,
    );
    let public_key = word(
        section,
        raw.public_key.as_ref(),
        "public_key",
        "the API public key",
        cx,
    );
    let private_key = secrets::resolve(
        SecretKeys {
            name: "private_key",
            literal: raw.private_key.as_ref(),
            file: raw.private_key_file.as_ref(),
            env: raw.private_key_env.as_ref(),
        },
        section.span.clone(),
        cx,
    );
    let mut ok = true;
    let project_id = raw.project_id.as_ref().and_then(|p| {
        let v = checked_word(p, "project_id", cx);
        ok &= v.is_some();
        v
    });
    let mut id = |v: Option<&Spanned<i64>>, key: &str| -> Option<i64> {
        let v = v?;
        let n = values::integer_in(v, key, 1, i64::MAX, "an account id", &mut cx.diag);
        ok &= n.is_some();
        n
    };
    let company_id = id(raw.company_id.as_ref(), "company_id");
    let member_id = id(raw.member_id.as_ref(), "member_id");

    let settings = UCloudStackSettings {
        endpoint: endpoint?,
        region: region?,
        zone: zone?,
        public_key: public_key?,
        private_key: private_key?,
        project_id,
        company_id,
        member_id,
    };
    ok.then_some(settings)
}

/// A required, non-empty value without spaces.
fn word(
    section: &Section<'_, '_>,
    value: Option<&Spanned<String>>,
    key: &str,
    expected: &str,
    cx: &mut Cx<'_>,
) -> Option<String> {
    section
        .required(value, key, expected, cx)
        .and_then(|v| checked_word(v, key, cx))
}

fn checked_word(value: &Spanned<String>, key: &str, cx: &mut Cx<'_>) -> Option<String> {
    values::word(value, key, "value", &mut cx.diag)
}

/// Disk ids go into the snapshot's Remark (`target=…`), so they are kept to
/// letters, digits, `-`, `_` and `.`.
pub(super) fn check_target(resource: ResourceKind, target: &str) -> Result<(), String> {
    if resource != ResourceKind::Disk {
        return Ok(());
    }
    let valid = !target.is_empty()
        && target.len() <= 64
        && target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "target {target:?} is not a UCloudStack disk id (letters, digits, `-`, `_`, `.`; \
             at most 64 characters)"
        ))
    }
}
