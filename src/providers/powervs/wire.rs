//! The pcloud, IAM and IP4G JSON shapes. Every field
//! that the API does not declare required is optional, unknown fields are
//! ignored, and numbers are read leniently (an integer may arrive as a
//! float).

use serde::{Deserialize, Serialize};

/// `Snapshot`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Snapshot {
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "pvmInstanceID", default)]
    pub pvm_instance_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(rename = "statusDetail", default)]
    pub status_detail: Option<String>,
    #[serde(rename = "percentComplete", default)]
    pub percent_complete: Option<serde_json::Number>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(rename = "creationDate", default)]
    pub creation_date: Option<String>,
    #[serde(rename = "lastUpdateDate", default)]
    pub last_update_date: Option<String>,
    /// Source volume id → the id of that volume's snapshot.
    #[serde(rename = "volumeSnapshots", default)]
    pub volume_snapshots: Option<std::collections::HashMap<String, String>>,
}

impl Snapshot {
    /// `percentComplete` as 0–100 (None when absent or not a number).
    pub fn percent(&self) -> Option<u8> {
        self.percent_complete
            .as_ref()
            .and_then(serde_json::Number::as_f64)
            .filter(|p| p.is_finite())
            .map(|p| p.clamp(0.0, 100.0) as u8)
    }

    pub fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        parse_time(self.creation_date.as_deref()?)
    }

    pub fn updated_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        parse_time(self.last_update_date.as_deref()?)
    }
}

pub(super) fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `SnapshotV1`, one volume snapshot of the `/v1/volume-snapshots` view.
#[derive(Debug, Deserialize)]
pub(super) struct VolumeSnapshot {
    pub id: String,
    /// GiB, possibly fractional.
    #[serde(default)]
    pub size: Option<serde_json::Number>,
}

/// `VolumeSnapshotList`.
#[derive(Debug, Deserialize)]
pub(super) struct VolumeSnapshotList {
    #[serde(rename = "volumeSnapshots", default)]
    pub volume_snapshots: Vec<VolumeSnapshot>,
}

/// `Snapshots`: the whole list, no pagination.
#[derive(Debug, Deserialize)]
pub(super) struct Snapshots {
    pub snapshots: Vec<Snapshot>,
}

/// `SnapshotCreate`.
#[derive(Debug, Serialize)]
pub(super) struct SnapshotCreate<'a> {
    pub name: &'a str,
    pub description: &'a str,
    #[serde(rename = "volumeIDs", skip_serializing_if = "Option::is_none")]
    pub volume_ids: Option<&'a [String]>,
}

/// `SnapshotCreateResponse`.
#[derive(Debug, Deserialize)]
pub(super) struct SnapshotCreateResponse {
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
}

/// `SnapshotUpdate` (PUT).
#[derive(Debug, Serialize)]
pub(super) struct SnapshotUpdate<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
}

/// `SnapshotRestore`.
#[derive(Debug, Serialize)]
pub(super) struct SnapshotRestore {
    pub force: bool,
}

/// The pcloud `Error` model: every field optional.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ApiError {
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// IBM IAM's token answer.
#[derive(Deserialize)]
pub(super) struct IamToken {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<serde_json::Number>,
    #[serde(default)]
    pub expiration: Option<serde_json::Number>,
}

/// IBM IAM's error body.
#[derive(Debug, Default, Deserialize)]
pub(super) struct IamError {
    #[serde(rename = "errorCode", default)]
    pub error_code: Option<String>,
    #[serde(rename = "errorMessage", default)]
    pub error_message: Option<String>,
}

/// IP4G `Token`.
#[derive(Deserialize)]
pub(super) struct Ip4gToken {
    #[serde(rename = "accessToken")]
    pub access_token: String,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(rename = "refreshToken", default)]
    pub refresh_token: Option<String>,
}

/// IP4G `TokenRequest`.
#[derive(Serialize)]
pub(super) struct Ip4gTokenRequest<'a> {
    #[serde(rename = "refreshToken")]
    pub refresh_token: &'a str,
    pub source: &'a str,
}

/// IP4G device authorization answer.
#[derive(Debug, Deserialize)]
pub(super) struct DeviceCode {
    #[serde(rename = "deviceCode")]
    pub device_code: String,
    #[serde(rename = "expiresIn", default)]
    pub expires_in: Option<serde_json::Number>,
    #[serde(default)]
    pub interval: Option<serde_json::Number>,
    #[serde(rename = "userCode")]
    pub user_code: String,
    #[serde(rename = "verificationURL")]
    pub verification_url: String,
}

/// A JSON number as seconds (non-negative, finite), if it is one.
pub(super) fn seconds(n: Option<&serde_json::Number>) -> Option<f64> {
    n.and_then(serde_json::Number::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
}
