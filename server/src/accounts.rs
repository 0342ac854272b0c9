//! Accounts and their bearer tokens, kept durably in `DIR/accounts`.
//!
//! The file is a header line and then one line per account, appended and fsynced
//! before the account is handed out:
//!
//! ```text
//! feedcore-server accounts 1\n
//! a\t{id}\t{username}\t{token}\t{created_at_ms}\n
//! ```
//!
//! Ids are dense (the line number after the header, from 0), as `feedcore::UserId`
//! wants. A last line without its newline (or a tail of zero bytes) is a write torn by
//! a crash: it was never acknowledged, so opening cuts it off. Any other line that does
//! not parse is damage, and opening refuses with its line number.
//!
//! A token is 32 random bytes in base64url (43 characters): the first 16 characters
//! select the account (a hash-map key) and the other 27 are compared in constant
//! time, so the time a lookup takes says nothing about how much of a secret matched.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

const HEADER: &str = "feedcore-server accounts 1\n";
/// Characters of a token that select its account.
const SELECTOR_CHARS: usize = 16;
/// Characters of a token (32 bytes in unpadded base64url).
const TOKEN_CHARS: usize = 43;
/// Longest username (Mastodon's).
pub const USERNAME_CHARS_MAX: usize = 30;

/// One account.
#[derive(Debug)]
pub struct Account {
    /// Its feedcore user id.
    pub id: u32,
    /// Its name, as registered (case kept; unique ignoring case).
    pub username: String,
    /// When it was created, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Notices it has posted and not deleted (counted from the log at start).
    pub statuses: AtomicU64,
    /// The unchanging part of its JSON entity, made at its first rendering (see
    /// `json::account`).
    pub json_head: std::sync::OnceLock<Vec<u8>>,
    verifier: [u8; TOKEN_CHARS - SELECTOR_CHARS],
}

impl Account {
    /// A stand-in for a notice author the accounts file does not know (a store
    /// written by something other than this server).
    pub fn placeholder(id: u32) -> Account {
        Account {
            id,
            username: format!("user{id}"),
            created_at_ms: 0,
            statuses: AtomicU64::new(0),
            json_head: std::sync::OnceLock::new(),
            verifier: [0; TOKEN_CHARS - SELECTOR_CHARS],
        }
    }
}

/// Why an account could not be created or the file not opened.
#[derive(Debug)]
pub enum AccountError {
    /// The username breaks a rule or is taken; the reason is for the client.
    Invalid(String),
    /// Every id below `users_max` is taken.
    Full,
    /// The accounts file could not be read or written.
    Io(String),
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::Invalid(reason) => write!(f, "{reason}"),
            AccountError::Full => write!(f, "no more accounts fit (users_max reached)"),
            AccountError::Io(reason) => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for AccountError {}

#[derive(Default)]
struct Index {
    by_id: Vec<Arc<Account>>,
    by_name: HashMap<String, u32>,
    by_selector: HashMap<[u8; SELECTOR_CHARS], u32>,
}

/// The accounts of a server: lookups by id, name and token; creation appends durably.
pub struct Accounts {
    index: RwLock<Index>,
    /// The open file; held while appending so lines never interleave.
    file: Mutex<File>,
    path: PathBuf,
    users_max: u32,
}

impl Accounts {
    /// Opens (or creates) `dir/accounts`, cutting off a torn last line.
    pub fn open(dir: &Path, users_max: u32) -> Result<Accounts, AccountError> {
        let path = dir.join("accounts");
        let io = |what: &str, e: std::io::Error| {
            AccountError::Io(format!("{what} {}: {e}", path.display()))
        };
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("reading", e))?;
        if bytes.is_empty() {
            file.write_all(HEADER.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io("writing the header of", e))?;
            if created {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io("syncing the directory of", e))?;
            }
            bytes.extend_from_slice(HEADER.as_bytes());
        }
        if !bytes.starts_with(HEADER.as_bytes()) {
            return Err(AccountError::Io(format!(
                "{} does not start with {HEADER:?}: not an accounts file of this version",
                path.display()
            )));
        }
        // The torn tail: a last line without its newline, or zero bytes.
        let whole = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |nl| nl + 1);
        if whole < bytes.len() {
            file.set_len(whole as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("cutting the torn last line of", e))?;
            bytes.truncate(whole);
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| AccountError::Io(format!("{} is not UTF-8: {e}", path.display())))?;
        let mut index = Index::default();
        for (n, line) in text.lines().enumerate().skip(1) {
            let bad = |why: &str| {
                AccountError::Io(format!(
                    "{} line {}: {why}: {line:?}",
                    path.display(),
                    n + 1
                ))
            };
            let fields: Vec<&str> = line.split('\t').collect();
            let [tag, id, name, token, created] = fields[..] else {
                return Err(bad("not five tab-separated fields"));
            };
            let id: u32 = id.parse().map_err(|_| bad("bad id"))?;
            if tag != "a" || id as usize != index.by_id.len() {
                return Err(bad("not the next account record"));
            }
            check_username(name).map_err(|e| bad(&e))?;
            let created_at_ms = created.parse().map_err(|_| bad("bad created_at"))?;
            let (selector, verifier) = split_token(token).ok_or_else(|| bad("bad token"))?;
            index.insert(
                Account {
                    id,
                    username: name.to_string(),
                    created_at_ms,
                    statuses: AtomicU64::new(0),
                    json_head: std::sync::OnceLock::new(),
                    verifier,
                },
                selector,
            );
        }
        Ok(Accounts {
            index: RwLock::new(index),
            file: Mutex::new(file),
            path,
            users_max,
        })
    }

    /// The file the accounts are kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many accounts exist (ids run from 0 to this, exclusive).
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether there is no account yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The account with this id.
    pub fn get(&self, id: u32) -> Option<Arc<Account>> {
        self.read().by_id.get(id as usize).cloned()
    }

    /// The account with this name, ignoring case.
    pub fn by_name(&self, name: &str) -> Option<Arc<Account>> {
        let index = self.read();
        let id = *index.by_name.get(&name.to_lowercase())?;
        index.by_id.get(id as usize).cloned()
    }

    /// The account a bearer token belongs to; `None` for an unknown or malformed one.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Account>> {
        let (selector, verifier) = split_token(token)?;
        let index = self.read();
        let id = *index.by_selector.get(&selector)?;
        let account = &index.by_id[id as usize];
        constant_time_eq(&account.verifier, &verifier).then(|| Arc::clone(account))
    }

    /// Creates accounts with these names, durably (one fsync for all), and returns
    /// each one's id and token. Nothing is created when one name is refused.
    pub fn create(&self, names: &[&str], now_ms: u64) -> Result<Vec<(u32, String)>, AccountError> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // Names are checked and ids assigned under the file's lock, so two creations
        // cannot take the same id or name.
        let first = {
            let index = self.read();
            let mut seen = std::collections::HashSet::new();
            for name in names {
                check_username(name).map_err(AccountError::Invalid)?;
                let key = name.to_lowercase();
                if index.by_name.contains_key(&key) || !seen.insert(key) {
                    return Err(AccountError::Invalid(
                        "Validation failed: Username has already been taken".into(),
                    ));
                }
            }
            index.by_id.len()
        };
        if first + names.len() > self.users_max as usize {
            return Err(AccountError::Full);
        }
        let mut lines = String::new();
        let mut made = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let id = (first + i) as u32;
            let token = new_token().map_err(|e| AccountError::Io(format!("/dev/urandom: {e}")))?;
            lines.push_str(&format!("a\t{id}\t{name}\t{token}\t{now_ms}\n"));
            made.push((id, token));
        }
        file.write_all(lines.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| AccountError::Io(format!("appending to {}: {e}", self.path.display())))?;
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for ((id, token), name) in made.iter().zip(names) {
            let (selector, verifier) =
                split_token(token).expect("new_token makes tokens split_token accepts");
            index.insert(
                Account {
                    id: *id,
                    username: name.to_string(),
                    created_at_ms: now_ms,
                    statuses: AtomicU64::new(0),
                    json_head: std::sync::OnceLock::new(),
                    verifier,
                },
                selector,
            );
        }
        Ok(made)
    }

    /// Adds `delta` to the status count of account `id` (a no-op for unknown ids).
    pub fn count_status(&self, id: u32, delta: i64) {
        if let Some(a) = self.read().by_id.get(id as usize) {
            if delta >= 0 {
                a.statuses.fetch_add(delta as u64, Ordering::Relaxed);
            } else {
                let _ = a
                    .statuses
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(delta.unsigned_abs()))
                    });
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Index {
    fn insert(&mut self, account: Account, selector: [u8; SELECTOR_CHARS]) {
        let id = account.id;
        assert_eq!(id as usize, self.by_id.len(), "ids are dense");
        self.by_name.insert(account.username.to_lowercase(), id);
        self.by_selector.insert(selector, id);
        self.by_id.push(Arc::new(account));
    }
}

/// Mastodon's rule: 1 to 30 letters, digits and underscores.
pub fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > USERNAME_CHARS_MAX {
        return Err(format!(
            "Validation failed: Username must be 1 to {USERNAME_CHARS_MAX} characters"
        ));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(
            "Validation failed: Username must contain only letters, numbers and underscores".into(),
        );
    }
    Ok(())
}

type Split = ([u8; SELECTOR_CHARS], [u8; TOKEN_CHARS - SELECTOR_CHARS]);

fn split_token(token: &str) -> Option<Split> {
    let b = token.as_bytes();
    if b.len() != TOKEN_CHARS
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
    {
        return None;
    }
    let selector = b[..SELECTOR_CHARS].try_into().ok()?;
    let verifier = b[SELECTOR_CHARS..].try_into().ok()?;
    Some((selector, verifier))
}

/// Compares without an early exit: the time does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn new_token() -> std::io::Result<String> {
    let mut raw = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(base64url(&raw))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters() {
        let t = new_token().unwrap();
        assert_eq!(t.len(), TOKEN_CHARS);
        assert!(split_token(&t).is_some());
        assert_eq!(base64url(b"\xff\xff\xff"), "____");
    }

    #[test]
    fn accounts_survive_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let made = {
            let a = Accounts::open(dir.path(), 10).unwrap();
            let made = a.create(&["alice", "bob"], 5).unwrap();
            assert!(matches!(
                a.create(&["ALICE"], 6),
                Err(AccountError::Invalid(_))
            ));
            made
        };
        let path = dir.path().join("accounts");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"a\t2\tcarol\tpartial").unwrap();
        drop(f);
        let a = Accounts::open(dir.path(), 10).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a.authenticate(&made[1].1).unwrap().username, "bob");
        assert_eq!(a.by_name("Alice").unwrap().id, 0);
        let mut wrong = made[1].1.clone().into_bytes();
        wrong[TOKEN_CHARS - 1] = if wrong[TOKEN_CHARS - 1] == b'A' {
            b'B'
        } else {
            b'A'
        };
        assert!(
            a.authenticate(std::str::from_utf8(&wrong).unwrap())
                .is_none()
        );
        assert!(a.authenticate("").is_none());
        assert_eq!(a.create(&["carol"], 7).unwrap()[0].0, 2);
    }

    #[test]
    fn a_damaged_line_before_the_end_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Accounts::open(dir.path(), 10)
            .unwrap()
            .create(&["alice"], 1)
            .unwrap();
        let path = dir.path().join("accounts");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("alice", "al ce");
        std::fs::write(&path, text).unwrap();
        assert!(matches!(
            Accounts::open(dir.path(), 10),
            Err(AccountError::Io(_))
        ));
    }

    #[test]
    fn users_max_bounds_the_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path(), 2).unwrap();
        assert!(matches!(
            a.create(&["a", "b", "c"], 1),
            Err(AccountError::Full)
        ));
        assert_eq!(a.create(&["a", "b"], 1).unwrap().len(), 2);
        assert!(!a.is_empty());
    }
}
