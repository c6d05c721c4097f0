//! QingCloud IaaS provider (client implementation pending).

use super::Capabilities;

/// What the `qingcloud` kind supports; the config checks policies against it.
pub const CAPABILITIES: Capabilities = Capabilities {
    resources: &["volume", "instance"],
    max_status_batch: 100,
    incremental: true,
};
