//! Guards the crash loop: `feedcore torture` kills a thousand child processes (SIGKILL)
//! at random moments while they post, reply, delete, follow, unfollow, block and
//! unblock with `Durability::Always`, and after each reopen checks every operation any
//! of them acknowledged. Nothing may be lost, nothing deleted may come back, and the
//! store must check sound every time.

use std::process::Command;

fn torture(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_feedcore"))
        .arg("torture")
        .args(args)
        .arg("--json")
        .output()
        .expect("feedcore runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("torture printed no JSON ({e}): {text}"));
    assert!(out.status.success(), "torture failed: {report}");
    report
}

fn count(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {report}"))
}

#[test]
fn a_thousand_kills_lose_nothing_acknowledged() {
    let report = torture(&["--rounds", "1000", "--seed", "7"]);
    assert_eq!(count(&report, "rounds"), 1000, "{report}");
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    assert_eq!(count(&report, "lost"), 0, "{report}");
    // The loop really killed children in the middle of their work, and they did work.
    assert!(count(&report, "killed") > 300, "{report}");
    assert!(count(&report, "posts_acknowledged") > 2000, "{report}");
    assert!(count(&report, "deletes_acknowledged") > 100, "{report}");
}

#[test]
fn kills_on_a_real_disk_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().join("store");
    let report = torture(&[
        "--rounds",
        "60",
        "--seed",
        "11",
        "--dir",
        store.to_str().expect("a UTF-8 path"),
    ]);
    assert_eq!(count(&report, "rounds"), 60, "{report}");
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    assert!(count(&report, "killed") > 10, "{report}");
}
