//! Guards `feedcore sim` and `feedcore graph` as a user runs them: the same seed
//! gives byte-identical JSON apart from the `measured` object; `--report DIR` writes
//! a report.json that parses and SVG plots; bad input gets a clear message and a
//! non-zero exit before any work starts. Small sizes keep it to a few seconds.

use std::process::{Command, Output};

fn feedcore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_feedcore"))
        .args(args)
        .output()
        .expect("the feedcore binary runs")
}

const SMALL: [&str; 6] = ["--users", "2000", "--ops", "4000", "--follows-mean", "10"];

fn sim_json(extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["sim", "--json"];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(extra);
    let out = feedcore(&args);
    assert!(
        out.status.success(),
        "sim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("sim --json prints JSON")
}

#[test]
fn same_seed_same_report_apart_from_measurements() {
    let a = sim_json(&["--seed", "3", "--sweep", "read-write=0.5,4"]);
    let b = sim_json(&["--seed", "3", "--sweep", "read-write=0.5,4"]);
    let text = |v: &serde_json::Value| serde_json::to_string(&v["workload"]).unwrap();
    assert_eq!(text(&a), text(&b), "the workload part is byte-identical");
    let keys = |v: &serde_json::Value| -> Vec<(String, f64)> {
        v["measured"]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["strategy"].as_str().unwrap().to_string(),
                    r["read_write"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(keys(&a).len(), 10, "five strategies at two ratios");
    // The operation counts in `workload` are what the runs did.
    for (ratio, run) in a["workload"]["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| {
            a["measured"]["runs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(move |r| r["read_write"] == w["read_write"])
                .map(move |r| (w, r))
        })
    {
        assert_eq!(ratio["posts"], run["posts"]);
        assert_eq!(ratio["reads"], run["reads"]);
    }
    let c = sim_json(&["--seed", "4", "--sweep", "read-write=0.5,4"]);
    assert_ne!(text(&a), text(&c), "another seed, another workload");
}

#[test]
fn report_files_exist_and_parse() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let mut args = vec!["sim", "--strategy", "push", "--report"];
    let report_s = report.to_str().unwrap();
    args.push(report_s);
    args.extend_from_slice(&SMALL);
    let out = feedcore(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("push"), "{table}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["measured"]["runs"][0]["strategy"], "push");
    assert!(json["measured"]["runs"][0]["reads_per_s"].as_f64().unwrap() > 0.0);
    for svg in ["throughput.svg", "read_latency.svg", "cost_by_ratio.svg"] {
        let text = std::fs::read_to_string(report.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") || text.starts_with("<?xml"),
            "{svg}: {}",
            &text[..text.len().min(80)]
        );
    }
}

fn fails_with(args: &[&str], needle: &str) {
    let out = feedcore(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{args:?} started work: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_input_is_refused_before_any_work() {
    fails_with(&["sim", "--strategy", "fanout"], "fanout");
    fails_with(&["sim", "--users", "0"], "--users is 0");
    fails_with(
        &["sim", "--users", "10", "--follows-mean", "35"],
        "above the 9 other users",
    );
    fails_with(&["sim", "--users", "abc"], "abc");
    fails_with(&["sim", "--sweep", "writes=1,2"], "read-write=");
    fails_with(&["sim", "--sweep", "read-write=1,x"], "\"x\"");
    fails_with(&["sim", "--ops", "0"], "--ops is 0");
    fails_with(
        &["sim", "--strategy", "push", "--selective-known-rates"],
        "--selective-known-rates",
    );
    fails_with(&["sim", "--replies", "1.5"], "reply fraction");
    fails_with(&["sim", "--model", "erdos"], "erdos");
    fails_with(&["sim", "--users", "4000000000"], "GiB");
    fails_with(&["graph", "--users", "0"], "--users is 0");
}

#[test]
fn graph_prints_statistics_as_json() {
    let out = feedcore(&["graph", "--users", "3000", "--json", "--model", "zipf"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "zipf");
    assert_eq!(v["summary"]["users"], 3000);
    assert!(v["summary"]["in_degree"]["max"].as_u64().unwrap() > 10);
    let out = feedcore(&["graph", "--users", "3000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Kwak"), "{text}");
}

#[test]
fn warm_up_hours_are_played_before_the_measured_operations() {
    let v = sim_json(&["--strategy", "selective", "--warm-up-hours", "1"]);
    let workload = &v["workload"]["workload"];
    assert_eq!(
        workload["ops"], 8000,
        "one warm-up hour of 4000 ops, then 4000"
    );
    assert_eq!(workload["measured_ops"], 4000);
    assert_eq!(workload["warm_up_hours"], 1);
    assert_eq!(workload["simulated_ms"], 2 * 3_600_000);
    let run = &v["measured"]["runs"][0];
    assert_eq!(
        run["ops_done"], 4000,
        "figures cover the measured hour only"
    );
    assert_eq!(
        run["posts"].as_u64().unwrap() + run["reads"].as_u64().unwrap(),
        4000
    );
    fails_with(
        &["sim", "--warm-up-hours", "1", "--baseline", "redis"],
        "--warm-up-hours",
    );
}

#[test]
fn selective_can_decide_by_the_workloads_true_rates() {
    let estimating = sim_json(&["--strategy", "selective"]);
    let known = sim_json(&["--strategy", "selective", "--selective-known-rates"]);
    let strategy = |v: &serde_json::Value| v["workload"]["strategies"][0].clone();
    assert_eq!(strategy(&estimating)["known_rates"], false);
    assert_eq!(strategy(&known)["known_rates"], true);
    let deliveries = |v: &serde_json::Value| {
        v["measured"]["runs"][0]["deliveries"]
            .as_u64()
            .expect("deliveries")
    };
    // Known rates count readers as reading from their first read, where estimates
    // wait for evidence: far more is pushed on the same sequence.
    assert!(
        deliveries(&known) > deliveries(&estimating) * 3 / 2,
        "{} against {}",
        deliveries(&known),
        deliveries(&estimating)
    );
}

/// `--groups` and `--tag-follows` add the new streams' reads: the table gains a
/// `streams` line per run and the JSON a `stream_reads` entry per stream, each with
/// reads counted; out-of-range values are refused before any work.
#[test]
fn groups_and_tag_follows_report_the_new_streams() {
    let mut args = vec!["sim"];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(&["--strategy", "push", "--groups", "20", "--tag-follows", "2"]);
    let out = feedcore(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("streams push"))
        .unwrap_or_else(|| panic!("no streams line in:\n{table}"));
    for stream in ["group page", "tag page", "public page"] {
        assert!(line.contains(stream), "{line}");
    }
    let json = sim_json(&["--strategy", "push", "--groups", "20", "--tag-follows", "2"]);
    let reads = json["measured"]["runs"][0]["stream_reads"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = reads
        .iter()
        .map(|r| r["stream"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["group", "tag", "public"]);
    assert!(reads.iter().all(|r| r["reads"].as_u64().unwrap() > 0));
    let plain = sim_json(&["--strategy", "push"]);
    assert!(
        plain["measured"]["runs"][0]["stream_reads"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for bad in [["--groups", "999999"], ["--tag-follows", "65"]] {
        let mut args = vec!["sim"];
        args.extend_from_slice(&SMALL);
        args.extend_from_slice(&bad);
        let out = feedcore(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
