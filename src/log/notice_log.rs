//! The notice log: appends, zero-copy reads, deletion that scrubs, recovery.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::check::{CheckReport, LogStats};
use super::config::{Durability, LogConfig};
use super::durable::{self, Durable, Lsn};
use super::frame::{self, HEADER_BYTES, TAG_OFFSET, Tag};
use super::order::{OrderKeys, clamp_published};
use super::recover::{self, Problem};
use super::segment::{SEGMENT_HEADER_BYTES, Segment, SegmentHeader};
use crate::clock::Clock;
use crate::dirlock::DirLock;
use crate::error::{Error, IoContext, Result};
use crate::fileio;
use crate::ids::NoticeId;
use crate::notice::{self, Limits, NewNotice, NoticeRef};

/// An index entry: `(segment slot << 32) | offset of the record header`, with bit 0 set
/// once the notice is deleted. Offsets are 16-byte aligned, so bit 0 is free; a record
/// never starts at offset 0 (the segment header is there), so 0 means "no entry".
const DELETED: u64 = 1;
/// Bit 1: a delete wrote the notice's tombstone (set under the writer lock, with the
/// tombstone's write) and may not have returned yet. Reads ignore it; appends check it
/// under the writer lock, so a reply or repeat never lands after its target's
/// tombstone (a check before the lock alone could pass, then lose the race).
const DELETING: u64 = 2;

fn loc(slot: usize, offset: u64) -> u64 {
    debug_assert!(
        offset.is_multiple_of(frame::ALIGN as u64),
        "records are aligned"
    );
    ((slot as u64) << 32) | offset
}

fn loc_slot(loc: u64) -> usize {
    (loc >> 32) as usize
}

fn loc_offset(loc: u64) -> u64 {
    loc & 0xffff_ffff & !(DELETED | DELETING)
}

/// What `open` found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Notices in the log (deleted ones included): the last id.
    pub notices: u64,
    /// Notices deleted.
    pub deleted: u64,
    /// Segment files.
    pub segments: usize,
    /// The torn tail that was cut off, if the last run ended mid-write.
    pub torn_tail: Option<Problem>,
    /// Deleted notices whose scrub a crash had interrupted, finished now.
    pub scrubs_finished: u64,
}

/// The appender's position. Guarded by `NoticeLog::writer`: appends, tombstones and
/// segment rolls happen one at a time; readers never touch it.
struct Writer {
    /// Position of the current segment in `segments`.
    slot: usize,
    /// Where the next record goes in the current segment.
    offset: u64,
    /// The id the next notice gets.
    next_id: u64,
    /// Reused buffer for one write of header, payload and padding.
    buf: Vec<u8>,
}

impl Writer {
    fn lsn(&self) -> Lsn {
        durable::lsn(self.slot, self.offset)
    }
}

/// Deleted records waiting for their bytes to be zeroed.
#[derive(Default)]
struct Scrubs {
    /// Deleted, tombstone written, bytes not zeroed yet.
    pending: Mutex<Vec<u64>>,
    /// Entries of `pending` that no reader can hold any more: pushed by closures that
    /// the epoch collector runs once every thread pinned at deletion time has unpinned.
    ready: Arc<Mutex<Vec<u64>>>,
    /// Segments written by scrubs since the last `sync`.
    dirty_slots: Mutex<Vec<usize>>,
}

/// The append-only, memory-mapped notice log, for those who only store notices (an
/// [`Engine`](crate::Engine) owns one in `DIR/notices`).
///
/// ```
/// use feedcore::{Durability, Error, LogConfig, NewNotice, NoticeLog, UserId};
///
/// let dir = tempfile::tempdir()?;
/// let config = LogConfig { durability: Durability::Always, ..Default::default() };
/// let log = NoticeLog::open(dir.path(), config)?;
///
/// let id = log.append(&NewNotice {
///     author: UserId(1),
///     body: "hello, fediverse #intro".into(),
///     tags: vec!["#Intro".into()],
///     ..Default::default()
/// })?;
///
/// // Read in place: no copy, no deserialisation.
/// let notice = log.get(id).expect("just appended");
/// assert_eq!(notice.body(), "hello, fediverse #intro");
/// assert_eq!(notice.tags().collect::<Vec<_>>(), ["intro"]);
/// drop(notice);
///
/// // Remote notices are stored once per uri.
/// let remote = NewNotice {
///     author: UserId(2),
///     body: "from elsewhere".into(),
///     uri: Some("https://social.example/notice/42".into()),
///     ..Default::default()
/// };
/// let first = log.append(&remote)?;
/// assert!(matches!(log.append(&remote), Err(Error::DuplicateUri { existing }) if existing == first));
///
/// // Deleting scrubs the bytes from the file and hides the notice, also after reopen.
/// log.delete(id)?;
/// assert!(log.get(id).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NoticeLog {
    dir: PathBuf,
    config: LogConfig,
    /// Segments in order; appended under `writer`, never removed while the log lives,
    /// so `&Segment` borrowed from it stays valid for `&self`.
    segments: boxcar::Vec<Segment>,
    /// Entry `id - 1` locates notice `id` (see [`DELETED`]). Pushed under `writer` in id
    /// order; the deleted bit is set under `delete_lock`.
    index: boxcar::Vec<AtomicU64>,
    /// The highest id whose record is written and indexed. Stored (Release) by the
    /// appender after the write and the index push; readers load it (Acquire) before
    /// touching a record, so the bytes they read are the written ones.
    published: AtomicU64,
    /// Notices deleted so far.
    deleted: AtomicU64,
    writer: Mutex<Writer>,
    /// Serialises deletes (rare), so two deletes of one id cannot both succeed.
    delete_lock: Mutex<()>,
    /// uri -> id of live remote notices. Written under `writer` only.
    uris: papaya::HashMap<Box<str>, NoticeId>,
    /// The time each notice is placed by (see `order.rs`).
    order: OrderKeys,
    /// The clock `published` times are clamped to.
    clock: Clock,
    durable: Durable,
    scrubs: Scrubs,
    recovery: RecoveryReport,
    _lock: DirLock,
}

impl NoticeLog {
    /// Opens the log in `dir` (created if missing), recovering from whatever state a
    /// crash left: a torn tail is cut off and reported in [`NoticeLog::recovery`];
    /// damage anywhere else is an [`Error::Corrupt`] naming the file and offset.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<NoticeLog> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let lock = DirLock::acquire(&dir)?;
        let scan = recover::scan_dir(&dir, true)?;
        if let Some(damage) = scan.first_damage() {
            return Err(Error::corrupt(
                damage.file.clone(),
                damage.offset,
                damage.reason.clone(),
            ));
        }
        let mut recovery = RecoveryReport {
            segments: scan.segments.len(),
            torn_tail: scan
                .problems
                .iter()
                .find(|p| p.recoverable && p.reason.starts_with("torn tail"))
                .cloned(),
            ..Default::default()
        };

        let segments = boxcar::Vec::new();
        let index = boxcar::Vec::new();
        let mut to_scrub = Vec::new();
        let mut writer = Writer {
            slot: 0,
            offset: SEGMENT_HEADER_BYTES as u64,
            next_id: 1,
            buf: Vec::new(),
        };
        let count = scan.segments.len();
        for (slot, found) in scan.segments.into_iter().enumerate() {
            let recover::Found { segment, scan: s } = found;
            if slot + 1 == count {
                if let super::scan::Tail::Torn { bytes, .. } = s.tail {
                    // Zero the torn bytes so the next append starts on a clean tail.
                    let zeros = vec![0u8; bytes as usize];
                    fileio::write_all_at(&segment.file, &segment.path, &zeros, s.end).context(
                        || format!("cutting off the torn tail of {}", segment.path.display()),
                    )?;
                }
                // The records the scan read may be in the page cache only (after a
                // process crash): synced first, then the mark set to their end (down,
                // where it claimed records that never reached the disk), synced, so
                // appends start from a mark that claims exactly what is on disk.
                fileio::sync_data(&segment.file, &segment.path)
                    .and_then(|()| segment.mark_synced(s.end))
                    .and_then(|()| fileio::sync_data(&segment.file, &segment.path))
                    .context(|| format!("syncing the tail of {}", segment.path.display()))?;
                writer.slot = slot;
                writer.offset = s.end;
            }
            writer.next_id = s.next_id;
            for record in &s.records {
                match record.tag {
                    Tag::Notice | Tag::Scrubbed => {
                        let mut entry = loc(slot, record.offset);
                        if scan.tombstoned.contains(&record.id) {
                            entry |= DELETED;
                            recovery.deleted += 1;
                            if record.tag == Tag::Notice || record.scrub_unfinished {
                                to_scrub.push(entry);
                            }
                        }
                        let at = index.push(AtomicU64::new(entry));
                        assert_eq!(at as u64 + 1, record.id, "scan checked ids are contiguous");
                    }
                    Tag::Tombstone | Tag::GraphOp | Tag::Registry | Tag::Outbox => {}
                }
            }
            segments.push(segment);
        }
        if segments.count() == 0 {
            let header = SegmentHeader {
                index: 1,
                first_id: 1,
                segment_bytes: config.segment_bytes,
            };
            segments.push(Segment::create(&dir, header)?);
            recovery.segments = 1;
        }
        let notices = writer.next_id - 1;
        recovery.notices = notices;
        recovery.scrubs_finished = to_scrub.len() as u64;
        let log = NoticeLog {
            dir,
            config,
            segments,
            index,
            published: AtomicU64::new(notices),
            deleted: AtomicU64::new(recovery.deleted),
            durable: Durable::new(),
            writer: Mutex::new(writer),
            delete_lock: Mutex::new(()),
            uris: papaya::HashMap::new(),
            order: OrderKeys::default(),
            clock: Clock::system(),
            scrubs: Scrubs::default(),
            recovery,
            _lock: lock,
        };
        // Everything scanned was synced above.
        {
            let w = log.writer.lock();
            log.durable.mark_synced(w.lsn());
        }
        // No reader exists yet, so unfinished scrubs can run right away.
        for entry in &to_scrub {
            log.scrub(*entry)?;
        }
        if !to_scrub.is_empty() {
            log.sync()?;
        }
        log.rebuild_uris();
        log.rebuild_order();
        Ok(log)
    }

    /// The keys of the order, in id order, as `append` computed them: a version-3
    /// record's own time; else `created_at_ms` raised to the highest key before it (a
    /// raised time was written as version 3, so this is the time computed then). A
    /// deleted notice's time is gone: it counts as in order and raises nothing, which
    /// moves no other notice's key.
    fn rebuild_order(&self) {
        for id in 1..=self.len() {
            let high = self.order.high();
            let key = self.get(NoticeId(id)).map_or(high, |n| {
                n.explicit_ms()
                    .unwrap_or_else(|| n.created_at_ms().min(super::order::KEY_MAX).max(high))
            });
            self.order.push(id, key);
        }
    }

    /// The order keys, for the streams (see `order.rs`).
    pub(crate) fn order(&self) -> &OrderKeys {
        &self.order
    }

    /// Sets the clock `published` times are clamped to (the engine's).
    pub(crate) fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Validates `notice`, fills in the authors of the notices it answers and repeats,
    /// and encodes it (as version 3 with `published_ms` when given).
    fn prepare(
        &self,
        notice: &NewNotice,
        limits: Limits,
        published_ms: Option<u64>,
    ) -> Result<(rkyv::util::AlignedVec, u8)> {
        self.prepare_time(notice, limits, published_ms, true)
    }

    /// [`Self::prepare`]; `given` false for a raised `created_at_ms`.
    fn prepare_time(
        &self,
        notice: &NewNotice,
        limits: Limits,
        published_ms: Option<u64>,
        given: bool,
    ) -> Result<(rkyv::util::AlignedVec, u8)> {
        let mut validated = notice::validate(notice, limits)?;
        let stored = &mut validated.stored;
        // The authors of the notices answered and repeated are stored with the
        // notice, so the reply and repeat rules still hold once those are deleted.
        for (what, target, author) in [
            ("reply_to", notice.reply_to, &mut stored.reply_to_author),
            ("repeat_of", notice.repeat_of, &mut stored.repeat_of_author),
        ] {
            if let Some(target) = target {
                let Some(parent) = self.get(target) else {
                    return Err(Error::invalid(format!(
                        "{what} names {target}, which is not in the log"
                    )));
                };
                *author = Some(parent.author().0);
            }
        }
        let (bytes, version) = notice::encode_time(validated, published_ms, given);
        let capacity = self.config.segment_bytes as usize - SEGMENT_HEADER_BYTES;
        if frame::record_bytes(bytes.len()) > capacity {
            return Err(Error::invalid(format!(
                "the notice takes {} bytes, more than a segment holds",
                bytes.len()
            )));
        }
        Ok((bytes, version))
    }

    fn rebuild_uris(&self) {
        let uris = self.uris.pin();
        for notice in self.iter_from(NoticeId(1)) {
            if let Some(uri) = notice.uri() {
                uris.insert(uri.into(), notice.id());
            }
        }
    }

    /// Checks every record of the log in `dir` without changing anything (the log may
    /// be open elsewhere): frames, checksums, archives, ids, tombstones.
    pub fn check(dir: impl AsRef<Path>) -> Result<CheckReport> {
        super::check::check_dir(dir.as_ref())
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// What `open` found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Notices appended so far, deleted ones included: the last id handed out.
    pub fn len(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Whether no notice was ever appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts of the log's contents.
    pub fn stats(&self) -> LogStats {
        let segments = self.segments.count();
        LogStats {
            notices: self.len(),
            deleted: self.deleted.load(Ordering::Relaxed),
            segments,
            segment_bytes_total: self.segments.iter().map(|(_, s)| s.len() as u64).sum(),
        }
    }

    /// Appends one notice and returns its id, once it is durable as the configured
    /// [`Durability`] says. Nothing is written when the notice is invalid.
    pub fn append(&self, notice: &NewNotice) -> Result<NoticeId> {
        let ids = self.append_batch(std::slice::from_ref(notice))?;
        Ok(ids[0])
    }

    /// Appends notices with consecutive ids, with one durability wait for all. Either
    /// every notice is valid and all are appended, or nothing is written.
    pub fn append_batch(&self, notices: &[NewNotice]) -> Result<Vec<NoticeId>> {
        self.durable.check()?;
        let limits = Limits {
            body_bytes_max: self.config.body_bytes_max,
        };
        let capacity = self.config.segment_bytes as usize - SEGMENT_HEADER_BYTES;
        let mut encoded = Vec::with_capacity(notices.len());
        let now_ms = self.clock.now_ms();
        for (i, notice) in notices.iter().enumerate() {
            let published = notice
                .published
                .map(|p| clamp_published(p, now_ms))
                .transpose()?;
            if let Some(uri) = &notice.uri
                && notices[..i].iter().any(|n| n.uri.as_ref() == Some(uri))
            {
                return Err(Error::invalid(format!(
                    "uri {uri:?} appears twice in the batch"
                )));
            }
            let (bytes, version) = self.prepare(notice, limits, published)?;
            encoded.push((bytes, version, published));
        }
        if encoded.is_empty() {
            return Ok(Vec::new());
        }

        let writing = self.durable.writing();
        let mut writer = self.writer.lock();
        // uris are inserted under `writer` only, so this check cannot race an insert.
        let remote = notices.iter().any(|n| n.uri.is_some());
        if remote {
            let uris = self.uris.pin();
            for notice in notices {
                if let Some(existing) = notice.uri.as_deref().and_then(|u| uris.get(u)) {
                    return Err(Error::DuplicateUri {
                        existing: *existing,
                    });
                }
            }
        }
        // Targets checked again under the lock: a delete that wrote its tombstone since
        // the check above (it takes this lock to write it) refuses the batch here.
        for notice in notices {
            for (what, target) in [
                ("reply_to", notice.reply_to),
                ("repeat_of", notice.repeat_of),
            ] {
                if let Some(target) = target
                    && self
                        .entry(target)
                        .is_none_or(|e| e & (DELETED | DELETING) != 0)
                {
                    return Err(Error::invalid(format!(
                        "{what} names {target}, which was deleted"
                    )));
                }
            }
        }
        // The keys of the order: a local post's time is raised to the highest stored
        // before it, and then written with the notice (version 3), so that a reopen
        // finds the same key whatever was deleted since.
        let mut high = self.order.high();
        let mut keys = Vec::with_capacity(encoded.len());
        for (notice, (bytes, version, published)) in notices.iter().zip(&mut encoded) {
            let created = notice.created_at_ms.min(super::order::KEY_MAX);
            let key = match *published {
                Some(key) => key,
                None if created >= high => created,
                None => {
                    (*bytes, *version) = self.prepare_time(notice, limits, Some(high), false)?;
                    high
                }
            };
            high = high.max(key);
            keys.push(key);
        }
        let first = writer.next_id;
        // A batch that does not fit the rest of the segment but fits a new one starts in
        // the new one, so that a failed roll (disk full) comes before any record of the
        // batch is written: the log stays as it was and usable, as for a single notice.
        let batch_bytes: u64 = encoded
            .iter()
            .map(|(bytes, _, _)| frame::record_bytes(bytes.len()) as u64)
            .sum();
        if writer.offset + batch_bytes > self.segments[writer.slot].len() as u64
            && batch_bytes <= capacity as u64
        {
            self.roll(&mut writer)?;
        }
        for ((bytes, version, _), &key) in encoded.iter().zip(&keys) {
            let id = writer.next_id;
            let offset = match self.write_record(&mut writer, Tag::Notice, *version, id, bytes) {
                Ok(offset) => offset,
                // Part of the batch is written and indexed but not published, and the
                // next append would publish it: refuse writes until a reopen instead
                // (only a batch larger than a segment can fail half-way at a roll).
                Err(Error::Io { context, source }) if id > first => {
                    return Err(self.durable.poison(context, source));
                }
                Err(e) => return Err(e),
            };
            let at = self.index.push(AtomicU64::new(loc(writer.slot, offset)));
            debug_assert_eq!(at as u64 + 1, id, "index positions follow ids");
            self.order.push(id, key);
            writer.next_id += 1;
        }
        let last = writer.next_id - 1;
        if remote {
            let uris = self.uris.pin();
            for (i, notice) in notices.iter().enumerate() {
                if let Some(uri) = &notice.uri {
                    uris.insert(uri.as_str().into(), NoticeId(first + i as u64));
                }
            }
        }
        self.published.store(last, Ordering::Release);
        let end = writer.lsn();
        drop(writer);
        drop(writing);
        self.wait_durable(end, false)?;
        Ok((first..=last).map(NoticeId).collect())
    }

    /// Writes one record at the writer's position (rolling to a new segment when it
    /// does not fit) and returns its offset. A failed write poisons the log.
    fn write_record(
        &self,
        w: &mut Writer,
        tag: Tag,
        version: u8,
        id: u64,
        payload: &[u8],
    ) -> Result<u64> {
        let total = frame::record_bytes(payload.len());
        if w.offset + total as u64 > self.segments[w.slot].len() as u64 {
            self.roll(w)?;
        }
        let segment = &self.segments[w.slot];
        // [len: u32 LE][crc32c: u32 LE][version: u8][tag: u8][id: u48 LE][payload][zero pad]
        w.buf.clear();
        w.buf
            .extend_from_slice(&frame::encode_header_version(tag, version, id, payload));
        w.buf.extend_from_slice(payload);
        w.buf.resize(total, 0);
        let offset = w.offset;
        debug_assert!(
            offset as usize + total <= segment.len(),
            "the record fits the segment"
        );
        if let Err(e) = fileio::write_all_at(&segment.file, &segment.path, &w.buf, offset) {
            return Err(self.durable.poison(
                format!(
                    "writing {} bytes at {offset} of {}",
                    total,
                    segment.path.display()
                ),
                e,
            ));
        }
        w.offset += total as u64;
        Ok(offset)
    }

    /// Seals the current segment (synced, whatever the durability mode, so that a
    /// sealed segment never has a torn tail) and starts the next one.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        let old = &self.segments[w.slot];
        // Its records synced, then its mark at its end, synced: the last segment it
        // stays if the next cannot be created, and its records are acknowledged by
        // this seal. The mark goes down only after what it claims (see `wait_durable`).
        if let Err(e) = self
            .durable
            .sync_file(&old.file, &old.path)
            .and_then(|()| old.mark_synced(w.offset))
            .and_then(|()| self.durable.sync_file(&old.file, &old.path))
        {
            return Err(self
                .durable
                .poison(format!("fdatasync of {}", old.path.display()), e));
        }
        self.durable.mark_synced(w.lsn());
        let header = SegmentHeader {
            index: old.header.index + 1,
            first_id: w.next_id,
            segment_bytes: self.config.segment_bytes,
        };
        // On failure (disk full) nothing changed: the log stays readable and the next
        // append tries again.
        let segment = Segment::create(&self.dir, header)?;
        w.slot = self.segments.push(segment);
        w.offset = SEGMENT_HEADER_BYTES as u64;
        Ok(())
    }

    /// Waits until everything before `upto` is durable, per the durability mode
    /// (`force`: whatever the mode).
    fn wait_durable(&self, upto: Lsn, force: bool) -> Result<()> {
        let delay = match self.config.durability {
            Durability::Buffered if !force => return Ok(()),
            Durability::Buffered | Durability::Always => None,
            Durability::GroupCommit { max_delay } => Some(max_delay),
        };
        self.durable.wait(upto, delay, || {
            let (target, slot, segment) = {
                let w = self.writer.lock();
                (w.lsn(), w.slot, &self.segments[w.slot])
            };
            // The mark claims what an earlier sync of this segment completed, never
            // what this one covers: its page can reach the disk before the records'
            // pages do, so a mark written for this sync could claim records a power
            // loss then lost. This sync makes it durable; the records of this sync
            // are claimed by the next one.
            let confirmed = self.durable.synced();
            let mark = if (confirmed >> 32) as usize == slot {
                confirmed & u64::from(u32::MAX)
            } else {
                SEGMENT_HEADER_BYTES as u64
            };
            let name = || segment.path.display().to_string();
            segment
                .mark_synced(mark)
                .map_err(|e| (format!("{} (writing its synced mark first)", name()), e))?;
            self.durable
                .sync_file(&segment.file, &segment.path)
                .map(|()| target)
                .map_err(|e| (name(), e))
        })
    }

    /// Makes every appended notice and every delete durable, and finishes the scrubs
    /// that no reader holds up any more.
    pub fn sync(&self) -> Result<()> {
        self.durable.check()?;
        self.drive_scrubs(None)?;
        let end = self.writer.lock().lsn();
        self.wait_durable(end, true)?;
        // The mark lags one sync behind (see `wait_durable`): bring it up to what is
        // on disk now, so that damage to these records later is reported, not cut.
        let (slot, segment) = {
            let w = self.writer.lock();
            (w.slot, &self.segments[w.slot])
        };
        let confirmed = self.durable.synced();
        if (confirmed >> 32) as usize == slot {
            let mark = confirmed & u64::from(u32::MAX);
            if segment.marked() != mark
                && let Err(e) = segment
                    .mark_synced(mark)
                    .and_then(|()| self.durable.sync_file(&segment.file, &segment.path))
            {
                return Err(self
                    .durable
                    .poison(format!("syncing the mark of {}", segment.path.display()), e));
            }
        }
        // Scrubs are not waited for by appends; sync the files they touched.
        let mut slots: Vec<usize> = std::mem::take(&mut *self.scrubs.dirty_slots.lock());
        slots.sort_unstable();
        slots.dedup();
        for slot in slots {
            let segment = &self.segments[slot];
            if let Err(e) = self.durable.sync_file(&segment.file, &segment.path) {
                return Err(self
                    .durable
                    .poison(format!("fdatasync of {}", segment.path.display()), e));
            }
        }
        Ok(())
    }

    fn entry(&self, id: NoticeId) -> Option<u64> {
        if id.0 == 0 || id.0 > self.published.load(Ordering::Acquire) {
            return None;
        }
        Some(self.index.get((id.0 - 1) as usize)?.load(Ordering::Acquire))
    }

    /// Hints the CPU to bring in what `get` will read for each of `ids` (index
    /// entries first, then the records' lines), so that the misses of a page's worth
    /// of notices overlap instead of following one another.
    pub(crate) fn prefetch(&self, ids: &[u64]) {
        /// Lines of a record prefetched (records of short notices are 4 to 6 lines).
        const RECORD_LINES: usize = 5;
        let published = self.published.load(Ordering::Acquire);
        for &id in ids {
            if (1..=published).contains(&id)
                && let Some(entry) = self.index.get((id - 1) as usize)
            {
                crate::timeline::prefetch(entry);
            }
        }
        for &id in ids {
            let Some(entry) = self.entry(NoticeId(id)) else {
                continue;
            };
            if entry & DELETED != 0 {
                continue;
            }
            if let Some(segment) = self.segments.get(loc_slot(entry)) {
                let offset = loc_offset(entry) as usize;
                for line in 0..RECORD_LINES {
                    let at = offset + line * 64;
                    if at < segment.len() {
                        crate::timeline::prefetch(segment.ptr_at(at));
                    }
                }
            }
        }
    }

    /// The notice `id`, read in place; `None` when it does not exist or was deleted.
    pub fn get(&self, id: NoticeId) -> Option<NoticeRef<'_>> {
        // Pin before reading the entry: a delete that this read does not see as deleted
        // defers its scrub until this pin is dropped.
        let pin = crossbeam_epoch::pin();
        let entry = self.entry(id)?;
        if entry & DELETED != 0 {
            return None;
        }
        let segment = self.segments.get(loc_slot(entry))?;
        let offset = loc_offset(entry) as usize;
        // SAFETY: the record at `offset` was written before `published` covered `id`
        // (Release/Acquire), its header's length bytes never change afterwards (a
        // scrub rewrites the tag byte and the payload only), and the header lies
        // inside the map (the writer checked the record fits the segment).
        let (len, version) = unsafe {
            let header = std::slice::from_raw_parts(segment.ptr_at(offset), HEADER_BYTES);
            (
                u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize,
                header[8],
            )
        };
        debug_assert!(offset + HEADER_BYTES + len <= segment.len());
        // SAFETY: the payload is a complete archive that was encoded by this process
        // or validated by recovery, 16-byte aligned (records and the segment header are
        // multiples of 16 and the map is page aligned), inside the map; and it stays
        // unchanged while `pin` lives, because a scrub waits for every pin taken before
        // the deleted bit was set, and this pin saw the bit clear.
        let archived = unsafe {
            let payload = std::slice::from_raw_parts(segment.ptr_at(offset + HEADER_BYTES), len);
            notice::access_trusted(payload, version)
        };
        Some(NoticeRef::new(id, archived, self.order.key(id.0), pin))
    }

    /// The id of the stored remote notice with this uri.
    pub fn find_uri(&self, uri: &str) -> Option<NoticeId> {
        self.uris.pin().get(uri).copied()
    }

    /// Iterates over the live notices from `from` on, in id order, up to the last notice
    /// published when the iterator was made.
    pub fn iter_from(&self, from: NoticeId) -> Iter<'_> {
        Iter {
            log: self,
            next: from.0.max(1),
            end: self.len(),
        }
    }

    /// Deletes notice `id`: from now on `get` returns `None` (also after a reopen), and
    /// its bytes (body, tags, uri, everything) are overwritten with zeros in the segment
    /// file as soon as no [`NoticeRef`] taken before the delete is alive; if one is, the
    /// scrub happens at a later `delete` or `sync`, when the log is dropped, or at the
    /// next open.
    pub fn delete(&self, id: NoticeId) -> Result<()> {
        self.durable.check()?;
        let _one_at_a_time = self.delete_lock.lock();
        let entry = match self.entry(id) {
            Some(entry) if entry & DELETED == 0 => entry,
            _ => return Err(Error::UnknownNotice { id }),
        };
        let uri = self.get(id).and_then(|n| n.uri().map(str::to_owned));
        let end = {
            let mut writer = self.writer.lock();
            self.write_record(
                &mut writer,
                Tag::Tombstone,
                frame::VERSION,
                id.0,
                &id.0.to_le_bytes(),
            )?;
            self.index[(id.0 - 1) as usize].fetch_or(DELETING, Ordering::Release);
            writer.lsn()
        };
        // The tombstone is on disk before anything is scrubbed, whatever the mode: a
        // scrubbed record without its tombstone would read as corruption.
        self.wait_durable(end, true)?;
        let slot = &self.index[(id.0 - 1) as usize];
        slot.fetch_or(DELETED, Ordering::Release);
        self.deleted.fetch_add(1, Ordering::Relaxed);
        if let Some(uri) = uri {
            let _writer = self.writer.lock();
            self.uris.pin().remove(uri.as_str());
        }
        self.scrubs.pending.lock().push(entry);
        let ready = Arc::clone(&self.scrubs.ready);
        let pin = crossbeam_epoch::pin();
        pin.defer(move || ready.lock().push(entry));
        pin.flush();
        drop(pin);
        drop(_one_at_a_time);
        self.drive_scrubs(Some(entry))
    }

    /// Runs the scrubs that no reader holds up any more. A deferred scrub becomes ready
    /// only once the epoch has advanced twice past its delete, and nothing else
    /// advances the epoch for it (a reader dropping its `NoticeRef` does not), so this
    /// gives the collector a few turns: until `entry` (or every pending scrub) is done,
    /// or 64 turns. A reader still holding a pin stops the advance; then the scrub
    /// stays pending for a later `delete` or `sync`, the drop, or the next open.
    fn drive_scrubs(&self, entry: Option<u64>) -> Result<()> {
        for _ in 0..64 {
            let done = {
                let pending = self.scrubs.pending.lock();
                entry.map_or(pending.is_empty(), |e| !pending.contains(&e))
            };
            if done {
                break;
            }
            crossbeam_epoch::pin().flush();
            self.run_ready_scrubs()?;
            std::thread::yield_now();
        }
        Ok(())
    }

    fn run_ready_scrubs(&self) -> Result<()> {
        let ready: Vec<u64> = std::mem::take(&mut *self.scrubs.ready.lock());
        for entry in ready {
            self.scrub(entry)?;
            self.scrubs.pending.lock().retain(|e| *e != entry);
        }
        Ok(())
    }

    /// Overwrites a deleted record: first its tag byte (a single-byte write, atomic on
    /// the media we assume), synced, then its payload with zeros. A crash in between
    /// leaves a scrubbed-tagged record with old bytes, which recovery zeroes again; the
    /// sync keeps the zeros from reaching the disk before the tag (a notice-tagged
    /// record with a zeroed payload would read as corruption).
    fn scrub(&self, entry: u64) -> Result<()> {
        let segment = &self.segments[loc_slot(entry)];
        let offset = loc_offset(entry);
        let mut header = [0u8; HEADER_BYTES];
        let io = segment
            .file
            .read_exact_at(&mut header, offset)
            .and_then(|()| {
                let len = frame::decode_header(&header).len as usize;
                let path = &segment.path;
                let tag_at = offset + TAG_OFFSET as u64;
                fileio::write_all_at(&segment.file, path, &[Tag::Scrubbed as u8], tag_at)?;
                self.durable.sync_file(&segment.file, path)?;
                let zeros = vec![0u8; len];
                fileio::write_all_at(&segment.file, path, &zeros, offset + HEADER_BYTES as u64)
            });
        if let Err(e) = io {
            return Err(self.durable.poison(
                format!(
                    "scrubbing the record at {offset} of {}",
                    segment.path.display()
                ),
                e,
            ));
        }
        self.scrubs.dirty_slots.lock().push(loc_slot(entry));
        Ok(())
    }
}

impl Drop for NoticeLog {
    fn drop(&mut self) {
        // No NoticeRef can outlive `&self`, so every pending scrub may run now.
        let pending: Vec<u64> = std::mem::take(&mut *self.scrubs.pending.lock());
        for entry in pending {
            if self.scrub(entry).is_err() {
                // Poisoned; the next open finishes the scrub from the tombstone.
                break;
            }
        }
        let _ = self.sync();
    }
}

/// Live notices in id order; see [`NoticeLog::iter_from`].
pub struct Iter<'a> {
    log: &'a NoticeLog,
    next: u64,
    end: u64,
}

impl<'a> Iterator for Iter<'a> {
    type Item = NoticeRef<'a>;

    fn next(&mut self) -> Option<NoticeRef<'a>> {
        while self.next <= self.end {
            let id = NoticeId(self.next);
            self.next += 1;
            if let Some(notice) = self.log.get(id) {
                return Some(notice);
            }
        }
        None
    }
}
