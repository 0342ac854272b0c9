//! The registry of named streams: groups (owner, unique name), lists (owner, name) and
//! tags (unique name), and of federation's remote servers (unique host) and remote
//! accounts (server, unique actor uri; see `remote.rs`), each kind with dense ids from
//! 0 in the order of registration.
//! One append-only file, `DIR/graph/registry.log`, framed and checksummed like the op
//! log; read whole at open.
//!
//! ```text
//! record: [len: u32 LE][crc32c: u32 LE][version: u8 = 1][tag: u8 = 5][seq: u48 LE]
//!         [kind: u8][zero: 3][id: u32 LE][owner: u32 LE][name_len: u32 LE][name: UTF-8]
//!         [zero pad to 16]
//! ```
//!
//! `seq` counts records from 1; `id` is the count of earlier records of the same kind
//! (a record out of order is corruption). Groups and lists are synced before their
//! creation returns; a tag first seen in a post is synced only when a follow names it
//! (the log holds the tag's text; the id matters once an edge refers to it), so a tag
//! lost in a crash is registered again from the log at open.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, IoContext, Result};
use crate::fileio;
use crate::ids::UserId;
use crate::log::frame::{self, HEADER_BYTES, Tag};
use crate::log::segment::sync_dir;

/// The registry's file name inside the graph directory.
pub(crate) const FILE_NAME: &str = "registry.log";

/// At most this many bytes in a group or list name.
pub const NAME_BYTES_MAX: usize = 64;

/// Bytes of a record's payload before the name.
const FIXED_BYTES: usize = 16;

/// What a record names. Values start at 1 so that zeros are never a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Group = 1,
    List = 2,
    Tag = 3,
    /// A remote server: `name` is its host, `owner` 0.
    Server = 4,
    /// A remote account: `name` is its actor uri, `owner` its server's id.
    Account = 5,
}

/// How many kinds there are.
const KINDS: usize = 5;

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Group,
            2 => Kind::List,
            3 => Kind::Tag,
            4 => Kind::Server,
            5 => Kind::Account,
            _ => return None,
        })
    }

    pub(crate) fn word(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::List => "list",
            Kind::Tag => "tag",
            Kind::Server => "remote server",
            Kind::Account => "remote account",
        }
    }
}

/// One registered group or list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) owner: UserId,
    pub(crate) name: Box<str>,
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    kind: Kind,
    id: u32,
    owner: u32,
    name: String,
}

fn encode(seq: u64, r: &Record) -> Vec<u8> {
    let mut payload = Vec::with_capacity(FIXED_BYTES + r.name.len());
    payload.extend_from_slice(&[r.kind as u8, 0, 0, 0]);
    payload.extend_from_slice(&r.id.to_le_bytes());
    payload.extend_from_slice(&r.owner.to_le_bytes());
    payload.extend_from_slice(&(r.name.len() as u32).to_le_bytes());
    payload.extend_from_slice(r.name.as_bytes());
    let mut record = frame::encode_header(Tag::Registry, seq, &payload).to_vec();
    record.extend_from_slice(&payload);
    record.resize(frame::record_bytes(payload.len()), 0);
    record
}

/// Decodes the record at `pos`: `Ok((seq, record, bytes it takes))`, or why not.
fn decode(bytes: &[u8], pos: usize) -> Result<(u64, Record, usize), String> {
    let Some(head) = bytes.get(pos..pos + HEADER_BYTES) else {
        return Err("less than a header left".into());
    };
    let h = frame::decode_header(head);
    if h.version != frame::VERSION || h.tag_byte != Tag::Registry as u8 {
        return Err("not a registry record header".into());
    }
    let len = h.len as usize;
    let total = frame::record_bytes(len);
    let name_max = NAME_BYTES_MAX
        .max(crate::TAG_BYTES_MAX)
        .max(crate::URI_BYTES_MAX);
    if len < FIXED_BYTES || len > FIXED_BYTES + name_max {
        return Err(format!("record length {len} out of range"));
    }
    let Some(payload) = bytes.get(pos + HEADER_BYTES..pos + HEADER_BYTES + len) else {
        return Err("record runs past the end of the file".into());
    };
    if pos + total > bytes.len() {
        return Err("record padding runs past the end of the file".into());
    }
    if !frame::crc_matches(head, payload) {
        return Err("checksum mismatch".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().expect("4 bytes"));
    let kind = Kind::from_byte(payload[0]).ok_or_else(|| format!("unknown kind {}", payload[0]))?;
    let name_len = u32_at(12) as usize;
    if FIXED_BYTES + name_len != len {
        return Err("name length does not match the record length".into());
    }
    let name = std::str::from_utf8(&payload[FIXED_BYTES..])
        .map_err(|_| "name is not UTF-8".to_string())?
        .to_owned();
    Ok((
        h.id,
        Record {
            kind,
            id: u32_at(4),
            owner: u32_at(8),
            name,
        },
        total,
    ))
}

/// What reading the file found.
#[derive(Debug, Default)]
struct Replay {
    records: Vec<Record>,
    /// Bytes of valid records.
    valid_len: u64,
    /// A torn tail: offset and reason.
    torn: Option<(u64, String)>,
}

fn replay(path: &Path) -> Result<Replay> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let mut records = Vec::new();
    let mut counts = [0u32; KINDS];
    let scanned = frame::scan_records(path, &bytes, "registry", decode, |pos, record: Record| {
        let count = &mut counts[record.kind as usize - 1];
        if record.id != *count {
            return Err(Error::corrupt(
                path,
                pos,
                format!(
                    "{} id {} where {} is due",
                    record.kind.word(),
                    record.id,
                    count
                ),
            ));
        }
        *count += 1;
        if record.kind == Kind::Account && record.owner >= counts[Kind::Server as usize - 1] {
            return Err(Error::corrupt(
                path,
                pos,
                format!(
                    "remote account {} names server {}, not registered before it",
                    record.id, record.owner
                ),
            ));
        }
        records.push(record);
        Ok(())
    })?;
    Ok(Replay {
        records,
        valid_len: scanned.valid_len,
        torn: scanned.torn,
    })
}

/// The writer's state, under `Registry::file`.
struct FileState {
    file: File,
    /// Bytes written: where the next record goes.
    len: u64,
    /// Bytes known durable.
    synced_len: u64,
    /// Records written (the last seq).
    seq: u64,
    /// Set by a failed write or sync: refuse writes until reopen.
    poisoned: Option<String>,
}

/// The registry (see the module comment). Reads by id are lock-free (`boxcar`); reads
/// by name take a read lock, once per call of the engine.
pub(crate) struct Registry {
    path: PathBuf,
    file: Mutex<FileState>,
    groups: boxcar::Vec<Entry>,
    lists: boxcar::Vec<Entry>,
    tags: boxcar::Vec<Box<str>>,
    group_names: RwLock<HashMap<Box<str>, u32>>,
    tag_names: RwLock<HashMap<Box<str>, u32>>,
    /// Remote servers and accounts (see `remote.rs`).
    pub(super) remote: super::remote::Remote,
    /// Ids of groups, lists and tags stay below this.
    max: u32,
    /// Ids of remote servers and accounts stay below this.
    remote_max: u32,
}

/// What [`Registry::check`] found: the counts, and the problem if any.
#[derive(Debug, Default)]
pub(crate) struct RegistryCheck {
    pub(crate) groups: u32,
    pub(crate) lists: u32,
    pub(crate) tags: u32,
    pub(crate) servers: u32,
    pub(crate) accounts: u32,
    pub(crate) problems: Vec<crate::Problem>,
}

impl Registry {
    /// Opens (or creates) the registry in the graph directory `dir`; a torn tail is
    /// cut off, damage before a valid record is [`Error::Corrupt`]. Group, list and
    /// tag ids stay below `max`, remote server and account ids below `remote_max`.
    pub(crate) fn open(dir: &Path, max: u32, remote_max: u32) -> Result<Registry> {
        let path = dir.join(FILE_NAME);
        let replay = replay(&path)?;
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
            sync_dir(dir)?;
        }
        if replay.torn.is_some() {
            fileio::set_len(&file, &path, replay.valid_len)
                .and_then(|()| fileio::sync_all(&file, &path))
                .context(|| format!("cutting off the torn tail of {}", path.display()))?;
        }
        let registry = Registry {
            path,
            file: Mutex::new(FileState {
                file,
                len: replay.valid_len,
                synced_len: replay.valid_len,
                seq: replay.records.len() as u64,
                poisoned: None,
            }),
            groups: boxcar::Vec::new(),
            lists: boxcar::Vec::new(),
            tags: boxcar::Vec::new(),
            group_names: RwLock::new(HashMap::new()),
            tag_names: RwLock::new(HashMap::new()),
            remote: super::remote::Remote::default(),
            max,
            remote_max,
        };
        for r in replay.records {
            let limit = registry.limit(r.kind);
            if r.id >= limit {
                return Err(Error::corrupt(
                    &registry.path,
                    0,
                    format!("{} id {} is past its limit {limit}", r.kind.word(), r.id),
                ));
            }
            registry.install(r);
        }
        Ok(registry)
    }

    /// Verifies the registry in `dir` without changing it.
    pub(crate) fn check(dir: &Path) -> Result<RegistryCheck> {
        let path = dir.join(FILE_NAME);
        let mut out = RegistryCheck::default();
        match replay(&path) {
            Ok(r) => {
                for rec in &r.records {
                    match rec.kind {
                        Kind::Group => out.groups += 1,
                        Kind::List => out.lists += 1,
                        Kind::Tag => out.tags += 1,
                        Kind::Server => out.servers += 1,
                        Kind::Account => out.accounts += 1,
                    }
                }
                if let Some((offset, reason)) = r.torn {
                    out.problems.push(crate::Problem {
                        file: path,
                        offset,
                        reason: format!(
                            "torn tail of the registry ({reason}); opening cuts it off"
                        ),
                        recoverable: true,
                    });
                }
            }
            Err(Error::Corrupt {
                file,
                offset,
                reason,
            }) => out.problems.push(crate::Problem {
                file,
                offset,
                reason,
                recoverable: false,
            }),
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    fn install(&self, r: Record) {
        match r.kind {
            Kind::Group => {
                let at = self.groups.push(Entry {
                    owner: UserId(r.owner),
                    name: r.name.as_str().into(),
                });
                debug_assert_eq!(at, r.id as usize, "ids are dense, pushed in order");
                self.group_names.write().insert(r.name.into(), r.id);
            }
            Kind::List => {
                let at = self.lists.push(Entry {
                    owner: UserId(r.owner),
                    name: r.name.into(),
                });
                debug_assert_eq!(at, r.id as usize, "ids are dense, pushed in order");
            }
            Kind::Tag => {
                let at = self.tags.push(r.name.as_str().into());
                debug_assert_eq!(at, r.id as usize, "ids are dense, pushed in order");
                self.tag_names.write().insert(r.name.into(), r.id);
            }
            Kind::Server => self.remote.install_server(r.id, r.name.into()),
            Kind::Account => self.remote.install_account(r.id, r.owner, r.name.into()),
        }
    }

    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Group => self.groups.count(),
            Kind::List => self.lists.count(),
            Kind::Tag => self.tags.count(),
            Kind::Server => self.remote.servers(),
            Kind::Account => self.remote.accounts(),
        }
    }

    /// Ids of `kind` stay below this.
    fn limit(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Group | Kind::List | Kind::Tag => self.max,
            Kind::Server | Kind::Account => self.remote_max,
        }
    }

    /// Writes a record of `kind` under the file lock, then installs it; the caller
    /// checked the name. With `sync`, durable before it returns. `exists` is checked
    /// under the lock (a unique name taken meanwhile): `Ok(Err(id))` when it returns
    /// an id.
    pub(super) fn register(
        &self,
        kind: Kind,
        owner: u32,
        name: &str,
        sync: bool,
        exists: impl Fn() -> Option<u32>,
    ) -> Result<Result<u32, u32>> {
        let mut f = self.file.lock();
        if let Some(id) = exists() {
            return Ok(Err(id));
        }
        if let Some(cause) = &f.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        let id = self.count(kind) as u32;
        let max = self.limit(kind);
        if id >= max {
            return Err(Error::TooMany {
                what: kind.word(),
                max,
            });
        }
        let record = Record {
            kind,
            id,
            owner,
            name: name.to_owned(),
        };
        let bytes = encode(f.seq + 1, &record);
        if let Err(e) = fileio::write_all_at(&f.file, &self.path, &bytes, f.len) {
            let cause = format!("writing to {}: {e}", self.path.display());
            f.poisoned = Some(cause.clone());
            return Err(Error::io(cause, e));
        }
        f.len += bytes.len() as u64;
        f.seq += 1;
        if sync {
            Self::sync_locked(&self.path, &mut f)?;
        }
        self.install(record);
        Ok(Ok(id))
    }

    fn sync_locked(path: &Path, f: &mut FileState) -> Result<()> {
        if f.synced_len == f.len {
            return Ok(());
        }
        if let Err(e) = fileio::sync_data(&f.file, path) {
            let cause = format!("fdatasync of {}: {e}", path.display());
            f.poisoned = Some(cause.clone());
            return Err(Error::io(cause, e));
        }
        f.synced_len = f.len;
        Ok(())
    }

    /// Makes every registration so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        let mut f = self.file.lock();
        Self::sync_locked(&self.path, &mut f)
    }

    /// Registers a group; its name is unique (`Err(InvalidName)` when taken).
    pub(crate) fn create_group(&self, owner: UserId, name: &str) -> Result<u32> {
        match self.register(Kind::Group, owner.0, name, true, || self.group_id(name))? {
            Ok(id) => Ok(id),
            Err(_) => Err(Error::InvalidName {
                reason: format!("a group named {name:?} exists already"),
            }),
        }
    }

    /// Registers a list.
    pub(crate) fn create_list(&self, owner: UserId, name: &str) -> Result<u32> {
        match self.register(Kind::List, owner.0, name, true, || None)? {
            Ok(id) | Err(id) => Ok(id),
        }
    }

    /// The id of tag `name` (normalised), registered if new; synced when `sync`.
    pub(crate) fn tag_or_register(&self, name: &str, sync: bool) -> Result<u32> {
        if let Some(id) = self.tag_id(name) {
            if sync {
                self.sync()?;
            }
            return Ok(id);
        }
        match self.register(Kind::Tag, 0, name, sync, || self.tag_id(name))? {
            Ok(id) | Err(id) => {
                if sync {
                    self.sync()?;
                }
                Ok(id)
            }
        }
    }

    /// The id of group `name`.
    pub(crate) fn group_id(&self, name: &str) -> Option<u32> {
        self.group_names.read().get(name).copied()
    }

    /// The id of tag `name` (normalised).
    pub(crate) fn tag_id(&self, name: &str) -> Option<u32> {
        self.tag_names.read().get(name).copied()
    }

    pub(crate) fn group(&self, id: u32) -> Option<&Entry> {
        self.groups.get(id as usize)
    }

    pub(crate) fn list(&self, id: u32) -> Option<&Entry> {
        self.lists.get(id as usize)
    }

    pub(crate) fn tag(&self, id: u32) -> Option<&str> {
        self.tags.get(id as usize).map(|t| &**t)
    }

    pub(crate) fn groups(&self) -> u32 {
        self.groups.count() as u32
    }

    pub(crate) fn lists(&self) -> u32 {
        self.lists.count() as u32
    }

    pub(crate) fn tags(&self) -> u32 {
        self.tags.count() as u32
    }
}

/// Checks a group name and returns it normalised (lower-case): 1 to
/// [`NAME_BYTES_MAX`] bytes of letters, digits and `_`, so that `!name` in a body
/// finds it; a leading `!` is dropped.
pub(crate) fn group_name(name: &[u8]) -> Result<String> {
    let name = utf8(name)?;
    let name = name.strip_prefix('!').unwrap_or(name).to_lowercase();
    check_len(&name)?;
    if let Some(c) = name.chars().find(|&c| !is_group_char(c)) {
        return Err(Error::InvalidName {
            reason: format!("group name {name:?} holds {c:?}: only letters, digits and _"),
        });
    }
    Ok(name)
}

/// The characters of a group name (and of a `!name` in a body).
pub(crate) fn is_group_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Checks a list name: 1 to [`NAME_BYTES_MAX`] bytes, no control characters.
pub(crate) fn list_name(name: &[u8]) -> Result<String> {
    let name = utf8(name)?;
    check_len(name)?;
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidName {
            reason: format!("list name {name:?} holds a control character"),
        });
    }
    Ok(name.to_owned())
}

/// Checks a tag and returns it normalised as notices store it (lower-case, without a
/// leading `#`).
pub(crate) fn tag_name(tag: &[u8]) -> Result<String> {
    let tag = utf8(tag)?;
    let tag = tag.strip_prefix('#').unwrap_or(tag).to_lowercase();
    if tag.is_empty() || tag.len() > crate::TAG_BYTES_MAX {
        return Err(Error::InvalidName {
            reason: format!("tag {tag:?} must be 1 to {} bytes", crate::TAG_BYTES_MAX),
        });
    }
    if tag.chars().any(char::is_whitespace) {
        return Err(Error::InvalidName {
            reason: format!("tag {tag:?} contains whitespace"),
        });
    }
    Ok(tag)
}

fn utf8(name: &[u8]) -> Result<&str> {
    std::str::from_utf8(name).map_err(|e| Error::InvalidName {
        reason: format!("not UTF-8 ({e})"),
    })
}

fn check_len(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(Error::InvalidName {
            reason: format!(
                "{} bytes; a name is 1 to {NAME_BYTES_MAX} bytes",
                name.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let r = Record {
            kind: Kind::Group,
            id: 3,
            owner: 9,
            name: "rustaceans".into(),
        };
        let bytes = encode(4, &r);
        assert_eq!(bytes.len() % frame::ALIGN, 0);
        assert_eq!(decode(&bytes, 0), Ok((4, r, bytes.len())));
        for at in (0..HEADER_BYTES + FIXED_BYTES + 10).filter(|b| !(4..8).contains(b)) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            assert!(decode(&damaged, 0).is_err(), "flip at byte {at}");
        }
    }

    #[test]
    fn reopen_keeps_ids_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let reg = Registry::open(dir.path(), 10, 10).unwrap();
            assert_eq!(reg.create_group(UserId(1), "a").unwrap(), 0);
            assert_eq!(reg.create_list(UserId(1), "l").unwrap(), 0);
            assert_eq!(reg.create_group(UserId(2), "b").unwrap(), 1);
            assert!(matches!(
                reg.create_group(UserId(3), "a"),
                Err(Error::InvalidName { .. })
            ));
            assert_eq!(reg.tag_or_register("x", true).unwrap(), 0);
            assert_eq!(reg.tag_or_register("x", false).unwrap(), 0);
        }
        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        let full = bytes.len();
        bytes.extend_from_slice(
            &encode(
                5,
                &Record {
                    kind: Kind::Tag,
                    id: 1,
                    owner: 0,
                    name: "y".into(),
                },
            )[..20],
        );
        fs::write(&path, &bytes).unwrap();
        assert!(Registry::check(dir.path()).unwrap().problems[0].recoverable);
        let reg = Registry::open(dir.path(), 10, 10).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, full);
        assert_eq!(reg.group_id("b"), Some(1));
        assert_eq!(reg.group(1).unwrap().owner, UserId(2));
        assert_eq!(reg.list(0).unwrap().name.as_ref(), "l");
        assert_eq!(reg.tag(0), Some("x"));
        assert_eq!((reg.groups(), reg.lists(), reg.tags()), (2, 1, 1));
        drop(reg);
        // Damage before a good record: corruption, never a silent loss.
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_BYTES + 5] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Registry::open(dir.path(), 10, 10),
            Err(Error::Corrupt { offset: 0, .. })
        ));
        assert!(!Registry::check(dir.path()).unwrap().problems[0].recoverable);
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(group_name(b"!Rust_Lang").unwrap(), "rust_lang");
        for bad in [
            &b""[..],
            b"!",
            b"two words",
            b"a-b",
            &[0xff, 0xfe],
            &[b'g'; 65],
        ] {
            assert!(
                matches!(group_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            list_name("Close friends".as_bytes()).unwrap(),
            "Close friends"
        );
        assert!(list_name(b"").is_err() && list_name(b"a\nb").is_err());
        assert!(list_name(&[0xc3]).is_err());
        assert_eq!(tag_name(b"#Rust").unwrap(), "rust");
        assert!(tag_name(b"#").is_err() && tag_name(b"a b").is_err());
    }

    #[test]
    fn ids_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path(), 1, 1).unwrap();
        reg.create_list(UserId(0), "one").unwrap();
        assert!(matches!(
            reg.create_list(UserId(0), "two"),
            Err(Error::TooMany {
                what: "list",
                max: 1
            })
        ));
    }
}
