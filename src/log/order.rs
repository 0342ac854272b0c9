//! The order of notices in every stream: by publication time, then by id.
//!
//! Each notice has a time it is placed by (its *key*, milliseconds since the Unix
//! epoch): the clamped `published` time of a notice that gives one, else its
//! `created_at_ms` raised to the highest key stored before it. A notice is *in order*
//! when its key is at least every earlier key, and *late* otherwise (a remote notice
//! published before notices already stored). Among in-order notices the key never
//! falls as the id grows, so their id order is the (key, id) order: the streams keep
//! them exactly as before, by id; late notices are placed among them by (key, id).
//!
//! Per notice, one `u64`: the highest key up to it (bits 0..63), with bit 63 set when
//! the notice is late. Late notices' own keys are in a map beside (rare).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The earliest `published` time accepted: 2006-03-21 00:00 UTC, the day of Twitter's
/// first post. An earlier time (0 included) is refused as [`Error::InvalidNotice`].
pub const PUBLISHED_MS_MIN: u64 = 1_142_899_200_000;

/// Bit 63 of an entry: the notice is late.
const LATE: u64 = 1 << 63;
/// The largest key: times at or past 2^63 ms are placed at it.
pub(crate) const KEY_MAX: u64 = LATE - 1;

/// The place of a notice in every stream: (key, id), compared in that order.
pub(crate) type Pos = (u64, u64);

/// Checks and clamps a `published` time against the clock's `now_ms`: before
/// [`PUBLISHED_MS_MIN`] is an error; after `now_ms`, `now_ms` (a remote clock running
/// ahead must not place its notices above the ones posted here after them).
pub(crate) fn clamp_published(published_ms: u64, now_ms: u64) -> Result<u64> {
    if published_ms < PUBLISHED_MS_MIN {
        return Err(Error::invalid(format!(
            "published time {published_ms} ms is before 2006-03-21 ({PUBLISHED_MS_MIN} ms)"
        )));
    }
    Ok(published_ms.min(now_ms))
}

/// The keys of the log's notices, in id order.
#[derive(Default)]
pub(crate) struct OrderKeys {
    /// Entry `id - 1`: the highest key of notices `1..=id` (the running maximum), with
    /// [`LATE`] set for a late notice. Pushed under the log's writer lock right after
    /// the notice's index entry, before `published` covers it; never changed after.
    entries: boxcar::Vec<AtomicU64>,
    /// Late notices' keys. Inserted before the entry is pushed; never removed (a
    /// cursor may name a deleted notice).
    late: papaya::HashMap<u64, u64>,
    /// Late notices stored (written under the writer lock).
    late_count: AtomicU64,
}

impl OrderKeys {
    /// The running maximum after the last pushed notice (0 for an empty log).
    /// Writer lock held.
    pub(crate) fn high(&self) -> u64 {
        let n = self.entries.count();
        if n == 0 {
            0
        } else {
            self.entries[n - 1].load(Ordering::Relaxed) & !LATE
        }
    }

    /// Records the key of notice `id` (the next one); returns whether it is late.
    /// Writer lock held (or no other thread yet, at open).
    pub(crate) fn push(&self, id: u64, key: u64) -> bool {
        let key = key.min(KEY_MAX);
        let high = self.high();
        let late = key < high;
        if late {
            self.late.pin().insert(id, key);
            self.late_count.fetch_add(1, Ordering::Release);
            self.entries.push(AtomicU64::new(high | LATE));
        } else {
            self.entries.push(AtomicU64::new(key));
        }
        debug_assert_eq!(self.entries.count() as u64, id, "keys follow ids");
        late
    }

    /// Whether any late notice was ever stored.
    pub(crate) fn any_late(&self) -> bool {
        self.late_count.load(Ordering::Acquire) > 0
    }

    fn entry(&self, id: u64) -> Option<u64> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        Some(self.entries.get(i)?.load(Ordering::Relaxed))
    }

    /// Whether notice `id` is late.
    pub(crate) fn is_late(&self, id: u64) -> bool {
        self.entry(id).is_some_and(|e| e & LATE != 0)
    }

    /// The key of notice `id`, when it has one yet.
    pub(crate) fn key(&self, id: u64) -> Option<u64> {
        let e = self.entry(id)?;
        if e & LATE == 0 {
            return Some(e);
        }
        Some(
            *self
                .late
                .pin()
                .get(&id)
                .expect("a late notice's key is inserted before its entry"),
        )
    }

    /// The place of `id` in the order. An id past the last notice is above every
    /// notice; id 0 below every one.
    pub(crate) fn pos(&self, id: u64) -> Pos {
        if id == 0 {
            return (0, 0);
        }
        match self.key(id) {
            Some(key) => (key, id),
            None => (u64::MAX, id),
        }
    }

    /// The place of notice `id` among in-order notices: the first id whose (running
    /// maximum, id) is above `pos`, or one past the last notice. In-order notices below
    /// `pos` are exactly those with smaller ids (for an in-order notice's place, its
    /// id + 1).
    pub(crate) fn first_above(&self, pos: Pos) -> u64 {
        let n = self.entries.count() as u64;
        // (running maximum, id) grows strictly with the id.
        let (mut lo, mut hi) = (1u64, n + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let high = self.entry(mid).expect("mid is at most the last notice") & !LATE;
            if (high, mid) <= pos {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_notices_are_placed_by_their_key() {
        let keys = OrderKeys::default();
        assert!(!keys.push(1, 100));
        assert!(!keys.push(2, 200));
        assert!(keys.push(3, 150), "older than the newest key: late");
        assert!(!keys.push(4, 200), "equal to the newest key: in order");
        assert!(keys.push(5, 50));
        assert!(keys.any_late());
        assert_eq!(keys.key(3), Some(150));
        assert_eq!(keys.key(4), Some(200));
        assert_eq!(keys.pos(5), (50, 5));
        assert_eq!(keys.pos(9), (u64::MAX, 9));
        assert_eq!(keys.pos(0), (0, 0));
        // In-order notices below (150, 3): id 1 only; below (50, 5): none.
        assert_eq!(keys.first_above(keys.pos(3)), 2);
        assert_eq!(keys.first_above(keys.pos(5)), 1);
        assert_eq!(keys.first_above(keys.pos(4)), 5);
        assert_eq!(keys.first_above(keys.pos(9)), 6);
        assert!(keys.is_late(3) && !keys.is_late(4) && !keys.is_late(9));
    }

    #[test]
    fn published_times_are_clamped_or_refused() {
        let now = 1_700_000_000_000;
        assert_eq!(clamp_published(now - 5, now).unwrap(), now - 5);
        assert_eq!(clamp_published(now + 3_600_000, now).unwrap(), now);
        assert_eq!(clamp_published(u64::MAX, now).unwrap(), now);
        assert_eq!(
            clamp_published(PUBLISHED_MS_MIN, now).unwrap(),
            PUBLISHED_MS_MIN
        );
        for absurd in [0, 1, PUBLISHED_MS_MIN - 1] {
            assert!(matches!(
                clamp_published(absurd, now),
                Err(Error::InvalidNotice { .. })
            ));
        }
    }
}
