//! Reading a `limit`/`offset` listing whole or not at all.

use std::collections::HashSet;

use super::wire::Pagination;
use crate::providers::{ErrorKind, ProviderError};

/// Pagination by `limit`/`offset`, read whole or not at all (an error,
/// never a partial answer):
/// - with `pagination.total`, pages until the total; a total that changes,
///   an empty page before it, or fewer distinct ids than it is an error;
/// - without a total, a short page proves nothing (the server's maximum
///   `limit` is not documented), so pages until one brings nothing new;
/// - each page after the first starts one item early, at the last item of
///   the page before: if that item is no longer there the listing shifted
///   between the calls (a delete before the boundary, perhaps evened out by
///   a create so the count still adds up) and an item may have been
///   skipped: an error;
/// - a page that brings no new id (a server that ignores `offset`) and
///   more than [`MAX_PAGES`] pages are errors.
pub(super) struct Pager {
    call: &'static str,
    /// Items read so far: the offset of the first one not read yet.
    next: u64,
    /// The id of the last item read: the next page must start with it.
    boundary: Option<String>,
    total: Option<u64>,
    seen: HashSet<String>,
    pages: usize,
}

/// A listing of more pages than this is refused.
pub(super) const MAX_PAGES: usize = 10_000;

impl Pager {
    pub(super) fn new(call: &'static str) -> Self {
        Pager {
            call,
            next: 0,
            boundary: None,
            total: None,
            seen: HashSet::new(),
            pages: 0,
        }
    }

    /// The listing call this pager reads.
    pub(super) fn call(&self) -> &'static str {
        self.call
    }

    /// The `offset` to ask for next.
    pub(super) fn offset(&self) -> u64 {
        match self.boundary {
            Some(_) => self.next.saturating_sub(1),
            None => self.next,
        }
    }

    /// Take one page (the ids of its items, in order); whether to ask for
    /// the next.
    pub(super) fn absorb<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        pagination: Option<Pagination>,
    ) -> Result<bool, ProviderError> {
        self.pages += 1;
        if self.pages > MAX_PAGES {
            return Err(self.incomplete(format!("more than {MAX_PAGES} pages")));
        }
        if let Some(t) = pagination.and_then(|p| p.total) {
            match self.total {
                Some(old) if old != t => {
                    return Err(
                        self.incomplete(format!("total changed from {old} to {t} between pages"))
                    )
                }
                _ => self.total = Some(t),
            }
        }
        let asked = self.offset();
        let mut ids = ids.into_iter();
        if let Some(expected) = &self.boundary {
            match ids.next() {
                Some(first) if first == expected => {}
                Some(first) => {
                    return Err(self.incomplete(format!(
                        "the listing changed while it was read: offset {asked} was {expected}, \
                         now {first} (an item may have been skipped)"
                    )))
                }
                None if self.total.is_none() => {
                    return Err(self.incomplete(format!(
                        "the listing changed while it was read: offset {asked} ({expected}) \
                         is gone"
                    )))
                }
                None => {}
            }
        }
        let (mut fresh, mut new) = (0u64, 0u64);
        for id in ids {
            fresh += 1;
            if self.seen.insert(id.to_string()) {
                new += 1;
            }
            self.boundary = Some(id.to_string());
        }
        if fresh == 0 {
            return match self.total {
                Some(t) if self.next < t => {
                    Err(self.incomplete(format!("empty page at offset {} of {t}", self.next)))
                }
                _ => Ok(false),
            };
        }
        if new == 0 {
            return Err(self.incomplete(format!(
                "the page at offset {asked} repeats items already read (is offset ignored?)"
            )));
        }
        self.next += fresh;
        Ok(match self.total {
            Some(t) => self.next < t,
            None => true,
        })
    }

    pub(super) fn finish<T>(&self, items: Vec<T>) -> Result<Vec<T>, ProviderError> {
        match self.total {
            Some(t) if (self.seen.len() as u64) < t => Err(self.incomplete(format!(
                "{} distinct items read, total is {t} (items moved between pages)",
                self.seen.len()
            ))),
            _ => Ok(items),
        }
    }

    pub(super) fn incomplete(&self, detail: String) -> ProviderError {
        ProviderError::new(
            ErrorKind::Transient,
            self.call,
            format!("listing incomplete: {detail}"),
        )
    }
}
