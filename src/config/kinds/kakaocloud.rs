//! `kind = "kakaocloud"`: KakaoCloud BCS volumes, through the Volume API
//! (`endpoint`), the BCS instance API (`bcs_endpoint`) and an IAM
//! application-credential token (`iam_endpoint`).

use serde::Deserialize;
use toml::Spanned;

use super::Section;
use crate::config::model::KakaoCloudSettings;
use crate::config::raw::RawSecret;
use crate::config::secrets::{self, SecretKeys};
use crate::config::values;
use crate::config::Cx;
use crate::domain::ResourceKind;

/// The public region `kr-central-2`; override for another region or a
/// private deployment.
const DEFAULT_ENDPOINT: &str = "https://volume.kr-central-2.kakaocloud.com";
const DEFAULT_BCS_ENDPOINT: &str = "https://bcs.kr-central-2.kakaocloud.com";
const DEFAULT_IAM_ENDPOINT: &str = "https://iam.kakaocloud.com/identity/v3/auth/tokens";

/// The keys of a kakaocloud section besides the common ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKakaoCloud {
    bcs_endpoint: Option<Spanned<String>>,
    iam_endpoint: Option<Spanned<String>>,
    application_credential_id: Option<Spanned<String>>,
    application_credential_secret: Option<Spanned<RawSecret>>,
    application_credential_secret_file: Option<Spanned<String>>,
    application_credential_secret_env: Option<Spanned<String>>,
}

pub(super) fn build(
    section: &Section<'_, '_>,
    raw: &RawKakaoCloud,
    endpoint: Option<&Spanned<String>>,
    cx: &mut Cx<'_>,
) -> Option<KakaoCloudSettings> {
    let credential_id = section
        .required(
            raw.application_credential_id.as_ref(),
            "application_credential_id",
            "the IAM access key id (application credential)",
            cx,
        )
        .and_then(|id| values::word(id, "application_credential_id", "key id", &mut cx.diag));

    let secret = secrets::resolve(
        SecretKeys {
            name: "application_credential_secret",
            literal: raw.application_credential_secret.as_ref(),
            file: raw.application_credential_secret_file.as_ref(),
            env: raw.application_credential_secret_env.as_ref(),
        },
        section.span.clone(),
        cx,
    );

    let mut url = |value: Option<&Spanned<String>>, key: &str, default: &str| {
        values::http_url_or(value, key, default, &mut cx.diag)
    };
    let endpoint = url(endpoint, "endpoint", DEFAULT_ENDPOINT);
    let bcs_endpoint = url(
        raw.bcs_endpoint.as_ref(),
        "bcs_endpoint",
        DEFAULT_BCS_ENDPOINT,
    );
    let iam_endpoint = url(
        raw.iam_endpoint.as_ref(),
        "iam_endpoint",
        DEFAULT_IAM_ENDPOINT,
    );

    Some(KakaoCloudSettings {
        endpoint: endpoint?,
        bcs_endpoint: bcs_endpoint?,
        iam_endpoint: iam_endpoint?,
        application_credential_id: credential_id?,
        application_credential_secret: secret?,
    })
}

/// Volume ids are UUIDs and instance targets are ids or names; both go
/// into a URL path or query, so no whitespace and no URL delimiters.
pub(super) fn check_target(resource: ResourceKind, target: &str) -> Result<(), String> {
    let bad = target.trim().is_empty()
        || target
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '%'));
    if bad {
        Err(format!(
            "target {target:?} is not a KakaoCloud {resource} {}: no spaces, `/`, `?`, `#` or `%`",
            if resource == ResourceKind::Instance {
                "id or name"
            } else {
                "id"
            }
        ))
    } else {
        Ok(())
    }
}
