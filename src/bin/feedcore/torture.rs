//! `feedcore torture`: a crash loop. Each round starts a child process on the same
//! store (`feedcore torture-child`, hidden) that runs seeded engine operations with
//! `Durability::Always` (posts, replies, deletes, follows, unfollows, blocks,
//! unblocks, group creations, joins, leaves and group posts) and reports each one on stdout before (`try ...`) and after (`ack ...`);
//! the parent kills it with SIGKILL at a random moment, reopens the store, and checks
//! every operation acknowledged in any round so far against a model: an acknowledged
//! post is there with its body and group (unless deleted), an acknowledged delete
//! holds, an acknowledged group keeps its name and id, each pair's relation (follow,
//! block, membership) is what its last acknowledged change made it (either way when a
//! later change was tried and not acknowledged), and `check` finds the store sound.
//!
//! The child's protocol, one line each, flushed at once:
//! `try post K`, `ack post K ID`; `try delete ID`, `ack delete ID`;
//! `try follow A B` / `ack follow A B` and the same for `unfollow`, `block`, `unblock`,
//! `join` and `leave` (B a group id); `try group G`, `ack group G ID` (group number G,
//! named `tgG`); a post to a group is acknowledged as `ack gpost K ID GROUP`.
//! The body of post `K` (numbered across rounds) is [`body`]`(K)`.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use feedcore::{
    Config, Durability, Engine, Error, FollowGraph, GroupId, NewNotice, NoticeId, NoticeLog, UserId,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Users of the loop: 0..FOLLOWERS follow and unfollow each other; blocks are between
/// FOLLOWERS..USERS only, so a block never ends a follow the model tracks.
const FOLLOWERS: u32 = 16;
const USERS: u32 = 24;
/// Groups of the loop, named `tg0`, `tg1`, ...: created by the first child that needs
/// one, joined and left by every user, posted to.
const GROUPS: u64 = 3;

fn group_name(g: u64) -> String {
    format!("tg{g}")
}

/// Options of `feedcore torture`.
#[derive(clap::Args)]
pub(crate) struct TortureArgs {
    /// Rounds (child processes killed).
    #[arg(long, default_value_t = 100)]
    pub(crate) rounds: u64,
    /// Stop after this many seconds, whatever the rounds.
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// The store (created if missing; default a temporary directory, on tmpfs where
    /// /dev/shm exists).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Seed of the operations and of the kill times.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Operations each child runs at most before it exits by itself.
    #[arg(long, default_value_t = 40)]
    pub(crate) ops: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options of the hidden child.
#[derive(clap::Args)]
pub(crate) struct ChildArgs {
    /// The store.
    pub(crate) dir: PathBuf,
    /// Seed of this child's operations.
    #[arg(long)]
    pub(crate) seed: u64,
    /// Number of the first post of this child.
    #[arg(long)]
    pub(crate) first_post: u64,
    /// Operations to run.
    #[arg(long)]
    pub(crate) ops: u64,
}

/// The body of post `k`.
pub(crate) fn body(k: u64) -> String {
    format!("torture post {k}")
}

fn config() -> Config {
    Config {
        users_max: USERS,
        durability: Durability::Always,
        segment_bytes: feedcore::SEGMENT_BYTES_MIN,
        ..Default::default()
    }
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    // A parent that stopped reading (it killed us) is no reason to panic.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The child: open the store, run seeded operations, report each.
pub(crate) fn child(args: &ChildArgs) -> feedcore::Result<ExitCode> {
    let engine = Engine::open(&args.dir, config())?;
    say(format_args!("ready"));
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut post = args.first_post;
    for _ in 0..args.ops {
        let roll = rng.random_range(0..120u32);
        let pair = |rng: &mut SmallRng, lo: u32, hi: u32| {
            let a = rng.random_range(lo..hi);
            let b = (a + rng.random_range(1..hi - lo)) % (hi - lo) + lo;
            (a, b)
        };
        match roll {
            0..50 => {
                let k = post;
                post += 1;
                let stored = engine.log().len();
                let reply_to = (stored > 0 && rng.random_bool(0.2))
                    .then(|| NoticeId(rng.random_range(1..=stored)));
                say(format_args!("try post {k}"));
                let notice = NewNotice {
                    author: UserId(rng.random_range(0..USERS)),
                    body: body(k),
                    reply_to,
                    ..Default::default()
                };
                // A reply to a deleted notice is refused: not acknowledged, nothing
                // written.
                if let Ok(id) = engine.post(notice) {
                    say(format_args!("ack post {k} {}", id.0));
                }
            }
            50..62 => {
                let stored = engine.log().len();
                if stored == 0 {
                    continue;
                }
                let id = rng.random_range(1..=stored);
                say(format_args!("try delete {id}"));
                if engine.delete(NoticeId(id)).is_ok() {
                    say(format_args!("ack delete {id}"));
                }
            }
            62..92 => {
                let (a, b) = pair(&mut rng, 0, FOLLOWERS);
                let (verb, done) = if roll < 80 {
                    say(format_args!("try follow {a} {b}"));
                    ("follow", engine.follow(UserId(a), UserId(b)).is_ok())
                } else {
                    say(format_args!("try unfollow {a} {b}"));
                    ("unfollow", engine.unfollow(UserId(a), UserId(b)).is_ok())
                };
                if done {
                    say(format_args!("ack {verb} {a} {b}"));
                }
            }
            100..120 => {
                let g = rng.random_range(0..GROUPS);
                let Some(group) = group(&engine, g) else {
                    continue;
                };
                let user = rng.random_range(0..USERS);
                if roll < 106 {
                    let k = post;
                    post += 1;
                    say(format_args!("try post {k}"));
                    let notice = NewNotice {
                        author: UserId(user),
                        body: body(k),
                        group: Some(group),
                        ..Default::default()
                    };
                    if let Ok(id) = engine.post(notice) {
                        say(format_args!("ack gpost {k} {} {}", id.0, group.0));
                    }
                } else if roll < 114 {
                    say(format_args!("try join {user} {}", group.0));
                    if let Ok(()) | Err(Error::AlreadyMember { .. }) =
                        engine.join_group(UserId(user), group)
                    {
                        say(format_args!("ack join {user} {}", group.0));
                    }
                } else {
                    say(format_args!("try leave {user} {}", group.0));
                    if let Ok(()) | Err(Error::NotMember { .. }) =
                        engine.leave_group(UserId(user), group)
                    {
                        say(format_args!("ack leave {user} {}", group.0));
                    }
                }
            }
            _ => {
                let (a, b) = pair(&mut rng, FOLLOWERS, USERS);
                let (verb, done) = if roll < 96 {
                    say(format_args!("try block {a} {b}"));
                    ("block", engine.block(UserId(a), UserId(b)).is_ok())
                } else {
                    say(format_args!("try unblock {a} {b}"));
                    ("unblock", engine.unblock(UserId(a), UserId(b)).is_ok())
                };
                if done {
                    say(format_args!("ack {verb} {a} {b}"));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Group `g`, created (and reported) where it is missing; `None` when the creation
/// failed.
fn group(engine: &Engine, g: u64) -> Option<GroupId> {
    if let Some(id) = engine.group_by_name(group_name(g)) {
        return Some(id);
    }
    say(format_args!("try group {g}"));
    let id = engine.create_group(UserId(0), group_name(g)).ok()?;
    say(format_args!("ack group {g} {}", id.0));
    Some(id)
}

/// What the parent knows must (or may) hold.
#[derive(Default)]
struct Model {
    /// Acknowledged posts: id -> post number.
    posts: BTreeMap<u64, u64>,
    /// Acknowledged posts to a group: id -> group.
    group_posts: BTreeMap<u64, u32>,
    /// Acknowledged group creations: group number -> id.
    groups: BTreeMap<u64, u32>,
    /// Acknowledged deletes.
    deleted: HashSet<u64>,
    /// Deletes tried and not acknowledged: either outcome.
    maybe_deleted: HashSet<u64>,
    /// Per pair and relation ("follow" or "block"): the state the last acknowledged
    /// change left, or `None` once a later change was tried without an answer.
    relations: BTreeMap<(&'static str, u32, u32), Option<bool>>,
    /// Posts numbered so far (acknowledged or not).
    next_post: u64,
    /// Whether the store has been opened once to the end: before that, a kill may have
    /// cut the first open while it laid the directory out, and only a reopen is checked.
    opened: bool,
}

impl Model {
    /// Takes in one child's lines.
    fn apply(&mut self, lines: &[String]) -> Result<(), String> {
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| -> Result<u64, String> {
                words
                    .get(i)
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| format!("bad line from the child: {line:?}"))
            };
            match words.as_slice() {
                ["ready"] => self.opened = true,
                ["try", "post", _] => {
                    self.next_post = self.next_post.max(num(2)? + 1);
                }
                ["ack", "post", _, _] => {
                    self.posts.insert(num(3)?, num(2)?);
                }
                ["ack", "gpost", _, _, _] => {
                    self.posts.insert(num(3)?, num(2)?);
                    self.group_posts.insert(num(3)?, num(4)? as u32);
                }
                ["try", "group", _] => {}
                ["ack", "group", _, _] => {
                    self.groups.insert(num(2)?, num(3)? as u32);
                }
                ["try", "delete", _] => {
                    self.maybe_deleted.insert(num(2)?);
                }
                ["ack", "delete", _] => {
                    let id = num(2)?;
                    self.maybe_deleted.remove(&id);
                    self.deleted.insert(id);
                }
                ["try", verb, _, _] => {
                    let (rel, _) = relation(verb)?;
                    self.relations
                        .insert((rel, num(2)? as u32, num(3)? as u32), None);
                }
                ["ack", verb, _, _] => {
                    let (rel, state) = relation(verb)?;
                    self.relations
                        .insert((rel, num(2)? as u32, num(3)? as u32), Some(state));
                }
                _ => return Err(format!("bad line from the child: {line:?}")),
            }
        }
        Ok(())
    }
}

fn relation(verb: &str) -> Result<(&'static str, bool), String> {
    match verb {
        "follow" => Ok(("follow", true)),
        "unfollow" => Ok(("follow", false)),
        "block" => Ok(("block", true)),
        "join" => Ok(("member", true)),
        "leave" => Ok(("member", false)),
        "unblock" => Ok(("block", false)),
        other => Err(format!("unknown operation {other:?}")),
    }
}

/// What a round found wrong, if anything.
fn verify(dir: &Path, model: &mut Model) -> Result<bool, String> {
    if !model.opened {
        // The first open was cut before it finished: the layout may be half made (one
        // folder of two), which `check` rightly reports; the next open must finish it.
        Engine::open(dir, config()).map_err(|e| format!("reopen after a cut first open: {e}"))?;
        model.opened = true;
        return Ok(false);
    }
    let log = NoticeLog::check(dir.join("notices")).map_err(|e| format!("check: {e}"))?;
    let graph = FollowGraph::check(dir.join("graph")).map_err(|e| format!("check: {e}"))?;
    let torn = log
        .problems
        .iter()
        .chain(&graph.problems)
        .any(|p| p.recoverable);
    if let Some(p) = log
        .problems
        .iter()
        .chain(&graph.problems)
        .find(|p| !p.recoverable)
    {
        return Err(format!("check found damage: {p:?}"));
    }
    let engine = Engine::open(dir, config()).map_err(|e| format!("reopen: {e}"))?;
    for (&id, &k) in &model.posts {
        let got = engine.notice(NoticeId(id));
        if model.deleted.contains(&id) {
            if got.is_some() {
                return Err(format!("deleted notice {id} is back"));
            }
            continue;
        }
        match got {
            Some(n) if n.body() == body(k) => {
                if let Some(&g) = model.group_posts.get(&id)
                    && n.group() != Some(GroupId(g))
                {
                    return Err(format!("notice {id} lost its group {g}"));
                }
            }
            Some(n) => return Err(format!("notice {id} holds {:?}, not post {k}", n.body())),
            None if model.maybe_deleted.contains(&id) => {
                // Its delete was tried and went through before the kill.
                model.maybe_deleted.remove(&id);
                model.deleted.insert(id);
            }
            None => return Err(format!("acknowledged post {k} (notice {id}) is lost")),
        }
    }
    for (&g, &id) in &model.groups {
        if engine.group_by_name(group_name(g)) != Some(GroupId(id)) {
            return Err(format!(
                "acknowledged group {} (id {id}) is lost",
                group_name(g)
            ));
        }
    }
    let graph = engine.graph();
    for (&(rel, a, b), state) in &mut model.relations {
        let now = match rel {
            "follow" => graph.is_following(UserId(a), UserId(b)),
            "member" => engine.is_member(UserId(a), GroupId(b)),
            _ => continue,
        };
        match state {
            Some(want) if *want != now => {
                return Err(format!("acknowledged {rel} {a} -> {b} = {want} is {now}"));
            }
            Some(_) => {}
            // The change tried last may or may not have been made; from now on the
            // store says which.
            None => *state = Some(now),
        }
    }
    // A block shows either way (`is_blocked(a, b)` is a's block of b or b's of a):
    // each direction is checked through the pair, and learnt where the other is known.
    let blocks: Vec<(u32, u32)> = model
        .relations
        .keys()
        .filter(|(rel, _, _)| *rel == "block")
        .map(|&(_, a, b)| (a, b))
        .collect();
    for (a, b) in blocks {
        let get =
            |m: &Model, x: u32, y: u32| *m.relations.get(&("block", x, y)).unwrap_or(&Some(false));
        let now = graph.is_blocked(UserId(a), UserId(b));
        match (get(model, a, b), get(model, b, a)) {
            (Some(x), Some(y)) if (x || y) != now => {
                return Err(format!(
                    "acknowledged blocks {a} -> {b} = {x} and {b} -> {a} = {y}, but blocked is {now}"
                ));
            }
            (None, Some(false)) => {
                model.relations.insert(("block", a, b), Some(now));
            }
            (None, None) if !now => {
                model.relations.insert(("block", a, b), Some(false));
                model.relations.insert(("block", b, a), Some(false));
            }
            (Some(true), _) | (_, Some(true)) if !now => {
                return Err(format!("an acknowledged block between {a} and {b} is gone"));
            }
            _ => {}
        }
    }
    Ok(torn)
}

/// The parent: the loop.
pub(crate) fn run(args: &TortureArgs) -> feedcore::Result<ExitCode> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            let shm = Path::new("/dev/shm");
            temp = if shm.is_dir() {
                tempfile::tempdir_in(shm)
            } else {
                tempfile::tempdir()
            }
            .map_err(|e| feedcore::Error::Io {
                context: "creating a temporary store".into(),
                source: e,
            })?;
            temp.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe().map_err(|e| feedcore::Error::Io {
        context: "finding the feedcore executable".into(),
        source: e,
    })?;
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut model = Model::default();
    let (mut rounds, mut torn_rounds, mut killed, mut acks, mut failures) =
        (0u64, 0u64, 0, 0, Vec::new());
    // How long a child that is not killed runs (open and every operation), learnt from
    // the rounds where it finished first and stretched by each kill: kill times are
    // drawn over 1.2 times that.
    let mut child_us: f64 = 5_000.0;
    let bar = (!args.json).then(|| crate::progress::bar(args.rounds, "rounds", 8, 40));
    while rounds < args.rounds
        && args
            .seconds
            .is_none_or(|s| started.elapsed().as_secs_f64() < s)
    {
        let mut child = Command::new(&exe)
            .arg("torture-child")
            .arg(&dir)
            .arg("--seed")
            .arg(rng.random::<u64>().to_string())
            .arg("--first-post")
            .arg(model.next_post.to_string())
            .arg("--ops")
            .arg(args.ops.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| feedcore::Error::Io {
                context: "starting a child".into(),
                source: e,
            })?;
        let spawned = Instant::now();
        let stdout = child.stdout.take().expect("stdout was piped");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // Kill at a random moment: during open, during the operations, or not at all
        // (the child ran out of operations).
        let kill_at = rng.random_range(0.0..1.2) * child_us;
        std::thread::sleep(Duration::from_micros(kill_at as u64));
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            killed += 1;
            // A child killed every time teaches nothing of how long it runs (a store
            // that grew opens slower): reach further, so some children finish again.
            child_us *= 1.02;
        } else {
            let took = spawned.elapsed().as_micros() as f64;
            child_us = 0.8 * child_us + 0.2 * took;
        }
        let _ = child.wait();
        let lines = reader.join().expect("the reader thread does not panic");
        acks += lines.iter().filter(|l| l.starts_with("ack ")).count() as u64;
        if let Err(e) = model.apply(&lines) {
            failures.push(format!("round {rounds}: {e}"));
            break;
        }
        match verify(&dir, &mut model) {
            Ok(torn) => torn_rounds += u64::from(torn),
            Err(e) => {
                failures.push(format!("round {rounds}: {e}"));
                break;
            }
        }
        rounds += 1;
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let lost = failures
        .iter()
        .filter(|f| f.contains("lost") || f.contains("is back"))
        .count();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "rounds": rounds,
                "killed": killed,
                "acknowledged": acks,
                "posts_acknowledged": model.posts.len(),
                "deletes_acknowledged": model.deleted.len(),
                "group_posts_acknowledged": model.group_posts.len(),
                "groups_acknowledged": model.groups.len(),
                "relations_tracked": model.relations.len(),
                "rounds_with_a_torn_tail": torn_rounds,
                "failures": failures,
                "lost": lost,
                "seconds": seconds,
            })
        );
    } else {
        println!(
            "{rounds} rounds in {seconds:.1} s: {killed} children killed, {acks} operations \
             acknowledged ({} posts, {} deletes), {torn_rounds} reopens cut a torn tail; \
             {} failures",
            model.posts.len(),
            model.deleted.len(),
            failures.len()
        );
        for f in &failures {
            println!("FAILED {f}");
        }
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
