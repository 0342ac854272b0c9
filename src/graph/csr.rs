//! The compacted snapshot of the follow graph, in CSR form (offsets plus `u32`
//! neighbour arrays), written once and read through a read-only map.
//!
//! ```text
//! [magic: 8 = "FEEDCSR\0"][format: u32 LE][partitions: u32 LE][users: u64 LE][edges: u64 LE]
//! [seq: u64 LE][blocks: u64 LE][mutes: u64 LE][body crc32c: u32 LE][header crc32c of bytes 0..60: u32 LE]
//! body, every array 8-byte aligned (u32 arrays padded with zeros to 8):
//! [out_offsets: (users + 1) x u64][out_targets: edges x u32]   following, each list ascending
//! [in_offsets:  (users + 1) x u64][in_sources:  edges x u32]   followers, each list ordered by
//!                                                              (follower % partitions, follower)
//! [blocks: blocks x (u32 blocker, u32 blocked)][mutes: mutes x (u32 muter, u32 muted)]
//! ```
//!
//! `seq` is the number of graph operations the snapshot includes: the op log is
//! replayed from `seq + 1`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, IoContext, Result};
use crate::fileio::{self, SeqWriter};
use crate::log::segment::sync_dir;

#[cfg(not(target_endian = "little"))]
compile_error!("feedcore maps little-endian arrays in place: it needs a little-endian host");

const MAGIC: [u8; 8] = *b"FEEDCSR\0";
const FORMAT: u32 = 1;
const HEADER_BYTES: usize = 64;

/// The snapshot as plain arrays, built in memory (by a bulk load or a compaction) and
/// then written out.
#[derive(Debug, Default)]
pub(crate) struct CsrArrays {
    pub(crate) users: u32,
    pub(crate) partitions: u32,
    pub(crate) seq: u64,
    pub(crate) out_offsets: Vec<u64>,
    pub(crate) out_targets: Vec<u32>,
    pub(crate) in_offsets: Vec<u64>,
    pub(crate) in_sources: Vec<u32>,
    pub(crate) blocks: Vec<[u32; 2]>,
    pub(crate) mutes: Vec<[u32; 2]>,
}

impl CsrArrays {
    /// Derives the follower lists from the following lists (each ascending, without
    /// duplicates): walking followers in partition order, then ascending, appends each
    /// to its followee's list, so every follower list comes out grouped by partition
    /// and ascending inside each group, with no sort.
    pub(crate) fn with_followers(
        users: u32,
        partitions: u32,
        out_offsets: Vec<u64>,
        out_targets: Vec<u32>,
    ) -> CsrArrays {
        assert_eq!(
            out_offsets.len(),
            users as usize + 1,
            "one offset per user and one more"
        );
        let mut in_offsets = vec![0u64; users as usize + 1];
        for &b in &out_targets {
            in_offsets[b as usize + 1] += 1;
        }
        for u in 0..users as usize {
            in_offsets[u + 1] += in_offsets[u];
        }
        let mut cursor: Vec<u64> = in_offsets[..users as usize].to_vec();
        let mut in_sources = vec![0u32; out_targets.len()];
        for p in 0..partitions {
            for a in (p..users).step_by(partitions as usize) {
                let range = out_offsets[a as usize] as usize..out_offsets[a as usize + 1] as usize;
                for &b in &out_targets[range] {
                    let at = &mut cursor[b as usize];
                    in_sources[*at as usize] = a;
                    *at += 1;
                }
            }
        }
        CsrArrays {
            users,
            partitions,
            seq: 0,
            out_offsets,
            out_targets,
            in_offsets,
            in_sources,
            blocks: Vec::new(),
            mutes: Vec::new(),
        }
    }

    fn header(&self, body_crc: u32) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        h[12..16].copy_from_slice(&self.partitions.to_le_bytes());
        h[16..24].copy_from_slice(&u64::from(self.users).to_le_bytes());
        h[24..32].copy_from_slice(&(self.out_targets.len() as u64).to_le_bytes());
        h[32..40].copy_from_slice(&self.seq.to_le_bytes());
        h[40..48].copy_from_slice(&(self.blocks.len() as u64).to_le_bytes());
        h[48..56].copy_from_slice(&(self.mutes.len() as u64).to_le_bytes());
        h[56..60].copy_from_slice(&body_crc.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Writes the snapshot as `dir/name` (through a temporary file, synced, renamed,
    /// and the directory synced) and returns its path.
    pub(crate) fn write(&self, dir: &Path, name: &str) -> Result<PathBuf> {
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut body_crc = 0u32;
            let pad = [0u8; 8];
            let parts: [&[u8]; 6] = [
                bytemuck::cast_slice(&self.out_offsets),
                bytemuck::cast_slice(&self.out_targets),
                bytemuck::cast_slice(&self.in_offsets),
                bytemuck::cast_slice(&self.in_sources),
                bytemuck::cast_slice(&self.blocks),
                bytemuck::cast_slice(&self.mutes),
            ];
            for part in parts {
                body_crc = crc32c::crc32c_append(body_crc, part);
                body_crc = crc32c::crc32c_append(
                    body_crc,
                    &pad[..part.len().next_multiple_of(8) - part.len()],
                );
            }
            let mut out = BufWriter::with_capacity(1 << 20, SeqWriter::create(&tmp)?);
            out.write_all(&self.header(body_crc))?;
            for part in parts {
                out.write_all(part)?;
                out.write_all(&pad[..part.len().next_multiple_of(8) - part.len()])?;
            }
            let file = out.into_inner().map_err(|e| e.into_error())?.into_file();
            fileio::sync_all(&file, &tmp)?;
            fileio::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = fileio::remove_file(&tmp);
            return Err(Error::io(
                format!("writing graph snapshot {}", path.display()),
                e,
            ));
        }
        sync_dir(dir)?;
        Ok(path)
    }
}

/// A snapshot mapped from its file (or the empty snapshot of a new graph).
#[derive(Debug)]
pub(crate) struct Csr {
    map: Option<Mmap>,
    pub(crate) users: u32,
    pub(crate) partitions: u32,
    pub(crate) seq: u64,
    out_offsets: Range<usize>,
    out_targets: Range<usize>,
    in_offsets: Range<usize>,
    in_sources: Range<usize>,
    blocks: Range<usize>,
    mutes: Range<usize>,
}

impl Csr {
    /// The snapshot of a graph with no edges.
    pub(crate) fn empty(partitions: u32) -> Csr {
        Csr {
            map: None,
            users: 0,
            partitions,
            seq: 0,
            out_offsets: 0..0,
            out_targets: 0..0,
            in_offsets: 0..0,
            in_sources: 0..0,
            blocks: 0..0,
            mutes: 0..0,
        }
    }

    /// Maps and verifies a snapshot file: header and body checksums, then the structure
    /// (offsets ascending and in range, ids below `users_max`), so that reads never
    /// index out of bounds.
    pub(crate) fn open(path: &Path, users_max: u32) -> Result<Csr> {
        let file =
            File::open(path).context(|| format!("opening graph snapshot {}", path.display()))?;
        // SAFETY: snapshot files are written once, renamed into place, and never
        // modified or truncated afterwards; the directory lock keeps other feedcore
        // processes out.
        let map = unsafe { MmapOptions::new().map(&file) }
            .context(|| format!("mapping graph snapshot {}", path.display()))?;
        let corrupt = |offset: u64, reason: String| Error::corrupt(path, offset, reason);
        if map.len() < HEADER_BYTES || map[0..8] != MAGIC {
            return Err(corrupt(0, "not a feedcore graph snapshot".into()));
        }
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        if crc32c::crc32c(&map[0..60]) != u32_at(60) {
            return Err(corrupt(0, "snapshot header checksum mismatch".into()));
        }
        if u32_at(8) != FORMAT {
            return Err(corrupt(
                8,
                format!("snapshot format {}, this build reads {FORMAT}", u32_at(8)),
            ));
        }
        let partitions = u32_at(12);
        let (users, edges, seq, blocks, mutes) =
            (u64_at(16), u64_at(24), u64_at(32), u64_at(40), u64_at(48));
        if users > u64::from(users_max) || partitions == 0 {
            return Err(corrupt(
                12,
                format!(
                    "snapshot has {users} users and {partitions} partitions; users_max is {users_max}"
                ),
            ));
        }
        let mut at = HEADER_BYTES;
        let mut take = |bytes: u64| -> Option<Range<usize>> {
            let start = at;
            let end = start.checked_add(usize::try_from(bytes).ok()?)?;
            at = end.next_multiple_of(8);
            Some(start..end)
        };
        let ranges = (|| {
            Some([
                take((users + 1).checked_mul(8)?)?,
                take(edges.checked_mul(4)?)?,
                take((users + 1).checked_mul(8)?)?,
                take(edges.checked_mul(4)?)?,
                take(blocks.checked_mul(8)?)?,
                take(mutes.checked_mul(8)?)?,
            ])
        })();
        let Some(
            [
                out_offsets,
                out_targets,
                in_offsets,
                in_sources,
                blocks,
                mutes,
            ],
        ) = ranges
        else {
            return Err(corrupt(16, "snapshot sizes overflow".into()));
        };
        if at != map.len() {
            return Err(corrupt(
                map.len().min(at) as u64,
                format!(
                    "snapshot should be {at} bytes but the file has {}",
                    map.len()
                ),
            ));
        }
        if crc32c::crc32c(&map[HEADER_BYTES..]) != u32_at(56) {
            return Err(corrupt(
                HEADER_BYTES as u64,
                "snapshot body checksum mismatch".into(),
            ));
        }
        let csr = Csr {
            map: Some(map),
            users: users as u32,
            partitions,
            seq,
            out_offsets,
            out_targets,
            in_offsets,
            in_sources,
            blocks,
            mutes,
        };
        csr.verify(users_max)
            .map_err(|reason| corrupt(HEADER_BYTES as u64, reason))?;
        Ok(csr)
    }

    fn verify(&self, users_max: u32) -> Result<(), String> {
        let edges = self.out_targets().len() as u64;
        for (name, offsets, ids) in [
            ("following", self.out_offsets(), self.out_targets()),
            ("followers", self.in_offsets(), self.in_sources()),
        ] {
            if offsets.first() != Some(&0) || offsets.last() != Some(&edges) {
                return Err(format!("{name} offsets do not span the {edges} edges"));
            }
            if offsets.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!("{name} offsets go backwards"));
            }
            if ids.iter().any(|&id| id >= self.users) {
                return Err(format!(
                    "{name} list names a user past the snapshot's {}",
                    self.users
                ));
            }
        }
        let pairs_ok =
            |pairs: &[[u32; 2]]| pairs.iter().all(|[a, b]| *a < users_max && *b < users_max);
        if !pairs_ok(self.blocks()) || !pairs_ok(self.mutes()) {
            return Err("a block or mute names a user past users_max".into());
        }
        Ok(())
    }

    /// The array at `range` of the map. Every range starts 8-byte aligned in a
    /// page-aligned map (checked by `cast_slice`, which panics otherwise: `open` laid
    /// the ranges out that way).
    fn array<T: bytemuck::Pod>(&self, range: &Range<usize>) -> &[T] {
        match &self.map {
            Some(map) if !range.is_empty() => bytemuck::cast_slice(&map[range.clone()]),
            _ => &[],
        }
    }

    fn out_offsets(&self) -> &[u64] {
        self.array(&self.out_offsets)
    }

    pub(crate) fn out_targets(&self) -> &[u32] {
        self.array(&self.out_targets)
    }

    fn in_offsets(&self) -> &[u64] {
        self.array(&self.in_offsets)
    }

    pub(crate) fn in_sources(&self) -> &[u32] {
        self.array(&self.in_sources)
    }

    /// Blocks as `(blocker, blocked)` pairs.
    pub(crate) fn blocks(&self) -> &[[u32; 2]] {
        self.array(&self.blocks)
    }

    /// Mutes as `(muter, muted)` pairs.
    pub(crate) fn mutes(&self) -> &[[u32; 2]] {
        self.array(&self.mutes)
    }

    /// Index range of `u`'s following list in `out_targets`.
    pub(crate) fn out_range(&self, u: u32) -> Range<usize> {
        if u >= self.users {
            return 0..0;
        }
        let offsets = self.out_offsets();
        offsets[u as usize] as usize..offsets[u as usize + 1] as usize
    }

    /// Index range of `u`'s followers in `in_sources`.
    pub(crate) fn in_range(&self, u: u32) -> Range<usize> {
        if u >= self.users {
            return 0..0;
        }
        let offsets = self.in_offsets();
        offsets[u as usize] as usize..offsets[u as usize + 1] as usize
    }

    /// Index range of `u`'s followers in partition `p` (of the snapshot's partitions).
    pub(crate) fn in_partition_range(&self, u: u32, p: u32) -> Range<usize> {
        let range = self.in_range(u);
        let list = &self.in_sources()[range.clone()];
        let parts = self.partitions;
        let start = list.partition_point(|&x| x % parts < p);
        let end = start + list[start..].partition_point(|&x| x % parts == p);
        range.start + start..range.start + end
    }

    /// Whether the snapshot has `a -> b`.
    pub(crate) fn has_edge(&self, a: u32, b: u32) -> bool {
        self.out_targets()[self.out_range(a)]
            .binary_search(&b)
            .is_ok()
    }

    /// Bytes of the mapped file.
    pub(crate) fn file_bytes(&self) -> u64 {
        self.map.as_ref().map_or(0, |m| m.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn arrays() -> CsrArrays {
        // 0 -> 1, 2, 3; 1 -> 3; 2 -> 0, 3
        let mut a = CsrArrays::with_followers(4, 2, vec![0, 3, 4, 6, 6], vec![1, 2, 3, 3, 0, 3]);
        a.seq = 9;
        a.blocks = vec![[3, 1]];
        a.mutes = vec![[0, 2]];
        a
    }

    #[test]
    fn followers_are_grouped_by_partition_then_ascending() {
        let a = arrays();
        // followers of 3: 0, 1, 2 -> partition 0: 0, 2; partition 1: 1
        let range = a.in_offsets[3] as usize..a.in_offsets[4] as usize;
        assert_eq!(&a.in_sources[range], &[0, 2, 1]);
    }

    #[test]
    fn written_snapshots_map_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = arrays().write(dir.path(), "s.csr").unwrap();
        let csr = Csr::open(&path, 10).unwrap();
        assert_eq!(csr.seq, 9);
        assert_eq!(&csr.out_targets()[csr.out_range(0)], &[1, 2, 3]);
        assert_eq!(&csr.in_sources()[csr.in_partition_range(3, 0)], &[0, 2]);
        assert_eq!(&csr.in_sources()[csr.in_partition_range(3, 1)], &[1]);
        assert!(csr.has_edge(2, 0));
        assert!(!csr.has_edge(0, 0));
        assert_eq!(csr.blocks(), &[[3, 1]]);
        assert_eq!(csr.mutes(), &[[0, 2]]);
        assert!(csr.out_range(100).is_empty());
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = arrays().write(dir.path(), "s.csr").unwrap();
        let pristine = fs::read(&path).unwrap();
        for at in [0, 13, 61, 64, 70, pristine.len() - 1] {
            let mut bytes = pristine.clone();
            bytes[at] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            assert!(
                matches!(Csr::open(&path, 10), Err(Error::Corrupt { .. })),
                "flip at {at}"
            );
        }
        fs::write(&path, &pristine[..pristine.len() - 8]).unwrap();
        assert!(matches!(Csr::open(&path, 10), Err(Error::Corrupt { .. })));
        fs::write(&path, &pristine).unwrap();
        assert!(
            matches!(Csr::open(&path, 3), Err(Error::Corrupt { .. })),
            "users_max too small"
        );
    }
}
