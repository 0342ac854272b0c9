//! `feedcore sim`: the strategy laboratory. Generates a follow graph, drives the same
//! seeded workload through an engine per strategy (and, with `--baseline redis`,
//! through Redis as Twitter and Mastodon keep timelines), prints one table, and with
//! `--json` / `--report DIR` writes the figures and SVG plots.
//!
//! Order of work: every option is checked (and the memory the run needs estimated
//! against the machine's) before anything is generated; then graph, then for each
//! read:write ratio each strategy on a fresh store, then the baselines.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use feedcore::Strategy;
use feedcore::sim::{
    LabConfig, Observer, StreamMix, Workload, estimate_bytes, mem_total_bytes,
    run_engine_with_streams, summarize,
};
use indicatif::ProgressBar;

use crate::graph_cmd::GraphArgs;
use crate::redis_baseline::{self, Layout, RedisServer};
use crate::sim_report::{self, Row, SimReport};

/// Strategies as command-line values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StrategyArg {
    Push,
    Pull,
    Hybrid,
    Selective,
    Lossy,
}

/// Baselines as command-line values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BaselineArg {
    /// A local redis-server keeping timelines as Twitter did: a list a user.
    Redis,
    /// A local redis-server keeping timelines as Mastodon does: a sorted set a user.
    RedisZset,
    /// Both Redis layouts, one after the other, on one server.
    RedisAll,
}

impl BaselineArg {
    /// The Redis layouts this baseline runs.
    fn layouts(self) -> &'static [Layout] {
        match self {
            BaselineArg::Redis => &[Layout::List],
            BaselineArg::RedisZset => &[Layout::SortedSet],
            BaselineArg::RedisAll => &[Layout::List, Layout::SortedSet],
        }
    }
}

#[derive(Args)]
pub(crate) struct SimArgs {
    #[command(flatten)]
    pub(crate) graph: GraphArgs,
    #[command(flatten)]
    pub(crate) preset: crate::preset::PresetArgs,
    /// Operations (posts plus reads) per strategy and ratio. With the other defaults,
    /// all five strategies and their capacity phases finish within two minutes on a
    /// 2-core machine.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) ops: u64,
    /// Simulated hours of the same workload played before the measured hour (the
    /// `--ops` operations): rates, timelines and the selective strategy's counters
    /// start warm instead of empty. Each adds `--ops` operations to every run.
    #[arg(long, default_value_t = 0)]
    pub(crate) warm_up_hours: u32,
    /// Reads per post.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) read_write: f64,
    /// Run each strategy at each ratio instead: `read-write=0.1,1,10`.
    #[arg(long)]
    pub(crate) sweep: Option<String>,
    /// Run only this strategy (default: all five).
    #[arg(long, value_enum)]
    pub(crate) strategy: Option<StrategyArg>,
    /// Hybrid: authors with at least this many followers are pulled.
    #[arg(long, default_value_t = 1000)]
    pub(crate) hybrid_followers_min: u32,
    /// Selective: the Feeding Frenzy threshold (above 1 pushes more).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) selective_threshold: f64,
    /// Selective: decide by the workload's true post and read rates instead of
    /// estimating them (what the rule costs with nothing to estimate).
    #[arg(long)]
    pub(crate) selective_known_rates: bool,
    /// Lossy: K, the follows a reader may have before deliveries are dropped.
    #[arg(long, default_value_t = 50)]
    pub(crate) lossy_k: u32,
    /// Zipf exponent of posting rates over users (1: a tenth write about 80%).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) post_skew: f64,
    /// Zipf exponent of reading rates over users.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) read_skew: f64,
    /// Fraction of posts that reply to a recent post.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) replies: f64,
    /// Fraction of posts that repeat a recent post.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) repeats: f64,
    /// Fraction of original posts that mention someone.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) mentions: f64,
    /// Groups in the workload: every user joins 2 at random, a tenth of the posts go
    /// to one, and the group streams' read latency is reported (0: no groups).
    #[arg(long, default_value_t = 0)]
    pub(crate) groups: u32,
    /// Tags each user follows (of 64): a fifth of the posts carry one, and the tag
    /// streams' read latency is reported (0: no tags).
    #[arg(long, default_value_t = 0)]
    pub(crate) tag_follows: u32,
    /// Share of the users on other servers (0 to 0.9): they follow and post as
    /// remote accounts on 1,000 servers, a delivery worker drains the outbox (one
    /// server in 50 down), and the outbox's lag and size are reported (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) remote_share: f64,
    /// Fan-out worker threads.
    #[arg(long, default_value_t = 2)]
    pub(crate) workers: u32,
    /// Driver threads posting and reading (the mixed run and the capacity phase).
    #[arg(long, default_value_t = 2)]
    pub(crate) drivers: u32,
    /// Posts of the capacity phase after each pushing strategy's run: the drivers post
    /// as fast as they can, authors drawn by follower count, and the figure is
    /// deliveries per second until the fan-out is done (0: no capacity phase).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) capacity_posts: u64,
    /// Keep the stores in this directory (missing or empty) instead of a temporary one.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write report.json and SVG plots into this directory.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// Run the same workload through a baseline too: `redis` (lists, as Twitter kept
    /// home timelines), `redis-zset` (sorted sets, as Mastodon does) or `redis-all`.
    #[arg(long, value_enum)]
    pub(crate) baseline: Option<BaselineArg>,
}

/// Set by Ctrl-C: every loop stops at its next check and the figures so far print.
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// Progress bars for the phases of one run, and the Ctrl-C flag.
pub(crate) struct Phases {
    label: String,
    bar: parking_lot::Mutex<Option<ProgressBar>>,
}

impl Phases {
    pub(crate) fn new(label: String) -> Phases {
        Phases {
            label,
            bar: parking_lot::Mutex::new(None),
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Phases {
    fn phase(&self, name: &'static str, len: u64) {
        self.finish();
        let bar = crate::progress::bar(len, format!("{} {name}", self.label), 28, 30);
        *self.bar.lock() = Some(bar);
    }

    fn advance(&self, done: u64) {
        if let Some(bar) = &*self.bar.lock() {
            bar.set_position(done);
        }
    }

    fn stopped(&self) -> bool {
        STOP.load(Ordering::Relaxed)
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Parses `read-write=0.1,1,10`.
fn parse_sweep(spec: &str) -> Result<Vec<f64>, String> {
    let list = spec.strip_prefix("read-write=").ok_or_else(|| {
        format!(
            "--sweep {spec:?}: the only sweep is read-write=R1,R2,... (e.g. read-write=0.1,1,10)"
        )
    })?;
    let ratios: Vec<f64> = list
        .split(',')
        .map(|r| {
            r.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("--sweep: {r:?} is not a read:write ratio (a number >= 0)"))
        })
        .collect::<Result<_, _>>()?;
    if ratios.is_empty() {
        return Err("--sweep: no ratios".into());
    }
    Ok(ratios)
}

/// The strategies to run, with their parameters.
fn strategies(args: &SimArgs) -> Vec<Strategy> {
    let all = [
        Strategy::Push,
        Strategy::Pull,
        Strategy::Hybrid {
            followers_min: args.hybrid_followers_min,
        },
        Strategy::Selective {
            push_threshold: args.selective_threshold,
        },
        Strategy::Lossy {
            follows_reasonable: args.lossy_k,
        },
    ];
    let wanted = args.strategy.map(|s| match s {
        StrategyArg::Push => "push",
        StrategyArg::Pull => "pull",
        StrategyArg::Hybrid => "hybrid",
        StrategyArg::Selective => "selective",
        StrategyArg::Lossy => "lossy",
    });
    all.into_iter()
        .filter(|s| wanted.is_none_or(|w| w == s.name()))
        .collect()
}

/// Everything checked before work starts.
struct Plan {
    model: feedcore::sim::GraphModel,
    workloads: Vec<Workload>,
    strategies: Vec<Strategy>,
}

fn plan(args: &SimArgs) -> Result<Plan, String> {
    let p = &args.preset;
    if p.seconds.is_some()
        || p.reads_per_s.is_some()
        || p.posts_per_s.is_some()
        || p.peak_posts_per_s.is_some()
        || p.active_readers.is_some()
        || p.history_posts.is_some()
        || p.graph_cache.is_some()
    {
        return Err(
            "--seconds, --reads-per-s, --posts-per-s, --peak-posts-per-s, --active-readers, \
             --history-posts and --graph-cache apply to --preset twitter-2012"
                .into(),
        );
    }
    let model = args.graph.model()?;
    if args.ops == 0 {
        return Err("--ops is 0; a run needs at least one operation".into());
    }
    if !(1..=64).contains(&args.workers) {
        return Err(format!("--workers is {}; it must be 1 to 64", args.workers));
    }
    if !(1..=64).contains(&args.drivers) {
        return Err(format!("--drivers is {}; it must be 1 to 64", args.drivers));
    }
    if args.selective_known_rates
        && args
            .strategy
            .is_some_and(|s| !matches!(s, StrategyArg::Selective))
    {
        return Err(
            "--selective-known-rates applies to the selective strategy; --strategy names another"
                .into(),
        );
    }
    if !(args.selective_threshold.is_finite() && args.selective_threshold > 0.0) {
        return Err(format!(
            "--selective-threshold {} must be a positive number",
            args.selective_threshold
        ));
    }
    if args.warm_up_hours > 0 && args.baseline.is_some() {
        return Err("--warm-up-hours does not apply to --baseline runs; run them apart".into());
    }
    let total_ops = args
        .ops
        .checked_mul(1 + u64::from(args.warm_up_hours))
        .ok_or("--ops times --warm-up-hours is too large")?;
    if args.lossy_k == 0 {
        return Err("--lossy-k must be at least 1".into());
    }
    if args.groups > model.users() {
        return Err(format!(
            "--groups {} is more than the {} users (group ids stay below users_max)",
            args.groups,
            model.users()
        ));
    }
    if !(0.0..=0.9).contains(&args.remote_share) {
        return Err(format!(
            "--remote-share {} is outside 0 to 0.9 (a share of the users on other servers)",
            args.remote_share
        ));
    }
    if args.tag_follows > feedcore::sim::SIM_TAGS {
        return Err(format!(
            "--tag-follows {} is more than the {} tags of the workload",
            args.tag_follows,
            feedcore::sim::SIM_TAGS
        ));
    }
    let ratios = match &args.sweep {
        Some(spec) => parse_sweep(spec)?,
        None => vec![args.read_write],
    };
    let workloads: Vec<Workload> = ratios
        .iter()
        .map(|&r| Workload {
            users: model.users(),
            ops: total_ops,
            read_write_ratio: r,
            post_skew: args.post_skew,
            read_skew: args.read_skew,
            reply_fraction: args.replies,
            repeat_fraction: args.repeats,
            mention_fraction: args.mentions,
            page_size: 20,
            seed: args.graph.seed,
        })
        .collect();
    for w in &workloads {
        w.validate().map_err(|r| format!("workload: {r}"))?;
    }
    let fewest_reads = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let posts = (total_ops as f64 / (1.0 + fewest_reads)) as u64;
    let need = estimate_bytes(u64::from(model.users()), model.follows_mean(), 800, posts);
    if let Some(total) = mem_total_bytes()
        && need > total
    {
        return Err(format!(
            "{} users with {} follows each and {} posts need about {:.1} GiB; this machine has {:.1} GiB (MemTotal)",
            model.users(),
            model.follows_mean(),
            posts,
            need as f64 / f64::from(1 << 30),
            total as f64 / f64::from(1 << 30)
        ));
    }
    store_dir_is_free(args.dir.as_deref())?;
    if args.baseline.is_some() && redis_baseline::find_binary().is_none() {
        return Err(
            "--baseline: redis-server is not on PATH; install it (apt-get install redis-server)"
                .into(),
        );
    }
    let strategies = strategies(args);
    Ok(Plan {
        model,
        workloads,
        strategies,
    })
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> feedcore::Error {
    move |source| feedcore::Error::Io { context, source }
}

/// Ctrl-C sets [`STOP`]; a second one exits.
pub(crate) fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::Relaxed) {
            // A second Ctrl-C: leave now (a redis child dies with us, PDEATHSIG).
            std::process::exit(130);
        }
        eprintln!("\nfeedcore sim: interrupted; finishing the current phase's figures");
    });
}

pub(crate) fn run(args: &SimArgs) -> feedcore::Result<ExitCode> {
    if args.preset.preset.is_some() {
        return crate::preset::run(args);
    }
    let plan = match plan(args) {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("feedcore sim: {reason}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
    }
    install_ctrlc();
    let wall = Instant::now();
    let temp;
    let store: PathBuf = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp =
                tempfile::tempdir().map_err(io_error("creating a temporary directory".into()))?;
            temp.path().to_path_buf()
        }
    };

    // The graph.
    let spinner = ProgressBar::new_spinner().with_message(format!(
        "generating a {} graph of {} users",
        plan.model.name(),
        plan.model.users()
    ));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    let edges = plan.model.edges();
    let graph_s = started.elapsed().as_secs_f64();
    spinner.set_message("summarising the graph");
    let summary = summarize(plan.model.users(), &edges);
    spinner.set_message("summarising the workloads");
    let workload_summaries: Vec<_> = plan.workloads.iter().map(Workload::summarize).collect();
    spinner.finish_and_clear();

    let mut report = SimReport::new(
        args,
        &plan.model,
        &summary,
        &plan.workloads,
        &workload_summaries,
        &plan.strategies,
        graph_s,
    );
    'ratios: for workload in &plan.workloads {
        for &strategy in &plan.strategies {
            if STOP.load(Ordering::Relaxed) {
                break 'ratios;
            }
            let dir = store.join(format!(
                "rw{}-{}",
                workload.read_write_ratio,
                strategy.name()
            ));
            let phases = Phases::new(format!(
                "{} r:w {}",
                strategy.name(),
                workload.read_write_ratio
            ));
            let hours = 1 + u64::from(args.warm_up_hours);
            let config = LabConfig {
                strategy,
                workers: args.workers,
                simulated_ms: hours * LabConfig::default().simulated_ms,
                warm_up_ops: args.ops * u64::from(args.warm_up_hours),
                known_rates: args.selective_known_rates,
                drivers: args.drivers,
                capacity_posts: args.capacity_posts,
                remote_share: args.remote_share,
                ..LabConfig::default()
            };
            let mix = StreamMix {
                groups: args.groups,
                tag_follows: args.tag_follows,
            };
            let run = run_engine_with_streams(&dir, &edges, workload, &config, &mix, &phases)?;
            drop(phases);
            report.add(Row::from_engine(&run, workload.read_write_ratio));
            if args.dir.is_none() {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    let mut failure = None;
    if let Some(baseline) = args.baseline
        && !STOP.load(Ordering::Relaxed)
    {
        let mut followers: Vec<Vec<u32>> = vec![Vec::new(); plan.model.users() as usize];
        for &(a, b) in &edges {
            followers[b.0 as usize].push(a.0);
        }
        drop(edges);
        if let Err(e) = run_redis(&plan, args, baseline.layouts(), &followers, &mut report) {
            failure = Some(e);
        }
    }
    report.finish(wall.elapsed().as_secs_f64(), STOP.load(Ordering::Relaxed));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.json()).expect("json values serialise")
        );
    } else {
        report.print_table();
    }
    if let Some(dir) = &args.report {
        sim_report::write_files(&report, dir)?;
        if !args.json {
            println!("report: {}", dir.display());
        }
    }
    if let Some(e) = failure {
        eprintln!("feedcore sim: redis baseline: {e}");
        return Ok(ExitCode::from(1));
    }
    if STOP.load(Ordering::Relaxed) {
        eprintln!("feedcore sim: interrupted: the figures above cover what ran");
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// The Redis layouts at each ratio, on one server that is stopped whatever happens.
fn run_redis(
    plan: &Plan,
    args: &SimArgs,
    layouts: &[Layout],
    followers: &[Vec<u32>],
    report: &mut SimReport,
) -> Result<(), String> {
    let server = RedisServer::start()?;
    for workload in &plan.workloads {
        for &layout in layouts {
            if STOP.load(Ordering::Relaxed) {
                return Ok(());
            }
            let phases = Phases::new(format!(
                "{} r:w {}",
                layout.name(),
                workload.read_write_ratio
            ));
            let run = redis_baseline::run(
                &server,
                layout,
                followers,
                workload,
                args.workers as usize,
                &phases,
            )?;
            report.add(Row::from_redis(&run, workload.read_write_ratio));
        }
    }
    // The server's own figure, same server, same run.
    report.set_redis_benchmark(redis_baseline::benchmark(&server));
    drop(server);
    Ok(())
}

/// `--dir`, when given, must be missing or empty: the runs' stores are made in it.
pub(crate) fn store_dir_is_free(dir: Option<&std::path::Path>) -> Result<(), String> {
    match dir {
        Some(dir)
            if dir.exists() && std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some()) =>
        {
            Err(format!("--dir {}: must be missing or empty", dir.display()))
        }
        _ => Ok(()),
    }
}
