//! What operators see: logging setup, sd_notify, metrics and the
//! `/metrics` + `/healthz` endpoint.

pub mod alerts;
pub mod events;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod server;
