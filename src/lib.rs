//! # feedcore
//!
//! Storage and delivery of notices (short posts) for microblogging servers: an
//! append-only, memory-mapped notice log that survives crashes and is read in place, a
//! compact follow graph, and home timelines filled by a fan-out that pushes, pulls or
//! mixes the two.
//!
//! The entry point is [`Engine`]: it owns a store directory, takes posts, follows,
//! blocks and mutes, and pages home timelines, user streams and mentions. [`NoticeLog`]
//! and [`FollowGraph`] can also be used alone. [`sim`] is the strategy laboratory behind
//! `feedcore sim`.
//!
//! ```
//! use feedcore::{Config, Engine, NewNotice, Page, UserId};
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::open(dir.path(), Config { users_max: 100, ..Default::default() })?;
//! engine.follow(UserId(2), UserId(1))?;
//! let id = engine.post(NewNotice { author: UserId(1), body: "hello".into(), ..Default::default() })?;
//! engine.flush()?; // delivery runs behind `post`
//! assert_eq!(engine.home_timeline(UserId(2), Page::latest(20))?.ids, [id]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Errors are one enum, [`Error`]: bad input is an `Err`, never a panic.

#![warn(missing_docs)]

mod clock;
mod dirlock;
mod engine;
mod error;
mod fanout;
#[doc(hidden)]
pub mod faults;
mod fileio;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod graph;
mod ids;
mod log;
mod notice;
mod outbox;
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
    CheckReport, Durability, Iter, LogConfig, LogStats, NoticeLog, PUBLISHED_MS_MIN, Problem,
    RecoveryReport, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
pub use notice::{
    BODY_BYTES_MAX_DEFAULT, GROUPS_MAX, MENTIONS_MAX, NewNotice, NoticeRef, Scope, TAG_BYTES_MAX,
    TAGS_MAX, URI_BYTES_MAX,
};
pub use outbox::{Delivery, DeliveryKind, OutboxReport, OutboxStats};
pub use timeline::{Page, TimelinePage};
