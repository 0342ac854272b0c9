//! The in-memory queue of pending deliveries: compact entries, 16 bytes each while
//! due, 24 while waiting for a retry. The remote followers a delivery goes to are not
//! here: they are read from the follow graph when the delivery is handed out.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::record::DeliveryKind;

/// The most attempts an entry counts (15 bits).
pub(crate) const ATTEMPT_MAX: u16 = (1 << 15) - 1;

/// One pending delivery: `word` packs the notice id (48 bits), the kind (1 bit: set
/// for a delete) and the failed attempts so far (15 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    word: u64,
    pub(crate) server: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

impl Entry {
    pub(crate) fn new(notice: u64, kind: DeliveryKind, server: u32, attempts: u16) -> Entry {
        let delete = u64::from(kind == DeliveryKind::Delete);
        Entry {
            word: notice << 16 | delete << 15 | u64::from(attempts.min(ATTEMPT_MAX)),
            server,
        }
    }

    pub(crate) fn notice(self) -> u64 {
        self.word >> 16
    }

    pub(crate) fn kind(self) -> DeliveryKind {
        if self.word & 1 << 15 != 0 {
            DeliveryKind::Delete
        } else {
            DeliveryKind::Create
        }
    }

    /// Failed attempts so far.
    pub(crate) fn attempts(self) -> u16 {
        (self.word & u64::from(ATTEMPT_MAX)) as u16
    }
}

/// Due entries in order of arrival, and those waiting for a retry by due time.
#[derive(Default)]
pub(crate) struct Queue {
    ready: VecDeque<Entry>,
    delayed: BinaryHeap<Reverse<(u64, Entry)>>,
}

impl Queue {
    /// Adds an entry due now.
    pub(crate) fn push(&mut self, e: Entry) {
        self.ready.push_back(e);
    }

    /// Adds an entry due at `due_ms`.
    pub(crate) fn push_at(&mut self, e: Entry, due_ms: u64) {
        self.delayed.push(Reverse((due_ms, e)));
    }

    /// The next entry due at `now_ms`: retries that came due first, then the others
    /// in order of arrival.
    pub(crate) fn pop(&mut self, now_ms: u64) -> Option<Entry> {
        if let Some(Reverse((due, _))) = self.delayed.peek()
            && *due <= now_ms
        {
            return self.delayed.pop().map(|Reverse((_, e))| e);
        }
        self.ready.pop_front()
    }

    /// Keeps only the entries for which `keep` holds; returns how many went.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(Entry) -> bool) -> u64 {
        let before = self.len();
        self.ready.retain(|&e| keep(e));
        self.delayed.retain(|Reverse((_, e))| keep(*e));
        (before - self.len()) as u64
    }

    /// Entries pending.
    pub(crate) fn len(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    /// Entries waiting for a retry.
    pub(crate) fn waiting(&self) -> usize {
        self.delayed.len()
    }

    /// Bytes the queue holds (capacity, not just length).
    pub(crate) fn bytes(&self) -> usize {
        self.ready.capacity() * std::mem::size_of::<Entry>()
            + self.delayed.capacity() * std::mem::size_of::<(u64, Entry)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pack_and_come_out_in_order() {
        let e = Entry::new((1 << 48) - 1, DeliveryKind::Delete, 7, 40_000);
        assert_eq!(e.notice(), (1 << 48) - 1);
        assert_eq!(e.kind(), DeliveryKind::Delete);
        assert_eq!(e.attempts(), ATTEMPT_MAX);
        assert_eq!(e.server, 7);
        let mut q = Queue::default();
        q.push(Entry::new(1, DeliveryKind::Create, 0, 0));
        q.push(Entry::new(2, DeliveryKind::Create, 0, 0));
        q.push_at(Entry::new(3, DeliveryKind::Create, 0, 1), 100);
        assert_eq!(q.pop(50).unwrap().notice(), 1);
        assert_eq!(q.pop(100).unwrap().notice(), 3);
        assert_eq!(q.retain(|e| e.notice() != 2), 1);
        assert_eq!(q.pop(1000), None);
    }
}
