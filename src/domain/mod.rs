//! The shared vocabulary: the words config, providers, retention, the
//! engine and the ledger all speak. This module is a leaf: it imports
//! nothing else of the crate, so any room may depend on it and it on none
//! (see ARCHITECTURE.md).

mod cloud;
mod error;
mod marker;
mod operation;
mod resource;
mod rules;

pub use cloud::{Capabilities, Cloud, RestoreMode, Selectable};
pub use error::ErrorKind;
pub use marker::{parse_slot_label, slot_label, ChainInfo, Marker};
pub use operation::{Held, HoldCause, OpKind};
pub use resource::{Resource, ResourceKind};
pub use rules::{Period, Rules};
