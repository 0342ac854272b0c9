//! Reading streams: the home timeline (stored ring, then a pull merge below its floor),
//! the user stream, mentions; the visibility rules; rebuilds.
//!
//! A home timeline is, by definition, the reader's own notices and those of the
//! authors the reader follows now, under the rules (see `rules.rs`), newest first.
//! The stored ring is a cache of the *candidates* (every notice pushed to the reader);
//! the rules are applied here, at read time, so that a follow, unfollow, block, mute or
//! delete takes effect at once.

mod candidates;
mod home;
mod lists;
mod order;
mod paging;
mod plan;
mod pull_merge;
mod rebuild;
mod repair;
mod rules;
mod streams;
#[cfg(test)]
mod tests;

pub(crate) use paging::{check_notice_page, check_page};
pub(crate) use plan::CachedPlan;
pub(crate) use pull_merge::{ReadCost, Source};
