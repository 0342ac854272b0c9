//! The clock the engine and the log read the time from.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the engine gets the time from (for activity windows and delivery lag):
/// the system clock, or a manual clock that tests and simulations move themselves.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `start_ms` (milliseconds since the Unix epoch) until
    /// moved with [`Clock::set_ms`] or [`Clock::advance`]; clones share the time.
    pub fn manual(start_ms: u64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// Sets a manual clock (no effect on the system clock).
    pub fn set_ms(&self, ms: u64) {
        if let Some(now) = &self.manual {
            now.store(ms, Ordering::Relaxed);
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.manual {
            now.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
        }
    }
}
