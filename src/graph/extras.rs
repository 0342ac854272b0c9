//! The overlay of recent changes beside the snapshot: per user, the edges added and
//! removed since the snapshot, and the user's blocks and mutes. Copied on write: a
//! writer builds a new `Extras` and swaps it in, so a reader always sees one whole,
//! sorted, duplicate-free version.

/// One user's changes since the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    /// Users this user started following since the snapshot, ascending.
    pub(crate) out_add: Vec<u32>,
    /// Snapshot followees this user stopped following, ascending.
    pub(crate) out_del: Vec<u32>,
    /// New followers, ordered like the snapshot's follower lists: by
    /// `(follower % partitions, follower)`.
    pub(crate) in_add: Vec<u32>,
    /// Snapshot followers that left, in the same order.
    pub(crate) in_del: Vec<u32>,
    /// Users this user blocks, ascending (all of them, not only recent ones).
    pub(crate) blocks: Vec<u32>,
    /// Users this user mutes, ascending (all of them).
    pub(crate) mutes: Vec<u32>,
}

/// The sort key of follower lists: partition first, then id.
pub(crate) fn in_key(id: u32, partitions: u32) -> (u32, u32) {
    (id % partitions, id)
}

fn insert_by<K: Ord>(list: &mut Vec<u32>, id: u32, key: impl Fn(u32) -> K) -> bool {
    match list.binary_search_by_key(&key(id), |&x| key(x)) {
        Ok(_) => false,
        Err(at) => {
            list.insert(at, id);
            true
        }
    }
}

fn remove_by<K: Ord>(list: &mut Vec<u32>, id: u32, key: impl Fn(u32) -> K) -> bool {
    match list.binary_search_by_key(&key(id), |&x| key(x)) {
        Ok(at) => {
            list.remove(at);
            true
        }
        Err(_) => false,
    }
}

pub(crate) fn contains(list: &[u32], id: u32) -> bool {
    list.binary_search(&id).is_ok()
}

pub(crate) fn insert(list: &mut Vec<u32>, id: u32) -> bool {
    insert_by(list, id, |x| x)
}

pub(crate) fn remove(list: &mut Vec<u32>, id: u32) -> bool {
    remove_by(list, id, |x| x)
}

impl Extras {
    /// Records that this user's following of `b` is now `present`, given whether the
    /// snapshot has it.
    pub(crate) fn set_following(&mut self, b: u32, present: bool, in_snapshot: bool) {
        match (present, in_snapshot) {
            (true, true) => {
                remove(&mut self.out_del, b);
            }
            (true, false) => {
                insert(&mut self.out_add, b);
            }
            (false, true) => {
                insert(&mut self.out_del, b);
            }
            (false, false) => {
                remove(&mut self.out_add, b);
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
                remove_by(&mut self.in_del, a, key);
            }
            (true, false) => {
                insert_by(&mut self.in_add, a, key);
            }
            (false, true) => {
                insert_by(&mut self.in_del, a, key);
            }
            (false, false) => {
                remove_by(&mut self.in_add, a, key);
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
        .map(|v| v.capacity() * 4)
        .sum::<usize>()
            + std::mem::size_of::<Extras>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn following_changes_cancel_against_the_snapshot() {
        let mut e = Extras::default();
        e.set_following(5, true, false);
        e.set_following(3, true, false);
        assert_eq!(e.out_add, vec![3, 5]);
        e.set_following(5, false, false);
        assert_eq!(e.out_add, vec![3]);
        e.set_following(9, false, true);
        assert_eq!(e.out_del, vec![9]);
        e.set_following(9, true, true);
        assert!(e.out_del.is_empty());
    }

    #[test]
    fn followers_keep_the_partition_order() {
        let mut e = Extras::default();
        for a in [7, 2, 5, 4, 1] {
            e.set_follower(a, true, false, 2);
        }
        assert_eq!(e.in_add, vec![2, 4, 1, 5, 7]);
        e.set_follower(4, false, false, 2);
        assert_eq!(e.in_add, vec![2, 1, 5, 7]);
    }
}
