//! Guards the streams' crash contract: `feedcore load --stream-ops ... --durability
//! always --print-acks` (group posts by id and by `!name`, joins, leaves, tag follows,
//! home reads through an `Engine`) is killed with SIGKILL at a random moment, round
//! after round on the same store, each round with its own seed. After each kill:
//! `feedcore check` finds the store sound (registry and relation stores included);
//! the reopened engine holds every acknowledged group post, addressed to its group,
//! and every acknowledged membership and tag follow (a membership may differ from its
//! last ack only by the one change in flight at the kill); each group's stream is
//! exactly the notices of the log addressed to it; and every member's home timeline
//! holds every notice of its groups.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use feedcore::{Config, Durability, Engine, Error, GroupId, NoticeId, Page, UserId};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const USERS: u32 = 40;
const GROUPS: u32 = 4;
const ROUNDS: u64 = 16;

#[derive(Default)]
struct Acked {
    groups: BTreeSet<u32>,
    /// Notice id -> (author, group).
    posts: BTreeMap<u64, (u32, u32)>,
    /// (user, group) -> member, as last acknowledged.
    members: BTreeMap<(u32, u32), bool>,
    tags: BTreeSet<(u32, u32)>,
}

fn parse_ack(line: &str, acked: &mut Acked) -> Result<(), String> {
    let f: Vec<&str> = line.split(' ').collect();
    let num = |s: &str| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    match f.as_slice() {
        ["ack", "group", g] => {
            acked.groups.insert(num(g)? as u32);
        }
        ["ack", "member", u, g, m] => {
            acked
                .members
                .insert((num(u)? as u32, num(g)? as u32), *m == "1");
        }
        ["ack", "tag", u, t] => {
            acked.tags.insert((num(u)? as u32, num(t)? as u32));
        }
        ["ack", "gpost", id, author, g, _k] => {
            if acked
                .posts
                .insert(num(id)?, (num(author)? as u32, num(g)? as u32))
                .is_some()
            {
                return Err(format!("notice {id} acknowledged twice"));
            }
        }
        _ => return Err("not an ack line".into()),
    }
    Ok(())
}

fn load_and_kill(store: &Path, seed: u64, delay_ms: u64, acked: &mut Acked) -> usize {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_feedcore"));
    cmd.arg("load")
        .arg(store)
        .args(["--stream-ops", "100000000", "--users", &USERS.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--durability", "always", "--print-acks"]);
    let mut count = 0;
    for line in common::kill_after(&mut cmd, delay_ms, &format!("seed {seed}")) {
        parse_ack(&line, acked)
            .unwrap_or_else(|e| panic!("seed {seed}: bad output line {line:?}: {e}"));
        count += 1;
    }
    count
}

fn open(store: &Path) -> Engine {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let config = Config {
            users_max: USERS,
            durability: Durability::Always,
            ..Default::default()
        };
        match Engine::open(store, config) {
            Ok(engine) => return engine,
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

fn all(mut read: impl FnMut(Page) -> feedcore::Result<feedcore::TimelinePage>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut page = Some(Page::latest(50));
    while let Some(p) = page {
        let got = read(p).unwrap();
        out.extend(got.ids.iter().map(|i| i.0));
        page = got.next;
    }
    out
}

/// Checks the reopened engine against the acks; returns how many memberships differed
/// from their last ack (the change in flight), after taking the engine's word for them.
fn check(engine: &Engine, acked: &mut Acked, when: &str) -> usize {
    for &g in &acked.groups {
        assert_eq!(
            engine.group_info(GroupId(g)).unwrap().1,
            format!("g{g}"),
            "{when}"
        );
    }
    for (&id, &(author, g)) in &acked.posts {
        let n = engine
            .notice(NoticeId(id))
            .unwrap_or_else(|| panic!("{when}: acknowledged group post {id} is missing"));
        assert_eq!(n.author(), UserId(author), "{when}: notice {id}");
        assert!(
            n.groups().any(|x| x == GroupId(g)),
            "{when}: notice {id} lost its group {g}"
        );
    }
    for &(u, t) in &acked.tags {
        assert!(
            engine.follows_tag(UserId(u), format!("t{t}")),
            "{when}: acknowledged follow of t{t} by {u} is missing"
        );
    }
    let mut differ = 0;
    for ((u, g), member) in acked.members.iter_mut() {
        let now = engine.is_member(UserId(*u), GroupId(*g));
        if now != *member {
            differ += 1;
            *member = now;
        }
    }
    // Derived state is rebuilt from the log: each group's stream is exactly the
    // notices addressed to it, and each member's home timeline holds them all.
    let mut by_group: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for n in engine.log().iter_from(NoticeId(1)) {
        for g in n.groups() {
            by_group.entry(g.0).or_default().push(n.id().0);
        }
    }
    for g in 0..GROUPS {
        let mut expected = by_group.remove(&g).unwrap_or_default();
        expected.reverse();
        let got = all(|p| engine.group_timeline(UserId(0), GroupId(g), p));
        assert_eq!(got, expected, "{when}: stream of group {g}");
        let members = engine
            .group_members(GroupId(g), Page::latest(USERS as usize))
            .unwrap();
        for m in members.members {
            let home: BTreeSet<u64> = all(|p| engine.home_timeline(m, p)).into_iter().collect();
            let missing: Vec<u64> = expected
                .iter()
                .copied()
                .filter(|i| !home.contains(i))
                .collect();
            assert!(
                missing.is_empty(),
                "{when}: home of member {} of group {g} lacks {missing:?}",
                m.0
            );
        }
    }
    differ
}

#[test]
fn sigkill_during_group_posts_and_membership_changes_loses_nothing_acknowledged() {
    let store = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(11);
    let mut acked = Acked::default();
    let mut acks_total = 0;
    for round in 0..ROUNDS {
        let seed = 2000 + round;
        let delay_ms = rng.random_range(30..300);
        let acks = load_and_kill(store.path(), seed, delay_ms, &mut acked);
        acks_total += acks;
        let when = format!("round {round} (seed {seed}, killed after {delay_ms} ms, {acks} acks)");
        common::check_sound(store.path(), &when);
        let engine = open(store.path());
        let differ = check(&engine, &mut acked, &when);
        assert!(
            differ <= 1,
            "{when}: {differ} memberships differ from their last ack; at most the one in \
             flight may"
        );
    }
    assert!(
        acked.posts.len() as u64 > ROUNDS && acked.members.len() > 10,
        "the children acknowledged {} group posts and {} memberships: too little was tested",
        acked.posts.len(),
        acked.members.len()
    );
    eprintln!(
        "{ROUNDS} rounds, {acks_total} acks: {} group posts, {} memberships, {} tag follows",
        acked.posts.len(),
        acked.members.len(),
        acked.tags.len()
    );
}
