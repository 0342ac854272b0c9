//! Delivery of notices into home timelines: the worker pool that pushes each notice to
//! its author's followers, a chunk at a time.

mod pool;

pub(crate) use pool::{Delivery, Job, Pool};
