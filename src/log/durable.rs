//! Making appends durable: one thread at a time runs `fdatasync` on behalf of everyone
//! waiting (group commit); a failed `fdatasync` poisons the log.

use std::fs::File;
use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};

/// A position in the log: `(segment slot << 32) | byte offset`. Ordered like the
/// records themselves, across segments.
pub(crate) type Lsn = u64;

pub(crate) fn lsn(slot: usize, offset: u64) -> Lsn {
    debug_assert!(offset < 1 << 32, "segments are smaller than 4 GiB");
    ((slot as u64) << 32) | offset
}

/// See [`Durable::writing`].
pub(crate) struct WritingGuard<'d> {
    durable: &'d Durable,
}

impl Drop for WritingGuard<'_> {
    fn drop(&mut self) {
        self.durable.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

struct State {
    /// Everything before this position is on disk. Only grows.
    synced: Lsn,
    /// A thread is running `fdatasync` for the others right now.
    leader: bool,
}

/// The group-commit rendezvous and the poison flag.
pub(crate) struct Durable {
    state: Mutex<State>,
    synced_cv: Condvar,
    /// Appenders between their write and the end of their wait. Written by appenders
    /// only (+1 on entry, -1 on exit); the leader reads it to decide whether waiting for
    /// company is worth it.
    waiting: AtomicUsize,
    /// Appenders on their way to the writer lock or inside it (+1 before, -1 after,
    /// by the appenders): records a leader may still catch with the same fsync.
    writing: AtomicUsize,
    /// Set once, by the first failed write or fsync; never cleared (reopen instead).
    poison: OnceLock<String>,
}

impl Durable {
    pub(crate) fn new() -> Self {
        Durable {
            state: Mutex::new(State {
                synced: 0,
                leader: false,
            }),
            synced_cv: Condvar::new(),
            waiting: AtomicUsize::new(0),
            writing: AtomicUsize::new(0),
            poison: OnceLock::new(),
        }
    }

    /// Marks an appender on its way to write; the guard unmarks it.
    pub(crate) fn writing(&self) -> WritingGuard<'_> {
        self.writing.fetch_add(1, Ordering::SeqCst);
        WritingGuard { durable: self }
    }

    /// `Err(Poisoned)` once a write or fsync has failed.
    pub(crate) fn check(&self) -> Result<()> {
        match self.poison.get() {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Poisons the log and returns the error to hand to the caller.
    pub(crate) fn poison(&self, context: String, e: io::Error) -> Error {
        let _ = self.poison.set(format!("{context}: {e}"));
        self.synced_cv.notify_all();
        Error::io(context, e)
    }

    /// `fdatasync` of `file` (which is `path`), through the fault seam.
    pub(crate) fn sync_file(&self, file: &File, path: &std::path::Path) -> io::Result<()> {
        crate::fileio::sync_data(file, path)
    }

    /// The position before which everything is known to be on disk.
    pub(crate) fn synced(&self) -> Lsn {
        self.state.lock().synced
    }

    /// Records that everything before `upto` is on disk (after a segment was sealed).
    pub(crate) fn mark_synced(&self, upto: Lsn) {
        let mut state = self.state.lock();
        state.synced = state.synced.max(upto);
    }

    /// Returns once everything before `upto` is on disk. The thread that becomes
    /// leader calls `sync_current`, which syncs the file holding the newest record and
    /// returns the position it covers (or what failed). `delay` is how long a leader
    /// waits for company when other appenders are in flight.
    pub(crate) fn wait(
        &self,
        upto: Lsn,
        delay: Option<Duration>,
        sync_current: impl Fn() -> Result<Lsn, (String, io::Error)>,
    ) -> Result<()> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let result = self.wait_inner(upto, delay, sync_current);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn wait_inner(
        &self,
        upto: Lsn,
        delay: Option<Duration>,
        sync_current: impl Fn() -> Result<Lsn, (String, io::Error)>,
    ) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            self.check()?;
            if state.synced >= upto {
                return Ok(());
            }
            if state.leader {
                self.synced_cv.wait(&mut state);
                continue;
            }
            state.leader = true;
            let outcome = MutexGuard::unlocked(&mut state, || {
                if let Some(delay) = delay {
                    // Wait for company only while some appender is still writing (its
                    // record can ride on this fsync), and at most `delay`: a fixed sleep
                    // would cost every batch the whole delay.
                    let start = std::time::Instant::now();
                    while self.writing.load(Ordering::SeqCst) > 0 && start.elapsed() < delay {
                        std::thread::yield_now();
                    }
                }
                // Earlier files were synced when they were sealed, so syncing the file
                // that holds the newest record covers everything before it.
                sync_current()
            });
            state.leader = false;
            match outcome {
                Ok(target) => state.synced = state.synced.max(target),
                Err((name, e)) => {
                    self.synced_cv.notify_all();
                    return Err(self.poison(format!("fdatasync of {name}"), e));
                }
            }
            self.synced_cv.notify_all();
        }
    }
}
