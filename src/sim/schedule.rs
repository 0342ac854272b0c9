//! The offered post rate of an open-loop run: cycles of [`POST_CYCLE_S`] seconds, the
//! first [`POST_BURST_SHARE`] of each at the peak rate and the rest at the rate that
//! makes the cycle's average the offered average; Poisson arrivals within each stretch.

use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp1};

use super::open_loop::OpenLoopConfig;

/// Length of one cycle of the post rate, seconds: a burst at the peak rate, then the
/// rest at the rate that makes the cycle's average the offered average.
pub const POST_CYCLE_S: f64 = 10.0;
/// The share of each cycle spent at the peak post rate.
pub const POST_BURST_SHARE: f64 = 0.2;

impl OpenLoopConfig {
    /// The offered post rate at `t` seconds into the measured phase.
    pub fn post_rate_at(&self, t: f64) -> f64 {
        let peak = self.peak_posts_per_s.max(self.posts_per_s);
        // The base rate that keeps the average; bursts shorten when it would be < 0.
        let base = (self.posts_per_s - POST_BURST_SHARE * peak) / (1.0 - POST_BURST_SHARE);
        let (burst, base) = if base >= 0.0 {
            (POST_BURST_SHARE, base)
        } else {
            (self.posts_per_s / peak, 0.0)
        };
        if (t % POST_CYCLE_S) < burst * POST_CYCLE_S {
            peak
        } else {
            base
        }
    }
}

/// The next post arrival after `t` of a driver offering `share` of the posts: Poisson
/// arrivals at the rate of each stretch (memoryless, so a stretch's arrivals start
/// afresh at its beginning).
pub(crate) fn next_post_after(
    c: &OpenLoopConfig,
    mut t: f64,
    share: f64,
    rng: &mut SmallRng,
) -> f64 {
    while t < c.seconds {
        let rate = c.post_rate_at(t) * share;
        let change = next_rate_change(c, t);
        if rate > 0.0 {
            let e: f64 = Exp1.sample(rng);
            let next = t + e / rate;
            if next < change {
                return next;
            }
        }
        t = change;
    }
    f64::INFINITY
}

/// The next time after `t` at which the offered post rate changes.
fn next_rate_change(c: &OpenLoopConfig, t: f64) -> f64 {
    let cycle = (t / POST_CYCLE_S).floor() * POST_CYCLE_S;
    let peak = c.peak_posts_per_s.max(c.posts_per_s);
    let base = (c.posts_per_s - POST_BURST_SHARE * peak) / (1.0 - POST_BURST_SHARE);
    let burst = if base >= 0.0 {
        POST_BURST_SHARE
    } else {
        c.posts_per_s / peak
    } * POST_CYCLE_S;
    if t - cycle < burst {
        cycle + burst
    } else {
        cycle + POST_CYCLE_S
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_post_rate_averages_the_offered_rate_with_peak_bursts() {
        let c = OpenLoopConfig::default();
        let steps = 100_000;
        let mean: f64 = (0..steps)
            .map(|i| c.post_rate_at(i as f64 * POST_CYCLE_S / steps as f64))
            .sum::<f64>()
            / steps as f64;
        assert!((mean - 4_600.0).abs() < 1.0, "{mean}");
        assert_eq!(c.post_rate_at(0.5), 12_000.0);
        assert_eq!(c.post_rate_at(5.0), 2_750.0);
        assert_eq!(next_rate_change(&c, 0.5), 2.0);
        assert_eq!(next_rate_change(&c, 2.0), 10.0);
        let low = OpenLoopConfig {
            posts_per_s: 1_000.0,
            ..c
        };
        let mean: f64 = (0..steps)
            .map(|i| low.post_rate_at(i as f64 * POST_CYCLE_S / steps as f64))
            .sum::<f64>()
            / steps as f64;
        assert!((mean - 1_000.0).abs() < 1.0, "{mean}");
    }
}
