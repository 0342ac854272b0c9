//! The strategy laboratory's engine harness: loads a generated graph into a fresh
//! store, opens an [`Engine`] with one strategy, makes every timeline active (every
//! user reads once), drives a [`Workload`] through it on one or more driver threads,
//! measures, and then, if asked, measures the fan-out's capacity (posts as fast as the
//! drivers can make them, deliveries per second until the flush).
//!
//! Time is simulated for the engine (a manual clock that moves from 0 to
//! `simulated_ms` over the run, so the selective strategy's hourly rates see the same
//! time on every machine) and real for the measurements.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;

use super::memory::{resident_anon_bytes, trim_heap};
use super::remote::{self, OutboxRun, PostedAt, Remote};
use super::synthetic::synthetic_notice;
use super::workload::{Op, Workload};
use crate::engine::{Clock, Config, Engine, EngineStats};
use crate::error::Result;
use crate::fanout::{KnownRates, Strategy};
use crate::graph::{FollowGraph, GraphConfig};
use crate::ids::{GroupId, NoticeId, UserId};
use crate::log::Durability;
use crate::timeline::{Page, TimelinePage};

/// XORed into the seed for the capacity phase's authors, apart from the workload's.
const CAPACITY_SEED_MIX: u64 = 0x5851_f42d_4c95_7f2d;
/// XORed into the seed for the groups, tags and stream reads of a [`StreamMix`].
const STREAM_SEED_MIX: u64 = 0x5eed_57e4;

/// Where a run is, for progress bars and Ctrl-C. Every method has a default that does
/// nothing, so `&()` is an observer that sees nothing and never stops. With more than
/// one driver, the drivers call it (one at a time) from their threads.
pub trait Observer: Sync {
    /// A phase starts: `name` is short ("load", "warm-up", "run"), `len` its units.
    fn phase(&self, _name: &'static str, _len: u64) {}
    /// `done` units of the current phase are done.
    fn advance(&self, _done: u64) {}
    /// Whether to stop early (Ctrl-C); checked every few hundred operations.
    fn stopped(&self) -> bool {
        false
    }
}

impl Observer for () {}

/// How the harness runs an engine.
#[derive(Clone, Debug)]
pub struct LabConfig {
    /// The strategy under test.
    pub strategy: Strategy,
    /// Fan-out workers (and graph partitions).
    pub workers: u32,
    /// Entries per home timeline.
    pub timeline_capacity: u32,
    /// Simulated duration of the whole workload for the engine's clock, milliseconds.
    pub simulated_ms: u64,
    /// Operations of the workload played before measuring starts (0: measure from
    /// the first): rates, timelines and the strategies' counters warm up on them, and
    /// every figure of the run covers only the operations after them.
    pub warm_up_ops: u64,
    /// Give the selective strategy the workload's true rates in place of its
    /// estimates ([`crate::Engine::set_known_rates`]); other strategies ignore it.
    pub known_rates: bool,
    /// Driver threads posting and reading (1: the sequence in order on the calling
    /// thread). With more, they take the sequence a chunk at a time; a reply or
    /// repeat whose target another driver has not stored yet is posted as an original
    /// (counted in [`EngineRun::retargeted`]).
    pub drivers: u32,
    /// Posts of the capacity phase after the run (0: none; never for pull, which
    /// delivers nothing).
    pub capacity_posts: u64,
    /// Share of the graph's users on other servers (0: none; see [`OutboxRun`]): they
    /// follow and post as remote accounts, and a delivery worker drains the outbox.
    pub remote_share: f64,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            strategy: Strategy::Push,
            workers: 2,
            timeline_capacity: 800,
            simulated_ms: 3_600_000,
            warm_up_ops: 0,
            known_rates: false,
            drivers: 1,
            capacity_posts: 0,
            remote_share: 0.0,
        }
    }
}

/// The groups and followed tags of a run (`feedcore sim --groups N --tag-follows F`):
/// with `groups`, every user joins [`GROUPS_PER_USER`] of them at random and
/// [`GROUP_POST_FRACTION`] of the posts go to a random group; with `tag_follows`,
/// every user follows that many of [`SIM_TAGS`] tags and [`TAGGED_FRACTION`] of the
/// posts carry a random one. Either adds reads of the new streams (a group's, a
/// tag's, the public timeline) beside every eighth home read, timed apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamMix {
    /// Groups (0: none).
    pub groups: u32,
    /// Tags each user follows (0: none).
    pub tag_follows: u32,
}

/// Groups each user joins in a [`StreamMix`] with groups.
pub const GROUPS_PER_USER: u32 = 2;
/// Posts addressed to a group in a [`StreamMix`] with groups.
pub const GROUP_POST_FRACTION: f64 = 0.1;
/// Tags of a [`StreamMix`] with tag follows.
pub const SIM_TAGS: u32 = 64;
/// Posts carrying a tag in a [`StreamMix`] with tag follows.
pub const TAGGED_FRACTION: f64 = 0.2;

impl StreamMix {
    fn active(&self) -> bool {
        self.groups > 0 || self.tag_follows > 0
    }
}

/// Read latency of one of the new streams in a run with a [`StreamMix`].
#[derive(Clone, Debug, Default)]
pub struct StreamReads {
    /// `"group"`, `"tag"` or `"public"`.
    pub stream: &'static str,
    /// Pages read (of the workload's page size, with bodies).
    pub reads: u64,
    /// Latency, nanoseconds, at [`LATENCY_QUANTILES`].
    pub read_ns_quantiles: Vec<(f64, u64)>,
}

impl StreamReads {
    /// Latency at quantile `q` (one of [`LATENCY_QUANTILES`]), nanoseconds.
    pub fn read_ns(&self, q: f64) -> u64 {
        at_quantile(&self.read_ns_quantiles, q)
    }
}

/// The value at quantile `q` of a list from [`latency_quantiles`] (0 when `q` is not
/// one of [`LATENCY_QUANTILES`]).
pub(crate) fn at_quantile(quantiles: &[(f64, u64)], q: f64) -> u64 {
    quantiles
        .iter()
        .find(|(at, _)| (*at - q).abs() < 1e-12)
        .map_or(0, |&(_, ns)| ns)
}

/// Read latency at each of [`LATENCY_QUANTILES`] (0 for an empty histogram).
pub fn latency_quantiles(latency: &hdrhistogram::Histogram<u64>) -> Vec<(f64, u64)> {
    LATENCY_QUANTILES
        .iter()
        .map(|&q| {
            (
                q,
                if latency.is_empty() {
                    0
                } else {
                    latency.value_at_quantile(q)
                },
            )
        })
        .collect()
}

/// Quantiles at which a read-latency distribution is reported.
pub const LATENCY_QUANTILES: [f64; 12] = [
    0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
];

/// What one run measured. Counts of the workload itself are in its
/// [`WorkloadSummary`](super::WorkloadSummary); everything here may vary with timing.
#[derive(Clone, Debug, Default)]
pub struct EngineRun {
    /// The strategy's name.
    pub strategy: &'static str,
    /// False when stopped early: the figures cover `ops_done` operations (none when
    /// stopped during the warm-up operations).
    pub complete: bool,
    /// Driver threads of the run.
    pub drivers: u32,
    /// Operations done.
    pub ops_done: u64,
    /// Posts made.
    pub posts: u64,
    /// Home-timeline reads made.
    pub reads: u64,
    /// Bulk load of the graph and opening of the engine.
    pub load: Duration,
    /// Every user's first read and the warm-up operations (not measured below).
    pub warm_up: Duration,
    /// The operations, wall time.
    pub run: Duration,
    /// Waiting for the fan-out to finish after the last operation.
    pub flush: Duration,
    /// Time inside `Engine::post` calls.
    pub post_time: Duration,
    /// Time inside reads (page of ids plus every body).
    pub read_time: Duration,
    /// Timeline deliveries during the run.
    pub deliveries: u64,
    /// Read latency, nanoseconds, at [`LATENCY_QUANTILES`].
    pub read_ns_quantiles: Vec<(f64, u64)>,
    /// Notice bodies read (to keep the reads honest).
    pub body_bytes_read: u64,
    /// Change of resident anonymous memory from before the load to the end of the
    /// run, engine open (see [`resident_anon_bytes`]).
    pub resident_anon_delta_bytes: i64,
    /// The engine's statistics at the end.
    pub stats: EngineStats,
    /// Cost counters during the run (warm-up subtracted): timeline writes, author-list
    /// ids read, merge steps, ring ids read, id bytes touched.
    pub cost_timeline_writes: u64,
    /// See `cost_timeline_writes`.
    pub cost_author_index_reads: u64,
    /// See `cost_timeline_writes`.
    pub cost_merge_steps: u64,
    /// See `cost_timeline_writes`.
    pub cost_ring_reads: u64,
    /// See `cost_timeline_writes`; the cost unit of the tables and plots.
    pub cost_bytes_touched: u64,
    /// Replies and repeats posted as originals because their target was not stored
    /// yet (only with more than one driver).
    pub retargeted: u64,
    /// The capacity phase, when it ran.
    pub capacity: Option<CapacityRun>,
    /// With a [`StreamMix`]: the new streams' read latency (empty otherwise).
    pub stream_reads: Vec<StreamReads>,
    /// With [`LabConfig::remote_share`]: what the outbox did.
    pub outbox: Option<OutboxRun>,
}

/// What the capacity phase measured.
#[derive(Clone, Debug, Default)]
pub struct CapacityRun {
    /// Driver threads posting.
    pub drivers: u32,
    /// Posts made.
    pub posts: u64,
    /// Deliveries they made.
    pub deliveries: u64,
    /// From the first post to the last `post` returning.
    pub posting: Duration,
    /// From the first post to the end of the flush.
    pub elapsed: Duration,
}

impl CapacityRun {
    /// Deliveries per second from the first post to the end of the flush.
    pub fn deliveries_per_s(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl EngineRun {
    /// Read latency at quantile `q` (one of [`LATENCY_QUANTILES`]), nanoseconds.
    pub fn read_ns(&self, q: f64) -> u64 {
        at_quantile(&self.read_ns_quantiles, q)
    }

    /// Cost units (id bytes touched) per operation.
    pub fn cost_per_op(&self) -> f64 {
        self.cost_bytes_touched as f64 / self.ops_done.max(1) as f64
    }
}

/// Loads `edges` into a new store in `dir` (which must be empty or missing), runs
/// `workload` through an engine with `config`, and measures. `edges` are the graph's
/// follows among `workload.users` users.
pub fn run_engine(
    dir: &Path,
    edges: &[(UserId, UserId)],
    workload: &Workload,
    config: &LabConfig,
    observer: &dyn Observer,
) -> Result<EngineRun> {
    run_engine_with_streams(
        dir,
        edges,
        workload,
        config,
        &StreamMix::default(),
        observer,
    )
}

/// [`run_engine`] with groups and followed tags in the workload (see [`StreamMix`]).
pub fn run_engine_with_streams(
    dir: &Path,
    edges: &[(UserId, UserId)],
    workload: &Workload,
    config: &LabConfig,
    mix: &StreamMix,
    observer: &dyn Observer,
) -> Result<EngineRun> {
    let users = workload.users;
    let mut rng = SmallRng::seed_from_u64(workload.seed ^ STREAM_SEED_MIX);
    trim_heap();
    let rss_before = resident_anon_bytes().unwrap_or(0);

    observer.phase("load", edges.len() as u64);
    let started = Instant::now();
    let remote = Remote::choose(users, config.remote_share, workload.seed);
    let graph_config = GraphConfig {
        users_max: users + remote.count(),
        partitions: config.workers,
        durability: Durability::Buffered,
        ..GraphConfig::default()
    };
    // With remote users, the follows as the engine stores them (remote ends are
    // remote accounts), and the capacity phase's: those between local users.
    let (stored, local): (Option<Vec<_>>, Option<Vec<_>>) = if remote.count() > 0 {
        let stored = remote.edges(edges);
        let local = stored
            .iter()
            .filter(|(a, b)| a.0 < users && b.0 < users)
            .copied()
            .collect();
        (Some(stored), Some(local))
    } else {
        (None, None)
    };
    let graph_dir = dir.join("graph");
    match stored {
        Some(stored) => FollowGraph::bulk_load(graph_dir, graph_config, stored),
        None => FollowGraph::bulk_load(graph_dir, graph_config, edges.iter().copied()),
    }
    .map(drop)?;
    let local_edges = local.as_deref().unwrap_or(edges);
    let clock = Clock::manual(0);
    let engine_config = Config {
        users_max: users,
        remote_users_max: Config::default().remote_users_max.max(remote.count()),
        timeline_capacity: config.timeline_capacity,
        durability: Durability::Buffered,
        workers: config.workers,
        clock: clock.clone(),
        strategy: config.strategy,
        ..Config::default()
    };
    let groups = mix.groups.min(users);
    if groups > 0 {
        let names: Vec<String> = (0..groups).map(|g| format!("g{g}")).collect();
        let list: Vec<(UserId, &str)> = names.iter().map(|n| (UserId(0), n.as_str())).collect();
        let memberships: Vec<(UserId, GroupId)> = (0..users)
            .flat_map(|u| (0..GROUPS_PER_USER).map(move |_| u))
            .map(|u| (UserId(u), GroupId(rng.random_range(0..groups))))
            .collect();
        Engine::bulk_load_groups(dir, &engine_config, &list, memberships)?;
    }
    if remote.count() > 0 {
        // The accounts the graph's remote ids name; the engine counts each local
        // user's remote followers when it opens.
        let engine = Engine::open(dir, engine_config.clone())?;
        remote.register(&engine)?;
        drop(engine);
    }
    let engine = Engine::open(dir, engine_config)?;
    if mix.tag_follows > 0 {
        for u in 0..users {
            for _ in 0..mix.tag_follows.min(SIM_TAGS) {
                let tag = format!("tag{}", rng.random_range(0..SIM_TAGS));
                engine.follow_tag(UserId(u), tag)?;
            }
        }
    }
    observer.advance(edges.len() as u64);
    let load = started.elapsed();

    if config.known_rates && matches!(config.strategy, Strategy::Selective { .. }) {
        let per_op = workload.rates_per_op();
        // Operations are spread evenly over the simulated time.
        let ops_per_hour = workload.ops as f64 * 3_600_000.0 / config.simulated_ms.max(1) as f64;
        let per_hour = |v: Vec<f64>| v.into_iter().map(|r| r * ops_per_hour).collect();
        engine.set_known_rates(KnownRates {
            posts_per_hour: per_hour(per_op.posts),
            reads_per_hour: per_hour(per_op.reads),
        })?;
    }

    // Every timeline active: the fan-out delivers to every follower, as Redis does.
    observer.phase("warm-up", u64::from(users));
    let started = Instant::now();
    for u in 0..users {
        engine.home_timeline(UserId(u), Page::latest(workload.page_size))?;
        if u % 4096 == 0 {
            observer.advance(u64::from(u));
            if observer.stopped() {
                break;
            }
        }
    }
    let mut warm_up = started.elapsed();
    let mut before = engine.stats();

    let warm_up_ops = config.warm_up_ops.min(workload.ops);
    let drivers = config.drivers.max(1);
    let posted_at = PostedAt::default();
    let shared = Driven {
        engine: &engine,
        clock: &clock,
        workload,
        simulated_ms: config.simulated_ms,
        drivers,
        mix,
        groups,
        seed: workload.seed,
        remote: &remote,
        posted_at: &posted_at,
        source: Mutex::new(Source {
            ops: Box::new(workload.ops()),
            next: 0,
        }),
        stop: AtomicBool::new(false),
        observer,
    };
    // A run measuring from now on (the warm-up so far is not measured).
    let fresh_run = |warm_up| EngineRun {
        strategy: config.strategy.name(),
        complete: true,
        drivers,
        load,
        warm_up,
        ..EngineRun::default()
    };
    let mut run = fresh_run(warm_up);
    let worker_stop = AtomicBool::new(false);
    let mut remote_posts = 0;
    // The delivery worker drains the outbox while the drivers run (remote users only).
    let outbox = std::thread::scope(|scope| -> Result<Option<OutboxRun>> {
        let worker = (remote.count() > 0)
            .then(|| scope.spawn(|| remote::deliver(&engine, &remote, &posted_at, &worker_stop)));
        let driven = (|| -> Result<()> {
            if warm_up_ops > 0 {
                observer.phase("warm-up ops", warm_up_ops);
                let started = Instant::now();
                let warm = shared.drive(0, warm_up_ops)?;
                // Warm: measure from here, after the fan-out of the warm-up settled.
                engine.flush()?;
                warm_up += started.elapsed();
                before = engine.stats();
                run = fresh_run(warm_up);
                if warm.stopped {
                    // Stopped while warming up: nothing was measured.
                    run.complete = false;
                }
            }
            if run.complete {
                observer.phase("run", workload.ops - warm_up_ops);
                let started = Instant::now();
                let part = shared.drive(warm_up_ops, workload.ops)?;
                run.run = started.elapsed();
                run.complete = !part.stopped;
                run.ops_done = part.posts + part.reads;
                run.posts = part.posts;
                run.reads = part.reads;
                run.post_time = part.post_time;
                run.read_time = part.read_time;
                run.body_bytes_read = part.body_bytes_read;
                run.retargeted = part.retargeted;
                remote_posts = part.remote_posts;
                run.read_ns_quantiles = latency_quantiles(&part.latency);
                if mix.active() {
                    run.stream_reads = ["group", "tag", "public"]
                        .into_iter()
                        .zip(&part.stream_latency)
                        .filter(|(_, h)| !h.is_empty())
                        .map(|(stream, h)| StreamReads {
                            stream,
                            reads: h.len(),
                            read_ns_quantiles: latency_quantiles(h),
                        })
                        .collect();
                }
            } else {
                run.read_ns_quantiles = latency_quantiles(&new_latency_histogram());
            }
            let started = Instant::now();
            engine.flush()?;
            run.flush = started.elapsed();
            Ok(())
        })();
        worker_stop.store(true, Ordering::Release);
        let outbox = worker
            .map(|w| w.join().expect("the delivery worker does not panic"))
            .transpose();
        driven?;
        outbox
    })?;
    run.outbox = outbox.map(|o| OutboxRun { remote_posts, ..o });

    let after = engine.stats();
    run.deliveries = after.deliveries - before.deliveries;
    run.cost_timeline_writes = after.cost_timeline_writes - before.cost_timeline_writes;
    run.cost_author_index_reads = after.cost_author_index_reads - before.cost_author_index_reads;
    run.cost_merge_steps = after.cost_merge_steps - before.cost_merge_steps;
    run.cost_ring_reads = after.cost_ring_reads - before.cost_ring_reads;
    run.cost_bytes_touched = after.cost_bytes_touched - before.cost_bytes_touched;
    run.resident_anon_delta_bytes = resident_anon_bytes().unwrap_or(0) as i64 - rss_before as i64;
    run.stats = after;
    if config.capacity_posts > 0
        && !matches!(config.strategy, Strategy::Pull)
        && run.complete
        && !observer.stopped()
    {
        run.capacity = Some(capacity(&engine, local_edges, workload, config, observer)?);
    }
    drop(engine);
    trim_heap();
    Ok(run)
}

fn new_latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Operations a driver takes from the sequence at once; the Ctrl-C check, the
/// progress and the engine's clock move at each take.
const CHUNK_OPS: u64 = 256;

/// The workload's sequence, taken a chunk at a time by the driver threads.
struct Source {
    ops: Box<dyn Iterator<Item = Op> + Send>,
    /// Index in the sequence of the next operation `ops` yields.
    next: u64,
}

/// What the driver threads share.
struct Driven<'a> {
    engine: &'a Engine,
    clock: &'a Clock,
    workload: &'a Workload,
    simulated_ms: u64,
    drivers: u32,
    mix: &'a StreamMix,
    /// Groups of the run (`mix.groups`, at most the users).
    groups: u32,
    seed: u64,
    /// The users on other servers (none without a remote share).
    remote: &'a Remote,
    /// When each local post started (kept only with remote users).
    posted_at: &'a PostedAt,
    source: Mutex<Source>,
    /// Set by the first driver that sees the observer stop: the others stop at
    /// their next chunk.
    stop: AtomicBool,
    observer: &'a dyn Observer,
}

/// What drivers measured over a span of the sequence.
struct Part {
    stopped: bool,
    posts: u64,
    reads: u64,
    post_time: Duration,
    read_time: Duration,
    body_bytes_read: u64,
    retargeted: u64,
    /// Posts by remote users (through `post_remote`).
    remote_posts: u64,
    latency: Histogram<u64>,
    /// Group, tag and public page latency (see [`StreamMix`]).
    stream_latency: [Histogram<u64>; 3],
}

impl Part {
    fn new() -> Part {
        Part {
            stopped: false,
            posts: 0,
            reads: 0,
            post_time: Duration::ZERO,
            read_time: Duration::ZERO,
            body_bytes_read: 0,
            retargeted: 0,
            remote_posts: 0,
            latency: new_latency_histogram(),
            stream_latency: [
                new_latency_histogram(),
                new_latency_histogram(),
                new_latency_histogram(),
            ],
        }
    }

    fn add(&mut self, other: Part) {
        self.stopped |= other.stopped;
        self.posts += other.posts;
        self.reads += other.reads;
        self.post_time += other.post_time;
        self.read_time += other.read_time;
        self.body_bytes_read += other.body_bytes_read;
        self.retargeted += other.retargeted;
        self.remote_posts += other.remote_posts;
        self.latency
            .add(&other.latency)
            .expect("histograms of the same bounds");
        for (h, o) in self.stream_latency.iter_mut().zip(&other.stream_latency) {
            h.add(o).expect("histograms of the same bounds");
        }
    }
}

impl Driven<'_> {
    /// Runs operations `from..to` of the sequence on `drivers` threads (the calling
    /// thread when there is one).
    fn drive(&self, from: u64, to: u64) -> Result<Part> {
        if self.drivers == 1 {
            return self.driver(0, from, to);
        }
        let parts: Vec<Result<Part>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.drivers)
                .map(|d| scope.spawn(move || self.driver(d, from, to)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a driver thread does not panic"))
                .collect()
        });
        let mut total = Part::new();
        for part in parts {
            total.add(part?);
        }
        Ok(total)
    }

    /// One driver: takes chunks of the sequence until `to` or a stop.
    fn driver(&self, d: u32, from: u64, to: u64) -> Result<Part> {
        let mut part = Part::new();
        // Groups and tags of posts and the stream reads: one generator a driver.
        let mut rng = SmallRng::seed_from_u64(
            self.seed
                ^ STREAM_SEED_MIX
                ^ (from << 8)
                ^ u64::from(d).wrapping_mul(CAPACITY_SEED_MIX),
        );
        let mut chunk = Vec::with_capacity(CHUNK_OPS as usize);
        loop {
            chunk.clear();
            {
                let mut source = self.source.lock();
                if source.next >= to || self.stop.load(Ordering::Relaxed) {
                    break;
                }
                if self.observer.stopped() {
                    self.stop.store(true, Ordering::Relaxed);
                    part.stopped = true;
                    break;
                }
                self.observer.advance(source.next - from);
                self.clock
                    .set_ms(self.simulated_ms * source.next / self.workload.ops.max(1));
                let take = CHUNK_OPS.min(to - source.next);
                chunk.extend(source.ops.by_ref().take(take as usize));
                source.next += take;
            }
            for op in &chunk {
                self.one(op, &mut part, &mut rng)?;
            }
        }
        part.stopped |= self.stop.load(Ordering::Relaxed);
        Ok(part)
    }

    fn one(&self, op: &Op, part: &mut Part, rng: &mut SmallRng) -> Result<()> {
        let groups = self.groups;
        let mix = self.mix;
        let engine = self.engine;
        match op {
            Op::Post(post) => {
                let mut notice = post.notice();
                if self.drivers > 1 {
                    // Another driver may not have stored the target yet (and ids follow
                    // the order posts arrive in): post such a one as an original.
                    let target = notice.reply_to.or(notice.repeat_of);
                    if target.is_some_and(|t| engine.notice(t).is_none()) {
                        part.retargeted += 1;
                        let body = synthetic_notice(NoticeId(post.ordinal + 1)).body;
                        notice.reply_to = None;
                        notice.repeat_of = None;
                        notice.body = body;
                    }
                }
                if groups > 0 && rng.random_bool(GROUP_POST_FRACTION) {
                    notice.groups = vec![GroupId(rng.random_range(0..groups))];
                }
                if mix.tag_follows > 0 && rng.random_bool(TAGGED_FRACTION) {
                    notice.tags = vec![format!("tag{}", rng.random_range(0..SIM_TAGS))];
                }
                let t = Instant::now();
                if let Some(a) = self.remote.account(notice.author.0) {
                    // From another server: its own uri, no local group.
                    notice.author = UserId(self.workload.users + a);
                    notice.uri = Some(format!(
                        "https://{}/notes/{}",
                        self.remote.host(a),
                        post.ordinal
                    ));
                    notice.groups.clear();
                    engine.post_remote(notice)?;
                    part.remote_posts += 1;
                    part.post_time += t.elapsed();
                } else {
                    let id = engine.post(notice)?;
                    part.post_time += t.elapsed();
                    if self.remote.count() > 0 {
                        self.posted_at.lock().insert(id.0, t);
                    }
                }
                part.posts += 1;
            }
            // Remote users read on their own servers.
            Op::Read(user) if self.remote.account(user.0).is_some() => {}
            Op::Read(user) => {
                let t = Instant::now();
                let page = engine.home_timeline(*user, Page::latest(self.workload.page_size))?;
                let mut bytes = 0;
                for id in &page.ids {
                    if let Some(notice) = engine.notice(*id) {
                        bytes += notice.body().len() as u64 + 1;
                    }
                }
                let ns = t.elapsed();
                part.read_time += ns;
                part.body_bytes_read += bytes;
                let _ = part.latency.record((ns.as_nanos() as u64).max(1));
                part.reads += 1;
                if mix.active() && part.reads.is_multiple_of(8) {
                    let page = Page::latest(self.workload.page_size);
                    let tag = format!("tag{}", rng.random_range(0..SIM_TAGS));
                    let group = GroupId(rng.random_range(0..groups.max(1)));
                    for (k, h) in part.stream_latency.iter_mut().enumerate() {
                        let t = Instant::now();
                        let got: Result<TimelinePage> = match k {
                            0 if groups > 0 => engine.group_timeline(*user, group, page),
                            1 if mix.tag_follows > 0 => engine.tag_timeline(*user, &tag, page),
                            2 => engine.public_timeline(*user, page),
                            _ => continue,
                        };
                        let Ok(got) = got else { continue };
                        for id in &got.ids {
                            if let Some(notice) = engine.notice(*id) {
                                part.body_bytes_read += notice.body().len() as u64 + 1;
                            }
                        }
                        let _ = h.record((t.elapsed().as_nanos() as u64).max(1));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The fan-out's capacity: `config.drivers` threads post `config.capacity_posts`
/// original notices as fast as they can, by authors drawn in proportion to their
/// followers (popular accounts post more, as in `benches/fanout.rs`), into timelines
/// the run made active; the figure is deliveries per second from the first post to
/// the end of the flush, with the fan-out workers saturated.
fn capacity(
    engine: &Engine,
    edges: &[(UserId, UserId)],
    workload: &Workload,
    config: &LabConfig,
    observer: &dyn Observer,
) -> Result<CapacityRun> {
    let mut followers = vec![1.0f64; workload.users as usize];
    for &(_, followee) in edges {
        followers[followee.0 as usize] += 1.0;
    }
    let pick = WeightedAliasIndex::new(followers).expect("weights are positive and finite");
    let mut rng = SmallRng::seed_from_u64(workload.seed ^ CAPACITY_SEED_MIX);
    let authors: Vec<u32> = (0..config.capacity_posts)
        .map(|_| pick.sample(&mut rng) as u32)
        .collect();
    let drivers = config.drivers.max(1) as usize;
    observer.phase("capacity", config.capacity_posts);
    let before = engine.stats();
    let started = Instant::now();
    let posted = AtomicU64::new(0);
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..drivers)
            .map(|d| {
                let authors = &authors;
                let posted = &posted;
                scope.spawn(move || {
                    for &author in authors.iter().skip(d).step_by(drivers) {
                        let n = posted.fetch_add(1, Ordering::Relaxed);
                        let mut notice = synthetic_notice(NoticeId(n + 1));
                        notice.author = UserId(author);
                        // The synthetic mention is of a user of 100 k; the fan-out
                        // alone is measured here.
                        notice.mentions.clear();
                        engine.post(notice)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a capacity driver does not panic"))
            .collect()
    });
    for r in results {
        r?;
    }
    let posting = started.elapsed();
    engine.flush()?;
    let elapsed = started.elapsed();
    observer.advance(config.capacity_posts);
    let after = engine.stats();
    Ok(CapacityRun {
        drivers: drivers as u32,
        posts: config.capacity_posts,
        deliveries: after.deliveries - before.deliveries,
        posting,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Workload, ZipfGraph};

    /// Stops at its `after`-th check.
    struct StopAfter {
        checks: AtomicU64,
        after: u64,
    }

    impl Observer for StopAfter {
        fn stopped(&self) -> bool {
            self.checks.fetch_add(1, Ordering::Relaxed) + 1 > self.after
        }
    }

    fn run_stopped(warm_up_ops: u64, after: u64) -> EngineRun {
        let workload = Workload {
            users: 200,
            ops: 4_000,
            ..Workload::default()
        };
        let edges = ZipfGraph {
            users: 200,
            ..Default::default()
        }
        .edges();
        let dir = tempfile::tempdir().unwrap();
        let config = LabConfig {
            warm_up_ops,
            ..LabConfig::default()
        };
        let observer = StopAfter {
            checks: AtomicU64::new(0),
            after,
        };
        run_engine(dir.path(), &edges, &workload, &config, &observer).unwrap()
    }

    #[test]
    fn a_run_stopped_during_the_warm_up_reports_nothing_measured() {
        // The first check is in the every-user read; each later one 256 operations on.
        let run = run_stopped(2_000, 4);
        assert!(!run.complete);
        assert_eq!((run.ops_done, run.posts, run.reads), (0, 0, 0));
        assert_eq!(
            run.cost_bytes_touched, 0,
            "the warm-up's costs are not the run's"
        );
        // Stopped after the warm-up: the operations measured since.
        let run = run_stopped(512, 4);
        assert!(!run.complete);
        assert_eq!(run.ops_done, 768 - 512);
        assert!(run.cost_bytes_touched > 0);
    }
}
