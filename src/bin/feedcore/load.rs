//! `feedcore load`: synthetic notices and random graph operations into a store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use feedcore::sim::{random_relation_ops, synthetic_notice};
use feedcore::{Durability, FollowGraph, GraphConfig, LogConfig, NoticeId, NoticeLog};

pub(crate) struct LoadArgs {
    pub(crate) dir: PathBuf,
    pub(crate) notices: u64,
    pub(crate) graph_ops: u64,
    pub(crate) users: u32,
    pub(crate) seed: u64,
    pub(crate) durability: Durability,
    pub(crate) print_acks: bool,
    pub(crate) batch: usize,
    /// The graph's `compact_after_changes`, when not the default.
    pub(crate) compact_after: Option<u64>,
}

pub(crate) fn run(args: &LoadArgs) -> feedcore::Result<ExitCode> {
    if args.graph_ops > 0 && args.users < 2 {
        eprintln!("feedcore load: --users must be at least 2 for graph operations");
        return Ok(ExitCode::from(2));
    }
    let stdout = std::io::stdout();
    if args.notices > 0 {
        let log = NoticeLog::open(
            crate::notices_dir(&args.dir),
            LogConfig {
                durability: args.durability,
                ..Default::default()
            },
        )?;
        if let Some(torn) = &log.recovery().torn_tail {
            eprintln!(
                "recovered: {} at byte {}: {}",
                torn.file.display(),
                torn.offset,
                torn.reason
            );
        }
        let progress = crate::progress::bar(args.notices, "notices", 10, 40);
        let batch = args.batch.max(1) as u64;
        let mut last = None;
        let mut done = 0;
        while done < args.notices {
            let count = batch.min(args.notices - done);
            let first = log.len() + 1;
            let notices: Vec<_> = (first..first + count)
                .map(|id| synthetic_notice(NoticeId(id)))
                .collect();
            let ids = log.append_batch(&notices)?;
            assert_eq!(
                ids.first(),
                Some(&NoticeId(first)),
                "this process is the only appender"
            );
            if args.print_acks {
                let mut out = stdout.lock();
                for id in &ids {
                    writeln!(out, "ack {}", id.0).expect("stdout is writable");
                }
                out.flush().expect("stdout is writable");
            }
            last = ids.last().copied();
            done += count;
            progress.inc(count);
        }
        log.sync()?;
        progress.finish_and_clear();
        match last {
            Some(id) => println!("last acknowledged id: {}", id.0),
            None => println!("nothing appended"),
        }
    }
    if args.graph_ops > 0 {
        let defaults = GraphConfig::default();
        let graph = FollowGraph::open(
            crate::graph_dir(&args.dir),
            GraphConfig {
                users_max: args.users,
                durability: args.durability,
                compact_after_changes: args.compact_after.unwrap_or(defaults.compact_after_changes),
                ..defaults
            },
        )?;
        let progress = crate::progress::bar(args.graph_ops, "graph ops", 10, 40);
        let (mut changed, mut refused) = (0u64, 0u64);
        for (n, op) in random_relation_ops(args.users, args.seed)
            .take(args.graph_ops as usize)
            .enumerate()
        {
            match op.apply(&graph) {
                Ok(true) => changed += 1,
                Ok(false) => {}
                // Rule refusals (a follow across a block, past following_max) are part
                // of the workload; anything else stops it.
                Err(feedcore::Error::InvalidRelation { .. }) => refused += 1,
                Err(e) => return Err(e),
            }
            if args.print_acks {
                let mut out = stdout.lock();
                writeln!(out, "op {}", n + 1).expect("stdout is writable");
                out.flush().expect("stdout is writable");
            }
            progress.inc(1);
        }
        graph.sync()?;
        progress.finish_and_clear();
        println!(
            "graph ops: {} applied ({changed} changed the graph, {refused} refused by the rules)",
            args.graph_ops
        );
    }
    Ok(ExitCode::SUCCESS)
}
