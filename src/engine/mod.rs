//! The facade servers embed: it owns a store directory (the notice log in `notices/`,
//! the follow graph in `graph/`), keeps the derived state (per-author and mention
//! lists, home timelines) and runs the fan-out.

mod config;
mod facade;
mod federation;
mod late;
mod read;
mod stats;
mod streams;

pub use config::{Clock, Config};
pub use facade::Engine;
pub use stats::EngineStats;
pub use streams::{MemberPage, StreamsStats, UserStream};
