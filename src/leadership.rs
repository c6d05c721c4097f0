//! Leadership of a shared (PostgreSQL) ledger: a node waits as a standby
//! until it holds the lease, then leads, renewing the lease on its own
//! connection. A leader that cannot renew in time stops acting at once
//! (its [`Mandate`] lapses, so no create or delete is sent) and the daemon
//! exits for systemd to restart it as a standby: fail-stop, never two
//! nodes acting at once on purpose.
//!
//! Lease times are on the database's clock; the leader's own deadline is
//! on its monotonic clock, counted from when a renewal was *sent*, so a
//! slow answer or a paused process only ever shortens it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::Client;
use tracing::{error, info, warn};

use crate::config::SharedState;
use crate::engine::Mandate;
use crate::observe::alerts::Alerter;
use crate::observe::server::Health;
use crate::observe::{metrics, notify};
use crate::state::postgres::{lease, Fence, PgLedger};
use crate::state::StateError;

/// How often a standby asks for the lease, at most (a clean stop frees it
/// at once, so the standby's wait is this at worst).
const STANDBY_RETRY: Duration = Duration::from_secs(1);

/// This process as a candidate for the lease.
pub(crate) struct Candidate {
    ledger: PgLedger,
    /// The lease's own connection: renewals never queue behind ledger
    /// work.
    client: Client,
    /// `node/pid-start`: unique per process, so a restarted node is a new
    /// holder (and takes the next epoch).
    holder: String,
    settings: SharedState,
}

/// Leadership as the daemon holds it.
pub(crate) struct Leadership {
    pub(crate) mandate: Arc<Mandate>,
    pub(crate) epoch: i64,
    /// Set to why, once leadership is lost.
    pub(crate) lost: watch::Receiver<Option<String>>,
    renewer: tokio::task::JoinHandle<()>,
    ledger: PgLedger,
    client: Arc<Client>,
    holder: String,
    node: String,
}

impl Candidate {
    pub(crate) async fn new(
        ledger: PgLedger,
        settings: &SharedState,
    ) -> Result<Candidate, StateError> {
        let client = ledger.session().await?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let holder = format!("{}/{}-{started}", settings.node_name, std::process::id());
        Ok(Candidate {
            ledger,
            client,
            holder,
            settings: settings.clone(),
        })
    }

    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    /// Wait as a standby until this process holds the lease (or `stop`
    /// turns true: `None`). The health endpoint and the watchdog keep
    /// answering meanwhile; a ledger that cannot be reached is alerted
    /// and tried again.
    pub(crate) async fn wait_for_lease(
        mut self,
        alerter: &Alerter,
        health: &Health,
        stop: watch::Receiver<bool>,
    ) -> Option<Leadership> {
        let node = self.settings.node_name.clone();
        let retry = STANDBY_RETRY.min(self.settings.renew_every);
        let mut told_ready = false;
        let mut last_leader: Option<(String, i64)> = None;
        let mut reported: Option<Instant> = None;
        loop {
            health.tick();
            let sent = Instant::now();
            match lease::acquire_or_renew(
                &self.client,
                &self.holder,
                &node,
                self.settings.lease_duration,
            )
            .await
            {
                Ok(Some(held)) => {
                    let previous = last_leader.map(|(n, e)| format!("{n} (epoch {e})"));
                    return Some(self.lead(held, sent, previous, Some(alerter)).await);
                }
                // Who leads, and this node's heartbeat, once per renewal
                // period: the lease itself is asked for every second.
                Ok(None) if reported.is_some_and(|at| at.elapsed() < self.settings.renew_every) => {
                }
                Ok(None) => {
                    reported = Some(Instant::now());
                    let _ = lease::report_node(&self.client, &self.holder, &node, "standby").await;
                    if let Ok(Some(l)) = lease::leader(&self.client).await {
                        if last_leader.as_ref() != Some(&(l.node.clone(), l.epoch)) {
                            info!(leader = %l.node, epoch = l.epoch, "standby: {} leads (epoch {})", l.node, l.epoch);
                            last_leader = Some((l.node.clone(), l.epoch));
                        }
                        let line = format!("standby; {} leads (epoch {})", l.node, l.epoch);
                        if told_ready {
                            notify::status(&line);
                        } else {
                            notify::ready(&line);
                            told_ready = true;
                        }
                    }
                    metrics::leading(None);
                    health.set_database(Ok(()));
                }
                Err(e) => {
                    // Once it answers again, say so at once.
                    reported = None;
                    warn!(error = %e, "standby: cannot reach the ledger; trying again");
                    alerter.ledger_unreachable(
                        &node,
                        &format!("node {node} cannot reach the shared ledger: {e}"),
                    );
                    health.set_database(Err(e.to_string()));
                    if self.client.is_closed() {
                        // The ledger restarted or the network dropped: a
                        // new session, or the same complaint next round.
                        match self.ledger.session().await {
                            Ok(c) => self.client = c,
                            Err(e) => warn!(error = %e, "standby: cannot reconnect to the ledger"),
                        }
                    }
                }
            }
            if notify::watchdog_interval().is_some() && health.check().is_ok() {
                notify::watchdog();
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = crate::shutdown::stopped(stop.clone()) => {
                    let _ = lease::report_node(&self.client, &self.holder, &node, "stopped").await;
                    return None;
                }
            }
        }
    }

    /// For a one-shot command that writes a shared ledger: the lease if no
    /// node holds it now (the command then acts as the leader until it
    /// steps down), else who holds it.
    pub(crate) async fn lead_once(self) -> Result<Leadership, Option<lease::Leader>> {
        let sent = Instant::now();
        let node = self.settings.node_name.clone();
        match lease::acquire_or_renew(
            &self.client,
            &self.holder,
            &node,
            self.settings.lease_duration,
        )
        .await
        {
            Ok(Some(held)) => Ok(self.lead(held, sent, None, None).await),
            Ok(None) => Err(lease::leader(&self.client).await.ok().flatten()),
            Err(e) => {
                warn!(error = %e, "cannot take the lease");
                Err(None)
            }
        }
    }

    /// Take the lead with `held`: fence the ledger's decisions with its
    /// epoch, start renewing, tell the operator.
    async fn lead(
        self,
        held: lease::Held,
        sent: Instant,
        previous: Option<String>,
        alerter: Option<&Alerter>,
    ) -> Leadership {
        let node = self.settings.node_name.clone();
        self.ledger.set_fence(Some(Fence {
            holder: self.holder.clone(),
            epoch: held.epoch,
        }));
        let mandate = Mandate::until(act_deadline(sent, &self.settings));
        let (lost_tx, lost) = watch::channel(None);
        let client = Arc::new(self.client);
        let renewer = tokio::spawn(renew(
            self.ledger.clone(),
            client.clone(),
            self.holder.clone(),
            self.settings.clone(),
            held.epoch,
            mandate.clone(),
            lost_tx,
        ));
        let _ = lease::report_node(&client, &self.holder, &node, "leader").await;
        metrics::leading(Some(held.epoch));
        metrics::became_leader();
        let message = match &previous {
            Some(p) => format!(
                "node {node} took over as the leader (epoch {}) from {p}",
                held.epoch
            ),
            None => format!("node {node} leads (epoch {})", held.epoch),
        };
        info!(node = %node, epoch = held.epoch, since = %held.since, "{message}");
        if let Some(alerter) = alerter.filter(|_| previous.is_some() || held.epoch > 1) {
            alerter.leadership(&node, &message);
        }
        Leadership {
            mandate,
            epoch: held.epoch,
            lost,
            renewer,
            ledger: self.ledger,
            client,
            holder: self.holder,
            node,
        }
    }
}

/// Until when a leader may act after a renewal sent at `sent`: the lease
/// less one renewal period, so that it stops a good margin before the
/// lease could expire on the database's clock.
fn act_deadline(sent: Instant, settings: &SharedState) -> Instant {
    sent + settings.lease_duration.saturating_sub(settings.renew_every)
}

/// Renew every `renew_every`; on the first renewal that shows the lease is
/// gone (another holder, or a new epoch after it expired) or once the act
/// deadline passes without a renewal, revoke the mandate and say why. A
/// renewal that fails (the ledger restarting, a dropped connection) is
/// tried again soon, on a new session if the old one broke, for as long as
/// the deadline allows: a short outage of the database costs no failover.
async fn renew(
    ledger: PgLedger,
    mut client: Arc<Client>,
    holder: String,
    settings: SharedState,
    epoch: i64,
    mandate: Arc<Mandate>,
    lost: watch::Sender<Option<String>>,
) {
    let mut deadline = act_deadline(Instant::now(), &settings);
    let retry = (settings.renew_every / 4).max(Duration::from_millis(100));
    let mut wait = settings.renew_every;
    loop {
        tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
        let sent = Instant::now();
        if sent >= deadline {
            return give_up(
                &mandate,
                &lost,
                "the lease could not be renewed in time (the ledger is unreachable or too slow)"
                    .into(),
            );
        }
        if client.is_closed() {
            match tokio::time::timeout(deadline - sent, ledger.session()).await {
                Ok(Ok(c)) => client = Arc::new(c),
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot reconnect to the ledger to renew the lease; trying again");
                    wait = retry;
                    continue;
                }
                Err(_) => continue,
            }
        }
        let answer = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            lease::acquire_or_renew(
                &client,
                &holder,
                &settings.node_name,
                settings.lease_duration,
            ),
        )
        .await;
        match answer {
            Ok(Ok(Some(held))) if held.epoch == epoch => {
                deadline = act_deadline(sent, &settings);
                mandate.extend(deadline);
                wait = settings.renew_every;
            }
            Ok(Ok(Some(held))) => {
                return give_up(
                    &mandate,
                    &lost,
                    format!(
                        "the lease expired before it was renewed (epoch {epoch}, now {}): another \
                         node may have led meanwhile",
                        held.epoch
                    ),
                );
            }
            Ok(Ok(None)) => {
                return give_up(&mandate, &lost, "another node holds the lease".into());
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot renew the lease; trying again");
                wait = retry;
            }
            // The deadline passed while waiting: the next round says so.
            Err(_) => wait = Duration::ZERO,
        }
    }
}

fn give_up(mandate: &Mandate, lost: &watch::Sender<Option<String>>, why: String) {
    mandate.revoke();
    metrics::leading(None);
    error!(reason = %why, "leadership lost: no more calls to the clouds; exiting for a restart as a standby");
    let _ = lost.send(Some(why));
}

impl Leadership {
    /// Wait until leadership is lost; the reason.
    pub(crate) async fn lost(&mut self) -> String {
        loop {
            if let Some(why) = self.lost.borrow().clone() {
                return why;
            }
            if self.lost.changed().await.is_err() {
                return "the lease renewal stopped".into();
            }
        }
    }

    /// A clean stop: hand the lease over at once instead of letting it
    /// expire, so a standby leads within a second.
    pub(crate) async fn step_down(self) {
        self.renewer.abort();
        self.mandate.revoke();
        let fresh;
        let client = if self.client.is_closed() {
            match self.ledger.session().await {
                Ok(c) => {
                    fresh = c;
                    &fresh
                }
                Err(e) => {
                    warn!(error = %e, "cannot release the lease; it expires by itself");
                    return;
                }
            }
        } else {
            &*self.client
        };
        match lease::release(client, &self.holder).await {
            Ok(()) => info!(node = %self.node, epoch = self.epoch, "lease released"),
            Err(e) => warn!(error = %e, "cannot release the lease; it expires by itself"),
        }
        let _ = lease::report_node(client, &self.holder, &self.node, "stopped").await;
        metrics::leading(None);
    }
}
