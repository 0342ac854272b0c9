//! Page requests: checking one, and the page that follows a full one.

use crate::error::{Error, Result};
use crate::ids::NoticeId;
use crate::timeline::{Page, TimelinePage};

/// Checks a page request; returns the limit to use (capped at `page_limit_max`).
pub(crate) fn check_page(page: &Page, limit_max: usize) -> Result<usize> {
    if page.limit == 0 {
        return Err(Error::InvalidPage {
            reason: "limit is 0".into(),
        });
    }
    if let (Some(since), Some(max)) = (page.since_id, page.max_id)
        && since >= max
    {
        return Err(Error::InvalidPage {
            reason: format!("since_id {} is not below max_id {}", since.0, max.0),
        });
    }
    Ok(page.limit.min(limit_max))
}

/// A full page points at the next older one; a short page is the last.
pub(super) fn finish(ids: Vec<NoticeId>, page: &Page, limit: usize) -> TimelinePage {
    let next = (ids.len() == limit).then(|| Page {
        since_id: page.since_id,
        max_id: ids.last().copied(),
        limit,
    });
    TimelinePage { ids, next }
}
