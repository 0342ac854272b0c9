//! The follow graph: follow, block and mute relations, in a mapped CSR snapshot plus
//! an overlay of recent changes, made durable by an op log. See `docs/design.md`.

mod check;
mod chunked;
mod compaction;
mod config;
mod csr;
mod extras;
mod follow_graph;
mod neighbors;
mod oplog;
mod queries;
pub(crate) mod registry;
pub(crate) mod relations;
pub(crate) mod remote;
mod snapshot_files;
mod version;

pub use check::GraphCheckReport;
pub use config::GraphConfig;
pub use follow_graph::FollowGraph;
pub use neighbors::{Followers, Neighbors};
pub use queries::GraphStats;
pub use registry::NAME_BYTES_MAX;
pub use relations::RelationsCheck;
