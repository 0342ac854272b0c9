//! The file operations of the notice log and the graph, in one place: each asks
//! `crate::faults` first, so tests can fail any of them (EIO, ENOSPC, a short write, a
//! rename that happened but reported failure) and rebuild the files as a power loss
//! would leave them. Without an installed plan each costs one relaxed atomic load.
//!
//! Reads of mapped files are not here: a mapped segment or snapshot is preallocated
//! or written whole before it is mapped, and never grows while mapped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::faults::{self, IoOp, Outcome};

/// Opens (or creates) `path` with `options`.
pub(crate) fn open(options: &OpenOptions, path: &Path) -> io::Result<File> {
    match faults::before(IoOp::Open, path, 0) {
        Outcome::Pass => options.open(path),
        Outcome::Fail(e) | Outcome::Short(_, e) => Err(e),
        Outcome::DoThenFail(e) => options.open(path).and(Err(e)),
    }
}

/// Writes all of `buf` at `offset` of `file` (which is `path`).
pub(crate) fn write_all_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
    let outcome = faults::before(IoOp::Write, path, buf.len());
    if faults::recording(path) {
        let mut old = vec![0u8; buf.len()];
        let read = file.read_at(&mut old, offset).unwrap_or(0);
        old.truncate(read);
        old.resize(buf.len(), 0);
        faults::written(path, offset, old);
    }
    match outcome {
        Outcome::Pass => file.write_all_at(buf, offset),
        Outcome::Fail(e) => Err(e),
        Outcome::Short(n, e) => file.write_all_at(&buf[..n], offset).and(Err(e)),
        Outcome::DoThenFail(e) => file.write_all_at(buf, offset).and(Err(e)),
    }
}

/// `fdatasync` of `file` (which is `path`).
pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    sync(IoOp::SyncData, path, || file.sync_data())
}

/// `fsync` of `file` (which is `path`).
pub(crate) fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    sync(IoOp::SyncAll, path, || file.sync_all())
}

fn sync(op: IoOp, path: &Path, run: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    match faults::before(op, path, 0) {
        Outcome::Pass => run().inspect(|()| faults::synced(path)),
        Outcome::Fail(e) | Outcome::Short(_, e) => Err(e),
        // A sync that ran but reported failure: the pages may or may not be on disk,
        // which is what the caller must assume of any failed fsync.
        Outcome::DoThenFail(e) => run().and(Err(e)),
    }
}

/// Makes the directory entries of `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    match faults::before(IoOp::SyncDir, dir, 0) {
        Outcome::Pass => File::open(dir).and_then(|d| d.sync_all()),
        Outcome::Fail(e) | Outcome::Short(_, e) => Err(e),
        Outcome::DoThenFail(e) => File::open(dir).and_then(|d| d.sync_all()).and(Err(e)),
    }
}

/// Renames `from` to `to`.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    match faults::before(IoOp::Rename, to, 0) {
        Outcome::Pass => fs::rename(from, to),
        Outcome::Fail(e) | Outcome::Short(_, e) => Err(e),
        Outcome::DoThenFail(e) => fs::rename(from, to).and(Err(e)),
    }
}

/// Truncates or extends `file` (which is `path`) to `len` bytes.
pub(crate) fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    match faults::before(IoOp::SetLen, path, 0) {
        Outcome::Pass => file.set_len(len),
        Outcome::Fail(e) | Outcome::Short(_, e) => Err(e),
        Outcome::DoThenFail(e) => file.set_len(len).and(Err(e)),
    }
}

/// Removes `path`.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    match faults::before(IoOp::Remove, path, 0) {
        Outcome::Pass => fs::remove_file(path),
        Outcome::Fail(e) | Outcome::Short(_, e) => Err(e),
        Outcome::DoThenFail(e) => fs::remove_file(path).and(Err(e)),
    }
}

/// Reserves the blocks of `file` (which is `path`) up to `bytes`, so later writes
/// cannot hit a full disk.
pub(crate) fn preallocate(file: &File, path: &Path, bytes: u64) -> io::Result<()> {
    match faults::before(IoOp::Allocate, path, 0) {
        Outcome::Pass | Outcome::DoThenFail(_) => {}
        Outcome::Fail(e) | Outcome::Short(_, e) => return Err(e),
    }
    let len = libc::off_t::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    // SAFETY: plain syscall on a file descriptor that `file` keeps open.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate: fall back to a sparse file of the right size;
        // disk-full then shows up at the first write instead.
        libc::EOPNOTSUPP => file.set_len(bytes),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// A sequential writer into a new file, each write going through the seam.
pub(crate) struct SeqWriter<'p> {
    file: File,
    path: &'p Path,
}

impl<'p> SeqWriter<'p> {
    /// Creates (or truncates) `path` for writing.
    pub(crate) fn create(path: &'p Path) -> io::Result<SeqWriter<'p>> {
        let file = open(
            OpenOptions::new().write(true).create(true).truncate(true),
            path,
        )?;
        Ok(SeqWriter { file, path })
    }

    /// The file, once everything is written.
    pub(crate) fn into_file(self) -> File {
        self.file
    }
}

impl Write for SeqWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match faults::before(IoOp::Write, self.path, buf.len()) {
            Outcome::Pass => self.file.write(buf),
            Outcome::Fail(e) => Err(e),
            Outcome::Short(n, e) => self.file.write_all(&buf[..n]).and(Err(e)),
            Outcome::DoThenFail(e) => self.file.write_all(buf).and(Err(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
