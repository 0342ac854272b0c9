//! Selective (Feeding Frenzy, Silberstein et al., SIGMOD 2010): per (author, reader)
//! pair, push when the author's post rate times the cost of a push is below the
//! reader's read rate times the cost of a pull (times `push_threshold`, the paper's
//! knob); otherwise the reader pulls the author at read time.
//!
//! Rates are decayed counters (half-life one hour of the engine's clock); a reader's
//! read rate is the rate at which readers with the same evidence come back, measured
//! over the population (`returns`), discounted while the table is young. Costs are
//! measured by the engine in the unit of its cost accounting (id bytes touched per
//! entry pushed, per author's list pulled; see `MeasuredCosts`). A reader's own
//! notices are a pair like any other: an author who posts much and reads little pulls
//! its own.
//!
//! One refinement of the rule, from the same accounting: a reader who reads more often
//! than its whole feed fills a page is shown every entry, which costs 8 bytes pulled
//! from a list or 4 written plus 4 read back from the ring; pushing every pair then
//! costs less than pulling any, and such a reader gets everything pushed.
//!
//! Decisions are taken on classes, not raw values: each user's post and read rates and
//! the global cost ratio are quantised to half-octaves, and a class changes through
//! `Signals::set_class` so that decisions made under the old class are pulled.

use std::sync::atomic::{AtomicU64, Ordering};

use super::returns::{BUCKETS, ReturnRates};
use super::{Class, Ctx, FanoutStrategy, KnownRates, MeasuredCosts, PairRead, Repair, push_pair};

/// Half-life of the rate counters.
const HALF_LIFE_MS: f64 = 3_600_000.0;
/// The cost class before anything is measured: pulling a list reads at least one
/// 8-byte id, a push writes one 4-byte entry, so log2(pull / push) = 1: 2 in
/// half-octaves, around 64.
const PRIOR_COST_CLASS: u16 = 66;
/// How far (in half-octave classes) the measured cost ratio must be from the global
/// class before the class moves: two octaves.
const GLOBAL_HYSTERESIS: u16 = 4;
/// Rate classes: `round(2 * log2(rate_per_hour))`, offset so that 0 is "never".
const CLASS_OFFSET: f64 = 40.0;

pub(crate) struct Selective {
    /// `2 * log2(push_threshold)`: the knob in half-octaves (see `decide`).
    threshold_classes: f64,
    /// Per user: decayed post rate (f32 bits, events per hour) << 32 | last update (s).
    /// Allocated at the first signal (the engine does not know users_max here).
    post_rates: std::sync::OnceLock<Box<[AtomicU64]>>,
    read_rates: std::sync::OnceLock<Box<[AtomicU64]>>,
    /// Per reader: its feed rate (f32 bits) << 32 | reads until the next walk.
    feeds: std::sync::OnceLock<Box<[AtomicU64]>>,
    /// How soon readers come back, by the evidence of their counters.
    returns: parking_lot::Mutex<ReturnRates>,
    /// Every user's true rates, when given (research): they replace the estimates.
    known: std::sync::OnceLock<KnownRates>,
}

fn rate_class(per_hour: f64) -> u16 {
    if per_hour <= 0.0 {
        return 0;
    }
    (2.0 * per_hour.log2() + CLASS_OFFSET)
        .round()
        .clamp(1.0, 127.0) as u16
}

/// The rate a class stands for (the inverse of `rate_class`; `decide` works in
/// classes directly, the feed rate from `class_rates`).
fn class_rate(class: u16) -> f64 {
    if class == 0 {
        return 0.0;
    }
    2f64.powf((f64::from(class) - CLASS_OFFSET) / 2.0)
}

/// A class moves only when the rate is an octave (two classes) away from it: each move
/// makes readers recompute plans (and a climb records switches), so a rate wobbling at
/// a boundary must not flap.
fn settle(current: u16, measured: u16) -> u16 {
    if current.abs_diff(measured) >= 2 || current == 0 {
        measured.min(255)
    } else {
        current
    }
}

/// What one event adds to a counter (events per hour, see `bump`).
const ONE_EVENT: f64 = std::f64::consts::LN_2 * 3_600_000.0 / HALF_LIFE_MS;

/// Reads a counter must hold (decayed) before the reader counts as reading at all.
const READS_FOR_A_RATE: f64 = 3.0;

/// The read rate a reader's counter stands for, read just after one of its reads.
///
/// Right after an event a decayed counter holds the rate plus that event (for a
/// Poisson process the counter just before an event is distributed as at any time),
/// so the event is taken off. And a rate from one or two reads is noise: read rates
/// are skewed, most users who happened to read twice read rarely, and every push to a
/// user who does not read again is wasted. Until the counter holds
/// `READS_FOR_A_RATE` reads' worth the reader counts as not reading (its pairs pull).
/// The estimate until `ReturnRates` has a measure for readers with the reader's
/// evidence (then the measure replaces it).
fn read_rate_after_a_read(counter: f64) -> f64 {
    if counter > (READS_FOR_A_RATE - 0.5) * ONE_EVENT {
        counter - ONE_EVENT
    } else {
        0.0
    }
}

/// The evidence a read counter holds just after a read (`stored`, as stored): the
/// class of the rate of the reads before it (0: none), a bucket of `ReturnRates`.
fn evidence(stored: f64) -> usize {
    let before = stored - ONE_EVENT;
    if before < 1e-3 * ONE_EVENT {
        0
    } else {
        usize::from(rate_class(before)).min(BUCKETS - 1)
    }
}

/// The rate a counter word stores (see `bump`).
fn stored_rate(word: u64) -> f64 {
    f64::from(f32::from_bits((word >> 32) as u32))
}

/// Adds one event at `now_ms` to a decayed counter; returns the new rate per hour.
fn bump(cell: &AtomicU64, now_ms: u64) -> f64 {
    let word = cell.load(Ordering::Relaxed);
    let rate = stored_rate(word);
    let last_s = word & 0xffff_ffff;
    let now_s = now_ms / 1000;
    let elapsed_ms = now_s.saturating_sub(last_s) as f64 * 1000.0;
    let decayed = rate * 0.5f64.powf(elapsed_ms / HALF_LIFE_MS);
    // One event adds its share of an hour's rate: the counter converges to events per
    // hour under a steady rate.
    let next = decayed + ONE_EVENT;
    // Racy read-modify-write: a lost update only delays a class change.
    cell.store(
        (u64::from((next as f32).to_bits()) << 32) | (now_s & 0xffff_ffff),
        Ordering::Relaxed,
    );
    next
}

impl Selective {
    pub(crate) fn new(push_threshold: f64) -> Selective {
        Selective {
            threshold_classes: 2.0 * push_threshold.log2(),
            post_rates: std::sync::OnceLock::new(),
            read_rates: std::sync::OnceLock::new(),
            feeds: std::sync::OnceLock::new(),
            returns: parking_lot::Mutex::new(ReturnRates::new()),
            known: std::sync::OnceLock::new(),
        }
    }

    fn cells<'a>(
        lock: &'a std::sync::OnceLock<Box<[AtomicU64]>>,
        ctx: &Ctx<'_>,
    ) -> &'a [AtomicU64] {
        lock.get_or_init(|| {
            (0..ctx.graph.config().users_max)
                .map(|_| AtomicU64::new(0))
                .collect()
        })
    }

    /// The pair's decision from its classes: post class of the author (high byte of
    /// the author's word), read class of the reader (low byte of the reader's word),
    /// and the cost ratio class (global word).
    ///
    /// A reader that sees its whole feed (`SEES_ALL`) gets every pair pushed. Otherwise
    /// the rule is `post < read * pull_over_push * push_threshold`; every factor is a
    /// power of two in half-octave classes, so it is compared in classes (a few integer
    /// operations: workers ask it at every delivery, reads for every followed author).
    fn decide(&self, author: Class, reader: Class, cost: Class) -> bool {
        let post = author.class >> 8;
        let read = reader.class & READ_CLASS;
        if read == 0 {
            return false; // never reads: nothing is cheaper than pulling
        }
        if reader.class & SEES_ALL != 0 {
            return true;
        }
        if post == 0 {
            return true; // never posts
        }
        // log2(post) = (post - 40) / 2, log2(read) likewise, log2(pull / push) =
        // (cost - 64) / 2: in half-octaves, post < read + (cost - 64) + 2 log2(threshold).
        f64::from(post) < f64::from(read) + f64::from(cost.class) - 64.0 + self.threshold_classes
    }
}

/// The read class in a user's word (low byte, below `SEES_ALL`).
const READ_CLASS: u16 = 0x7f;
/// Set in a user's word while the reader reads more often than its feed fills a page:
/// every entry it is shown is read once either way (4 bytes written and 4 read from
/// the ring, against 8 from a list), so pushing every pair costs less than pulling.
const SEES_ALL: u16 = 0x80;
/// The page a reader is taken to read.
const PAGE: f64 = 20.0;
/// Reads between two walks of a reader's followed authors for its feed rate.
const FEED_REFRESH_READS: u64 = 16;

/// The rate (per hour) each post class stands for; class 0 is "never posts".
fn class_rates() -> &'static [f64; 128] {
    static RATES: std::sync::OnceLock<[f64; 128]> = std::sync::OnceLock::new();
    RATES.get_or_init(|| std::array::from_fn(|c| class_rate(c as u16)))
}

impl Selective {
    /// The post rate of `reader`'s feed (its own and its followed authors', from their
    /// post classes). A walk of everyone it follows, so it is cached per reader and
    /// walked again every `FEED_REFRESH_READS` reads (a stale value only delays the
    /// `SEES_ALL` flag; decisions read the flag from the word, consistently).
    fn feed_rate(&self, ctx: &Ctx<'_>, reader: u32) -> f64 {
        let cell = &Self::cells(&self.feeds, ctx)[reader as usize];
        let word = cell.load(Ordering::Relaxed);
        let reads_left = word & 0xffff_ffff;
        if reads_left > 0 {
            cell.store(word - 1, Ordering::Relaxed);
            return f64::from(f32::from_bits((word >> 32) as u32));
        }
        let rates = class_rates();
        let authors = std::iter::once(reader)
            .chain(ctx.graph.following(crate::ids::UserId(reader)).map(|a| a.0));
        let feed: f64 = match self.known.get() {
            Some(known) => authors.map(|a| known.posts_per_hour[a as usize]).sum(),
            None => authors
                .map(|a| rates[usize::from((ctx.signals.user(a).class >> 8).min(127))])
                .sum(),
        };
        cell.store(
            (u64::from((feed as f32).to_bits()) << 32) | FEED_REFRESH_READS,
            Ordering::Relaxed,
        );
        feed
    }

    /// A reader's read rate, estimated at its read at `now_ms` (see `on_read`).
    fn estimate_read_rate(&self, ctx: &Ctx<'_>, reader: u32, now_ms: u64) -> f64 {
        let cell = &Self::cells(&self.read_rates, ctx)[reader as usize];
        let previous = cell.load(Ordering::Relaxed);
        let rate = bump(cell, now_ms);
        // The population's measure for readers with this evidence, once its bucket
        // holds enough exposure (discounted while the table is young; see
        // `ReturnRates::read`); until then the reader's own counter, which counts it
        // as reading only after a few reads. (Two reads of one reader at once may both
        // count the return: the counter update is racy, see `bump`. Its new bucket
        // then keeps one reader too many for good, adding a reader-hour of exposure an
        // hour: a bias to lower rates, as rare as such races.)
        let came_before = (previous != 0).then(|| evidence(stored_rate(previous)));
        let measured =
            self.returns
                .lock()
                .read(now_ms, came_before, evidence(f64::from(rate as f32)));
        // Not the larger of the two: a reader's own few reads are noise the bucket's
        // rate has already averaged out (as a floor, a burst of reads by a reader who
        // then leaves keeps its pushes: 1.019x pull's cost cold at 0.1 reads a post,
        // against 1.013x without).
        measured.unwrap_or_else(|| read_rate_after_a_read(rate))
    }

    /// The reader itself and the authors it follows whose pair with `reader` pulls
    /// under the reader's class `before` and pushes under the read class `after`.
    fn turned(&self, ctx: &Ctx<'_>, reader: u32, before: Class, after: u16) -> Vec<u32> {
        let before = Class {
            class: before.class,
            since: 0,
        };
        let after = Class {
            class: after,
            since: 0,
        };
        let cost = ctx.signals.global();
        std::iter::once(reader)
            .chain(ctx.graph.following(crate::ids::UserId(reader)).map(|a| a.0))
            .filter(|&a| {
                let author = ctx.signals.user(a);
                !self.decide(author, before, cost) && self.decide(author, after, cost)
            })
            .collect()
    }
}

impl FanoutStrategy for Selective {
    fn push_to(&self, ctx: &Ctx<'_>, _id: u64, author: u32, reader: u32) -> bool {
        self.decide(
            ctx.signals.user(author),
            ctx.signals.user(reader),
            ctx.signals.global(),
        )
    }

    fn per_author_reads(&self) -> bool {
        true
    }

    fn pair(&self, ctx: &Ctx<'_>, author: u32, reader: u32) -> PairRead {
        let (a, r, c) = (
            ctx.signals.user(author),
            ctx.signals.user(reader),
            ctx.signals.global(),
        );
        if self.decide(a, r, c) {
            push_pair(&[a, r, c])
        } else {
            PairRead::Pull
        }
    }

    fn on_open(&self, ctx: &Ctx<'_>, _users: u32) {
        // Until the engine has measured both, a pull of one list costs two pushes.
        // No ring exists before the first read after open, so none needs repairing:
        // the change keeps the old ticket (a new one would make every reader's first
        // push pairs merge twice).
        let seen = ctx.signals.global();
        ctx.signals.set_class(None, seen, PRIOR_COST_CLASS, false);
    }

    fn on_post(&self, ctx: &Ctx<'_>, author: u32, now_ms: u64) {
        let rate = match self.known.get() {
            Some(known) => known.posts_per_hour[author as usize],
            None => bump(&Self::cells(&self.post_rates, ctx)[author as usize], now_ms),
        };
        let seen = ctx.signals.user(author);
        let word = seen.class;
        let post = settle(word >> 8, rate_class(rate));
        // Posting more only pulls more.
        let adds_pushes = post < word >> 8;
        let class = (post << 8) | (word & 0xff);
        if let Some(replaced) = ctx
            .signals
            .set_class(Some(author), seen, class, adds_pushes)
        {
            // Only readers whose pair with the author changed decision replan: some
            // followers, and the author for its own notices.
            let before = Class {
                class: replaced,
                since: 0,
            };
            let after = Class { class, since: 0 };
            let cost = ctx.signals.global();
            ctx.invalidate_followers(author, |reader| {
                let r = ctx.signals.user(reader);
                self.decide(before, r, cost) != self.decide(after, r, cost)
            });
            if self.decide(before, before, cost) != self.decide(after, after, cost) {
                ctx.signals.invalidate_plan(author);
            }
        }
    }

    fn on_read(&self, ctx: &Ctx<'_>, reader: u32, now_ms: u64, repair: &mut dyn Repair) {
        let seen = ctx.signals.user(reader);
        let word = seen.class;
        let estimate = match self.known.get() {
            Some(known) => known.reads_per_hour[reader as usize],
            None => self.estimate_read_rate(ctx, reader, now_ms),
        };
        let read = settle(word & READ_CLASS, rate_class(estimate));
        let was_seeing_all = word & SEES_ALL != 0;
        // Whether the reader's feed (its own and its followed authors' posts) fills
        // less than a page between two of its reads; with hysteresis: a reader seeing
        // all keeps it until the feed fills two pages.
        let feed = (read > 0).then(|| self.feed_rate(ctx, reader));
        let sees_all = feed
            .is_some_and(|feed| feed <= estimate * PAGE * if was_seeing_all { 2.0 } else { 1.0 });
        let class = (word & 0xff00) | read | if sees_all { SEES_ALL } else { 0 };
        if read <= word & READ_CLASS && (was_seeing_all || !sees_all) {
            // Reading less, or no longer seeing the whole feed, only pulls more: no
            // pair needs repairing.
            if ctx
                .signals
                .set_class(Some(reader), seen, class, false)
                .is_some()
            {
                // Only the reader's own pairs read its read class.
                ctx.signals.invalidate_plan(reader);
            }
            return;
        }
        // Reading more (or now seeing the whole feed) turns some pairs to push. While
        // the change is under way the reader's reads pull every pair; the workers
        // push by the new class at once. The turned pairs push from now on: the ring
        // lacks what their authors posted before, but for what this page pulled and
        // the next is expected to show again, which the repair keeps; reads pull the
        // rest when a page reaches it (no merge). The change keeps the old ticket:
        // nothing to repair.
        let Some(old) = ctx.signals.begin_class(Some(reader), seen, class) else {
            return;
        };
        let turned = self.turned(ctx, reader, old, class);
        // The reader's next page shows again what this one showed, but for the
        // entries its feed adds meanwhile (about feed / read rate of them).
        let keep = feed.map_or(0, |feed| (PAGE - feed / estimate).clamp(0.0, PAGE) as usize);
        repair.push_from_now(&turned, keep);
        ctx.signals.end_class(Some(reader), class, old.since);
        ctx.signals.invalidate_plan(reader);
    }

    fn know_rates(&self, rates: KnownRates) -> Result<(), KnownRates> {
        self.known.set(rates)
    }

    fn on_costs(&self, ctx: &Ctx<'_>, costs: MeasuredCosts) {
        if !(costs.push_bytes > 0.0 && costs.pull_bytes > 0.0) {
            return;
        }
        let measured = (2.0 * (costs.pull_bytes / costs.push_bytes).log2() + 64.0)
            .round()
            .clamp(0.0, 128.0) as u16;
        // Every reader's pairs read this word, and a move that pushes more makes
        // every reader repair its ring: move it only when the measured ratio is two
        // octaves away (the ratio drifts with the workload's mix as it warms up).
        let seen = ctx.signals.global();
        let current = seen.class;
        let cost = if current.abs_diff(measured) >= GLOBAL_HYSTERESIS || current == 0 {
            measured
        } else {
            current
        };
        // A dearer pull pushes more.
        ctx.signals.set_class(None, seen, cost, cost > current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip_to_half_octaves() {
        for rate in [0.5, 1.0, 3.0, 100.0, 5000.0] {
            let back = class_rate(rate_class(rate));
            assert!(back / rate < 1.19 && rate / back < 1.19, "{rate} -> {back}");
        }
        assert_eq!(rate_class(0.0), 0);
        assert_eq!(class_rate(0), 0.0);
    }

    #[test]
    fn decisions_in_classes_match_the_rule_in_rates() {
        for threshold in [0.25, 1.0, 3.0] {
            let s = Selective::new(threshold);
            for post in (0..120u16).step_by(3) {
                for read in (0..120u16).step_by(5) {
                    for cost in [60u16, 64, 68, 75] {
                        let class = |c: u16| Class { class: c, since: 0 };
                        let got = s.decide(class(post << 8), class(read), class(cost));
                        let (p, r) = (class_rate(post), class_rate(read));
                        let ratio = 2f64.powf((f64::from(cost) - 64.0) / 2.0);
                        let want = p < r * ratio * threshold;
                        let margin = (p - r * ratio * threshold).abs() / p.max(1e-9);
                        if margin > 1e-9 {
                            assert_eq!(
                                got, want,
                                "post {post} read {read} cost {cost} x{threshold}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_reader_seeing_its_whole_feed_gets_every_pair_pushed() {
        let s = Selective::new(1.0);
        let class = |c: u16| Class { class: c, since: 0 };
        let cost = class(66);
        // The loudest author against a slow reader: pulled, unless the reader sees all.
        assert!(!s.decide(class(120 << 8), class(30), cost));
        assert!(s.decide(class(120 << 8), class(30 | SEES_ALL), cost));
        // A reader that does not read pulls, whatever its flag says.
        assert!(!s.decide(class(40 << 8), class(SEES_ALL), cost));
    }

    #[test]
    fn a_steady_rate_converges() {
        let cell = AtomicU64::new(0);
        let mut rate = 0.0;
        // One event a minute for ten hours: about 60 an hour.
        for minute in 0..600u64 {
            rate = bump(&cell, minute * 60_000);
        }
        assert!((50.0..70.0).contains(&rate), "{rate}");
    }
}
