//! Workloads for benchmarks, the `feedcore` command and tests: synthetic notices,
//! Twitter-like follow graphs, random graph operations. The strategy laboratory grows
//! here.

mod graph_gen;
mod graph_ops;
mod synthetic;

pub use graph_gen::{GraphSummary, TwitterGraph, summarize};
pub use graph_ops::{RelationOp, random_relation_ops};
pub use synthetic::{SYNTHETIC_BODY_BYTES, synthetic_notice};
