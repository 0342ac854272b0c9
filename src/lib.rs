//! # feedcore
//!
//! Storage and delivery of notices (short posts) for microblogging servers: an
//! append-only, memory-mapped notice log that survives crashes and is read in place.
//!
//! The entry point today is [`NoticeLog`]; see the README for the road ahead (follow
//! graph, home timelines, fan-out strategies, the `feedcore sim` laboratory).
//!
//! ```
//! use feedcore::{LogConfig, NewNotice, NoticeLog, UserId};
//! let dir = tempfile::tempdir()?;
//! let log = NoticeLog::open(dir.path(), LogConfig::default())?;
//! let id = log.append(&NewNotice { author: UserId(1), body: "hello".into(), ..Default::default() })?;
//! log.delete(id)?;
//! assert!(log.get(id).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod dirlock;
mod engine;
mod error;
mod fanout;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod graph;
mod ids;
mod log;
mod notice;
pub mod sim;
mod timeline;

pub use engine::{Clock, Config, Engine, EngineStats, MemberPage, StreamsStats, UserStream};
pub use error::{Error, Result};
pub use fanout::{KnownRates, Strategy};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use graph::{
    FollowGraph, Followers, GraphCheckReport, GraphConfig, GraphStats, NAME_BYTES_MAX, Neighbors,
    RelationsCheck,
};
pub use ids::{GroupId, ListId, NoticeId, UserId};
pub use log::{
    CheckReport, Durability, Iter, LogConfig, LogStats, NoticeLog, Problem, RecoveryReport,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
pub use notice::{
    BODY_BYTES_MAX_DEFAULT, GROUPS_MAX, MENTIONS_MAX, NewNotice, NoticeRef, Scope, TAG_BYTES_MAX,
    TAGS_MAX, URI_BYTES_MAX,
};
pub use timeline::{Page, TimelinePage};
