//! Helpers the simulator's own tests share.

use std::net::SocketAddr;
use std::time::Duration;

use super::{SimOptions, Simulator};

/// A simulator whose new jobs take `job_ms`, served on a free loopback port
/// until the returned sender is dropped.
pub(crate) async fn serve_on_loopback(
    job_ms: u64,
) -> (Simulator, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let sim = Simulator::new(SimOptions {
        job_duration: Duration::from_millis(job_ms),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind loopback: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = sim.clone();
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    (sim, addr, stop)
}

/// The text member `field` of each object in the array `list` (objects
/// without it are left out).
pub(crate) fn texts<'a>(list: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .filter_map(|item| item[field].as_str())
        .collect()
}
