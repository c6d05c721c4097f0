//! The cloud simulator (placeholder).
