//! The append-only notice log: segment files of checksummed records, recovered after a
//! crash, read in place through read-only maps. See `docs/design.md` for the byte
//! layouts and the crash analysis.

mod check;
mod config;
pub(crate) mod durable;
pub(crate) mod frame;
mod notice_log;
pub(crate) mod order;
mod recover;
pub(crate) mod scan;
pub(crate) mod segment;

pub use check::{CheckReport, LogStats};
pub use config::{Durability, LogConfig, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
pub use notice_log::{Iter, NoticeLog, RecoveryReport};
pub use order::PUBLISHED_MS_MIN;
pub use recover::Problem;
