//! Full listings of one snapshot family, shared among concurrent callers
//! and paced under the rate limit.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ids::{Family, Listed};
use super::Lightsail;
use crate::providers::{ErrorKind, ProviderError};

/// A runaway pagination guard: far more pages than any account holds.
pub(super) const MAX_PAGES: usize = 10_000;

/// Lightsail lists every snapshot of a family at once (no per-resource
/// filter), so a slot of N targets would read the whole account N times.
/// Callers share one listing instead, but only one that *started after
/// they asked*: it then reflects every change made before the call, as a
/// listing of their own would. Callers queue on the lock while a listing
/// runs; the first after it starts a new one, the rest of the queue reuse
/// it. A failed listing is not kept.
///
/// A listing costs one call per page, so listings are paced: while other
/// requests wait for the rate limit, a new one starts no sooner than its
/// predecessor's pages take at [`LISTING_SHARE`] of the rate limit (at
/// most [`MAX_LISTING_GAP`]). Callers asking in between wait for it, and
/// all of them share it.
#[derive(Default)]
pub(super) struct SharedListing {
    pub(super) newest: tokio::sync::Mutex<Option<Listing>>,
    /// Pages the newest listing took; 0 before the first.
    pub(super) pages: AtomicUsize,
    /// Single-snapshot status calls made since the newest listing started
    /// (see [`Lightsail::poll`]).
    pub(super) spent: AtomicUsize,
}

pub(super) struct Listing {
    pub(super) started: Instant,
    pub(super) pages: usize,
    pub(super) all: Arc<Vec<Listed>>,
}

/// The share of the rate limit full listings may take.
pub(super) const LISTING_SHARE: f64 = 0.1;
/// The longest a caller waits for the next full listing to be allowed.
pub(super) const MAX_LISTING_GAP: Duration = Duration::from_secs(30);
/// How often a paced listing looks whether the rate limit went idle.
pub(super) const IDLE_CHECK: Duration = Duration::from_millis(50);
/// Due operations that make the first listing worth its unknown cost.
pub(super) const FIRST_LISTING_AT: usize = 64;

impl SharedListing {
    /// Whether `k` more single-snapshot status calls would cost more than
    /// half a listing, counting those made since the last listing: then
    /// the next listing answers for them all. Before the first listing
    /// its cost is unknown: a listing then once `k` is large.
    pub(super) fn prefers_listing(&self, k: usize) -> bool {
        match self.pages.load(Ordering::Relaxed) {
            0 => k >= FIRST_LISTING_AT,
            pages => self.spent.load(Ordering::Relaxed) + k > pages.div_ceil(2),
        }
    }

    pub(super) fn spend(&self, calls: usize) {
        self.spent.fetch_add(calls, Ordering::Relaxed);
    }
}

/// The page tokens of one listing: a listing ends at an absent or empty
/// `nextPageToken`, and a token that comes back twice, or more than
/// [`MAX_PAGES`] pages, makes it incomplete (an error, never a partial
/// answer).
#[derive(Default)]
pub(super) struct Pages(HashSet<String>);

impl Pages {
    /// The token of the next page, `None` after the last page.
    pub(super) fn next(
        &mut self,
        call: &str,
        next: Option<String>,
    ) -> Result<Option<String>, ProviderError> {
        match next.filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) if !self.0.insert(t.clone()) => Err(ProviderError::new(
                ErrorKind::Transient,
                call,
                "listing incomplete: the same nextPageToken came back twice",
            )),
            Some(t) => Ok(Some(t)),
        }
    }

    pub(super) fn too_many(call: &str) -> ProviderError {
        ProviderError::new(
            ErrorKind::Transient,
            call,
            format!("listing incomplete: more than {MAX_PAGES} pages"),
        )
    }
}

/// How long after a listing of `pages` pages the next may start.
pub(super) fn listing_gap(pages: usize, requests_per_second: f64) -> Duration {
    let rate = requests_per_second * LISTING_SHARE;
    if !(rate.is_finite() && rate > 0.0) {
        return MAX_LISTING_GAP;
    }
    Duration::from_secs_f64(pages as f64 / rate).min(MAX_LISTING_GAP)
}

impl Lightsail {
    /// Every snapshot of one family as of a moment after this call began:
    /// shared with concurrent callers and paced (see [`SharedListing`]).
    pub(super) async fn list_fresh(
        &self,
        family: Family,
    ) -> Result<Arc<Vec<Listed>>, ProviderError> {
        let asked = Instant::now();
        let shared = &self.listings[family.index()];
        let mut newest = shared.newest.lock().await;
        if let Some(last) = newest.as_ref() {
            if last.started >= asked {
                return Ok(last.all.clone());
            }
            let allowed = last.started + listing_gap(last.pages, self.api.requests_per_second());
            // Early when nothing waits for the rate limit: the listing
            // then delays no other request.
            while Instant::now() < allowed && !self.api.is_idle() {
                let left = allowed.saturating_duration_since(Instant::now());
                tokio::time::sleep(left.min(IDLE_CHECK)).await;
            }
        }
        let started = Instant::now();
        shared.spent.store(0, Ordering::Relaxed);
        let (all, pages) = self.list_all(family).await?;
        let all = Arc::new(all);
        shared.pages.store(pages, Ordering::Relaxed);
        *newest = Some(Listing {
            started,
            pages,
            all: all.clone(),
        });
        Ok(all)
    }

    /// Every snapshot of one family, all pages, and how many pages.
    pub(super) async fn list_all(
        &self,
        family: Family,
    ) -> Result<(Vec<Listed>, usize), ProviderError> {
        let call = match family {
            Family::Instance => "GetInstanceSnapshots",
            Family::Disk => "GetDiskSnapshots",
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = Pages::default();
        for page in 1..=MAX_PAGES {
            let next = match family {
                Family::Instance => {
                    let page = self
                        .client
                        .call(call, |c| {
                            c.get_instance_snapshots()
                                .set_page_token(token.clone())
                                .send()
                        })
                        .await?;
                    out.extend(page.instance_snapshots().iter().map(Listed::from_instance));
                    page.next_page_token().map(str::to_string)
                }
                Family::Disk => {
                    let page = self
                        .client
                        .call(call, |c| {
                            c.get_disk_snapshots().set_page_token(token.clone()).send()
                        })
                        .await?;
                    out.extend(page.disk_snapshots().iter().map(Listed::from_disk));
                    page.next_page_token().map(str::to_string)
                }
            };
            match pages.next(call, next)? {
                None => return Ok((out, page)),
                Some(t) => token = Some(t),
            }
        }
        Err(Pages::too_many(call))
    }
}
