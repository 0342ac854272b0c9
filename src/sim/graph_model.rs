//! The graph models a simulation can run on, behind one enum: the Kwak-calibrated
//! Twitter model and the plain Zipf model.

use super::graph_gen::TwitterGraph;
use super::zipf_graph::ZipfGraph;
use crate::ids::UserId;

/// A follow-graph generator.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphModel {
    /// Calibrated on Kwak et al. (WWW 2010).
    Twitter(TwitterGraph),
    /// Plain Zipf popularity, exponential out-degrees.
    Zipf(ZipfGraph),
}

impl GraphModel {
    /// The model's name on the command line and in reports: `twitter` or `zipf`.
    pub fn name(&self) -> &'static str {
        match self {
            GraphModel::Twitter(_) => "twitter",
            GraphModel::Zipf(_) => "zipf",
        }
    }

    /// Users of the generated graph.
    pub fn users(&self) -> u32 {
        match self {
            GraphModel::Twitter(g) => g.users,
            GraphModel::Zipf(g) => g.users,
        }
    }

    /// Mean follows per user the model aims at.
    pub fn follows_mean(&self) -> f64 {
        match self {
            GraphModel::Twitter(g) => g.follows_mean,
            GraphModel::Zipf(g) => g.follows_mean,
        }
    }

    /// The generated follows `(follower, followee)`, sorted, without duplicates.
    pub fn edges(&self) -> Vec<(UserId, UserId)> {
        match self {
            GraphModel::Twitter(g) => g.edges(),
            GraphModel::Zipf(g) => g.edges(),
        }
    }

    /// The model's parameters as `(name, value)` pairs, for reports.
    pub fn parameters(&self) -> Vec<(&'static str, f64)> {
        match self {
            GraphModel::Twitter(g) => vec![
                ("users", f64::from(g.users)),
                ("follows_mean", g.follows_mean),
                ("follower_exponent", g.follower_exponent),
                ("top_follower_fraction", g.top_follower_fraction),
                ("reciprocal_pairs", g.reciprocal_pairs),
                ("follows_max", f64::from(g.follows_max)),
                ("out_degree_sigma", g.out_degree_sigma),
                ("seed", g.seed as f64),
            ],
            GraphModel::Zipf(g) => vec![
                ("users", f64::from(g.users)),
                ("follows_mean", g.follows_mean),
                ("popularity_exponent", g.popularity_exponent),
                ("follows_max", f64::from(g.follows_max)),
                ("seed", g.seed as f64),
            ],
        }
    }
}
