//! Guards durability across real crashes: `feedcore load --print-acks` runs in a child
//! process that is killed with SIGKILL at a random moment, again and again on the same
//! store. After every kill the store must open, hold every acknowledged notice with the
//! content it was written with, hold ids `1..=len` and nothing after, and `check` must
//! find it sound; so must `feedcore check` after the last round. Once with one fsync
//! per notice (`--durability always`), once with group commit and batches.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{assert_all_synthetic, feedcore_bin, open_log};
use feedcore::{LogConfig, NoticeId};
use rand::{RngExt, SeedableRng};

const ROUNDS: usize = 20;

/// Held while spawning a child and while dropping a log. A child holds copies of all
/// of this process's descriptors from its fork until its exec; if the other test of
/// this file spawned one just as this test dropped its log, the lock file would stay
/// locked for that moment and this test's next `feedcore load` would be refused.
static SPAWN: Mutex<()> = Mutex::new(());

fn spawn_guard() -> std::sync::MutexGuard<'static, ()> {
    SPAWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one killed run of `feedcore load` acknowledged.
struct Run {
    acks: Vec<u64>,
    stderr: String,
}

/// Starts `feedcore load` on `store`, kills it after `delay` (SIGKILL), and collects the
/// acknowledged ids it printed before it died.
fn load_and_kill(store: &Path, extra: &[&str], delay: Duration) -> Run {
    let spawning = spawn_guard();
    let mut child = Command::new(feedcore_bin())
        .arg("load")
        .arg(store)
        .args(["--notices", "1000000", "--print-acks"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("feedcore starts");
    drop(spawning);
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                // A line the kill cut short was not acknowledged as a whole.
                Ok(_) if !line.ends_with('\n') => break,
                Ok(_) => {
                    let id = line
                        .trim_end()
                        .strip_prefix("ack ")
                        .unwrap_or_else(|| panic!("unexpected output line {line:?}"));
                    acks.push(id.parse::<u64>().expect("an id"));
                }
            }
        }
        acks
    });
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    std::thread::sleep(delay);
    let still_running = child.try_wait().expect("try_wait").is_none();
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    let acks = reader.join().expect("the reader thread");
    let stderr = errors.join().expect("the stderr thread");
    assert!(
        still_running,
        "feedcore load ended before it was killed ({status}): {stderr}"
    );
    Run { acks, stderr }
}

fn crash_rounds(extra: &[&str], seed_salt: u64) {
    let seed = seed_salt
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    eprintln!("crash test {extra:?}: seed {seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().join("notices");
    let mut len = 0u64;
    let mut acked_total = 0;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let delay = Duration::from_millis(rng.random_range(20..300));
        let run = load_and_kill(store.path(), extra, delay);
        let what = format!("seed {seed}, round {round}, killed after {delay:?}");
        // The child appends from the length it recovered, which is the one this
        // process saw after the previous round.
        if let Some(&first) = run.acks.first() {
            assert_eq!(first, len + 1, "{what}: first ack; stderr: {}", run.stderr);
        }
        for pair in run.acks.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "{what}: acks are consecutive");
        }
        acked_total += run.acks.len();

        // Read-only check of the state the kill left, before open repairs anything.
        let report = feedcore::NoticeLog::check(&dir)
            .unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
        assert!(report.is_sound(), "{what}: {:?}", report.problems);

        let log = open_log(&dir, LogConfig::default())
            .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
        let last_ack = run.acks.last().copied().unwrap_or(len);
        assert!(
            log.len() >= last_ack,
            "{what}: {} notices, but {last_ack} was acknowledged",
            log.len()
        );
        for &id in &run.acks {
            let notice = log
                .get(NoticeId(id))
                .unwrap_or_else(|| panic!("{what}: acknowledged {id} is missing"));
            common::assert_synthetic(&notice);
        }
        // Every notice there, acknowledged or not, is whole and in id order.
        assert_all_synthetic(&log);
        assert_eq!(log.recovery().notices, log.len());
        assert_eq!(log.recovery().deleted, 0);
        len = log.len();
        let _dropping = spawn_guard();
        drop(log);
    }
    eprintln!(
        "crash test {extra:?}: {ROUNDS} rounds, {acked_total} acks, {len} notices, {:?}",
        started.elapsed()
    );
    assert!(
        acked_total > 0,
        "no round acknowledged anything: the kills came too early to test anything"
    );
    let out = {
        let _spawning = spawn_guard();
        Command::new(feedcore_bin())
            .arg("check")
            .arg(store.path())
            .output()
            .unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "feedcore check: {stdout}");
    assert!(stdout.contains(&format!("{len} notices")), "{stdout}");
}

#[test]
fn kill_during_load_with_an_fsync_per_notice() {
    crash_rounds(&["--durability", "always"], 1);
}

#[test]
fn kill_during_load_with_group_commit_and_batches() {
    crash_rounds(&["--durability", "group", "--batch", "16"], 2);
}
