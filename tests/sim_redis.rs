//! Guards `feedcore sim --baseline redis` (lists, Twitter's layout) and `redis-all`
//! (lists and Mastodon's sorted sets): on a small workload it starts a local
//! redis-server, runs the layouts, reports them with their ratio to feedcore's push,
//! and leaves no server behind. Skipped,
//! with a message, where redis-server is not installed (CI installs it).

use std::process::Command;

fn redis_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    })
}

fn redis_servers() -> usize {
    // Our children only: their parent would be this test's feedcore process, gone by
    // now; count every redis-server whose command line names 127.0.0.1 and no save.
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .filter(|c| {
                    let c = String::from_utf8_lossy(c);
                    c.contains("redis-server") && c.contains("appendonly")
                })
                .count()
        })
        .unwrap_or(0)
}

/// One test, the two runs in turn: each counts the redis-servers left behind, which a
/// run beside it would disturb.
#[test]
fn redis_baselines_run_their_layouts() {
    run_baseline("redis", &["push", "redis-list"]);
    run_baseline("redis-all", &["push", "redis-list", "redis-zset"]);
}

fn run_baseline(baseline: &str, expected: &[&str]) {
    if !redis_installed() {
        println!("SKIPPED sim_redis: redis-server is not installed (apt-get install redis-server)");
        return;
    }
    let before = redis_servers();
    let out = Command::new(env!("CARGO_BIN_EXE_feedcore"))
        .args([
            "sim",
            "--json",
            "--users",
            "2000",
            "--ops",
            "4000",
            "--follows-mean",
            "10",
            "--strategy",
            "push",
            "--baseline",
            baseline,
        ])
        .output()
        .expect("the feedcore binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v["measured"]["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["strategy"].as_str().or(r["layout"].as_str()).unwrap())
        .collect();
    assert_eq!(names, expected);
    for r in &runs[1..] {
        assert_eq!(r["posts"], runs[0]["posts"], "same workload");
        assert_eq!(r["reads"], runs[0]["reads"], "same workload");
        assert!(r["deliveries"].as_u64().unwrap() > 0);
        assert!(r["ratio_to_push"]["reads_per_s"].as_f64().unwrap() > 0.0);
        let per_entry = r["memory"]["timeline_bytes_per_entry"].as_f64().unwrap();
        assert!(per_entry > 1.0, "{per_entry}");
    }
    assert_eq!(redis_servers(), before, "the server it started is gone");
}
