//! Paging: which part of a stream to read, as Mastodon's API asks for it.

use crate::ids::NoticeId;

/// Which part of a stream to read: the entries strictly between `since_id` and
/// `max_id` (both exclusive, as in Mastodon's API), newest first, at most `limit`.
///
/// Streams are ordered by publication time, then id ([`NoticeRef::published_ms`](crate::NoticeRef::published_ms)):
/// `max_id` keeps the entries placed below that notice, `since_id` those placed above
/// it. For local posts only, that is the id order.
///
/// A full page's `next` is the page of older entries; following it pages the whole
/// stream, past what the engine keeps in memory.
///
/// ```
/// use feedcore::{Config, Engine, NewNotice, Page, UserId};
/// let dir = tempfile::tempdir()?;
/// let engine = Engine::open(dir.path(), Config { users_max: 10, ..Default::default() })?;
/// for i in 0..5 {
///     engine.post(NewNotice { author: UserId(1), body: format!("n{i}"), ..Default::default() })?;
/// }
/// engine.flush()?;
/// let (mut page, mut seen) = (Some(Page::latest(2)), Vec::new());
/// while let Some(p) = page {
///     let got = engine.home_timeline(UserId(1), p)?;
///     seen.extend(got.ids);
///     page = got.next;
/// }
/// assert_eq!(seen.len(), 5);
/// assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Only entries placed above this notice (newer in the order).
    pub since_id: Option<NoticeId>,
    /// Only entries placed below this notice (older in the order).
    pub max_id: Option<NoticeId>,
    /// At most this many ids (1 to `Config::page_limit_max`).
    pub limit: usize,
}

impl Page {
    /// The newest `limit` entries.
    pub fn latest(limit: usize) -> Page {
        Page {
            since_id: None,
            max_id: None,
            limit,
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::latest(20)
    }
}

/// One page of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimelinePage {
    /// The ids, newest first.
    pub ids: Vec<NoticeId>,
    /// The page of older entries after this one, when there may be any.
    pub next: Option<Page>,
}
