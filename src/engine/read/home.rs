//! A page of a home timeline: the plan, the candidates, the rules, the repeat
//! fall-off, then the strategy's repair.

use std::collections::VecDeque;

use super::candidates::HomeCandidates;
use super::paging::finish;
use super::repair::ReadRepair;
use super::rules::REPEAT_WINDOW;
use super::streams::Reach;
use crate::engine::facade::Shared;
use crate::ids::NoticeId;
use crate::timeline::{Page, TimelinePage};

impl Shared {
    /// A page of `user`'s home timeline.
    pub(crate) fn home_page(&self, user: u32, page: &Page, limit: usize) -> TimelinePage {
        let plan = self.plan(user);
        let ring_word = self.ensure_ready(user, &plan);
        let mut candidates = HomeCandidates::new(
            self,
            user,
            page.max_id.map(|m| m.0),
            ring_word,
            &plan,
            limit,
        );
        let reach = Reach::default();
        let mut next_visible = || {
            candidates.by_ref().find_map(|id| {
                self.visible_home(user, id, &reach)
                    .map(|repeat_of| (id, repeat_of))
            })
        };
        // Visible entries not emitted yet, newest first: the look-ahead of the
        // fall-off rule.
        let mut ahead: VecDeque<(u64, Option<u64>)> = VecDeque::new();
        let mut ids = Vec::with_capacity(limit);
        while let Some((id, repeat_of)) = ahead.pop_front().or_else(&mut next_visible) {
            if page.since_id.is_some_and(|s| id <= s.0) {
                break;
            }
            if let Some(original) = repeat_of {
                let hidden = if self.strategy.samples() {
                    // The stored timeline is a sample: the fall-off looks at the
                    // complete sequence, so pages stay a subset of pull's.
                    self.falls_off_in_full(user, id, original)
                } else {
                    while ahead.len() < REPEAT_WINDOW {
                        match next_visible() {
                            Some(entry) => ahead.push_back(entry),
                            None => break,
                        }
                    }
                    ahead
                        .iter()
                        .any(|&(i, r)| i == original || r == Some(original))
                };
                if hidden {
                    continue;
                }
            }
            ids.push(NoticeId(id));
            if ids.len() == limit {
                break;
            }
        }
        if page.max_id.is_none() && !candidates.lazy_taken.is_empty() {
            self.keep_lazy(user, &candidates.lazy, &mut candidates.lazy_taken);
        }
        self.add_page_cost(candidates.cost());
        let ctx = self.strategy_ctx();
        let mut repair = ReadRepair {
            shared: self,
            user,
            // What a newest page pulled from whole lists (a page below a bound saw
            // only part of them).
            page: page.max_id.is_none().then_some(&candidates),
        };
        self.strategy
            .on_read(&ctx, user, self.config.clock.now_ms(), &mut repair);
        finish(ids, page, limit)
    }
}
