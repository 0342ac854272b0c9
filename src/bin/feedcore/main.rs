//! `feedcore`: load, check, inspect and benchmark a feedcore store.
//!
//! A store directory holds the notice log in `DIR/notices` and the follow graph in
//! `DIR/graph`.

mod bench_log;
mod engine_load;
mod graph_cmd;
mod load;
mod preset;
mod preset_report;
mod progress;
mod redis_baseline;
mod report;
mod resp;
mod sim;
mod sim_plots;
mod sim_report;
mod stream_load;
mod torture;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use feedcore::Durability;

#[derive(Parser)]
#[command(
    name = "feedcore",
    version,
    about = "Notice storage and home-timeline delivery for microblogging servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append synthetic notices and random graph operations to a store, with a
    /// progress bar; prints the last acknowledged notice id and op count.
    Load {
        /// The store directory (created if missing).
        dir: PathBuf,
        /// How many notices to append.
        #[arg(long, default_value_t = 0)]
        notices: u64,
        /// How many random graph operations (follow, unfollow, block, mute, ...) to
        /// apply, among `--users` users, drawn from `--seed`.
        #[arg(long, default_value_t = 0)]
        graph_ops: u64,
        /// Users the graph operations are among.
        #[arg(long, default_value_t = 1000)]
        users: u32,
        /// Seed of the graph operations.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// When an append counts as done.
        #[arg(long, value_enum, default_value_t = DurabilityArg::Group)]
        durability: DurabilityArg,
        /// Print `ack ID` on stdout for every acknowledged notice, and `op N` for every
        /// acknowledged graph operation (N counts from 1), as they are acknowledged.
        #[arg(long)]
        print_acks: bool,
        /// Append in batches of this many notices.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Sets the graph's `compact_after_changes`, so that background compactions
        /// run during the load (for the crash tests, which kill it mid-compaction).
        #[arg(long, hide = true)]
        compact_after: Option<u64>,
        /// Runs this many seeded engine operations (posts, follows, mutes, reads)
        /// through an `Engine` on the store instead, after every user reads once and
        /// follows user 0; with `--print-acks`, prints `ack post ...`, `ack follow A B`
        /// and `ack mute A B` lines (see `engine_load.rs`). For the engine crash test.
        #[arg(long, hide = true, default_value_t = 0)]
        engine_ops: u64,
        /// Runs this many seeded group and tag operations (group posts, joins, leaves,
        /// tag follows, reads) through an `Engine` on the store instead; with
        /// `--print-acks`, prints `ack gpost ...`, `ack member U G 0|1` and `ack tag U
        /// T` lines (see `stream_load.rs`). For the streams crash test.
        #[arg(long, hide = true, default_value_t = 0)]
        stream_ops: u64,
    },
    /// Verify every record of a store; exit 0 when sound, 1 with the file and byte
    /// offset of each problem.
    Check {
        /// The store directory.
        dir: PathBuf,
    },
    /// Print counts of a store's contents.
    Stats {
        /// The store directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The strategy laboratory: generate a follow graph, run the same seeded workload
    /// through every timeline strategy (and optionally Redis), print one table; JSON
    /// and SVG plots on request.
    Sim(Box<sim::SimArgs>),
    /// Generate a follow graph and print its statistics beside Kwak et al.'s.
    Graph(graph_cmd::GraphCmdArgs),
    /// The notice log alone: append, random reads, reopen, each beside a baseline.
    BenchLog(bench_log::BenchLogArgs),
    /// A crash loop: child processes on one store killed with SIGKILL at random
    /// moments, every acknowledged operation checked after each reopen.
    Torture(torture::TortureArgs),
    /// One child of `torture` (not for direct use).
    #[command(hide = true)]
    TortureChild(torture::ChildArgs),
}

/// Durability modes as command-line values.
#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// Every append synced.
    Always,
    /// Group commit.
    Group,
    /// OS-buffered.
    Buffered,
}

impl DurabilityArg {
    fn to_durability(self) -> Durability {
        match self {
            DurabilityArg::Always => Durability::Always,
            DurabilityArg::Group => Durability::default(),
            DurabilityArg::Buffered => Durability::Buffered,
        }
    }
}

/// The notice log's directory inside a store directory.
pub(crate) fn notices_dir(store: &Path) -> PathBuf {
    store.join("notices")
}

/// The follow graph's directory inside a store directory.
pub(crate) fn graph_dir(store: &Path) -> PathBuf {
    store.join("graph")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Load {
            dir,
            users,
            seed,
            durability,
            print_acks,
            engine_ops,
            ..
        } if engine_ops > 0 => engine_load::run(&engine_load::EngineLoadArgs {
            dir,
            ops: engine_ops,
            users,
            seed,
            durability: durability.to_durability(),
            print_acks,
        }),
        Command::Load {
            dir,
            users,
            seed,
            durability,
            print_acks,
            stream_ops,
            ..
        } if stream_ops > 0 => stream_load::run(&stream_load::StreamLoadArgs {
            dir,
            ops: stream_ops,
            users,
            seed,
            durability: durability.to_durability(),
            print_acks,
        }),
        Command::Load {
            dir,
            notices,
            graph_ops,
            users,
            seed,
            durability,
            print_acks,
            batch,
            compact_after,
            engine_ops: _,
            stream_ops: _,
        } => load::run(&load::LoadArgs {
            dir,
            notices,
            graph_ops,
            users,
            seed,
            durability: durability.to_durability(),
            print_acks,
            batch,
            compact_after,
        }),
        Command::Check { dir } => report::check(&dir),
        Command::Stats { dir, json } => report::stats(&dir, json),
        Command::Sim(args) => sim::run(&args),
        Command::Graph(args) => graph_cmd::run(&args),
        Command::BenchLog(args) => bench_log::run(&args),
        Command::Torture(args) => torture::run(&args),
        Command::TortureChild(args) => torture::child(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("feedcore: {e}");
            ExitCode::from(2)
        }
    }
}
