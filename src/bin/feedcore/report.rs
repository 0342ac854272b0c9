//! `feedcore check` and `feedcore stats`.

use std::path::Path;
use std::process::ExitCode;

use feedcore::NoticeLog;

pub(crate) fn check(dir: &Path) -> feedcore::Result<ExitCode> {
    let log_dir = crate::notices_dir(dir);
    let report = NoticeLog::check(&log_dir)?;
    println!(
        "{}: {} segments, {} notices ({} deleted), {} records checked, {} record bytes",
        log_dir.display(),
        report.stats.segments,
        report.stats.notices,
        report.stats.deleted,
        report.records_checked,
        report.record_bytes
    );
    for problem in &report.problems {
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
    if report.is_sound() {
        println!("sound");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("damaged: an operator must act before the store is opened");
        Ok(ExitCode::from(1))
    }
}

pub(crate) fn stats(dir: &Path, json: bool) -> feedcore::Result<ExitCode> {
    let log_dir = crate::notices_dir(dir);
    let report = NoticeLog::check(&log_dir)?;
    let s = &report.stats;
    if json {
        let value = serde_json::json!({
            "notices": {
                "dir": log_dir,
                "notices": s.notices,
                "deleted": s.deleted,
                "live": s.notices - s.deleted,
                "segments": s.segments,
                "segment_bytes_total": s.segment_bytes_total,
                "record_bytes": report.record_bytes,
                "sound": report.is_sound(),
            }
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("json values serialise")
        );
    } else {
        println!(
            "notices:  {} ({} deleted, {} live)",
            s.notices,
            s.deleted,
            s.notices - s.deleted
        );
        println!(
            "segments: {} ({} bytes on disk, {} in records)",
            s.segments, s.segment_bytes_total, report.record_bytes
        );
        println!("sound:    {}", report.is_sound());
    }
    Ok(ExitCode::SUCCESS)
}
