//! snapwarden: scheduled cloud snapshots with job tracking and retention.
//!
//! The crate is a library so that the binary, the end-to-end tests and the
//! simulator share one definition of each concept. The engine depends on the
//! provider trait only; cloud modules never depend on the engine.

pub mod config;
pub mod providers;
pub mod schedule;
pub mod sim;
