//! How soon readers come back: the read rate the selective strategy decides a
//! reader's pairs by, measured over the population instead of guessed from the
//! reader's own few reads (empirical Bayes).
//!
//! A reader's own decayed counter, just after a read, is an unbiased but very noisy
//! estimate of its rate: most readers read a few times a day, and one hour of history
//! holds zero or one earlier read. Deciding by it pushes to readers who happened to
//! read twice in a row and then do not come back for hours. So readers are bucketed
//! by the evidence their counter held at their last read, and each bucket counts the
//! reads that end a stay in it (returns) and the reader-hours spent in it (exposure).
//! Returns over exposure is the rate at which readers of that bucket come back: the
//! quantity the push/pull rule needs (a push costs for as long as the reader stays
//! away, a pull saves at its return), with no censoring (a reader who never comes back
//! keeps adding exposure to its bucket). Both sums decay, so the table follows changes
//! of the population.

/// Buckets: the half-octave classes of the selective strategy's rates (0: no earlier
/// read in the counter).
pub(crate) const BUCKETS: usize = 128;

/// Half-life of returns and exposure.
const HALF_LIFE_MS: f64 = 6.0 * 3_600_000.0;

/// Reader-hours a bucket must hold before its rate means anything. Low: the discount
/// (see `ReturnRates::read`) already tempers a young table's rates, and until a
/// bucket has one its readers go by their own few reads (300 k sweeps, worst point
/// against the better strategy: 1.011 at 10 reader-hours, 1.014 at 50, 1.019 at 200).
const MIN_EXPOSURE_HOURS: f64 = 10.0;

/// Mean intervals of a bucket's rate the table must have watched before the rate is
/// used whole (see `ReturnRates::read`).
const WATCHED_INTERVALS: f64 = 4.0;

/// The clock advances the sums at most this often (exposure accrues in between, it
/// is added at the next step).
const STEP_MS: u64 = 1_000;

pub(crate) struct ReturnRates {
    returns: [f64; BUCKETS],
    exposure: [f64; BUCKETS],
    /// Readers whose last read left them in each bucket.
    readers: [u64; BUCKETS],
    /// When the sums were last advanced, and when the first read came.
    last_ms: u64,
    started_ms: Option<u64>,
}

impl ReturnRates {
    pub(crate) fn new() -> ReturnRates {
        ReturnRates {
            returns: [0.0; BUCKETS],
            exposure: [0.0; BUCKETS],
            readers: [0; BUCKETS],
            last_ms: 0,
            started_ms: None,
        }
    }

    /// Records a read at `now_ms` by a reader whose previous read left it in bucket
    /// `old` (`None`: its first read), and whose counter now puts it in bucket `new`.
    /// Returns the rate (per hour) at which readers of bucket `new` come back, once
    /// the bucket holds enough exposure; discounted until the table has watched for
    /// `WATCHED_INTERVALS` mean intervals of that rate. Early on only the readers who
    /// come back soon have had time to, and the raw rate is overstated: it is scaled
    /// by the fraction of those intervals watched. (Used only after one whole interval
    /// instead, and not at all before, readers of slow buckets would count as not
    /// reading and pull everything until then: at 10 reads a post the cold sweep costs
    /// 1.03x push's that way, against 1.00x with the discount.) Watched since the
    /// table's first read, not the bucket's first reader: a bucket first filled late is
    /// used as soon as it holds the exposure (timing each bucket from its first reader
    /// measures worse: 1.03x and 1.08x the better strategy warm at 1 and 10 reads a
    /// post, against 0.99x and 1.04x).
    pub(crate) fn read(&mut self, now_ms: u64, old: Option<usize>, new: usize) -> Option<f64> {
        let started = *self.started_ms.get_or_insert(now_ms);
        self.advance(now_ms);
        if let Some(old) = old {
            self.returns[old] += 1.0;
            self.readers[old] = self.readers[old].saturating_sub(1);
        }
        self.readers[new] += 1;
        if self.exposure[new] < MIN_EXPOSURE_HOURS {
            return None;
        }
        let rate = self.returns[new] / self.exposure[new];
        let watched_hours = now_ms.saturating_sub(started) as f64 / 3_600_000.0;
        Some(rate * (rate * watched_hours / WATCHED_INTERVALS).min(1.0))
    }

    /// Decays the sums and adds the exposure of the readers in each bucket since the
    /// last step.
    fn advance(&mut self, now_ms: u64) {
        let elapsed_ms = now_ms.saturating_sub(self.last_ms);
        if elapsed_ms < STEP_MS {
            return;
        }
        let decay = 0.5f64.powf(elapsed_ms as f64 / HALF_LIFE_MS);
        // A reader's exposure over the step, decayed as it accrued: the integral of
        // 2^(-age / half-life) over the step, in hours.
        let hours = (1.0 - decay) * HALF_LIFE_MS / std::f64::consts::LN_2 / 3_600_000.0;
        for b in 0..BUCKETS {
            self.returns[b] *= decay;
            self.exposure[b] = self.exposure[b] * decay + self.readers[b] as f64 * hours;
        }
        self.last_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    /// Two groups in different buckets: one reads every 10 minutes, one every 2 hours.
    #[test]
    fn each_bucket_measures_how_soon_its_readers_come_back() {
        let mut rates = ReturnRates::new();
        let (fast, slow) = (40usize, 30usize);
        let mut last = (None, None);
        let mut got = (None, None);
        for minute in 0..=8 * 60u64 {
            let now = minute * MINUTE;
            for _ in 0..100 {
                if minute % 10 == 0 {
                    got.0 = rates.read(now, last.0, fast);
                }
                if minute % 120 == 0 {
                    got.1 = rates.read(now, last.1, slow);
                }
            }
            if minute % 10 == 0 {
                last.0 = Some(fast);
            }
            if minute % 120 == 0 {
                last.1 = Some(slow);
            }
        }
        let fast_rate = got.0.expect("the fast bucket is measured after hours");
        let slow_rate = got.1.expect("the slow bucket is measured after hours");
        assert!((5.0..7.0).contains(&fast_rate), "{fast_rate}");
        assert!((0.4..0.6).contains(&slow_rate), "{slow_rate}");
    }

    /// Readers who never come back pull their bucket's rate down (no censoring): of
    /// 1000 readers, half read again after 30 minutes, half never.
    #[test]
    fn readers_who_do_not_come_back_count() {
        let mut rates = ReturnRates::new();
        for _ in 0..1000 {
            rates.read(0, None, 5);
        }
        for _ in 0..500 {
            rates.read(30 * MINUTE, Some(5), 6);
        }
        // 1000 readers * 0.5 h of exposure, 500 returns: 1 an hour, where the readers
        // who came back alone would say 2.
        let rate = rates.returns[5] / rates.exposure[5];
        assert!((0.95..1.05).contains(&rate), "{rate}");
        // Two hours on, the 500 still away have added about 1000 h (less, decayed as
        // it accrued): the rate falls to about a third.
        rates.read(150 * MINUTE, None, 7);
        let later = rates.returns[5] / rates.exposure[5];
        let accrued = |hours: f64| (1.0 - 0.5f64.powf(hours / 6.0)) * 6.0 / std::f64::consts::LN_2;
        let decay = 0.5f64.powf(2.0 / 6.0);
        let want = 500.0 * decay / (1000.0 * accrued(0.5) * decay + 500.0 * accrued(2.0));
        assert!((later - want).abs() < 0.01, "{later} vs {want}");
    }

    #[test]
    fn a_rate_is_discounted_until_its_readers_had_time_to_come_back() {
        let mut rates = ReturnRates::new();
        for _ in 0..1000 {
            rates.read(0, None, 5);
        }
        // No exposure yet: nothing.
        assert_eq!(rates.read(0, None, 5), None);
        // Half come back after 30 minutes: 1 an hour, watched for half an hour, an
        // eighth of the four intervals.
        for _ in 0..500 {
            rates.read(30 * MINUTE, Some(5), 6);
        }
        let raw = |r: &ReturnRates| r.returns[5] / r.exposure[5];
        let got = rates.read(30 * MINUTE, None, 5).unwrap();
        let want = raw(&rates) * raw(&rates) * 0.5 / WATCHED_INTERVALS;
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // The rest come back after 2 hours: watched long enough, the rate is whole.
        for _ in 0..500 {
            rates.read(120 * MINUTE, Some(5), 6);
        }
        let later = 20 * 60 * MINUTE;
        let got = rates.read(later, None, 5).unwrap();
        assert!(raw(&rates) * 20.0 >= WATCHED_INTERVALS);
        assert_eq!(got, raw(&rates));
    }
}
