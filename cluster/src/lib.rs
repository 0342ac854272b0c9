//! # feedcore-cluster
//!
//! feedcore past one machine: users are partitioned over engine nodes, each node owns
//! one partition's users in its own [`feedcore::Engine`], and what crosses partitions
//! travels through NATS JetStream (durable, replicated, deduplicated streams).
//!
//! - User `u` lives on partition [`partition_of`]`(u, partitions)`; its id is the same
//!   in every node's engine (see [`partition`]).
//! - A post is appended on its author's node, then one message per partition that
//!   has followers of the author (or users it mentions) is published to
//!   `feedcore.fanout.<p>`, with `Nats-Msg-Id` = `<global id>><p>` so a retried
//!   publish is stored once. The receiving node stores the copy under the author's
//!   shadow with the global id as its `uri` (a redelivery is refused as a duplicate
//!   and acked), and its own fan-out delivers it to its users.
//! - A follow of a user on another partition is published to that partition first
//!   (its node records the follower's shadow, starts sending the author's notices, and
//!   sends the ones the follower's node lacks), then made locally. Unfollows, blocks,
//!   unblocks and deletes are routed the same way; mutes stay on the muter's node.
//! - Each node pulls its own subject with a durable consumer and acks each message
//!   once it is applied and durable. A delete is recorded durably on every node, so
//!   a copy that comes again after its delete is refused. Reads are local to the
//!   reader's node.
//!
//! [`Node`] is the node; [`harness`] starts a 3-server JetStream cluster on loopback
//! for tests and examples. `cluster/README.md` has the details and the figures.

#![warn(missing_docs)]

mod error;
pub mod harness;
mod node;
mod outbox;
pub mod partition;
mod tombstones;
mod wire;

pub use error::{Error, Result};
pub use node::{Node, NodeConfig, NodeStats};
pub use partition::{GlobalId, PARTITIONS_MAX, partition_of};
