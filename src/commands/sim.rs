//! `snapwarden sim`: the built-in cloud simulator alone, until Ctrl-C or
//! SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use super::Exit;
use crate::observe::logging;
use crate::sim::{SimOptions, Simulator};

pub async fn run(listen: SocketAddr, job_duration: Duration) -> Exit {
    logging::init(crate::config::LogFormat::Text, "info");
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => return Exit::failure(format!("cannot listen on {listen}: {e}")),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return Exit::failure(format!("cannot read the listening address: {e}")),
    };
    let sim = Simulator::new(SimOptions { job_duration });
    // Tests and scripts read this line to learn the port.
    println!("snapwarden sim listening on http://{addr}");
    match sim.serve(listener, stop_signal()).await {
        Ok(()) => Exit::OK,
        Err(e) => Exit::failure(format!("simulator: {e}")),
    }
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
