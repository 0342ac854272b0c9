//! The fan-out worker pool.
//!
//! Worker `p` of `W` is the only one that delivers to users whose id is `p` modulo
//! `W`, and walks only that partition of each author's followers: one contiguous slice
//! of the graph snapshot. Every post is broadcast to all workers; each worker keeps a
//! round-robin queue of the posts it is delivering and gives each one chunk
//! (`Config::fanout_chunk` followers) per turn, so a post by an account with millions
//! of followers never holds up the small ones behind it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use crate::graph::{FollowGraph, Followers};

/// One post to deliver.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) author: u32,
    /// For an `Addressees` notice: the mentioned users, sorted (only they, among the
    /// followers, get it).
    pub(crate) addressees: Option<Box<[u32]>>,
    /// The groups it is addressed to: their members get it too.
    pub(crate) groups: Box<[u32]>,
    /// Its tags' ids: their followers get it too.
    pub(crate) tags: Box<[u32]>,
    pub(crate) enqueued: Instant,
    /// Workers still delivering it.
    remaining: AtomicU32,
    /// Its number in the order of submission.
    seq: AtomicU64,
}

impl Job {
    pub(crate) fn new(id: u64, author: u32, addressees: Option<Box<[u32]>>) -> Job {
        Job {
            id,
            author,
            addressees,
            groups: Box::new([]),
            tags: Box::new([]),
            enqueued: Instant::now(),
            remaining: AtomicU32::new(0),
            seq: AtomicU64::new(0),
        }
    }
}

/// What the workers deliver into; implemented by the engine.
pub(crate) trait Delivery: Send + Sync + 'static {
    /// The graph whose followers the workers walk.
    fn graph(&self) -> &FollowGraph;
    /// The relation store of group memberships (user -> group): a group's members are
    /// its followers there.
    fn members(&self) -> &FollowGraph;
    /// The relation store of tag follows (user -> tag).
    fn tag_followers(&self) -> &FollowGraph;
    /// Delivers `job` to each user in `users` that should get it; returns how many got
    /// it. `stream`: the users are members of one of its groups or followers of one
    /// of its tags, not the author's followers.
    fn deliver(&self, job: &Job, users: &[u32], stream: bool) -> u64;
    /// A job is delivered by every worker.
    fn finished(&self, job: &Job);
}

/// Counters shared by the workers and the engine.
#[derive(Default)]
pub(crate) struct Progress {
    /// Jobs submitted and not yet delivered by every worker, by submission number
    /// (jobs finish out of order: a big one may finish after many small ones).
    unfinished: Mutex<Unfinished>,
    finished_cv: Condvar,
    /// Deliveries made.
    pub(crate) deliveries: AtomicU64,
}

#[derive(Default)]
struct Unfinished {
    next_seq: u64,
    seqs: std::collections::BTreeSet<u64>,
    /// The lowest target a `flush` waits for (it waits until every job numbered
    /// below it finished); `None` when nobody waits. Workers wake the waiters only
    /// when that is reached, not at every finished job: on a machine with as many
    /// workers as cores, each needless wake-up preempts a worker.
    waiting_below: Option<u64>,
}

impl Unfinished {
    fn done_below(&self, target: u64) -> bool {
        self.seqs.first().is_none_or(|&oldest| oldest >= target)
    }
}

pub(crate) struct Pool {
    senders: Vec<Sender<Arc<Job>>>,
    handles: Vec<JoinHandle<()>>,
    pub(crate) progress: Arc<Progress>,
}

/// A job in a worker's queue: the walk of this worker's partition of the followers,
/// then of each group's members and each tag's followers (stage 0 the followers,
/// 1..=groups the groups, then the tags).
struct Walk {
    job: Arc<Job>,
    followers: Followers,
    stage: usize,
    author_done: bool,
}

/// The walk of stage `stage` of `job` (see `Walk`), `None` past the last.
fn stage_walk<D: Delivery>(
    target: &D,
    job: &Job,
    stage: usize,
    p: u32,
    workers: u32,
) -> Option<Followers> {
    use crate::ids::UserId;
    let groups = job.groups.len();
    if stage == 0 {
        Some(target.graph().followers_in(UserId(job.author), p, workers))
    } else if stage <= groups {
        let g = job.groups[stage - 1];
        Some(target.members().followers_in(UserId(g), p, workers))
    } else {
        let t = *job.tags.get(stage - 1 - groups)?;
        Some(target.tag_followers().followers_in(UserId(t), p, workers))
    }
}

impl Pool {
    /// Starts `workers` threads delivering into `target`.
    pub(crate) fn start<D: Delivery>(target: Arc<D>, workers: u32, chunk: usize) -> Pool {
        let progress = Arc::new(Progress::default());
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for p in 0..workers {
            let (tx, rx) = crossbeam_channel::unbounded();
            senders.push(tx);
            let target = Arc::clone(&target);
            let progress = Arc::clone(&progress);
            let handle = std::thread::Builder::new()
                .name(format!("feedcore-fanout-{p}"))
                .spawn(move || work(p, workers, chunk, &rx, &*target, &progress))
                .expect("spawning a fan-out worker thread");
            handles.push(handle);
        }
        Pool {
            senders,
            handles,
            progress,
        }
    }

    /// Hands a post to every worker.
    pub(crate) fn submit(&self, job: Job) {
        job.remaining
            .store(self.senders.len() as u32, Ordering::Relaxed);
        {
            let mut unfinished = self.progress.unfinished.lock();
            let seq = unfinished.next_seq;
            unfinished.next_seq += 1;
            unfinished.seqs.insert(seq);
            job.seq.store(seq, Ordering::Relaxed);
        }
        let job = Arc::new(job);
        for tx in &self.senders {
            // A worker only stops when the pool is dropped, or by a panic (a bug); then
            // `flush` reports it.
            let _ = tx.send(Arc::clone(&job));
        }
    }

    /// Waits until every job submitted before the call is delivered. `Err` with the
    /// reason if a worker died (a panic is a bug; the posts it held are in the log, and
    /// a reopen rebuilds every timeline from it).
    pub(crate) fn flush(&self) -> Result<(), String> {
        let mut unfinished = self.progress.unfinished.lock();
        let target = unfinished.next_seq;
        while !unfinished.done_below(target) {
            if self.handles.iter().any(JoinHandle::is_finished) {
                return Err("a fan-out worker stopped (panicked); reopen the engine".into());
            }
            let lowest = unfinished.waiting_below.map_or(target, |w| w.min(target));
            unfinished.waiting_below = Some(lowest);
            self.progress
                .finished_cv
                .wait_for(&mut unfinished, std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// Jobs submitted and not yet delivered by every worker.
    pub(crate) fn pending(&self) -> u64 {
        self.progress.unfinished.lock().seqs.len() as u64
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.senders.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

fn work<D: Delivery>(
    p: u32,
    workers: u32,
    chunk: usize,
    rx: &Receiver<Arc<Job>>,
    target: &D,
    progress: &Progress,
) {
    let mut queue: VecDeque<Walk> = VecDeque::new();
    let mut buf: Vec<u32> = Vec::with_capacity(chunk);
    let start = |job: Arc<Job>| Walk {
        followers: stage_walk(target, &job, 0, p, workers).expect("stage 0 always exists"),
        stage: 0,
        author_done: job.author % workers != p,
        job,
    };
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(job) => queue.push_back(start(job)),
                Err(_) => return,
            }
        }
        while let Ok(job) = rx.try_recv() {
            queue.push_back(start(job));
        }
        let Some(mut walk) = queue.pop_front() else {
            continue;
        };
        buf.clear();
        if !walk.author_done {
            buf.push(walk.job.author);
            walk.author_done = true;
        }
        let filled = walk.followers.fill(&mut buf, chunk);
        let delivered = target.deliver(&walk.job, &buf, walk.stage > 0);
        progress.deliveries.fetch_add(delivered, Ordering::Relaxed);
        if filled == chunk {
            queue.push_back(walk);
            continue;
        }
        if let Some(next) = stage_walk(target, &walk.job, walk.stage + 1, p, workers) {
            walk.stage += 1;
            walk.followers = next;
            queue.push_back(walk);
            continue;
        }
        if walk.job.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            target.finished(&walk.job);
            let mut unfinished = progress.unfinished.lock();
            unfinished
                .seqs
                .remove(&walk.job.seq.load(Ordering::Relaxed));
            if let Some(waited) = unfinished.waiting_below
                && unfinished.done_below(waited)
            {
                // Every waiter wakes, re-checks its own target and re-registers.
                unfinished.waiting_below = None;
                progress.finished_cv.notify_all();
            }
        }
    }
}
