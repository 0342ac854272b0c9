//! Lossy: push, but a reader following F authors keeps each delivery with probability
//! min(1, K / F) (Bluesky, 2025). The draw is a hash of (notice, reader), so runs are
//! reproducible and a rebuild keeps exactly what the pushes kept. Reads read the stored
//! timeline only (and pull below its floor): every page is a subset of pull's.

use super::{Ctx, FanoutStrategy};
use crate::ids::UserId;

pub(crate) struct Lossy {
    pub(crate) follows_reasonable: u32,
}

/// splitmix64 of the pair: a well-spread 64-bit draw.
fn draw(id: u64, reader: u32) -> u64 {
    let mut x = id ^ (u64::from(reader) << 40) ^ u64::from(reader);
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Lossy {
    /// Whether `reader` keeps notice `id`: own notices always; others with
    /// probability min(1, K / F).
    pub(crate) fn keeps(&self, ctx: &Ctx<'_>, id: u64, author: u32, reader: u32) -> bool {
        if author == reader {
            return true;
        }
        let follows = ctx.graph.following_count(UserId(reader));
        if follows <= u64::from(self.follows_reasonable) {
            return true;
        }
        let p = f64::from(self.follows_reasonable) / follows as f64;
        (draw(id, reader) as f64) < p * u64::MAX as f64
    }
}

impl FanoutStrategy for Lossy {
    fn push_to(&self, ctx: &Ctx<'_>, id: u64, author: u32, reader: u32) -> bool {
        self.keeps(ctx, id, author, reader)
    }

    fn samples(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::draw;

    #[test]
    fn draws_are_spread_and_fixed() {
        assert_eq!(draw(7, 3), draw(7, 3));
        let below_half = (0..10_000u64)
            .filter(|&i| draw(i, 5) < u64::MAX / 2)
            .count();
        assert!((4_700..5_300).contains(&below_half), "{below_half}");
    }
}
