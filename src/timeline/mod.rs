//! Home timelines: a bounded, lock-free-to-read ring of notice ids per user, and the
//! per-author and per-mention id lists that user streams, pull reads and rebuilds use.

mod activity;
mod id_list;
mod page;
mod ring;
mod seqlock;
mod timelines;

pub(crate) use activity::State;
pub(crate) use id_list::IdLists;
pub use page::{Page, TimelinePage};
pub(crate) use timelines::{Timelines, prefetch};
