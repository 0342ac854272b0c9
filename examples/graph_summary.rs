//! Prints the statistics of a generated Twitter-like graph: `cargo run --release --example graph_summary -- USERS`.
fn main() {
    let users: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let params = feedcore::sim::TwitterGraph {
        users,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let edges = params.edges();
    let gen_time = t.elapsed();
    println!("generated {} follows in {:?}", edges.len(), gen_time);
    println!("{:#?}", feedcore::sim::summarize(users, &edges));
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let g = feedcore::FollowGraph::bulk_load(
        dir.path(),
        feedcore::GraphConfig {
            users_max: users,
            ..Default::default()
        },
        edges,
    )
    .unwrap();
    println!("bulk load in {:?}: {:?}", t.elapsed(), g.stats());
}
