//! Guards the failure paths of every file operation, as ALICE-style sweeps do: a small
//! scenario of the notice log, the graph and the engine is run once to count its file
//! operations, then again once per operation with that one failed (EIO; ENOSPC; a short
//! write; a rename that happened but reported failure). After each run the store must
//! reopen sound, with every acknowledged operation in it; an fdatasync failure must
//! poison the store (no retry), and a full disk at segment creation must be a clear
//! error that leaves the log usable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::ErrorKind;
use std::path::Path;

use feedcore::faults::{Fault, IoOp, Plan};
use feedcore::{
    Config, DeliveryKind, Durability, Engine, Error, FollowGraph, GraphConfig, GroupId, LogConfig,
    NewNotice, NoticeId, NoticeLog, Page, UserId,
};

/// A directory on tmpfs where there is one (the sweep runs hundreds of scenarios of
/// synced writes), else the default temporary directory.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a directory in /dev/shm")
    } else {
        tempfile::tempdir().expect("a temporary directory")
    }
}

/// The faults worth trying at an operation of this kind.
fn faults_for(op: IoOp) -> Vec<Fault> {
    let mut faults = vec![Fault::Eio];
    if matches!(op, IoOp::Write | IoOp::Allocate | IoOp::Open | IoOp::SetLen) {
        faults.push(Fault::Enospc);
    }
    if op == IoOp::Write {
        faults.push(Fault::ShortWrite);
    }
    if op == IoOp::Rename {
        faults.push(Fault::TornRename);
    }
    faults
}

/// What a scenario run saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Bodies of the notices whose append returned Ok, by id.
    acked: BTreeMap<u64, String>,
    /// Every body an append was attempted with.
    attempted: Vec<String>,
    /// Ids whose delete returned Ok.
    deleted: Vec<u64>,
    /// Ids whose delete failed on I/O: it may or may not have taken effect (its
    /// tombstone may be written), as for an append that failed.
    maybe_deleted: Vec<u64>,
    /// Errors returned, in order, with the operation that returned them.
    errors: Vec<(String, Error)>,
    /// Operations that returned Ok after some operation had failed.
    ok_after_error: Vec<String>,
}

fn body(i: usize) -> String {
    // 4000 bytes: a 64 KiB segment holds 15, so the scenario rolls segments.
    format!("notice {i:03} {}", "x".repeat(3988))
}

/// The log scenario: appends (rolling segments), a remote notice, deletes, a sync.
fn log_scenario(dir: &Path) -> Outcome {
    let mut out = Outcome::default();
    let config = LogConfig {
        durability: Durability::Always,
        segment_bytes: feedcore::SEGMENT_BYTES_MIN,
        ..Default::default()
    };
    let log = match NoticeLog::open(dir, config) {
        Ok(log) => log,
        Err(e) => {
            out.errors.push(("open".into(), e));
            return out;
        }
    };
    for i in 0..20 {
        let b = body(i);
        out.attempted.push(b.clone());
        let notice = NewNotice {
            author: UserId(i as u32 % 3),
            body: b.clone(),
            uri: (i == 7).then(|| "https://remote.example/1".to_string()),
            ..Default::default()
        };
        match log.append(&notice) {
            Ok(id) => {
                out.acked.insert(id.0, b);
                if !out.errors.is_empty() {
                    out.ok_after_error.push(format!("append {i}"));
                }
            }
            Err(e) => out.errors.push((format!("append {i}"), e)),
        }
    }
    for &id in [2u64, 9, 16].iter() {
        match log.delete(NoticeId(id)) {
            Ok(()) => {
                out.deleted.push(id);
                if !out.errors.is_empty() {
                    out.ok_after_error.push(format!("delete {id}"));
                }
            }
            Err(e) => {
                if matches!(e, Error::Io { .. }) {
                    out.maybe_deleted.push(id);
                }
                out.errors.push((format!("delete {id}"), e))
            }
        }
    }
    match log.sync() {
        Err(e) => out.errors.push(("sync".into(), e)),
        Ok(()) if !out.errors.is_empty() => out.ok_after_error.push("sync".into()),
        Ok(()) => {}
    }
    out
}

/// Checks the reopened log against what the scenario was told.
fn check_log(dir: &Path, out: &Outcome, what: &str) {
    let report = NoticeLog::check(dir).unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
    assert!(
        report.is_sound(),
        "{what}: check found {:?}",
        report.problems
    );
    let log = NoticeLog::open(dir, LogConfig::default())
        .unwrap_or_else(|e| panic!("{what}: the log does not reopen: {e}"));
    for (&id, body) in &out.acked {
        if out.deleted.contains(&id) {
            assert!(
                log.get(NoticeId(id)).is_none(),
                "{what}: deleted {id} is back"
            );
            continue;
        }
        if out.maybe_deleted.contains(&id) && log.get(NoticeId(id)).is_none() {
            continue;
        }
        let got = log.get(NoticeId(id));
        assert_eq!(
            got.as_ref().map(|n| n.body()),
            Some(body.as_str()),
            "{what}: acknowledged notice {id} lost or changed"
        );
    }
    // Whatever else is there is something the scenario tried to write.
    for n in log.iter_from(NoticeId(1)) {
        assert!(
            out.attempted.iter().any(|b| b == n.body()),
            "{what}: notice {} holds bytes nobody appended",
            n.id()
        );
    }
    // The log takes appends again after a reopen.
    log.append(&NewNotice {
        author: UserId(1),
        body: "after".into(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{what}: the reopened log refuses appends: {e}"));
}

/// The rules for what the scenario itself saw when `fault` hit `op`; returns the
/// outcome's class for the sweep's tally.
fn check_errors(out: &Outcome, op: IoOp, fault: Fault, what: &str) -> &'static str {
    let Some(first) = out
        .errors
        .iter()
        .position(|(_, e)| !matches!(e, Error::Poisoned { .. }))
    else {
        // The fault hit an operation whose failure the log tolerates (e.g. removing a
        // temporary file after a failed creation), or a scrub finished by the reopen.
        return "tolerated (no error returned)";
    };
    let (_, e) = &out.errors[first];
    match e {
        Error::Io { source, .. } if fault == Fault::Enospc => {
            assert_eq!(source.kind(), ErrorKind::StorageFull, "{what}: {e}");
            if !matches!(op, IoOp::SyncData) {
                return "clear error: storage full";
            }
        }
        Error::Io { .. } => {}
        other => panic!("{what}: the first error is not an I/O error: {other}"),
    }
    // A failed fdatasync is never retried: every later write is refused.
    if matches!(op, IoOp::SyncData) {
        for (at, later) in &out.errors[first + 1..] {
            assert!(
                matches!(later, Error::Poisoned { .. }),
                "{what}: after a failed fdatasync, {at} returned {later} instead of Poisoned"
            );
        }
        assert!(
            out.ok_after_error.is_empty(),
            "{what}: after a failed fdatasync, {:?} succeeded",
            out.ok_after_error
        );
        return "poisoned until reopen";
    }
    "clear error: I/O"
}

/// Runs `scenario` once per file operation with that one failed by each fault, and
/// `check` on the result.
fn sweep<O>(
    name: &str,
    scenario: impl Fn(&Path) -> O,
    check: impl Fn(&Path, &O, IoOp, Fault, &str),
) -> usize {
    let dir = scratch();
    let counting = Plan::new(dir.path(), Fault::Eio, 0).install();
    scenario(dir.path());
    let seen = counting.seen();
    drop(counting);
    assert!(
        seen.len() > 10,
        "{name}: the scenario does file I/O ({})",
        seen.len()
    );
    let mut runs = 0;
    let mut by_kind: HashMap<IoOp, usize> = HashMap::new();
    for (n, (op, path)) in seen.iter().enumerate() {
        *by_kind.entry(*op).or_default() += 1;
        for fault in faults_for(*op) {
            let dir = scratch();
            let plan = Plan::new(dir.path(), fault, n as u64 + 1).install();
            let out = scenario(dir.path());
            let injected = plan.injected();
            drop(plan);
            let what = format!(
                "{name}: {fault:?} at operation {} ({op:?} of {})",
                n + 1,
                path.file_name().map_or("?".into(), |f| f.to_string_lossy())
            );
            // Later runs may diverge from the counting run only after the fault.
            assert!(injected.is_some(), "{what}: the fault was never reached");
            check(dir.path(), &out, *op, fault, &what);
            runs += 1;
        }
    }
    println!(
        "{name}: {} operations {by_kind:?}, {runs} faulted runs",
        seen.len()
    );
    runs
}

#[test]
fn every_file_operation_of_the_log_can_fail_and_nothing_acknowledged_is_lost() {
    let tally = std::sync::Mutex::new(BTreeMap::<&str, usize>::new());
    let runs = sweep("log", log_scenario, |dir, out, op, fault, what| {
        let class = check_errors(out, op, fault, what);
        check_log(dir, out, what);
        *tally.lock().unwrap().entry(class).or_default() += 1;
    });
    // Every run reopened sound with every acknowledged notice (checked above): none
    // ended Corrupt, none lost anything.
    println!(
        "log: outcomes {:?}, reopened sound: {runs}",
        tally.lock().unwrap()
    );
    assert!(runs > 100, "the sweep covers the scenario ({runs} runs)");
}

#[test]
fn a_full_disk_at_segment_creation_is_a_clear_error_and_the_log_goes_on() {
    let dir = scratch();
    let plan = Plan::new(dir.path(), Fault::Enospc, 2)
        .only(&[IoOp::Allocate])
        .install();
    let out = log_scenario(dir.path());
    assert!(
        plan.injected().is_some(),
        "the scenario creates a second segment"
    );
    drop(plan);
    let (at, e) = out.errors.first().expect("the roll failed");
    assert!(
        matches!(e, Error::Io { source, .. } if source.kind() == ErrorKind::StorageFull),
        "{at}: {e}"
    );
    assert_eq!(
        out.errors.len(),
        1,
        "one append refused, the next ones roll: {:?}",
        out.errors
    );
    assert_eq!(out.acked.len(), out.attempted.len() - 1);
    check_log(dir.path(), &out, "ENOSPC at the second segment");
}

/// The graph scenario: follows, unfollows, blocks, a compaction, more follows.
/// Returns the state each pair must have after a reopen (None: either).
fn graph_scenario(dir: &Path) -> BTreeMap<(u32, u32), Option<bool>> {
    let mut want = BTreeMap::new();
    let config = GraphConfig {
        users_max: 64,
        durability: Durability::Always,
        compact_after_changes: 1_000_000,
        ..Default::default()
    };
    let Ok(graph) = FollowGraph::open(dir, config) else {
        return want;
    };
    let mut note = |pair: (u32, u32), result: feedcore::Result<bool>, state: bool| {
        want.insert(pair, result.ok().map(|_| state));
    };
    for a in 1..10u32 {
        note((a, a + 10), graph.follow(UserId(a), UserId(a + 10)), true);
    }
    for a in [2u32, 5] {
        note(
            (a, a + 10),
            graph.unfollow(UserId(a), UserId(a + 10)),
            false,
        );
    }
    let _ = graph.block(UserId(30), UserId(31));
    let _ = graph.compact();
    for a in 10..16u32 {
        note((a, a + 20), graph.follow(UserId(a), UserId(a + 20)), true);
    }
    want
}

#[test]
fn every_file_operation_of_the_graph_can_fail_and_nothing_acknowledged_is_lost() {
    sweep("graph", graph_scenario, |dir, want, _, _, what| {
        let report =
            FollowGraph::check(dir).unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
        assert!(report.is_sound(), "{what}: {:?}", report.problems);
        let config = GraphConfig {
            users_max: 64,
            ..Default::default()
        };
        let graph = FollowGraph::open(dir, config)
            .unwrap_or_else(|e| panic!("{what}: the graph does not reopen: {e}"));
        for (&(a, b), state) in want {
            if let Some(state) = state {
                assert_eq!(
                    graph.is_following(UserId(a), UserId(b)),
                    *state,
                    "{what}: acknowledged change of {a} -> {b} lost"
                );
            }
        }
        graph
            .follow(UserId(60), UserId(61))
            .unwrap_or_else(|e| panic!("{what}: the reopened graph refuses changes: {e}"));
    });
}

/// The engine scenario: a follow, posts, a delete; returns the acknowledged posts and
/// whether each must be deleted (`None`: its delete failed on I/O, either may hold).
/// What the engine scenario was told: the follow, the posts (and whether the first
/// was deleted: `None` when its delete failed with an I/O error), the group created
/// with the membership acknowledged in it and the acknowledged group post.
type EngineOutcome = (
    bool,
    Vec<(NoticeId, Option<bool>)>,
    Option<(GroupId, bool, Option<NoticeId>)>,
);

fn engine_scenario(dir: &Path) -> EngineOutcome {
    let config = Config {
        users_max: 16,
        durability: Durability::Always,
        segment_bytes: feedcore::SEGMENT_BYTES_MIN,
        ..Default::default()
    };
    let Ok(engine) = Engine::open(dir, config) else {
        return (false, Vec::new(), None);
    };
    let followed = engine.follow(UserId(2), UserId(1)).is_ok();
    let mut group = engine
        .create_group(UserId(3), "sweepers")
        .ok()
        .map(|g| (g, engine.join_group(UserId(4), g).is_ok(), None));
    let mut acked = Vec::new();
    for i in 0..18 {
        if let Ok(id) = engine.post(NewNotice {
            author: UserId(1),
            body: body(i),
            ..Default::default()
        }) {
            acked.push((id, Some(false)));
        }
    }
    if let Some(first) = acked.first_mut() {
        first.1 = match engine.delete(first.0) {
            Ok(()) => Some(true),
            Err(Error::Io { .. }) => None,
            Err(_) => Some(false),
        };
    }
    if let Some((g, _, post)) = &mut group {
        // A group post, delivered to the member.
        *post = engine
            .post(NewNotice {
                author: UserId(3),
                body: body(99),
                group: Some(*g),
                ..Default::default()
            })
            .ok();
    }
    let _ = engine.flush();
    (followed, acked, group)
}

#[test]
fn every_file_operation_of_the_engine_can_fail_and_nothing_acknowledged_is_lost() {
    sweep(
        "engine",
        engine_scenario,
        |dir, (followed, acked, group), _, _, what| {
            let config = Config {
                users_max: 16,
                ..Default::default()
            };
            let engine = Engine::open(dir, config)
                .unwrap_or_else(|e| panic!("{what}: the engine does not reopen: {e}"));
            if *followed {
                let mut home = Vec::new();
                let mut page = Some(Page::latest(200));
                while let Some(p) = page {
                    let got = engine.home_timeline(UserId(2), p).expect("a valid page");
                    home.extend(got.ids);
                    page = got.next;
                }
                for &(id, deleted) in acked {
                    let present = engine.notice(id).is_some();
                    if let Some(deleted) = deleted {
                        assert_eq!(present, !deleted, "{what}: post {id} (deleted: {deleted})");
                    }
                    assert_eq!(
                        home.contains(&id),
                        present,
                        "{what}: post {id} (stored: {present}) in the follower's home"
                    );
                }
            }
            for &(id, deleted) in acked {
                if let Some(deleted) = deleted {
                    assert_eq!(engine.notice(id).is_some(), !deleted, "{what}: post {id}");
                }
            }
            if let Some((g, joined, post)) = *group {
                assert_eq!(
                    engine.group_by_name("sweepers"),
                    Some(g),
                    "{what}: the group"
                );
                if let Some(id) = post {
                    let n = engine.notice(id);
                    assert!(
                        n.is_some_and(|n| n.group() == Some(g)),
                        "{what}: group post"
                    );
                    let stream = engine.group_timeline(UserId(5), g, Page::latest(20));
                    assert_eq!(stream.expect("a group").ids, vec![id], "{what}: stream");
                }
                if joined {
                    assert!(engine.is_member(UserId(4), g), "{what}: the membership");
                    // An acknowledged group post reached the member (one whose post
                    // failed may still be stored: it was not acknowledged either way).
                    if let Some(id) = post {
                        let home = engine.home_timeline(UserId(4), Page::latest(20)).unwrap();
                        assert_eq!(home.ids, vec![id], "{what}: the member's home");
                    }
                }
            }
        },
    );
}

/// What the outbox scenario was told: the posts acknowledged (and whether their
/// delete was acknowledged), and the deliveries acknowledged.
#[derive(Debug, Default)]
struct OutboxOutcome {
    posts: Vec<(NoticeId, bool)>,
    acked: BTreeSet<(u64, String, DeliveryKind)>,
    /// Acks that failed on I/O: the record may have reached the file.
    maybe_acked: BTreeSet<(u64, String, DeliveryKind)>,
}

const SWEEP_SERVERS: [&str; 2] = ["a.example", "b.example"];

/// The outbox scenario: remote followers on two servers, posts, deliveries acked and
/// failed, a delete (and its delete deliveries).
fn outbox_scenario(dir: &Path) -> OutboxOutcome {
    let mut out = OutboxOutcome::default();
    let config = Config {
        users_max: 16,
        remote_users_max: 8,
        durability: Durability::Always,
        ..Default::default()
    };
    let Ok(engine) = Engine::open(dir, config) else {
        return out;
    };
    for s in SWEEP_SERVERS {
        let Ok(u) = engine.register_remote(s, &format!("https://{s}/u")) else {
            return out;
        };
        if engine.follow(u, UserId(1)).is_err() {
            return out;
        }
    }
    for i in 0..4 {
        if let Ok(id) = engine.post(NewNotice {
            author: UserId(1),
            body: format!("outbox {i}"),
            ..Default::default()
        }) {
            out.posts.push((id, false));
        }
        let ds = engine.deliveries(3);
        for (k, d) in ds.iter().enumerate() {
            if k % 3 == 2 {
                let _ = engine.fail(d, Some(std::time::Duration::ZERO));
            } else {
                let k = (d.notice.0, d.server.clone(), d.kind);
                match engine.ack(d) {
                    Ok(()) => out.acked.insert(k),
                    Err(_) => out.maybe_acked.insert(k),
                };
            }
        }
    }
    if let Some(first) = out.posts.first_mut() {
        first.1 = engine.delete(first.0).is_ok();
    }
    out
}

#[test]
fn every_file_operation_of_the_outbox_can_fail_and_nothing_acknowledged_is_lost() {
    let runs = sweep("outbox", outbox_scenario, |dir, out, _, _, what| {
        let report = feedcore::OutboxReport::check(dir)
            .unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
        assert!(
            report.is_none_or(|r| r.is_sound()),
            "{what}: outbox damaged"
        );
        let config = Config {
            users_max: 16,
            remote_users_max: 8,
            ..Default::default()
        };
        let engine = Engine::open(dir, config)
            .unwrap_or_else(|e| panic!("{what}: the engine does not reopen: {e}"));
        let mut handed = BTreeSet::new();
        loop {
            let ds = engine.deliveries(16);
            if ds.is_empty() {
                break;
            }
            handed.extend(ds.into_iter().map(|d| (d.notice.0, d.server, d.kind)));
        }
        for k in &handed {
            assert!(
                !out.acked.contains(k),
                "{what}: acked {k:?} handed out again"
            );
        }
        for &(id, deleted) in &out.posts {
            let kind = if deleted {
                DeliveryKind::Delete
            } else if engine.notice(id).is_none() {
                continue; // its delete failed after the log's: either may hold
            } else {
                DeliveryKind::Create
            };
            for s in SWEEP_SERVERS {
                let k = (id.0, s.to_string(), kind);
                assert!(
                    out.acked.contains(&k) || out.maybe_acked.contains(&k) || handed.contains(&k),
                    "{what}: {k:?} lost"
                );
            }
        }
    });
    assert!(runs > 30, "the sweep covers the scenario ({runs} runs)");
}

#[test]
#[ignore]
fn debug_print_log_ops() {
    let dir = scratch();
    let counting = Plan::new(dir.path(), Fault::Eio, 0).install();
    log_scenario(dir.path());
    for (i, (op, p)) in counting.seen().iter().enumerate() {
        println!(
            "{} {op:?} {}",
            i + 1,
            p.file_name().unwrap().to_string_lossy()
        );
    }
    let dir = scratch();
    let plan = Plan::new(dir.path(), Fault::Eio, 76).install();
    let out = log_scenario(dir.path());
    drop(plan);
    println!("{:?}", out.errors);
    println!("deleted {:?}", out.deleted);
}
