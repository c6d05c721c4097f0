//! KakaoCloud wire shapes: IAM token, Volume API
//! snapshots and volumes, BCS instances, pagination and error bodies.
//! Almost everything is nullable in the official SDK, so almost every
//! field is an `Option`; unknown fields are ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

// ------------------------------------------------------------------ IAM

/// `POST /identity/v3/auth/tokens` body, method 1 (access key id + secret).
#[derive(Serialize)]
pub struct TokenRequest<'a> {
    pub auth: TokenAuth<'a>,
}

#[derive(Serialize)]
pub struct TokenAuth<'a> {
    pub identity: TokenIdentity<'a>,
}

#[derive(Serialize)]
pub struct TokenIdentity<'a> {
    pub methods: [&'static str; 1],
    pub application_credential: ApplicationCredential<'a>,
}

#[derive(Serialize)]
pub struct ApplicationCredential<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

impl<'a> TokenRequest<'a> {
    pub fn new(id: &'a str, secret: &'a str) -> Self {
        TokenRequest {
            auth: TokenAuth {
                identity: TokenIdentity {
                    methods: ["application_credential"],
                    application_credential: ApplicationCredential { id, secret },
                },
            },
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub token: Option<TokenBody>,
}

#[derive(Debug, Deserialize)]
pub struct TokenBody {
    pub expires_at: Option<String>,
    pub issued_at: Option<String>,
}

// ------------------------------------------------------------ pagination

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Pagination {
    pub total: Option<u64>,
    #[allow(dead_code)] // read for completeness; the loop uses item counts
    pub offset: Option<u64>,
    #[allow(dead_code)]
    pub limit: Option<u64>,
}

// ------------------------------------------------------------- snapshots

/// `POST /api/v1/volumes/{volume_id}/snapshots` body.
#[derive(Debug, Serialize)]
pub struct CreateSnapshotBody<'a> {
    pub snapshot: CreateSnapshot<'a>,
}

#[derive(Debug, Serialize)]
pub struct CreateSnapshot<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub is_incremental: bool,
}

/// `PUT /api/v1/snapshots/{id}` body: only the description, so the name
/// stays as it is.
#[derive(Debug, Serialize)]
pub struct UpdateSnapshotBody<'a> {
    pub snapshot: UpdateSnapshot<'a>,
}

#[derive(Debug, Serialize)]
pub struct UpdateSnapshot<'a> {
    pub description: &'a str,
}

/// `{"snapshot": {"id", "name"}}` (create) or a full snapshot (get).
#[derive(Debug, Deserialize)]
pub struct SnapshotEnvelope {
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug, Deserialize)]
pub struct SnapshotList {
    pub snapshots: Option<Vec<Snapshot>>,
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub volume_id: Option<String>,
    pub is_incremental: Option<bool>,
    pub parent_id: Option<String>,
    #[allow(dead_code)] // derived from parent_id; kept for the record
    pub is_dependent_snapshot: Option<bool>,
    pub created_at: Option<String>,
    /// Bytes the snapshot actually takes (`size` is its volume's, in GB).
    #[serde(default)]
    pub real_size: Option<i64>,
}

impl Snapshot {
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at.as_deref().and_then(parse_time)
    }
}

/// `POST /api/v1/snapshots/{id}/restore` body.
#[derive(Debug, Serialize)]
pub struct RestoreBody<'a> {
    pub restore: RestoreSpec<'a>,
}

#[derive(Debug, Serialize)]
pub struct RestoreSpec<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub struct RestoreResponse {
    pub restore: Option<RestoreResult>,
}

#[derive(Debug, Deserialize)]
pub struct RestoreResult {
    pub volume_id: Option<String>,
}

// --------------------------------------------------------------- volumes

#[derive(Debug, Deserialize)]
pub struct VolumeEnvelope {
    pub volume: Option<Volume>,
}

#[derive(Debug, Deserialize)]
pub struct Volume {
    #[allow(dead_code)]
    pub id: Option<String>,
    pub status: Option<String>,
    pub availability_zone: Option<String>,
}

// ------------------------------------------------------------- instances

#[derive(Debug, Deserialize)]
pub struct InstanceList {
    pub instances: Option<Vec<Instance>>,
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Instance {
    pub id: String,
    pub name: Option<String>,
    pub attached_volumes: Option<Vec<AttachedVolume>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AttachedVolume {
    pub id: String,
    pub is_root: Option<bool>,
}

// ---------------------------------------------------------------- errors

/// `{"error": {"code": "…", "message": "…"}}` (Volume/BCS: code is a
/// string; IAM: an integer), or FastAPI's `{"detail": [{"msg": …}]}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: Option<ErrorDetail>,
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    pub code: Option<serde_json::Value>,
    pub message: Option<String>,
    pub title: Option<String>,
}

/// RFC 3339 / ISO 8601; a value without an offset is UTC (the API says
/// its times are UTC).
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}
