//! Workloads for benchmarks, the `feedcore` command and tests: synthetic notices,
//! follow graphs (Twitter-calibrated and plain Zipf), random graph operations, seeded
//! post/read workloads, and the strategy laboratory's engine harness.

mod graph_cache;
mod graph_gen;
mod graph_model;
mod graph_ops;
mod lab;
mod memory;
mod open_loop;
mod remote;
mod schedule;
mod synthetic;
mod workload;
mod zipf_graph;

pub use graph_cache::{CachedGraph, cache_path, load_or_generate};
pub use graph_gen::{GraphSummary, TwitterGraph, summarize};
pub use graph_model::GraphModel;
pub use graph_ops::{RelationOp, random_relation_ops};
pub use lab::{
    CapacityRun, EngineRun, GROUP_POST_FRACTION, GROUPS_PER_USER, LATENCY_QUANTILES, LabConfig,
    Observer, SIM_TAGS, StreamMix, StreamReads, TAGGED_FRACTION, latency_quantiles, run_engine,
    run_engine_with_streams,
};
pub use memory::{
    estimate_bytes, mem_total_bytes, process_cpu_s, resident_anon_bytes, resident_bytes,
    resident_peak_bytes, thread_cpu_s, trim_heap,
};
pub use open_loop::{
    AUTHOR_FOLLOWER_EXPONENT, EARLY_S, HistoryRun, Offered, OpenLoopConfig, OpenLoopRun,
    run_open_loop,
};
pub use remote::{OutboxRun, SIM_DOWN_EVERY, SIM_REMOTE_SERVERS};
pub use schedule::{POST_BURST_SHARE, POST_CYCLE_S};
pub use synthetic::{SYNTHETIC_BODY_BYTES, synthetic_notice};
pub use workload::{Op, PostKind, PostOp, RatesPerOp, Workload, WorkloadSummary};
pub use zipf_graph::ZipfGraph;
