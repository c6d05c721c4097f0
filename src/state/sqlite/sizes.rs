//! Snapshot sizes, as the clouds' listings give them.

use rusqlite::params;

use super::{Result, SqliteLedger};
use crate::state::stored_size;

impl SqliteLedger {
    /// Record the sizes a listing gave for ledger rows: (row id, bytes),
    /// in one transaction. A row id that does not exist is skipped (the
    /// listing may race a trim). A size the ledger cannot store is
    /// refused before anything is written.
    pub fn record_sizes(&self, sizes: &[(i64, u64)]) -> Result<()> {
        if sizes.is_empty() {
            return Ok(());
        }
        let stored = sizes
            .iter()
            .map(|&(row, bytes)| Ok((row, stored_size(row, bytes)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut conn = self.conn();
        let tx = super::write_tx(&mut conn)?;
        {
            let mut stmt =
                tx.prepare_cached("UPDATE snapshots SET size_bytes = ?2 WHERE id = ?1")?;
            for (row, bytes) in stored {
                stmt.execute(params![row, bytes])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
