//! Federation's delivery outbox: one delivery per remote server (its shared inbox) for
//! each local notice with remote followers there, and for the deletion of such a
//! notice; handed out, acked or failed with backoff, durable in a framed append-only
//! file (`file.rs`, `record.rs`), queued in memory as compact entries (`queue.rs`).
//! See `docs/design.md`, "Federation".

pub(crate) mod file;
mod fold;
mod queue;
pub(crate) mod record;
mod report;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use record::DeliveryKind;
pub use report::{OutboxReport, OutboxStats};

use crate::error::{Error, Result};
use crate::ids::{NoticeId, UserId};
use crate::log::Durability;
use file::OutboxFile;
pub(crate) use fold::Folded;
use fold::ServerState;
use queue::{ATTEMPT_MAX, Entry, Queue};
use record::Record;

/// A server failing for this long is marked unavailable.
pub(crate) const UNAVAILABLE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// The first retry waits about this long; each later one twice as long.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// No retry waits longer than this.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(6 * 3600);

/// One delivery handed out by [`Engine::deliveries`](crate::Engine::deliveries): a
/// notice (or its deletion) for one remote server's shared inbox, addressed to the
/// author's followers there. Give it back with [`Engine::ack`](crate::Engine::ack) or
/// [`Engine::fail`](crate::Engine::fail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The notice.
    pub notice: NoticeId,
    /// The remote server's host.
    pub server: String,
    /// The author's followers on that server, as they are when it is handed out.
    pub followers: Vec<UserId>,
    /// The notice, or its deletion.
    pub kind: DeliveryKind,
    /// Which attempt this is: 1 the first time, one more after each failure.
    pub attempt: u32,
    /// Identifies this hand-out: an ack or failure under an older token is refused.
    pub token: u64,
}

/// What the outbox needs from the engine to hand a delivery out: the notice's author
/// and the followers on a server.
pub(crate) trait Resolve {
    /// The author of a notice still stored (`None`: missing or deleted).
    fn author(&self, notice: u64) -> Option<u32>;
    /// The host of server `id`.
    fn host(&self, server: u32) -> String;
    /// `author`'s followers on `server`.
    fn followers_on(&self, author: u32, server: u32) -> Vec<UserId>;
}

/// An in-flight delivery: its token and failed attempts before this one.
type InFlight = HashMap<(u64, u32), (u64, u16)>;

struct Inner {
    file: OutboxFile,
    queue: Queue,
    in_flight: InFlight,
    servers: Vec<ServerState>,
    /// Notices with pending deletes: (author, pending delete deliveries).
    delete_authors: HashMap<u64, (u32, u32)>,
    next_token: u64,
    dropped: u64,
    acked: u64,
    failures: u64,
    mark: u64,
    sync_enqueue: bool,
    sync_ack: bool,
}

/// The outbox (see the module comment).
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    /// Local notices up to this one were examined for remote followers (written in a
    /// mark when the outbox closes).
    examined: AtomicU64,
}

fn kind_bit(kind: DeliveryKind) -> u64 {
    u64::from(kind == DeliveryKind::Delete)
}

fn key(notice: u64, kind: DeliveryKind, server: u32) -> (u64, u32) {
    (notice << 1 | kind_bit(kind), server)
}

/// The default wait before retry `attempts + 1`: `BACKOFF_BASE * 2^(attempts - 1)`,
/// at most `BACKOFF_MAX`, then a jitter that takes it down by up to a half (from
/// `seed`), so servers that failed together do not retry together.
pub(crate) fn backoff(attempts: u16, seed: u64) -> Duration {
    let exp = u32::from(attempts.clamp(1, 32) - 1);
    let full = BACKOFF_BASE
        .saturating_mul(1u32.checked_shl(exp).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX);
    // splitmix64
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let ms = full.as_millis() as u64;
    Duration::from_millis(ms - (z % (ms / 2 + 1)))
}

impl Outbox {
    /// Opens (or creates) the outbox of the store directory `store`: replays its file
    /// (a torn tail is cut off, damage before the end is [`Error::Corrupt`]).
    pub(crate) fn open(store: &Path) -> Result<(OutboxFile, Folded)> {
        let mut folded = Folded::default();
        let (file, _read) = OutboxFile::open(store, |r| folded.apply(r))?;
        Ok((file, folded))
    }

    /// Builds the outbox from the replayed file and the enqueues recovery added, and
    /// writes a mark at `examined`: the file is rewritten when most of it is history.
    pub(crate) fn build(
        mut file: OutboxFile,
        mut folded: Folded,
        recovered: Vec<Record>,
        examined: u64,
        durability: Durability,
        now_ms: u64,
    ) -> Result<Outbox> {
        for r in &recovered {
            folded.apply(r.clone());
        }
        folded.mark = folded.mark.max(examined);
        let live = folded.pending.len() as u64 + folded.servers.len() as u64 + 1;
        let sync = !matches!(durability, Durability::Buffered);
        if file.len() > 1 << 20 && file.len() / 64 > 4 * live {
            file.rewrite(&folded.records())?;
        } else {
            let mut records = recovered;
            records.push(Record::Mark {
                notice: folded.mark,
            });
            file.append(&records, sync)?;
        }
        let mut keys: Vec<_> = folded.pending.iter().map(|(&k, &v)| (k, v)).collect();
        keys.sort_unstable();
        let mut queue = Queue::default();
        let mut delete_authors: HashMap<u64, (u32, u32)> = HashMap::new();
        for ((notice, kind, server), (attempts, due_ms)) in keys {
            let e = Entry::new(notice, kind, server, attempts);
            if due_ms <= now_ms {
                queue.push(e);
            } else {
                queue.push_at(e, due_ms);
            }
            if kind == DeliveryKind::Delete {
                let author = folded.authors.get(&notice).copied().unwrap_or(0);
                delete_authors.entry(notice).or_insert((author, 0)).1 += 1;
            }
        }
        let mut servers = Vec::new();
        for (&s, &st) in &folded.servers {
            if servers.len() <= s as usize {
                servers.resize(s as usize + 1, ServerState::default());
            }
            servers[s as usize] = st;
        }
        Ok(Outbox {
            inner: Mutex::new(Inner {
                file,
                queue,
                in_flight: HashMap::new(),
                servers,
                delete_authors,
                next_token: 1,
                dropped: folded.dropped,
                acked: 0,
                failures: 0,
                mark: folded.mark,
                sync_enqueue: sync,
                sync_ack: matches!(durability, Durability::Always),
            }),
            examined: AtomicU64::new(folded.mark),
        })
    }

    /// Records deliveries of `notice` (by `author`) to `servers`, durable (unless the
    /// durability is `Buffered`) before it returns. Unavailable servers are skipped
    /// and counted as dropped.
    pub(crate) fn enqueue(
        &self,
        notice: u64,
        author: u32,
        kind: DeliveryKind,
        mut servers: Vec<u32>,
    ) -> Result<()> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let before = servers.len();
        servers.retain(|&s| !inner.server(s).unavailable);
        inner.dropped += (before - servers.len()) as u64;
        if servers.is_empty() {
            return Ok(());
        }
        let count = servers.len() as u32;
        let record = Record::Enqueue {
            notice,
            author,
            kind,
            servers,
        };
        inner
            .file
            .append(std::slice::from_ref(&record), inner.sync_enqueue)?;
        let Record::Enqueue { servers, .. } = record else {
            unreachable!("built above")
        };
        for s in servers {
            inner.queue.push(Entry::new(notice, kind, s, 0));
        }
        if kind == DeliveryKind::Delete {
            inner.delete_authors.entry(notice).or_insert((author, 0)).1 += count;
        }
        Ok(())
    }

    /// Notes that local notice `notice` was examined for remote followers.
    pub(crate) fn examined(&self, notice: u64) {
        self.examined.fetch_max(notice, Ordering::Relaxed);
    }

    /// A local notice was deleted: drops its pending creates (those not in flight).
    pub(crate) fn cancel_creates(&self, notice: u64) -> Result<()> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        if inner.queue.len() == 0 {
            return Ok(());
        }
        let gone = inner
            .queue
            .retain(|e| !(e.notice() == notice && e.kind() == DeliveryKind::Create));
        if gone > 0 {
            inner
                .file
                .append(&[Record::Cancel { notice }], inner.sync_enqueue)?;
        }
        Ok(())
    }

    /// Hands out up to `max` due deliveries. One whose notice is gone, or whose
    /// server has no followers of the author any more, is done without leaving. The
    /// lock is held to take the entries and to mark the done ones, not while the
    /// followers are read from the graph, so posts enqueue meanwhile.
    pub(crate) fn take(&self, max: usize, now_ms: u64, resolve: &dyn Resolve) -> Vec<Delivery> {
        // (entry, token, the author of a delete)
        let mut taken = Vec::new();
        {
            let mut g = self.inner.lock();
            let inner = &mut *g;
            while taken.len() < max {
                let Some(e) = inner.queue.pop(now_ms) else {
                    break;
                };
                let token = inner.next_token;
                inner.next_token += 1;
                inner
                    .in_flight
                    .insert(key(e.notice(), e.kind(), e.server), (token, e.attempts()));
                let delete_author = match e.kind() {
                    DeliveryKind::Create => None,
                    DeliveryKind::Delete => inner.delete_authors.get(&e.notice()).map(|a| a.0),
                };
                taken.push((e, token, delete_author));
            }
        }
        let mut out = Vec::with_capacity(taken.len());
        let mut done = Vec::new();
        for (e, token, delete_author) in taken {
            let (notice, kind) = (e.notice(), e.kind());
            let author = match kind {
                DeliveryKind::Create => resolve.author(notice),
                DeliveryKind::Delete => delete_author,
            };
            let followers = author.map(|a| resolve.followers_on(a, e.server));
            match followers.filter(|f| !f.is_empty()) {
                Some(followers) => out.push(Delivery {
                    notice: NoticeId(notice),
                    server: resolve.host(e.server),
                    followers,
                    kind,
                    attempt: u32::from(e.attempts()) + 1,
                    token,
                }),
                None => done.push((e, token)),
            }
        }
        if !done.is_empty() {
            let mut g = self.inner.lock();
            let inner = &mut *g;
            let mut records = Vec::with_capacity(done.len());
            for (e, token) in done {
                let (notice, kind) = (e.notice(), e.kind());
                let k = key(notice, kind, e.server);
                // Nobody else knows the token: it is still in flight under it.
                if inner.in_flight.get(&k).is_some_and(|&(t, _)| t == token) {
                    inner.in_flight.remove(&k);
                }
                records.push(Record::Done {
                    notice,
                    server: e.server,
                    kind,
                });
                inner.finish_delete(notice, kind);
            }
            // Losing these marks loses nothing: at the next open each delivery is
            // looked at again (and goes out if its server gained followers meanwhile).
            // A failed write poisons the file, so the next ack, fail or enqueue
            // reports it.
            let _ = inner.file.append(&records, false);
        }
        out
    }

    /// Takes delivery `d` (to server `server`) out of flight: its failed attempts
    /// before, or [`Error::UnknownDelivery`].
    fn land(inner: &mut Inner, d: &Delivery, server: u32) -> Result<u16> {
        let k = key(d.notice.0, d.kind, server);
        match inner.in_flight.get(&k) {
            Some(&(token, attempts)) if token == d.token => {
                inner.in_flight.remove(&k);
                Ok(attempts)
            }
            _ => Err(unknown(d)),
        }
    }

    /// The deliveries reached their servers (`servers[i]` is the server of `ds[i]`):
    /// all of them are done, in one write, or none is (an unknown one, or one twice).
    pub(crate) fn ack_all(&self, ds: &[Delivery], servers: &[u32]) -> Result<()> {
        debug_assert_eq!(ds.len(), servers.len(), "a server for each delivery");
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let mut records = Vec::with_capacity(ds.len() + 1);
        let mut landed = Vec::with_capacity(ds.len());
        let mut back_ok: Vec<u32> = Vec::new();
        for (d, &server) in ds.iter().zip(servers) {
            match Self::land(inner, d, server) {
                Ok(attempts) => landed.push((key(d.notice.0, d.kind, server), d.token, attempts)),
                Err(e) => {
                    Self::unland(inner, &landed);
                    return Err(e);
                }
            }
            records.push(Record::Done {
                notice: d.notice.0,
                server,
                kind: d.kind,
            });
            if inner.server(server).failing_since_ms != 0 && !back_ok.contains(&server) {
                back_ok.push(server);
            }
        }
        // The servers back first: a write cut short keeps them with the acks before
        // the cut (a server marked ok without its acks is harmless; acks without it
        // would leave the server failing since long ago).
        records.splice(
            0..0,
            back_ok.iter().map(|&server| Record::ServerOk { server }),
        );
        if records.is_empty() {
            return Ok(());
        }
        if let Err(e) = inner.file.append(&records, inner.sync_ack) {
            // Still in flight: the caller may ack them again after a reopen.
            Self::unland(inner, &landed);
            return Err(e);
        }
        for server in back_ok {
            inner.server_mut(server).failing_since_ms = 0;
        }
        for d in ds {
            inner.finish_delete(d.notice.0, d.kind);
        }
        inner.acked += ds.len() as u64;
        Ok(())
    }

    /// Puts deliveries taken out of flight by [`Outbox::land`] back.
    fn unland(inner: &mut Inner, landed: &[((u64, u32), u64, u16)]) {
        for &(k, token, attempts) in landed {
            inner.in_flight.insert(k, (token, attempts));
        }
    }

    /// The delivery failed: due again after `retry_after` (default: [`backoff`]), or
    /// dropped with every other pending delivery to its server when the server has
    /// failed for [`UNAVAILABLE_AFTER`].
    pub(crate) fn fail(
        &self,
        d: &Delivery,
        server: u32,
        retry_after: Option<Duration>,
        now_ms: u64,
    ) -> Result<()> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let attempts = Self::land(inner, d, server)?
            .saturating_add(1)
            .min(ATTEMPT_MAX);
        inner.failures += 1;
        let (notice, kind) = (d.notice.0, d.kind);
        let state = inner.server(server);
        let mut records = Vec::new();
        let since = if state.failing_since_ms == 0 {
            records.push(Record::ServerFailing {
                server,
                since_ms: now_ms,
            });
            now_ms
        } else {
            state.failing_since_ms
        };
        let unavailable = state.unavailable
            || now_ms.saturating_sub(since) >= UNAVAILABLE_AFTER.as_millis() as u64;
        let due_ms = if unavailable {
            if !state.unavailable {
                records.push(Record::ServerUnavailable { server });
            } else {
                records.push(Record::Done {
                    notice,
                    server,
                    kind,
                });
            }
            0
        } else {
            let wait = retry_after.unwrap_or_else(|| backoff(attempts, d.token ^ now_ms));
            let due_ms =
                now_ms.saturating_add(wait.as_millis().min(u128::from(u64::MAX / 2)) as u64);
            records.push(Record::Failed {
                notice,
                server,
                kind,
                attempt: attempts,
                due_ms,
            });
            due_ms
        };
        if let Err(e) = inner.file.append(&records, false) {
            inner
                .in_flight
                .insert(key(notice, kind, server), (d.token, attempts - 1));
            return Err(e);
        }
        let st = inner.server_mut(server);
        st.failing_since_ms = since;
        if unavailable {
            st.unavailable = true;
            let mut deletes = Vec::new();
            let gone = inner.queue.retain(|e| {
                let keep = e.server != server;
                if !keep && e.kind() == DeliveryKind::Delete {
                    deletes.push(e.notice());
                }
                keep
            });
            inner.dropped += 1 + gone;
            inner.finish_delete(notice, kind);
            for n in deletes {
                inner.finish_delete(n, DeliveryKind::Delete);
            }
        } else {
            inner
                .queue
                .push_at(Entry::new(notice, kind, server, attempts), due_ms);
        }
        Ok(())
    }

    /// The server is back: deliveries are recorded for it again (those dropped stay
    /// dropped).
    pub(crate) fn recovered(&self, server: u32) -> Result<()> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        inner
            .file
            .append(&[Record::ServerRecovered { server }], inner.sync_enqueue)?;
        *inner.server_mut(server) = ServerState::default();
        Ok(())
    }

    /// Whether the server is marked unavailable.
    pub(crate) fn is_unavailable(&self, server: u32) -> bool {
        self.inner.lock().server(server).unavailable
    }

    /// Makes everything written so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        self.inner.lock().file.sync()
    }

    /// Counts.
    pub(crate) fn stats(&self) -> OutboxStats {
        let g = self.inner.lock();
        OutboxStats {
            pending: g.queue.len() as u64,
            in_flight: g.in_flight.len() as u64,
            failed: g.queue.waiting() as u64,
            unavailable_servers: g.servers.iter().filter(|s| s.unavailable).count() as u64,
            dropped: g.dropped,
            acked: g.acked,
            failures: g.failures,
            queue_bytes: g.queue.bytes() as u64,
            file_bytes: g.file.len(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let examined = *self.examined.get_mut();
        let g = self.inner.get_mut();
        if examined > g.mark {
            // Best effort: a lost mark costs a look at the notices after the last one.
            let _ = g.file.append(&[Record::Mark { notice: examined }], false);
        }
    }
}

impl Inner {
    fn server(&self, s: u32) -> ServerState {
        self.servers.get(s as usize).copied().unwrap_or_default()
    }

    fn server_mut(&mut self, s: u32) -> &mut ServerState {
        if self.servers.len() <= s as usize {
            self.servers.resize(s as usize + 1, ServerState::default());
        }
        &mut self.servers[s as usize]
    }

    /// A delivery of `notice` of `kind` is over: forget the author of a deleted
    /// notice with no delete pending any more.
    fn finish_delete(&mut self, notice: u64, kind: DeliveryKind) {
        if kind == DeliveryKind::Delete
            && let Some(a) = self.delete_authors.get_mut(&notice)
        {
            a.1 = a.1.saturating_sub(1);
            if a.1 == 0 {
                self.delete_authors.remove(&notice);
            }
        }
    }
}

fn unknown(d: &Delivery) -> Error {
    Error::UnknownDelivery {
        notice: d.notice,
        server: d.server.clone(),
        token: d.token,
    }
}
