//! `feedcore load DIR --engine-ops N` (hidden): a seeded workload through an [`Engine`]
//! on the store, for the engine crash test (`tests/engine_crash.rs`), which kills it
//! with SIGKILL at a random moment and checks what it acknowledged.
//!
//! The workload: every user reads its home timeline once (so every timeline is fresh
//! and the fan-out delivers to all of them), every user follows user 0 (so user 0's
//! posts fan out to everyone), then `N` operations drawn from `--seed`: posts (60%:
//! a third of them by user 0; up to two mentions; every scope; some replies to and
//! repeats of random stored notices), follows (20%), mutes (5%) and home reads (15%).
//!
//! With `--print-acks`, one line on stdout per acknowledged change, flushed at once:
//! - `ack follow A B` and `ack mute A B`: the call returned `Ok` (new or not);
//! - `ack post ID AUTHOR K SCOPE REPLY_TO REPEAT_OF MENTIONS`: operation number `K`
//!   (from 0) was stored as notice `ID`; `SCOPE` is `public`, `followers` or
//!   `addressees`; `REPLY_TO` and `REPEAT_OF` are ids or `-`; `MENTIONS` is a
//!   comma-separated list of user ids or `-`. The body is [`body`]`(seed, K)`, empty
//!   for a repeat.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use feedcore::{Config, Durability, Engine, NewNotice, NoticeId, Page, Scope, UserId};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

pub(crate) struct EngineLoadArgs {
    pub(crate) dir: PathBuf,
    pub(crate) ops: u64,
    pub(crate) users: u32,
    pub(crate) seed: u64,
    pub(crate) durability: Durability,
    pub(crate) print_acks: bool,
}

/// The body of the post made by operation `k` of the run with `seed` (not a repeat).
pub(crate) fn body(seed: u64, k: u64) -> String {
    format!("engine load seed {seed} op {k}")
}

/// Writes one ack line and flushes it, when acks are asked for.
fn ack(on: bool, line: std::fmt::Arguments<'_>) {
    if on {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").expect("stdout is writable");
        out.flush().expect("stdout is writable");
    }
}

fn id_or_dash(id: Option<NoticeId>) -> String {
    id.map_or_else(|| "-".into(), |i| i.0.to_string())
}

pub(crate) fn run(args: &EngineLoadArgs) -> feedcore::Result<ExitCode> {
    if args.users < 2 {
        eprintln!("feedcore load: --users must be at least 2 for engine operations");
        return Ok(ExitCode::from(2));
    }
    let engine = Engine::open(
        &args.dir,
        Config {
            users_max: args.users,
            durability: args.durability,
            timeline_capacity: 16,
            workers: 2,
            fanout_chunk: 8,
            ..Default::default()
        },
    )?;
    let users = args.users;
    let acks = args.print_acks;
    for u in 0..users {
        engine.home_timeline(UserId(u), Page::latest(20))?;
    }
    for u in 1..users {
        engine.follow(UserId(u), UserId(0))?;
        ack(acks, format_args!("ack follow {u} 0"));
    }
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let pair = |rng: &mut SmallRng| {
        let a = rng.random_range(0..users);
        (a, (a + rng.random_range(1..users)) % users)
    };
    for k in 0..args.ops {
        match rng.random_range(0..100) {
            0..60 => {
                let author = if rng.random_range(0..3) == 0 {
                    0
                } else {
                    rng.random_range(0..users)
                };
                let mut mentions: Vec<UserId> = (0..rng.random_range(0..3))
                    .map(|_| UserId(rng.random_range(0..users)))
                    .filter(|m| m.0 != author)
                    .collect();
                // The log keeps the first of duplicates; the ack line names each once.
                mentions.sort_unstable();
                mentions.dedup();
                let scope = match rng.random_range(0..100) {
                    0..70 => Scope::Public,
                    70..85 => Scope::Followers,
                    _ => Scope::Addressees,
                };
                // Nothing is ever deleted: every stored id is a valid target.
                let stored = engine.log().len();
                let target = (stored > 0).then(|| NoticeId(rng.random_range(1..=stored)));
                let (reply_to, repeat_of) = match rng.random_range(0..100) {
                    0..15 => (target, None),
                    15..30 => (None, target),
                    _ => (None, None),
                };
                let notice = NewNotice {
                    author: UserId(author),
                    body: if repeat_of.is_some() {
                        String::new()
                    } else {
                        body(args.seed, k)
                    },
                    reply_to,
                    repeat_of,
                    mentions: mentions.clone(),
                    scope,
                    ..Default::default()
                };
                let id = engine.post(notice)?;
                let scope = match scope {
                    Scope::Public => "public",
                    Scope::Followers => "followers",
                    Scope::Addressees => "addressees",
                };
                let mentions = if mentions.is_empty() {
                    "-".to_string()
                } else {
                    let ids: Vec<String> = mentions.iter().map(|m| m.0.to_string()).collect();
                    ids.join(",")
                };
                ack(
                    acks,
                    format_args!(
                        "ack post {} {author} {k} {scope} {} {} {mentions}",
                        id.0,
                        id_or_dash(reply_to),
                        id_or_dash(repeat_of)
                    ),
                );
            }
            60..80 => {
                let (a, b) = pair(&mut rng);
                engine.follow(UserId(a), UserId(b))?;
                ack(acks, format_args!("ack follow {a} {b}"));
            }
            80..85 => {
                let (a, b) = pair(&mut rng);
                engine.mute(UserId(a), UserId(b))?;
                ack(acks, format_args!("ack mute {a} {b}"));
            }
            _ => {
                engine.home_timeline(UserId(rng.random_range(0..users)), Page::latest(20))?;
            }
        }
    }
    engine.flush()?;
    engine.sync()?;
    println!("engine ops: {} applied", args.ops);
    Ok(ExitCode::SUCCESS)
}
