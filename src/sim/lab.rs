//! The strategy laboratory's engine harness: loads a generated graph into a fresh
//! store, opens an [`Engine`] with one strategy, makes every timeline active (every
//! user reads once), drives a [`Workload`] through it on one thread, and measures.
//!
//! Time is simulated for the engine (a manual clock that moves from 0 to
//! `simulated_ms` over the run, so the selective strategy's hourly rates see the same
//! time on every machine) and real for the measurements.

use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::memory::{resident_anon_bytes, trim_heap};
use super::workload::{Op, Workload};
use crate::engine::{Clock, Config, Engine, EngineStats};
use crate::error::Result;
use crate::fanout::{KnownRates, Strategy};
use crate::graph::{FollowGraph, GraphConfig};
use crate::ids::{GroupId, UserId};
use crate::log::Durability;
use crate::timeline::{Page, TimelinePage};

/// Where a run is, for progress bars and Ctrl-C. Every method has a default that does
/// nothing, so `&()` is an observer that sees nothing and never stops.
pub trait Observer {
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
        self.read_ns_quantiles
            .iter()
            .find(|(at, _)| (*at - q).abs() < 1e-12)
            .map_or(0, |&(_, ns)| ns)
    }
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
    /// With a [`StreamMix`]: the new streams' read latency (empty otherwise).
    pub stream_reads: Vec<StreamReads>,
}

impl EngineRun {
    /// Read latency at quantile `q` (one of [`LATENCY_QUANTILES`]), nanoseconds.
    pub fn read_ns(&self, q: f64) -> u64 {
        self.read_ns_quantiles
            .iter()
            .find(|(at, _)| (*at - q).abs() < 1e-12)
            .map_or(0, |&(_, ns)| ns)
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
    use rand::{RngExt, SeedableRng};
    let users = workload.users;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(workload.seed ^ 0x5eed_57e4);
    trim_heap();
    let rss_before = resident_anon_bytes().unwrap_or(0);

    observer.phase("load", edges.len() as u64);
    let started = Instant::now();
    let graph_config = GraphConfig {
        users_max: users,
        partitions: config.workers,
        durability: Durability::Buffered,
        ..GraphConfig::default()
    };
    drop(FollowGraph::bulk_load(
        dir.join("graph"),
        graph_config,
        edges.iter().copied(),
    )?);
    let clock = Clock::manual(0);
    let engine_config = Config {
        users_max: users,
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
    if warm_up_ops > 0 {
        observer.phase("warm-up ops", warm_up_ops);
    } else {
        observer.phase("run", workload.ops);
    }
    let histogram =
        || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds");
    let mut latency = histogram();
    // Group, tag and public page latency (see `StreamMix`).
    let mut stream_latency = [histogram(), histogram(), histogram()];
    // A run measuring from now on (the warm-up so far is not measured).
    let fresh_run = |warm_up| EngineRun {
        strategy: config.strategy.name(),
        complete: true,
        load,
        warm_up,
        ..EngineRun::default()
    };
    let mut run = fresh_run(warm_up);
    let mut started = Instant::now();
    let mut offset = 0;
    for (i, op) in workload.ops().enumerate() {
        if i as u64 == warm_up_ops && warm_up_ops > 0 {
            // Warm: measure from here, after the fan-out of the warm-up settled.
            engine.flush()?;
            warm_up += started.elapsed();
            before = engine.stats();
            latency.reset();
            for h in &mut stream_latency {
                h.reset();
            }
            run = fresh_run(warm_up);
            offset = warm_up_ops;
            observer.phase("run", workload.ops - warm_up_ops);
            started = Instant::now();
        }
        if i % 256 == 0 {
            if observer.stopped() {
                if (i as u64) < warm_up_ops {
                    // Stopped while warming up: nothing was measured.
                    engine.flush()?;
                    before = engine.stats();
                    run = fresh_run(warm_up + started.elapsed());
                    started = Instant::now();
                }
                run.complete = false;
                break;
            }
            observer.advance(i as u64 - offset);
            clock.set_ms(config.simulated_ms * i as u64 / workload.ops.max(1));
        }
        match op {
            Op::Post(post) => {
                let mut notice = post.notice();
                if groups > 0 && rng.random_bool(GROUP_POST_FRACTION) {
                    notice.groups = vec![GroupId(rng.random_range(0..groups))];
                }
                if mix.tag_follows > 0 && rng.random_bool(TAGGED_FRACTION) {
                    notice.tags = vec![format!("tag{}", rng.random_range(0..SIM_TAGS))];
                }
                let t = Instant::now();
                engine.post(notice)?;
                run.post_time += t.elapsed();
                run.posts += 1;
            }
            Op::Read(user) => {
                let t = Instant::now();
                let page = engine.home_timeline(user, Page::latest(workload.page_size))?;
                let mut bytes = 0;
                for id in &page.ids {
                    if let Some(notice) = engine.notice(*id) {
                        bytes += notice.body().len() as u64 + 1;
                    }
                }
                let ns = t.elapsed();
                run.read_time += ns;
                run.body_bytes_read += bytes;
                let _ = latency.record((ns.as_nanos() as u64).max(1));
                run.reads += 1;
                if mix.active() && run.reads.is_multiple_of(8) {
                    let page = Page::latest(workload.page_size);
                    let tag = format!("tag{}", rng.random_range(0..SIM_TAGS));
                    let group = GroupId(rng.random_range(0..groups.max(1)));
                    for (k, h) in stream_latency.iter_mut().enumerate() {
                        let t = Instant::now();
                        let got: Result<TimelinePage> = match k {
                            0 if groups > 0 => engine.group_timeline(user, group, page),
                            1 if mix.tag_follows > 0 => engine.tag_timeline(user, &tag, page),
                            2 => engine.public_timeline(user, page),
                            _ => continue,
                        };
                        let Ok(got) = got else { continue };
                        for id in &got.ids {
                            if let Some(notice) = engine.notice(*id) {
                                run.body_bytes_read += notice.body().len() as u64 + 1;
                            }
                        }
                        let _ = h.record((t.elapsed().as_nanos() as u64).max(1));
                    }
                }
            }
        }
        run.ops_done += 1;
    }
    run.run = started.elapsed();
    let started = Instant::now();
    engine.flush()?;
    run.flush = started.elapsed();

    let after = engine.stats();
    run.deliveries = after.deliveries - before.deliveries;
    run.cost_timeline_writes = after.cost_timeline_writes - before.cost_timeline_writes;
    run.cost_author_index_reads = after.cost_author_index_reads - before.cost_author_index_reads;
    run.cost_merge_steps = after.cost_merge_steps - before.cost_merge_steps;
    run.cost_ring_reads = after.cost_ring_reads - before.cost_ring_reads;
    run.cost_bytes_touched = after.cost_bytes_touched - before.cost_bytes_touched;
    run.read_ns_quantiles = latency_quantiles(&latency);
    if mix.active() {
        run.stream_reads = ["group", "tag", "public"]
            .into_iter()
            .zip(&stream_latency)
            .filter(|(_, h)| !h.is_empty())
            .map(|(stream, h)| StreamReads {
                stream,
                reads: h.len(),
                read_ns_quantiles: latency_quantiles(h),
            })
            .collect();
    }
    run.resident_anon_delta_bytes = resident_anon_bytes().unwrap_or(0) as i64 - rss_before as i64;
    run.stats = after;
    drop(engine);
    trim_heap();
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Workload, ZipfGraph};

    /// Stops at its `after`-th check.
    struct StopAfter {
        checks: std::cell::Cell<u32>,
        after: u32,
    }

    impl Observer for StopAfter {
        fn stopped(&self) -> bool {
            self.checks.set(self.checks.get() + 1);
            self.checks.get() > self.after
        }
    }

    fn run_stopped(warm_up_ops: u64, after: u32) -> EngineRun {
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
            checks: std::cell::Cell::new(0),
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
