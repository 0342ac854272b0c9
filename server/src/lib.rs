//! # feedcore-server
//!
//! An example server that embeds [`feedcore::Engine`] behind Mastodon's client API
//! (v1, JSON), so that a real Mastodon client can post, follow and read its home
//! timeline, and a load generator can measure it over HTTP beside the same server with
//! its home timelines in Redis. See `server/README.md`.

#![warn(missing_docs)]

pub mod accounts;
pub mod api;
pub mod backend;
pub mod cli;
pub mod compose;
pub mod json;
pub mod paging;
pub mod redis_timelines;
