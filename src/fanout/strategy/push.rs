//! Push: every notice to every active follower; reads read the stored timeline.

use super::{Ctx, FanoutStrategy};

pub(crate) struct Push;

impl FanoutStrategy for Push {
    fn push_to(&self, _ctx: &Ctx<'_>, _id: u64, _author: u32, _reader: u32) -> bool {
        true
    }
}
