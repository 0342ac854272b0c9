//! The global ids of copies deleted at their origin, kept so that a copy delivered
//! again after its delete (a lost ack, a redelivery after a crash that overtook the
//! delete) is not stored again: the notice log frees a uri when its notice is
//! deleted, so the uri alone cannot refuse it.
//!
//! `DIR/cluster/deleted` is a header and a sequence of 14-byte records, each synced
//! before the delete message is acked:
//!
//! ```text
//! header:  [magic: "FCDEL\0\0\x01" 8 bytes]
//! record:  [partition: u16 LE][local id: u64 LE][crc32c of the 10 bytes before: u32 LE]
//! ```
//!
//! Reading stops at the first short or damaged record (a torn append), which is cut
//! off and overwritten by the next append. A file shorter than its header that starts
//! like it (a torn creation) is written again; any other header is an error.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use feedcore::NoticeId;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::partition::GlobalId;

const MAGIC: &[u8; 8] = b"FCDEL\0\0\x01";
const RECORD_BYTES: usize = 14;

/// The deleted global ids, in memory and in their file.
pub(crate) struct Tombstones {
    ids: Mutex<(HashSet<GlobalId>, File)>,
}

fn encode(id: GlobalId) -> [u8; RECORD_BYTES] {
    let mut out = [0u8; RECORD_BYTES];
    out[..2].copy_from_slice(&(id.partition as u16).to_le_bytes());
    out[2..10].copy_from_slice(&id.local.0.to_le_bytes());
    let crc = crc32c::crc32c(&out[..10]);
    out[10..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(record: &[u8]) -> Option<GlobalId> {
    let crc = u32::from_le_bytes(record.get(10..14)?.try_into().ok()?);
    if crc32c::crc32c(record.get(..10)?) != crc {
        return None;
    }
    let partition = u16::from_le_bytes(record[..2].try_into().ok()?);
    let local = u64::from_le_bytes(record[2..10].try_into().ok()?);
    Some(GlobalId::new(u32::from(partition), NoticeId(local)))
}

impl Tombstones {
    /// Opens (or creates) `dir/deleted`.
    pub(crate) fn open(dir: &Path) -> Result<Tombstones> {
        let path = dir.join("deleted");
        let io = |what: &str, source| Error::Io {
            what: format!("{what} {}", path.display()),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("reading", e))?;
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
            file.set_len(0).map_err(|e| io("emptying", e))?;
            file.seek(SeekFrom::Start(0))
                .map_err(|e| io("seeking in", e))?;
            file.write_all(MAGIC)
                .map_err(|e| io("writing the header of", e))?;
            file.sync_all().map_err(|e| io("syncing", e))?;
            bytes = MAGIC.to_vec();
        }
        if !bytes.starts_with(MAGIC) {
            return Err(io(
                "reading",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "not a file of deleted notices (its header is not FCDEL, version 1)",
                ),
            ));
        }
        let mut ids = HashSet::new();
        let mut good = MAGIC.len();
        for record in bytes[MAGIC.len()..].chunks(RECORD_BYTES) {
            match decode(record) {
                Some(id) if record.len() == RECORD_BYTES => {
                    ids.insert(id);
                    good += RECORD_BYTES;
                }
                _ => break,
            }
        }
        file.seek(SeekFrom::Start(good as u64))
            .map_err(|e| io("seeking in", e))?;
        file.set_len(good as u64)
            .map_err(|e| io("cutting the torn tail of", e))?;
        Ok(Tombstones {
            ids: Mutex::new((ids, file)),
        })
    }

    /// Whether `id` was deleted.
    pub(crate) fn contains(&self, id: GlobalId) -> bool {
        self.ids.lock().0.contains(&id)
    }

    /// Records that `id` was deleted, durably.
    pub(crate) fn insert(&self, id: GlobalId) -> Result<()> {
        let mut guard = self.ids.lock();
        let (ids, file) = &mut *guard;
        if ids.contains(&id) {
            return Ok(());
        }
        let io = |source| Error::Io {
            what: "recording a deleted notice".into(),
            source,
        };
        file.write_all(&encode(id)).map_err(io)?;
        file.sync_data().map_err(io)?;
        ids.insert(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_ids_survive_a_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tombstones::open(dir.path()).unwrap();
        let (a, b) = (GlobalId::new(1, NoticeId(5)), GlobalId::new(2, NoticeId(7)));
        t.insert(a).unwrap();
        t.insert(a).unwrap();
        t.insert(b).unwrap();
        drop(t);
        let path = dir.path().join("deleted");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (MAGIC.len() + 2 * RECORD_BYTES) as u64
        );
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap(); // a torn third record
        drop(f);
        let t = Tombstones::open(dir.path()).unwrap();
        assert!(t.contains(a) && t.contains(b));
        assert!(!t.contains(GlobalId::new(1, NoticeId(6))));
        let c = GlobalId::new(0, NoticeId(1));
        t.insert(c).unwrap();
        drop(t);
        let t = Tombstones::open(dir.path()).unwrap();
        assert!(t.contains(c), "the torn tail was overwritten");
    }

    #[test]
    fn a_torn_creation_is_redone_and_a_foreign_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deleted");
        std::fs::write(&path, &MAGIC[..3]).unwrap();
        let t = Tombstones::open(dir.path()).unwrap();
        t.insert(GlobalId::new(1, NoticeId(2))).unwrap();
        drop(t);
        assert!(
            Tombstones::open(dir.path())
                .unwrap()
                .contains(GlobalId::new(1, NoticeId(2)))
        );
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(Tombstones::open(dir.path()).is_err());
    }
}
