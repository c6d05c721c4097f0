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
