//! `feedcore sim --preset twitter-2012`: Twitter's home timelines at their 2012 scale
//! on one box. 10 M users and about 350 M follows (the Kwak-calibrated generator,
//! cached on disk), fan-out to the 2 M users who read, 800-entry timelines, and the
//! load Twitter described for 2012 (4.6 k posts/s on average, 12 k at peak, 300 k
//! timeline reads/s) offered open-loop; it reports whether the box held it, and what
//! saturated when it did not.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use feedcore::sim::{
    CachedGraph, GraphModel, OpenLoopConfig, TwitterGraph, estimate_bytes, load_or_generate,
    mem_total_bytes, run_open_loop,
};
use indicatif::ProgressBar;

use crate::preset_report::{self, PresetReport};
use crate::sim::{Phases, STOP, SimArgs};

/// Presets as command-line values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PresetArg {
    /// Twitter in 2012: 10 M users, ~350 M follows, 2 M readers, 800-entry timelines,
    /// 4.6 k posts/s (12 k peak) and 300 k reads/s offered open-loop.
    #[value(name = "twitter-2012")]
    Twitter2012,
}

/// The preset's options (each overrides the preset's value).
#[derive(Args, Clone, Debug)]
pub(crate) struct PresetArgs {
    /// Run a preset instead of the strategy comparison.
    #[arg(long, value_enum)]
    pub(crate) preset: Option<PresetArg>,
    /// Preset: seconds of offered load measured (default 60).
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// Preset: home-timeline reads offered per second (default 300,000).
    #[arg(long)]
    pub(crate) reads_per_s: Option<f64>,
    /// Preset: posts offered per second on average (default 4,600).
    #[arg(long)]
    pub(crate) posts_per_s: Option<f64>,
    /// Preset: posts per second during the bursts (default 12,000).
    #[arg(long)]
    pub(crate) peak_posts_per_s: Option<f64>,
    /// Preset: users who read and get deliveries (default a fifth of the users: 2 M).
    #[arg(long)]
    pub(crate) active_readers: Option<u32>,
    /// Preset: posts of the history phase that fills the timelines first (default one
    /// for every five users).
    #[arg(long)]
    pub(crate) history_posts: Option<u64>,
    /// Preset: where generated graphs are cached (default target/feedcore-graphs).
    #[arg(long)]
    pub(crate) graph_cache: Option<PathBuf>,
}

/// Twitter-2012's values.
pub(crate) const USERS: u32 = 10_000_000;
/// Of Twitter's users in 2012, those who read: a fifth.
pub(crate) const ACTIVE_SHARE: f64 = 0.2;
/// Twitter's timelines of the time held 800 entries.
pub(crate) const TIMELINE_CAPACITY: u32 = 800;

/// The generator's parameters of the preset: Kwak et al.'s graph, with the drawn
/// power law's exponent and the out-degree spread chosen so that the fitted follower
/// exponent and the top account's share come out near theirs (2.28, about 7%).
pub(crate) fn graph_base() -> TwitterGraph {
    TwitterGraph {
        users: USERS,
        follows_mean: 35.0,
        follower_exponent: 2.1,
        top_follower_fraction: 0.07,
        out_degree_sigma: 0.6,
        ..TwitterGraph::default()
    }
}

/// Everything a preset run is made of, checked before any work.
pub(crate) struct PresetPlan {
    pub(crate) graph: TwitterGraph,
    pub(crate) config: OpenLoopConfig,
    pub(crate) cache_dir: PathBuf,
}

fn positive(name: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{name} {v} must be a positive number"))
    }
}

fn plan(args: &SimArgs) -> Result<PresetPlan, String> {
    let graph = match args.graph.model_from(&graph_base())? {
        GraphModel::Twitter(g) => g,
        GraphModel::Zipf(_) => return Err("--preset twitter-2012 runs the twitter model".into()),
    };
    let p = &args.preset;
    let seconds = positive("--seconds", p.seconds.unwrap_or(60.0))?;
    let posts_per_s = positive("--posts-per-s", p.posts_per_s.unwrap_or(4_600.0))?;
    let peak = positive(
        "--peak-posts-per-s",
        p.peak_posts_per_s.unwrap_or(12_000.0f64.max(posts_per_s)),
    )?;
    if peak < posts_per_s {
        return Err(format!(
            "--peak-posts-per-s {peak} is below the average --posts-per-s {posts_per_s}"
        ));
    }
    let reads_per_s = positive("--reads-per-s", p.reads_per_s.unwrap_or(300_000.0))?;
    let active = p
        .active_readers
        .unwrap_or(((f64::from(graph.users) * ACTIVE_SHARE) as u32).max(1));
    if active == 0 || active > graph.users {
        return Err(format!(
            "--active-readers {active} must be 1 to the {} users",
            graph.users
        ));
    }
    if !(1..=64).contains(&args.workers) || !(1..=64).contains(&args.drivers) {
        return Err("--workers and --drivers must be 1 to 64".into());
    }
    let history_posts = p.history_posts.unwrap_or(u64::from(graph.users) / 5);
    let config = OpenLoopConfig {
        workers: args.workers,
        drivers: args.drivers,
        timeline_capacity: TIMELINE_CAPACITY,
        active_readers: active,
        history_posts,
        seconds,
        posts_per_s,
        peak_posts_per_s: peak,
        reads_per_s,
        page_size: 20,
        seed: args.graph.seed,
    };
    let posts = history_posts + (seconds * posts_per_s) as u64;
    let need = estimate_bytes(
        u64::from(graph.users),
        graph.follows_mean,
        u64::from(TIMELINE_CAPACITY),
        posts,
    );
    if let Some(total) = mem_total_bytes()
        && need > total
    {
        return Err(format!(
            "the preset at {} users needs about {:.1} GiB; this machine has {:.1} GiB",
            graph.users,
            need as f64 / f64::from(1 << 30),
            total as f64 / f64::from(1 << 30)
        ));
    }
    crate::sim::store_dir_is_free(args.dir.as_deref())?;
    let cache_dir = p
        .graph_cache
        .clone()
        .unwrap_or_else(|| PathBuf::from("target").join("feedcore-graphs"));
    Ok(PresetPlan {
        graph,
        config,
        cache_dir,
    })
}

/// The graph, from the cache or generated, with a spinner saying which.
fn graph(plan: &PresetPlan) -> feedcore::Result<CachedGraph> {
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(100));
    let users = plan.graph.users;
    let cached = load_or_generate(&plan.cache_dir, &plan.graph, &|what| {
        spinner.set_message(format!("graph of {users} users: {what}"));
    });
    spinner.finish_and_clear();
    cached
}

pub(crate) fn run(args: &SimArgs) -> feedcore::Result<ExitCode> {
    let plan = match plan(args) {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("feedcore sim: {reason}");
            return Ok(ExitCode::from(2));
        }
    };
    crate::sim::install_ctrlc();
    let wall = Instant::now();
    let cached = graph(&plan)?;
    if let Some(reason) = &cached.rejected {
        eprintln!(
            "feedcore sim: the cached graph {} was not used ({reason}); regenerated",
            cached.path.display()
        );
    }
    if let Some(e) = &cached.write_error {
        eprintln!("feedcore sim: the graph could not be cached: {e}");
    }
    let temp;
    let store: PathBuf = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().map_err(|source| feedcore::Error::Io {
                context: "creating a temporary directory".into(),
                source,
            })?;
            temp.path().to_path_buf()
        }
    };
    let phases = Phases::new("twitter-2012".into());
    let run = run_open_loop(
        &store,
        plan.graph.users,
        &cached.edges,
        &plan.config,
        &phases,
    )?;
    drop(phases);
    let report = PresetReport {
        graph: &plan.graph,
        config: &plan.config,
        cached: &cached,
        run: &run,
        wall_s: wall.elapsed().as_secs_f64(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&preset_report::json(&report))
                .expect("json values serialise")
        );
    } else {
        preset_report::print_table(&report);
    }
    if STOP.load(Ordering::Relaxed) || !run.complete {
        eprintln!("feedcore sim: interrupted: the figures above cover what ran");
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}
