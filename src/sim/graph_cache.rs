//! Generated follow graphs cached on disk, so that a second simulation on the same
//! graph starts in seconds: one file per generator parameters and seed, holding the
//! follows in compressed-row form and the graph's [`GraphSummary`], checked by a
//! header CRC and a body CRC. A missing, stale, truncated or damaged file is
//! regenerated (and rewritten), never trusted.
//!
//! Layout, little-endian: a 72-byte header (magic `FCGRAPH1`, the parameters' key,
//! users, follows, the summary's figures, the body's CRC-32C, the header's CRC-32C),
//! then the body: each user's follow count (`u32` a user), then every followee (`u32`
//! a follow), follower by follower.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::graph_gen::{GraphSummary, TwitterGraph, summarize};
use crate::error::{Error, Result};
use crate::ids::UserId;

const MAGIC: &[u8; 8] = b"FCGRAPH1";
const HEADER_BYTES: usize = 72;
/// Ids read and checked at a time.
const CHUNK_IDS: usize = 1 << 20;

/// A graph from [`load_or_generate`].
#[derive(Debug)]
pub struct CachedGraph {
    /// The follows `(follower, followee)`, sorted, without duplicates.
    pub edges: Vec<(UserId, UserId)>,
    /// Their statistics.
    pub summary: GraphSummary,
    /// Whether they were read from the cache (false: generated).
    pub from_cache: bool,
    /// Why an existing cache file was not used, when it was not (damaged, stale).
    pub rejected: Option<String>,
    /// Why the generated graph could not be written to the cache, when it could not.
    pub write_error: Option<String>,
    /// The cache file.
    pub path: PathBuf,
    /// Seconds to read (or generate, summarise and write) the graph.
    pub seconds: f64,
}

/// The cache file of `graph` in `dir`: named by a hash of every generator parameter.
pub fn cache_path(dir: &Path, graph: &TwitterGraph) -> PathBuf {
    dir.join(format!(
        "twitter-{}u-{:016x}.graph",
        graph.users,
        key(graph)
    ))
}

/// FNV-1a of the parameters' debug form and the layout's magic: any change of a
/// parameter, the seed or the layout gives another key.
fn key(graph: &TwitterGraph) -> u64 {
    let text = format!("{}{graph:?}", String::from_utf8_lossy(MAGIC));
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads `graph` from its cache file in `dir`, or generates it (and its summary) and
/// writes the file. `progress` is told what is happening (`"reading"`,
/// `"generating"`, `"summarising"`, `"writing"`).
pub fn load_or_generate(
    dir: &Path,
    graph: &TwitterGraph,
    progress: &dyn Fn(&'static str),
) -> Result<CachedGraph> {
    let path = cache_path(dir, graph);
    let started = Instant::now();
    let mut rejected = None;
    if path.exists() {
        progress("reading");
        match read(&path, graph) {
            Ok((edges, summary)) => {
                return Ok(CachedGraph {
                    edges,
                    summary,
                    from_cache: true,
                    rejected: None,
                    write_error: None,
                    path,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            Err(reason) => rejected = Some(reason),
        }
    }
    progress("generating");
    let edges = graph.edges();
    progress("summarising");
    let summary = summarize(graph.users, &edges);
    progress("writing");
    let write_error = write(dir, &path, graph, &edges, &summary)
        .err()
        .map(|e| e.to_string());
    Ok(CachedGraph {
        edges,
        summary,
        from_cache: false,
        rejected,
        write_error,
        path,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn header(graph: &TwitterGraph, s: &GraphSummary, body_crc: u32) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[0..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&key(graph).to_le_bytes());
    h[16..20].copy_from_slice(&s.users.to_le_bytes());
    h[20..24].copy_from_slice(&s.follows_median.to_le_bytes());
    h[24..32].copy_from_slice(&s.follows.to_le_bytes());
    h[32..36].copy_from_slice(&s.follows_max.to_le_bytes());
    h[36..40].copy_from_slice(&s.followers_median.to_le_bytes());
    h[40..44].copy_from_slice(&s.followers_max.to_le_bytes());
    h[44..48].copy_from_slice(&body_crc.to_le_bytes());
    h[48..56].copy_from_slice(&s.follower_exponent.to_le_bytes());
    h[56..64].copy_from_slice(&s.reciprocal_pairs.to_le_bytes());
    let crc = crc32c::crc32c(&h[..68]);
    h[68..72].copy_from_slice(&crc.to_le_bytes());
    h
}

fn write(
    dir: &Path,
    path: &Path,
    graph: &TwitterGraph,
    edges: &[(UserId, UserId)],
    summary: &GraphSummary,
) -> Result<()> {
    let context = |what: &str| format!("{what} {}", path.display());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(context("creating the cache of"), e))?;
    let mut degrees = vec![0u32; graph.users as usize];
    for &(a, _) in edges {
        degrees[a.0 as usize] += 1;
    }
    let mut crc = 0u32;
    let mut body: Vec<u8> = Vec::with_capacity(degrees.len() * 4);
    for d in &degrees {
        body.extend_from_slice(&d.to_le_bytes());
    }
    crc = crc32c::crc32c_append(crc, &body);
    let temp = path.with_extension("graph.partial");
    let file = File::create(&temp).map_err(|e| Error::io(context("creating"), e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let io = |e| Error::io(context("writing"), e);
    out.write_all(&[0u8; HEADER_BYTES]).map_err(io)?;
    out.write_all(&body).map_err(io)?;
    for chunk in edges.chunks(CHUNK_IDS) {
        body.clear();
        for &(_, b) in chunk {
            body.extend_from_slice(&b.0.to_le_bytes());
        }
        crc = crc32c::crc32c_append(crc, &body);
        out.write_all(&body).map_err(io)?;
    }
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header(graph, summary, crc)).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| Error::io(context("renaming the cache to"), e))
}

/// The graph and summary of a cache file, or why it cannot be used.
fn read(
    path: &Path,
    graph: &TwitterGraph,
) -> Result<(Vec<(UserId, UserId)>, GraphSummary), String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut h = [0u8; HEADER_BYTES];
    input
        .read_exact(&mut h)
        .map_err(|_| "shorter than its header".to_string())?;
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
    if &h[0..8] != MAGIC || crc32c::crc32c(&h[..68]) != u32_at(68) {
        return Err("its header is damaged".into());
    }
    if u64_at(8) != key(graph) || u32_at(16) != graph.users {
        return Err("it holds another graph".into());
    }
    let users = graph.users as usize;
    let follows = u64_at(24);
    if len != HEADER_BYTES as u64 + 4 * (users as u64 + follows) {
        return Err(format!("{len} bytes, not the header's size"));
    }
    let mut crc = 0u32;
    let mut bytes = vec![0u8; 4 * users];
    input
        .read_exact(&mut bytes)
        .map_err(|e| format!("reading: {e}"))?;
    crc = crc32c::crc32c_append(crc, &bytes);
    let degrees: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    drop(bytes);
    if degrees.iter().map(|&d| u64::from(d)).sum::<u64>() != follows {
        return Err("its follow counts do not add up".into());
    }
    let mut edges = Vec::with_capacity(follows as usize);
    let mut follower = 0usize;
    let mut left = degrees.first().copied().unwrap_or(0);
    let mut chunk = vec![0u8; 4 * CHUNK_IDS];
    let mut remaining = follows as usize;
    while remaining > 0 {
        let n = remaining.min(CHUNK_IDS);
        input
            .read_exact(&mut chunk[..4 * n])
            .map_err(|e| format!("reading: {e}"))?;
        crc = crc32c::crc32c_append(crc, &chunk[..4 * n]);
        for c in chunk[..4 * n].chunks_exact(4) {
            while left == 0 {
                follower += 1;
                left = degrees[follower];
            }
            let followee = u32::from_le_bytes(c.try_into().expect("4 bytes"));
            if followee >= graph.users {
                return Err("a followee out of range".into());
            }
            edges.push((UserId(follower as u32), UserId(followee)));
            left -= 1;
        }
        remaining -= n;
    }
    if crc != u32_at(44) {
        return Err("its body is damaged (CRC)".into());
    }
    let follows_mean = follows as f64 / graph.users.max(1) as f64;
    let followers_max = u32_at(40);
    let summary = GraphSummary {
        users: graph.users,
        follows,
        follows_mean,
        follows_median: u32_at(20),
        follows_max: u32_at(32),
        followers_median: u32_at(36),
        followers_max,
        top_follower_fraction: f64::from(followers_max) / f64::from(graph.users.max(1)),
        follower_exponent: f64::from_le_bytes(h[48..56].try_into().expect("8 bytes")),
        reciprocal_pairs: f64::from_le_bytes(h[56..64].try_into().expect("8 bytes")),
    };
    Ok((edges, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> TwitterGraph {
        TwitterGraph {
            users: 3000,
            ..TwitterGraph::default()
        }
    }

    #[test]
    fn a_second_load_reads_the_cache_and_gives_the_same_graph() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path(), &small(), &|_| {}).unwrap();
        assert!(!first.from_cache && first.write_error.is_none());
        let second = load_or_generate(dir.path(), &small(), &|_| {}).unwrap();
        assert!(second.from_cache, "{:?}", second.rejected);
        assert_eq!(first.edges, second.edges);
        assert_eq!(first.summary, second.summary);
        let other = TwitterGraph { seed: 2, ..small() };
        assert_ne!(cache_path(dir.path(), &other), first.path);
    }

    #[test]
    fn a_truncated_or_damaged_cache_is_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path(), &small(), &|_| {}).unwrap();
        let bytes = std::fs::read(&first.path).unwrap();
        let damages: Vec<Vec<u8>> = vec![
            bytes[..bytes.len() - 7].to_vec(),
            bytes[..40].to_vec(),
            Vec::new(),
            {
                let mut b = bytes.clone();
                let at = b.len() - 100;
                b[at] ^= 0x10;
                b
            },
            {
                let mut b = bytes.clone();
                b[30] ^= 1;
                b
            },
        ];
        for damaged in damages {
            std::fs::write(&first.path, &damaged).unwrap();
            let again = load_or_generate(dir.path(), &small(), &|_| {}).unwrap();
            assert!(!again.from_cache, "a damaged cache is not trusted");
            assert!(again.rejected.is_some());
            assert_eq!(again.edges, first.edges);
            assert_eq!(again.summary, first.summary);
            assert_eq!(std::fs::read(&first.path).unwrap(), bytes, "rewritten");
        }
    }
}
