//! The snapshot files of a graph directory: their names and listing.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

pub(super) fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:016}.csr")
}

fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".csr")?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// Snapshot files of `dir`, by seq, after removing the temporary files of compactions
/// that never finished (the op logs still hold their changes).
pub(super) fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".csr.tmp"))
        {
            fs::remove_file(entry.path())
                .context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    list_snapshots_read_only(dir)
}

/// Snapshot files of `dir` by seq, changing nothing (temporary files are ignored).
pub(super) fn list_snapshots_read_only(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_snapshot_name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}
