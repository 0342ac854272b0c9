//! Open-loop load on an engine, as a service sees it: posts and home reads arrive at
//! offered rates on a schedule (Poisson arrivals) whether or not the box keeps up, and
//! each operation's latency is measured from the time it was scheduled, so a box that
//! falls behind shows its queue instead of hiding it (no coordinated omission).
//!
//! A run loads the graph, makes the timelines of the active readers (and only theirs)
//! live with a first read, plays a history phase (posts as fast as the drivers make
//! them, to fill the timelines, measured as deliveries per second), then the measured
//! phase: `seconds` of offered posts (an average rate with peak bursts) and reads.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::weighted::WeightedAliasIndex;
use rand_distr::{Distribution, Exp1};

use super::schedule::next_post_after;

use super::lab::{Observer, latency_quantiles};
use super::memory::{process_cpu_s, resident_bytes, resident_peak_bytes, thread_cpu_s};
use super::synthetic::synthetic_notice;
use crate::engine::{Clock, Config, Engine, EngineStats};
use crate::error::{Error, Result};
use crate::fanout::Strategy;
use crate::graph::{FollowGraph, GraphConfig};
use crate::ids::{NoticeId, UserId};
use crate::log::Durability;
use crate::timeline::Page;

/// Authors post in proportion to `(followers + 1)` to this power: popular accounts
/// post more than others, less than in proportion to their audience.
pub const AUTHOR_FOLLOWER_EXPONENT: f64 = 0.5;

/// A driver ahead of its schedule by at most this serves the next arrival at once
/// instead of sleeping, seconds.
pub const EARLY_S: f64 = 100e-6;

/// How an open-loop run is made.
#[derive(Clone, Debug)]
pub struct OpenLoopConfig {
    /// Fan-out workers (and graph partitions).
    pub workers: u32,
    /// Driver threads: each offers its share of the posts and reads.
    pub drivers: u32,
    /// Entries per home timeline.
    pub timeline_capacity: u32,
    /// Users who read (their timelines get deliveries); drawn at random.
    pub active_readers: u32,
    /// Posts of the history phase.
    pub history_posts: u64,
    /// Length of the measured phase, seconds.
    pub seconds: f64,
    /// Offered posts per second, on average over a cycle.
    pub posts_per_s: f64,
    /// Offered posts per second during the bursts.
    pub peak_posts_per_s: f64,
    /// Offered home reads per second.
    pub reads_per_s: f64,
    /// Entries per home page read (each with its body).
    pub page_size: usize,
    /// Seed of the readers, authors and arrivals.
    pub seed: u64,
}

impl Default for OpenLoopConfig {
    fn default() -> Self {
        OpenLoopConfig {
            workers: 2,
            drivers: 2,
            timeline_capacity: 800,
            active_readers: 2_000_000,
            history_posts: 1_000_000,
            seconds: 60.0,
            posts_per_s: 4_600.0,
            peak_posts_per_s: 12_000.0,
            reads_per_s: 300_000.0,
            page_size: 20,
            seed: 1,
        }
    }
}

/// The history phase: posts as fast as the drivers make them.
#[derive(Clone, Debug, Default)]
pub struct HistoryRun {
    /// Posts made.
    pub posts: u64,
    /// Their deliveries.
    pub deliveries: u64,
    /// From the first post to the end of the flush.
    pub elapsed: Duration,
}

/// Offered and done operations of one kind in the measured phase, with latency.
#[derive(Clone, Debug, Default)]
pub struct Offered {
    /// Operations scheduled in the phase.
    pub offered: u64,
    /// Operations done (the rest were still queued when the phase ended).
    pub done: u64,
    /// Latency from the scheduled time to done, nanoseconds, at
    /// [`LATENCY_QUANTILES`](super::LATENCY_QUANTILES).
    pub from_schedule_ns: Vec<(f64, u64)>,
    /// Latency from the start of the call to done (service time), nanoseconds.
    pub service_ns: Vec<(f64, u64)>,
}

impl Offered {
    /// Latency from schedule at `q`, nanoseconds (0 when `q` is not reported).
    pub fn from_schedule(&self, q: f64) -> u64 {
        at(&self.from_schedule_ns, q)
    }

    /// Service time at `q`, nanoseconds.
    pub fn service(&self, q: f64) -> u64 {
        at(&self.service_ns, q)
    }
}

fn at(quantiles: &[(f64, u64)], q: f64) -> u64 {
    quantiles
        .iter()
        .find(|(x, _)| (*x - q).abs() < 1e-12)
        .map_or(0, |&(_, v)| v)
}

/// What an open-loop run measured.
#[derive(Clone, Debug, Default)]
pub struct OpenLoopRun {
    /// False when stopped early (Ctrl-C).
    pub complete: bool,
    /// Bulk load of the graph and opening of the engine.
    pub load: Duration,
    /// The active readers' first reads.
    pub activate: Duration,
    /// Active readers.
    pub active_readers: u32,
    /// The history phase.
    pub history: HistoryRun,
    /// Wall time of the measured phase.
    pub run: Duration,
    /// After it, waiting for the fan-out to finish.
    pub flush: Duration,
    /// Posts of the measured phase.
    pub posts: Offered,
    /// Home reads of the measured phase.
    pub reads: Offered,
    /// Deliveries of the measured phase.
    pub deliveries: u64,
    /// Delivery lag of the measured phase's posts (post to the last delivery), ms.
    pub lag_ms_p50: f64,
    /// See `lag_ms_p50`.
    pub lag_ms_p99: f64,
    /// See `lag_ms_p50`.
    pub lag_ms_max: f64,
    /// CPU seconds of the whole process during the measured phase.
    pub cpu_s: f64,
    /// CPU seconds of the driver threads (posting and reading) during it.
    pub driver_cpu_s: f64,
    /// CPU seconds the drivers spent inside reads (service time of reads on them).
    pub read_cpu_s: f64,
    /// Resident memory at the end, bytes (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident memory of the process, bytes (`VmHWM`).
    pub rss_peak_bytes: u64,
    /// The engine's statistics at the end.
    pub stats: EngineStats,
}

/// Runs the open loop on `edges` (among `users` users) in a new store in `dir`.
pub fn run_open_loop(
    dir: &Path,
    users: u32,
    edges: &[(UserId, UserId)],
    config: &OpenLoopConfig,
    observer: &dyn Observer,
) -> Result<OpenLoopRun> {
    if config.active_readers == 0 || config.active_readers > users {
        return Err(Error::invalid(format!(
            "active readers {} must be 1 to the {users} users",
            config.active_readers
        )));
    }
    let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x0be7_10ad);
    let mut run = OpenLoopRun {
        active_readers: config.active_readers,
        ..OpenLoopRun::default()
    };

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
    // A clock that stays at 0: no reader goes quiet during the run.
    let engine = Engine::open(
        dir,
        Config {
            users_max: users,
            timeline_capacity: config.timeline_capacity,
            durability: Durability::Buffered,
            workers: config.workers,
            clock: Clock::manual(0),
            strategy: Strategy::Push,
            ..Config::default()
        },
    )?;
    observer.advance(edges.len() as u64);
    run.load = started.elapsed();

    let mut readers: Vec<u32> = (0..users).collect();
    readers.shuffle(&mut rng);
    readers.truncate(config.active_readers as usize);
    readers.sort_unstable();
    observer.phase("activate", readers.len() as u64);
    let started = Instant::now();
    for (i, &u) in readers.iter().enumerate() {
        engine.home_timeline(UserId(u), Page::latest(config.page_size))?;
        if i % 16_384 == 0 {
            observer.advance(i as u64);
            if observer.stopped() {
                return Ok(run);
            }
        }
    }
    run.activate = started.elapsed();

    let mut weights = vec![1.0f64; users as usize];
    for &(_, followee) in edges {
        weights[followee.0 as usize] += 1.0;
    }
    for w in &mut weights {
        *w = w.powf(AUTHOR_FOLLOWER_EXPONENT);
    }
    let authors = WeightedAliasIndex::new(weights).expect("weights are positive and finite");
    let shared = Shared {
        engine: &engine,
        authors: &authors,
        readers: &readers,
        config,
        posted: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        observer,
    };

    run.history = shared.history()?;
    if observer.stopped() {
        return Ok(run);
    }
    engine.reset_delivery_lag();
    let before = engine.stats();
    let cpu_before = process_cpu_s();
    observer.phase("run", (config.seconds * 1000.0) as u64);
    let started = Instant::now();
    let parts: Vec<Result<Part>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.drivers.max(1))
            .map(|d| {
                let shared = &shared;
                scope.spawn(move || shared.offer(d, started))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a driver thread does not panic"))
            .collect()
    });
    run.run = started.elapsed();
    let mut total = Part::new();
    for part in parts {
        total.add(part?);
    }
    let flushing = Instant::now();
    engine.flush()?;
    run.flush = flushing.elapsed();
    run.cpu_s = process_cpu_s() - cpu_before;
    run.driver_cpu_s = total.cpu_s;
    run.read_cpu_s = total.read_service_s;
    run.complete = !shared.stop.load(Ordering::Relaxed);
    run.posts = total.posts.offered();
    run.reads = total.reads.offered();
    let after = engine.stats();
    run.deliveries = after.deliveries - before.deliveries;
    run.lag_ms_p50 = after.delivery_lag_ms_p50;
    run.lag_ms_p99 = after.delivery_lag_ms_p99;
    run.lag_ms_max = after.delivery_lag_ms_max;
    run.rss_bytes = resident_bytes().unwrap_or(0);
    run.rss_peak_bytes = resident_peak_bytes().unwrap_or(0);
    run.stats = after;
    Ok(run)
}

struct Shared<'a> {
    engine: &'a Engine,
    authors: &'a WeightedAliasIndex<f64>,
    readers: &'a [u32],
    config: &'a OpenLoopConfig,
    /// Posts made so far (the synthetic bodies' ids).
    posted: AtomicU64,
    stop: AtomicBool,
    observer: &'a dyn Observer,
}

/// Counts and latency of one kind of operation on one driver.
struct Kind {
    offered: u64,
    done: u64,
    from_schedule: Histogram<u64>,
    service: Histogram<u64>,
}

impl Kind {
    fn new() -> Kind {
        let h = || Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid bounds");
        Kind {
            offered: 0,
            done: 0,
            from_schedule: h(),
            service: h(),
        }
    }

    fn add(&mut self, o: &Kind) {
        self.offered += o.offered;
        self.done += o.done;
        self.from_schedule
            .add(&o.from_schedule)
            .expect("same bounds");
        self.service.add(&o.service).expect("same bounds");
    }

    fn offered(&self) -> Offered {
        Offered {
            offered: self.offered,
            done: self.done,
            from_schedule_ns: latency_quantiles(&self.from_schedule),
            service_ns: latency_quantiles(&self.service),
        }
    }
}

struct Part {
    posts: Kind,
    reads: Kind,
    cpu_s: f64,
    read_service_s: f64,
}

impl Part {
    fn new() -> Part {
        Part {
            posts: Kind::new(),
            reads: Kind::new(),
            cpu_s: 0.0,
            read_service_s: 0.0,
        }
    }

    fn add(&mut self, o: Part) {
        self.posts.add(&o.posts);
        self.reads.add(&o.reads);
        self.cpu_s += o.cpu_s;
        self.read_service_s += o.read_service_s;
    }
}

impl Shared<'_> {
    fn post(&self, rng: &mut SmallRng) -> Result<()> {
        let n = self.posted.fetch_add(1, Ordering::Relaxed);
        let mut notice = synthetic_notice(NoticeId(n + 1));
        notice.author = UserId(self.authors.sample(rng) as u32);
        // The fan-out alone: no mention deliveries.
        notice.mentions.clear();
        self.engine.post(notice)?;
        Ok(())
    }

    fn read(&self, rng: &mut SmallRng) -> Result<()> {
        let user = self.readers[rng.random_range(0..self.readers.len())];
        let page = self
            .engine
            .home_timeline(UserId(user), Page::latest(self.config.page_size))?;
        let mut bytes = 0usize;
        for id in &page.ids {
            if let Some(notice) = self.engine.notice(*id) {
                bytes += notice.body().len();
            }
        }
        std::hint::black_box(bytes);
        Ok(())
    }

    /// The history phase on the driver threads.
    fn history(&self) -> Result<HistoryRun> {
        let posts = self.config.history_posts;
        self.observer.phase("history", posts);
        let before = self.engine.stats().deliveries;
        let started = Instant::now();
        let drivers = u64::from(self.config.drivers.max(1));
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..drivers)
                .map(|d| {
                    scope.spawn(move || {
                        let mut rng =
                            SmallRng::seed_from_u64(self.config.seed ^ (d << 32) ^ 0x4157);
                        for i in (d..posts).step_by(drivers as usize) {
                            self.post(&mut rng)?;
                            if d == 0 && i % 8192 == 0 {
                                self.observer.advance(i);
                                if self.observer.stopped() {
                                    break;
                                }
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a history driver does not panic"))
                .collect()
        });
        for r in results {
            r?;
        }
        self.engine.flush()?;
        Ok(HistoryRun {
            posts: self.posted.load(Ordering::Relaxed),
            deliveries: self.engine.stats().deliveries - before,
            elapsed: started.elapsed(),
        })
    }

    /// One driver of the measured phase: its share of the arrivals, each done at its
    /// scheduled time or as soon as the driver is free after it.
    fn offer(&self, d: u32, start: Instant) -> Result<Part> {
        let c = self.config;
        let share = 1.0 / f64::from(c.drivers.max(1));
        let mut rng = SmallRng::seed_from_u64(c.seed ^ (u64::from(d) << 40) ^ 0x0fe7);
        let mut part = Part::new();
        let cpu_start = thread_cpu_s();
        let gap = |rng: &mut SmallRng, rate: f64| {
            if rate <= 0.0 {
                f64::INFINITY
            } else {
                let e: f64 = Exp1.sample(rng);
                e / rate
            }
        };
        let mut next_read = gap(&mut rng, c.reads_per_s * share);
        let mut next_post = next_post_after(c, 0.0, share, &mut rng);
        let mut done = 0u64;
        loop {
            let read = next_read <= next_post;
            let at = if read { next_read } else { next_post };
            if at >= c.seconds {
                break;
            }
            let mut now = start.elapsed().as_secs_f64();
            // Ahead of the schedule: sleep, or serve at once an arrival due within
            // EARLY_S (the drivers do not spin; its latency is then its service time).
            while at - now > EARLY_S {
                std::thread::sleep(Duration::from_secs_f64(at - now - EARLY_S / 2.0));
                now = start.elapsed().as_secs_f64();
            }
            let kind = if read {
                &mut part.reads
            } else {
                &mut part.posts
            };
            kind.offered += 1;
            let stopped = self.stop.load(Ordering::Relaxed);
            if now < c.seconds && !stopped {
                let t = Instant::now();
                if read {
                    self.read(&mut rng)?;
                } else {
                    self.post(&mut rng)?;
                }
                let service = t.elapsed();
                let end = start.elapsed().as_secs_f64();
                kind.done += 1;
                let waited = ((end - at) * 1e9).max(0.0) as u64;
                let _ = kind
                    .from_schedule
                    .record(waited.max(service.as_nanos() as u64).max(1));
                let _ = kind.service.record((service.as_nanos() as u64).max(1));
                if read {
                    part.read_service_s += service.as_secs_f64();
                }
            }
            if read {
                next_read += gap(&mut rng, c.reads_per_s * share);
            } else {
                next_post = next_post_after(c, next_post, share, &mut rng);
            }
            done += 1;
            if d == 0 && done.is_multiple_of(4096) {
                self.observer.advance((now * 1000.0) as u64);
                if self.observer.stopped() {
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
        }
        part.cpu_s = thread_cpu_s() - cpu_start;
        Ok(part)
    }
}
