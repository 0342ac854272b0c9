//! Federation: remote accounts (user ids from `users_max` up, registered in the
//! graph's registry), the delivery outbox of local notices to remote servers, and
//! remote notices coming in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::facade::{Engine, Shared};
use crate::error::{Error, Result};
use crate::graph::FollowGraph;
use crate::graph::registry::Registry;
use crate::graph::remote;
use crate::ids::{NoticeId, UserId};
use crate::log::NoticeLog;
use crate::notice::{NewNotice, Scope};
use crate::outbox::record::Record;
use crate::outbox::{Delivery, DeliveryKind, Folded, Resolve};

/// Per local user, how many remote accounts follow them, and for those with some, on
/// which servers: a post finds its servers without walking its author's followers.
/// Changes of relations with a remote end are serialised by `lock`, so that both
/// follow the graph exactly.
pub(crate) struct RemoteFollowers {
    counts: Box<[AtomicU32]>,
    /// Per local user with remote followers: (server, followers there), by server.
    servers: RwLock<HashMap<u32, Vec<(u32, u32)>>>,
    lock: Mutex<()>,
}

/// Adds `by` (1 or -1) to `server`'s count in `list`, dropping a count that reaches 0.
fn add_server(list: &mut Vec<(u32, u32)>, server: u32, by: i32) {
    match list.binary_search_by_key(&server, |&(s, _)| s) {
        Ok(i) => {
            list[i].1 = list[i].1.saturating_add_signed(by);
            if list[i].1 == 0 {
                list.remove(i);
            }
        }
        Err(i) if by > 0 => list.insert(i, (server, by.unsigned_abs())),
        Err(_) => {}
    }
}

impl RemoteFollowers {
    /// Counts the remote followers of each of the `users` local users.
    pub(crate) fn count(graph: &FollowGraph, registry: &Registry, users: u32) -> RemoteFollowers {
        let counts: Box<[AtomicU32]> = (0..users).map(|_| AtomicU32::new(0)).collect();
        let mut servers: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
        for account in 0..registry.accounts() {
            let Some(server) = registry.account_server(account) else {
                continue;
            };
            graph
                .following(UserId(users + account))
                .for_each_chunk(|chunk| {
                    for &b in chunk.iter().filter(|&&b| b < users) {
                        counts[b as usize].fetch_add(1, Ordering::Relaxed);
                        add_server(servers.entry(b).or_default(), server, 1);
                    }
                });
        }
        RemoteFollowers {
            counts,
            servers: RwLock::new(servers),
            lock: Mutex::new(()),
        }
    }

    fn has(&self, user: u32) -> bool {
        self.counts
            .get(user as usize)
            .is_some_and(|c| c.load(Ordering::Relaxed) > 0)
    }

    /// The servers of `author`'s remote followers, ascending.
    fn servers_of(&self, author: u32) -> Vec<u32> {
        self.servers
            .read()
            .get(&author)
            .map_or_else(Vec::new, |l| l.iter().map(|&(s, _)| s).collect())
    }

    /// Remote account `follower` (on `server`) started (`by` 1) or stopped (-1)
    /// following local user `followee`.
    fn moved(&self, followee: u32, server: Option<u32>, by: i32) {
        if by > 0 {
            self.counts[followee as usize].fetch_add(1, Ordering::Relaxed);
        } else {
            self.counts[followee as usize].fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(server) = server {
            let mut map = self.servers.write();
            let list = map.entry(followee).or_default();
            add_server(list, server, by);
            if list.is_empty() {
                map.remove(&followee);
            }
        }
    }
}

/// The enqueues a crash may have lost: every local notice after the outbox's last
/// mark, not deleted, not addressed to its mentions alone, whose author has remote
/// followers now and which no enqueue names.
pub(crate) fn recover(
    log: &NoticeLog,
    remote: &RemoteFollowers,
    users: u32,
    folded: &Folded,
) -> Vec<Record> {
    let mut out = Vec::new();
    for notice in log.iter_from(NoticeId(folded.mark.saturating_add(1))) {
        let (id, author) = (notice.id().0, notice.author().0);
        if notice.uri().is_some()
            || author >= users
            || notice.scope() == Scope::Addressees
            || !remote.has(author)
            || folded.since_mark.contains(&id)
        {
            continue;
        }
        let mut servers = remote.servers_of(author);
        // None are recorded for a server marked unavailable (as at a post).
        servers.retain(|s| !folded.servers.get(s).is_some_and(|st| st.unavailable));
        if !servers.is_empty() {
            out.push(Record::Enqueue {
                notice: id,
                author,
                kind: DeliveryKind::Create,
                servers,
            });
        }
    }
    out
}

impl Resolve for Shared {
    fn author(&self, notice: u64) -> Option<u32> {
        self.log.get(NoticeId(notice)).map(|n| n.author().0)
    }

    fn host(&self, server: u32) -> String {
        self.relations
            .registry
            .server(server)
            .unwrap_or_default()
            .to_owned()
    }

    /// The smaller side is walked: the server's accounts (each asked whether it
    /// follows), or the author's followers (each asked for its server).
    fn followers_on(&self, author: u32, server: u32) -> Vec<UserId> {
        let users = self.config.users_max;
        let registry = &self.relations.registry;
        let followers = self.graph.follower_count(UserId(author));
        registry.with_server_accounts(server, |accounts| {
            if (accounts.len() as u64) <= followers {
                accounts
                    .iter()
                    .map(|&a| UserId(users + a))
                    .filter(|&a| self.graph.is_following(a, UserId(author)))
                    .collect()
            } else {
                let mut out = Vec::new();
                self.graph
                    .followers(UserId(author))
                    .for_each_chunk(|chunk| {
                        for &f in chunk.iter().filter(|&&f| f >= users) {
                            if registry.account_server(f - users) == Some(server) {
                                out.push(UserId(f));
                            }
                        }
                    });
                out.sort_unstable();
                out
            }
        })
    }
}

impl Shared {
    /// Whether `user` is a registered remote account.
    pub(crate) fn is_remote(&self, user: u32) -> bool {
        user >= self.config.users_max
            && user - self.config.users_max < self.relations.registry.accounts()
    }
}

impl Engine {
    /// A local user or a registered remote account.
    pub(super) fn any_user(&self, user: UserId) -> Result<u32> {
        if user.0 < self.shared.config.users_max || self.shared.is_remote(user.0) {
            Ok(user.0)
        } else {
            Err(Error::UnknownUser {
                user,
                users_max: self.shared.config.users_max,
            })
        }
    }

    /// Runs a relation change between `a` and `b`: both local or registered remote,
    /// not both remote. With a remote end, the change is serialised and the remote
    /// follower counts move with it.
    pub(super) fn relation<T>(
        &self,
        a: UserId,
        b: UserId,
        change: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.any_user(a)?;
        self.any_user(b)?;
        let (ra, rb) = (self.shared.is_remote(a.0), self.shared.is_remote(b.0));
        if ra && rb {
            return Err(Error::InvalidRelation {
                reason: format!(
                    "{a} and {b} are both remote: relations between remote accounts are theirs"
                ),
            });
        }
        if !ra && !rb {
            return change();
        }
        let graph = &self.shared.graph;
        let remote = &self.shared.remote;
        // (remote follower, local followee) of the one edge that counts.
        let (follower, followee) = if ra { (a, b) } else { (b, a) };
        let _serial = remote.lock.lock();
        let before = graph.is_following(follower, followee);
        let out = change();
        let after = graph.is_following(follower, followee);
        let server = self
            .shared
            .relations
            .registry
            .account_server(follower.0 - self.shared.config.users_max);
        match (before, after) {
            (false, true) => remote.moved(followee.0, server, 1),
            (true, false) => remote.moved(followee.0, server, -1),
            _ => {}
        }
        out
    }

    /// Records the deliveries of local notice `id` to the servers of its author's
    /// remote followers.
    pub(super) fn enqueue_post(&self, id: NoticeId, author: u32, scope: Scope) -> Result<()> {
        let s = &self.shared;
        if scope != Scope::Addressees && s.remote.has(author) {
            let servers = s.remote.servers_of(author);
            if !servers.is_empty() {
                s.outbox
                    .enqueue(id.0, author, DeliveryKind::Create, servers)?;
            }
        }
        s.outbox.examined(id.0);
        Ok(())
    }

    /// Local notice `id` by `author` is being deleted: a delete goes to every server
    /// of the author's remote followers (one that never got the create ignores it, as
    /// ActivityPub servers do with a `Delete` of an object they do not know; a create
    /// that was handed out and failed may have arrived all the same).
    pub(super) fn enqueue_deletes(&self, id: NoticeId, author: u32) -> Result<()> {
        let s = &self.shared;
        if !s.remote.has(author) {
            return Ok(());
        }
        let servers = s.remote.servers_of(author);
        if !servers.is_empty() {
            s.outbox
                .enqueue(id.0, author, DeliveryKind::Delete, servers)?;
        }
        Ok(())
    }

    /// Registers the remote account `actor_uri` on the remote server `server` (its
    /// host, `name[:port]`, taken in lower case) and returns its user id: the same id
    /// for the same uri every time. Remote accounts take the ids from
    /// `Config::users_max` up, so they never collide with local users; they follow
    /// and are followed like local users ([`Engine::follow`]), but have no home
    /// timeline, and two remote accounts cannot be related.
    ///
    /// Errors: [`Error::InvalidRemote`] for a malformed server or uri,
    /// [`Error::RemoteConflict`] when the uri is registered on another server,
    /// [`Error::TooMany`] past `Config::remote_users_max`.
    pub fn register_remote(&self, server: &str, actor_uri: &str) -> Result<UserId> {
        let host = remote::host(server)?;
        remote::uri(actor_uri)?;
        let registry = &self.shared.relations.registry;
        let server = registry.server_or_register(&host)?;
        let account = registry.account_or_register(server, actor_uri)?;
        Ok(UserId(self.shared.config.users_max + account))
    }

    /// Whether `user` is a registered remote account.
    pub fn is_remote(&self, user: UserId) -> bool {
        self.shared.is_remote(user.0)
    }

    /// The server (host) of remote account `user`; `None` for a local or unknown user.
    pub fn remote_server(&self, user: UserId) -> Option<&str> {
        if !self.is_remote(user) {
            return None;
        }
        let registry = &self.shared.relations.registry;
        registry
            .account_server(user.0 - self.shared.config.users_max)
            .and_then(|s| registry.server(s))
    }

    /// Stores a notice received from a remote server: its author must be a registered
    /// remote account and it must carry the uri it has there. It reaches the home
    /// timelines of the author's local followers like a local post (see
    /// [`Engine::post`]); it is never delivered to remote servers. A notice is stored
    /// once per uri: a repeat with the same body returns the stored id, a repeat with
    /// another body is [`Error::UriConflict`] (the first one stays).
    ///
    /// Errors: [`Error::UnknownUser`] for an author that is not a registered remote
    /// account, [`Error::InvalidRemote`] for a missing or malformed uri, and those of
    /// [`Engine::post`].
    pub fn post_remote(&self, notice: NewNotice) -> Result<NoticeId> {
        if !self.shared.is_remote(notice.author.0) {
            return Err(Error::UnknownUser {
                user: notice.author,
                users_max: self.shared.config.users_max,
            });
        }
        let Some(uri) = notice.uri.as_deref() else {
            return Err(Error::InvalidRemote {
                reason: "a remote notice carries its uri".into(),
            });
        };
        remote::uri(uri)?;
        let same = |existing: NoticeId| match self.shared.log.get(existing) {
            Some(stored) if stored.body() == notice.body && stored.author() == notice.author => {
                Ok(existing)
            }
            _ => Err(Error::UriConflict { existing }),
        };
        if let Some(existing) = self.shared.log.find_uri(uri) {
            return same(existing);
        }
        match self.post_checked(notice.clone()) {
            Err(Error::DuplicateUri { existing }) => same(existing),
            other => other,
        }
    }

    /// Takes up to `max` deliveries that are due: each the notice (or its deletion)
    /// for one remote server, addressed to the author's followers there. Each must
    /// come back through [`Engine::ack`] or [`Engine::fail`]; one neither acked nor
    /// failed is handed out again after the store is reopened (at least once), one
    /// acked never is.
    ///
    /// Taking deliveries writes nothing the caller must wait for (deliveries found to
    /// have no followers left are marked done on the way, and a failure to write that
    /// mark shows at the next write, which it makes fail); so it returns no error.
    pub fn deliveries(&self, max: usize) -> Vec<Delivery> {
        let now = self.shared.config.clock.now_ms();
        self.shared.outbox.take(max, now, &*self.shared)
    }

    fn server_of(&self, d: &Delivery) -> Result<u32> {
        self.shared
            .relations
            .registry
            .server_id(&d.server)
            .ok_or_else(|| Error::UnknownDelivery {
                notice: d.notice,
                server: d.server.clone(),
                token: d.token,
            })
    }

    /// The delivery reached its server: it is done for good (written before this
    /// returns; synced with `Durability::Always`).
    ///
    /// Errors: [`Error::UnknownDelivery`] when `d` is not in flight under its token
    /// (never handed out, acked or failed already).
    pub fn ack(&self, d: &Delivery) -> Result<()> {
        self.ack_all(std::slice::from_ref(d))
    }

    /// [`Engine::ack`] of each of `ds`, in one write: a worker that delivered a batch
    /// acks it at the cost of one. All are acked, or (on an error) none is in
    /// memory: they stay in flight, and may be acked again (the file may hold the
    /// acks already when the error was a failed `fdatasync`; a second ack is then a
    /// no-op after the reopen). A crash during the write may keep a prefix of the
    /// batch, and the rest is handed out again after the reopen (at least once).
    ///
    /// Errors: [`Error::UnknownDelivery`] for the first of `ds` that is not in flight
    /// under its token, or that comes twice in `ds`; nothing is acked then.
    pub fn ack_all(&self, ds: &[Delivery]) -> Result<()> {
        let servers = ds
            .iter()
            .map(|d| self.server_of(d))
            .collect::<Result<Vec<u32>>>()?;
        self.shared.outbox.ack_all(ds, &servers)
    }

    /// The delivery failed: it is handed out again after `retry_after`, or by
    /// default after an exponential backoff with jitter (about 10 s, doubling per
    /// failure, at most 6 hours, each wait cut by a random amount up to a half). A
    /// server that has failed every delivery for 7 days is marked unavailable: its
    /// pending deliveries are dropped (and counted in the stats), and none are
    /// recorded for it until [`Engine::server_recovered`].
    ///
    /// Errors: [`Error::UnknownDelivery`] when `d` is not in flight under its token.
    pub fn fail(&self, d: &Delivery, retry_after: Option<Duration>) -> Result<()> {
        let server = self.server_of(d)?;
        let now = self.shared.config.clock.now_ms();
        self.shared.outbox.fail(d, server, retry_after, now)
    }

    /// The remote server `server` (a host as [`Engine::register_remote`] takes it) is
    /// back: deliveries are recorded for it again; those dropped while it was
    /// unavailable stay dropped.
    ///
    /// Errors: [`Error::UnknownServer`] for a server never registered.
    pub fn server_recovered(&self, server: &str) -> Result<()> {
        let host = remote::host(server)?;
        let id = self
            .shared
            .relations
            .registry
            .server_id(&host)
            .ok_or_else(|| Error::UnknownServer {
                server: server.to_owned(),
            })?;
        self.shared.outbox.recovered(id)
    }

    /// The outbox's counts (as in [`Engine::stats`], without the rest of it: one
    /// lock, cheap enough to poll).
    pub fn outbox_stats(&self) -> crate::OutboxStats {
        self.shared.outbox.stats()
    }

    /// Whether the remote server `server` is marked unavailable (failing for 7 days).
    pub fn server_unavailable(&self, server: &str) -> bool {
        remote::host(server)
            .ok()
            .and_then(|h| self.shared.relations.registry.server_id(&h))
            .is_some_and(|id| self.shared.outbox.is_unavailable(id))
    }
}
