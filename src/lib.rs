//! snapwarden: scheduled cloud snapshots with job tracking and retention.
//!
//! The crate is a library so that the binary, the end-to-end tests and the
//! simulator share one definition of each concept. The engine depends on the
//! provider trait only; cloud modules never depend on the engine.

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod observe;
pub mod providers;
pub mod retention;
pub mod schedule;
pub mod sim;
pub mod state;
