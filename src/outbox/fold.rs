//! Replaying the outbox file: its records folded, in order, into what is pending and
//! what each server's state is. Used at open (to build the queue) and by the
//! read-only report.

use std::collections::{HashMap, HashSet};

use super::record::{DeliveryKind, Record};

/// A server's delivery state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServerState {
    /// When it started failing (ms since the Unix epoch); 0 while it takes deliveries.
    pub(crate) failing_since_ms: u64,
    /// Failed for 7 days: nothing is recorded for it until it is said to be back.
    pub(crate) unavailable: bool,
}

/// A pending delivery's attempts so far and due time (0: due now).
pub(crate) type Pending = HashMap<(u64, DeliveryKind, u32), (u16, u64)>;

/// The outbox file's records, folded.
#[derive(Default)]
pub(crate) struct Folded {
    pub(crate) pending: Pending,
    /// The author of each notice some enqueue named (deletes need it: a deleted
    /// notice's bytes are gone from the log).
    pub(crate) authors: HashMap<u64, u32>,
    pub(crate) servers: HashMap<u32, ServerState>,
    /// Deliveries dropped because their server was unavailable.
    pub(crate) dropped: u64,
    /// The last mark: every local notice up to it was examined.
    pub(crate) mark: u64,
    /// Notices enqueued since the last mark.
    pub(crate) since_mark: HashSet<u64>,
}

impl Folded {
    pub(crate) fn apply(&mut self, r: Record) {
        match r {
            Record::Enqueue {
                notice,
                author,
                kind,
                servers,
            } => {
                self.authors.insert(notice, author);
                self.since_mark.insert(notice);
                for s in servers {
                    self.pending.insert((notice, kind, s), (0, 0));
                }
            }
            Record::Done {
                notice,
                server,
                kind,
            } => {
                self.pending.remove(&(notice, kind, server));
            }
            Record::Failed {
                notice,
                server,
                kind,
                attempt,
                due_ms,
            } => {
                if let Some(p) = self.pending.get_mut(&(notice, kind, server)) {
                    *p = (attempt, due_ms);
                }
            }
            Record::ServerFailing { server, since_ms } => {
                self.servers.entry(server).or_default().failing_since_ms = since_ms;
            }
            Record::ServerOk { server } => {
                self.servers.entry(server).or_default().failing_since_ms = 0;
            }
            Record::ServerUnavailable { server } => {
                self.servers.entry(server).or_default().unavailable = true;
                let before = self.pending.len();
                self.pending.retain(|&(_, _, s), _| s != server);
                self.dropped += (before - self.pending.len()) as u64;
            }
            Record::ServerRecovered { server } => {
                self.servers.insert(server, ServerState::default());
            }
            Record::Cancel { notice } => {
                self.pending
                    .retain(|&(n, k, _), _| !(n == notice && k == DeliveryKind::Create));
            }
            Record::Mark { notice } => {
                self.mark = self.mark.max(notice);
                self.since_mark.clear();
            }
        }
    }

    /// Drops the deliveries that name a server past the `servers` registered, a
    /// notice past `last_notice` (the log's last id), or a notice whose author is not
    /// one of the `users` local users, and the states of unregistered servers. No
    /// engine writes such records but a damaged or foreign file, or one that outlived
    /// the log's newest notices in a power loss; they are counted as dropped rather
    /// than handed out. Returns how many pending deliveries went.
    pub(crate) fn forget_unknown(&mut self, servers: u32, users: u32, last_notice: u64) -> u64 {
        let authors = &self.authors;
        let before = self.pending.len();
        self.pending.retain(|&(notice, _, server), _| {
            server < servers
                && (1..=last_notice).contains(&notice)
                && authors.get(&notice).is_some_and(|&a| a < users)
        });
        self.servers.retain(|&server, _| server < servers);
        let gone = (before - self.pending.len()) as u64;
        self.dropped += gone;
        gone
    }

    /// The records of a file equivalent to this one (for a rewrite): the pending
    /// deliveries grouped by notice, their failures, the server states, the mark.
    pub(crate) fn records(&self) -> Vec<Record> {
        let mut keys: Vec<_> = self.pending.iter().map(|(&k, &v)| (k, v)).collect();
        keys.sort_unstable();
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for ((notice, kind, server), (attempt, due_ms)) in keys {
            match out.last_mut() {
                Some(Record::Enqueue {
                    notice: n,
                    kind: k,
                    servers,
                    ..
                }) if *n == notice && *k == kind => servers.push(server),
                _ => out.push(Record::Enqueue {
                    notice,
                    author: self.authors.get(&notice).copied().unwrap_or(0),
                    kind,
                    servers: vec![server],
                }),
            }
            if attempt > 0 {
                failed.push(Record::Failed {
                    notice,
                    server,
                    kind,
                    attempt,
                    due_ms,
                });
            }
        }
        out.append(&mut failed);
        let mut servers: Vec<_> = self.servers.iter().collect();
        servers.sort_unstable_by_key(|(s, _)| **s);
        for (&server, st) in servers {
            if st.failing_since_ms != 0 {
                out.push(Record::ServerFailing {
                    server,
                    since_ms: st.failing_since_ms,
                });
            }
            if st.unavailable {
                out.push(Record::ServerUnavailable { server });
            }
        }
        out.push(Record::Mark { notice: self.mark });
        out
    }
}
