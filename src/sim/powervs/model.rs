//! PowerVS's world as the simulator keeps it: IAM API keys, IP4G refresh
//! tokens and device logins, the access tokens handed out, workspaces with
//! their PVM instances, and snapshots.
//!
//! Only creation facts are stored; a snapshot's status (`creating` with a
//! rising `percentComplete` → `available` 100, or `error`; `deleting` →
//! gone; `restoring` → `available`) is derived from the clock when read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::sim::random_id;

pub(crate) use crate::sim::faults::Outcome;

#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub volume_ids: Vec<String>,
    /// `serverName`; None lists the instance id as its name.
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub crn: String,
    pub instances: BTreeMap<String, Instance>,
}

#[derive(Debug, Clone)]
pub(crate) struct Snap {
    pub id: String,
    pub cloud_instance_id: String,
    pub pvm_instance_id: String,
    pub name: String,
    pub description: String,
    pub volume_ids: Vec<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub finish_at: DateTime<Utc>,
    pub outcome: Outcome,
    pub manual: bool,
    /// Delete asked at / gone at.
    pub delete: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Restore started at / done at.
    pub restore: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// What a snapshot looks like at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct View {
    pub status: &'static str,
    pub percent: u8,
    pub detail: String,
    pub action: &'static str,
    pub updated: DateTime<Utc>,
    pub gone: bool,
}

impl Snap {
    pub(crate) fn view(&self, now: DateTime<Utc>) -> View {
        let mut v = View {
            status: "available",
            percent: 100,
            detail: "snapshot completed successfully".to_string(),
            action: "snapshot",
            updated: self.finish_at,
            gone: false,
        };
        if let Some((asked, done)) = self.delete {
            v.status = "deleting";
            v.detail = "snapshot is being deleted".to_string();
            v.updated = asked;
            v.gone = now >= done;
            return v;
        }
        let creating = self.outcome == Outcome::Never || now < self.finish_at;
        if creating {
            let total = (self.finish_at - self.created).num_milliseconds().max(1) as f64;
            let done = (now - self.created).num_milliseconds().max(0) as f64;
            v.status = "creating";
            v.percent = ((done / total) * 100.0).clamp(0.0, 99.0) as u8;
            v.detail = "snapshot in progress".to_string();
            v.updated = now.min(self.finish_at).max(self.created);
            return v;
        }
        if self.outcome == Outcome::Fail {
            v.status = "error";
            v.percent = 60;
            v.detail = "failed to create the volume snapshot: storage backend reported an error"
                .to_string();
            return v;
        }
        if let Some((start, end)) = self.restore {
            v.action = "restore";
            if now < end {
                v.status = "restoring";
                v.percent = 50;
                v.detail = "restore in progress".to_string();
                v.updated = start;
            } else {
                v.detail = "restore completed successfully".to_string();
                v.updated = end;
            }
        }
        v
    }

    /// The `Snapshot` model as the API answers it.
    pub(crate) fn to_json(&self, now: DateTime<Utc>) -> Value {
        let v = self.view(now);
        let vols: serde_json::Map<String, Value> = self
            .volume_ids
            .iter()
            .enumerate()
            .map(|(i, vol)| (vol.clone(), json!(self.volume_snapshot_id(i))))
            .collect();
        json!({
            "snapshotID": self.id,
            "name": self.name,
            "description": self.description,
            "pvmInstanceID": self.pvm_instance_id,
            "status": v.status,
            "statusDetail": v.detail,
            "percentComplete": v.percent,
            "action": v.action,
            "creationDate": format_time(self.created),
            "lastUpdateDate": format_time(v.updated.max(self.updated)),
            "volumeSnapshots": vols,
            "crn": resource_crn(&self.cloud_instance_id, "snapshot", &self.id),
        })
    }

    /// The id of the volume snapshot of `volume` (the value of the
    /// `volumeSnapshots` map, and the `id` of the `/v1/volume-snapshots`
    /// view).
    pub(crate) fn volume_snapshot_id(&self, index: usize) -> String {
        format!("{}-vs{index}", self.id)
    }

    /// The `SnapshotV1` model of each of this snapshot's volume snapshots:
    /// `size` in GiB is the size of its volume.
    pub(crate) fn volume_snapshots_json(&self, now: DateTime<Utc>) -> Vec<Value> {
        let v = self.view(now);
        self.volume_ids
            .iter()
            .enumerate()
            .map(|(i, vol)| {
                let id = self.volume_snapshot_id(i);
                json!({
                    "id": id,
                    "name": format!("{}-{i}", self.name),
                    "size": volume_size_gib(vol) as f64,
                    "status": v.status,
                    "volumeID": vol,
                    "creationDate": format_time(self.created),
                    "updatedDate": format_time(v.updated.max(self.updated)),
                    "crn": resource_crn(&self.cloud_instance_id, "volume-snapshot", &id),
                })
            })
            .collect()
    }
}

/// RFC 3339 with milliseconds and `Z`, as pcloud writes dates.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub user_code: String,
    pub expires: DateTime<Utc>,
    pub approved: bool,
}

/// Where an access token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Issuer {
    Iam,
    Ip4g,
}

pub(crate) struct PvsState {
    pub api_keys: HashSet<String>,
    /// Refresh tokens ever issued or seeded → still valid?
    pub refresh_tokens: HashMap<String, bool>,
    pub access_tokens: HashMap<String, (Issuer, DateTime<Utc>)>,
    pub devices: HashMap<String, Device>,
    pub workspaces: BTreeMap<String, Workspace>,
    pub snapshots: Vec<Snap>,
    /// Lifetime of access tokens handed out from now on.
    pub token_lifetime: Duration,
    /// IP4G: every refresh answers a new refresh token and retires the old.
    pub rotate_refresh_tokens: bool,
    /// Device flow polling interval announced to clients.
    pub device_interval_s: u64,
    pub issued: BTreeMap<&'static str, u64>,
}

impl Default for PvsState {
    fn default() -> Self {
        PvsState {
            api_keys: HashSet::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            devices: HashMap::new(),
            workspaces: BTreeMap::new(),
            snapshots: Vec::new(),
            token_lifetime: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            device_interval_s: 1,
            issued: BTreeMap::new(),
        }
    }
}

impl PvsState {
    /// A well-formed JWT, as IBM IAM hands out: three base64url segments
    /// without padding. IBM's SDKs decode the claims (without checking the
    /// signature) and read `exp` and `iat` to plan the refresh, so the
    /// header and claims are JSON and the signature segment is 256 bytes,
    /// the length of an RS256 signature with a 2048-bit key. The simulator
    /// recognises its tokens by looking them up, never by the signature.
    pub(crate) fn issue_access(
        &mut self,
        issuer: Issuer,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let lifetime = chrono::Duration::from_std(self.token_lifetime).unwrap_or_default();
        let expires = now + lifetime;
        let token = jwt(issuer, now, expires);
        self.access_tokens.insert(token.clone(), (issuer, expires));
        let key = match issuer {
            Issuer::Iam => "iam",
            Issuer::Ip4g => "ip4g",
        };
        *self.issued.entry(key).or_default() += 1;
        (token, expires)
    }

    pub(crate) fn issue_refresh(&mut self) -> String {
        let token = random_id("ip4g-rt-", 32);
        self.refresh_tokens.insert(token.clone(), true);
        token
    }

    /// Live snapshots of one workspace, oldest first.
    pub(crate) fn live<'a>(
        &'a self,
        cid: &'a str,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &'a Snap> + 'a {
        self.snapshots
            .iter()
            .filter(move |s| s.cloud_instance_id == cid && !s.view(now).gone)
    }

    pub(crate) fn seed_snapshot(
        &mut self,
        cid: &str,
        pvm: &str,
        name: &str,
        description: &str,
        created: DateTime<Utc>,
    ) -> String {
        let volume_ids = self
            .workspaces
            .get(cid)
            .and_then(|w| w.instances.get(pvm))
            .map(|i| i.volume_ids.clone())
            .unwrap_or_default();
        let id = uuid_like();
        self.snapshots.push(Snap {
            id: id.clone(),
            cloud_instance_id: cid.to_string(),
            pvm_instance_id: pvm.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            volume_ids,
            created,
            updated: created,
            finish_at: created,
            outcome: Outcome::Succeed,
            manual: true,
            delete: None,
            restore: None,
        });
        id
    }

    pub(crate) fn seed_instance(&mut self, cid: &str, pvm: &str, volume_ids: Vec<String>) {
        let ws = self
            .workspaces
            .entry(cid.to_string())
            .or_insert_with(|| Workspace {
                crn: default_crn(cid),
                instances: BTreeMap::new(),
            });
        let volume_ids = if volume_ids.is_empty() {
            vec![uuid_like(), uuid_like()]
        } else {
            volume_ids
        };
        // Seeding again replaces the volumes and keeps the name.
        let name = ws.instances.get(pvm).and_then(|i| i.name.clone());
        ws.instances
            .insert(pvm.to_string(), Instance { volume_ids, name });
    }

    /// Renames a seeded instance (`serverName`); false if unknown.
    pub(crate) fn set_instance_name(&mut self, cid: &str, pvm: &str, name: &str) -> bool {
        match self
            .workspaces
            .get_mut(cid)
            .and_then(|w| w.instances.get_mut(pvm))
        {
            Some(i) => {
                i.name = Some(name.to_string());
                true
            }
            None => false,
        }
    }
}

/// IAM's key id names the signing key by date, and the header starts
/// with it (real tokens begin `eyJraWQiOi`).
const JWT_KID: &str = "20260101";

/// The length of an RS256 signature made with a 2048-bit RSA key.
pub(crate) const JWT_SIGNATURE_LEN: usize = 256;

/// A JWT with IAM's header and the claims IBM's SDKs read; the signature
/// is random bytes of an RS256 signature's length (nobody can check it).
fn jwt(issuer: Issuer, now: DateTime<Utc>, expires: DateTime<Utc>) -> String {
    use rand::Rng;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"kid": JWT_KID, "alg": "RS256", "typ": "JWT"});
    let (sub, grant) = match issuer {
        Issuer::Iam => (
            "iam-ServiceId-sim",
            "urn:ibm:params:oauth:grant-type:apikey",
        ),
        Issuer::Ip4g => ("ip4g-user-sim", "refresh_token"),
    };
    let claims = json!({
        "iam_id": sub,
        "id": sub,
        "realmid": "iam",
        "jti": uuid_like(),
        "identifier": sub,
        "sub": sub,
        "sub_type": "ServiceId",
        "account": {"valid": true, "bss": "simaccount"},
        "iat": now.timestamp(),
        "exp": expires.timestamp(),
        "iss": "snapwarden-sim",
        "grant_type": grant,
        "scope": "ibm openid",
        "client_id": "default",
    });
    let mut signature = [0u8; JWT_SIGNATURE_LEN];
    rand::rng().fill(&mut signature[..]);
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(signature)
    )
}

/// The CRN of a workspace in the simulator's one zone.
pub(crate) fn default_crn(cid: &str) -> String {
    resource_crn(cid, "", "")
}

/// A CRN in IBM's format `crn:v1:bluemix:public:power-iaas:LOCATION:
/// a/ACCOUNT:SERVICE-INSTANCE:RESOURCE-TYPE:RESOURCE`: the workspace is
/// the service instance, so a snapshot is `…:{cid}:snapshot:{id}` and an
/// instance `…:{cid}:pvm-instance:{id}` (the workspace's own CRN leaves
/// the last two empty).
pub(crate) fn resource_crn(cid: &str, kind: &str, id: &str) -> String {
    format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{cid}:{kind}:{id}")
}

/// A volume's size in GiB, fixed by its id (10 to 200, a multiple of 10)
/// so that every read of one volume agrees.
pub(crate) fn volume_size_gib(volume_id: &str) -> u64 {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let hash = volume_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    10 * (1 + hash % 20)
}

/// `8-4-4-4-12` lowercase hex-ish, like pcloud ids.
pub(crate) fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let hex = |n: usize, rng: &mut rand::rngs::ThreadRng| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
            .collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(8, &mut rng),
        hex(4, &mut rng),
        hex(4, &mut rng),
        hex(4, &mut rng),
        hex(12, &mut rng)
    )
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::Value;

    use super::{Issuer, PvsState, JWT_SIGNATURE_LEN};

    /// Every segment of every token decodes as strict base64url without
    /// padding (what PyJWT needs), the claims carry `iat` and `exp`, the
    /// signature has an RS256 signature's length, and the simulator still
    /// knows each token it issued.
    #[test]
    fn access_tokens_are_well_formed_jwts() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut pvs = PvsState::default();
        let now = chrono::Utc::now();
        let mut seen = std::collections::HashSet::new();
        for i in 0..400 {
            let issuer = if i % 2 == 0 {
                Issuer::Iam
            } else {
                Issuer::Ip4g
            };
            let (token, expires) = pvs.issue_access(issuer, now);
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(parts.len(), 3, "{token}");
            assert!(
                parts.iter().all(|p| !p.contains('=')),
                "no padding: {token}"
            );
            let header: Value = serde_json::from_slice(&b64.decode(parts[0]).expect("header"))
                .expect("header JSON");
            assert_eq!(header["alg"], "RS256");
            assert_eq!(header["typ"], "JWT");
            assert!(header["kid"].is_string());
            let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).expect("claims"))
                .expect("claims JSON");
            assert_eq!(claims["iat"].as_i64(), Some(now.timestamp()));
            assert_eq!(claims["exp"].as_i64(), Some(expires.timestamp()));
            assert_eq!(expires - now, chrono::Duration::seconds(3600));
            let signature = b64.decode(parts[2]).expect("signature");
            assert_eq!(signature.len(), JWT_SIGNATURE_LEN);
            assert!(pvs.access_tokens.contains_key(&token));
            assert!(seen.insert(token), "tokens are unique");
        }
    }
}
