//! The cluster crate's one error type.

use feedcore::UserId;

/// Everything that can go wrong in a cluster node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node's own engine refused or failed (bad notice, bad relation, I/O, ...).
    #[error(transparent)]
    Engine(#[from] feedcore::Error),

    /// A call named a user whose partition is another node's.
    #[error("{user} belongs to partition {owner}; this node owns partition {partition}")]
    NotMine {
        /// The user named.
        user: UserId,
        /// The user's partition.
        owner: u32,
        /// This node's partition.
        partition: u32,
    },

    /// A notice id that this node cannot act on (not its own, or unknown).
    #[error("{reason}")]
    NotOwnNotice {
        /// Why, in words.
        reason: String,
    },

    /// NATS or JetStream failed where the call cannot go on without it.
    #[error("NATS: {what}: {reason}")]
    Nats {
        /// What the node was doing.
        what: &'static str,
        /// What the client said.
        reason: String,
    },

    /// The node's configuration cannot work.
    #[error("invalid cluster configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// A file of the node's own (the published-up-to mark) could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What the node was doing.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The cluster crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `map_err` for NATS client errors.
pub(crate) fn nats<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Nats {
        what,
        reason: e.to_string(),
    }
}
