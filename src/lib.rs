//! snapwarden: scheduled cloud snapshots with job tracking and retention.
//!
//! The crate is a library so that the binary and the end-to-end tests share
//! one definition of each concept. The rooms and the arrows between them
//! are drawn in ARCHITECTURE.md: `domain` is the shared vocabulary and
//! depends on nothing; the engine depends on the provider trait only; cloud
//! modules never depend on the engine; the simulator shares nothing with
//! the clients it checks.

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod engine;
pub mod hooks;
pub mod leadership;
pub mod observe;
pub mod providers;
pub mod retention;
pub mod schedule;
pub mod shutdown;
pub mod sim;
pub mod state;
