//! Leadership of a shared ledger: one lease row, renewed on the database's
//! clock, with an epoch that grows at every change of holder (the fencing
//! token every decision write checks).
//!
//! Only the database's `now()` decides whether a lease has expired, so the
//! nodes' clocks never matter. A holder renews well before expiry; another
//! node takes the lease only once it has expired, and then with the next
//! epoch. A holder whose own lease expired gets a new epoch too when it
//! renews: whatever it decided under the old one may have been overtaken,
//! so it must stop (the caller compares epochs).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::PgLedger;
use crate::state::Result;

/// The one lease: the node holding it schedules, creates, polls and
/// deletes for every policy.
pub const SCHEDULER: &str = "scheduler";

/// The lease as this process holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub epoch: i64,
    /// When this holder took the lease (not its last renewal).
    pub since: DateTime<Utc>,
}

/// Who leads, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub node: String,
    pub holder: String,
    pub epoch: i64,
    pub since: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Expired on the database's clock: nobody leads until a node takes
    /// the lease.
    pub expired: bool,
}

/// A node as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub node: String,
    pub holder: String,
    /// `leader`, `standby` or `stopped`.
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

impl PgLedger {
    /// A connection of its own to the same database, for the lease: a
    /// renewal never waits behind the ledger's calls.
    pub async fn session(&self) -> Result<Client> {
        self.0.target.open().await
    }

    /// Who leads and the nodes seen within `recent` (`status`), on the
    /// ledger's own connection.
    pub async fn leadership_view(&self, recent: Duration) -> Result<crate::state::LeadershipView> {
        let client = self.client().await?;
        Ok(crate::state::LeadershipView {
            leader: leader(&client).await?,
            nodes: nodes(&client, recent).await?,
        })
    }
}

/// Take the lease if it is free or expired, or renew it if this holder
/// has it: the epoch it is held with, or `None` if another holder's lease
/// is still running.
pub async fn acquire_or_renew(
    client: &Client,
    holder: &str,
    node: &str,
    lease: Duration,
) -> Result<Option<Held>> {
    let row = client
        .query_opt(
            "INSERT INTO leader_lease AS l
                 (name, holder, node, epoch, acquired_at, renewed_at, expires_at)
             VALUES ($1, $2, $3, 1, now(), now(), now() + make_interval(secs => $4))
             ON CONFLICT (name) DO UPDATE SET
                 holder = excluded.holder,
                 node = excluded.node,
                 epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at > now()
                              THEN l.epoch ELSE l.epoch + 1 END,
                 acquired_at = CASE WHEN l.holder = excluded.holder AND l.expires_at > now()
                                    THEN l.acquired_at ELSE now() END,
                 renewed_at = now(),
                 expires_at = excluded.expires_at
             WHERE l.holder = excluded.holder OR l.expires_at <= now()
             RETURNING epoch, acquired_at",
            &[&SCHEDULER, &holder, &node, &lease.as_secs_f64()],
        )
        .await?;
    row.map(|r| {
        Ok(Held {
            epoch: r.try_get(0)?,
            since: r.try_get(1)?,
        })
    })
    .transpose()
}

/// Give the lease up at once (a clean stop): the standby need not wait
/// for it to expire. Nothing happens if this holder no longer has it.
pub async fn release(client: &Client, holder: &str) -> Result<()> {
    client
        .execute(
            "UPDATE leader_lease SET expires_at = now() WHERE name = $1 AND holder = $2",
            &[&SCHEDULER, &holder],
        )
        .await?;
    Ok(())
}

/// Who holds (or last held) the lease; `None` before any node led.
pub async fn leader(client: &Client) -> Result<Option<Leader>> {
    let row = client
        .query_opt(
            "SELECT node, holder, epoch, acquired_at, renewed_at, expires_at, expires_at <= now()
             FROM leader_lease WHERE name = $1",
            &[&SCHEDULER],
        )
        .await?;
    row.map(|r| {
        Ok(Leader {
            node: r.try_get(0)?,
            holder: r.try_get(1)?,
            epoch: r.try_get(2)?,
            since: r.try_get(3)?,
            renewed_at: r.try_get(4)?,
            expires_at: r.try_get(5)?,
            expired: r.try_get(6)?,
        })
    })
    .transpose()
}

/// Record this process's role (`leader`, `standby`, `stopped`), seen now.
pub async fn report_node(client: &Client, holder: &str, node: &str, role: &str) -> Result<()> {
    client
        .execute(
            "INSERT INTO ha_nodes (holder, node, role, started_at, seen_at)
             VALUES ($1, $2, $3, now(), now())
             ON CONFLICT (holder) DO UPDATE SET role = excluded.role, seen_at = now()",
            &[&holder, &node, &role],
        )
        .await?;
    Ok(())
}

/// The nodes seen within `recent`, newest first (older rows are processes
/// long gone: they are left out, and removed after a day).
pub async fn nodes(client: &Client, recent: Duration) -> Result<Vec<Node>> {
    client
        .execute(
            "DELETE FROM ha_nodes WHERE seen_at < now() - interval '1 day'",
            &[],
        )
        .await?;
    let rows = client
        .query(
            "SELECT node, holder, role, started_at, seen_at FROM ha_nodes
             WHERE seen_at >= now() - make_interval(secs => $1)
             ORDER BY seen_at DESC",
            &[&recent.as_secs_f64()],
        )
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Node {
                node: r.try_get(0)?,
                holder: r.try_get(1)?,
                role: r.try_get(2)?,
                started_at: r.try_get(3)?,
                seen_at: r.try_get(4)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::fresh_pg;
    use crate::state::{Fence, PgOptions, StateError};

    const LONG: Duration = Duration::from_secs(60);

    async fn expire_now(client: &Client) {
        client
            .batch_execute("UPDATE leader_lease SET expires_at = now() - interval '1 second'")
            .await
            .expect("expire the lease");
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_the_epoch_grows_at_every_takeover() {
        let Some((_, pg)) = fresh_pg("lease_epochs").await else {
            return;
        };
        let c = pg.session().await.expect("session");
        let a = acquire_or_renew(&c, "a/1", "a", LONG).await.expect("a");
        assert_eq!(a.map(|h| h.epoch), Some(1), "the first holder");
        let b = acquire_or_renew(&c, "b/1", "b", LONG).await.expect("b");
        assert_eq!(b, None, "a running lease is not taken");
        let renewed = acquire_or_renew(&c, "a/1", "a", LONG).await.expect("renew");
        assert_eq!(renewed, a, "a renewal keeps the epoch and the start");

        expire_now(&c).await;
        let b = acquire_or_renew(&c, "b/1", "b", LONG).await.expect("b");
        assert_eq!(
            b.map(|h| h.epoch),
            Some(2),
            "an expired lease is taken, next epoch"
        );
        let a_again = acquire_or_renew(&c, "a/1", "a", LONG).await.expect("a");
        assert_eq!(a_again, None, "the old holder cannot renew");

        // A holder whose own lease expired gets a new epoch: what it
        // decided under the old one may have been overtaken.
        expire_now(&c).await;
        let b_again = acquire_or_renew(&c, "b/1", "b", LONG).await.expect("b");
        assert_eq!(b_again.map(|h| h.epoch), Some(3));

        let l = leader(&c).await.expect("leader").expect("a row");
        assert_eq!((l.node.as_str(), l.epoch, l.expired), ("b", 3, false));
        release(&c, "a/1").await.expect("not the holder: nothing");
        assert!(!leader(&c).await.expect("leader").expect("row").expired);
        release(&c, "b/1").await.expect("release");
        assert!(leader(&c).await.expect("leader").expect("row").expired);
        let a = acquire_or_renew(&c, "a/1", "a", LONG).await.expect("a");
        assert_eq!(
            a.map(|h| h.epoch),
            Some(4),
            "a released lease is free at once"
        );
    }

    /// A decision fenced with an epoch that has since moved is refused,
    /// and a takeover waits for a fenced write in flight to commit.
    #[tokio::test]
    async fn a_stale_leaders_decision_is_refused() {
        let Some((_, pg)) = fresh_pg("lease_stale_decision").await else {
            return;
        };
        let c = pg.session().await.expect("session");
        let a = acquire_or_renew(&c, "a/1", "a", LONG)
            .await
            .expect("a")
            .expect("free");
        pg.set_fence(Some(Fence {
            holder: "a/1".into(),
            epoch: a.epoch,
        }));
        let t = chrono::Utc::now();
        pg.set_last_slot("db", t).await.expect("the leader decides");
        expire_now(&c).await;
        acquire_or_renew(&c, "b/1", "b", LONG)
            .await
            .expect("b")
            .expect("taken over");
        let refused = pg
            .set_last_slot("db", t + chrono::Duration::seconds(1))
            .await
            .expect_err("the old leader's decision");
        assert!(matches!(refused, StateError::NotLeader { .. }), "{refused}");
        assert_eq!(
            pg.last_slot("db").await.expect("read"),
            Some(super::super::ms(t))
        );
    }

    #[tokio::test]
    async fn nodes_report_their_roles() {
        let Some((_, pg)) = fresh_pg("lease_nodes").await else {
            return;
        };
        let c = pg.session().await.expect("session");
        report_node(&c, "a/1", "a", "leader").await.expect("a");
        report_node(&c, "b/1", "b", "standby").await.expect("b");
        report_node(&c, "a/1", "a", "stopped")
            .await
            .expect("a again");
        let mut seen: Vec<(String, String)> = nodes(&c, LONG)
            .await
            .expect("nodes")
            .into_iter()
            .map(|n| (n.node, n.role))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("a".into(), "stopped".into()),
                ("b".into(), "standby".into())
            ]
        );
    }

    /// A session left inside a transaction (a node paused mid-write) is
    /// ended by the server after `idle_in_transaction`, so its locks
    /// cannot stall the next leader.
    #[tokio::test]
    async fn a_session_idle_in_a_transaction_is_ended_by_the_server() {
        let Some((url, _)) = fresh_pg("lease_idle_in_transaction").await else {
            return;
        };
        let opts = PgOptions {
            idle_in_transaction: Duration::from_millis(300),
            ..PgOptions::default()
        };
        let pg = PgLedger::connect(&url, None, opts).await.expect("connect");
        let c = pg.session().await.expect("session");
        c.batch_execute("BEGIN; SELECT 1 FROM leader_lease FOR UPDATE")
            .await
            .expect("a transaction left open");
        tokio::time::sleep(Duration::from_millis(900)).await;
        let after = c.simple_query("SELECT 1").await;
        assert!(after.is_err(), "the idle transaction's session was ended");
    }
}
