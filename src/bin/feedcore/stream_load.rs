//! `feedcore load DIR --stream-ops N` (hidden): a seeded workload of groups and
//! followed tags through an [`Engine`], for the streams crash test
//! (`tests/streams_crash.rs`), which kills it with SIGKILL at a random moment and
//! checks what it acknowledged.
//!
//! The workload: the groups `g0` .. `g3` (created by user 0 when missing), every
//! user reads its home timeline once, then `N` operations drawn from `--seed`: group
//! posts (40%: to a random group, named by id or as `!gN` in the body, half of them
//! tagged `#tN`), joins (20%), leaves (10%), tag follows (10%) and home reads (20%).
//!
//! With `--print-acks`, one line on stdout per acknowledged change, flushed at once:
//! - `ack group G`: group `gG` exists (created or found);
//! - `ack member U G 1` after a join (new or `AlreadyMember`), `ack member U G 0`
//!   after a leave (or `NotMember`);
//! - `ack tag U T`: user `U` follows tag `tT`;
//! - `ack gpost ID AUTHOR G K`: operation `K` was stored as notice `ID`, addressed to
//!   group `G`, with the body [`body`]`(seed, K, G)`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use feedcore::{Config, Durability, Engine, Error, GroupId, NewNotice, Page, UserId};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Groups of the workload.
pub(crate) const GROUPS: u32 = 4;
/// Tags of the workload.
pub(crate) const TAGS: u32 = 3;

pub(crate) struct StreamLoadArgs {
    pub(crate) dir: PathBuf,
    pub(crate) ops: u64,
    pub(crate) users: u32,
    pub(crate) seed: u64,
    pub(crate) durability: Durability,
    pub(crate) print_acks: bool,
}

/// The body of the group post of operation `k`: names the group as `!gG` when
/// `by_name`.
pub(crate) fn body(seed: u64, k: u64, group: u32, by_name: bool) -> String {
    if by_name {
        format!("stream load seed {seed} op {k} to !g{group}")
    } else {
        format!("stream load seed {seed} op {k}")
    }
}

fn ack(on: bool, line: std::fmt::Arguments<'_>) {
    if on {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").expect("stdout is writable");
        out.flush().expect("stdout is writable");
    }
}

pub(crate) fn run(args: &StreamLoadArgs) -> feedcore::Result<ExitCode> {
    if args.users < 2 {
        eprintln!("feedcore load: --users must be at least 2 for stream operations");
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
    for g in 0..GROUPS {
        let name = format!("g{g}");
        let id = match engine.group_by_name(&name) {
            Some(id) => id,
            None => engine.create_group(UserId(0), &name)?,
        };
        assert_eq!(id, GroupId(g), "the workload creates its groups in order");
        ack(acks, format_args!("ack group {g}"));
    }
    for u in 0..users {
        engine.home_timeline(UserId(u), Page::latest(20))?;
    }
    let mut rng = SmallRng::seed_from_u64(args.seed);
    for k in 0..args.ops {
        let u = rng.random_range(0..users);
        let g = rng.random_range(0..GROUPS);
        match rng.random_range(0..100) {
            0..40 => {
                let by_name = rng.random_bool(0.5);
                let tagged = rng.random_bool(0.5);
                let notice = NewNotice {
                    author: UserId(u),
                    body: body(args.seed, k, g, by_name),
                    groups: if by_name {
                        Vec::new()
                    } else {
                        vec![GroupId(g)]
                    },
                    tags: if tagged {
                        vec![format!("#t{}", rng.random_range(0..TAGS))]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                };
                let id = engine.post(notice)?;
                ack(acks, format_args!("ack gpost {} {u} {g} {k}", id.0));
            }
            40..60 => {
                match engine.join_group(UserId(u), GroupId(g)) {
                    Ok(()) | Err(Error::AlreadyMember { .. }) => {}
                    Err(e) => return Err(e),
                }
                ack(acks, format_args!("ack member {u} {g} 1"));
            }
            60..70 => {
                match engine.leave_group(UserId(u), GroupId(g)) {
                    Ok(()) | Err(Error::NotMember { .. }) => {}
                    Err(e) => return Err(e),
                }
                ack(acks, format_args!("ack member {u} {g} 0"));
            }
            70..80 => {
                let t = rng.random_range(0..TAGS);
                engine.follow_tag(UserId(u), format!("t{t}"))?;
                ack(acks, format_args!("ack tag {u} {t}"));
            }
            _ => {
                engine.home_timeline(UserId(u), Page::latest(20))?;
            }
        }
    }
    engine.flush()?;
    engine.sync()?;
    println!("stream ops: {} applied", args.ops);
    Ok(ExitCode::SUCCESS)
}
