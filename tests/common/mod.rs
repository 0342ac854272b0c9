//! Helpers shared by the integration tests: the on-disk layout as the tests see it
//! (segment files, record headers), byte surgery on segment files, and the CLI binary.
//! Not a test itself; each test file uses what it needs.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use feedcore::{NoticeId, NoticeLog, NoticeRef};

/// Bytes before the first record of a segment.
pub const SEGMENT_HEADER_BYTES: u64 = 64;
/// Bytes of a record header: `[len u32 LE][crc u32][version u8][tag u8][id u48 LE]`.
pub const RECORD_HEADER_BYTES: u64 = 16;
/// Offset of the tag byte inside a record header.
pub const TAG_OFFSET: u64 = 9;
pub const TAG_NOTICE: u8 = 1;
pub const TAG_TOMBSTONE: u8 = 2;
pub const TAG_SCRUBBED: u8 = 3;

/// A record header as found in a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Offset of the header in the file.
    pub offset: u64,
    /// Payload bytes.
    pub len: u64,
    pub tag: u8,
    pub id: u64,
}

impl Record {
    /// Offset just past the record, padding included.
    pub fn end(&self) -> u64 {
        self.offset + RECORD_HEADER_BYTES + self.len.div_ceil(16) * 16
    }

    /// Offset of the first payload byte.
    pub fn payload(&self) -> u64 {
        self.offset + RECORD_HEADER_BYTES
    }
}

/// The segment files of a log directory, in order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("the log directory is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// The records of a segment file, read by walking the headers from byte 64 until a zero
/// header (the tests only walk files the log wrote whole).
pub fn records(file: &Path) -> Vec<Record> {
    let bytes = fs::read(file).expect("the segment is readable");
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER_BYTES as usize;
    while pos + 16 <= bytes.len() && bytes[pos..pos + 16].iter().any(|&b| b != 0) {
        let mut id = [0u8; 8];
        id[..6].copy_from_slice(&bytes[pos + 10..pos + 16]);
        let record = Record {
            offset: pos as u64,
            len: u64::from(u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap())),
            tag: bytes[pos + TAG_OFFSET as usize],
            id: u64::from_le_bytes(id),
        };
        assert!(
            record.len > 0,
            "walked into a bad header at {pos} of {file:?}"
        );
        pos = record.end() as usize;
        out.push(record);
    }
    out
}

/// The segment file and record holding notice `id` (its notice or scrubbed record).
pub fn find_notice_record(dir: &Path, id: NoticeId) -> (PathBuf, Record) {
    for file in segment_files(dir) {
        for record in records(&file) {
            if record.id == id.0 && record.tag != TAG_TOMBSTONE {
                return (file, record);
            }
        }
    }
    panic!("no record for {id} in {dir:?}");
}

/// Reads `len` bytes at `offset` of `file`.
pub fn read_at(file: &Path, offset: u64, len: u64) -> Vec<u8> {
    let bytes = fs::read(file).expect("readable");
    bytes[offset as usize..(offset + len) as usize].to_vec()
}

/// Overwrites bytes of `file` at `offset` (the file keeps its length).
pub fn write_at(file: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("writable");
    // No fsync: the tests read back through the same page cache.
    f.write_all_at(data, offset).expect("write");
}

/// XORs one byte of `file` with `mask`.
pub fn xor_byte(file: &Path, offset: u64, mask: u8) {
    let old = read_at(file, offset, 1)[0];
    write_at(file, offset, &[old ^ mask]);
}

/// Whether any file in `dir` holds `needle` anywhere in its bytes.
pub fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    assert!(!needle.is_empty());
    fs::read_dir(dir).expect("readable").any(|e| {
        let path = e.expect("an entry").path();
        path.is_file()
            && fs::read(&path)
                .expect("readable")
                .windows(needle.len())
                .any(|w| w == needle)
    })
}

/// Copies the files of `from` (not recursive; a log directory is flat) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create");
    for entry in fs::read_dir(from).expect("readable") {
        let entry = entry.expect("an entry");
        if entry.path().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// The `feedcore` binary built for these tests.
pub fn feedcore_bin() -> &'static str {
    env!("CARGO_BIN_EXE_feedcore")
}

/// Runs `feedcore check` on the store; panics with its output unless it exits 0.
pub fn check_sound(store: &Path, when: &str) {
    let out = Command::new(feedcore_bin())
        .arg("check")
        .arg(store)
        .output()
        .expect("feedcore check runs");
    assert!(
        out.status.success(),
        "{when}: feedcore check exited {:?}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compares a stored notice with the synthetic notice of its id (what `feedcore load`
/// appends): body, author, creation time, tags and mentions.
pub fn assert_synthetic(notice: &NoticeRef<'_>) {
    let id = notice.id();
    let expected = feedcore::sim::synthetic_notice(id);
    assert_eq!(notice.body(), expected.body, "body of {id}");
    assert_eq!(notice.author(), expected.author, "author of {id}");
    assert_eq!(
        notice.created_at_ms(),
        expected.created_at_ms,
        "created_at_ms of {id}"
    );
    assert_eq!(
        notice.tags().collect::<Vec<_>>(),
        expected.tags,
        "tags of {id}"
    );
    assert_eq!(
        notice.mentions().collect::<Vec<_>>(),
        expected.mentions,
        "mentions of {id}"
    );
}

/// Checks that the log holds exactly ids `1..=len`, each with its synthetic content.
pub fn assert_all_synthetic(log: &NoticeLog) {
    let len = log.len();
    let mut next = 1;
    for notice in log.iter_from(NoticeId(1)) {
        assert_eq!(notice.id(), NoticeId(next), "ids are contiguous");
        assert_synthetic(&notice);
        next += 1;
    }
    assert_eq!(next - 1, len, "every id up to len() is there");
    assert!(log.get(NoticeId(len + 1)).is_none(), "nothing after len()");
    assert!(log.get(NoticeId(0)).is_none(), "no notice 0");
}

/// `NoticeLog::open`, retried while it reports `Locked` for up to five seconds.
///
/// The directory lock is an `flock` on an open file description. When another test in
/// the same binary spawns a child process, the child holds a copy of every descriptor
/// of this process from its fork until its exec (where close-on-exec drops them), so
/// for that moment a log this test has just dropped still counts as open. A real
/// second owner holds the lock for longer than five seconds in none of the tests.
pub fn open_log(dir: &Path, config: feedcore::LogConfig) -> Result<NoticeLog, feedcore::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match NoticeLog::open(dir, config.clone()) {
            Err(feedcore::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

/// A temporary directory in memory (`/dev/shm`) where there is one, else the default
/// one: for tests that open and sync logs hundreds of times and test recovery's logic,
/// not the disk, so that fsyncs cost nothing and other I/O on the machine does not
/// slow them down.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("feedcore-test")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("a temporary directory")
}

/// Runs `cmd` (a `feedcore` child), kills it with SIGKILL after `delay_ms`, and returns
/// the whole lines it printed (a line cut by the kill has no newline and is dropped).
/// Stdout is drained meanwhile so a full pipe never holds the child back. Panics if the
/// child ended by itself before the kill: the round would not test a crash.
pub fn kill_after(cmd: &mut Command, delay_ms: u64, what: &str) -> Vec<String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child starts");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).expect("utf-8 output");
        text
    });
    std::thread::sleep(Duration::from_millis(delay_ms));
    // SIGKILL: no destructor, no final sync, no flush of anything in user space.
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    let text = reader.join().expect("the reader thread");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("utf-8 stderr");
    assert!(
        !status.success() && status.code().is_none(),
        "{what}: the child ended by itself before the kill ({status:?}): {stderr}"
    );
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| l.trim_end().to_string())
        .collect()
}
