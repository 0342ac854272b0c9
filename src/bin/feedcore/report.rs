//! `feedcore check` and `feedcore stats`: the notice log, the follow graph and the
//! federation outbox of a store, read-only.

use std::path::Path;
use std::process::ExitCode;

use feedcore::{CheckReport, FollowGraph, GraphCheckReport, NoticeLog, OutboxReport, Problem};

/// Both parts' reports; a part whose directory does not exist is `None`.
struct StoreReport {
    notices: Option<CheckReport>,
    graph: Option<GraphCheckReport>,
    outbox: Option<OutboxReport>,
}

fn read(dir: &Path) -> feedcore::Result<StoreReport> {
    if !dir.is_dir() {
        return Err(feedcore::Error::Io {
            context: format!("reading store {}", dir.display()),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let log_dir = crate::notices_dir(dir);
    let graph_dir = crate::graph_dir(dir);
    Ok(StoreReport {
        notices: if log_dir.is_dir() {
            Some(NoticeLog::check(&log_dir)?)
        } else {
            None
        },
        graph: if graph_dir.is_dir() {
            Some(FollowGraph::check(&graph_dir)?)
        } else {
            None
        },
        outbox: OutboxReport::check(dir)?,
    })
}

fn print_problems(problems: &[Problem]) {
    for problem in problems {
        let kind = if problem.recoverable {
            "recoverable"
        } else {
            "DAMAGE"
        };
        println!(
            "{kind}: {} at byte {}: {}",
            problem.file.display(),
            problem.offset,
            problem.reason
        );
    }
}

pub(crate) fn check(dir: &Path) -> feedcore::Result<ExitCode> {
    let report = read(dir)?;
    let mut sound = true;
    if let Some(r) = &report.notices {
        println!(
            "notices: {} segments, {} notices ({} deleted), {} records checked, {} record bytes",
            r.stats.segments, r.stats.notices, r.stats.deleted, r.records_checked, r.record_bytes
        );
        print_problems(&r.problems);
        sound &= r.is_sound();
    }
    if let Some(r) = &report.graph {
        println!(
            "graph: {} users, {} follows, {} blocks, {} mutes, {} ops after the snapshot",
            r.stats.users, r.stats.follows, r.stats.blocks, r.stats.mutes, r.ops_replayed
        );
        if let Some(rel) = &r.relations {
            println!(
                "streams: {} groups, {} lists, {} tags; {} memberships, {} list members, {} tag follows",
                rel.groups, rel.lists, rel.tags, rel.memberships, rel.list_members, rel.tag_follows
            );
            if rel.remote_accounts > 0 || rel.remote_servers > 0 {
                println!(
                    "remote: {} servers, {} accounts",
                    rel.remote_servers, rel.remote_accounts
                );
            }
        }
        print_problems(&r.problems);
        sound &= r.is_sound();
    }
    if let Some(r) = &report.outbox {
        let s = &r.stats;
        println!(
            "outbox: {} records, {} deliveries pending ({} after a failure), {} unavailable servers, {} dropped",
            r.records, s.pending, s.failed, s.unavailable_servers, s.dropped
        );
        print_problems(&r.problems);
        sound &= r.is_sound();
    }
    if report.notices.is_none() && report.graph.is_none() {
        println!(
            "{}: no notices/ or graph/ here: not a feedcore store",
            dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    if sound {
        println!("sound");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("damaged: an operator must act before the store is opened");
        Ok(ExitCode::from(1))
    }
}

pub(crate) fn stats(dir: &Path, json: bool) -> feedcore::Result<ExitCode> {
    let report = read(dir)?;
    if json {
        let notices = report.notices.as_ref().map(|r| {
            let s = &r.stats;
            serde_json::json!({
                "notices": s.notices,
                "deleted": s.deleted,
                "live": s.notices - s.deleted,
                "segments": s.segments,
                "segment_bytes_total": s.segment_bytes_total,
                "record_bytes": r.record_bytes,
                "sound": r.is_sound(),
            })
        });
        let graph = report.graph.as_ref().map(|r| {
            let s = &r.stats;
            serde_json::json!({
                "users": s.users,
                "follows": s.follows,
                "blocks": s.blocks,
                "mutes": s.mutes,
                "ops_since_snapshot": s.ops_since_snapshot,
                "snapshot_bytes": s.snapshot_bytes,
                "sound": r.is_sound(),
            })
        });
        let outbox = report.outbox.as_ref().map(|r| {
            let s = &r.stats;
            serde_json::json!({
                "pending": s.pending,
                "in_flight": s.in_flight,
                "failed": s.failed,
                "unavailable_servers": s.unavailable_servers,
                "dropped": s.dropped,
                "file_bytes": s.file_bytes,
                "sound": r.is_sound(),
            })
        });
        let value = serde_json::json!({ "notices": notices, "graph": graph, "outbox": outbox });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("json values serialise")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(r) = &report.notices {
        let s = &r.stats;
        println!(
            "notices:  {} ({} deleted, {} live)",
            s.notices,
            s.deleted,
            s.notices - s.deleted
        );
        println!(
            "segments: {} ({} bytes on disk, {} in records)",
            s.segments, s.segment_bytes_total, r.record_bytes
        );
    }
    if let Some(r) = &report.graph {
        let s = &r.stats;
        println!("users:    {}", s.users);
        println!(
            "follows:  {} ({} blocks, {} mutes)",
            s.follows, s.blocks, s.mutes
        );
        println!(
            "graph:    {} snapshot bytes, {} ops since the snapshot",
            s.snapshot_bytes, s.ops_since_snapshot
        );
    }
    if let Some(r) = &report.outbox {
        let s = &r.stats;
        // A closed store has nothing in flight: what was handed out and not acked is
        // pending again.
        println!(
            "outbox:   {} pending, {} in flight, {} failed (waiting for a retry), {} unavailable servers ({} deliveries dropped), {} bytes",
            s.pending, s.in_flight, s.failed, s.unavailable_servers, s.dropped, s.file_bytes
        );
    }
    let sound = report.notices.as_ref().is_none_or(CheckReport::is_sound)
        && report.graph.as_ref().is_none_or(GraphCheckReport::is_sound)
        && report.outbox.as_ref().is_none_or(OutboxReport::is_sound);
    println!("sound:    {sound}");
    Ok(ExitCode::SUCCESS)
}
