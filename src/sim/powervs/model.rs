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
            .map(|(i, vol)| (vol.clone(), json!(format!("{}-vs{i}", self.id))))
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
            "crn": format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{}:snapshot:{}", self.cloud_instance_id, self.id),
        })
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
    /// A JWT-shaped access token (IBM's are JWTs) carrying `exp`.
    pub(crate) fn issue_access(
        &mut self,
        issuer: Issuer,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let lifetime = chrono::Duration::from_std(self.token_lifetime).unwrap_or_default();
        let expires = now + lifetime;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"kid":"sim","alg":"RS256"}"#);
        let claims = b64.encode(
            json!({
                "iss": "snapwarden-sim",
                "sub": match issuer { Issuer::Iam => "iam-ServiceId-sim", Issuer::Ip4g => "ip4g-user-sim" },
                "iat": now.timestamp(),
                "exp": expires.timestamp(),
            })
            .to_string(),
        );
        let token = format!("{header}.{claims}.{}", random_id("", 43));
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

/// The CRN of a workspace in the simulator's one zone.
pub(crate) fn default_crn(cid: &str) -> String {
    format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{cid}::")
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
