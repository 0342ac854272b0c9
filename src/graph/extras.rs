//! The overlay of recent changes beside the snapshot: per user, the edges added and
//! removed since the snapshot, and the user's blocks and mutes. Copied on write: a
//! writer builds a new `Extras` and swaps it in, so a reader always sees one whole,
//! sorted, duplicate-free version. The lists are [`ChunkedList`]s, so the copy shares
//! every chunk but the one a change touches: a change costs the same however many
//! changes the user has gathered since the snapshot.

use super::chunked::ChunkedList;

/// One user's changes since the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    /// Users this user started following since the snapshot, ascending.
    pub(crate) out_add: ChunkedList,
    /// Snapshot followees this user stopped following, ascending.
    pub(crate) out_del: ChunkedList,
    /// New followers, ordered like the snapshot's follower lists: by
    /// `(follower % partitions, follower)`.
    pub(crate) in_add: ChunkedList,
    /// Snapshot followers that left, in the same order.
    pub(crate) in_del: ChunkedList,
    /// Users this user blocks, ascending (all of them, not only recent ones).
    pub(crate) blocks: ChunkedList,
    /// Users this user mutes, ascending (all of them).
    pub(crate) mutes: ChunkedList,
}

/// The sort key of follower lists: partition first, then id.
pub(crate) fn in_key(id: u32, partitions: u32) -> (u32, u32) {
    (id % partitions, id)
}

impl Extras {
    /// Records that this user's following of `b` is now `present`, given whether the
    /// snapshot has it.
    pub(crate) fn set_following(&mut self, b: u32, present: bool, in_snapshot: bool) {
        match (present, in_snapshot) {
            (true, true) => {
                self.out_del.remove(b);
            }
            (true, false) => {
                self.out_add.insert(b);
            }
            (false, true) => {
                self.out_del.insert(b);
            }
            (false, false) => {
                self.out_add.remove(b);
            }
        }
    }

    /// Records that `a` following this user is now `present`, given whether the
    /// snapshot has it.
    pub(crate) fn set_follower(
        &mut self,
        a: u32,
        present: bool,
        in_snapshot: bool,
        partitions: u32,
    ) {
        let key = |x| in_key(x, partitions);
        match (present, in_snapshot) {
            (true, true) => {
                self.in_del.remove_by(a, key);
            }
            (true, false) => {
                self.in_add.insert_by(a, key);
            }
            (false, true) => {
                self.in_del.insert_by(a, key);
            }
            (false, false) => {
                self.in_add.remove_by(a, key);
            }
        }
    }

    /// Bytes this overlay entry holds on the heap (for the memory figures).
    pub(crate) fn heap_bytes(&self) -> usize {
        [
            &self.out_add,
            &self.out_del,
            &self.in_add,
            &self.in_del,
            &self.blocks,
            &self.mutes,
        ]
        .iter()
        .map(|l| l.heap_bytes())
        .sum::<usize>()
            + std::mem::size_of::<Extras>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &ChunkedList) -> Vec<u32> {
        list.iter().collect()
    }

    #[test]
    fn following_changes_cancel_against_the_snapshot() {
        let mut e = Extras::default();
        e.set_following(5, true, false);
        e.set_following(3, true, false);
        assert_eq!(ids(&e.out_add), vec![3, 5]);
        e.set_following(5, false, false);
        assert_eq!(ids(&e.out_add), vec![3]);
        e.set_following(9, false, true);
        assert_eq!(ids(&e.out_del), vec![9]);
        e.set_following(9, true, true);
        assert!(e.out_del.is_empty());
    }

    #[test]
    fn followers_keep_the_partition_order() {
        let mut e = Extras::default();
        for a in [7, 2, 5, 4, 1] {
            e.set_follower(a, true, false, 2);
        }
        assert_eq!(ids(&e.in_add), vec![2, 4, 1, 5, 7]);
        e.set_follower(4, false, false, 2);
        assert_eq!(ids(&e.in_add), vec![2, 1, 5, 7]);
    }
}
