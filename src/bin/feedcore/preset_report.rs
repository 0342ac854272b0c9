//! The report of `feedcore sim --preset twitter-2012`: the table, the JSON (keys
//! documented in docs/lab.md) and a verdict per budget line.

use feedcore::sim::{CachedGraph, Offered, OpenLoopConfig, OpenLoopRun, TwitterGraph};
use serde_json::{Value, json};

use crate::graph_cmd::{finite, summary_json};

/// The budgets of the preset.
pub(crate) const READS_HELD_SHARE: f64 = 0.5;
/// p99 read latency from schedule, microseconds.
pub(crate) const READ_P99_US: f64 = 1_000.0;
/// p99 delivery lag, milliseconds.
pub(crate) const LAG_P99_MS: f64 = 1_000.0;
/// Timeline bytes per stored entry.
pub(crate) const BYTES_PER_ENTRY: f64 = 5.0;
/// Peak resident memory, GiB.
pub(crate) const RSS_GIB: f64 = 20.0;

/// What the report is made of.
pub(crate) struct PresetReport<'a> {
    pub(crate) graph: &'a TwitterGraph,
    pub(crate) config: &'a OpenLoopConfig,
    pub(crate) cached: &'a CachedGraph,
    pub(crate) run: &'a OpenLoopRun,
    pub(crate) wall_s: f64,
}

/// One budget line: whether it held, the figure, and what limited it.
pub(crate) struct Verdict {
    pub(crate) budget: &'static str,
    pub(crate) held: bool,
    pub(crate) measured: String,
    pub(crate) note: String,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 30)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl PresetReport<'_> {
    fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.config.seconds
    }

    /// Share of the machine's cores this process kept busy in the measured phase.
    fn busy_share(&self) -> f64 {
        self.run.cpu_s / (self.run.run.as_secs_f64().max(1e-9) * cores() as f64)
    }

    /// What limited the run, from the CPU accounting.
    fn saturation(&self) -> String {
        let r = self.run;
        let busy = self.busy_share();
        let drivers = r.driver_cpu_s / r.cpu_s.max(1e-9);
        let us_per_read = r.read_cpu_s * 1e6 / r.reads.done.max(1) as f64;
        let capacity = cores() as f64 * 1e6 / us_per_read.max(1e-9);
        format!(
            "this process kept {:.0}% of {} cores busy (drivers {:.0}% of its CPU time, the \
             fan-out workers and the rest {:.0}%); a read takes {:.2} us of service on \
             average, so the cores alone would carry at most about {:.0} k reads/s",
            100.0 * busy,
            cores(),
            100.0 * drivers,
            100.0 * (1.0 - drivers),
            us_per_read,
            capacity / 1000.0
        )
    }

    pub(crate) fn verdicts(&self) -> Vec<Verdict> {
        let r = self.run;
        let reads_share = r.reads.done as f64 / r.reads.offered.max(1) as f64;
        let read_p99 = us(r.reads.from_schedule(0.99));
        let reads_held = reads_share >= READS_HELD_SHARE && read_p99 <= READ_P99_US;
        let all_reads = reads_share >= 0.99 && read_p99 <= READ_P99_US;
        let posts_done = r.posts.done == r.posts.offered && r.stats.pending_posts == 0;
        let lag_held = posts_done && r.lag_ms_p99 <= LAG_P99_MS;
        let bpe = r.stats.timeline_bytes_per_entry;
        vec![
            Verdict {
                budget: "reads: >= 50% of the offered held, p99 from schedule <= 1 ms",
                held: reads_held,
                measured: format!(
                    "{:.0} of {:.0} reads/s ({:.0}%), p99 {:.0} us",
                    self.per_s(r.reads.done),
                    self.per_s(r.reads.offered),
                    100.0 * reads_share,
                    read_p99
                ),
                note: if all_reads {
                    "the whole offered load held".into()
                } else {
                    self.saturation()
                },
            },
            Verdict {
                budget: "posts: all delivered, p99 lag <= 1 s",
                held: lag_held,
                measured: format!(
                    "{} of {} posts, lag p50 {:.1} / p99 {:.1} ms",
                    r.posts.done, r.posts.offered, r.lag_ms_p50, r.lag_ms_p99
                ),
                note: format!(
                    "{:.1} deliveries a post to active readers",
                    r.deliveries as f64 / r.posts.done.max(1) as f64
                ),
            },
            Verdict {
                budget: "bytes per timeline entry <= 5",
                held: bpe <= BYTES_PER_ENTRY,
                measured: format!("{bpe:.2} B/entry"),
                note: format!(
                    "{} entries in {} timelines ({:.0} a timeline of {}); the per-user slots \
                     ({SLOT_BYTES} B a user) and ring headers ({RING_HEADER_BYTES} B) are \
                     shared by few entries and the last chunk of a ring is part empty; \
                     with full timelines it would be {:.2} B/entry",
                    r.stats.timeline_entries,
                    r.stats.timelines,
                    r.stats.timeline_entries as f64 / r.stats.timelines.max(1) as f64,
                    self.config.timeline_capacity,
                    full_bytes_per_entry(
                        self.graph.users,
                        r.stats.timelines,
                        self.config.timeline_capacity
                    )
                ),
            },
            Verdict {
                budget: "resident memory < 20 GiB",
                held: gib(r.rss_peak_bytes) < RSS_GIB,
                measured: format!(
                    "peak {:.2} GiB, end {:.2} GiB",
                    gib(r.rss_peak_bytes),
                    gib(r.rss_bytes)
                ),
                note: "VmHWM / VmRSS: heap, rings and mapped files".into(),
            },
        ]
    }
}

/// Bytes of a user's timeline slot (state word and ring pointer).
pub(crate) const SLOT_BYTES: u64 = 16;
/// Bytes of a ring's header.
pub(crate) const RING_HEADER_BYTES: u64 = 128;

/// Timeline bytes per entry were every one of `rings` timelines full.
fn full_bytes_per_entry(users: u32, rings: u64, capacity: u32) -> f64 {
    let entries = rings * u64::from(capacity);
    let bytes =
        u64::from(users) * SLOT_BYTES + rings * (RING_HEADER_BYTES + 4 * u64::from(capacity));
    bytes as f64 / entries.max(1) as f64
}

fn offered_json(o: &Offered, seconds: f64) -> Value {
    let q = |f: &dyn Fn(f64) -> u64| {
        json!({
            "p50": us(f(0.5)), "p90": us(f(0.9)), "p99": us(f(0.99)),
            "p999": us(f(0.999)), "max": us(f(1.0)),
        })
    };
    json!({
        "offered": o.offered,
        "done": o.done,
        "offered_per_s": o.offered as f64 / seconds,
        "achieved_per_s": o.done as f64 / seconds,
        "held_share": o.done as f64 / o.offered.max(1) as f64,
        "from_schedule_us": q(&|x| o.from_schedule(x)),
        "service_us": q(&|x| o.service(x)),
    })
}

/// The report as JSON.
pub(crate) fn json(p: &PresetReport) -> Value {
    let r = p.run;
    let c = p.config;
    let h = &r.history;
    let verdicts: Vec<Value> = p
        .verdicts()
        .into_iter()
        .map(
            |v| json!({"budget": v.budget, "held": v.held, "measured": v.measured, "note": v.note}),
        )
        .collect();
    json!({
        "preset": "twitter-2012",
        "complete": r.complete,
        "parameters": {
            "users": p.graph.users,
            "follows_target": (f64::from(p.graph.users) * p.graph.follows_mean) as u64,
            "follower_exponent_drawn": p.graph.follower_exponent,
            "top_follower_fraction": p.graph.top_follower_fraction,
            "out_degree_sigma": p.graph.out_degree_sigma,
            "active_readers": c.active_readers,
            "timeline_capacity": c.timeline_capacity,
            "seconds": c.seconds,
            "posts_per_s": c.posts_per_s,
            "peak_posts_per_s": c.peak_posts_per_s,
            "reads_per_s": c.reads_per_s,
            "history_posts": c.history_posts,
            "drivers": c.drivers,
            "workers": c.workers,
            "seed": c.seed,
        },
        "graph": {
            "summary": summary_json(&p.cached.summary),
            "from_cache": p.cached.from_cache,
            "cache_path": p.cached.path.display().to_string(),
            "rejected_cache": p.cached.rejected,
            "seconds": p.cached.seconds,
        },
        "phases": {
            "load_s": r.load.as_secs_f64(),
            "activate_s": r.activate.as_secs_f64(),
            "history": {
                "posts": h.posts,
                "deliveries": h.deliveries,
                "seconds": h.elapsed.as_secs_f64(),
                "deliveries_per_s": h.deliveries as f64 / h.elapsed.as_secs_f64().max(1e-9),
            },
            "run_s": r.run.as_secs_f64(),
            "flush_s": r.flush.as_secs_f64(),
        },
        "reads": offered_json(&r.reads, c.seconds),
        "posts": offered_json(&r.posts, c.seconds),
        "deliveries": r.deliveries,
        "deliveries_per_post": r.deliveries as f64 / r.posts.done.max(1) as f64,
        "lag_ms": { "p50": r.lag_ms_p50, "p99": r.lag_ms_p99, "max": r.lag_ms_max },
        "memory": {
            "rss_bytes": r.rss_bytes,
            "rss_peak_bytes": r.rss_peak_bytes,
            "timelines": r.stats.timelines,
            "timeline_entries": r.stats.timeline_entries,
            "timeline_bytes": r.stats.timeline_bytes,
            "bytes_per_entry": finite(r.stats.timeline_bytes_per_entry),
            "bytes_per_entry_full": full_bytes_per_entry(p.graph.users, r.stats.timelines, c.timeline_capacity),
        },
        "cpu": {
            "cores": cores(),
            "process_s": r.cpu_s,
            "drivers_s": r.driver_cpu_s,
            "reads_s": r.read_cpu_s,
            "busy_share": p.busy_share(),
            "read_service_us_mean": r.read_cpu_s * 1e6 / r.reads.done.max(1) as f64,
        },
        "verdicts": verdicts,
        "wall_s": p.wall_s,
    })
}

/// The report as a table.
pub(crate) fn print_table(p: &PresetReport) {
    let r = p.run;
    let c = p.config;
    let s = &p.cached.summary;
    println!(
        "twitter-2012: {} users, {} follows (target {:.0}), {} active readers, timelines of {}",
        s.users,
        s.follows,
        f64::from(p.graph.users) * p.graph.follows_mean,
        c.active_readers,
        c.timeline_capacity
    );
    println!(
        "graph: follower exponent {:.3} (Kwak 2.28), top account {:.2}% of users (Kwak ~7%), \
         reciprocal pairs {:.3} (Kwak 0.221); {} in {:.1} s",
        s.follower_exponent,
        100.0 * s.top_follower_fraction,
        s.reciprocal_pairs,
        if p.cached.from_cache {
            "read from the cache"
        } else {
            "generated"
        },
        p.cached.seconds
    );
    let h = &r.history;
    println!(
        "phases: load {:.1} s, activate {:.1} s, history {} posts / {} deliveries in {:.1} s \
         ({:.2} M deliveries/s), run {:.1} s, flush {:.2} s",
        r.load.as_secs_f64(),
        r.activate.as_secs_f64(),
        h.posts,
        h.deliveries,
        h.elapsed.as_secs_f64(),
        h.deliveries as f64 / h.elapsed.as_secs_f64().max(1e-9) / 1e6,
        r.run.as_secs_f64(),
        r.flush.as_secs_f64()
    );
    println!();
    println!(
        "{:<6} {:>11} {:>11} {:>7} {:>30} {:>24}",
        "",
        "offered/s",
        "achieved/s",
        "held",
        "from schedule p50/p99/p999 us",
        "service p50/p99 us"
    );
    for (name, o) in [("reads", &r.reads), ("posts", &r.posts)] {
        println!(
            "{:<6} {:>11.0} {:>11.0} {:>6.1}% {:>30} {:>24}",
            name,
            o.offered as f64 / c.seconds,
            o.done as f64 / c.seconds,
            100.0 * o.done as f64 / o.offered.max(1) as f64,
            format!(
                "{:.1} / {:.1} / {:.1}",
                us(o.from_schedule(0.5)),
                us(o.from_schedule(0.99)),
                us(o.from_schedule(0.999))
            ),
            format!("{:.1} / {:.1}", us(o.service(0.5)), us(o.service(0.99)))
        );
    }
    println!();
    for v in p.verdicts() {
        println!(
            "{:<9} {}: {}",
            if v.held { "held" } else { "NOT HELD" },
            v.budget,
            v.measured
        );
        println!("          {}", v.note);
    }
    println!("wall {:.1} s", p.wall_s);
}
