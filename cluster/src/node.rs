//! A cluster node: one partition's users in their own [`Engine`], the messages to the
//! other partitions published to JetStream, and the messages for this partition
//! consumed from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use bytes::Bytes;
use feedcore::{Durability, Engine, NewNotice, NoticeId, NoticeRef, Page, TimelinePage, UserId};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::error::{Error, Result, nats};
use crate::outbox::Outbox;
use crate::partition::{GlobalId, PARTITIONS_MAX, partition_of};
use crate::tombstones::Tombstones;
use crate::wire::{self, Message, WireNotice};

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's partition, `0..partitions`.
    pub partition: u32,
    /// Partitions in the cluster, 1 to [`PARTITIONS_MAX`]; the same on every node.
    pub partitions: u32,
    /// The node's store: the engine in `dir/engine`, the published mark in
    /// `dir/cluster`.
    pub dir: PathBuf,
    /// NATS servers to connect to (`nats://127.0.0.1:4222`, ...); the client moves
    /// to another one when its server goes away.
    pub nats_urls: Vec<String>,
    /// The engine's configuration; `users_max` is the cluster's (user ids are the
    /// same on every node). Received notices are made durable before they are acked,
    /// whatever `durability` says.
    pub engine: feedcore::Config,
    /// The JetStream stream that carries every partition's subject. Default `FEEDCORE`.
    pub stream: String,
    /// Subjects are `<subject_prefix>.<partition>`. Default `feedcore.fanout`.
    pub subject_prefix: String,
    /// Replicas of the stream (and of the consumers). Default 3.
    pub replicas: usize,
    /// A message not acked this long after delivery is delivered again (the time a
    /// node killed mid-batch takes to get its batch back). Default 2 s.
    pub ack_wait: Duration,
    /// Messages fetched from JetStream in one go, applied, then acked. Default 512.
    pub batch_max: usize,
}

impl NodeConfig {
    /// The defaults for partition `partition` of `partitions`, stored in `dir`.
    pub fn new(
        partition: u32,
        partitions: u32,
        dir: impl Into<PathBuf>,
        nats_urls: Vec<String>,
    ) -> NodeConfig {
        NodeConfig {
            partition,
            partitions,
            dir: dir.into(),
            nats_urls,
            engine: feedcore::Config::default(),
            stream: "FEEDCORE".into(),
            subject_prefix: "feedcore.fanout".into(),
            replicas: 3,
            ack_wait: Duration::from_secs(2),
            batch_max: 512,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { reason });
        if !(1..=PARTITIONS_MAX).contains(&self.partitions) {
            return bad(format!(
                "partitions is {}; it must be 1 to {PARTITIONS_MAX}",
                self.partitions
            ));
        }
        if self.partition >= self.partitions {
            return bad(format!(
                "partition {} is not below partitions {}",
                self.partition, self.partitions
            ));
        }
        if self.nats_urls.is_empty() {
            return bad("no NATS url".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return bad(format!(
                "replicas is {}; JetStream allows 1 to 5",
                self.replicas
            ));
        }
        if self.batch_max == 0 {
            return bad("batch_max must be at least 1".into());
        }
        Ok(())
    }

    fn subject(&self, partition: u32) -> String {
        format!("{}.{partition}", self.subject_prefix)
    }
}

/// What a node counts (since it was opened).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Posts by this partition's users.
    pub posts: u64,
    /// Messages this node had JetStream store (each retry of one counted once).
    pub published: u64,
    /// Publishes JetStream answered as duplicates (a retry of one it had stored).
    pub published_duplicates: u64,
    /// Publishes retried after an error or a missing answer.
    pub publish_retries: u64,
    /// Messages those publishes carried (one a notice copy or relation change; a
    /// publish carries a batch of them when several wait for one partition).
    pub messages_sent: u64,
    /// Messages applied from this partition's subject.
    pub applied: u64,
    /// Notices received that were stored already (a redelivery): acked, not stored.
    pub duplicates: u64,
    /// Messages refused (undecodable, a notice the engine refuses): acked and dropped.
    pub refused: u64,
    /// Notices sent again to a partition that gained its first follower of an author.
    pub backfilled: u64,
    /// Bytes of message payload and headers this node's client sent to NATS.
    pub bytes_out: u64,
    /// Bytes this node's client received from NATS.
    pub bytes_in: u64,
    /// Cross-partition lag, milliseconds: from the post at its origin to the copy
    /// stored here (new posts only, not backfills): median, 99th percentile, maximum.
    pub cross_lag_ms_p50: f64,
    /// See `cross_lag_ms_p50`.
    pub cross_lag_ms_p99: f64,
    /// See `cross_lag_ms_p50`.
    pub cross_lag_ms_max: f64,
}

/// One message for JetStream, and the post it completes (for the outbox).
struct Outgoing {
    publish: Option<(String, String, Bytes)>,
    completes: Option<u64>,
}

#[derive(Default)]
struct Counters {
    posts: AtomicU64,
    published: AtomicU64,
    published_duplicates: AtomicU64,
    publish_retries: AtomicU64,
    messages_sent: AtomicU64,
    applied: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    backfilled: AtomicU64,
}

/// What the node's threads share.
struct Shared {
    config: NodeConfig,
    engine: Engine,
    client: async_nats::Client,
    js: jetstream::Context,
    outbox: Outbox,
    tombstones: Tombstones,
    counters: Counters,
    lag_us: Mutex<Histogram<u64>>,
    /// Set by `Drop`: the publisher and the consumer stop.
    stopping: AtomicBool,
    /// The consumer's view of this partition's subject: messages not yet delivered
    /// plus delivered and not acked, as of its last look (u64::MAX before one).
    backlog: AtomicU64,
    /// Messages the consumer holds between fetch and ack.
    in_hand: AtomicU64,
    /// Names this run's batches (with `batches`): a batch made after a restart never
    /// takes the `Nats-Msg-Id` of an earlier one with other contents.
    run_nonce: u64,
    batches: AtomicU64,
    /// Held by a delete and by a backfill (see `Node::delete`).
    deleting: tokio::sync::Mutex<()>,
}

/// Messages to publish: subject, `Nats-Msg-Id`, payload, and how many messages the
/// payload carries (more than one for a batch).
type Publish = (String, String, Bytes, u64);

/// A cluster node. See the crate docs for what travels where.
pub struct Node {
    // Field order is drop order: the threads stop before the runtime they use goes.
    consumer: Option<JoinHandle<()>>,
    publisher_tx: Option<mpsc::UnboundedSender<Outgoing>>,
    publisher: Option<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Node {
    /// Opens the node's engine, connects to NATS, makes sure the stream and this
    /// partition's durable consumer exist, republishes what may not have been
    /// published before a crash, and starts consuming.
    pub fn open(config: NodeConfig) -> Result<Node> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name(format!("feedcore-node-{}", config.partition))
            .build()
            .map_err(|source| Error::Io {
                what: "starting the node's runtime".into(),
                source,
            })?;
        let engine = Engine::open(config.dir.join("engine"), config.engine.clone())?;
        let outbox = Outbox::open(&config.dir.join("cluster"))?;
        let tombstones = Tombstones::open(&config.dir.join("cluster"))?;
        let (client, js) = runtime.block_on(connect(&config))?;
        let shared = Arc::new(Shared {
            config,
            engine,
            client,
            js,
            outbox,
            tombstones,
            counters: Counters::default(),
            lag_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
            stopping: AtomicBool::new(false),
            backlog: AtomicU64::new(u64::MAX),
            in_hand: AtomicU64::new(0),
            run_nonce: now_us(),
            batches: AtomicU64::new(0),
            deleting: tokio::sync::Mutex::new(()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let publisher = runtime.spawn(publish_loop(Arc::clone(&shared), rx));
        let mut node = Node {
            consumer: None,
            publisher_tx: Some(tx),
            publisher: Some(publisher),
            shared,
            runtime,
        };
        node.republish_unpublished()?;
        let shared = Arc::clone(&node.shared);
        let handle = node.runtime.handle().clone();
        let consumer = std::thread::Builder::new()
            .name(format!("feedcore-consume-{}", shared.config.partition))
            .spawn(move || handle.block_on(consume_loop(shared)))
            .map_err(|source| Error::Io {
                what: "starting the consumer thread".into(),
                source,
            })?;
        node.consumer = Some(consumer);
        Ok(node)
    }

    /// Sends again every notice of this node's users past the published mark.
    fn republish_unpublished(&self) -> Result<()> {
        let from = self.shared.outbox.mark() + 1;
        let engine = &self.shared.engine;
        let ids: Vec<NoticeId> = engine
            .log()
            .iter_from(NoticeId(from))
            .filter(|n| self.owns(n.author()))
            .map(|n| n.id())
            .collect();
        for id in ids {
            self.shared.outbox.reopen(id.0);
            self.enqueue_post(id, now_us(), false);
        }
        Ok(())
    }

    /// This node's partition.
    pub fn partition(&self) -> u32 {
        self.shared.config.partition
    }

    /// Whether `user` is one of this node's partition's users.
    pub fn owns(&self, user: UserId) -> bool {
        self.shared.owns(user.0)
    }

    fn mine(&self, user: UserId) -> Result<()> {
        if self.owns(user) {
            Ok(())
        } else {
            Err(Error::NotMine {
                user,
                owner: partition_of(user.0, self.shared.config.partitions),
                partition: self.shared.config.partition,
            })
        }
    }

    /// The node's engine, for reads and queries. Change relations and post through
    /// the node, or the other partitions never hear of it.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Posts a notice by one of this node's users. `reply_to` and `repeat_of` are ids
    /// of this node's log (what its timelines show). Returns once the notice is
    /// durable here as the engine's `durability` says; the copies for followers on
    /// other partitions are published behind (see [`Node::flush`]), and a node that
    /// crashes before they are stored publishes them when it opens again.
    pub fn post(&self, notice: NewNotice) -> Result<GlobalId> {
        self.mine(notice.author)?;
        let shared = &self.shared;
        let floor = shared.engine.log().len() + 1;
        shared.outbox.begin(floor);
        let sent_at_us = now_us();
        let id = match shared.engine.post(notice) {
            Ok(id) => id,
            Err(e) => {
                shared.outbox.appended(floor, None);
                return Err(e.into());
            }
        };
        shared.outbox.appended(floor, Some(id.0));
        shared.counters.posts.fetch_add(1, Ordering::Relaxed);
        self.enqueue_post(id, sent_at_us, false);
        Ok(GlobalId::new(shared.config.partition, id))
    }

    /// Queues the messages of this node's notice `id` to every partition that has a
    /// follower of its author or a user it mentions (a reply or a repeat goes with the
    /// notice it refers to, so the receiver can store the reference). Clears `id` in
    /// the outbox once they are stored.
    fn enqueue_post(&self, id: NoticeId, sent_at_us: u64, backfill: bool) {
        let tx = self.publisher_tx.as_ref().expect("set until drop");
        let messages = self.shared.post_messages(id, sent_at_us, backfill, None);
        for out in messages {
            // A send fails only once the publisher stopped (the node is closing); the
            // outbox keeps the notice for the next open.
            let _ = tx.send(out);
        }
        let _ = tx.send(Outgoing {
            publish: None,
            completes: Some(id.0),
        });
    }

    /// Deletes a notice this node wrote: here first (it vanishes from every stream
    /// here, and no copy of it is made from now on), then, once every copy made before
    /// is stored by JetStream, the other partitions are told (their copies vanish when
    /// they apply it, after any copy of it before it on their subject). A failure after
    /// the first step leaves copies elsewhere; deleting again completes it.
    pub fn delete(&self, id: GlobalId) -> Result<()> {
        let shared = &self.shared;
        let not_own = |reason: String| Err(Error::NotOwnNotice { reason });
        if id.partition != shared.config.partition {
            return not_own(format!(
                "notice {id} was written on partition {}; delete it there",
                id.partition
            ));
        }
        if id.local.0 == 0 || id.local.0 > shared.engine.log().len() {
            return Err(feedcore::Error::UnknownNotice { id: id.local }.into());
        }
        if let Some(n) = shared.engine.notice(id.local)
            && !self.owns(n.author())
        {
            return not_own(format!(
                "local notice {} is a copy of {}; delete it on its origin",
                id.local.0,
                n.uri().unwrap_or("?")
            ));
        }
        // Backfills read whole user streams and publish them: none may straddle the
        // delete, or a copy could be stored after the delete message.
        let _deleting = self.runtime.block_on(shared.deleting.lock());
        match shared.engine.delete(id.local) {
            // Deleted before: this is the retry that tells the other partitions.
            Ok(()) | Err(feedcore::Error::UnknownNotice { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        // A reply posted before the delete may carry a copy of it: out first.
        self.wait_published(shared.engine.log().len())?;
        let payload = Bytes::from(wire::encode(&Message::Delete { id }));
        let mut batch = Vec::new();
        for p in (0..shared.config.partitions).filter(|&p| p != shared.config.partition) {
            batch.push((
                shared.config.subject(p),
                format!("del:{id}>{p}"),
                payload.clone(),
            ));
        }
        self.runtime.block_on(shared.publish_all(batch))
    }

    /// Waits until every post of this node up to id `id` has its copies stored: the
    /// outbox mark passes `id`, or nothing is open (the ids past the mark are copies).
    fn wait_published(&self, id: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.shared.outbox.mark() < id && !self.shared.outbox.is_empty() {
            if Instant::now() > deadline {
                return Err(Error::Nats {
                    what: "waiting for a notice's copies to be published",
                    reason: "not stored after 60 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// `a` (this node's user) follows `b` (anyone). For a `b` on another partition,
    /// `b`'s node is told first (it starts sending `b`'s notices here, and sends the
    /// ones this node lacks), then the follow is made here; a failure between the two
    /// leaves `b`'s node sending notices nobody here reads, and following again
    /// completes it.
    pub fn follow(&self, a: UserId, b: UserId) -> Result<bool> {
        self.mine(a)?;
        if !self.owns(b) {
            if self.shared.engine.graph().is_following(a, b) {
                return Ok(false);
            }
            self.route(
                b,
                Message::Follow {
                    follower: a.0,
                    followee: b.0,
                },
            )?;
        }
        Ok(self.shared.engine.follow(a, b)?)
    }

    /// `a` stops following `b`: here at once, then on `b`'s node.
    pub fn unfollow(&self, a: UserId, b: UserId) -> Result<bool> {
        self.mine(a)?;
        let changed = self.shared.engine.unfollow(a, b)?;
        if !self.owns(b) {
            self.route(
                b,
                Message::Unfollow {
                    follower: a.0,
                    followee: b.0,
                },
            )?;
        }
        Ok(changed)
    }

    /// `a` (this node's user) blocks `b`: `b`'s node is told first, then the block is
    /// made here; follows both ways end on both nodes.
    pub fn block(&self, a: UserId, b: UserId) -> Result<bool> {
        self.mine(a)?;
        if !self.owns(b) {
            self.route(
                b,
                Message::Block {
                    blocker: a.0,
                    blocked: b.0,
                },
            )?;
        }
        Ok(self.shared.engine.block(a, b)?)
    }

    /// `a` lifts its block of `b`, here and on `b`'s node.
    pub fn unblock(&self, a: UserId, b: UserId) -> Result<bool> {
        self.mine(a)?;
        let changed = self.shared.engine.unblock(a, b)?;
        if !self.owns(b) {
            self.route(
                b,
                Message::Unblock {
                    blocker: a.0,
                    blocked: b.0,
                },
            )?;
        }
        Ok(changed)
    }

    /// `a` mutes `b`. Only `a`'s reads change, so only this node records it.
    pub fn mute(&self, a: UserId, b: UserId) -> Result<bool> {
        self.mine(a)?;
        Ok(self.shared.engine.mute(a, b)?)
    }

    /// `a` unmutes `b`.
    pub fn unmute(&self, a: UserId, b: UserId) -> Result<bool> {
        self.mine(a)?;
        Ok(self.shared.engine.unmute(a, b)?)
    }

    /// Publishes a relation message to `user`'s partition and waits until it is stored.
    fn route(&self, user: UserId, message: Message) -> Result<()> {
        let shared = &self.shared;
        let p = partition_of(user.0, shared.config.partitions);
        let payload = Bytes::from(wire::encode(&message));
        // Relation messages are not deduplicated by id: following, unfollowing and
        // following again are three messages. Each is idempotent where it lands.
        let msg_id = format!("rel:{}:{}", shared.config.partition, now_us());
        self.runtime
            .block_on(shared.publish_all(vec![(shared.config.subject(p), msg_id, payload)]))
    }

    /// A page of `user`'s home timeline, in this node's local ids (see
    /// [`Node::global_id`]). Newest first as this node stored them: notices from one
    /// partition keep their order; notices from different partitions, and those sent
    /// when a follow began, are in the order they arrived here.
    pub fn home_timeline(&self, user: UserId, page: Page) -> Result<TimelinePage> {
        self.mine(user)?;
        Ok(self.shared.engine.home_timeline(user, page)?)
    }

    /// A page of `user`'s own notices.
    pub fn user_timeline(&self, user: UserId, page: Page) -> Result<TimelinePage> {
        self.mine(user)?;
        Ok(self.shared.engine.user_timeline(user, user, page)?)
    }

    /// A page of the notices that mention `user`.
    pub fn mentions(&self, user: UserId, page: Page) -> Result<TimelinePage> {
        self.mine(user)?;
        Ok(self.shared.engine.mentions(user, page)?)
    }

    /// The global id of this node's notice `id`; `None` when missing or deleted.
    pub fn global_id(&self, id: NoticeId) -> Option<GlobalId> {
        let notice = self.shared.engine.notice(id)?;
        self.shared.global_id_of(&notice)
    }

    /// This node's id for the notice `id` of the cluster; `None` when not stored here.
    pub fn local_id(&self, id: GlobalId) -> Option<NoticeId> {
        self.shared.resolve(id)
    }

    /// Waits until every post made before the call is in this node's timelines and
    /// its copies are stored by JetStream, and writes the published mark.
    pub fn flush(&self) -> Result<()> {
        self.shared.engine.flush()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.shared.outbox.is_empty() {
            if Instant::now() > deadline {
                return Err(Error::Nats {
                    what: "flushing the copies of this node's posts",
                    reason: "not all stored after 60 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared.outbox.persist()
    }

    /// Whether this node has nothing left to do as far as it can see: its posts'
    /// copies are stored, and its subject has no message waiting or unacked. A
    /// cluster is quiet when every node says so twice in a row with nothing applied
    /// in between.
    pub fn is_idle(&self) -> bool {
        self.shared.outbox.is_empty()
            && self.shared.backlog.load(Ordering::Acquire) == 0
            && self.shared.in_hand.load(Ordering::Acquire) == 0
            && self.shared.engine.stats().pending_posts == 0
    }

    /// Counts and lags.
    pub fn stats(&self) -> NodeStats {
        let c = &self.shared.counters;
        let lag = self.shared.lag_us.lock();
        let ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
        let wire = self.shared.client.statistics();
        NodeStats {
            posts: c.posts.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            published_duplicates: c.published_duplicates.load(Ordering::Relaxed),
            publish_retries: c.publish_retries.load(Ordering::Relaxed),
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
            applied: c.applied.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            backfilled: c.backfilled.load(Ordering::Relaxed),
            bytes_out: wire.out_bytes.load(Ordering::Relaxed),
            bytes_in: wire.in_bytes.load(Ordering::Relaxed),
            cross_lag_ms_p50: ms(0.5),
            cross_lag_ms_p99: ms(0.99),
            cross_lag_ms_max: lag.max() as f64 / 1000.0,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(consumer) = self.consumer.take() {
            let _ = consumer.join();
        }
        // Closing the channel ends the publisher once what is queued is stored (or
        // given up on at `stopping`: the outbox mark keeps it for the next open).
        self.publisher_tx = None;
        if let Some(publisher) = self.publisher.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), publisher).await });
        }
        let _ = self.shared.outbox.persist();
    }
}

async fn connect(config: &NodeConfig) -> Result<(async_nats::Client, jetstream::Context)> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("feedcore-node-{}", config.partition))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .connect(config.nats_urls.clone());
    let client = tokio::time::timeout(Duration::from_secs(20), client)
        .await
        .map_err(nats("connecting"))?
        .map_err(nats("connecting"))?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(2));
    let stream_config = stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.*", config.subject_prefix)],
        // Interest: a message goes once its partition's consumer acked it. Every
        // node creates every partition's consumer before it publishes (below), so no
        // message meets a subject without its consumer.
        retention: stream::RetentionPolicy::Interest,
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    // Right after the servers start, JetStream may have no meta leader yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match js.get_or_create_stream(stream_config.clone()).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(nats("creating the stream")(e)),
        }
    }
    for p in 0..config.partitions {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = match js.get_stream(&config.stream).await {
                Ok(stream) => stream
                    .get_or_create_consumer(&consumer_name(p), consumer_config(config, p))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match created {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(nats("creating the partitions' consumers")(e)),
            }
        }
    }
    Ok((client, js))
}

fn consumer_name(partition: u32) -> String {
    format!("node-{partition}")
}

/// Partition `p`'s durable pull consumer. Ack policy explicit: a message a node got
/// and did not ack (it died) comes again after `ack_wait`, even when later ones were
/// acked meanwhile.
fn consumer_config(config: &NodeConfig, p: u32) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(consumer_name(p)),
        filter_subject: config.subject(p),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        max_ack_pending: 100_000,
        num_replicas: config.replicas,
        ..Default::default()
    }
}

impl Shared {
    fn owns(&self, user: u32) -> bool {
        partition_of(user, self.config.partitions) == self.config.partition
    }

    /// The global id of a notice in this node's log: its own, or the one its uri
    /// names for a copy.
    fn global_id_of(&self, notice: &NoticeRef<'_>) -> Option<GlobalId> {
        if self.owns(notice.author().0) {
            Some(GlobalId::new(self.config.partition, notice.id()))
        } else {
            notice.uri().and_then(GlobalId::from_uri)
        }
    }

    /// This node's id for a notice of the cluster.
    fn resolve(&self, id: GlobalId) -> Option<NoticeId> {
        if id.partition == self.config.partition {
            self.engine.notice(id.local).map(|n| n.id())
        } else {
            self.engine
                .log()
                .find_uri(&id.uri())
                .filter(|&local| self.engine.notice(local).is_some())
        }
    }

    fn wire_notice(
        &self,
        notice: &NoticeRef<'_>,
        sent_at_us: u64,
        backfill: bool,
    ) -> Option<WireNotice> {
        let id = self.global_id_of(notice)?;
        let gid = |local: Option<NoticeId>| {
            local
                .and_then(|l| self.engine.notice(l))
                .and_then(|n| self.global_id_of(&n))
        };
        Some(WireNotice {
            id,
            author: notice.author().0,
            created_at_ms: notice.created_at_ms(),
            sent_at_us,
            scope: notice.scope(),
            backfill,
            reply_to: gid(notice.reply_to()),
            repeat_of: gid(notice.repeat_of()),
            conversation: notice.conversation(),
            group: notice.group().map(|g| g.0),
            reply_to_author: notice.reply_to_author().map(|u| u.0),
            mentions: notice.mentions().map(|m| m.0).collect(),
            tags: notice.tags().map(str::to_owned).collect(),
            body: notice.body().to_owned(),
        })
    }

    /// The partitions other than this one that have a follower of `author`.
    fn follower_partitions(&self, author: UserId) -> u64 {
        let mut mask = 0u64;
        let partitions = self.config.partitions;
        self.engine
            .graph()
            .followers(author)
            .for_each_chunk(|users| {
                for &u in users {
                    mask |= 1 << partition_of(u, partitions);
                }
            });
        mask & !(1 << self.config.partition)
    }

    /// The messages that carry notice `id` to the partitions that need it (all of
    /// them, or only `only`), the notices it refers to first.
    fn post_messages(
        &self,
        id: NoticeId,
        sent_at_us: u64,
        backfill: bool,
        only: Option<u32>,
    ) -> Vec<Outgoing> {
        let Some(notice) = self.engine.notice(id) else {
            return Vec::new(); // deleted since
        };
        let mut mask = match only {
            Some(p) => 1u64 << p,
            None => {
                let mut mask = self.follower_partitions(notice.author());
                for m in notice.mentions() {
                    mask |= 1 << partition_of(m.0, self.config.partitions);
                }
                mask & !(1 << self.config.partition)
            }
        };
        if mask == 0 {
            return Vec::new();
        }
        let mut notices = Vec::new();
        for r in [notice.reply_to(), notice.repeat_of()]
            .into_iter()
            .flatten()
        {
            if let Some(referred) = self.engine.notice(r)
                && let Some(w) = self.wire_notice(&referred, sent_at_us, true)
            {
                notices.push(w);
            }
        }
        match self.wire_notice(&notice, sent_at_us, backfill) {
            Some(w) => notices.push(w),
            None => mask = 0,
        }
        let mut out = Vec::new();
        while mask != 0 {
            let p = mask.trailing_zeros();
            mask &= mask - 1;
            for w in &notices {
                out.push(Outgoing {
                    publish: Some((
                        self.config.subject(p),
                        format!("{}>{p}", w.id),
                        Bytes::from(wire::encode(&Message::Notice(w.clone()))),
                    )),
                    completes: None,
                });
            }
        }
        out
    }

    /// Groups messages into one publish per partition (in order, at most
    /// `BATCH_MESSAGES_MAX` or about 64 KiB a publish); a lone message keeps its own
    /// `Nats-Msg-Id`, a batch gets one of this run's.
    fn group(&self, messages: Vec<(String, String, Bytes)>) -> Vec<Publish> {
        const BATCH_BYTES_MAX: usize = 64 << 10;
        let mut by_subject: Vec<(String, Vec<(String, Bytes)>)> = Vec::new();
        for (subject, msg_id, payload) in messages {
            match by_subject.iter_mut().find(|(s, _)| *s == subject) {
                Some((_, list)) => list.push((msg_id, payload)),
                None => by_subject.push((subject, vec![(msg_id, payload)])),
            }
        }
        let mut out = Vec::new();
        for (subject, list) in by_subject {
            let mut chunk: Vec<(String, Bytes)> = Vec::new();
            let mut bytes = 0;
            let flush = |chunk: &mut Vec<(String, Bytes)>, out: &mut Vec<Publish>| match chunk.len()
            {
                0 => {}
                1 => {
                    let (msg_id, payload) = chunk.pop().expect("one message");
                    out.push((subject.clone(), msg_id, payload, 1));
                }
                n => {
                    let parts: Vec<&[u8]> = chunk.iter().map(|(_, p)| p.as_ref()).collect();
                    let seq = self.batches.fetch_add(1, Ordering::Relaxed);
                    out.push((
                        subject.clone(),
                        format!("batch:{}:{}:{seq}", self.config.partition, self.run_nonce),
                        Bytes::from(wire::batch(&parts)),
                        n as u64,
                    ));
                    chunk.clear();
                }
            };
            for (msg_id, payload) in list {
                if chunk.len() == wire::BATCH_MESSAGES_MAX
                    || (bytes + payload.len() > BATCH_BYTES_MAX && !chunk.is_empty())
                {
                    flush(&mut chunk, &mut out);
                    bytes = 0;
                }
                bytes += payload.len() + 4;
                chunk.push((msg_id, payload));
            }
            flush(&mut chunk, &mut out);
        }
        out
    }

    /// Publishes every message (grouped, pipelined) and waits until JetStream stored
    /// each.
    async fn publish_all(&self, batch: Vec<(String, String, Bytes)>) -> Result<()> {
        let mut acks = FuturesOrdered::new();
        for publish in self.group(batch) {
            acks.push_back(self.publish_until_stored(publish));
        }
        while let Some(stored) = acks.next().await {
            if !stored {
                return Err(Error::Nats {
                    what: "publishing",
                    reason: "the node is closing".into(),
                });
            }
        }
        Ok(())
    }

    /// Publishes one message with `Nats-Msg-Id` set, again and again until JetStream
    /// answers that it stored it (a retry it stored already is answered as a
    /// duplicate and stored once). `false` when the node closes first.
    async fn publish_until_stored(&self, (subject, msg_id, payload, count): Publish) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        let mut delay = Duration::from_millis(20);
        loop {
            let answer = match self
                .js
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await
            {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match answer {
                Ok(ack) => {
                    self.counters.published.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .messages_sent
                        .fetch_add(count, Ordering::Relaxed);
                    if ack.duplicate {
                        self.counters
                            .published_duplicates
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    return true;
                }
                Err(_) => {
                    self.counters
                        .publish_retries
                        .fetch_add(1, Ordering::Relaxed);
                    if self.stopping.load(Ordering::Acquire) {
                        return false;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Sends every notice of `author` to partition `p` (which just gained its first
    /// follower of `author`, or may have), and waits until they are stored.
    async fn backfill(&self, author: UserId, p: u32) -> Result<()> {
        let _deleting = self.deleting.lock().await;
        let mut batch = Vec::new();
        let mut page = Some(Page::latest(self.config.engine.page_limit_max));
        while let Some(at) = page {
            let got = self.engine.user_timeline(author, author, at)?;
            for id in got.ids {
                for out in self.post_messages(id, now_us(), true, Some(p)) {
                    if let Some(publish) = out.publish {
                        batch.push(publish);
                    }
                }
            }
            page = got.next;
        }
        self.counters
            .backfilled
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.publish_all(batch).await
    }

    /// Applies one message for this partition, retrying in place what may pass later
    /// (an I/O error, a backfill JetStream does not take yet): messages are applied in
    /// the order they come, so none may be skipped or put behind a later one. `false`
    /// when the node closes first.
    async fn apply(&self, payload: &[u8], delivered: i64) -> bool {
        let message = match wire::decode(payload) {
            Ok(m) => m,
            Err(_) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        };
        match message {
            Message::Batch(inner) => {
                for m in &inner {
                    if !self.apply_retrying(m, delivered).await {
                        return false;
                    }
                }
                true
            }
            m => self.apply_retrying(&m, delivered).await,
        }
    }

    async fn apply_retrying(&self, message: &Message, delivered: i64) -> bool {
        let mut delay = Duration::from_millis(20);
        let mut delivered = delivered;
        loop {
            match self.apply_once(message, delivered).await {
                AckKind::Nak(_) => {
                    // Counts as a redelivery: a follow sends its backfill again.
                    delivered = delivered.max(2);
                    if self.stopping.load(Ordering::Acquire) {
                        return false;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(1000));
                }
                _ => return true,
            }
        }
    }

    /// Applies one message; `Nak` when it should be tried again.
    async fn apply_once(&self, message: &Message, delivered: i64) -> AckKind {
        let engine = &self.engine;
        let answer = match *message {
            Message::Notice(ref n) => return self.apply_notice(n),
            Message::Batch(_) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return AckKind::Term; // decode refuses a batch inside a batch
            }
            Message::Follow { follower, followee } => {
                let (f, a) = (UserId(follower), UserId(followee));
                if !self.owns(followee) || self.owns(follower) {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    return AckKind::Term;
                }
                let p = partition_of(follower, self.config.partitions);
                let first_there = self.follower_partitions(a) & (1 << p) == 0;
                match engine.follow(f, a) {
                    Ok(new) => {
                        // A redelivery may come after a crash between the follow and
                        // the end of the backfill: send again (stored once).
                        if (new && first_there) || delivered > 1 {
                            match self.backfill(a, p).await {
                                Ok(()) => Ok(()),
                                Err(_) => return AckKind::Nak(Some(Duration::from_millis(200))),
                            }
                        } else {
                            Ok(())
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Message::Unfollow { follower, followee } => engine
                .unfollow(UserId(follower), UserId(followee))
                .map(drop),
            Message::Block { blocker, blocked } => {
                engine.block(UserId(blocker), UserId(blocked)).map(drop)
            }
            Message::Unblock { blocker, blocked } => {
                engine.unblock(UserId(blocker), UserId(blocked)).map(drop)
            }
            Message::Delete { id } => {
                // First the tombstone: a copy that comes after it is refused.
                if self.tombstones.insert(id).is_err() {
                    return AckKind::Nak(None);
                }
                match self.resolve(id) {
                    Some(local) => engine.delete(local),
                    None => Ok(()),
                }
            }
        };
        self.answer(answer)
    }

    fn answer(&self, result: feedcore::Result<()>) -> AckKind {
        match result {
            Ok(()) => {
                self.counters.applied.fetch_add(1, Ordering::Relaxed);
                AckKind::Ack
            }
            // What the engine refuses now it refuses on every delivery.
            Err(
                feedcore::Error::InvalidNotice { .. }
                | feedcore::Error::InvalidRelation { .. }
                | feedcore::Error::UnknownUser { .. }
                | feedcore::Error::UnknownNotice { .. },
            ) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                AckKind::Ack
            }
            Err(_) => AckKind::Nak(Some(Duration::from_millis(200))),
        }
    }

    fn apply_notice(&self, n: &WireNotice) -> AckKind {
        let engine = &self.engine;
        if engine.log().find_uri(&n.id.uri()).is_some()
            || n.id.partition == self.config.partition
            || self.tombstones.contains(n.id)
        {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return AckKind::Ack;
        }
        let reply_to = n.reply_to.and_then(|r| self.resolve(r));
        let repeat_of = n.repeat_of.and_then(|r| self.resolve(r));
        // The referenced notice travels just before on the same subject; only a
        // publish retried across a server failure can put it after. Then the copy is
        // stored without the reference (a reply reads as a plain notice here; a
        // repeat with no body is refused).
        match engine.post(n.to_new_notice(reply_to, repeat_of)) {
            Ok(_) => {
                if !n.backfill {
                    let lag = now_us().saturating_sub(n.sent_at_us);
                    let _ = self.lag_us.lock().record(lag.max(1));
                }
                self.counters.applied.fetch_add(1, Ordering::Relaxed);
                AckKind::Ack
            }
            Err(feedcore::Error::DuplicateUri { .. }) => {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                AckKind::Ack
            }
            Err(e) => self.answer(Err(e)),
        }
    }
}

/// Publishes what posts queue, many in flight, clearing each post in the outbox once
/// every message before its marker is stored; writes the mark now and then.
async fn publish_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    const IN_FLIGHT_MAX: usize = 4096;
    // What waits in the channel when the publisher comes back to it goes out together:
    // one publish per partition, so the message rate JetStream sees falls as the post
    // rate rises, and nothing waits for a batch to fill.
    const DRAIN_MAX: usize = 8192;
    let mut in_flight = FuturesOrdered::new();
    let mut persisted = Instant::now();
    let mut open = true;
    loop {
        tokio::select! {
            next = rx.recv(), if open && in_flight.len() < IN_FLIGHT_MAX => match next {
                Some(first) => {
                    let mut drained = vec![first];
                    while drained.len() < DRAIN_MAX {
                        match rx.try_recv() {
                            Ok(out) => drained.push(out),
                            Err(_) => break,
                        }
                    }
                    let mut messages = Vec::new();
                    let mut completes = Vec::new();
                    for out in drained {
                        if let Some(publish) = out.publish {
                            messages.push(publish);
                        }
                        completes.extend(out.completes);
                    }
                    for publish in shared.group(messages) {
                        let shared = Arc::clone(&shared);
                        in_flight.push_back(Box::pin(async move {
                            (shared.publish_until_stored(publish).await, Vec::new())
                        })
                            as std::pin::Pin<Box<dyn std::future::Future<Output = (bool, Vec<u64>)> + Send>>);
                    }
                    // After every publish of this drain (the queue yields in order).
                    in_flight.push_back(Box::pin(async move { (true, completes) }));
                }
                None => open = false,
            },
            Some((stored, completes)) = in_flight.next(), if !in_flight.is_empty() => {
                if !stored {
                    return; // closing: the outbox mark keeps the rest for the next open
                }
                for id in completes {
                    shared.outbox.cleared(id);
                }
                if persisted.elapsed() > Duration::from_millis(200) {
                    let _ = shared.outbox.persist();
                    persisted = Instant::now();
                }
            },
            else => return,
        }
    }
}

/// Pulls this partition's messages in batches, applies each, makes them durable, and
/// acks them; recreates the consumer after errors (a server gone, a leader moving).
async fn consume_loop(shared: Arc<Shared>) {
    let name = consumer_name(shared.config.partition);
    let consumer_config = consumer_config(&shared.config, shared.config.partition);
    let sync_before_ack = matches!(shared.config.engine.durability, Durability::Buffered);
    // Buffered engines sync before an ack, on a thread of its own so that applying
    // goes on meanwhile: one sync covers every batch applied before it. Other modes
    // made each copy durable in `post` already.
    let (to_syncer, syncer_rx) = std::sync::mpsc::channel::<Vec<jetstream::Message>>();
    let syncer = {
        let shared = Arc::clone(&shared);
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name(format!("feedcore-sync-{}", shared.config.partition))
            .spawn(move || sync_loop(&shared, &handle, &syncer_rx))
            .ok()
    };
    consume(
        &shared,
        &name,
        &consumer_config,
        sync_before_ack,
        &to_syncer,
    )
    .await;
    drop(to_syncer);
    if let Some(syncer) = syncer {
        let _ = syncer.join();
    }
}

/// Syncs the engine, then acks every message handed over since the last sync.
fn sync_loop(
    shared: &Shared,
    handle: &tokio::runtime::Handle,
    rx: &std::sync::mpsc::Receiver<Vec<jetstream::Message>>,
) {
    while let Ok(mut applied) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            applied.extend(more);
        }
        // Acked means durable here: a redelivery would be stored once anyway, but a
        // copy lost after its ack would never come back.
        while shared.engine.sync().is_err() {
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        handle.block_on(async {
            for m in &applied {
                let _ = m.ack().await;
            }
        });
        shared
            .in_hand
            .fetch_sub(applied.len() as u64, Ordering::AcqRel);
    }
}

async fn consume(
    shared: &Arc<Shared>,
    name: &str,
    consumer_config: &consumer::pull::Config,
    sync_before_ack: bool,
    to_syncer: &std::sync::mpsc::Sender<Vec<jetstream::Message>>,
) {
    while !shared.stopping.load(Ordering::Acquire) {
        let consumer: consumer::PullConsumer =
            match shared.js.get_stream(&shared.config.stream).await {
                Ok(stream) => match stream
                    .get_or_create_consumer(name, consumer_config.clone())
                    .await
                {
                    Ok(c) => c,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
        let messages = match consumer
            .stream()
            .max_messages_per_batch(shared.config.batch_max)
            .expires(Duration::from_millis(500))
            .heartbeat(Duration::from_millis(200))
            .messages()
            .await
        {
            Ok(m) => m,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut batches = messages.ready_chunks(shared.config.batch_max);
        let mut looked = Instant::now() - Duration::from_secs(1);
        loop {
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            if looked.elapsed() > Duration::from_millis(50) {
                let mut c = consumer.clone();
                if let Ok(Ok(info)) =
                    tokio::time::timeout(Duration::from_millis(500), c.info()).await
                {
                    let backlog = info.num_pending + info.num_ack_pending as u64;
                    shared.backlog.store(backlog, Ordering::Release);
                }
                looked = Instant::now();
            }
            let batch = match tokio::time::timeout(Duration::from_millis(100), batches.next()).await
            {
                Ok(Some(batch)) => batch,
                Ok(None) => break,  // the stream ended: make a new one
                Err(_) => continue, // nothing for a while: look at the backlog again
            };
            let mut applied = Vec::with_capacity(batch.len());
            let mut broken = false;
            for message in batch {
                match message {
                    Ok(m) => {
                        shared.in_hand.fetch_add(1, Ordering::AcqRel);
                        let delivered = m.info().map_or(1, |i| i.delivered);
                        if !shared.apply(&m.payload, delivered).await {
                            return; // closing: unacked, so delivered again after open
                        }
                        applied.push(m);
                    }
                    Err(_) => broken = true,
                }
            }
            if sync_before_ack {
                if to_syncer.send(applied).is_err() {
                    return; // no syncer thread: leave them unacked
                }
            } else {
                for m in &applied {
                    let _ = m.ack().await;
                }
                shared
                    .in_hand
                    .fetch_sub(applied.len() as u64, Ordering::AcqRel);
            }
            // Stale until the next look (at most 50 ms on): a batch was here, so
            // something may be left. The look is not made at once: a round trip to the
            // server before each batch would sit in every delivery's lag.
            shared.backlog.store(u64::MAX, Ordering::Release);
            if broken {
                break;
            }
        }
    }
}
