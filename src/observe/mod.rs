//! What operators see: logging setup and sd_notify. (Metrics and alerts
//! join here.)

pub mod logging;
pub mod notify;
