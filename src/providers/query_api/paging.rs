//! Listings paged by offset against a total count, as both query-style
//! dialects page (`offset`/`limit`/`total_count` on QingCloud,
//! `Offset`/`Limit`/`TotalCount` on UCloudStack).
//!
//! A listing is read whole or not at all: a total that changes between
//! pages, an empty page before the total is reached, fewer distinct items
//! than the total, or a listing that shifted between pages is an incomplete
//! listing, a retryable error and never a partial answer (a snapshot missing
//! from a listing would look deleted).
//!
//! Shifts: each page after the first starts one item early, at the last
//! item of the page before. If that item is no longer there, items moved
//! between the two calls (a delete before the boundary, perhaps evened out
//! by a create, so the total and the count still add up), and an item may
//! have been skipped. The overlap costs one item per page, not a call:
//! listings of up to 9,901 items at 100 a page take at most one call more.

use std::collections::HashSet;
use std::future::Future;

use super::{incomplete, Dialect};
use crate::providers::{unexpected, ProviderError};

/// A listing of more pages than this is refused (a total that never comes).
const MAX_PAGES: usize = 10_000;

/// One listing call and how its dialect spells the paging fields (used in
/// the messages only).
pub(crate) struct Paging {
    pub call: &'static str,
    /// `total_count` or `TotalCount`.
    pub total_field: &'static str,
    /// `offset` or `Offset`.
    pub offset_field: &'static str,
    /// What is listed, plural (`snapshots`, `disks`), for the messages.
    pub noun: &'static str,
    /// Whether more distinct items than the total is also an error (and
    /// the count mismatch is reported without naming a cause).
    pub exact: bool,
}

impl Paging {
    /// A listing by `call` in dialect `D`'s spelling, accepting more
    /// distinct items than the total.
    pub(crate) fn of<D: Dialect>(call: &'static str, noun: &'static str) -> Paging {
        Paging {
            call,
            total_field: D::TOTAL_FIELD,
            offset_field: D::OFFSET_FIELD,
            noun,
            exact: false,
        }
    }
}

/// One page as the dialect read it: the total it claims, and its items,
/// or why they cannot be read (reported only if the page is needed).
pub(crate) struct Page<T> {
    pub total: Option<u64>,
    pub items: Result<Vec<T>, ProviderError>,
}

/// Fetch pages from offset 0 until the total is reached, giving `take`
/// each item whose id (`id_of`) was not seen before, in the order read.
/// `fetch` sends one call for the given offset; every page after the first
/// is asked one item early (see the module notes).
pub(crate) async fn read_all<T, Fut>(
    paging: &Paging,
    mut fetch: impl FnMut(u64) -> Fut,
    id_of: impl Fn(&T) -> Result<String, ProviderError>,
    mut take: impl FnMut(String, T),
) -> Result<(), ProviderError>
where
    Fut: Future<Output = Result<Page<T>, ProviderError>>,
{
    let Paging {
        call,
        total_field,
        offset_field,
        noun,
        ..
    } = *paging;
    let mut seen = HashSet::new();
    // Items read so far (the offset of the first one not read yet), and
    // the id of the last of them: the next page must start with it.
    let mut next: u64 = 0;
    let mut boundary: Option<String> = None;
    let mut total: Option<u64> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(incomplete(
                call,
                format!("more than {MAX_PAGES} pages of {noun}"),
            ));
        }
        let asked = if boundary.is_some() { next - 1 } else { next };
        let page = fetch(asked).await?;
        let Some(page_total) = page.total else {
            return Err(unexpected(call, format!("no {total_field} in a listing")));
        };
        same_total(paging, &mut total, page_total)?;
        if next >= page_total {
            break;
        }
        let mut items = page.items?.into_iter();
        if let Some(expected) = &boundary {
            if let Some(first) = items.next() {
                still_there(paging, asked, expected, &id_of(&first)?)?;
            }
        }
        let mut fresh: u64 = 0;
        for item in items {
            let id = id_of(&item)?;
            fresh += 1;
            boundary = Some(id.clone());
            if seen.insert(id.clone()) {
                take(id, item);
            }
        }
        if fresh == 0 {
            return Err(incomplete(
                call,
                format!("empty page at {offset_field} {next} of {page_total}"),
            ));
        }
        next += fresh;
        if next >= page_total {
            break;
        }
    }
    all_read(paging, seen.len() as u64, total.unwrap_or(0))
}

/// Every page must claim the total the first one claimed.
fn same_total(
    paging: &Paging,
    known: &mut Option<u64>,
    page_total: u64,
) -> Result<(), ProviderError> {
    match *known {
        None => *known = Some(page_total),
        Some(t) if t != page_total => {
            return Err(incomplete(
                paging.call,
                format!(
                    "{} changed from {t} to {page_total} between pages",
                    paging.total_field
                ),
            ));
        }
        Some(_) => {}
    }
    Ok(())
}

/// A page asked one item early must start with the last item read.
fn still_there(paging: &Paging, asked: u64, expected: &str, id: &str) -> Result<(), ProviderError> {
    if id == expected {
        return Ok(());
    }
    Err(incomplete(
        paging.call,
        format!(
            "the listing changed while it was read: {} {asked} \
             was {expected}, now {id} (an item may have been skipped)",
            paging.offset_field
        ),
    ))
}

/// The distinct items read against the total: fewer is an error, and so
/// is any difference where the dialect's total is exact.
fn all_read(paging: &Paging, read: u64, total: u64) -> Result<(), ProviderError> {
    let Paging {
        call,
        total_field,
        noun,
        exact,
        ..
    } = *paging;
    if exact && read != total {
        return Err(incomplete(
            call,
            format!("{read} distinct {noun} read, {total_field} is {total}"),
        ));
    }
    if read < total {
        return Err(incomplete(
            call,
            format!(
                "{read} distinct {noun} read, {total_field} is {total} (items moved between pages)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorKind;

    const PAGING: Paging = Paging {
        call: "DescribeThings",
        total_field: "total_count",
        offset_field: "offset",
        noun: "things",
        exact: false,
    };

    /// Reads `pages` (total, ids) in turn; returns the ids taken, the
    /// offsets asked, or the error's message.
    fn run(
        paging: &Paging,
        pages: Vec<(Option<u64>, Vec<&str>)>,
    ) -> (Result<Vec<String>, String>, Vec<u64>) {
        let mut asked = Vec::new();
        let mut pages = pages.into_iter();
        let mut taken = Vec::new();
        let got = futures::executor::block_on(read_all(
            paging,
            |offset| {
                asked.push(offset);
                let next = pages.next();
                async move {
                    let (total, ids) = next.unwrap_or((Some(0), Vec::new()));
                    Ok(Page {
                        total,
                        items: Ok(ids.into_iter().map(str::to_string).collect()),
                    })
                }
            },
            |id: &String| Ok(id.clone()),
            |id, _| taken.push(id),
        ));
        (got.map(|()| taken).map_err(|e| e.message), asked)
    }

    #[test]
    fn pages_until_the_total_and_drops_repeats() {
        let (got, asked) = run(
            &PAGING,
            vec![(Some(3), vec!["a", "b"]), (Some(3), vec!["b", "c"])],
        );
        assert_eq!(got, Ok(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(asked, vec![0, 1]);
        let (got, asked) = run(&PAGING, vec![(Some(0), vec![])]);
        assert_eq!(got, Ok(vec![]));
        assert_eq!(asked, vec![0]);
    }

    #[test]
    fn an_incomplete_listing_is_an_error() {
        let msg = |pages| run(&PAGING, pages).0.err().unwrap_or_default();
        assert_eq!(
            msg(vec![(None, vec!["a"])]),
            "unexpected response from DescribeThings: no total_count in a listing"
        );
        assert_eq!(
            msg(vec![(Some(2), vec!["a"]), (Some(3), vec!["b"])]),
            "listing incomplete: total_count changed from 2 to 3 between pages"
        );
        assert_eq!(
            msg(vec![(Some(2), vec!["a"]), (Some(2), vec![])]),
            "listing incomplete: empty page at offset 1 of 2"
        );
        assert_eq!(
            msg(vec![(Some(2), vec!["a", "a"])]),
            "listing incomplete: 1 distinct things read, total_count is 2 (items moved between pages)"
        );
    }

    #[test]
    fn a_listing_that_shifted_between_pages_is_an_error() {
        let msg = |pages| run(&PAGING, pages).0.err().unwrap_or_default();
        // b was deleted before page 2 and e created: the count adds up,
        // but c (now at offset 1) would be skipped.
        assert_eq!(
            msg(vec![
                (Some(4), vec!["a", "b", "c"]),
                (Some(4), vec!["d", "e"])
            ]),
            "listing incomplete: the listing changed while it was read: offset 2 \
             was c, now d (an item may have been skipped)"
        );
        // A page with only the item it was asked to start with.
        assert_eq!(
            msg(vec![(Some(3), vec!["a", "b"]), (Some(3), vec!["b"])]),
            "listing incomplete: empty page at offset 2 of 3"
        );
        let (got, asked) = run(
            &PAGING,
            vec![
                (Some(5), vec!["a", "b"]),
                (Some(5), vec!["b", "c", "d"]),
                (Some(5), vec!["d", "e"]),
            ],
        );
        assert_eq!(got.map(|v| v.len()), Ok(5));
        assert_eq!(asked, vec![0, 1, 3]);
    }

    /// Reads with PAGING the pages `page(offset)` gives, each item its own
    /// id; the result and the number of calls made.
    fn read_counting(page: impl Fn(u64) -> Page<String>) -> (Result<(), ProviderError>, usize) {
        let mut calls = 0;
        let got = futures::executor::block_on(read_all(
            &PAGING,
            |offset| {
                calls += 1;
                let answer = page(offset);
                async move { Ok(answer) }
            },
            |id: &String| Ok(id.clone()),
            |_, _| {},
        ));
        (got, calls)
    }

    #[test]
    fn a_total_that_is_never_reached_ends_after_the_page_limit() {
        let (got, calls) = read_counting(|offset| Page {
            total: Some(u64::MAX),
            items: Ok(vec![offset.to_string(), (offset + 1).to_string()]),
        });
        assert_eq!(
            got.map_err(|e| e.message),
            Err(format!(
                "listing incomplete: more than {MAX_PAGES} pages of things"
            ))
        );
        assert_eq!(calls, MAX_PAGES);
    }

    #[test]
    fn exact_refuses_more_items_than_the_total() {
        let exact = Paging {
            exact: true,
            ..PAGING
        };
        assert_eq!(
            run(&PAGING, vec![(Some(1), vec!["a", "b"])])
                .0
                .map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            run(&exact, vec![(Some(1), vec!["a", "b"])]).0,
            Err("listing incomplete: 2 distinct things read, total_count is 1".to_string())
        );
    }

    #[test]
    fn unreadable_items_and_ids_fail_the_listing() {
        let (got, calls) = read_counting(|_| Page {
            total: Some(1),
            items: Err(unexpected("DescribeThings", "no thing_set in a listing")),
        });
        assert_eq!(got.map_err(|e| e.kind), Err(ErrorKind::Transient));
        assert_eq!(calls, 1);
        let got = futures::executor::block_on(read_all(
            &PAGING,
            |_| async {
                Ok(Page {
                    total: Some(1),
                    items: Ok(vec![String::new()]),
                })
            },
            |_: &String| Err(unexpected("DescribeThings", "an item without an id")),
            |_, _| {},
        ));
        assert!(got.is_err());
    }
}
