//! Mastodon's paging parameters (`max_id`, `since_id`, `min_id`, `limit`) onto
//! feedcore's `Page`, and the `Link` header that points at the next and previous pages.

use feedcore::{NoticeId, Page, TimelinePage};

use crate::api::ApiError;

/// Page size when the client gives none (Mastodon's).
pub const LIMIT_DEFAULT: usize = 20;
/// Largest page (Mastodon's).
pub const LIMIT_MAX: usize = 40;

/// What a timeline request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageQuery {
    /// Only statuses older than this.
    pub max_id: Option<u64>,
    /// Only statuses newer than this; the page is the newest of them.
    pub since_id: Option<u64>,
    /// Only statuses newer than this; the page is the oldest of them (just above it),
    /// still returned newest first. Wins over `since_id`.
    pub min_id: Option<u64>,
    /// Statuses on the page, 1 to [`LIMIT_MAX`].
    pub limit: usize,
}

impl PageQuery {
    /// Parses a query string; unknown parameters are ignored, bad values refused.
    pub fn parse(query: Option<&str>) -> Result<PageQuery, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("the query string does not parse: {e}")))?;
        let mut q = PageQuery {
            max_id: None,
            since_id: None,
            min_id: None,
            limit: LIMIT_DEFAULT,
        };
        for (key, value) in pairs {
            let id = |value: &str| -> Result<Option<u64>, ApiError> {
                if value.is_empty() {
                    return Ok(None);
                }
                match value.parse::<u64>() {
                    Ok(id) if (1..u64::MAX / 2).contains(&id) => Ok(Some(id)),
                    _ => Err(ApiError::bad_request(format!(
                        "{key} must be a status id (a positive integer), not {value:?}"
                    ))),
                }
            };
            match key.as_str() {
                "max_id" => q.max_id = id(&value)?,
                "since_id" => q.since_id = id(&value)?,
                "min_id" => q.min_id = id(&value)?,
                "limit" => {
                    q.limit = match value.parse::<usize>() {
                        Ok(n) if (1..=LIMIT_MAX).contains(&n) => n,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "limit must be 1 to {LIMIT_MAX}, not {value:?}"
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// The lower bound, exclusive: `min_id` when given, else `since_id`.
    fn lower(&self) -> Option<u64> {
        self.min_id.or(self.since_id)
    }
}

/// Serves `query` from a stream that pages newest first (`fetch`, feedcore's paging).
/// Returns the ids, newest first, and whether older ones may follow.
///
/// `min_id` asks for the oldest `limit` ids above it. A stream pages newest first, so
/// this finds, by bisection on the upper bound, the smallest `max_id` whose page below
/// it holds `limit` ids: about log2(the id range) page reads, each of at most `limit`
/// ids (clients use `min_id` to catch up from a recent id, where the range is small).
pub async fn serve<F, Fut>(query: &PageQuery, mut fetch: F) -> Result<(Vec<u64>, bool), ApiError>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = Result<TimelinePage, ApiError>>,
{
    let page = |since: Option<u64>, max: Option<u64>| Page {
        since_id: since.map(NoticeId),
        max_id: max.map(NoticeId),
        limit: query.limit,
    };
    if let (Some(lower), Some(max)) = (query.lower(), query.max_id)
        && lower + 1 >= max
    {
        return Ok((Vec::new(), false)); // nothing lies strictly between
    }
    let top = fetch(page(query.lower(), query.max_id)).await?;
    let ids = |p: &TimelinePage| p.ids.iter().map(|id| id.0).collect::<Vec<u64>>();
    let Some(min_id) = query.min_id else {
        return Ok((ids(&top), top.next.is_some()));
    };
    if top.ids.len() < query.limit {
        return Ok((ids(&top), false)); // every id above min_id fits on the page
    }
    // Smallest `hi` in (min_id + 1, newest + 1] with a full page in (min_id, hi).
    let newest = top.ids[0].0;
    let (mut lo, mut hi) = (min_id + 1, newest + 1);
    let mut best = top;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let probe = if mid <= min_id + 1 {
            TimelinePage::default()
        } else {
            fetch(page(Some(min_id), Some(mid))).await?
        };
        if probe.ids.len() >= query.limit {
            best = probe;
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok((ids(&best), true))
}

/// The `Link` header for a page of `ids` (newest first) served at `path`: `next` for
/// older statuses (`max_id` = the oldest here) when `more`, `prev` for newer ones
/// (`min_id` = the newest here). `None` for an empty page.
pub fn link_header(
    base: &str,
    path: &str,
    query: &PageQuery,
    ids: &[u64],
    more: bool,
) -> Option<String> {
    let (&newest, &oldest) = (ids.first()?, ids.last()?);
    let limit = if query.limit == LIMIT_DEFAULT {
        String::new()
    } else {
        format!("limit={}&", query.limit)
    };
    let prev = format!("<{base}{path}?{limit}min_id={newest}>; rel=\"prev\"");
    Some(if more {
        format!("<{base}{path}?{limit}max_id={oldest}>; rel=\"next\", {prev}")
    } else {
        prev
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of the ids 1..=n with gaps (multiples of 3 missing), newest first.
    async fn stream(n: u64, p: Page) -> Result<TimelinePage, ApiError> {
        let mut ids: Vec<u64> = (1..=n)
            .rev()
            .filter(|i| i % 3 != 0)
            .filter(|&i| p.since_id.is_none_or(|s| i > s.0))
            .filter(|&i| p.max_id.is_none_or(|m| i < m.0))
            .collect();
        let more = ids.len() > p.limit;
        ids.truncate(p.limit);
        Ok(TimelinePage {
            next: more.then(|| Page {
                max_id: ids.last().map(|&i| NoticeId(i)),
                ..p
            }),
            ids: ids.into_iter().map(NoticeId).collect(),
        })
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn min_id_gives_the_page_just_above_it() {
        let q = PageQuery::parse(Some("min_id=10&limit=3")).unwrap();
        let (ids, more) = block_on(serve(&q, |p| stream(100, p))).unwrap();
        assert_eq!(ids, vec![14, 13, 11]);
        assert!(more);
        let q = PageQuery::parse(Some("since_id=10&limit=3")).unwrap();
        let (ids, _) = block_on(serve(&q, |p| stream(100, p))).unwrap();
        assert_eq!(ids, vec![100, 98, 97]);
        let q = PageQuery::parse(Some("min_id=95&limit=5")).unwrap();
        let (ids, more) = block_on(serve(&q, |p| stream(100, p))).unwrap();
        assert_eq!((ids, more), (vec![100, 98, 97], false));
        let q = PageQuery::parse(Some("min_id=10&max_id=12")).unwrap();
        let (ids, _) = block_on(serve(&q, |p| stream(100, p))).unwrap();
        assert_eq!(ids, vec![11]);
    }

    #[test]
    fn bad_parameters_are_refused() {
        for q in [
            "limit=0",
            "limit=10000",
            "limit=x",
            "max_id=abc",
            "since_id=-1",
            "min_id=0",
        ] {
            assert!(PageQuery::parse(Some(q)).is_err(), "{q}");
        }
        let q = PageQuery::parse(Some("max_id=&limit=40&other=1")).unwrap();
        assert_eq!((q.max_id, q.limit), (None, 40));
    }

    #[test]
    fn link_header_points_both_ways() {
        let q = PageQuery::parse(None).unwrap();
        assert_eq!(
            link_header("http://h", "/api/v1/timelines/home", &q, &[9, 5], true).unwrap(),
            "<http://h/api/v1/timelines/home?max_id=5>; rel=\"next\", <http://h/api/v1/timelines/home?min_id=9>; rel=\"prev\""
        );
        assert!(link_header("http://h", "/x", &q, &[], true).is_none());
    }
}
