//! The outbox file, `DIR/outbox/outbox.log`: append-only records (see `record.rs`),
//! read whole at open, where a torn tail is cut off and the file is rewritten with
//! only what is still pending when most of it is history. Every operation goes
//! through `crate::fileio`, so the fault-injection tests reach it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::record::{self, Record};
use crate::error::{Error, IoContext, Result};
use crate::fileio;
use crate::log::frame;

/// The outbox directory inside the store directory.
pub(crate) const DIR_NAME: &str = "outbox";
/// The file's name inside it.
pub(crate) const FILE_NAME: &str = "outbox.log";
const TMP_NAME: &str = "outbox.log.tmp";

/// What reading a file found, besides the records handed to the caller.
pub(crate) type Read = frame::Scanned;

/// Reads the records of `bytes` (the file `path`) in order into `f`. A record that
/// does not decode is a torn tail when no valid record follows it, and
/// [`Error::Corrupt`] when one does.
pub(crate) fn read_bytes(path: &Path, bytes: &[u8], mut f: impl FnMut(Record)) -> Result<Read> {
    frame::scan_records(path, bytes, "outbox", record::decode, |_, r| {
        f(r);
        Ok(())
    })
}

/// Reads the file `path` (missing: empty).
pub(crate) fn read(path: &Path, f: impl FnMut(Record)) -> Result<Read> {
    match std::fs::read(path) {
        Ok(bytes) => read_bytes(path, &bytes, f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Read::default()),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// The open file: where the next record goes and its sequence number.
pub(crate) struct OutboxFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    synced_len: u64,
    seq: u64,
    /// Set by a failed write or sync: writes are refused until reopen.
    poisoned: Option<String>,
    buf: Vec<u8>,
}

impl OutboxFile {
    /// Opens (or creates) the file in the store directory `store`, reading its records
    /// into `f` and cutting a torn tail off.
    pub(crate) fn open(store: &Path, f: impl FnMut(Record)) -> Result<(OutboxFile, Read)> {
        let dir = store.join(DIR_NAME);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
            fileio::sync_dir(store).context(|| format!("syncing {}", store.display()))?;
        }
        let path = dir.join(FILE_NAME);
        let read = read(&path, f)?;
        let existed = path.exists();
        let file = fileio::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            &path,
        )
        .context(|| format!("opening {}", path.display()))?;
        if !existed {
            fileio::sync_dir(&dir).context(|| format!("syncing {}", dir.display()))?;
        }
        if read.torn.is_some() {
            fileio::set_len(&file, &path, read.valid_len)
                .and_then(|()| fileio::sync_all(&file, &path))
                .context(|| format!("cutting off the torn tail of {}", path.display()))?;
        }
        let out = OutboxFile {
            dir,
            path,
            file,
            len: read.valid_len,
            synced_len: read.valid_len,
            seq: read.records,
            poisoned: None,
            buf: Vec::new(),
        };
        Ok((out, read))
    }

    /// Bytes in the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn poison(&mut self, cause: String, e: std::io::Error) -> Error {
        self.poisoned = Some(cause.clone());
        Error::io(cause, e)
    }

    /// Appends `records` in one write; with `sync`, durable before it returns.
    pub(crate) fn append(&mut self, records: &[Record], sync: bool) -> Result<()> {
        if let Some(cause) = &self.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for (i, r) in records.iter().enumerate() {
            record::encode(self.seq + 1 + i as u64, r, &mut buf);
        }
        let written = fileio::write_all_at(&self.file, &self.path, &buf, self.len);
        self.buf = buf;
        if let Err(e) = written {
            let cause = format!("writing to {}", self.path.display());
            return Err(self.poison(cause, e));
        }
        self.len += self.buf.len() as u64;
        self.seq += records.len() as u64;
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if self.synced_len == self.len {
            return Ok(());
        }
        if let Err(e) = fileio::sync_data(&self.file, &self.path) {
            let cause = format!("fdatasync of {}", self.path.display());
            return Err(self.poison(cause, e));
        }
        self.synced_len = self.len;
        Ok(())
    }

    /// Replaces the file with one holding `records` alone: written beside it,
    /// synced, renamed over it, the directory synced. A failure before the rename
    /// leaves the old file in place.
    pub(crate) fn rewrite(&mut self, records: &[Record]) -> Result<()> {
        let tmp = self.dir.join(TMP_NAME);
        let mut buf = Vec::new();
        for (i, r) in records.iter().enumerate() {
            record::encode(i as u64 + 1, r, &mut buf);
        }
        let file = fileio::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
            &tmp,
        )
        .context(|| format!("creating {}", tmp.display()))?;
        fileio::write_all_at(&file, &tmp, &buf, 0)
            .and_then(|()| fileio::sync_data(&file, &tmp))
            .context(|| format!("writing {}", tmp.display()))?;
        fileio::rename(&tmp, &self.path)
            .and_then(|()| fileio::sync_dir(&self.dir))
            .context(|| format!("renaming {} over {}", tmp.display(), self.path.display()))?;
        self.file = file;
        self.len = buf.len() as u64;
        self.synced_len = self.len;
        self.seq = records.len() as u64;
        Ok(())
    }
}
