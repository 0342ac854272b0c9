//! The figures a bench reports, each beside its baseline from the same run, written as
//! JSON to `target/figures/<bench>.json`; `scripts/figures.py` turns every bench's file
//! and the sim's `--json` output into `docs/figures.md`.

#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One bench's figures, written when `write` is called.
pub struct Figures {
    bench: &'static str,
    command: String,
    rows: Vec<serde_json::Value>,
}

impl Figures {
    /// Figures of `bench`, produced by `command` (as a user would type it).
    pub fn new(bench: &'static str, command: &str) -> Figures {
        Figures {
            bench,
            command: command.to_string(),
            rows: Vec::new(),
        }
    }

    /// A figure (`value` in `unit`) beside its baseline measured in the same run
    /// (`baseline` in the same unit); `budget` is the architecture brief's, or "".
    pub fn add(
        &mut self,
        figure: &str,
        value: f64,
        unit: &str,
        baseline: &str,
        baseline_value: f64,
        budget: &str,
    ) {
        self.rows.push(serde_json::json!({
            "figure": figure,
            "value": value,
            "unit": unit,
            "baseline": baseline,
            "baseline_value": baseline_value,
            "ratio": if baseline_value != 0.0 { value / baseline_value } else { f64::NAN },
            "budget": budget,
        }));
    }

    /// A figure with no baseline of its own (a budget stands beside it instead).
    pub fn add_alone(&mut self, figure: &str, value: f64, unit: &str, budget: &str) {
        self.rows.push(serde_json::json!({
            "figure": figure,
            "value": value,
            "unit": unit,
            "budget": budget,
        }));
    }

    /// Writes `target/figures/<bench>.json` unless nothing was recorded; a failure is
    /// printed, not fatal (the figures were printed already).
    pub fn write(&self) {
        if self.rows.is_empty() {
            return; // a run that measured nothing (criterion's test mode) keeps the last file
        }
        let Some(dir) = target_dir().map(|t| t.join("figures")) else {
            eprintln!(
                "figures: no target directory found; {}.json not written",
                self.bench
            );
            return;
        };
        let json = serde_json::json!({
            "bench": self.bench,
            "command": self.command,
            "written_unix_s": SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "load_average": std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next().map(str::to_string)),
            "figures": self.rows,
        });
        let path = dir.join(format!("{}.json", self.bench));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(&json).expect("plain JSON values"),
            )
        });
        match written {
            Ok(()) => println!("figures written to {}", path.display()),
            Err(e) => eprintln!("figures: writing {}: {e}", path.display()),
        }
    }
}

/// The target directory this bench runs from: `CARGO_TARGET_DIR`, else the one above
/// `target/release/deps/<bench>-<hash>`.
pub fn target_dir() -> Option<PathBuf> {
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.to_path_buf())
}

/// Where criterion writes its estimates (as criterion finds it: `CRITERION_HOME`, else
/// the target directory's `criterion`).
pub fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    Some(target_dir()?.join("criterion"))
}

/// Criterion's time per iteration (ns) of `group/function`, if measured in this run
/// (after `since`): the slope estimate, as criterion prints it, or the mean under flat
/// sampling.
pub fn time_ns(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = estimates(group, function)?;
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| json["mean"]["point_estimate"].as_f64())
}

fn estimates(group: &str, function: &str) -> Option<PathBuf> {
    let dir: &Path = &criterion_dir()?;
    Some(
        dir.join(group)
            .join(function)
            .join("new")
            .join("estimates.json"),
    )
}
