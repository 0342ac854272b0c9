//! `feedcore`: load, check, inspect and benchmark a feedcore store.
//!
//! A store directory holds the notice log in `DIR/notices`.

mod load;
mod report;
mod sim;

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
    /// Append synthetic notices to a store, with a progress bar; prints the last
    /// acknowledged id.
    Load {
        /// The store directory (created if missing).
        dir: PathBuf,
        /// How many notices to append.
        #[arg(long)]
        notices: u64,
        /// When an append counts as done.
        #[arg(long, value_enum, default_value_t = DurabilityArg::Group)]
        durability: DurabilityArg,
        /// Print `ack ID` on stdout for every acknowledged notice, as it is acknowledged.
        #[arg(long)]
        print_acks: bool,
        /// Append in batches of this many notices.
        #[arg(long, default_value_t = 1)]
        batch: usize,
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
    /// Run a workload on a temporary store and print throughput beside a baseline.
    Sim(sim::SimArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Load {
            dir,
            notices,
            durability,
            print_acks,
            batch,
        } => load::run(&dir, notices, durability.to_durability(), print_acks, batch),
        Command::Check { dir } => report::check(&dir),
        Command::Stats { dir, json } => report::stats(&dir, json),
        Command::Sim(args) => sim::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("feedcore: {e}");
            ExitCode::from(2)
        }
    }
}
