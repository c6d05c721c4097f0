//! QingCloud IaaS provider (placeholder until implemented).
