//! Workloads for benchmarks, the `feedcore` command and tests. Today: synthetic
//! notices; the strategy laboratory grows here.

mod synthetic;

pub use synthetic::{SYNTHETIC_BODY_BYTES, synthetic_notice};
