//! Hybrid: push unless the author has at least `followers_min` followers (Twitter's
//! celebrity rule); reads merge the stored timeline with the followed big authors.
//!
//! An author's class word says big (1) or not (0); it changes when a follow or unfollow
//! crosses the threshold, through `Signals::set_class`: readers rebuild their ring once
//! before trusting it for an author who became small.

use super::{Ctx, FanoutStrategy, PairRead, push_pair};
use crate::ids::UserId;

pub(crate) struct Hybrid {
    pub(crate) followers_min: u32,
}

const BIG: u16 = 1;

impl FanoutStrategy for Hybrid {
    fn push_to(&self, ctx: &Ctx<'_>, _id: u64, author: u32, reader: u32) -> bool {
        author == reader || ctx.signals.user(author).class != BIG
    }

    fn per_author_reads(&self) -> bool {
        true
    }

    fn pair(&self, ctx: &Ctx<'_>, author: u32, reader: u32) -> PairRead {
        if author == reader {
            return PairRead::Push { since: 0 };
        }
        let class = ctx.signals.user(author);
        if class.class == BIG {
            PairRead::Pull
        } else {
            push_pair(&[class])
        }
    }

    fn on_open(&self, ctx: &Ctx<'_>, users: u32) {
        for author in 0..users {
            self.on_followers_changed(ctx, author);
        }
    }

    fn on_followers_changed(&self, ctx: &Ctx<'_>, author: u32) {
        let big = ctx.graph.follower_count(UserId(author)) >= u64::from(self.followers_min);
        // Becoming big only pulls more.
        let seen = ctx.signals.user(author);
        if ctx
            .signals
            .set_class(Some(author), seen, u16::from(big), !big)
            .is_some()
        {
            // Every follower's pair with the author changed decision.
            ctx.invalidate_followers(author, |_| true);
        }
    }
}
