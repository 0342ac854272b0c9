//! Harness functions shared by the fuzz targets in `fuzz/` and by the test that replays
//! their corpus on stable Rust. Not part of the supported API.

use crate::log::scan;
use crate::notice::{self, Limits, NewNotice, Scope};
use crate::{GroupId, NoticeId, UserId};

/// Feeds arbitrary bytes, as a segment file, through the recovery scan and the
/// directory check. Must never panic; every finding must point inside the file.
pub fn segment(data: &[u8]) {
    if let Ok(result) = scan::scan_segment(data) {
        assert!(result.end as usize <= data.len(), "end inside the file");
        for record in &result.records {
            assert!(record.offset < result.end, "records before the end");
        }
        if let scan::Tail::Corrupt { offset, .. } = result.tail {
            assert!((offset as usize) < data.len(), "damage inside the file");
        }
    }
    // The same bytes through `check` (directory level, read-only).
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join(crate::log::segment::file_name(1)), data)
        .expect("writing the fuzz input");
    let report = crate::NoticeLog::check(dir.path()).expect("check reports, it does not fail");
    for problem in &report.problems {
        assert!(
            problem.offset as usize <= data.len(),
            "problem offset inside the file"
        );
    }
}

/// Builds a notice from arbitrary bytes and runs it through validation, encoding and
/// the archive check. Must never panic; whatever validates must read back the same.
pub fn notice(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next().unwrap_or(0);
    let flags = next();
    let author = u32::from_le_bytes([next(), next(), 0, 0]);
    let mentions = (0..next() % 80).map(|i| UserId(u32::from(i) * 7)).collect();
    let tag_count = next() % 40;
    let split = data.len().min(usize::from(next()) * 4);
    let (head, rest) = data.split_at(split);
    let text = String::from_utf8_lossy(rest).into_owned();
    let tags = (0..tag_count)
        .map(|i| {
            String::from_utf8_lossy(head)
                .chars()
                .skip(usize::from(i))
                .take(3 + usize::from(i))
                .collect()
        })
        .collect();
    let input = NewNotice {
        author: UserId(author),
        body: if flags & 1 == 0 {
            text.clone()
        } else {
            String::new()
        },
        created_at_ms: u64::from(flags) << 20,
        published: None,
        reply_to: (flags & 2 != 0).then_some(NoticeId(u64::from(author))),
        reply_to_author: None,
        repeat_of: (flags & 4 != 0).then_some(NoticeId(u64::from(flags))),
        conversation: (flags & 8 != 0).then_some(7),
        mentions,
        tags,
        group: (flags & 16 != 0).then_some(GroupId(author)),
        // Bits 6 and 7 pick the scope too; their sum as a count of groups makes some
        // inputs version-2 records.
        groups: (0..u32::from(flags >> 6)).map(GroupId).collect(),
        scope: [Scope::Public, Scope::Followers, Scope::Addressees][usize::from(flags >> 6) % 3],
        uri: (flags & 32 != 0).then(|| text.chars().rev().collect()),
    };
    let limits = Limits {
        body_bytes_max: 5000,
    };
    if let Ok(validated) = notice::validate(&input, limits) {
        let mentions = validated.stored.mentions.len();
        let (encoded, version) =
            notice::encode(validated, (flags & 1 != 0).then_some(u64::from(flags)));
        notice::check_archived(&encoded, version).expect("what we encode validates");
        // SAFETY: validated just above; `encoded` outlives the borrow.
        let (archived, _, _) = unsafe { notice::access_trusted(&encoded, version) };
        assert_eq!(archived.body.as_str(), input.body);
        assert_eq!(archived.mentions.len(), mentions);
    }
    // The raw bytes as an archive of either version: refused or accepted, never a panic.
    let mut aligned = rkyv::util::AlignedVec::<16>::new();
    aligned.extend_from_slice(data);
    let _ = notice::check_archived(&aligned, 1);
    let _ = notice::check_archived(&aligned, 2);
    let _ = notice::check_archived(&aligned, 3);
}

/// Which graph-layer file [`graph_file`] writes its input as: its first byte modulo
/// this table's length picks one.
pub const GRAPH_FILES: [&str; 3] = [
    "registry.log",
    "ops-0000000000000001.log",
    "snapshot-0000000000000000.csr",
];

/// Feeds arbitrary bytes (after the first, which picks the file of [`GRAPH_FILES`]) as
/// one file of a graph directory: the registry of groups, lists and tags, an op log,
/// or a snapshot; then checks the directory and opens it as a graph. Must never panic;
/// every problem must point inside the file, and a directory that checks sound opens.
pub fn graph_file(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let name = GRAPH_FILES[usize::from(pick) % GRAPH_FILES.len()];
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join(name), body).expect("writing the fuzz input");
    let report = match crate::FollowGraph::check(dir.path()) {
        Ok(report) => report,
        // Refused with an error that is not a panic: fine for a fuzz input.
        Err(_) => return,
    };
    assert_inside(&report.problems, body.len());
    let config = crate::GraphConfig {
        users_max: 1 << 12,
        ..Default::default()
    };
    let opened = crate::FollowGraph::open(dir.path(), config);
    if report.is_sound() && name != GRAPH_FILES[0] {
        // (The registry is the engine's, opened by `Engine::open`, not by the graph.)
        if let Err(e) = opened {
            // A sound graph with ids past users_max is refused, not damaged.
            assert!(
                !matches!(e, crate::Error::Corrupt { .. }),
                "checked sound, opened Corrupt: {e}"
            );
        }
    }
}

/// Feeds arbitrary bytes as a store's outbox file (`outbox/outbox.log`): checked, then
/// the store opened as an engine, every due delivery handed out and acked. Must never
/// panic; every problem must point inside the file, a file that checks sound opens,
/// one that opens checks sound, and every delivery handed out can be acked.
///
/// An input whose first byte is odd is not the file itself but its records' payloads,
/// each `[len: u8][len bytes]`, framed with checksums and sequence numbers, so that
/// the fuzzer reaches the replay of well-framed records of any content.
pub fn outbox_file(data: &[u8]) {
    let framed;
    let data = match data.split_first() {
        Some((&first, mut rest)) if first & 1 == 1 => {
            let mut out = Vec::new();
            let mut seq = 1;
            while let Some((&len, tail)) = rest.split_first() {
                let (payload, next) = tail.split_at(usize::from(len).min(tail.len()));
                if !payload.is_empty() {
                    crate::outbox::record::frame_payload(seq, payload, &mut out);
                    seq += 1;
                }
                rest = next;
            }
            framed = out;
            &framed[..]
        }
        _ => data,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = crate::Config {
        users_max: 16,
        remote_users_max: 16,
        durability: crate::Durability::Buffered,
        workers: 1,
        segment_bytes: crate::SEGMENT_BYTES_MIN,
        ..Default::default()
    };
    // The store of the seeds: servers s0 .. s2.example, two accounts each, following
    // local users 1 and 2, and notices 1 to 4 by them, so that deliveries the file
    // names are handed out (and those it lacks are recovered from the log).
    {
        let engine = crate::Engine::open(dir.path(), config.clone()).expect("a fresh store");
        for s in 0..3 {
            let host = format!("s{s}.example");
            for u in 0..2 {
                let account = engine
                    .register_remote(&host, &format!("https://{host}/users/{u}"))
                    .expect("a remote account");
                engine
                    .follow(account, UserId(1 + u))
                    .expect("a remote follow");
            }
        }
        for n in 0..4 {
            engine
                .post(NewNotice {
                    author: UserId(1 + n % 2),
                    body: format!("notice {n}"),
                    ..Default::default()
                })
                .expect("a post");
        }
    }
    let outbox = dir.path().join(crate::outbox::file::DIR_NAME);
    std::fs::create_dir_all(&outbox).expect("creating the outbox directory");
    std::fs::write(outbox.join(crate::outbox::file::FILE_NAME), data)
        .expect("writing the fuzz input");
    let report = match crate::OutboxReport::check(dir.path()) {
        Ok(Some(report)) => report,
        Ok(None) => panic!("the outbox file was written"),
        // Refused with an error that is not a panic (an I/O error): fine.
        Err(_) => return,
    };
    assert_inside(&report.problems, data.len());
    match crate::Engine::open(dir.path(), config) {
        Ok(engine) => {
            assert!(report.is_sound(), "opened an outbox that checks damaged");
            for _ in 0..1000 {
                let batch = engine.deliveries(64);
                if batch.is_empty() {
                    break;
                }
                engine
                    .ack_all(&batch)
                    .expect("a delivery handed out is acked");
            }
        }
        Err(e) => assert!(!report.is_sound(), "checked sound, did not open: {e}"),
    }
}

/// Every problem points inside the file of `len` bytes.
fn assert_inside(problems: &[crate::log::Problem], len: usize) {
    for problem in problems {
        assert!(
            problem.offset as usize <= len,
            "problem offset {} inside the file of {len} bytes",
            problem.offset,
        );
    }
}
