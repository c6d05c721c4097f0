//! The metrics endpoint (`[daemon].metrics_listen`): `GET /metrics` in
//! Prometheus text format and `GET /healthz`, 200 while the scheduler loop
//! turns and the state database is writable, 503 with a one-line reason
//! otherwise.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// A loop that has not turned for this long is stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// What `/healthz` reports, fed by the daemon loop.
#[derive(Debug, Default)]
pub struct Health {
    last_tick_ms: AtomicI64,
    db_problem: Mutex<Option<String>>,
}

impl Health {
    /// The scheduler loop is alive now.
    pub fn tick(&self) {
        self.last_tick_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// The result of the latest write probe of the state database.
    pub fn set_database(&self, result: Result<(), String>) {
        *self.db_problem.lock().unwrap_or_else(|p| p.into_inner()) = result.err();
    }

    /// `Ok` when healthy, else the reason.
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = self
            .db_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Err(format!("state database not writable: {p}"));
        }
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        let age = chrono::Utc::now().timestamp_millis() - last;
        if last == 0 || age > STALL_AFTER.as_millis() as i64 {
            return Err(format!(
                "scheduler loop has not run for {}s",
                age.max(0) / 1000
            ));
        }
        Ok(())
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::metrics::render(),
    )
}

async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    match health.check() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

/// Start the observer thread: every `probe_every` it proves the ledger
/// writable (on a connection of its own) and feeds `health`; with a
/// listener it also serves `/metrics` and `/healthz`. It stops when
/// `stop` turns true.
pub fn start(
    listener: Option<std::net::TcpListener>,
    health: Arc<Health>,
    state: Arc<dyn crate::state::Ledger>,
    probe_every: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    if let Some(l) = &listener {
        l.set_nonblocking(true)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("snapwarden-observer".into())
        .spawn(move || {
            runtime.block_on(async move {
            let probe = {
                let health = health.clone();
                let state = state.clone();
                let stop = stop.clone();
                async move {
                    let mut every = tokio::time::interval(probe_every);
                    loop {
                        tokio::select! {
                            _ = every.tick() => {
                                let result = state.probe_writable().await.map_err(|e| e.to_string());
                                if let Err(e) = &result {
                                    tracing::warn!(error = %e, "state database not writable");
                                }
                                health.set_database(result);
                            }
                            _ = crate::shutdown::stopped(stop.clone()) => break,
                        }
                    }
                }
            };
            match listener.map(tokio::net::TcpListener::from_std) {
                Some(Ok(l)) => {
                    let serve = serve(l, health, crate::shutdown::stopped(stop));
                    let (served, _) = tokio::join!(serve, probe);
                    if let Err(e) = served {
                        tracing::error!(error = %e, "metrics endpoint failed");
                    }
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "metrics endpoint failed");
                    probe.await;
                }
                None => probe.await,
            }
        })
        })
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(health);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_a_recent_tick_and_a_writable_database() {
        let h = Health::default();
        assert!(h.check().is_err(), "no tick yet");
        h.tick();
        assert!(h.check().is_ok());
        h.set_database(Err("disk I/O error".into()));
        assert!(h.check().unwrap_err().contains("disk I/O error"));
        h.set_database(Ok(()));
        assert!(h.check().is_ok());
    }
}
