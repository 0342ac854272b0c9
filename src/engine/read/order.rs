//! Pages in the order of every stream: by publication time, then by id (see
//! `log/order.rs`). A stream's in-order notices are read as they always were, by id,
//! between the bounds its cursors give among them; its late notices come from their
//! lists (`engine/late.rs`); the two are merged by (time, id).

use std::collections::BinaryHeap;
use std::sync::Arc;

use super::paging::finish;
use super::streams::Reach;
use crate::engine::facade::Shared;
use crate::engine::late::Late;
use crate::ids::{NoticeId, UserId};
use crate::log::order::Pos;
use crate::notice::NoticeRef;
use crate::timeline::{IdLists, Page, TimelinePage};

impl Shared {
    /// The page of in-order notices that `page` covers: a cursor naming a late notice
    /// becomes the id bound that keeps exactly the in-order notices on its side.
    fn in_order_page(&self, page: &Page) -> Page {
        let order = self.log.order();
        let late_bound = |id: NoticeId| order.first_above(order.pos(id.0));
        // Pos(since) < Pos(max) keeps since_id below max_id here.
        Page {
            since_id: page.since_id.map(|s| {
                if order.is_late(s.0) {
                    NoticeId(late_bound(s) - 1)
                } else {
                    s
                }
            }),
            max_id: page.max_id.map(|m| {
                if order.is_late(m.0) {
                    NoticeId(late_bound(m))
                } else {
                    m
                }
            }),
            limit: page.limit,
        }
    }

    /// A page of a stream: `in_order` reads its in-order notices (by id, for the page
    /// it is given), `late` names its lists of late notices, `keep` applies its rules
    /// to a late notice. With no late notice stored anywhere, `in_order` alone.
    pub(super) fn ordered_page(
        &self,
        page: &Page,
        limit: usize,
        in_order: impl FnOnce(&Page) -> TimelinePage,
        late: impl FnOnce() -> Vec<Arc<Vec<Pos>>>,
        mut keep: impl FnMut(u64) -> bool,
    ) -> TimelinePage {
        let order = self.log.order();
        if !order.any_late() {
            return in_order(page);
        }
        let listed = in_order(&self.in_order_page(page));
        let hi = page.max_id.map_or((u64::MAX, u64::MAX), |m| order.pos(m.0));
        let lo = page.since_id.map(|s| order.pos(s.0));
        let lists = late();
        // A k-way merge of the lists, newest first, from just below `hi`.
        let mut ends: Vec<usize> = lists
            .iter()
            .map(|l| l.partition_point(|p| *p < hi))
            .collect();
        let mut heap: BinaryHeap<(Pos, usize)> = BinaryHeap::new();
        for (i, list) in lists.iter().enumerate() {
            if ends[i] > 0 {
                heap.push((list[ends[i] - 1], i));
            }
        }
        let mut late_ids: Vec<Pos> = Vec::new();
        let mut last = None;
        while let Some((pos, i)) = heap.pop() {
            if lo.is_some_and(|l| pos <= l) {
                break;
            }
            ends[i] -= 1;
            if ends[i] > 0 {
                heap.push((lists[i][ends[i] - 1], i));
            }
            if last == Some(pos) {
                continue;
            }
            last = Some(pos);
            if keep(pos.1) {
                late_ids.push(pos);
                if late_ids.len() == limit {
                    break;
                }
            }
        }
        let mut ids = Vec::with_capacity(limit);
        let mut a = listed.ids.iter().map(|id| order.pos(id.0)).peekable();
        let mut b = late_ids.into_iter().peekable();
        while ids.len() < limit {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x > y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => None,
            };
            let Some((_, id)) = next else { break };
            ids.push(NoticeId(id));
        }
        finish(ids, page, limit)
    }

    /// A page of `user`'s home timeline in the order: the stored timeline and its
    /// pulls give the in-order notices; the late notices come from the lists of the
    /// reader's own, the followed authors', the joined groups' and the followed tags'
    /// late notices, under the home rules (the repeat fall-off looks at in-order
    /// notices only: a late repeat is never hidden by it, nor hides one).
    pub(crate) fn ordered_home_page(&self, user: u32, page: &Page, limit: usize) -> TimelinePage {
        let reach = Reach::default();
        self.ordered_page(
            page,
            limit,
            |p| self.home_page(user, p, limit),
            || {
                let r = UserId(user);
                let mut lists: Vec<_> = self.late.get(Late::Author, user).into_iter().collect();
                lists.extend(
                    self.graph
                        .following(r)
                        .filter_map(|a| self.late.get(Late::Author, a.0)),
                );
                lists.extend(
                    self.relations
                        .members
                        .following(r)
                        .filter_map(|g| self.late.get(Late::Group, g.0)),
                );
                lists.extend(
                    self.relations
                        .tags
                        .following(r)
                        .filter_map(|t| self.late.get(Late::Tag, t.0)),
                );
                lists
            },
            |id| self.visible_home(user, id, &reach).is_some(),
        )
    }

    /// A page of the stream of one id list (`lists`' list `slot`) and its list of late
    /// notices (`kind`, `slot`), under the stream's rules `keep`.
    pub(super) fn ordered_list_page(
        &self,
        lists: &IdLists,
        kind: Late,
        slot: u32,
        page: &Page,
        limit: usize,
        keep: impl Fn(&NoticeRef<'_>) -> bool,
    ) -> TimelinePage {
        self.ordered_page(
            page,
            limit,
            |p| self.list_page(lists, slot, p, limit, &keep),
            || self.late.get(kind, slot).into_iter().collect(),
            |id| self.log.get(NoticeId(id)).is_some_and(|n| keep(&n)),
        )
    }
}
