//! The follow graph: follow, block and mute relations, in a mapped CSR snapshot plus
//! an overlay of recent changes, made durable by an op log. See `docs/design.md`.

mod config;
mod csr;
mod extras;
mod follow_graph;
mod neighbors;
mod oplog;

pub use config::GraphConfig;
pub use follow_graph::{FollowGraph, GraphCheckReport, GraphStats};
pub use neighbors::{Followers, Neighbors};
