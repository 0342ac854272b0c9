//! The `Engine`: opening a store, relations, posting, reading, flushing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::config::Config;
use super::federation::{self, RemoteFollowers};
use super::late::{Late, LateLists};
use super::read::{CachedPlan, check_notice_page};
use super::stats::EngineStats;
use crate::dirlock::DirLock;
use crate::error::{Error, IoContext, Result};
use crate::fanout::strategy::MeasuredCosts;
use crate::fanout::strategy::{Ctx, FanoutStrategy, Signals};
use crate::fanout::{Delivery, Job, Pool};
use crate::graph::FollowGraph;
use crate::graph::relations::Relations;
use crate::ids::{NoticeId, UserId};
use crate::log::NoticeLog;
use crate::notice::{NewNotice, NoticeRef, Scope};
use crate::outbox::Outbox;
use crate::timeline::{IdLists, Page, TimelinePage, Timelines};

/// Everything the engine's threads share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) log: NoticeLog,
    pub(crate) graph: FollowGraph,
    pub(crate) timelines: Timelines,
    /// Each author's notices (the user stream; the source of pulls and rebuilds).
    pub(crate) by_author: IdLists,
    /// The notices that mention each user.
    pub(crate) mentions: IdLists,
    /// The registry of groups, lists and tags, and their relation stores.
    pub(crate) relations: Relations,
    /// Each group's notices (its stream, and the source of its members' pulls).
    pub(crate) by_group: IdLists,
    /// Each tag's notices.
    pub(crate) by_tag: IdLists,
    /// Two lists: every public notice (`PUBLIC`), and those without a uri (`LOCAL`).
    pub(crate) public: IdLists,
    /// The late notices of each stream (see `late.rs`): in none of the lists above.
    pub(crate) late: LateLists,
    /// Delivery lag in microseconds, recorded when every worker finished a post.
    lag_us: Mutex<Histogram<u64>>,
    pub(crate) rebuilds: AtomicU64,
    posts: AtomicU64,
    pub(crate) strategy: Box<dyn FanoutStrategy>,
    pub(crate) signals: Signals,
    /// Each reader's last read plan (see `read/plan.rs`); empty for strategies that plan
    /// nothing.
    pub(crate) plans: Box<[ArcSwapOption<CachedPlan>]>,
    /// Per reader: followed authors whose pair turned to push at one of its reads,
    /// and the first notice id pushed under the new rule (see
    /// `Repair::push_from_now`); empty for strategies that plan nothing.
    pub(crate) switches: Box<[ArcSwapOption<Switches>]>,
    /// Cost accounting of the strategies (see `EngineStats`).
    costs: Costs,
    /// Federation's delivery outbox.
    pub(crate) outbox: Outbox,
    /// Remote follower counts of local users.
    pub(crate) remote: RemoteFollowers,
}

/// The list of `Shared::public` with every public notice.
pub(crate) const PUBLIC: u32 = 0;
/// The list of `Shared::public` with the public notices written here (no uri).
pub(crate) const LOCAL: u32 = 1;

/// A reader's switches to push: (author, first notice id pushed), sorted by author.
pub(crate) type Switches = Box<[(u32, u64)]>;

/// Work counters; reads add theirs once per read, workers once per chunk.
#[derive(Default)]
struct Costs {
    author_ids: AtomicU64,
    merge_steps: AtomicU64,
    ring_ids: AtomicU64,
    /// Lists pulled by reads serving a page that gave at least one id, and the ids
    /// those pulls read (not the repairs': the cost of a pull, see `measured_bytes`).
    page_lists: AtomicU64,
    page_pull_ids: AtomicU64,
    /// Entries written into rings by rebuilds and merges (deliveries are the pool's).
    merged: AtomicU64,
    /// Moving averages (f64 bits): nanoseconds per push delivery, per pulled author.
    push_ns: AtomicU64,
    pull_ns: AtomicU64,
}

/// Moves a moving average (f64 bits in `cell`) a sixteenth of the way to `sample`.
fn ewma(cell: &AtomicU64, sample: f64) {
    let old = f64::from_bits(cell.load(Ordering::Relaxed));
    let new = if old == 0.0 {
        sample
    } else {
        old + (sample - old) / 16.0
    };
    cell.store(new.to_bits(), Ordering::Relaxed);
}

/// How a notice joins a stream's list: `id` into the id list, or, when it is late, its
/// place into the stream's list of late notices.
fn listing<'a>(
    log: &'a NoticeLog,
    late: &'a LateLists,
    id: u64,
) -> impl Fn(&IdLists, Late, u32) + 'a {
    let order = log.order();
    let pos = order.is_late(id).then(|| order.pos(id));
    move |lists, kind, slot| match pos {
        Some(pos) => late.add(kind, slot, pos),
        None => lists.add(slot, id),
    }
}

impl Shared {
    /// Checks a page request of a notice stream (see `check_notice_page`).
    pub(crate) fn check_page(&self, page: &Page) -> Result<usize> {
        check_notice_page(page, self.config.page_limit_max, self.log.order())
    }

    pub(crate) fn strategy_ctx(&self) -> Ctx<'_> {
        Ctx {
            signals: &self.signals,
            graph: &self.graph,
        }
    }

    pub(crate) fn add_read_cost(&self, cost: super::read::ReadCost) {
        self.costs
            .author_ids
            .fetch_add(cost.author_ids, Ordering::Relaxed);
        self.costs
            .merge_steps
            .fetch_add(cost.merge_steps, Ordering::Relaxed);
        self.costs
            .ring_ids
            .fetch_add(cost.ring_ids, Ordering::Relaxed);
    }

    /// Adds the cost of a read serving a page (`add_read_cost`), and counts its pulls
    /// as what a pull costs.
    pub(crate) fn add_page_cost(&self, cost: super::read::ReadCost) {
        self.add_read_cost(cost);
        self.costs
            .page_lists
            .fetch_add(cost.lists_read, Ordering::Relaxed);
        self.costs
            .page_pull_ids
            .fetch_add(cost.author_ids, Ordering::Relaxed);
    }

    /// Counts entries a rebuild or a merge wrote into a ring.
    pub(crate) fn add_merged(&self, entries: u64) {
        self.costs.merged.fetch_add(entries, Ordering::Relaxed);
    }

    /// The costs the strategies weigh, measured in the unit of the accounting (id
    /// bytes touched) since open: a push writes a 4-byte entry that reads later read
    /// from the ring (so its cost is 4 bytes plus its share of the ring reads); a pull
    /// reads 8-byte ids from each list that has any (the head, and the entries the
    /// page takes from it). Each is 0 until it has happened.
    fn measured_bytes(&self, deliveries: u64) -> MeasuredCosts {
        let written = deliveries + self.costs.merged.load(Ordering::Relaxed);
        let ring = self.costs.ring_ids.load(Ordering::Relaxed);
        let lists = self.costs.page_lists.load(Ordering::Relaxed);
        let ids = self.costs.page_pull_ids.load(Ordering::Relaxed);
        let per = |bytes: u64, count: u64| {
            if count == 0 {
                0.0
            } else {
                bytes as f64 / count as f64
            }
        };
        MeasuredCosts {
            push_bytes: per(4 * (written + ring), written),
            pull_bytes: per(8 * ids, lists),
        }
    }

    pub(crate) fn note_pull_ns(&self, ns: f64) {
        ewma(&self.costs.pull_ns, ns);
    }

    fn followers_changed(&self, users: &[UserId]) {
        let ctx = self.strategy_ctx();
        for u in users {
            self.strategy.on_followers_changed(&ctx, u.0);
        }
    }
}

impl Delivery for Shared {
    fn graph(&self) -> &FollowGraph {
        &self.graph
    }

    fn members(&self) -> &FollowGraph {
        &self.relations.members
    }

    fn tag_followers(&self) -> &FollowGraph {
        &self.relations.tags
    }

    fn deliver(&self, job: &Job, users: &[u32], stream: bool) -> u64 {
        let started = std::time::Instant::now();
        let now = self.config.clock.now_ms();
        let window = self.config.active_window.as_millis() as u64;
        let ctx = self.strategy_ctx();
        let delivered = self.timelines.deliver(users, job.id, |user, state| {
            if let Some(addressees) = &job.addressees
                && user != job.author
                && addressees.binary_search(&user).is_err()
            {
                return false;
            }
            if !state.fresh() {
                return false; // rebuilt at the next read
            }
            if !state.active(now, window) {
                // Gone quiet: stop delivering and give the memory back.
                self.timelines.make_stale_and_free(user, state);
                return false;
            }
            // Group and tag notices reach every member and follower: the strategies
            // decide only between an author and the author's followers.
            stream || self.strategy.push_to(&ctx, job.id, job.author, user)
        });
        if users.len() >= 64 {
            ewma(
                &self.costs.push_ns,
                started.elapsed().as_nanos() as f64 / users.len() as f64,
            );
        }
        delivered
    }

    fn finished(&self, job: &Job) {
        let lag = job.enqueued.elapsed().as_micros() as u64;
        let _ = self.lag_us.lock().record(lag.max(1));
    }
}

/// The facade a server embeds: notices, relations, home timelines, fan-out.
///
/// ```
/// use feedcore::{Config, Engine, NewNotice, Page, UserId};
/// let dir = tempfile::tempdir()?;
/// let engine = Engine::open(dir.path(), Config { users_max: 1000, ..Default::default() })?;
/// engine.follow(UserId(2), UserId(1))?;
/// let id = engine.post(NewNotice { author: UserId(1), body: "hello".into(), ..Default::default() })?;
/// engine.flush()?;
/// let page = engine.home_timeline(UserId(2), Page::latest(20))?;
/// assert_eq!(page.ids, vec![id]);
/// assert_eq!(engine.notice(id).unwrap().body(), "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine {
    // Field order is drop order: the workers stop before what they deliver into goes.
    pub(super) pool: Pool,
    pub(super) shared: Arc<Shared>,
    dir: PathBuf,
    _lock: DirLock,
}

impl Engine {
    /// The state behind the engine, for the read path's unit tests.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Opens (or creates) the store in `dir`: the notice log in `dir/notices`, the
    /// follow graph in `dir/graph`, and beside it the registry of groups, lists and
    /// tags and their memberships. All recover from a crash as their own `open`
    /// does; the per-author, mention, group, tag and public lists are rebuilt from the
    /// log, and home timelines are rebuilt at each user's first read.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Engine> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let lock = DirLock::acquire(&dir)?;
        let mut log = NoticeLog::open(dir.join("notices"), config.log_config())?;
        log.set_clock(config.clock.clone());
        let graph = FollowGraph::open(dir.join("graph"), config.follow_graph_config())?;
        let relations = Relations::open(
            &dir.join("graph"),
            &config.graph_config(),
            config.remote_users_max,
        )?;
        let local = config.users_max;
        let remote = RemoteFollowers::count(&graph, &relations.registry, local);
        let (file, mut folded) = Outbox::open(&dir)?;
        folded.forget_unknown(relations.registry.servers(), local, log.len());
        let recovered = federation::recover(&log, &remote, local, &folded);
        let outbox = Outbox::build(
            file,
            folded,
            recovered,
            log.len(),
            config.durability,
            config.clock.now_ms(),
        )?;
        // Local users and remote accounts: the per-author lists and the strategies'
        // state cover both.
        let users = config.users_total();
        let by_author = IdLists::new(users);
        let mentions = IdLists::new(users);
        let by_group = IdLists::new(users);
        let by_tag = IdLists::new(users);
        let public = IdLists::new(2);
        let late = LateLists::default();
        for notice in log.iter_from(NoticeId(1)) {
            let author = notice.author().0;
            if author >= users {
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "{} in the log was written by user {author}, past users_max {users}",
                        notice.id()
                    ),
                });
            }
            let id = notice.id().0;
            let add = listing(&log, &late, id);
            add(&by_author, Late::Author, author);
            for m in notice.mentions().filter(|m| m.0 < users) {
                add(&mentions, Late::Mention, m.0);
            }
            for g in notice
                .groups()
                .filter(|g| g.0 < relations.registry.groups())
            {
                add(&by_group, Late::Group, g.0);
            }
            for tag in notice.tags() {
                // A tag whose registration a crash lost is registered again here.
                add(
                    &by_tag,
                    Late::Tag,
                    relations.registry.tag_or_register(tag, false)?,
                );
            }
            if notice.scope() == Scope::Public {
                add(&public, Late::Public, PUBLIC);
                if notice.uri().is_none() {
                    add(&public, Late::Public, LOCAL);
                }
            }
        }
        let strategy = config.strategy.build();
        let planned = strategy.pushes() && strategy.per_author_reads();
        let shared = Arc::new(Shared {
            timelines: Timelines::new(users, config.timeline_capacity),
            lag_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
            rebuilds: AtomicU64::new(0),
            posts: AtomicU64::new(0),
            strategy,
            signals: Signals::new(users, planned),
            plans: (0..if planned { users } else { 0 })
                .map(|_| ArcSwapOption::empty())
                .collect(),
            switches: (0..if planned { users } else { 0 })
                .map(|_| ArcSwapOption::empty())
                .collect(),
            costs: Costs::default(),
            outbox,
            remote,
            config,
            log,
            graph,
            by_author,
            mentions,
            relations,
            by_group,
            by_tag,
            public,
            late,
        });
        {
            let ctx = shared.strategy_ctx();
            shared.strategy.on_open(&ctx, users);
        }
        let pool = Pool::start(
            Arc::clone(&shared),
            shared.config.workers,
            shared.config.fanout_chunk,
        );
        Ok(Engine {
            pool,
            shared,
            dir,
            _lock: lock,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The follow graph, for queries (followers, counts, relations). Change relations
    /// through the engine's own methods ([`Engine::follow`] and the others): a change
    /// made on the graph directly reaches neither the stored timelines nor the
    /// strategies' read plans.
    pub fn graph(&self) -> &FollowGraph {
        &self.shared.graph
    }

    /// The notice log, for queries and iteration.
    pub fn log(&self) -> &NoticeLog {
        &self.shared.log
    }

    pub(super) fn user(&self, user: UserId) -> Result<u32> {
        if user.0 >= self.shared.config.users_max {
            return Err(Error::UnknownUser {
                user,
                users_max: self.shared.config.users_max,
            });
        }
        Ok(user.0)
    }

    /// `a` follows `b`; `b`'s newest notices join `a`'s home timeline at once.
    /// `Ok(false)` when `a` already followed `b`.
    pub fn follow(&self, a: UserId, b: UserId) -> Result<bool> {
        let new = self.relation(a, b, || self.shared.graph.follow(a, b))?;
        if new {
            self.shared.signals.invalidate_plan(a.0);
            self.shared.followers_changed(&[b]);
            self.shared.merge_author(a.0, b.0);
        }
        Ok(new)
    }

    /// `a` stops following `b`; `b`'s notices leave `a`'s home timeline at once.
    pub fn unfollow(&self, a: UserId, b: UserId) -> Result<bool> {
        let changed = self.relation(a, b, || self.shared.graph.unfollow(a, b))?;
        if changed {
            self.shared.signals.invalidate_plan(a.0);
            self.shared.followers_changed(&[b]);
        }
        Ok(changed)
    }

    /// `a` blocks `b`: follows both ways end, and neither sees the other's notices.
    pub fn block(&self, a: UserId, b: UserId) -> Result<bool> {
        let changed = self.relation(a, b, || self.shared.graph.block(a, b))?;
        if changed {
            // Follows between the two ended.
            self.shared.signals.invalidate_plan(a.0);
            self.shared.signals.invalidate_plan(b.0);
            self.shared.followers_changed(&[a, b]);
        }
        Ok(changed)
    }

    /// `a` lifts its block of `b`.
    pub fn unblock(&self, a: UserId, b: UserId) -> Result<bool> {
        self.relation(a, b, || self.shared.graph.unblock(a, b))
    }

    /// `a` mutes `b`: `a` no longer sees `b`'s notices (the follow stays).
    pub fn mute(&self, a: UserId, b: UserId) -> Result<bool> {
        self.relation(a, b, || self.shared.graph.mute(a, b))
    }

    /// `a` unmutes `b`.
    pub fn unmute(&self, a: UserId, b: UserId) -> Result<bool> {
        self.relation(a, b, || self.shared.graph.unmute(a, b))
    }

    /// Posts a notice: returns its id once it is durable as `Config::durability`
    /// says; delivery to the followers' home timelines, and to the members of its
    /// groups and the followers of its tags, runs behind (see [`Engine::flush`]). The
    /// groups are `group`, `groups` and those the body names as `!name` (a name no
    /// group has is left as text). A reply or repeat of a missing or deleted notice, a
    /// user at or past `users_max`, or a group never created is an error and nothing
    /// is written. Mentions may name remote accounts. A notice without a uri whose
    /// author has remote followers (and that is not addressed to its mentions alone)
    /// is recorded for delivery to their servers before this returns (see
    /// [`Engine::deliveries`]).
    pub fn post(&self, notice: NewNotice) -> Result<NoticeId> {
        self.user(notice.author)?;
        self.post_checked(notice)
    }

    /// [`Engine::post`] for a local author or a remote account.
    pub(super) fn post_checked(&self, mut notice: NewNotice) -> Result<NoticeId> {
        let author = self.any_user(notice.author)?;
        for &m in notice.mentions.iter().chain(&notice.reply_to_author) {
            self.any_user(m)?;
        }
        let groups = self.notice_groups(&mut notice)?;
        let tags = self.register_tags(&notice)?;
        let id = self.shared.log.append(&notice)?;
        // The lists first, then the fan-out: a rebuild that starts after a worker
        // skipped this notice finds it in the author's list (or its group's, or its
        // tag's).
        let s = &*self.shared;
        let add = listing(&s.log, &s.late, id.0);
        add(&s.by_author, Late::Author, author);
        for m in &notice.mentions {
            add(&s.mentions, Late::Mention, m.0);
        }
        for &g in &groups {
            add(&s.by_group, Late::Group, g);
        }
        for &t in &tags {
            add(&s.by_tag, Late::Tag, t);
        }
        if notice.scope == Scope::Public {
            add(&s.public, Late::Public, PUBLIC);
            if notice.uri.is_none() {
                add(&s.public, Late::Public, LOCAL);
            }
        }
        // A late notice is read from the late lists by every strategy: nothing to
        // deliver.
        let late = s.log.order().is_late(id.0);
        // Pairs with `Repair::push_from_now`: a reader switching pairs to push either
        // counts this notice in the log's length (and it is in its author's list, for
        // the reader's lazy source), or the workers deciding it see the reader's new
        // rule. Only strategies that plan reads switch.
        if !self.shared.switches.is_empty() {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
        let addressees = (notice.scope == Scope::Addressees).then(|| {
            let mut users: Vec<u32> = notice.mentions.iter().map(|m| m.0).collect();
            users.sort_unstable();
            users.dedup();
            users.into_boxed_slice()
        });
        let posts = self.shared.posts.fetch_add(1, Ordering::Relaxed) + 1;
        let ctx = self.shared.strategy_ctx();
        let now = self.shared.config.clock.now_ms();
        self.shared.strategy.on_post(&ctx, author, now);
        if posts.is_multiple_of(1024) {
            let deliveries = self.pool.progress.deliveries.load(Ordering::Relaxed);
            let costs = self.shared.measured_bytes(deliveries);
            self.shared.strategy.on_costs(&ctx, costs);
        }
        if self.shared.strategy.pushes() && !late {
            let mut job = Job::new(id.0, author, addressees);
            job.groups = groups.into_boxed_slice();
            job.tags = tags.into_boxed_slice();
            self.pool.submit(job);
        }
        if notice.uri.is_none() && author < self.shared.config.users_max {
            self.enqueue_post(id, author, notice.scope)?;
        }
        Ok(id)
    }

    /// Deletes a notice: it vanishes from every stream at once, and its bytes are
    /// scrubbed from the log (see [`NoticeLog::delete`]). For a local notice, the
    /// deliveries of it still pending are dropped and a delete delivery is recorded
    /// (before the notice is deleted) for each server of its author's remote
    /// followers.
    pub fn delete(&self, id: NoticeId) -> Result<()> {
        let local = self
            .shared
            .log
            .get(id)
            .filter(|n| n.uri().is_none() && n.author().0 < self.shared.config.users_max)
            .map(|n| n.author().0);
        let Some(author) = local else {
            return self.shared.log.delete(id);
        };
        // The deletes first: a crash before the log's delete leaves the notice (a
        // second delete completes it), never a deleted notice whose deletes are lost.
        self.enqueue_deletes(id, author)?;
        self.shared.log.delete(id)?;
        self.shared.outbox.cancel_creates(id.0)
    }

    /// The notice `id`, read in place; `None` when missing or deleted.
    pub fn notice(&self, id: NoticeId) -> Option<NoticeRef<'_>> {
        self.shared.log.get(id)
    }

    /// A page of `user`'s home timeline: their own notices and those of the authors
    /// they follow, under the visibility rules (see the README), newest first.
    pub fn home_timeline(&self, user: UserId, page: Page) -> Result<TimelinePage> {
        let user = self.user(user)?;
        let limit = self.shared.check_page(&page)?;
        Ok(self.shared.ordered_home_page(user, &page, limit))
    }

    /// A page of the notices that mention `user`, whoever wrote them (unless blocked
    /// either way or muted), whatever their scope, newest first.
    pub fn mentions(&self, user: UserId, page: Page) -> Result<TimelinePage> {
        let user = self.user(user)?;
        let limit = self.shared.check_page(&page)?;
        Ok(self.shared.mentions_page(user, &page, limit))
    }

    /// Waits until every notice posted before the call is in the home timelines it
    /// goes to.
    pub fn flush(&self) -> Result<()> {
        self.pool.flush().map_err(|cause| Error::Poisoned { cause })
    }

    /// Makes everything durable (the log and the graph), whatever the durability mode.
    pub fn sync(&self) -> Result<()> {
        self.shared.log.sync()?;
        self.shared.graph.sync()?;
        self.shared.relations.sync()?;
        self.shared.outbox.sync()
    }

    /// Gives the selective strategy every user's true post and read rates, per hour
    /// of the engine's clock, in place of the estimates it makes online. For
    /// research: it separates what the Feeding Frenzy rule costs from what estimating
    /// the rates costs. Decisions use them from the next post or read of each user on;
    /// what timelines show is unchanged (every strategy pages what pull pages). Set
    /// once, before the workload, and not kept across a reopen.
    ///
    /// Errors with [`Error::InvalidConfig`] when the engine does not run the selective
    /// strategy, when rates were set already, or when a list does not hold exactly
    /// `users_max` finite rates of 0 or more.
    pub fn set_known_rates(&self, rates: crate::KnownRates) -> Result<()> {
        let users = self.shared.config.users_max as usize;
        for (name, list) in [
            ("posts_per_hour", &rates.posts_per_hour),
            ("reads_per_hour", &rates.reads_per_hour),
        ] {
            if list.len() != users {
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "known rates: {name} holds {} rates; users_max is {users}",
                        list.len()
                    ),
                });
            }
            if let Some(user) = list.iter().position(|r| !(r.is_finite() && *r >= 0.0)) {
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "known rates: {name}[{user}] is {}; a rate is a finite number >= 0",
                        list[user]
                    ),
                });
            }
        }
        let strategy = self.shared.config.strategy.name();
        self.shared
            .strategy
            .know_rates(rates)
            .map_err(|_| Error::InvalidConfig {
                reason: if strategy == "selective" {
                    "known rates were set already".to_string()
                } else {
                    format!(
                        "known rates apply to the selective strategy; this engine runs {strategy}"
                    )
                },
            })
    }

    /// Forgets the delivery lag recorded so far, so that the lag of [`Engine::stats`]
    /// covers the posts from now on (the laboratory measures a phase apart).
    pub(crate) fn reset_delivery_lag(&self) {
        self.shared.lag_us.lock().reset();
    }

    /// Counts, memory and delivery lag.
    pub fn stats(&self) -> EngineStats {
        let s = &self.shared;
        let log = s.log.stats();
        let memory = s.timelines.memory();
        let lag = s.lag_us.lock();
        let ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
        let timeline_bytes = memory.ring_bytes + memory.slot_bytes;
        let deliveries = self.pool.progress.deliveries.load(Ordering::Relaxed);
        let writes = deliveries + s.costs.merged.load(Ordering::Relaxed);
        let measured = s.measured_bytes(deliveries);
        EngineStats {
            notices: log.notices,
            deleted: log.deleted,
            posts: s.posts.load(Ordering::Relaxed),
            deliveries,
            pending_posts: self.pool.pending(),
            delivery_lag_ms_p50: ms(0.5),
            delivery_lag_ms_p99: ms(0.99),
            delivery_lag_ms_max: lag.max() as f64 / 1000.0,
            rebuilds: s.rebuilds.load(Ordering::Relaxed),
            timelines_fresh: s.timelines.ready_count(),
            timelines: memory.rings,
            timeline_entries: memory.entries,
            timeline_bytes,
            timeline_bytes_per_entry: if memory.entries == 0 {
                0.0
            } else {
                timeline_bytes as f64 / memory.entries as f64
            },
            follows: s.graph.stats().follows,
            strategy: s.config.strategy.name(),
            cost_timeline_writes: writes,
            cost_author_index_reads: s.costs.author_ids.load(Ordering::Relaxed),
            cost_merge_steps: s.costs.merge_steps.load(Ordering::Relaxed),
            cost_ring_reads: s.costs.ring_ids.load(Ordering::Relaxed),
            cost_bytes_touched: 4 * writes
                + 8 * s.costs.author_ids.load(Ordering::Relaxed)
                + 4 * s.costs.ring_ids.load(Ordering::Relaxed),
            cost_push_bytes: measured.push_bytes,
            cost_pull_bytes_per_list: measured.pull_bytes,
            push_ns: f64::from_bits(s.costs.push_ns.load(Ordering::Relaxed)),
            pull_ns_per_author: f64::from_bits(s.costs.pull_ns.load(Ordering::Relaxed)),
            outbox: s.outbox.stats(),
        }
    }
}
