//! Guards the fuzz targets' findings on stable Rust: every file of `fuzz/corpus/segment/`
//! goes through `feedcore::fuzzing::segment` (recovery scan and directory check) and
//! every file of `fuzz/corpus/notice/` through `feedcore::fuzzing::notice` (validation,
//! encoding, archive check); any panic is a regression. The corpus holds the seeds that
//! `regenerate_seeds` writes, inputs the fuzzer found that add coverage, and the inputs
//! of fixed crashes.
//!
//! Also guards the corpus against going stale: the `sound-*` seeds must still check
//! sound, so a change of the record or archive layout fails here until the seeds are
//! rewritten with `cargo test --test fuzz_corpus -- --ignored regenerate_seeds` (then
//! fuzz again: the inputs the fuzzer found are of the old layout too).

use std::fs;
use std::path::{Path, PathBuf};

use feedcore::sim::synthetic_notice;
use feedcore::{Durability, GroupId, LogConfig, NewNotice, NoticeId, NoticeLog, Scope, UserId};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no input", dir.display());
    files
}

fn replay(target: &str, harness: fn(&[u8])) {
    for path in corpus(target) {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        // Name the input before running it, so a panic's output says which one.
        eprintln!("{target}: {}", path.display());
        harness(&data);
    }
}

#[test]
fn segment_corpus_replays() {
    replay("segment", feedcore::fuzzing::segment);
}

#[test]
fn notice_corpus_replays() {
    replay("notice", feedcore::fuzzing::notice);
}

#[test]
fn sound_seeds_still_check_sound() {
    let sound: Vec<PathBuf> = corpus("segment")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("sound-"))
        })
        .collect();
    assert!(sound.len() >= 3, "the sound-* seeds are missing");
    for path in sound {
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::copy(&path, dir.path().join("00000001.seg")).expect("copying a seed");
        let report = NoticeLog::check(dir.path()).expect("check reports");
        assert!(
            report.problems.is_empty(),
            "{} no longer checks sound ({:?}): the layout changed; rewrite the seeds with \
             `cargo test --test fuzz_corpus -- --ignored regenerate_seeds`, then fuzz again",
            path.display(),
            report.problems
        );
    }
}

// ---- The seeds ----------------------------------------------------------------------

const SEGMENT_BYTES: u64 = 64 * 1024;
/// Bytes of a segment header; records start after it.
const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes of a record header.
const RECORD_HEADER_BYTES: usize = 16;
/// Byte of the tag inside a record header.
const TAG_OFFSET: usize = 9;
const TAG_NOTICE: u8 = 1;
const TAG_TOMBSTONE: u8 = 2;
const TAG_SCRUBBED: u8 = 3;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        durability: Durability::Buffered,
        ..Default::default()
    }
}

fn segment(dir: &Path, index: u32) -> Vec<u8> {
    fs::read(dir.join(format!("{index:08}.seg"))).expect("the segment exists")
}

/// A record found by walking the headers of a segment.
#[derive(Clone, Copy)]
struct Record {
    offset: usize,
    len: usize,
    tag: u8,
}

impl Record {
    fn end(&self) -> usize {
        self.offset + RECORD_HEADER_BYTES + self.len.div_ceil(16) * 16
    }
}

// [len: u32 LE][crc32c: u32 LE][version: u8][tag: u8][id: u48 LE][payload][zero pad to 16]
fn records(bytes: &[u8]) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut pos = SEGMENT_HEADER_BYTES;
    while pos + RECORD_HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            break;
        }
        let record = Record {
            offset: pos,
            len,
            tag: bytes[pos + TAG_OFFSET],
        };
        out.push(record);
        pos = record.end();
    }
    out
}

fn end_of_records(bytes: &[u8]) -> usize {
    records(bytes)
        .last()
        .map_or(SEGMENT_HEADER_BYTES, Record::end)
}

/// The segment cut to `len` bytes, its header saying so (and its checksum right), so
/// that small seeds get past the size check.
// [magic: 8][format: u32][index: u32][first_id: u64][segment_bytes: u64]
// [synced mark: 16][12 zero][crc32c of 0..32 and 48..60] (format 1: 28 zero, crc of 0..60)
fn resized(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = bytes[..len].to_vec();
    out[24..32].copy_from_slice(&(len as u64).to_le_bytes());
    reseal(&mut out);
    out
}

/// Recomputes the header checksum after an edit of the header (format 2's leaves the
/// synced mark out; any other format is sealed as format 1 is).
fn reseal(bytes: &mut [u8]) {
    let crc = if bytes[8..12] == 2u32.to_le_bytes() {
        crc32c::crc32c_append(crc32c::crc32c(&bytes[0..32]), &bytes[48..60])
    } else {
        crc32c::crc32c(&bytes[0..60])
    };
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
}

fn append_varied(log: &NoticeLog) {
    let first = log
        .append(&NewNotice {
            author: UserId(1),
            body: "hello fediverse".into(),
            created_at_ms: 1_700_000_000_000,
            ..Default::default()
        })
        .expect("a valid notice");
    let reply = log
        .append(&NewNotice {
            author: UserId(2),
            body: "@alice a reply with #Tags and ünïcödé".into(),
            reply_to: Some(first),
            conversation: Some(1),
            mentions: vec![UserId(1), UserId(3), UserId(1)],
            tags: vec!["#Tags".into(), "rust".into()],
            scope: Scope::Followers,
            ..Default::default()
        })
        .expect("a valid notice");
    log.append(&NewNotice {
        author: UserId(3),
        body: String::new(),
        repeat_of: Some(reply),
        scope: Scope::Addressees,
        group: Some(GroupId(9)),
        ..Default::default()
    })
    .expect("a valid notice");
    log.append(&NewNotice {
        author: UserId(4),
        body: "from elsewhere".into(),
        uri: Some("https://remote.example/notice/42".into()),
        ..Default::default()
    })
    .expect("a valid notice");
}

fn append_synthetic(log: &NoticeLog, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        log.append(&synthetic_notice(NoticeId(id)))
            .expect("a valid notice");
    }
}

fn assert_sound(dir: &Path) {
    let report = NoticeLog::check(dir).expect("check reports");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Writes the seed corpora: small valid segments (`segment_bytes` 64 KiB, the minimum;
/// some resized smaller so the fuzzer runs faster), damaged and truncated variants, and
/// for notices, archives taken from records and builder inputs.
#[test]
#[ignore = "writes fuzz/corpus; run by hand when the layout changes"]
fn regenerate_seeds() {
    let segment_dir = corpus_dir("segment");
    let notice_dir = corpus_dir("notice");
    fs::create_dir_all(&segment_dir).expect("creating the corpus directory");
    fs::create_dir_all(&notice_dir).expect("creating the corpus directory");
    let put = |name: &str, bytes: &[u8]| {
        fs::write(segment_dir.join(name), bytes).expect("writing a seed");
    };

    // An empty log: header, then zeros.
    let dir = tempfile::tempdir().expect("a temporary directory");
    drop(NoticeLog::open(dir.path(), config()).expect("a fresh log"));
    let empty = segment(dir.path(), 1);
    put("sound-empty-64k", &empty);
    put("empty-resized-64", &resized(&empty, SEGMENT_HEADER_BYTES));
    put("empty-resized-1k", &resized(&empty, 1024));

    // Varied notices, some deleted (tombstones, scrubbed records).
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let log = NoticeLog::open(dir.path(), config()).expect("a fresh log");
        append_varied(&log);
        append_synthetic(&log, 5..=24);
        for id in [2, 7, 8, 20] {
            log.delete(NoticeId(id)).expect("a live notice");
        }
        append_synthetic(&log, 25..=25);
    }
    assert_sound(dir.path());
    let mixed = segment(dir.path(), 1);
    put("sound-mixed-deleted-64k", &mixed);
    let end = end_of_records(&mixed);
    put(
        "sound-mixed-deleted-resized",
        &resized(&mixed, end.div_ceil(256) * 256),
    );
    // The header says less than the records take: a record runs past the end.
    put(
        "mixed-resized-short",
        &resized(&mixed, records(&mixed)[3].offset + 40),
    );

    // A small sound segment, the base of the damaged variants.
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let log = NoticeLog::open(dir.path(), config()).expect("a fresh log");
        append_varied(&log);
        append_synthetic(&log, 5..=6);
        log.delete(NoticeId(2)).expect("a live notice");
        append_synthetic(&log, 7..=7);
    }
    assert_sound(dir.path());
    let full = segment(dir.path(), 1);
    let small = resized(&full, end_of_records(&full) + 512);
    put("sound-small", &small);
    let recs = records(&small);
    let cut = end_of_records(&small);
    let target = recs[2];
    assert_eq!(target.tag, TAG_NOTICE, "notice 3 is live");
    let last = *recs.last().expect("records");
    let flipped = |at: usize, mask: u8| {
        let mut v = small.clone();
        v[at] ^= mask;
        v
    };
    put("flip-len", &flipped(target.offset, 0x40));
    put("flip-crc", &flipped(target.offset + 5, 0x01));
    put("flip-version", &flipped(target.offset + 8, 0x02));
    put(
        "flip-tag-unknown",
        &flipped(target.offset + TAG_OFFSET, 0x07),
    );
    put(
        "flip-tag-scrubbed",
        &flipped(target.offset + TAG_OFFSET, TAG_NOTICE ^ TAG_SCRUBBED),
    );
    put("flip-id", &flipped(target.offset + 10, 0x01));
    put(
        "flip-payload",
        &flipped(target.offset + RECORD_HEADER_BYTES + target.len / 2, 0x80),
    );
    put(
        "flip-last-payload",
        &flipped(last.offset + RECORD_HEADER_BYTES + last.len - 1, 0x55),
    );
    let mut torn = small.clone();
    torn[last.offset + RECORD_HEADER_BYTES + last.len / 2..].fill(0);
    put("torn-last", &torn);
    let mut garbage = small.clone();
    garbage[cut + 100..cut + 180].fill(0xab);
    put("garbage-after-end", &garbage);
    // The segment header's own fields.
    let mut v = small.clone();
    v[0] = b'X';
    put("bad-magic", &v);
    let mut v = small.clone();
    v[20] ^= 1; // first_id, checksum left stale
    put("bad-header-crc", &v);
    for (name, range, value) in [
        ("first-id-zero", 16..24, 0u64.to_le_bytes().to_vec()),
        ("first-id-3", 16..24, 3u64.to_le_bytes().to_vec()),
        ("format-9", 8..12, 9u32.to_le_bytes().to_vec()),
    ] {
        let mut v = small.clone();
        v[range].copy_from_slice(&value);
        reseal(&mut v);
        put(name, &v);
    }
    // Truncated, the header left as it was: the size check.
    put("truncated-0", &[]);
    put("truncated-63", &mixed[..63]);
    put("truncated-100", &mixed[..100]);
    put("truncated-records", &mixed[..end]);

    // Deleted while a reader holds it: a tombstone, the record not scrubbed yet.
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let log = NoticeLog::open(dir.path(), config()).expect("a fresh log");
        append_synthetic(&log, 1..=6);
        let held = log.get(NoticeId(3)).expect("a live notice");
        log.delete(NoticeId(3)).expect("a live notice");
        let unscrubbed = segment(dir.path(), 1);
        drop(held);
        let v = resized(
            &unscrubbed,
            end_of_records(&unscrubbed).div_ceil(256) * 256 + 256,
        );
        let recs = records(&v);
        assert_eq!(recs[2].tag, TAG_NOTICE, "the scrub waits for the reader");
        put("unscrubbed-tombstone", &v);
        // The tag rewritten, the payload not zeroed yet: an interrupted scrub.
        let mut v = v.clone();
        v[recs[2].offset + TAG_OFFSET] = TAG_SCRUBBED;
        put("scrub-unfinished", &v);
        // A scrubbed record without its tombstone.
        let tombstone = recs
            .iter()
            .find(|r| r.tag == TAG_TOMBSTONE)
            .expect("the delete wrote a tombstone");
        v[tombstone.offset..].fill(0);
        put("scrubbed-no-tombstone", &v);
    }

    // A full segment, and the one after it (a later first id, index 2).
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let log = NoticeLog::open(dir.path(), config()).expect("a fresh log");
        let mut id = 1;
        while log.stats().segments < 2 {
            append_synthetic(&log, id..=id);
            id += 1;
        }
        log.delete(NoticeId(id - 1)).expect("a live notice");
        log.delete(NoticeId(5)).expect("a live notice");
    }
    let full = segment(dir.path(), 1);
    put("full-64k", &full);
    let mut v = full.clone();
    let last = *records(&full).last().expect("records");
    v[last.offset + 20] ^= 0x10;
    put("full-64k-last-damaged", &v);
    let second = segment(dir.path(), 2);
    put(
        "second-resized",
        &resized(&second, end_of_records(&second).div_ceil(256) * 256),
    );

    // Notices: archives as the log stores them, and inputs for the builder.
    let put = |name: &str, bytes: &[u8]| {
        fs::write(notice_dir.join(name), bytes).expect("writing a seed");
    };
    for (i, r) in records(&mixed).iter().take(6).enumerate() {
        if r.tag == TAG_NOTICE {
            let payload = r.offset + RECORD_HEADER_BYTES;
            put(&format!("archive-{i}"), &mixed[payload..payload + r.len]);
        }
    }
    put("empty", b"");
    put("zero", &[0]);
    put("plain-text", b"\x00\x07\x00\x03\x02\x04hello #world");
    put("repeat-no-body", b"\x05\x01\x00\x00\x00\x00");
    put(
        "all-flags",
        b"\xff\x10\x27\x4f\x27\x08tags and a body with \xc3\xa9 utf8",
    );
    put("many-mentions", b"\x00\x01\x00\x45\x00\x00body");
    let mut tags = b"\x40\x01\x00\x00\x26\x20".to_vec();
    tags.extend(b"abcdefghijklmnopqrstuvwxyz0123456789".repeat(4));
    tags.extend(b" body");
    put("many-tags", &tags);
    put("invalid-utf8", b"\x80\x02\x00\x01\x01\x01\xff\xfe#\xc0tag");
    let mut long = vec![0x20u8, 1, 0, 0, 0, 0];
    long.extend(std::iter::repeat_n(b'x', 5001));
    put("body-too-long", &long);
}

#[test]
fn graph_file_corpus_replays() {
    replay("graph_file", feedcore::fuzzing::graph_file);
}

/// Writes the `graph_file` seeds: a registry of groups, lists and tags, an op log of
/// follows, blocks and mutes, and a snapshot, each from a real store, whole and cut,
/// each behind the byte that picks its file.
#[test]
#[ignore = "rewrites fuzz/corpus/graph_file/sound-*; run by hand after a layout change"]
fn regenerate_graph_seeds() {
    use feedcore::{Config, Engine, FollowGraph, GraphConfig, fuzzing::GRAPH_FILES};
    let out = corpus_dir("graph_file");
    fs::create_dir_all(&out).expect("creating the corpus directory");
    let put = |name: &str, pick: usize, bytes: &[u8]| {
        let mut seed = vec![pick as u8];
        seed.extend_from_slice(bytes);
        fs::write(out.join(name), seed).expect("writing a seed");
    };
    let only = |dir: &Path, prefix: &str| -> Vec<u8> {
        let path = fs::read_dir(dir)
            .expect("the graph directory")
            .map(|e| e.expect("an entry").path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()));
        fs::read(path).expect("reading a graph file")
    };

    // The registry, beside the follow graph of an engine's store.
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let engine = Engine::open(
            dir.path(),
            Config {
                users_max: 64,
                durability: Durability::Buffered,
                ..Default::default()
            },
        )
        .expect("a fresh store");
        for (owner, name) in [(1, "rustaceans"), (2, "fediverse"), (3, "ünïcödé")] {
            let group = engine
                .create_group(UserId(owner), name)
                .expect("a new group");
            engine
                .join_group(UserId(owner + 10), group)
                .expect("a member");
        }
        engine
            .create_list(UserId(4), "close friends")
            .expect("a list");
        engine.follow_tag(UserId(5), "#Rust").expect("a tag");
        engine.sync().expect("synced");
    }
    let registry = fs::read(dir.path().join("graph").join(GRAPH_FILES[0])).expect("registry");
    put("sound-registry", 0, &registry);
    put("registry-cut", 0, &registry[..registry.len() * 2 / 3]);

    // An op log, then a snapshot, of a graph alone.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = GraphConfig {
        users_max: 64,
        durability: Durability::Buffered,
        ..Default::default()
    };
    {
        let graph = FollowGraph::open(dir.path(), config.clone()).expect("a fresh graph");
        for a in 0..20 {
            graph
                .follow(UserId(a), UserId((a * 7 + 3) % 40))
                .expect("a follow");
        }
        graph.block(UserId(30), UserId(31)).expect("a block");
        graph.mute(UserId(32), UserId(33)).expect("a mute");
        graph.unfollow(UserId(0), UserId(3)).expect("an unfollow");
        graph.sync().expect("synced");
    }
    let ops = only(dir.path(), "ops-");
    put("sound-ops", 1, &ops);
    put("ops-cut", 1, &ops[..ops.len() / 2]);
    {
        let graph = FollowGraph::open(dir.path(), config).expect("the graph");
        graph.compact().expect("a compaction");
    }
    let snapshot = only(dir.path(), "snapshot-");
    put("sound-snapshot", 2, &snapshot);
    put("snapshot-cut", 2, &snapshot[..snapshot.len() / 2]);

    for seed in ["sound-registry", "sound-ops", "sound-snapshot"] {
        let data = fs::read(out.join(seed)).expect("a seed");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let name = GRAPH_FILES[usize::from(data[0]) % GRAPH_FILES.len()];
        fs::write(dir.path().join(name), &data[1..]).expect("writing");
        let report = FollowGraph::check(dir.path()).expect("check reports");
        assert!(
            report.is_sound(),
            "{seed} checks sound: {:?}",
            report.problems
        );
    }
}

#[test]
fn outbox_file_corpus_replays() {
    replay("outbox_file", feedcore::fuzzing::outbox_file);
    // The seeds from a real store still check sound (else the layout changed: rewrite
    // them with `regenerate_outbox_seeds`).
    for path in corpus("outbox_file") {
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sound-")
        {
            continue;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::create_dir_all(dir.path().join("outbox")).expect("the outbox directory");
        fs::copy(&path, dir.path().join("outbox/outbox.log")).expect("copying a seed");
        let report = feedcore::OutboxReport::check(dir.path())
            .expect("check reads")
            .expect("an outbox");
        assert!(
            report.problems.is_empty() && report.records > 0,
            "{}: {:?}",
            path.display(),
            report.problems
        );
    }
}

/// Writes the `outbox_file` seeds: the outbox of a real store (enqueues, acks,
/// failures, a server failing for a week and recovered, a delete, marks), whole and cut.
#[test]
#[ignore = "rewrites fuzz/corpus/outbox_file/sound-* and torn-*; run by hand after a layout change"]
fn regenerate_outbox_seeds() {
    use feedcore::{Clock, Config, Engine};
    let out = corpus_dir("outbox_file");
    fs::create_dir_all(&out).expect("creating the corpus directory");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let clock = Clock::manual(1_700_000_000_000);
    let config = Config {
        users_max: 16,
        remote_users_max: 16,
        durability: Durability::Buffered,
        clock: clock.clone(),
        ..Default::default()
    };
    {
        let e = Engine::open(dir.path(), config.clone()).expect("a fresh store");
        for s in 0..3 {
            let host = format!("s{s}.example");
            for u in 0..2 {
                let r = e
                    .register_remote(&host, &format!("https://{host}/users/{u}"))
                    .expect("a remote account");
                e.follow(r, UserId(1 + u)).expect("a follow");
            }
        }
        let post = |author: u32, body: &str| {
            e.post(NewNotice {
                author: UserId(author),
                body: body.into(),
                ..Default::default()
            })
            .expect("a post")
        };
        let first = post(1, "one");
        post(2, "two");
        let ds = e.deliveries(4);
        e.ack_all(&ds[..2]).expect("acks");
        for d in &ds[2..] {
            e.fail(d, None).expect("a failure");
        }
        // s2.example fails for a week: unavailable.
        for _ in 0..3 {
            clock.advance(std::time::Duration::from_secs(4 * 24 * 3600));
            for d in e.deliveries(16) {
                if d.server == "s2.example" {
                    e.fail(&d, None).expect("a failure");
                } else {
                    e.ack(&d).expect("an ack");
                }
            }
        }
        e.server_recovered("s2.example").expect("recovered");
        post(1, "three");
        e.delete(first).expect("a delete");
    }
    // Reopened: a mark and the recovered state.
    drop(Engine::open(dir.path(), config).expect("a reopen"));
    let bytes = fs::read(dir.path().join("outbox/outbox.log")).expect("the outbox file");
    fs::write(out.join("sound-outbox"), &bytes).expect("writing a seed");
    for (name, len) in [
        ("torn-half", bytes.len() / 2),
        ("torn-minus-3", bytes.len() - 3),
        ("torn-first-record", 40.min(bytes.len())),
    ] {
        fs::write(out.join(name), &bytes[..len]).expect("writing a seed");
    }
    // The same records as payloads for the harness to frame (first byte odd).
    let mut payloads = vec![1u8];
    let mut pos = 0;
    while pos + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let payload = &bytes[pos + 16..pos + 16 + len];
        payloads.push(u8::try_from(len).expect("seed payloads under 256 bytes"));
        payloads.extend_from_slice(payload);
        pos += 16 + len.div_ceil(16) * 16;
    }
    fs::write(out.join("framed-payloads"), payloads).expect("writing a seed");
    let mut flipped = bytes.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x40;
    fs::write(out.join("damaged-flip"), flipped).expect("writing a seed");
}
