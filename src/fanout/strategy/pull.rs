//! Pull: nothing is pushed; a read is a k-way merge of the followed authors' lists.

use super::{Ctx, FanoutStrategy, PairRead};

pub(crate) struct Pull;

impl FanoutStrategy for Pull {
    fn pushes(&self) -> bool {
        false
    }

    fn push_to(&self, _ctx: &Ctx<'_>, _id: u64, _author: u32, _reader: u32) -> bool {
        false
    }

    fn per_author_reads(&self) -> bool {
        true
    }

    fn pair(&self, _ctx: &Ctx<'_>, _author: u32, _reader: u32) -> PairRead {
        PairRead::Pull
    }
}
