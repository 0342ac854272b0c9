//! The streams' lists of late notices: those placed below notices stored before them
//! (see `log/order.rs`). Late notices are never delivered into home timelines nor
//! added to the id lists; each stream's read merges its lists of late notices in by
//! (time, id). Rare (federation backfill), so a list is copied on every add and read
//! without a lock.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::log::order::Pos;

/// Which stream a list of late notices belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Late {
    /// An author's notices.
    Author = 1,
    /// The notices that mention a user.
    Mention = 2,
    /// A group's notices.
    Group = 3,
    /// A tag's notices.
    Tag = 4,
    /// The public timeline (slot `PUBLIC`) and the local one (`LOCAL`).
    Public = 5,
}

/// Per (stream kind, slot), the late notices' places, ascending.
#[derive(Default)]
pub(crate) struct LateLists {
    /// Replaced whole under `writer`; readers load an `Arc` and keep it.
    lists: papaya::HashMap<(u8, u32), Arc<Vec<Pos>>>,
    writer: Mutex<()>,
}

impl LateLists {
    /// Adds `pos` to the list of (`kind`, `slot`); a second add does nothing.
    pub(crate) fn add(&self, kind: Late, slot: u32, pos: Pos) {
        let _one_at_a_time = self.writer.lock();
        let lists = self.lists.pin();
        let key = (kind as u8, slot);
        let mut list: Vec<Pos> = lists.get(&key).map_or_else(Vec::new, |l| l.to_vec());
        if let Err(at) = list.binary_search(&pos) {
            list.insert(at, pos);
            lists.insert(key, Arc::new(list));
        }
    }

    /// The list of (`kind`, `slot`), when it has any notice.
    pub(crate) fn get(&self, kind: Late, slot: u32) -> Option<Arc<Vec<Pos>>> {
        self.lists.pin().get(&(kind as u8, slot)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stay_sorted_and_unique() {
        let late = LateLists::default();
        for pos in [(5, 9), (3, 12), (5, 9), (4, 10), (3, 11)] {
            late.add(Late::Author, 7, pos);
        }
        let list = late.get(Late::Author, 7).expect("added");
        assert_eq!(*list, [(3, 11), (3, 12), (4, 10), (5, 9)]);
        assert!(late.get(Late::Group, 7).is_none());
    }
}
