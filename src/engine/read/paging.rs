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

/// Checks a page request of a notice stream: `since_id` must come before `max_id` in
/// the order (by time, then id; see `log/order.rs`), not by id.
pub(crate) fn check_notice_page(
    page: &Page,
    limit_max: usize,
    order: &crate::log::order::OrderKeys,
) -> Result<usize> {
    let limit = check_page(
        &Page {
            since_id: None,
            ..*page
        },
        limit_max,
    )?;
    if let (Some(since), Some(max)) = (page.since_id, page.max_id)
        && order.pos(since.0) >= order.pos(max.0)
    {
        return Err(Error::InvalidPage {
            reason: format!(
                "since_id {} does not come before max_id {} in the order",
                since.0, max.0
            ),
        });
    }
    Ok(limit)
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
