//! The process-wide stop flag: a `watch` channel whose value turns true
//! once. Every room that must stop waits on it the same way.

use tokio::sync::watch;

/// Resolves when the shutdown flag turns true. A flag whose sender is gone
/// can never turn true, so then it never resolves (rather than spinning).
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
