//! One process owns a directory: an advisory lock on a `LOCK` file inside it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Held for as long as a store is open; the lock is released when the file is closed,
/// also when the process dies, so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, or fails at once with [`Error::Locked`].
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let lock_file: PathBuf = dir.join("LOCK");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_file)
            .context(|| format!("opening lock file {}", lock_file.display()))?;
        // flock locks belong to the open file description, so a second open in this
        // same process conflicts too, as it must.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    lock_file,
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", lock_file.display()), e));
            }
        }
        // The pid is for operators only; nothing reads it back.
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .context(|| format!("writing lock file {}", lock_file.display()))?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_in_the_same_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(Error::Locked { .. })
        ));
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
