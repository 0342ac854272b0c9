//! Timeline strategies: who gets a notice pushed into their stored timeline, and what a
//! read must pull instead. One trait, one file per strategy.
//!
//! The contract between a strategy's two halves: for every pair (author, reader) that
//! [`FanoutStrategy::pair`] calls push, the reader's stored ring holds every notice of
//! the author at or above the ring's floor, once delivered, provided the ring was
//! rebuilt after the pair's `since` (or repaired); but if the pair was switched to push
//! by the reader's own change ([`Repair::push_from_now`]), only the notices from the
//! switch on (lowered as reads keep what they pulled below it), and reads pull the
//! older ones. Pairs it calls pull are pulled at read time.
//! Decisions change over time (a rate crosses a threshold); a change goes through
//! [`Signals::set_class`], which marks the user's pairs "pull" while it is under way and
//! then records the change's ticket. A reader whose ring was repaired before the newest
//! ticket of its push pairs merges the changed authors again, or rebuilds the ring (with
//! the current decisions), before trusting it, so a read never trusts the ring for a
//! notice a worker decided on under an old rule.

mod hybrid;
mod lossy;
mod pull;
mod push;
mod returns;
mod selective;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::graph::FollowGraph;

pub(crate) use hybrid::Hybrid;
pub(crate) use lossy::Lossy;
pub(crate) use pull::Pull;
pub(crate) use push::Push;
pub(crate) use selective::Selective;

/// Which timeline strategy an engine runs (`Config::strategy`). Every strategy but
/// `Lossy` pages exactly the same ids; they differ in what a post and a read cost.
///
/// ```
/// use feedcore::{Config, Engine, Strategy};
/// let dir = tempfile::tempdir()?;
/// let config = Config {
///     strategy: Strategy::Hybrid { followers_min: 10_000 },
///     ..Default::default()
/// };
/// let engine = Engine::open(dir.path(), config)?;
/// assert_eq!(engine.config().strategy.name(), "hybrid");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Strategy {
    /// Push every notice to every active follower; a read reads the stored timeline
    /// (Twitter 2012, Mastodon).
    #[default]
    Push,
    /// Push nothing; a read merges the followed authors' newest notices (GNU social,
    /// Pleroma, Bluesky's open-source AppView).
    Pull,
    /// Push unless the author has at least `followers_min` followers; a read merges
    /// the stored timeline with the followed big authors (Twitter's celebrity rule).
    Hybrid {
        /// Authors with this many followers or more are pulled. Default 10,000.
        followers_min: u32,
    },
    /// Per (author, reader) pair: push when the author's post rate times the cost of a
    /// push is below the reader's read rate times the cost of a pull times
    /// `push_threshold` (Feeding Frenzy, SIGMOD 2010). Rates are decayed counters,
    /// costs are measured by the engine.
    Selective {
        /// The paper's knob: above 1 pushes more, below 1 pulls more. Default 1.
        push_threshold: f64,
    },
    /// Push, but a reader following F authors keeps each delivery with probability
    /// min(1, K / F), K = `follows_reasonable` (Bluesky 2025); the draw is a hash of
    /// (notice, reader). Reads read the stored timeline only: pages are a subset of
    /// pull's.
    Lossy {
        /// K. Default 2000.
        follows_reasonable: u32,
    },
}

impl Strategy {
    /// The name used on the command line and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Push => "push",
            Strategy::Pull => "pull",
            Strategy::Hybrid { .. } => "hybrid",
            Strategy::Selective { .. } => "selective",
            Strategy::Lossy { .. } => "lossy",
        }
    }

    pub(crate) fn build(&self) -> Box<dyn FanoutStrategy> {
        match *self {
            Strategy::Push => Box::new(Push),
            Strategy::Pull => Box::new(Pull),
            Strategy::Hybrid { followers_min } => Box::new(Hybrid { followers_min }),
            Strategy::Selective { push_threshold } => Box::new(Selective::new(push_threshold)),
            Strategy::Lossy { follows_reasonable } => Box::new(Lossy { follows_reasonable }),
        }
    }
}

/// Every user's true rates, given to the selective strategy in place of its online
/// estimates (see [`crate::Engine::set_known_rates`]): for research, what the
/// Feeding Frenzy rule costs when nothing has to be estimated.
#[derive(Clone, Debug, PartialEq)]
pub struct KnownRates {
    /// Per user (indexed by user id): notices posted per hour of the engine's clock.
    pub posts_per_hour: Vec<f64>,
    /// Per user: home-timeline reads per hour of the engine's clock.
    pub reads_per_hour: Vec<f64>,
}

/// The since-part of a class word that means "a change is under way: pull everything".
pub(crate) const SINCE_ALL: u64 = (1 << 48) - 1;

/// What strategies decide from: a class word per user and one global word, each
/// `(class << 48) | since`, where `since` is the ticket of the change that set the class
/// (see [`Signals::set_class`]).
pub(crate) struct Signals {
    words: Box<[AtomicU64]>,
    global: AtomicU64,
    /// Hands out change tickets (see `set_class`).
    tickets: AtomicU64,
    /// Per reader: the ticket its ring was last rebuilt for (see the module comment).
    /// Set by the rebuilding reader; only grows in effect (a rebuild stores what it
    /// planned for, and plans only grow).
    repaired: Box<[AtomicU64]>,
    /// Per reader: a counter raised after any change to what the reader's plan (which
    /// followed authors it pulls) is computed from: a class word of an author it
    /// follows, its own word, the authors it follows. A plan computed after reading
    /// the counter stays valid while the counter has not moved (see `PlanKey`).
    /// Empty for strategies that plan nothing.
    plan_gens: Box<[AtomicU64]>,
    /// Raised after each change of the global word (every plan reads it).
    global_gen: AtomicU64,
}

/// What a reader's plan was computed under: equal keys, same plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlanKey {
    reader: u64,
    global: u64,
}

/// A class word, unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Class {
    pub(crate) class: u16,
    pub(crate) since: u64,
}

impl Class {
    /// The word this class was read from.
    fn word(self) -> u64 {
        (u64::from(self.class) << 48) | self.since
    }

    fn of(word: u64) -> Class {
        Class {
            class: (word >> 48) as u16,
            since: word & SINCE_ALL,
        }
    }
}

impl Signals {
    /// Words for `users` users; `plans` when the strategy plans reads per author
    /// (then each reader's plan can be cached, see `plan_key`).
    pub(crate) fn new(users: u32, plans: bool) -> Signals {
        Signals {
            words: (0..users).map(|_| AtomicU64::new(0)).collect(),
            global: AtomicU64::new(0),
            tickets: AtomicU64::new(0),
            repaired: (0..users).map(|_| AtomicU64::new(0)).collect(),
            plan_gens: (0..if plans { users } else { 0 })
                .map(|_| AtomicU64::new(0))
                .collect(),
            global_gen: AtomicU64::new(0),
        }
    }

    /// The key a plan for `reader` computed from now on is valid under. Read it
    /// before reading the words the plan is computed from: a change stores its word
    /// before it raises the counters (both SeqCst), so a plan that read an old word
    /// carries an old key.
    pub(crate) fn plan_key(&self, reader: u32) -> Option<PlanKey> {
        Some(PlanKey {
            reader: self.plan_gens.get(reader as usize)?.load(Ordering::SeqCst),
            global: self.global_gen.load(Ordering::SeqCst),
        })
    }

    /// Invalidates `reader`'s cached plan (it followed or unfollowed someone, or its
    /// or a followed author's word changed).
    pub(crate) fn invalidate_plan(&self, reader: u32) {
        if let Some(counter) = self.plan_gens.get(reader as usize) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn repaired(&self, reader: u32) -> u64 {
        self.repaired[reader as usize].load(Ordering::SeqCst)
    }

    pub(crate) fn set_repaired(&self, reader: u32, since: u64) {
        self.repaired[reader as usize].fetch_max(since, Ordering::SeqCst);
    }

    pub(crate) fn user(&self, user: u32) -> Class {
        Class::of(self.words[user as usize].load(Ordering::SeqCst))
    }

    pub(crate) fn global(&self) -> Class {
        Class::of(self.global.load(Ordering::SeqCst))
    }

    /// Moves `user` (or the global word, for `None`) to `class`. One change at a time
    /// per word: the word first says "under way" (readers pull the user's pairs), then
    /// it gets its class and a fresh ticket from a counter that only grows. A reader
    /// trusts its ring for a push pair only once it was rebuilt (with the decisions of
    /// the moment) after the newest ticket of the words the pair's decision reads; the
    /// ticket, not a notice id, so two changes with no post between them still differ.
    /// A change that finds another under way is skipped (retried at the next signal).
    ///
    /// `adds_pushes` false promises that the change turns no pair from pull to push
    /// (decisions are monotone in each word: a higher post rate, a lower read rate, a
    /// cheaper pull only ever pull more). Such a change keeps the word's old ticket:
    /// a pair still pushed was pushed all along, so rings stay trusted and readers
    /// repair nothing. `seen` is the word as the caller read it, and computed `class`
    /// and `adds_pushes` from: if the word moved since, the change is skipped (else it
    /// could undo a concurrent change without a ticket). Returns the class it
    /// replaced, if it changed the word; the caller then invalidates the cached plans
    /// whose decisions it changed (a change of the global word invalidates every plan
    /// here).
    pub(crate) fn set_class(
        &self,
        user: Option<u32>,
        seen: Class,
        class: u16,
        adds_pushes: bool,
    ) -> Option<u16> {
        let old = self.begin_class(user, seen, class)?;
        let since = if adds_pushes {
            self.new_ticket()
        } else {
            old.since
        };
        self.end_class(user, class, since);
        Some(old.class)
    }

    fn word(&self, user: Option<u32>) -> &AtomicU64 {
        match user {
            Some(u) => &self.words[u as usize],
            None => &self.global,
        }
    }

    /// The first half of a change: the word takes `class`, marked under way (reads
    /// pull every pair that reads it; workers decide with the new class at once).
    /// Returns `seen`, the class and ticket it replaced; `None` when the class is
    /// already `class`, another change is under way, or the word is no longer `seen`.
    pub(crate) fn begin_class(&self, user: Option<u32>, seen: Class, class: u16) -> Option<Class> {
        if seen.class == class || seen.since == SINCE_ALL {
            return None;
        }
        let marked = (u64::from(class) << 48) | SINCE_ALL;
        self.word(user)
            .compare_exchange(seen.word(), marked, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        Some(seen)
    }

    /// A ticket newer than every ticket handed out before.
    pub(crate) fn new_ticket(&self) -> u64 {
        (self.tickets.fetch_add(1, Ordering::SeqCst) + 1).min(SINCE_ALL - 1)
    }

    /// The second half of a change begun with [`Signals::begin_class`]: the word
    /// gets its ticket `since` (the old one when no pair needs repairing; see
    /// `set_class`).
    pub(crate) fn end_class(&self, user: Option<u32>, class: u16, since: u64) {
        self.word(user)
            .store((u64::from(class) << 48) | since, Ordering::SeqCst);
        if user.is_none() {
            self.global_gen.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Everything a strategy may look at.
pub(crate) struct Ctx<'a> {
    pub(crate) signals: &'a Signals,
    pub(crate) graph: &'a FollowGraph,
}

impl Ctx<'_> {
    /// Invalidates the cached plans of `author`'s followers whose pair with the
    /// author `flipped` says changed decision (a walk of the followers, as a post's
    /// fan-out is; classes move only by an octave or more, so this is rare). A reader
    /// that starts following the author later invalidates its own plan by following.
    pub(crate) fn invalidate_followers(&self, author: u32, mut flipped: impl FnMut(u32) -> bool) {
        if self.signals.plan_gens.is_empty() {
            return;
        }
        for follower in self.graph.followers(crate::ids::UserId(author)) {
            if flipped(follower.0) {
                self.signals.invalidate_plan(follower.0);
            }
        }
    }
}

/// A timeline strategy: the push half (workers) and the pull half (reads).
pub(crate) trait FanoutStrategy: Send + Sync {
    /// Whether posts are pushed at all (pull: no; reads merge everything).
    fn pushes(&self) -> bool {
        true
    }

    /// Whether `reader` gets notice `id` of `author` pushed into its stored timeline.
    fn push_to(&self, ctx: &Ctx<'_>, id: u64, author: u32, reader: u32) -> bool;

    /// Whether a read must ask [`FanoutStrategy::pair`] for each followed author
    /// (false: every pair is push, since the beginning).
    fn per_author_reads(&self) -> bool {
        false
    }

    /// How a read by `reader` gets `author`'s notices.
    fn pair(&self, _ctx: &Ctx<'_>, _author: u32, _reader: u32) -> PairRead {
        PairRead::Push { since: 0 }
    }

    /// Whether the stored timeline is a sample of the candidates (lossy): rules that
    /// look at neighbouring entries then look at the complete sequence.
    fn samples(&self) -> bool {
        false
    }

    /// The engine opened: classify whatever needs classifying (all users exist).
    fn on_open(&self, _ctx: &Ctx<'_>, _users: u32) {}

    /// A post by `author` was accepted (`next_id` gives the next notice id).
    fn on_post(&self, _ctx: &Ctx<'_>, _author: u32, _now_ms: u64) {}

    /// `reader` read its home timeline; `repair` switches its pairs to push.
    fn on_read(&self, _ctx: &Ctx<'_>, _reader: u32, _now_ms: u64, _repair: &mut dyn Repair) {}

    /// `author`'s follower count may have changed.
    fn on_followers_changed(&self, _ctx: &Ctx<'_>, _author: u32) {}

    /// Measured costs (see [`MeasuredCosts`]), every 1,024 posts.
    fn on_costs(&self, _ctx: &Ctx<'_>, _costs: MeasuredCosts) {}

    /// Takes every user's true rates in place of estimates; `Err` with the rates back
    /// when the strategy estimates none, or already took some.
    fn know_rates(&self, rates: KnownRates) -> Result<(), KnownRates> {
        Err(rates)
    }
}

/// What a read offers its strategy when the reader's own change turns pairs to push.
pub(crate) trait Repair {
    /// The pairs of the reader with `authors` push from now on: the stored timeline
    /// holds each author's notices from a switch on (the log's next id, or lower when
    /// this read's page pulled the author's list and kept part of it), and reads pull
    /// the older ones (only when a page reaches them, keeping what they pulled). Call
    /// it after the reader's word took its new class (under way), so every notice not
    /// yet counted in the log's length, or not yet in its author's list, is decided
    /// under the new rule (and reaches the ring by its worker, not by a pull).
    /// `keep`: how many of this page's first candidates the reader's next page is
    /// expected to show again; what the page pulled of `authors` among them goes into
    /// the stored timeline.
    fn push_from_now(&mut self, authors: &[u32], keep: usize);
}

/// What a push and a pull cost, measured by the engine in the unit of its cost
/// accounting (id bytes touched, see `EngineStats::cost_bytes_touched`); 0 for what
/// has not happened yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MeasuredCosts {
    /// Per entry written into a stored timeline: the write and its share of the
    /// ring reads that read it back.
    pub(crate) push_bytes: f64,
    /// Per author's list a read pulls that has anything: its head, and the entries
    /// the page takes from it.
    pub(crate) pull_bytes: f64,
}

/// How a read gets one author's notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PairRead {
    /// Pull them all (at or above the ring's floor) from the author's list.
    Pull,
    /// Pull them all for now: a change of a word the decision reads is under way (a
    /// read plan that saw this is not cached).
    PullForNow,
    /// They are pushed; the ring is trusted for the pair once it was rebuilt after the
    /// change with ticket `since` (below the pair's switch, if it has one, reads pull:
    /// see the module comment).
    Push { since: u64 },
}

/// A push pair's read from the class words its decision used: `since` is the newest of
/// theirs; a pair with a change under way is pulled.
pub(crate) fn push_pair(classes: &[Class]) -> PairRead {
    let since = classes.iter().map(|c| c.since).max().unwrap_or(0);
    if since == SINCE_ALL {
        PairRead::PullForNow
    } else {
        PairRead::Push { since }
    }
}
