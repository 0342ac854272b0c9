//! A plain Zipf follow graph, beside the Kwak-calibrated [`TwitterGraph`]: every follow
//! picks its followee by popularity rank with probability proportional to
//! `rank^-popularity_exponent`, and out-degrees are exponential around their mean. No
//! reciprocity model, no calibration: the knobs are the parameters.
//!
//! With follows drawn this way, follower counts follow a power law of exponent about
//! `1 + 1 / popularity_exponent` (a Zipf rank law of exponent `s` is a size law of
//! exponent `1 + 1/s`), so `popularity_exponent = 0.78` gives Kwak's 2.28.
//!
//! [`TwitterGraph`]: crate::sim::TwitterGraph

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Exp, Zipf};

use crate::ids::UserId;

/// Parameters of a plain Zipf follow graph.
#[derive(Clone, Debug, PartialEq)]
pub struct ZipfGraph {
    /// Users, ids `0..users`.
    pub users: u32,
    /// Mean follows per user (out-degrees are exponential around it, at least 1).
    pub follows_mean: f64,
    /// `s`: the followee of popularity rank `r` (1 = most followed) is drawn with
    /// probability proportional to `r^-s`. Follower counts then have a power-law
    /// exponent of about `1 + 1/s`.
    pub popularity_exponent: f64,
    /// The most follows per user.
    pub follows_max: u32,
    /// Seed: the same seed gives the same graph.
    pub seed: u64,
}

impl Default for ZipfGraph {
    fn default() -> Self {
        ZipfGraph {
            users: 100_000,
            follows_mean: 35.0,
            popularity_exponent: 0.78,
            follows_max: 2000,
            seed: 1,
        }
    }
}

impl ZipfGraph {
    /// The follower-count exponent this model aims at: `1 + 1 / popularity_exponent`.
    pub fn follower_exponent_expected(&self) -> f64 {
        1.0 + 1.0 / self.popularity_exponent
    }

    /// Generates the follows `(follower, followee)`: sorted, no self-follow, no
    /// duplicate, at most `follows_max` per follower. Deterministic in `seed`.
    ///
    /// Panics when `popularity_exponent` is not a positive finite number or
    /// `follows_mean` is not positive (the command line checks both first).
    pub fn edges(&self) -> Vec<(UserId, UserId)> {
        let n = self.users;
        if n < 2 {
            return Vec::new();
        }
        assert!(
            self.popularity_exponent.is_finite() && self.popularity_exponent > 0.0,
            "popularity_exponent must be a positive number"
        );
        assert!(self.follows_mean > 0.0, "follows_mean must be positive");
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let cap = self.follows_max.clamp(1, n - 1);
        let mut by_rank: Vec<u32> = (0..n).collect();
        by_rank.shuffle(&mut rng);
        let popular =
            Zipf::new(f64::from(n), self.popularity_exponent).expect("n >= 1 and s > 0 checked");
        let out_degree = Exp::new(1.0 / self.follows_mean).expect("a positive rate");
        let mut edges = Vec::with_capacity((f64::from(n) * self.follows_mean * 1.05) as usize);
        let mut chosen: Vec<u32> = Vec::new();
        for u in 0..n {
            let want = (out_degree.sample(&mut rng).round() as u32).clamp(1, cap) as usize;
            chosen.clear();
            let mut attempts = 0;
            while chosen.len() < want && attempts < want * 4 + 16 {
                attempts += 1;
                // Zipf samples are 1..=n as floats.
                let rank = (popular.sample(&mut rng) as u32).clamp(1, n) - 1;
                let v = by_rank[rank as usize];
                if v != u {
                    chosen.push(v);
                }
                if chosen.len() == want {
                    chosen.sort_unstable();
                    chosen.dedup();
                }
            }
            chosen.sort_unstable();
            chosen.dedup();
            edges.extend(chosen.iter().map(|&v| (UserId(u), UserId(v))));
        }
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_sorted_unique_and_deterministic() {
        let g = ZipfGraph {
            users: 2000,
            follows_mean: 10.0,
            ..Default::default()
        };
        let edges = g.edges();
        assert!(edges.windows(2).all(|w| w[0] < w[1]));
        assert!(edges.iter().all(|(a, b)| a != b));
        assert_eq!(edges, g.edges());
    }
}
