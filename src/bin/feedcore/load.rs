//! `feedcore load`: synthetic notices into a store.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use feedcore::sim::synthetic_notice;
use feedcore::{Durability, LogConfig, NoticeId, NoticeLog};
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) fn run(
    dir: &Path,
    notices: u64,
    durability: Durability,
    print_acks: bool,
    batch: usize,
) -> feedcore::Result<ExitCode> {
    let log = NoticeLog::open(
        crate::notices_dir(dir),
        LogConfig {
            durability,
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
    let bar = ProgressBar::new(notices).with_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message("appending");
    let stdout = std::io::stdout();
    let batch = batch.max(1) as u64;
    let mut last = None;
    let mut done = 0;
    while done < notices {
        let count = batch.min(notices - done);
        let first = log.len() + 1;
        let batch: Vec<_> = (first..first + count)
            .map(|id| synthetic_notice(NoticeId(id)))
            .collect();
        let ids = log.append_batch(&batch)?;
        assert_eq!(
            ids.first(),
            Some(&NoticeId(first)),
            "this process is the only appender"
        );
        if print_acks {
            let mut out = stdout.lock();
            for id in &ids {
                writeln!(out, "ack {}", id.0).expect("stdout is writable");
            }
            out.flush().expect("stdout is writable");
        }
        last = ids.last().copied();
        done += count;
        bar.inc(count);
    }
    log.sync()?;
    bar.finish_and_clear();
    match last {
        Some(id) => println!("last acknowledged id: {}", id.0),
        None => println!("nothing appended"),
    }
    Ok(ExitCode::SUCCESS)
}
