//! Guards the graph generators' statistics on small graphs: the Zipf model's mean
//! degree, its top account's share against the analytic expectation, its fitted
//! follower exponent against `1 + 1/s`, and its cap; same seed, same graph.
//! (The Twitter model's own test lives beside it in `src/sim/graph_gen.rs`.)

use feedcore::sim::{GraphModel, ZipfGraph, summarize};

#[test]
fn zipf_graph_statistics_are_within_tolerance() {
    let g = ZipfGraph {
        users: 20_000,
        follows_mean: 20.0,
        popularity_exponent: 0.78,
        follows_max: 500,
        seed: 7,
    };
    let edges = g.edges();
    let s = summarize(g.users, &edges);
    // Mean: exponential out-degrees rounded and clamped to at least 1, minus the
    // duplicates that a user's own draws collapse: within 15%.
    assert!((s.follows_mean - 20.0).abs() < 3.0, "{s:?}");
    assert!(s.follows_max <= 500, "{s:?}");
    // The top account: each follow picks it with probability 1 / H(n, s); a user
    // follows it at most once, so its followers are at most the expectation.
    let h: f64 = (1..=g.users).map(|r| f64::from(r).powf(-0.78)).sum();
    let expected = (s.follows as f64 / h).min(f64::from(g.users));
    let top = f64::from(s.followers_max);
    assert!(
        top <= expected * 1.1 && top >= expected * 0.6,
        "top {top} vs expected {expected}"
    );
    // Fitted exponent (MLE over counts >= 10) within 0.3 of 1 + 1/s = 2.28.
    assert!(
        (s.follower_exponent - g.follower_exponent_expected()).abs() < 0.3,
        "{s:?}"
    );
    // No reciprocity model: follow-backs are chance.
    assert!(s.reciprocal_pairs < 0.02, "{s:?}");
    assert!(edges.iter().all(|(a, b)| a != b));
    assert!(
        edges.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates"
    );
    assert_eq!(edges, g.edges(), "same seed, same graph");
    assert_ne!(
        edges,
        ZipfGraph {
            seed: 8,
            ..g.clone()
        }
        .edges()
    );
}

#[test]
fn the_model_enum_names_and_generates() {
    let m = GraphModel::Zipf(ZipfGraph {
        users: 500,
        follows_mean: 5.0,
        ..Default::default()
    });
    assert_eq!(m.name(), "zipf");
    assert_eq!(m.users(), 500);
    assert!(!m.edges().is_empty());
    assert!(
        m.parameters()
            .iter()
            .any(|(k, _)| *k == "popularity_exponent")
    );
}
