//! The laboratory's results: one row per (system, ratio), the printed table, the JSON
//! report and the report directory.
//!
//! The JSON keeps what the seed decides apart from what the machine measured:
//! `workload` (graph parameters and statistics, workload parameters, operation counts
//! and a digest of the sequence, the strategies and their parameters) is the same
//! byte for byte for the same options; `measured` (rates, latencies, memory, costs,
//! times, the machine) is not.

use std::path::Path;

use feedcore::Strategy;
use feedcore::sim::{EngineRun, GraphModel, GraphSummary, Workload, WorkloadSummary};
use serde_json::{Value, json};

use crate::graph_cmd::{finite, summary_json};
use crate::redis_baseline::{BenchmarkRun, RedisRun};
use crate::sim::SimArgs;

/// One line of the table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// Strategy name, or `redis-list` / `redis-zset`.
    pub(crate) name: &'static str,
    pub(crate) read_write: f64,
    pub(crate) complete: bool,
    /// Posts per second of time spent inside post calls.
    pub(crate) posts_per_s: f64,
    /// Deliveries per second of wall time (run plus final flush).
    pub(crate) deliveries_per_s: f64,
    /// Reads per second of time spent inside reads.
    pub(crate) reads_per_s: f64,
    /// Read latency p50, p99, p999, microseconds.
    pub(crate) read_us: [f64; 3],
    /// Delivery lag p50, p99, milliseconds.
    pub(crate) lag_ms: [f64; 2],
    /// feedcore: anonymous RSS delta; Redis: used_memory delta. MB.
    pub(crate) memory_mb: f64,
    pub(crate) bytes_per_entry: f64,
    /// Id bytes touched per operation (feedcore only).
    pub(crate) cost_per_op: Option<f64>,
    /// Deliveries per second of the capacity phase (feedcore strategies that push).
    pub(crate) capacity_per_s: Option<f64>,
    pub(crate) quantiles: Vec<(f64, u64)>,
    /// With `--groups` / `--tag-follows`: each new stream's pages read and p50, p99
    /// latency, microseconds.
    pub(crate) streams: Vec<(&'static str, u64, f64, f64)>,
    /// Everything measured, for the JSON report.
    pub(crate) detail: Value,
}

fn per_s(n: u64, d: std::time::Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

fn quantiles_json(q: &[(f64, u64)]) -> Value {
    Value::Array(
        q.iter()
            .map(|&(q, ns)| json!([q, ns as f64 / 1000.0]))
            .collect(),
    )
}

impl Row {
    pub(crate) fn from_engine(r: &EngineRun, read_write: f64) -> Row {
        let us = |q| r.read_ns(q) as f64 / 1000.0;
        let s = &r.stats;
        let row = Row {
            name: r.strategy,
            read_write,
            complete: r.complete,
            posts_per_s: per_s(r.posts, r.post_time),
            deliveries_per_s: per_s(r.deliveries, r.run + r.flush),
            reads_per_s: per_s(r.reads, r.read_time),
            read_us: [us(0.5), us(0.99), us(0.999)],
            lag_ms: [s.delivery_lag_ms_p50, s.delivery_lag_ms_p99],
            memory_mb: r.resident_anon_delta_bytes as f64 / 1e6,
            bytes_per_entry: s.timeline_bytes_per_entry,
            cost_per_op: Some(r.cost_per_op()),
            capacity_per_s: r.capacity.as_ref().map(|c| c.deliveries_per_s()),
            quantiles: r.read_ns_quantiles.clone(),
            streams: r
                .stream_reads
                .iter()
                .map(|x| {
                    let us = |q| x.read_ns(q) as f64 / 1000.0;
                    (x.stream, x.reads, us(0.5), us(0.99))
                })
                .collect(),
            detail: Value::Null,
        };
        let streams: Vec<Value> = r
            .stream_reads
            .iter()
            .map(|x| {
                json!({
                    "stream": x.stream,
                    "reads": x.reads,
                    "quantiles": quantiles_json(&x.read_ns_quantiles),
                })
            })
            .collect();
        let outbox = r.outbox.as_ref().map(|o| {
            let ms = |q| o.lag_ns(q) as f64 / 1e6;
            json!({
                "meaning": "remote users on other servers; a delivery worker takes batches of 256 due deliveries, fails those of servers that are down, acks the rest with ack_all; lag: a local post's start to its delivery's hand-out (first attempts)",
                "remote_accounts": o.remote_accounts,
                "remote_servers": o.remote_servers,
                "servers_down_one_in": feedcore::sim::SIM_DOWN_EVERY,
                "remote_posts": o.remote_posts,
                "handed_out": o.handed_out,
                "acked": o.acked,
                "failed": o.failed,
                "followers_addressed": o.followers_addressed,
                "lag_ms": {
                    "p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0),
                    "quantiles": o.lag_ns_quantiles.iter().map(|&(q, ns)| json!([q, ns as f64 / 1e6])).collect::<Vec<_>>(),
                },
                "lag_unmatched": o.lag_unmatched,
                "pending_max": o.pending_max,
                "queue_bytes_max": o.queue_bytes_max,
                "pending_end": o.pending_end,
                "file_bytes": o.file_bytes,
                "seconds": { "worker": o.worker.as_secs_f64(), "busy": o.busy.as_secs_f64() },
                "handed_out_per_busy_s": o.handed_out as f64 / o.busy.as_secs_f64().max(1e-9),
            })
        });
        let detail = json!({
            "outbox": outbox,
            "stream_reads": streams,
            "system": "feedcore",
            "strategy": r.strategy,
            "read_write": read_write,
            "complete": r.complete,
            "ops_done": r.ops_done,
            "posts": r.posts,
            "reads": r.reads,
            "seconds": {
                "load": r.load.as_secs_f64(), "warm_up": r.warm_up.as_secs_f64(),
                "run": r.run.as_secs_f64(), "flush": r.flush.as_secs_f64(),
                "in_posts": r.post_time.as_secs_f64(), "in_reads": r.read_time.as_secs_f64(),
            },
            "posts_per_s": row.posts_per_s,
            "deliveries": r.deliveries,
            "deliveries_per_s": row.deliveries_per_s,
            "reads_per_s": row.reads_per_s,
            "read_latency_us": {
                "p50": row.read_us[0], "p99": row.read_us[1], "p999": row.read_us[2],
                "quantiles": quantiles_json(&r.read_ns_quantiles),
            },
            "delivery_lag_ms": { "p50": s.delivery_lag_ms_p50, "p99": s.delivery_lag_ms_p99, "max": s.delivery_lag_ms_max },
            "memory": {
                "resident_anon_delta_bytes": r.resident_anon_delta_bytes,
                "source": "/proc/self/statm resident - shared, after the run minus before the load",
                "timeline_bytes": s.timeline_bytes,
                "timeline_entries": s.timeline_entries,
                "timeline_bytes_per_entry": s.timeline_bytes_per_entry,
            },
            "cost": {
                "unit": "id bytes touched (EngineStats::cost_bytes_touched)",
                "per_op": r.cost_per_op(),
                "bytes_touched": r.cost_bytes_touched,
                "timeline_writes": r.cost_timeline_writes,
                "author_index_reads": r.cost_author_index_reads,
                "merge_steps": r.cost_merge_steps,
                "ring_reads": r.cost_ring_reads,
                "push_ns": s.push_ns,
                "pull_ns_per_author": s.pull_ns_per_author,
            },
            "rebuilds": s.rebuilds,
            "body_bytes_read": r.body_bytes_read,
            "drivers": r.drivers,
            "retargeted": r.retargeted,
            "capacity": r.capacity.as_ref().map(|c| json!({
                "meaning": "drivers post as fast as they can (authors drawn by follower count) into active timelines; deliveries per second from the first post to the end of the flush",
                "drivers": c.drivers,
                "posts": c.posts,
                "deliveries": c.deliveries,
                "seconds": { "posting": c.posting.as_secs_f64(), "until_flushed": c.elapsed.as_secs_f64() },
                "deliveries_per_s": c.deliveries_per_s(),
                "posts_per_s": c.posts as f64 / c.elapsed.as_secs_f64().max(1e-9),
            })),
        });
        Row { detail, ..row }
    }

    pub(crate) fn from_redis(r: &RedisRun, read_write: f64) -> Row {
        let us = |q| r.read_ns(q) as f64 / 1000.0;
        let row = Row {
            name: r.layout,
            read_write,
            complete: r.complete,
            posts_per_s: per_s(r.posts, r.run),
            deliveries_per_s: per_s(r.deliveries, r.run + r.drain),
            reads_per_s: per_s(r.reads, r.run),
            read_us: [us(0.5), us(0.99), us(0.999)],
            lag_ms: [r.lag_ms_p50, r.lag_ms_p99],
            memory_mb: r.used_memory_delta_bytes as f64 / 1e6,
            bytes_per_entry: r.bytes_per_entry,
            streams: Vec::new(),
            cost_per_op: None,
            capacity_per_s: None,
            quantiles: r.read_ns_quantiles.clone(),
            detail: Value::Null,
        };
        let detail = json!({
            "system": "redis",
            "layout": r.layout,
            "read_write": read_write,
            "complete": r.complete,
            "ops_done": r.ops_done,
            "posts": r.posts,
            "reads": r.reads,
            "connections": { "clients": r.connections, "fan_out": r.fanout_connections },
            "seconds": { "run": r.run.as_secs_f64(), "fan_out_drain": r.drain.as_secs_f64() },
            "rates_meaning": "posts_per_s and reads_per_s per second of run wall time over every client connection; deliveries_per_s over run plus drain",
            "post_latency_us": { "p50": r.post_us_p50, "p99": r.post_us_p99 },
            "fan_out": {
                "commands": r.commands, "pipelines": r.pipelines,
                "commands_per_s": per_s(r.commands, r.run + r.drain),
                "commands_per_pipeline": r.commands as f64 / r.pipelines.max(1) as f64,
            },
            "posts_per_s": row.posts_per_s,
            "deliveries": r.deliveries,
            "deliveries_per_s": row.deliveries_per_s,
            "reads_per_s": row.reads_per_s,
            "read_latency_us": {
                "p50": row.read_us[0], "p99": row.read_us[1], "p999": row.read_us[2],
                "quantiles": quantiles_json(&r.read_ns_quantiles),
            },
            "delivery_lag_ms": { "p50": r.lag_ms_p50, "p99": r.lag_ms_p99,
                "meaning": "from a post's SET acknowledged to its last pipelined delivery acknowledged" },
            "memory": {
                "used_memory_delta_bytes": r.used_memory_delta_bytes,
                "source": "INFO memory used_memory after the run minus before (bodies included)",
                "timeline_bytes_per_entry": r.bytes_per_entry,
                "bytes_per_entry_source": "MEMORY USAGE / LLEN or ZCARD over up to 1000 timelines",
            },
        });
        Row { detail, ..row }
    }
}

/// The whole report as it is built.
pub(crate) struct SimReport {
    workload: Value,
    pub(crate) ratios: Vec<f64>,
    pub(crate) rows: Vec<Row>,
    header: String,
    graph_s: f64,
    wall_s: f64,
    interrupted: bool,
    /// `redis-benchmark` against the baseline's server, or why there is none.
    redis_benchmark: Option<Result<BenchmarkRun, String>>,
}

fn strategy_json(s: &Strategy, known_rates: bool) -> Value {
    match *s {
        Strategy::Push | Strategy::Pull => json!({ "name": s.name() }),
        Strategy::Hybrid { followers_min } => {
            json!({ "name": s.name(), "followers_min": followers_min })
        }
        Strategy::Selective { push_threshold } => {
            json!({ "name": s.name(), "push_threshold": push_threshold, "known_rates": known_rates })
        }
        Strategy::Lossy { follows_reasonable } => {
            json!({ "name": s.name(), "follows_reasonable": follows_reasonable })
        }
    }
}

impl SimReport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        args: &SimArgs,
        model: &GraphModel,
        summary: &GraphSummary,
        workloads: &[Workload],
        summaries: &[WorkloadSummary],
        strategies: &[Strategy],
        graph_s: f64,
    ) -> SimReport {
        let params: serde_json::Map<String, Value> = model
            .parameters()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let w = &workloads[0];
        let runs: Vec<Value> = workloads
            .iter()
            .zip(summaries)
            .map(|(w, s)| {
                json!({
                    "read_write": w.read_write_ratio,
                    "posts": s.posts, "reads": s.reads, "replies": s.replies,
                    "repeats": s.repeats, "mentions": s.mentions, "readers": s.readers,
                    "top_tenth_post_share": s.top_tenth_post_share,
                    "digest": format!("{:016x}", s.digest),
                })
            })
            .collect();
        let workload = json!({
            "graph": { "model": model.name(), "parameters": params, "summary": summary_json(summary) },
            "workload": {
                "users": w.users, "ops": w.ops, "seed": w.seed,
                "post_skew": w.post_skew, "read_skew": w.read_skew,
                "reply_fraction": w.reply_fraction, "repeat_fraction": w.repeat_fraction,
                "mention_fraction": w.mention_fraction, "page_size": w.page_size,
                "body_bytes": feedcore::sim::SYNTHETIC_BODY_BYTES,
                "durability": "buffered", "workers": args.workers, "timeline_capacity": 800,
                "simulated_ms": (1 + u64::from(args.warm_up_hours)) * feedcore::sim::LabConfig::default().simulated_ms,
                "warm_up": "every user reads its home timeline once before the run",
                "warm_up_hours": args.warm_up_hours,
                "measured_ops": args.ops,
            },
            "ratios": runs,
            "strategies": strategies
                .iter()
                .map(|s| strategy_json(s, args.selective_known_rates))
                .collect::<Vec<_>>(),
            "baseline": args.baseline.map(|_| "redis"),
        });
        let s = &summaries[0];
        let header = format!(
            "{} graph: {} users, {} follows (mean {:.1}, top account followed by {:.1}%, fitted exponent {:.2}, reciprocal pairs {:.1}%)\n\
             workload: {} ops per run{}, seed {}; a tenth of the users write {:.0}% of posts; replies {:.0}%, repeats {:.0}%, mentions {:.0}% of originals; pages of {} with bodies",
            model.name(),
            summary.users,
            summary.follows,
            summary.follows_mean,
            100.0 * summary.top_follower_fraction,
            summary.follower_exponent,
            100.0 * summary.reciprocal_pairs,
            args.ops,
            if args.warm_up_hours > 0 {
                format!(
                    " measured after {} simulated hours of warm-up ({} ops)",
                    args.warm_up_hours,
                    w.ops - args.ops
                )
            } else {
                String::new()
            },
            w.seed,
            100.0 * s.top_tenth_post_share,
            100.0 * w.reply_fraction,
            100.0 * w.repeat_fraction,
            100.0 * w.mention_fraction,
            w.page_size,
        );
        let header = if args.selective_known_rates {
            header
                + "\nselective decides by the workload's true post and read rates (--selective-known-rates), not by estimates"
        } else {
            header
        };
        SimReport {
            workload,
            ratios: workloads.iter().map(|w| w.read_write_ratio).collect(),
            rows: Vec::new(),
            header,
            graph_s,
            wall_s: 0.0,
            interrupted: false,
            redis_benchmark: None,
        }
    }

    /// Records what `redis-benchmark` measured on the baseline's server.
    pub(crate) fn set_redis_benchmark(&mut self, run: Result<BenchmarkRun, String>) {
        self.redis_benchmark = Some(run);
    }

    /// The Redis rows' fan-out commands per second beside `redis-benchmark`'s LPUSH/s.
    fn redis_benchmark_json(&self) -> Value {
        match &self.redis_benchmark {
            None => Value::Null,
            Some(Err(reason)) => json!({ "error": reason }),
            Some(Ok(b)) => {
                let fan_out: Vec<Value> = self
                    .rows
                    .iter()
                    .filter(|r| r.detail["system"] == "redis")
                    .map(|r| {
                        let per_s = r.detail["fan_out"]["commands_per_s"]
                            .as_f64()
                            .unwrap_or(0.0);
                        json!({
                            "layout": r.name, "read_write": r.read_write,
                            "fan_out_commands_per_s": per_s,
                            "ratio_to_benchmark": finite(per_s / b.lpush_per_s),
                        })
                    })
                    .collect();
                json!({ "command": b.command, "lpush_per_s": b.lpush_per_s, "fan_out": fan_out })
            }
        }
    }

    pub(crate) fn add(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub(crate) fn finish(&mut self, wall_s: f64, interrupted: bool) {
        self.wall_s = wall_s;
        self.interrupted = interrupted;
    }

    fn push_row(&self, read_write: f64) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.name == "push" && r.read_write == read_write)
    }

    /// `value / push's value` for each figure, when push ran at the same ratio.
    fn ratio_to_push(&self, row: &Row) -> Option<Value> {
        let push = self.push_row(row.read_write)?;
        let r = |a: f64, b: f64| finite(a / b);
        Some(json!({
            "meaning": "this row's value / feedcore push's value, same workload",
            "posts_per_s": r(row.posts_per_s, push.posts_per_s),
            "deliveries_per_s": r(row.deliveries_per_s, push.deliveries_per_s),
            "reads_per_s": r(row.reads_per_s, push.reads_per_s),
            "read_us_p50": r(row.read_us[0], push.read_us[0]),
            "read_us_p99": r(row.read_us[1], push.read_us[1]),
            "read_us_p999": r(row.read_us[2], push.read_us[2]),
            "memory": r(row.memory_mb, push.memory_mb),
            "bytes_per_entry": r(row.bytes_per_entry, push.bytes_per_entry),
        }))
    }

    pub(crate) fn json(&self) -> Value {
        let runs: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut d = row.detail.clone();
                if row.cost_per_op.is_none()
                    && let Some(ratio) = self.ratio_to_push(row)
                {
                    d["ratio_to_push"] = ratio;
                }
                d
            })
            .collect();
        let sweep: Vec<Value> = self
            .rows
            .iter()
            .filter_map(|r| {
                r.cost_per_op.map(
                    |c| json!({ "strategy": r.name, "read_write": r.read_write, "cost_per_op": c }),
                )
            })
            .collect();
        json!({
            "workload": self.workload,
            "measured": {
                "machine": {
                    "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
                    "mem_total_bytes": feedcore::sim::mem_total_bytes(),
                },
                "graph_generation_s": self.graph_s,
                "wall_s": self.wall_s,
                "interrupted": self.interrupted,
                "runs": runs,
                "cost_by_ratio": sweep,
                "redis_benchmark": self.redis_benchmark_json(),
            },
        })
    }

    pub(crate) fn print_table(&self) {
        println!("{}", self.header);
        println!();
        println!(
            "{:<11} {:>5} {:>10} {:>11} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>7} {:>9} {:>11}",
            "strategy",
            "r:w",
            "posts/s",
            "deliv/s",
            "reads/s",
            "rd p50us",
            "rd p99us",
            "rd p999us",
            "lag p50",
            "lag p99",
            "mem MB",
            "B/entry",
            "cost B/op",
            "cap deliv/s"
        );
        let print = |name: String, r: &Row| {
            println!(
                "{:<11} {:>5} {:>10.0} {:>11.0} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>8.2} {:>8.2} {:>9.1} {:>7.2} {:>9} {:>11}",
                name,
                r.read_write,
                r.posts_per_s,
                r.deliveries_per_s,
                r.reads_per_s,
                r.read_us[0],
                r.read_us[1],
                r.read_us[2],
                r.lag_ms[0],
                r.lag_ms[1],
                r.memory_mb,
                r.bytes_per_entry,
                r.cost_per_op.map_or("-".into(), |c| format!("{c:.1}")),
                r.capacity_per_s.map_or("-".into(), |c| format!("{c:.0}")),
            );
        };
        for r in &self.rows {
            let mark = if r.complete { "" } else { "*" };
            print(format!("{}{mark}", r.name), r);
            if r.cost_per_op.is_none()
                && let Some(push) = self.push_row(r.read_write)
            {
                let x = |a: f64, b: f64| format!("{:.2}x", a / b);
                println!(
                    "{:<11} {:>5} {:>10} {:>11} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>7} {:>9}",
                    "  / push",
                    "",
                    x(r.posts_per_s, push.posts_per_s),
                    x(r.deliveries_per_s, push.deliveries_per_s),
                    x(r.reads_per_s, push.reads_per_s),
                    x(r.read_us[0], push.read_us[0]),
                    x(r.read_us[1], push.read_us[1]),
                    x(r.read_us[2], push.read_us[2]),
                    x(r.lag_ms[0], push.lag_ms[0]),
                    x(r.lag_ms[1], push.lag_ms[1]),
                    x(r.memory_mb, push.memory_mb),
                    x(r.bytes_per_entry, push.bytes_per_entry),
                    "",
                );
            }
        }
        for r in self.rows.iter().filter(|r| !r.streams.is_empty()) {
            let parts: Vec<String> = r
                .streams
                .iter()
                .map(|(name, reads, p50, p99)| {
                    format!("{name} page p50 {p50:.1} us, p99 {p99:.1} us ({reads} reads)")
                })
                .collect();
            println!(
                "streams {} r:w {}: {}",
                r.name,
                r.read_write,
                parts.join("; ")
            );
        }
        for r in self.rows.iter().filter(|r| r.detail["outbox"].is_object()) {
            let o = &r.detail["outbox"];
            let f = |k: &str| o[k].as_u64().unwrap_or(0);
            let lag = |k: &str| o["lag_ms"][k].as_f64().unwrap_or(0.0);
            println!(
                "outbox {} r:w {}: {} remote accounts on {} servers, {} remote posts; {} deliveries acked ({} followers), {} failed; lag p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; pending at most {} ({} queue bytes), {} at the end; file {} bytes",
                r.name,
                r.read_write,
                f("remote_accounts"),
                f("remote_servers"),
                f("remote_posts"),
                f("acked"),
                f("followers_addressed"),
                f("failed"),
                lag("p50"),
                lag("p99"),
                lag("max"),
                f("pending_max"),
                f("queue_bytes_max"),
                f("pending_end"),
                f("file_bytes"),
            );
        }
        println!();
        println!(
            "posts/s: posts per second inside post calls (feedcore fans out behind the call; Redis fans out inside it)"
        );
        println!(
            "deliv/s: timeline deliveries per second of run wall time (feedcore: including the final flush)"
        );
        println!(
            "reads/s, rd p*us: home-timeline pages of 20 with every body, one thread; lag: post to delivered everywhere, ms"
        );
        println!(
            "mem MB: feedcore = anonymous resident memory delta from /proc/self/statm (resident - shared; the mapped log is not counted);"
        );
        println!(
            "        Redis = INFO used_memory delta (bodies included). B/entry: engine accounting / Redis MEMORY USAGE per entry"
        );
        println!(
            "cost B/op: id bytes touched per operation (EngineStats::cost_bytes_touched); '/ push' rows: that value / push's value"
        );
        if let Some(d) = self
            .rows
            .iter()
            .find_map(|r| r.detail["capacity"]["drivers"].as_u64())
        {
            println!(
                "cap deliv/s: fan-out capacity: after the run, {d} driver(s) post {} notices as fast as they can (authors drawn by follower count) into active timelines; deliveries per second until flushed",
                self.rows
                    .iter()
                    .find_map(|r| r.detail["capacity"]["posts"].as_u64())
                    .unwrap_or(0)
            );
        }
        if self.rows.iter().any(|r| r.detail["system"] == "redis") {
            println!(
                "Redis rows: {} client connections (batches of {} operations: SET + page reads in one pipeline, then the MGETs), \
                 --workers fan-out connections pipelining about 4000 commands; posts/s and reads/s per second of run wall time",
                crate::redis_baseline::CLIENT_CONNECTIONS,
                crate::redis_baseline::OPS_PER_BATCH
            );
        }
        match &self.redis_benchmark {
            Some(Ok(b)) => {
                println!("{}: {:.0} LPUSH/s", b.command, b.lpush_per_s);
                for r in self.rows.iter().filter(|r| r.detail["system"] == "redis") {
                    let per_s = r.detail["fan_out"]["commands_per_s"]
                        .as_f64()
                        .unwrap_or(0.0);
                    println!(
                        "  {} r:w {}: fan-out {:.0} commands/s = {:.2}x redis-benchmark's LPUSH/s",
                        r.name,
                        r.read_write,
                        per_s,
                        per_s / b.lpush_per_s
                    );
                }
            }
            Some(Err(reason)) => println!("redis-benchmark: not measured: {reason}"),
            None => {}
        }
        if self.rows.iter().any(|r| !r.complete) {
            println!(
                "*: interrupted; the row covers the operations measured before Ctrl-C (none if during the warm-up)"
            );
        }
        self.print_sweep();
        println!(
            "wall time {:.1} s (graph generation {:.1} s)",
            self.wall_s, self.graph_s
        );
    }

    /// With more than one ratio: cost per operation by strategy and ratio, and
    /// whether selective is within the better of push and pull.
    fn print_sweep(&self) {
        if self.ratios.len() < 2 {
            return;
        }
        println!();
        println!("cost (id bytes touched per op) by read:write ratio");
        let names: Vec<&str> = {
            let mut n: Vec<&str> = self
                .rows
                .iter()
                .filter(|r| r.cost_per_op.is_some())
                .map(|r| r.name)
                .collect();
            n.dedup();
            n.sort_unstable();
            n.dedup();
            n
        };
        print!("{:<11}", "strategy");
        for r in &self.ratios {
            print!(" {:>10}", format!("r:w {r}"));
        }
        println!();
        for name in &names {
            print!("{name:<11}");
            for &ratio in &self.ratios {
                let c = self.cost(name, ratio);
                print!(" {:>10}", c.map_or("-".into(), |c| format!("{c:.1}")));
            }
            println!();
        }
        for &ratio in &self.ratios {
            if let (Some(sel), Some(push), Some(pull)) = (
                self.cost("selective", ratio),
                self.cost("push", ratio),
                self.cost("pull", ratio),
            ) {
                let best = push.min(pull);
                println!(
                    "r:w {ratio}: selective {sel:.1} vs the better of push and pull {best:.1}: {}",
                    if sel <= best * 1.0 {
                        "not worse".to_string()
                    } else {
                        format!("{:.2}x worse", sel / best)
                    }
                );
            }
        }
    }

    pub(crate) fn cost(&self, name: &str, ratio: f64) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.name == name && r.read_write == ratio)
            .and_then(|r| r.cost_per_op)
    }
}

/// Writes `report.json` and the plots into `dir`.
pub(crate) fn write_files(report: &SimReport, dir: &Path) -> feedcore::Result<()> {
    let path = dir.join("report.json");
    let text = serde_json::to_string_pretty(&report.json()).expect("json values serialise");
    std::fs::write(&path, text).map_err(|source| feedcore::Error::Io {
        context: format!("writing {}", path.display()),
        source,
    })?;
    crate::sim_plots::write_all(report, dir).map_err(|e| feedcore::Error::Io {
        context: format!("drawing the plots in {}", dir.display()),
        source: std::io::Error::other(e),
    })
}
