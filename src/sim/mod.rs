//! The built-in cloud simulator: the clouds' wire protocols on loopback.
//!
//! Operators use it to try a policy file; the end-to-end tests trust it to
//! behave like the real services (request shapes, signatures, status
//! enumerations, error bodies, pagination limits). It must therefore never
//! share code with `crate::providers`: it checks the clients, so it carries
//! its own reading of each API.
//!
//! Layout: one module per cloud dialect (its state, its routes, its own
//! control endpoints) on top of plumbing every dialect shares — the request
//! journal, fault injection and settings (`control`, `faults`, `journal`) and
//! the connection wrapper that can drop a connection on purpose (`conn`).
//! Adding a cloud means one more dialect module, one field in [`SimState`],
//! its name in [`DIALECTS`] and its routes merged in [`Simulator::router`].
//!
//! Time is the real wall clock. Snapshot and job states are not advanced by a
//! background task: each is derived from timestamps when it is read, so the
//! simulator is cheap and its answers depend only on elapsed time.

mod conn;
mod control;
mod faults;
mod form;
mod journal;
mod kakaocloud;
mod lightsail;
mod pipeline;
mod powervs;
mod qingcloud;
pub mod tls;
mod ucloudstack;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;

pub use conn::ConnHandle;

/// Access key a fresh [`Simulator`] accepts for QingCloud.
pub const DEFAULT_QINGCLOUD_ACCESS_KEY_ID: &str = "QYSIMACCESSKEY";
/// Secret belonging to [`DEFAULT_QINGCLOUD_ACCESS_KEY_ID`].
pub const DEFAULT_QINGCLOUD_SECRET: &str = "sim-qingcloud-secret";
/// Public key a fresh [`Simulator`] accepts for UCloudStack.
pub const DEFAULT_UCLOUDSTACK_PUBLIC_KEY: &str = "UCSSIMPUBLICKEY";
/// Private key belonging to [`DEFAULT_UCLOUDSTACK_PUBLIC_KEY`].
pub const DEFAULT_UCLOUDSTACK_PRIVATE_KEY: &str = "sim-ucloudstack-private-key";
/// Region and zone a fresh [`Simulator`] knows for UCloudStack.
pub const DEFAULT_UCLOUDSTACK_REGION: &str = "cn";
pub const DEFAULT_UCLOUDSTACK_ZONE: &str = "zone-01";

/// Application credential (IAM access key) id a fresh [`Simulator`] accepts
/// for KakaoCloud.
pub const DEFAULT_KAKAOCLOUD_CREDENTIAL_ID: &str = "kc-sim-access-key";
/// Secret belonging to [`DEFAULT_KAKAOCLOUD_CREDENTIAL_ID`].
pub const DEFAULT_KAKAOCLOUD_SECRET: &str = "sim-kakaocloud-secret";

/// IBM Cloud API key a fresh [`Simulator`] accepts at `/powervs/identity/token`.
pub const DEFAULT_POWERVS_API_KEY: &str = "sim-powervs-api-key";
/// IP4G refresh token a fresh [`Simulator`] accepts (once: tokens rotate).
pub const DEFAULT_POWERVS_REFRESH_TOKEN: &str = "sim-ip4g-refresh-token";

/// AWS access key id a fresh [`Simulator`] accepts for Lightsail.
pub const DEFAULT_LIGHTSAIL_ACCESS_KEY_ID: &str = "AKIASIMLIGHTSAIL0001";
/// Secret belonging to [`DEFAULT_LIGHTSAIL_ACCESS_KEY_ID`].
pub const DEFAULT_LIGHTSAIL_SECRET: &str = "sim-lightsail-secret";

/// Names of the dialects this simulator serves, as used by the control API
/// (`"dialect"` in faults and in the request journal).
pub const DIALECTS: &[&str] = &[
    qingcloud::DIALECT,
    ucloudstack::DIALECT,
    lightsail::DIALECT,
    powervs::DIALECT,
    kakaocloud::DIALECT,
];

/// How the simulator behaves when it starts; most of it can be changed later
/// through `POST /_sim/settings`.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// How long create/delete jobs stay pending/working before they end.
    pub job_duration: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            job_duration: Duration::from_secs(2),
        }
    }
}

/// Everything the simulator knows, behind one lock. Handlers never hold the
/// lock across an `.await`.
pub(crate) struct SimState {
    pub(crate) settings: control::Settings,
    pub(crate) journal: journal::Journal,
    pub(crate) faults: faults::FaultRegistry,
    pub(crate) qingcloud: qingcloud::QingState,
    pub(crate) ucloudstack: ucloudstack::UcsState,
    pub(crate) kakaocloud: kakaocloud::KakaoState,
    pub(crate) powervs: powervs::PvsState,
    pub(crate) lightsail: lightsail::LightsailState,
}

/// A running simulator's shared state; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<SimState>>,
}

impl Simulator {
    pub fn new(opts: SimOptions) -> Self {
        let mut qing = qingcloud::QingState::default();
        qing.add_credentials(DEFAULT_QINGCLOUD_ACCESS_KEY_ID, DEFAULT_QINGCLOUD_SECRET);
        let mut ucs = ucloudstack::UcsState::default();
        ucs.add_credentials(
            DEFAULT_UCLOUDSTACK_PUBLIC_KEY,
            DEFAULT_UCLOUDSTACK_PRIVATE_KEY,
        );
        ucs.add_zone(DEFAULT_UCLOUDSTACK_REGION, DEFAULT_UCLOUDSTACK_ZONE);
        let mut kakao = kakaocloud::KakaoState::default();
        kakao.add_credentials(DEFAULT_KAKAOCLOUD_CREDENTIAL_ID, DEFAULT_KAKAOCLOUD_SECRET);
        let mut ls = lightsail::LightsailState::default();
        ls.add_credentials(DEFAULT_LIGHTSAIL_ACCESS_KEY_ID, DEFAULT_LIGHTSAIL_SECRET);
        Simulator {
            state: Arc::new(Mutex::new(SimState {
                settings: control::Settings {
                    job_duration: opts.job_duration,
                    job_id_as_array: false,
                },
                journal: journal::Journal::default(),
                faults: faults::FaultRegistry::default(),
                qingcloud: qing,
                ucloudstack: ucs,
                kakaocloud: kakao,
                powervs: {
                    let mut pvs = powervs::PvsState::default();
                    pvs.api_keys.insert(DEFAULT_POWERVS_API_KEY.to_string());
                    pvs.refresh_tokens
                        .insert(DEFAULT_POWERVS_REFRESH_TOKEN.to_string(), true);
                    pvs
                },
                lightsail: ls,
            })),
        }
    }

    /// All dialects plus the control API under `/_sim/`.
    ///
    /// Served through [`Simulator::serve`], the `drop_connection` fault closes
    /// the TCP connection without an answer and the control API refuses
    /// non-loopback peers. Served any other way (e.g. `axum::serve` on a plain
    /// listener) a dropped connection is approximated by aborting the body.
    pub fn router(&self) -> Router {
        let control = control::routes()
            .merge(qingcloud::control_routes())
            .merge(ucloudstack::control_routes())
            .merge(kakaocloud::control_routes())
            .merge(powervs::control_routes())
            .merge(lightsail::control_routes())
            .layer(axum::middleware::from_fn(control::loopback_only));
        Router::new()
            .merge(qingcloud::routes())
            .merge(ucloudstack::routes())
            .merge(kakaocloud::routes())
            .merge(powervs::routes())
            .merge(lightsail::routes())
            .merge(control)
            .fallback(control::not_found)
            .with_state(self.clone())
    }

    /// Serve until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_with_tls(listener, None, shutdown).await
    }

    /// Serve until `shutdown` completes, over TLS when `tls` is given
    /// (see [`tls::acceptor`]).
    pub async fn serve_with_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<ConnHandle>();
        axum::serve(conn::SimListener::new(listener, tls), app)
            .with_graceful_shutdown(shutdown)
            .await
    }

    pub fn add_qingcloud_credentials(&self, access_key_id: &str, secret_access_key: &str) {
        self.lock()
            .qingcloud
            .add_credentials(access_key_id, secret_access_key);
    }

    pub fn seed_qingcloud_volume(&self, zone: &str, volume_id: &str, volume_name: &str) {
        self.lock().qingcloud.seed_resource(
            zone,
            volume_id,
            volume_name,
            qingcloud::ResourceKind::Volume,
        );
    }

    /// Replace a seeded QingCloud volume's or instance's tags.
    pub fn set_qingcloud_tags(&self, id: &str, tags: std::collections::BTreeMap<String, String>) {
        self.lock().qingcloud.set_tags(id, tags);
    }

    pub fn seed_qingcloud_instance(&self, zone: &str, instance_id: &str, instance_name: &str) {
        self.lock().qingcloud.seed_resource(
            zone,
            instance_id,
            instance_name,
            qingcloud::ResourceKind::Instance,
        );
    }

    /// A snapshot made outside snapwarden (manual); returns its id.
    /// `create_time` None = now. The snapshot is full and available at once;
    /// an unknown `resource_id` is registered first (`i-…` as an instance,
    /// anything else as a volume) so that seeding never fails.
    pub fn seed_qingcloud_snapshot(
        &self,
        zone: &str,
        resource_id: &str,
        snapshot_name: &str,
        create_time: Option<chrono::DateTime<chrono::Utc>>,
    ) -> String {
        let now = chrono::Utc::now();
        self.lock().qingcloud.seed_snapshot(
            zone,
            resource_id,
            snapshot_name,
            create_time.unwrap_or(now),
        )
    }

    /// A UCloudStack disk (not bound to a running VM).
    pub fn seed_ucloudstack_disk(&self, region: &str, zone: &str, disk_id: &str, name: &str) {
        self.lock()
            .ucloudstack
            .seed_disk(region, zone, disk_id, name, false);
    }

    /// A `Type=Manual` UCloudStack snapshot an operator made by hand, for
    /// the demo; returns its id.
    pub fn seed_ucloudstack_manual_snapshot(
        &self,
        region: &str,
        zone: &str,
        disk_id: &str,
        name: &str,
    ) -> String {
        self.lock().ucloudstack.seed_snapshot(
            &ucloudstack::NewSnapshot {
                region,
                zone,
                disk_id,
                name,
                remark: "",
                snapshot_type: "Manual",
            },
            chrono::Utc::now(),
            Duration::ZERO,
        )
    }

    pub fn add_kakaocloud_credentials(&self, id: &str, secret: &str) {
        self.lock().kakaocloud.add_credentials(id, secret);
    }

    /// A KakaoCloud instance with its volumes (`(volume_id, is_root)`).
    pub fn seed_kakaocloud_instance(&self, id: &str, name: &str, volumes: &[(String, bool)]) {
        self.lock().kakaocloud.seed_instance(id, name, volumes);
    }

    /// A KakaoCloud volume, detached.
    pub fn seed_kakaocloud_volume(&self, id: &str, name: &str) {
        self.lock().kakaocloud.seed_volume(id, name, None, None);
    }

    /// A KakaoCloud snapshot made outside snapwarden; returns its id.
    pub fn seed_kakaocloud_snapshot(&self, volume_id: &str, name: &str) -> String {
        self.lock()
            .kakaocloud
            .seed_snapshot(volume_id, name, None, chrono::Utc::now())
    }

    pub fn add_lightsail_credentials(&self, access_key_id: &str, secret_access_key: &str) {
        self.lock()
            .lightsail
            .add_credentials(access_key_id, secret_access_key);
    }

    /// A Lightsail instance (`disk = false`) or disk the simulator knows.
    pub fn seed_lightsail_resource(&self, name: &str, disk: bool) {
        let family = if disk {
            lightsail::Family::Disk
        } else {
            lightsail::Family::Instance
        };
        self.lock()
            .lightsail
            .seed_resource(family, name, None, None);
    }

    /// A Lightsail snapshot made outside snapwarden, untagged, available at
    /// once; `auto` marks it as a kept copy of an automatic snapshot.
    pub fn seed_lightsail_snapshot(&self, name: &str, source: &str, disk: bool, auto: bool) {
        let seed = lightsail::SeedSnapshot {
            name: name.to_string(),
            source: source.to_string(),
            resource: if disk { "disk" } else { "instance" }.to_string(),
            tags: Vec::new(),
            auto,
            created_at: None,
        };
        // A taken name only means it was seeded already.
        let _ = self
            .lock()
            .lightsail
            .seed_snapshot(&seed, chrono::Utc::now());
    }

    /// The lock is only poisoned if a handler panicked while holding it; the
    /// state is plain data that stays consistent between statements, so the
    /// simulator keeps serving rather than failing every later request.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for Simulator {
    fn default() -> Self {
        Simulator::new(SimOptions::default())
    }
}

/// Random lowercase alphanumeric id body, as the clouds use (`ss-umocjmc3`).
pub(crate) fn random_id(prefix: &str, len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    for _ in 0..len {
        let i = rng.random_range(0..ALPHABET.len());
        id.push(char::from(ALPHABET[i]));
    }
    id
}
