//! Guards that a real Mastodon client works against the server: Mastodon.py (installed
//! into a virtualenv under `target/` by `scripts/mastodon_py.sh`) registers accounts,
//! posts, follows, pages a home timeline of 100 posts with `fetch_next` and
//! `fetch_previous`, pages the public (also without a token), local, hashtag and list
//! timelines the same way, makes a list and adds to it, replies, deletes, mutes and
//! blocks, and asserts what it sees (`tests/mastodon_py_driver.py`). Run against both
//! backends; the Redis one where redis-server can be started. Skipped, with a message, only where python3, venv or
//! pip cannot be had.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("scripts/mastodon_py.sh");
    let venv = root.join("../target/mastodon-py-venv");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&venv)
        .output()
        .expect("bash runs");
    match out.status.code() {
        Some(0) => Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())),
        Some(3) => {
            println!(
                "SKIP mastodon_py: Mastodon.py cannot be installed here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        _ => panic!(
            "scripts/mastodon_py.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn drive(python: &PathBuf, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::Server::start(dir.path(), extra);
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mastodon_py_driver.py");
    let out = Command::new(python)
        .arg(&driver)
        .arg(&server.url)
        .output()
        .expect("the driver runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK 100 statuses paged in 3 pages"),
        "driver with {extra:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.alive(), "the server died under the client");
}

#[test]
fn mastodon_py_drives_both_backends() {
    let Some(python) = python() else { return };
    drive(&python, &[]);
    match common::start_redis() {
        Ok(redis) => drive(&python, &["--backend", "redis", "--redis", &redis.url]),
        Err(why) => println!("SKIP mastodon_py with --backend redis: {why}"),
    }
}
