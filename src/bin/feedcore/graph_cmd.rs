//! `feedcore graph`: generate a follow graph and print its statistics beside the
//! targets measured by Kwak et al. (WWW 2010) on the Twitter graph of 2009.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use feedcore::sim::{GraphModel, GraphSummary, TwitterGraph, ZipfGraph, summarize};

/// Graph models as command-line values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelArg {
    /// Calibrated on Kwak et al.: 35 follows a user, follower exponent 2.28, top
    /// account followed by 7%, 22% of connected pairs reciprocal, 2000-follow cap.
    Twitter,
    /// Plain Zipf popularity (`--zipf-exponent`), exponential out-degrees, no
    /// reciprocity model.
    Zipf,
}

/// The graph options shared by `feedcore graph` and `feedcore sim`.
#[derive(Args, Clone, Debug)]
pub(crate) struct GraphArgs {
    /// Users in the generated graph (default 100,000; 10,000,000 with `--preset
    /// twitter-2012`).
    #[arg(long)]
    pub(crate) users: Option<u32>,
    /// The graph model.
    #[arg(long, value_enum, default_value_t = ModelArg::Twitter)]
    pub(crate) model: ModelArg,
    /// Mean follows per user.
    #[arg(long, default_value_t = 35.0)]
    pub(crate) follows_mean: f64,
    /// The Twitter model: exponent of the power law followees are drawn by (default
    /// 2.28; 2.1 with `--preset twitter-2012`, which fits about 2.26).
    #[arg(long)]
    pub(crate) follower_exponent: Option<f64>,
    /// The Twitter model: share of users following the most followed account
    /// (default 0.07).
    #[arg(long)]
    pub(crate) top_follower_fraction: Option<f64>,
    /// The Twitter model: sigma of the log-normal follows per user (default 1.2; 0.6
    /// with `--preset twitter-2012`).
    #[arg(long)]
    pub(crate) out_degree_sigma: Option<f64>,
    /// The Zipf model's popularity exponent s (follower counts get about 1 + 1/s).
    #[arg(long, default_value_t = 0.78)]
    pub(crate) zipf_exponent: f64,
    /// Seed of the graph (and of the workload).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// Users of a graph when `--users` is not given.
pub(crate) const USERS_DEFAULT: u32 = 100_000;

impl GraphArgs {
    /// The model, or why the options cannot make one.
    pub(crate) fn model(&self) -> Result<GraphModel, String> {
        self.model_from(&TwitterGraph {
            users: USERS_DEFAULT,
            ..TwitterGraph::default()
        })
    }

    /// The model with `base`'s users and Twitter parameters where the options leave
    /// them unset.
    pub(crate) fn model_from(&self, base: &TwitterGraph) -> Result<GraphModel, String> {
        let users = self.users.unwrap_or(base.users);
        let follower_exponent = self.follower_exponent.unwrap_or(base.follower_exponent);
        let top_follower_fraction = self
            .top_follower_fraction
            .unwrap_or(base.top_follower_fraction);
        let out_degree_sigma = self.out_degree_sigma.unwrap_or(base.out_degree_sigma);
        if users == 0 {
            return Err("--users is 0; a graph needs at least 2 users".into());
        }
        if users < 2 {
            return Err(format!(
                "--users is {}; a graph needs at least 2 users",
                users
            ));
        }
        if !(self.follows_mean.is_finite() && self.follows_mean > 0.0) {
            return Err(format!(
                "--follows-mean {} must be a positive number",
                self.follows_mean
            ));
        }
        if self.follows_mean > f64::from(users - 1) {
            return Err(format!(
                "--follows-mean {} is above the {} other users each user can follow (--users {})",
                self.follows_mean,
                users - 1,
                users
            ));
        }
        Ok(match self.model {
            ModelArg::Twitter => {
                if !(follower_exponent > 2.01 && follower_exponent < 5.0) {
                    return Err(format!(
                        "--follower-exponent {follower_exponent} must be a number above 2.01 and below 5"
                    ));
                }
                if !(top_follower_fraction > 0.0 && top_follower_fraction < 1.0) {
                    return Err(format!(
                        "--top-follower-fraction {top_follower_fraction} must be between 0 and 1"
                    ));
                }
                if !(out_degree_sigma > 0.0 && out_degree_sigma <= 4.0) {
                    return Err(format!(
                        "--out-degree-sigma {out_degree_sigma} must be above 0 and at most 4"
                    ));
                }
                GraphModel::Twitter(TwitterGraph {
                    users,
                    follows_mean: self.follows_mean,
                    follower_exponent,
                    top_follower_fraction,
                    out_degree_sigma,
                    seed: self.seed,
                    ..base.clone()
                })
            }
            ModelArg::Zipf => {
                if !(self.zipf_exponent.is_finite() && self.zipf_exponent > 0.0) {
                    return Err(format!(
                        "--zipf-exponent {} must be a positive number",
                        self.zipf_exponent
                    ));
                }
                GraphModel::Zipf(ZipfGraph {
                    users,
                    follows_mean: self.follows_mean,
                    popularity_exponent: self.zipf_exponent,
                    seed: self.seed,
                    ..ZipfGraph::default()
                })
            }
        })
    }
}

/// `feedcore graph` options.
#[derive(Args)]
pub(crate) struct GraphCmdArgs {
    #[command(flatten)]
    pub(crate) graph: GraphArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The statistics as JSON (`in` = followers, `out` = follows).
pub(crate) fn summary_json(s: &GraphSummary) -> serde_json::Value {
    serde_json::json!({
        "users": s.users,
        "follows": s.follows,
        "out_degree": { "mean": s.follows_mean, "median": s.follows_median, "max": s.follows_max },
        "in_degree": { "mean": s.follows_mean, "median": s.followers_median, "max": s.followers_max },
        "follower_exponent_fitted": finite(s.follower_exponent),
        "reciprocal_pairs": s.reciprocal_pairs,
        "top_follower_fraction": s.top_follower_fraction,
    })
}

/// NaN and infinities are not JSON: they become null.
pub(crate) fn finite(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        serde_json::Value::Null
    }
}

pub(crate) fn run(args: &GraphCmdArgs) -> feedcore::Result<ExitCode> {
    let model = match args.graph.model() {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("feedcore graph: {reason}");
            return Ok(ExitCode::from(2));
        }
    };
    let started = Instant::now();
    let edges = model.edges();
    let generated_s = started.elapsed().as_secs_f64();
    let s = summarize(model.users(), &edges);
    if args.json {
        let params: serde_json::Map<String, serde_json::Value> = model
            .parameters()
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        let value = serde_json::json!({
            "model": model.name(),
            "parameters": params,
            "summary": summary_json(&s),
            "generated_s": generated_s,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("json values serialise")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} graph, {} users, {} follows, seed {} (generated in {:.1} s)",
        model.name(),
        s.users,
        s.follows,
        args.graph.seed,
        generated_s
    );
    println!();
    println!(
        "{:<38} {:>12} {:>22}",
        "statistic", "generated", "Kwak et al. 2010"
    );
    let row = |name: &str, value: String, target: &str| {
        println!("{name:<38} {value:>12} {target:>22}");
    };
    row(
        "follows per user, mean (= in-degree mean)",
        format!("{:.1}", s.follows_mean),
        "35.3",
    );
    row(
        "follows per user (out-degree), median",
        s.follows_median.to_string(),
        "",
    );
    row(
        "follows per user (out-degree), max",
        s.follows_max.to_string(),
        "2000 (cap)",
    );
    row(
        "followers per user (in-degree), median",
        s.followers_median.to_string(),
        "",
    );
    row(
        "followers per user (in-degree), max",
        s.followers_max.to_string(),
        "",
    );
    row(
        "follower power-law exponent (fit >= 10)",
        format!("{:.2}", s.follower_exponent),
        "2.28",
    );
    row(
        "top account's followers / users",
        format!("{:.1}%", 100.0 * s.top_follower_fraction),
        "about 7%",
    );
    row(
        "reciprocal pairs / connected pairs",
        format!("{:.1}%", 100.0 * s.reciprocal_pairs),
        "22.1%",
    );
    Ok(ExitCode::SUCCESS)
}
