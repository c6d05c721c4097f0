//! Logging setup: tracing with text or JSON lines on stderr (journald picks
//! either up). `RUST_LOG` overrides the level. Secrets never reach a log
//! line: config values are `Secret`s that print as `[redacted]`, and
//! provider errors never carry URLs or signatures.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global subscriber. `default_level` applies when `RUST_LOG`
/// is unset. Calling it twice is harmless (the first one wins).
pub fn init(format: LogFormat, default_level: &str) {
    // The scheduler crate narrates every job it creates; keep it quiet.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},tokio_cron_scheduler=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colours only on a terminal: journald and files get plain text.
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
