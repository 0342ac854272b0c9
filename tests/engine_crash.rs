//! Guards the Engine's crash contract during heavy fan-out: `feedcore load
//! --engine-ops ... --durability always --print-acks` (posts with mentions, replies,
//! repeats, follows and mutes through an `Engine`, everyone following user 0) is
//! killed with SIGKILL at a random moment, round after round on the same store, each
//! round with its own seed. After each kill: `feedcore check` finds the store sound;
//! the reopened engine holds every acknowledged post with the content the child wrote,
//! every acknowledged follow and mute, and at most the one post in flight besides; and
//! every user's home timeline (all pages), user stream and mentions equal the streams
//! computed from the reopened log and graph by the rules (a timeline after a crash is
//! a rebuild from the log and the graph, nothing more, nothing less).

mod common;
mod engine_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use engine_common::{Model, STREAMS, read_all};
use feedcore::{Config, Durability, Engine, Error, NoticeId, Page, Scope, UserId};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const USERS: u32 = 120;
const ROUNDS: u64 = 24;

/// What the child wrote for one acknowledged post.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Post {
    author: u32,
    body: String,
    scope: Scope,
    reply_to: Option<NoticeId>,
    repeat_of: Option<NoticeId>,
    mentions: Vec<UserId>,
}

/// Everything the children acknowledged so far.
#[derive(Default)]
struct Acked {
    posts: BTreeMap<u64, Post>,
    follows: BTreeSet<(u32, u32)>,
    mutes: BTreeSet<(u32, u32)>,
}

/// The child's body for operation `k` of the run with `seed` (see
/// `src/bin/feedcore/engine_load.rs`).
fn body(seed: u64, k: u64) -> String {
    format!("engine load seed {seed} op {k}")
}

fn config() -> Config {
    // What the child opens the engine with, but for the timeline sizes, which are
    // memory only.
    Config {
        users_max: USERS,
        durability: Durability::Always,
        ..Default::default()
    }
}

fn parse_id(field: &str) -> Option<NoticeId> {
    (field != "-").then(|| NoticeId(field.parse().expect("an id or -")))
}

/// Parses one whole ack line into `acked`.
fn parse_ack(line: &str, seed: u64, acked: &mut Acked) -> Result<(), String> {
    let f: Vec<&str> = line.split(' ').collect();
    let num = |s: &str| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    match f.as_slice() {
        ["ack", "follow", a, b] => {
            acked.follows.insert((num(a)? as u32, num(b)? as u32));
        }
        ["ack", "mute", a, b] => {
            acked.mutes.insert((num(a)? as u32, num(b)? as u32));
        }
        [
            "ack",
            "post",
            id,
            author,
            k,
            scope,
            reply_to,
            repeat_of,
            mentions,
        ] => {
            let repeat_of = parse_id(repeat_of);
            let post = Post {
                author: num(author)? as u32,
                body: if repeat_of.is_some() {
                    String::new()
                } else {
                    body(seed, num(k)?)
                },
                scope: match *scope {
                    "public" => Scope::Public,
                    "followers" => Scope::Followers,
                    "addressees" => Scope::Addressees,
                    other => return Err(format!("scope {other:?}")),
                },
                reply_to: parse_id(reply_to),
                repeat_of,
                mentions: if *mentions == "-" {
                    Vec::new()
                } else {
                    mentions
                        .split(',')
                        .map(|m| num(m).map(|m| UserId(m as u32)))
                        .collect::<Result<_, _>>()?
                },
            };
            if acked.posts.insert(num(id)?, post).is_some() {
                return Err(format!("notice {id} acknowledged twice"));
            }
        }
        _ => return Err("not an ack line".into()),
    }
    Ok(())
}

/// Starts the engine workload on `store` with `seed`, kills it with SIGKILL after
/// `delay_ms`, and adds what it acknowledged to `acked`; returns how many acks.
fn load_and_kill(store: &Path, seed: u64, delay_ms: u64, acked: &mut Acked) -> usize {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_feedcore"));
    cmd.arg("load")
        .arg(store)
        .args(["--engine-ops", "100000000", "--users", &USERS.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--durability", "always", "--print-acks"]);
    let mut count = 0;
    for line in common::kill_after(&mut cmd, delay_ms, &format!("seed {seed}")) {
        parse_ack(&line, seed, acked)
            .unwrap_or_else(|e| panic!("seed {seed}: bad output line {line:?}: {e}"));
        count += 1;
    }
    count
}

/// Every acknowledged post, follow and mute is in the reopened engine; every notice
/// that was not acknowledged is one of the posts in flight at a kill (at most one a
/// round). Returns how many such notices there are.
fn check_acked(engine: &Engine, acked: &Acked, unacked_before: usize, when: &str) -> usize {
    for (&id, post) in &acked.posts {
        let n = engine
            .notice(NoticeId(id))
            .unwrap_or_else(|| panic!("{when}: acknowledged notice {id} is missing"));
        let got = Post {
            author: n.author().0,
            body: n.body().to_owned(),
            scope: n.scope(),
            reply_to: n.reply_to(),
            repeat_of: n.repeat_of(),
            mentions: n.mentions().collect(),
        };
        assert_eq!(&got, post, "{when}: notice {id}");
    }
    for &(a, b) in &acked.follows {
        assert!(
            engine.graph().is_following(UserId(a), UserId(b)),
            "{when}: acknowledged follow {a} -> {b} is missing"
        );
    }
    for &(a, b) in &acked.mutes {
        assert!(
            engine.graph().is_muted(UserId(a), UserId(b)),
            "{when}: acknowledged mute {a} -> {b} is missing"
        );
    }
    let unacked = engine
        .log()
        .iter_from(NoticeId(1))
        .filter(|n| !acked.posts.contains_key(&n.id().0))
        .count();
    assert!(
        unacked <= unacked_before + 1,
        "{when}: {unacked} notices were never acknowledged, {unacked_before} before this round"
    );
    unacked
}

/// Every user's streams, all pages, equal the rules applied to the reopened log and
/// graph.
fn check_streams(engine: &Engine, rng: &mut SmallRng, when: &str) -> usize {
    let model = Model::from_engine(engine, USERS);
    let mut entries = 0;
    for user in 0..USERS {
        for stream in STREAMS {
            let limit = rng.random_range(20..=60);
            let got = read_all(engine, stream, user, Page::latest(limit));
            let expected = model.stream(stream, user);
            if got != expected {
                let only_got: Vec<_> = got.iter().filter(|i| !expected.contains(i)).collect();
                let only_expected: Vec<_> = expected.iter().filter(|i| !got.contains(i)).collect();
                panic!(
                    "{when}: {stream:?} of user {user} (pages of {limit}): {} ids, the rules \
                     give {}; only in the engine's: {only_got:?}; only in the rules': \
                     {only_expected:?}",
                    got.len(),
                    expected.len()
                );
            }
            entries += got.len();
        }
    }
    entries
}

fn open(store: &Path) -> Engine {
    // A child killed a moment ago may leave its lock for an instant (the kernel
    // closes its files as it reaps it); wait that out.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Engine::open(store, config()) {
            Ok(engine) => return engine,
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

#[test]
fn sigkill_during_fanout_keeps_acknowledged_posts_and_rebuildable_timelines() {
    let store = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut acked = Acked::default();
    let mut unacked = 0;
    let mut acks_total = 0;
    let mut entries_total = 0;
    for round in 0..ROUNDS {
        let seed = 1000 + round;
        let delay_ms = rng.random_range(20..300);
        let acks = load_and_kill(store.path(), seed, delay_ms, &mut acked);
        acks_total += acks;
        let when = format!("round {round} (seed {seed}, killed after {delay_ms} ms, {acks} acks)");
        common::check_sound(store.path(), &when);
        let engine = open(store.path());
        unacked = check_acked(&engine, &acked, unacked, &when);
        entries_total += check_streams(&engine, &mut rng, &when);
        drop(engine);
    }
    common::check_sound(store.path(), "after the last round");
    assert!(
        acked.posts.len() as u64 > ROUNDS,
        "the children acknowledged only {} posts in {ROUNDS} rounds: nothing was tested",
        acked.posts.len()
    );
    let posts_by_0 = acked.posts.values().filter(|p| p.author == 0).count();
    assert!(
        posts_by_0 > 0,
        "no post by user 0: no heavy fan-out was killed"
    );
    eprintln!(
        "{ROUNDS} rounds, {acks_total} acks: {} posts ({posts_by_0} by user 0, followed by \
         everyone), {} follows, {} mutes; {unacked} posts in flight landed; {entries_total} \
         stream entries compared",
        acked.posts.len(),
        acked.follows.len(),
        acked.mutes.len()
    );
}
