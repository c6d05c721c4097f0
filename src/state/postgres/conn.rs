//! The ledger's connection and its transactions, with every statement
//! prepared once per connection.
//!
//! tokio-postgres prepares a statement given as text every time it runs:
//! a round trip to parse and describe it before the one that executes it.
//! The ledger runs the same few dozen statements over and over, so each
//! connection keeps the statements it prepared, by their text, and runs
//! them again by name. Named statements live as long as the session (a
//! rolled-back transaction does not drop them); a connection opened again
//! starts with none.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Mutex as StdMutex;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row, Statement, Transaction};

/// The most statements one connection keeps. The ledger's SQL is a fixed
/// set of texts (values always go in parameters), well under this; the
/// bound only keeps a mistake from growing without end.
const MAX_PREPARED: usize = 256;

/// A statement's parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The statements a connection has prepared, by their text.
#[derive(Default)]
struct Prepared(StdMutex<HashMap<String, Statement>>);

impl Prepared {
    /// `sql` prepared on `client`, once.
    async fn statement(&self, client: &Client, sql: &str) -> Result<Statement, Error> {
        if let Some(s) = self.lock().get(sql) {
            return Ok(s.clone());
        }
        let statement = client.prepare(sql).await?;
        let mut prepared = self.lock();
        if prepared.len() >= MAX_PREPARED {
            prepared.clear();
        }
        prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A view to run statements through: a connection, inside a transaction
/// or not, and the statements it has prepared.
#[derive(Clone, Copy)]
pub(super) struct Db<'a> {
    client: &'a Client,
    prepared: &'a Prepared,
}

impl Db<'_> {
    pub(super) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let s = self.prepared.statement(self.client, sql).await?;
        self.client.query(&s, params).await
    }

    pub(super) async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let s = self.prepared.statement(self.client, sql).await?;
        self.client.query_one(&s, params).await
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let s = self.prepared.statement(self.client, sql).await?;
        self.client.query_opt(&s, params).await
    }

    pub(super) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let s = self.prepared.statement(self.client, sql).await?;
        self.client.execute(&s, params).await
    }
}

/// Whatever statements can run through: a connection or a transaction.
pub(super) trait AsDb {
    fn db(&self) -> Db<'_>;
}

/// `query`, `query_one`, `query_opt` and `execute` of [`Db`] as inherent
/// methods of `$t`, so that SQL text given to them runs prepared.
macro_rules! run_prepared {
    ($t:ty) => {
        // Not every holder runs every kind of statement.
        #[allow(dead_code)]
        impl $t {
            pub(super) async fn query(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> Result<Vec<Row>, Error> {
                self.db().query(sql, params).await
            }

            pub(super) async fn query_one(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> Result<Row, Error> {
                self.db().query_one(sql, params).await
            }

            pub(super) async fn query_opt(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> Result<Option<Row>, Error> {
                self.db().query_opt(sql, params).await
            }

            pub(super) async fn execute(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> Result<u64, Error> {
                self.db().execute(sql, params).await
            }
        }
    };
}

/// The ledger's connection with the statements it has prepared.
pub(super) struct Conn {
    client: Client,
    prepared: Prepared,
}

impl Conn {
    pub(super) fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: Prepared::default(),
        }
    }

    /// Begin a transaction; it rolls back unless committed.
    pub(super) async fn transaction(&mut self) -> Result<Tx<'_>, Error> {
        Ok(Tx {
            tx: self.client.transaction().await?,
            prepared: &self.prepared,
        })
    }

    /// How many statements this connection has prepared.
    #[cfg(test)]
    pub(super) fn prepared_count(&self) -> usize {
        self.prepared.len()
    }
}

run_prepared!(Conn);

impl AsDb for Conn {
    fn db(&self) -> Db<'_> {
        Db {
            client: &self.client,
            prepared: &self.prepared,
        }
    }
}

/// The raw client, for what is run once (migrations, the lease, tests).
impl Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A transaction on the ledger's connection, running the connection's
/// prepared statements.
pub(super) struct Tx<'a> {
    tx: Transaction<'a>,
    prepared: &'a Prepared,
}

impl Tx<'_> {
    pub(super) async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }
}

run_prepared!(Tx<'_>);

impl AsDb for Tx<'_> {
    fn db(&self) -> Db<'_> {
        Db {
            client: self.tx.client(),
            prepared: self.prepared,
        }
    }
}

/// The raw transaction, for what is run once (an import's COPY).
impl<'a> Deref for Tx<'a> {
    type Target = Transaction<'a>;

    fn deref(&self) -> &Transaction<'a> {
        &self.tx
    }
}
