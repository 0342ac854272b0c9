//! How users map to partitions, and how notices are named across the cluster.
//!
//! A user keeps one id everywhere: user `u` of the cluster is `UserId(u)` in every
//! node's engine (each engine is sized for all users, `users_max` of the cluster). Its
//! home partition is [`partition_of`]`(u, partitions)`. A node's engine holds its own
//! users, whose notices it writes, and *shadows* of users of other partitions: the
//! same ids, standing as the authors of the copies it stores of their notices, and as
//! the followers its own users have elsewhere.
//!
//! A notice is named by its origin partition and its id in the origin's log: a
//! [`GlobalId`]. A copy on another node has a local id of its own and the global id as
//! its `uri` (`feedcore-cluster:<partition>/<local id>`), so the notice log's
//! once-per-uri rule makes every redelivery a no-op.

use std::fmt;

use feedcore::NoticeId;

/// The uri prefix of the copies a node stores of other partitions' notices.
pub const URI_PREFIX: &str = "feedcore-cluster:";

/// The most partitions a cluster may have (partition numbers travel as `u16`, and a
/// node keeps a 64-bit mask of the partitions an author has followers on).
pub const PARTITIONS_MAX: u32 = 64;

/// The partition of user `user` among `partitions`: the murmur3 32-bit finaliser of
/// the id, modulo `partitions`. Fixed for all versions: changing it would move users.
///
/// ```
/// use feedcore_cluster::partition_of;
/// assert!((0..1000).all(|u| partition_of(u, 3) < 3));
/// assert_eq!(partition_of(42, 1), 0);
/// ```
pub fn partition_of(user: u32, partitions: u32) -> u32 {
    debug_assert!(partitions >= 1);
    let mut h = user;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h % partitions.max(1)
}

/// A notice's name across the cluster: the partition that wrote it and its id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GlobalId {
    /// The origin partition.
    pub partition: u32,
    /// Its id in the origin's notice log.
    pub local: NoticeId,
}

impl GlobalId {
    /// The notice `local` of partition `partition`.
    pub fn new(partition: u32, local: NoticeId) -> GlobalId {
        GlobalId { partition, local }
    }

    /// The uri its copies are stored under.
    pub fn uri(&self) -> String {
        format!("{URI_PREFIX}{}/{}", self.partition, self.local.0)
    }

    /// Reads a copy's uri back; `None` for any other uri.
    pub fn from_uri(uri: &str) -> Option<GlobalId> {
        let rest = uri.strip_prefix(URI_PREFIX)?;
        let (p, id) = rest.split_once('/')?;
        let partition: u32 = p.parse().ok()?;
        let local: u64 = id.parse().ok()?;
        (partition < PARTITIONS_MAX && local > 0)
            .then_some(GlobalId::new(partition, NoticeId(local)))
    }
}

impl fmt::Display for GlobalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.partition, self.local.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_balanced_and_stable() {
        let mut counts = [0u32; 3];
        for u in 0..30_000 {
            counts[partition_of(u, 3) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        // Pinned: a change of the hash would move every user's data.
        let pinned: Vec<u32> = (0..8).map(|u| partition_of(u, 3)).collect();
        assert_eq!(pinned, [0, 1, 1, 1, 2, 1, 1, 1]);
    }

    #[test]
    fn uris_round_trip_and_others_are_refused() {
        let id = GlobalId::new(2, NoticeId(9));
        assert_eq!(id.uri(), "feedcore-cluster:2/9");
        assert_eq!(GlobalId::from_uri(&id.uri()), Some(id));
        for bad in [
            "",
            "https://example.org/1",
            "feedcore-cluster:",
            "feedcore-cluster:2",
            "feedcore-cluster:2/0",
            "feedcore-cluster:99/1",
            "feedcore-cluster:x/1",
            "feedcore-cluster:1/-1",
        ] {
            assert_eq!(GlobalId::from_uri(bad), None, "{bad}");
        }
    }
}
