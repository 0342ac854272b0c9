//! Pages of one list: the notices that mention a user; the walk of one id list that
//! the other streams (`streams.rs`) page with too.

use super::paging::finish;
use crate::engine::facade::Shared;
use crate::engine::late::Late;
use crate::ids::{NoticeId, UserId};
use crate::timeline::{Page, TimelinePage};

impl Shared {
    /// A page of the notices that mention `user`.
    pub(crate) fn mentions_page(&self, user: u32, page: &Page, limit: usize) -> TimelinePage {
        let u = UserId(user);
        self.ordered_list_page(&self.mentions, Late::Mention, user, page, limit, |n| {
            let a = n.author();
            a == u || !(self.graph.is_blocked(u, a) || self.graph.is_muted(u, a))
        })
    }

    pub(super) fn list_page(
        &self,
        lists: &crate::timeline::IdLists,
        user: u32,
        page: &Page,
        limit: usize,
        keep: impl Fn(&crate::NoticeRef<'_>) -> bool,
    ) -> TimelinePage {
        let mut ids = Vec::with_capacity(limit);
        let mut below = page.max_id.map(|m| m.0);
        let mut chunk = Vec::with_capacity(64);
        'outer: loop {
            chunk.clear();
            let reached_oldest = lists.copy_below(user, below, 64, &mut chunk);
            for &id in &chunk {
                below = Some(id);
                if page.since_id.is_some_and(|s| id <= s.0) {
                    break 'outer;
                }
                if self.log.get(NoticeId(id)).is_some_and(|n| keep(&n)) {
                    ids.push(NoticeId(id));
                    if ids.len() == limit {
                        break 'outer;
                    }
                }
            }
            if reached_oldest {
                break;
            }
        }
        finish(ids, page, limit)
    }
}
