//! Paging: which part of a stream to read, as Mastodon's API asks for it.

use crate::ids::NoticeId;

/// Which part of a stream to read: ids strictly between `since_id` and `max_id`
/// (both exclusive, as in Mastodon's API), newest first, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Only ids greater than this.
    pub since_id: Option<NoticeId>,
    /// Only ids smaller than this.
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
