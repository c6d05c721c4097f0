//! Provider secrets that rotate while the daemon runs (a refresh token),
//! kept so that a restart uses the newest.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::rows::ts;
use super::{Result, SqliteLedger};

impl SqliteLedger {
    /// A secret a provider keeps here (a rotated refresh token): its value
    /// and the fingerprint of the configured value it descends from.
    pub fn load_secret(&self, provider: &str, key: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value, seed FROM provider_secrets WHERE provider = ?1 AND key = ?2",
                params![provider, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Replace the secret a provider keeps here, committed before return,
    /// if the stored value still is `replaces` (or nothing is stored; any
    /// value when `replaces` is `None`): whether it was stored.
    /// Also from a ledger opened read-only (`plan`): a rotated refresh
    /// token that is not kept would lock the daemon out, so this one write
    /// goes through a writable connection of its own.
    pub fn store_secret(
        &self,
        provider: &str,
        key: &str,
        value: &str,
        seed: &str,
        replaces: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let read_only = self.conn().is_readonly(rusqlite::MAIN_DB)?;
        if read_only {
            return SqliteLedger::open(&self.0.path)?
                .store_secret(provider, key, value, seed, replaces, now);
        }
        let n = self.conn().execute(
            "INSERT INTO provider_secrets (provider, key, value, seed, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (provider, key) DO UPDATE SET
                 value = excluded.value, seed = excluded.seed, updated_at = excluded.updated_at
             WHERE ?6 IS NULL OR provider_secrets.value = ?6",
            params![provider, key, value, seed, ts(now), replaces],
        )?;
        Ok(n == 1)
    }
}
