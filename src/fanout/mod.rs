//! Delivery of notices into home timelines: the strategies that decide who gets a
//! notice pushed and what reads pull, and the worker pool that pushes, a chunk at a
//! time.

mod pool;
pub(crate) mod strategy;

pub(crate) use pool::{Delivery, Job, Pool};
pub use strategy::{KnownRates, Strategy};
