//! `snapwarden demo`: the simulator and the daemon in one process, with
//! `config/demo.toml` (built in), so a newcomer sees create → poll → prune
//! in the log within a minute. The ledger lives in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use super::{Exit, Outcome};
use crate::config::{self, Config, Policy, ProviderSettings};
use crate::domain::ResourceKind;
use crate::observe::logging;
use crate::sim::{
    SimOptions, Simulator, DEFAULT_QINGCLOUD_SECRET, DEFAULT_UCLOUDSTACK_PRIVATE_KEY,
};

/// The demo policy file, compiled in so `demo` works from any directory.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// Where the demo's simulator listens; `config/demo.toml` points here.
pub const DEMO_LISTEN: &str = "127.0.0.1:18710";

pub async fn run(config_path: Option<&Path>) -> Outcome {
    if std::env::var_os("SNAPWARDEN_DEMO_SECRET").is_none() {
        // The demo file reads the simulator's secret from this variable.
        std::env::set_var("SNAPWARDEN_DEMO_SECRET", DEFAULT_QINGCLOUD_SECRET);
    }
    if std::env::var_os("SNAPWARDEN_DEMO_UCS_KEY").is_none() {
        std::env::set_var("SNAPWARDEN_DEMO_UCS_KEY", DEFAULT_UCLOUDSTACK_PRIVATE_KEY);
    }
    let (path, loaded) = match config_path {
        Some(p) => (p.to_path_buf(), config::load(p)),
        None => {
            let p = PathBuf::from("config/demo.toml");
            let c = config::load_str(DEMO_CONFIG, &p);
            (p, c)
        }
    };
    let mut config = loaded.map_err(|e| Exit::config(e.to_string()))?;
    logging::init(config.daemon.log_format, "info");
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let dir = tempfile_dir().map_err(Exit::failure)?;
    config.daemon.state_path = dir.join("state.db");

    let listener = match tokio::net::TcpListener::bind(DEMO_LISTEN).await {
        Ok(l) => l,
        Err(e) => {
            return Err(Exit::failure(format!(
                "cannot listen on {DEMO_LISTEN} for the demo simulator: {e}"
            )))
        }
    };
    let sim = Simulator::new(SimOptions {
        job_duration: Duration::from_secs(1),
    });
    seed(&sim, &config);
    let (stop_sim_tx, mut stop_sim_rx) = watch::channel(false);
    let server = tokio::spawn(sim.serve(listener, async move {
        let _ = stop_sim_rx.wait_for(|s| *s).await;
    }));
    info!(simulator = %format!("http://{DEMO_LISTEN}"), state = %config.daemon.state_path.display(), "demo: simulator up; starting the daemon (Ctrl-C to stop)");

    let (_stop_tx, stop_rx) = watch::channel(false);
    let result = crate::daemon::run(path, config, stop_rx).await;
    let _ = stop_sim_tx.send(true);
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| Exit::failure(e.to_string()))
}

/// The simulator's resources for the demo file's targets, each with a
/// snapshot made by hand that the demo shows is never touched.
fn seed(sim: &Simulator, config: &Config) {
    for p in &config.policies {
        let Some(pc) = config.providers.get(&p.provider) else {
            continue;
        };
        match &pc.settings {
            ProviderSettings::QingCloud(q) => seed_qingcloud(sim, q, p),
            ProviderSettings::UCloudStack(u) => seed_ucloudstack(sim, u, p),
            ProviderSettings::KakaoCloud(k) => seed_kakaocloud(sim, k, p),
            ProviderSettings::PowerVs(v) => seed_powervs(sim, v, p),
            ProviderSettings::Lightsail(l) => seed_lightsail(sim, l, p),
        }
    }
}

fn seed_qingcloud(sim: &Simulator, q: &crate::config::QingCloudSettings, p: &Policy) {
    for t in &p.targets.named {
        if p.resource == ResourceKind::Instance {
            sim.seed_qingcloud_instance(&q.zone, t, t);
        } else {
            sim.seed_qingcloud_volume(&q.zone, t, t);
        }
        // A snapshot an operator made by hand: the demo shows it is never touched.
        sim.seed_qingcloud_snapshot(&q.zone, t, &format!("manual-{t}-before-upgrade"), None);
    }
}

fn seed_ucloudstack(sim: &Simulator, u: &crate::config::UCloudStackSettings, p: &Policy) {
    for t in &p.targets.named {
        sim.seed_ucloudstack_disk(&u.region, &u.zone, t, t);
        // Made by hand (Type=Manual): the demo shows it is never touched.
        sim.seed_ucloudstack_manual_snapshot(&u.region, &u.zone, t, &format!("manual-{t}"));
    }
}

fn seed_kakaocloud(sim: &Simulator, k: &crate::config::KakaoCloudSettings, p: &Policy) {
    // The demo file's credential is the one the simulator accepts.
    sim.add_kakaocloud_credentials(
        &k.application_credential_id,
        k.application_credential_secret.expose(),
    );
    for t in &p.targets.named {
        let volumes = if p.resource == ResourceKind::Instance {
            let vols = vec![(format!("{t}-root"), true), (format!("{t}-data"), false)];
            sim.seed_kakaocloud_instance(t, t, &vols);
            vols.into_iter().map(|(v, _)| v).collect()
        } else {
            sim.seed_kakaocloud_volume(t, t);
            vec![t.clone()]
        };
        for v in volumes {
            sim.seed_kakaocloud_snapshot(&v, &format!("manual-{v}-before-upgrade"));
        }
    }
}

fn seed_powervs(sim: &Simulator, v: &crate::config::PowerVsSettings, p: &Policy) {
    // The demo simulator accepts whatever credentials the file gives.
    sim.seed_powervs_workspace(&v.cloud_instance_id, &v.crn);
    match &v.auth {
        crate::config::PowerVsAuth::ApiKey { api_key, .. } => {
            sim.add_powervs_api_key(api_key.expose())
        }
        crate::config::PowerVsAuth::RefreshToken {
            refresh_token: Some(t),
        } => sim.add_powervs_refresh_token(t.expose()),
        _ => {}
    }
    for t in &p.targets.named {
        let mut volumes = p.targets.volume_ids.clone().unwrap_or_default();
        volumes.push(format!("{t}-boot"));
        sim.seed_powervs_instance(&v.cloud_instance_id, t, volumes);
        sim.seed_powervs_snapshot(
            &v.cloud_instance_id,
            t,
            &format!("manual-{t}-before-upgrade"),
            "taken by hand before an upgrade",
            None,
        );
    }
}

fn seed_lightsail(sim: &Simulator, l: &crate::config::LightsailSettings, p: &Policy) {
    if let config::LightsailCredentials::Static {
        access_key_id,
        secret_access_key,
    } = &l.credentials
    {
        sim.add_lightsail_credentials(access_key_id, secret_access_key.expose());
    }
    for t in &p.targets.named {
        let disk = p.resource == ResourceKind::Disk;
        sim.seed_lightsail_resource(t, disk);
        // Neither a hand-made snapshot nor a kept automatic one is ever touched.
        sim.seed_lightsail_snapshot(&format!("manual-{t}-before-upgrade"), t, disk, false);
        sim.seed_lightsail_snapshot(&format!("{t}-auto-kept"), t, disk, true);
    }
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("snapwarden-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
