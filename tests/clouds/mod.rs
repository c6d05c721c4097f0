//! All five dialects of one simulator, in the domain's words, for the tests
//! that run the daemon against every cloud at once (torture, faults): the
//! provider sections, seeding of targets and foreign snapshots, and one
//! listing per dialect that says which snapshots carry snapwarden's marker.
//!
//! The marker is read here from the simulator's own view (names, Remarks,
//! descriptions, tags), not through `snapwarden::providers`, so a client
//! bug cannot hide itself.

#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::util::{
    secret_env_name, Sim, BIN, KC_SECRET, LS_SECRET, PVS_API_KEY, SECRET as QC_SECRET,
    UCS_PRIVATE_KEY,
};

const PVS_CID: &str = "ws-torture-0001";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    QingCloud,
    UCloudStack,
    Lightsail,
    PowerVs,
    KakaoCloud,
}

pub const ALL: [Kind; 5] = [
    Kind::QingCloud,
    Kind::UCloudStack,
    Kind::Lightsail,
    Kind::PowerVs,
    Kind::KakaoCloud,
];

/// One snapshot as the simulator holds it.
#[derive(Debug, Clone)]
pub struct Snap {
    pub id: String,
    pub name: String,
    /// The volume, disk or instance it is of.
    pub source: String,
    /// `(policy, target, slot label)` when it carries our marker.
    pub marker: Option<(String, String, String)>,
    /// Exists and is not being deleted.
    pub live: bool,
    /// Deleted, or being deleted.
    pub deleted: bool,
    pub status: String,
}

impl Snap {
    /// A snapshot whose marker is in a Remark or description: `keys` name
    /// its id, source and marker fields; its name is `name`.
    fn described(s: &Value, keys: [&str; 3], status: String, deleted: bool) -> Snap {
        let [id, source, marker] = keys;
        Snap {
            id: text(&s[id]),
            name: text(&s["name"]),
            source: text(&s[source]),
            marker: description_marker(&text(&s[marker])),
            live: !deleted,
            deleted,
            status,
        }
    }
}

/// The value of a Lightsail snapshot's tag `key`.
pub fn lightsail_tag<'a>(s: &'a Value, key: &str) -> Option<&'a str> {
    s["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)?
        .get("value")?
        .as_str()
}

/// `snapwarden policy=P target=T slot=S` (Remark / description marker).
/// An operator's hold, marked after it (`<marker> | hold: <note>`), is not
/// part of it.
fn description_marker(text: &str) -> Option<(String, String, String)> {
    let text = text.split(" | hold: ").next().unwrap_or(text);
    let mut words = text.trim().split(' ');
    if words.next()? != "snapwarden" {
        return None;
    }
    let p = words.next()?.strip_prefix("policy=")?;
    let t = words.next()?.strip_prefix("target=")?;
    let s = words.next()?.strip_prefix("slot=")?;
    if words.next().is_some() || !is_slot_label(s) {
        return None;
    }
    Some((p.to_string(), t.to_string(), s.to_string()))
}

/// `20261122T182245Z`.
pub fn is_slot_label(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn array(v: Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

impl Kind {
    pub fn dialect(self) -> &'static str {
        match self {
            Kind::QingCloud => "qingcloud",
            Kind::UCloudStack => "ucloudstack",
            Kind::Lightsail => "lightsail",
            Kind::PowerVs => "powervs",
            Kind::KakaoCloud => "kakaocloud",
        }
    }

    /// The `[providers.NAME]` name the sections below use.
    pub fn provider(self) -> &'static str {
        match self {
            Kind::QingCloud => "qc",
            Kind::UCloudStack => "ucs",
            Kind::Lightsail => "ls",
            Kind::PowerVs => "pvs",
            Kind::KakaoCloud => "kc",
        }
    }

    pub fn resource(self) -> &'static str {
        match self {
            Kind::QingCloud | Kind::KakaoCloud => "volume",
            Kind::UCloudStack | Kind::Lightsail => "disk",
            Kind::PowerVs => "instance",
        }
    }

    /// The journal action of a create request.
    pub fn create_action(self) -> &'static str {
        match self {
            Kind::QingCloud => "CreateSnapshots",
            Kind::UCloudStack | Kind::KakaoCloud => "CreateSnapshot",
            Kind::Lightsail => "CreateDiskSnapshot",
            Kind::PowerVs => "pcloud.pvminstances.snapshots.post",
        }
    }

    /// The journal action of a delete request.
    pub fn delete_action(self) -> &'static str {
        match self {
            Kind::QingCloud => "DeleteSnapshots",
            Kind::UCloudStack | Kind::KakaoCloud => "DeleteSnapshot",
            Kind::Lightsail => "DeleteDiskSnapshot",
            Kind::PowerVs => "pcloud.cloudinstances.snapshots.delete",
        }
    }

    /// The credential the simulator accepts, whose variable the provider
    /// section names.
    pub fn secret(self) -> &'static str {
        match self {
            Kind::QingCloud => QC_SECRET,
            Kind::UCloudStack => UCS_PRIVATE_KEY,
            Kind::Lightsail => LS_SECRET,
            Kind::PowerVs => PVS_API_KEY,
            Kind::KakaoCloud => KC_SECRET,
        }
    }

    /// Target id number `n` of group `tag` (ids each cloud accepts).
    pub fn target_id(self, tag: &str, n: usize) -> String {
        match self {
            Kind::QingCloud => format!("vol-{tag}{n:04}"),
            Kind::UCloudStack => format!("disk-{tag}{n:04}"),
            Kind::Lightsail => format!("data-{tag}-{n}"),
            Kind::PowerVs => format!("pvm-{tag}-{n:04}"),
            Kind::KakaoCloud => format!("vol-kc-{tag}-{n}"),
        }
    }

    /// One-time seeding the dialect needs before any target.
    pub fn prepare(self, sim: &Sim) {
        match self {
            Kind::UCloudStack => {
                sim.post(
                    "/_sim/ucloudstack/limits",
                    json!({"snapshots_per_disk": 1000}),
                );
            }
            Kind::PowerVs => {
                sim.post(
                    "/_sim/powervs/workspaces",
                    json!({"cloud_instance_id": PVS_CID, "crn": pvs_crn()}),
                );
            }
            _ => {}
        }
    }

    pub fn seed_target(self, sim: &Sim, id: &str) {
        match self {
            Kind::QingCloud => sim.volume(id),
            Kind::UCloudStack => {
                sim.post(
                    "/_sim/ucloudstack/disks",
                    json!({"region": "cn", "zone": "zone-01", "disk_id": id, "name": id}),
                );
            }
            Kind::Lightsail => {
                sim.post("/_sim/lightsail/disks", json!({"name": id}));
            }
            Kind::PowerVs => {
                sim.post(
                    "/_sim/powervs/instances",
                    json!({"cloud_instance_id": PVS_CID, "pvm_instance_id": id,
                           "volume_ids": [format!("{id}-data")]}),
                );
            }
            Kind::KakaoCloud => {
                sim.post("/_sim/kakaocloud/volumes", json!({"volume_id": id}));
            }
        }
    }

    /// A snapshot made by hand with an ordinary name; returns the id the
    /// listing shows.
    pub fn seed_manual(self, sim: &Sim, target: &str) -> String {
        let name = format!("manual-{target}");
        self.seed_foreign(sim, target, &name, "made by hand")
    }

    /// A snapshot whose name looks like ours for `policy` and `target` but
    /// that carries no marker, where the dialect has a marker besides the
    /// name (QingCloud has none: there the name is the marker).
    pub fn seed_lookalike(self, sim: &Sim, policy: &str, target: &str) -> Option<String> {
        let slot = "19990101T000000Z";
        match self {
            Kind::QingCloud => None,
            Kind::UCloudStack => {
                // Our exact name and Remark, but Type=Manual: not ours.
                let marker = snapwarden::providers::Marker {
                    policy: policy.to_string(),
                    target: target.to_string(),
                    slot: chrono::DateTime::parse_from_rfc3339("1999-01-01T00:00:00Z")
                        .expect("a fixed timestamp")
                        .with_timezone(&chrono::Utc),
                };
                let v = sim.post(
                    "/_sim/ucloudstack/snapshots",
                    json!({"region": "cn", "zone": "zone-01", "disk_id": target,
                           "name": snapwarden::providers::ucloudstack::snapshot_name(&marker),
                           "remark": snapwarden::providers::ucloudstack::remark(&marker),
                           "type": "Manual"}),
                );
                Some(text(&v["snapshot_id"]))
            }
            _ => Some(self.seed_foreign(
                sim,
                target,
                &format!("{policy}-{target}-{slot}"),
                "made by hand",
            )),
        }
    }

    fn seed_foreign(self, sim: &Sim, target: &str, name: &str, description: &str) -> String {
        match self {
            Kind::QingCloud => sim.manual_snapshot(target, name),
            Kind::UCloudStack => {
                let v = sim.post(
                    "/_sim/ucloudstack/snapshots",
                    json!({"region": "cn", "zone": "zone-01", "disk_id": target,
                           "name": name, "remark": description, "type": "Manual"}),
                );
                text(&v["snapshot_id"])
            }
            Kind::Lightsail => {
                sim.post(
                    "/_sim/lightsail/snapshots",
                    json!({"name": name, "source": target, "resource": "disk",
                           "auto": false, "tags": []}),
                );
                name.to_string()
            }
            Kind::PowerVs => {
                let v = sim.post(
                    "/_sim/powervs/snapshots",
                    json!({"cloud_instance_id": PVS_CID, "pvm_instance_id": target,
                           "name": name, "description": description}),
                );
                text(&v["snapshot_id"])
            }
            Kind::KakaoCloud => {
                let v = sim.post(
                    "/_sim/kakaocloud/snapshots",
                    json!({"volume_id": target, "name": name, "description": description}),
                );
                text(&v["snapshot_id"])
            }
        }
    }

    /// The `[providers.NAME]` section against `sim`; `extra` lines are
    /// appended (rate limits, timeouts).
    pub fn provider_section(self, sim: &Sim, extra: &str) -> String {
        let url = &sim.url;
        let body = match self {
            Kind::QingCloud => format!(
                "kind = \"qingcloud\"\nzone = \"ap2a\"\naccess_key_id = \"QYSIMACCESSKEY\"\n\
                 secret_access_key_env = \"{}\"\nendpoint = \"{url}/iaas/\"",
                secret_env_name(QC_SECRET)
            ),
            Kind::UCloudStack => format!(
                "kind = \"ucloudstack\"\nendpoint = \"{url}/ucloudstack/api\"\nregion = \"cn\"\n\
                 zone = \"zone-01\"\npublic_key = \"UCSSIMPUBLICKEY\"\nprivate_key_env = \"{}\"",
                secret_env_name(UCS_PRIVATE_KEY)
            ),
            Kind::Lightsail => format!(
                "kind = \"lightsail\"\nregion = \"us-east-2\"\n\
                 access_key_id = \"AKIASIMLIGHTSAIL0001\"\nsecret_access_key_env = \"{}\"\n\
                 endpoint = \"{url}/lightsail\"",
                secret_env_name(LS_SECRET)
            ),
            Kind::PowerVs => format!(
                "kind = \"powervs\"\nendpoint = \"{url}/powervs\"\n\
                 cloud_instance_id = \"{PVS_CID}\"\ncrn = \"{}\"\napi_key_env = \"{}\"\n\
                 iam_endpoint = \"{url}/powervs/identity/token\"",
                pvs_crn(),
                secret_env_name(PVS_API_KEY)
            ),
            Kind::KakaoCloud => format!(
                "kind = \"kakaocloud\"\nendpoint = \"{url}/kakaocloud/volume\"\n\
                 bcs_endpoint = \"{url}/kakaocloud/bcs\"\n\
                 iam_endpoint = \"{url}/kakaocloud/iam/identity/v3/auth/tokens\"\n\
                 application_credential_id = \"kc-sim-access-key\"\n\
                 application_credential_secret_env = \"{}\"",
                secret_env_name(KC_SECRET)
            ),
        };
        format!("[providers.{}]\n{body}\n{extra}\n", self.provider())
    }

    /// Every snapshot of this dialect the simulator holds, deleted ones
    /// included; `policies` are the policy names whose marker counts
    /// (QingCloud's marker is the name, which needs the policy to parse).
    pub fn snapshots(self, sim: &Sim, policies: &[&str]) -> Vec<Snap> {
        let all = array(
            sim.get(&format!("/_sim/{}/snapshots", self.dialect())),
            "snapshots",
        );
        all.iter().map(|s| self.snap(s, policies)).collect()
    }

    fn snap(self, s: &Value, policies: &[&str]) -> Snap {
        match self {
            Kind::QingCloud => {
                let name = text(&s["snapshot_name"]);
                let source = text(&s["resource_id"]);
                let marker = policies.iter().find_map(|p| {
                    let slot = name.strip_prefix(&format!("{p}-{source}-"))?;
                    is_slot_label(slot).then(|| (p.to_string(), source.clone(), slot.to_string()))
                });
                let status = text(&s["status"]);
                let deleted = matches!(status.as_str(), "deleted" | "ceased")
                    || s["transition_status"] == "deleting";
                Snap {
                    id: text(&s["snapshot_id"]),
                    name,
                    source,
                    marker,
                    live: !deleted,
                    deleted,
                    status,
                }
            }
            Kind::UCloudStack => {
                let status = text(&s["status"]);
                let deleted = s["deleted"] == true || status == "Deleting" || status == "Deleted";
                let mut snap =
                    Snap::described(s, ["snapshot_id", "disk_id", "remark"], status, deleted);
                if s["type"] != "Automatic" {
                    snap.marker = None;
                }
                snap
            }
            Kind::Lightsail => {
                let tag = |key: &str| lightsail_tag(s, key).map(str::to_string);
                let marker = match (
                    tag("snapwarden:policy"),
                    tag("snapwarden:target"),
                    tag("snapwarden:slot"),
                ) {
                    (Some(p), Some(t), Some(slot)) if s["isFromAutoSnapshot"] != true => {
                        Some((p, t, slot))
                    }
                    _ => None,
                };
                let source = if s["fromDiskName"].is_string() {
                    text(&s["fromDiskName"])
                } else {
                    text(&s["fromInstanceName"])
                };
                let deleted = s["deleting"] == true || s["gone"] == true;
                Snap {
                    id: text(&s["name"]),
                    name: text(&s["name"]),
                    source,
                    marker,
                    live: !deleted,
                    deleted,
                    status: text(&s["state"]),
                }
            }
            Kind::PowerVs => {
                let status = text(&s["status"]);
                let deleted = s["gone"] == true || status == "deleting";
                Snap::described(
                    s,
                    ["snapshot_id", "pvm_instance_id", "description"],
                    status,
                    deleted,
                )
            }
            Kind::KakaoCloud => {
                let status = text(&s["status"]);
                let deleted = matches!(status.as_str(), "deleted" | "deleting");
                Snap::described(s, ["id", "volume_id", "description"], status, deleted)
            }
        }
    }

    /// Journal entries of this dialect with `action`.
    pub fn requests(self, sim: &Sim, action: &str) -> Vec<Value> {
        sim.journal(self.dialect(), Some(action))
    }
}

fn pvs_crn() -> String {
    format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{PVS_CID}::")
}

/// Every secret in its own variable, plus the fence that keeps the AWS
/// credential chain off the network.
pub fn envs(scratch: &std::path::Path) -> Vec<(String, String)> {
    let none = scratch.join("no-aws-config").display().to_string();
    let mut v: Vec<(String, String)> = [
        QC_SECRET,
        UCS_PRIVATE_KEY,
        LS_SECRET,
        PVS_API_KEY,
        KC_SECRET,
    ]
    .iter()
    .map(|s| (secret_env_name(s), s.to_string()))
    .collect();
    v.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    v.push(("AWS_CONFIG_FILE".into(), none.clone()));
    v.push(("AWS_SHARED_CREDENTIALS_FILE".into(), none));
    v
}

/// A snapwarden command to completion with every secret set.
pub fn cmd(scratch: &std::path::Path, args: &[&str]) -> Output {
    cmd_with(scratch, args, &[])
}

/// [`cmd`] with `extra` variables set too (a wrong credential).
pub fn cmd_with(scratch: &std::path::Path, args: &[&str], extra: &[(String, String)]) -> Output {
    Command::new(BIN)
        .args(args)
        .envs(envs(scratch))
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_LIGHTSAIL")
        .env("RUST_LOG", "info")
        .output()
        .expect("run snapwarden")
}

/// Starts the daemon with every secret set.
pub fn daemon(scratch: &std::path::Path, config: &std::path::Path) -> crate::util::Daemon {
    let envs = envs(scratch);
    let pairs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    crate::util::Daemon::start_with_env(config, QC_SECRET, &pairs)
}

/// [`config_text`] for one provider of `kind` and one `[[policy]]` whose
/// body (without its header) is `policy`.
pub fn one_policy_config(
    wd: &crate::util::Workdir,
    sim: &Sim,
    kind: Kind,
    provider_extra: &str,
    policy: &str,
) -> String {
    config_text(
        wd,
        sim,
        &[kind],
        provider_extra,
        &[format!("[[policy]]\n{policy}")],
    )
}

/// A policy file's text: `[daemon]` (the ledger in `wd`, text logs), the
/// provider section of each of `kinds` with `provider_extra`, and then
/// `policies` (whole `[[policy]]` sections).
pub fn config_text(
    wd: &crate::util::Workdir,
    sim: &Sim,
    kinds: &[Kind],
    provider_extra: &str,
    policies: &[String],
) -> String {
    let mut text = format!(
        "[daemon]\nstate_path = \"{}\"\nlog_format = \"text\"\n\n",
        wd.state_path().display()
    );
    for kind in kinds {
        text.push_str(&kind.provider_section(sim, provider_extra));
        text.push('\n');
    }
    for p in policies {
        text.push_str(p);
        text.push('\n');
    }
    text
}

/// A policy section.
pub fn policy(
    name: &str,
    kind: Kind,
    targets: &[String],
    schedule: &str,
    retain: u32,
    extra: &str,
) -> String {
    policy_on(
        name,
        kind,
        kind.resource(),
        targets,
        schedule,
        retain,
        extra,
    )
}

/// [`policy`] on another kind of `resource` of the cloud.
pub fn policy_on(
    name: &str,
    kind: Kind,
    resource: &str,
    targets: &[String],
    schedule: &str,
    retain: u32,
    extra: &str,
) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"[[policy]]
name = "{name}"
provider = "{provider}"
resource = "{resource}"
targets = [{targets}]
schedule = "{schedule}"
retain = {retain}
poll_interval = "100ms"
poll_max_interval = "300ms"
{timeout}{extra}
"#,
        timeout = if extra.lines().any(|l| l.trim_start().starts_with("timeout")) {
            ""
        } else {
            "timeout = \"30s\"\n"
        },
        provider = kind.provider(),
        targets = targets.join(", "),
    )
}
