//! `snapwarden sim`: the built-in cloud simulator alone, until Ctrl-C or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Exit, Outcome};
use crate::observe::logging;
use crate::sim::{SimOptions, Simulator};

/// `tls`: certificate chain and key (PEM) to serve HTTPS with.
pub async fn run(
    listen: SocketAddr,
    job_duration: Duration,
    tls: Option<(PathBuf, PathBuf)>,
) -> Outcome {
    logging::init(crate::config::LogFormat::Text, "info");
    let acceptor = match &tls {
        None => None,
        Some((cert, key)) => match crate::sim::tls::acceptor(cert, key) {
            Ok(a) => Some(a),
            Err(e) => return Err(Exit::config(e.to_string())),
        },
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Exit::failure(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Exit::failure(format!("cannot read the listening address: {e}")))?;
    let sim = Simulator::new(SimOptions { job_duration });
    // Tests and scripts read this line to learn the port.
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    say!("snapwarden sim listening on {scheme}://{addr}");
    sim.serve_with_tls(listener, acceptor, stop_signal())
        .await
        .map_err(|e| Exit::failure(format!("simulator: {e}")))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
