//! Snapshot sizes, as the clouds' listings give them.

use super::PgLedger;
use crate::state::{stored_size, Result};

impl PgLedger {
    /// Record the sizes a listing gave for ledger rows: (row id, bytes),
    /// in one transaction. A fact, not fenced: any process that listed a
    /// target may record what it saw. A row id that does not exist is
    /// skipped (the listing may race a trim). A size the ledger cannot
    /// store is refused before anything is written.
    pub async fn record_sizes(&self, sizes: &[(i64, u64)]) -> Result<()> {
        if sizes.is_empty() {
            return Ok(());
        }
        let (rows, bytes): (Vec<i64>, Vec<i64>) = sizes
            .iter()
            .map(|&(row, bytes)| Ok((row, stored_size(row, bytes)?)))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let client = self.client().await?;
        // One statement is one transaction; a row id not in `snapshots`
        // joins nothing and is skipped.
        client
            .execute(
                "UPDATE snapshots s SET size_bytes = v.bytes
                 FROM unnest($1::bigint[], $2::bigint[]) AS v(id, bytes)
                 WHERE s.id = v.id",
                &[&rows, &bytes],
            )
            .await?;
        Ok(())
    }
}
