//! Federation in the laboratory (`feedcore sim --remote-share S`): a share of the
//! graph's users live on other servers. Each becomes a remote account
//! ([`Engine::register_remote`]) on one of [`SIM_REMOTE_SERVERS`] servers (by a Zipf
//! law of exponent 1, as instance sizes go), its follows of local users become remote
//! follows, its posts arrive through [`Engine::post_remote`], and it reads nothing
//! here. A delivery worker thread drains the outbox as the run goes, as a server's
//! delivery workers would: it takes batches of due deliveries, fails those of the
//! servers that are down (one in [`SIM_DOWN_EVERY`]; default backoff, in the run's
//! simulated time) and acks the rest in one write a batch. It measures the outbox's
//! lag (a local post's start to its delivery's hand-out) and size, over the whole run
//! (warm-up operations included).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::engine::Engine;
use crate::error::Result;
use crate::ids::UserId;

/// Remote servers of a run with a remote share.
pub const SIM_REMOTE_SERVERS: u32 = 1_000;
/// One server in this many is down for the whole run: its deliveries fail.
pub const SIM_DOWN_EVERY: u32 = 50;
/// Deliveries the worker takes at once.
const BATCH: usize = 256;
/// XORed into the workload's seed to choose remote users and their servers.
const REMOTE_SEED_MIX: u64 = 0x0fed_e7a7_1011;

/// Which of the graph's users are remote, and where.
pub(crate) struct Remote {
    /// Local users of the graph.
    users: u32,
    /// Per graph user: its remote account index, or `u32::MAX` for a local user.
    account: Vec<u32>,
    /// Per remote account: its server.
    server: Vec<u32>,
}

impl Remote {
    /// Every user remote with probability `share`, on a server drawn by Zipf.
    pub(crate) fn choose(users: u32, share: f64, seed: u64) -> Remote {
        let mut rng = SmallRng::seed_from_u64(seed ^ REMOTE_SEED_MIX);
        let zipf = Zipf::new(f64::from(SIM_REMOTE_SERVERS), 1.0).expect("valid Zipf parameters");
        let mut account = vec![u32::MAX; users as usize];
        let mut server = Vec::new();
        if share > 0.0 {
            for a in &mut account {
                if rng.random_bool(share.min(1.0)) {
                    *a = server.len() as u32;
                    server.push(zipf.sample(&mut rng) as u32 - 1);
                }
            }
        }
        Remote {
            users,
            account,
            server,
        }
    }

    /// Remote accounts.
    pub(crate) fn count(&self) -> u32 {
        self.server.len() as u32
    }

    /// The remote account index of graph user `u`, if it is remote.
    pub(crate) fn account(&self, u: u32) -> Option<u32> {
        self.account
            .get(u as usize)
            .copied()
            .filter(|&a| a != u32::MAX)
    }

    /// The engine's id of graph user `u`: its own, or its remote account's.
    fn engine_id(&self, u: UserId) -> UserId {
        self.account(u.0).map_or(u, |a| UserId(self.users + a))
    }

    /// The host of remote account `a`.
    pub(crate) fn host(&self, a: u32) -> String {
        format!("s{}.example", self.server[a as usize])
    }

    /// The graph's follows as the engine stores them: a remote user's follows and
    /// followers are its account's; follows between two remote users are theirs and
    /// left out.
    pub(crate) fn edges(&self, edges: &[(UserId, UserId)]) -> Vec<(UserId, UserId)> {
        edges
            .iter()
            .filter(|&&(a, b)| self.account(a.0).is_none() || self.account(b.0).is_none())
            .map(|&(a, b)| (self.engine_id(a), self.engine_id(b)))
            .collect()
    }

    /// Registers every remote account in order (their ids are `users + index`).
    pub(crate) fn register(&self, engine: &Engine) -> Result<()> {
        for (u, &a) in self.account.iter().enumerate() {
            if a == u32::MAX {
                continue;
            }
            let host = self.host(a);
            let id = engine.register_remote(&host, &format!("https://{host}/users/{u}"))?;
            if id != UserId(self.users + a) {
                return Err(crate::Error::InvalidConfig {
                    reason: format!(
                        "remote account {a} got the id {id}, not {}: the store held other remote accounts",
                        self.users + a
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What the outbox did in a run with remote users.
#[derive(Clone, Debug, Default)]
pub struct OutboxRun {
    /// Remote accounts (graph users on other servers).
    pub remote_accounts: u32,
    /// Servers they are on.
    pub remote_servers: u32,
    /// Notices the remote users posted (through `post_remote`).
    pub remote_posts: u64,
    /// Deliveries the worker took, retries included.
    pub handed_out: u64,
    /// Deliveries acked.
    pub acked: u64,
    /// Deliveries failed (their server is down).
    pub failed: u64,
    /// Remote followers the acked deliveries addressed.
    pub followers_addressed: u64,
    /// Outbox lag of the acked first attempts, nanoseconds, at
    /// [`LATENCY_QUANTILES`](super::LATENCY_QUANTILES): from the start of the local
    /// post to its delivery's hand-out.
    pub lag_ns_quantiles: Vec<(f64, u64)>,
    /// Acked first attempts whose post start was never found (none expected).
    pub lag_unmatched: u64,
    /// Most deliveries pending at once (sampled at each batch).
    pub pending_max: u64,
    /// Most bytes the outbox queue held at once (sampled at each batch).
    pub queue_bytes_max: u64,
    /// Deliveries still pending at the end (retries of the servers that are down).
    pub pending_end: u64,
    /// Bytes of the outbox file at the end.
    pub file_bytes: u64,
    /// Wall time of the worker, and of it inside `deliveries`, `ack_all` and `fail`.
    pub worker: Duration,
    /// See `worker`.
    pub busy: Duration,
}

impl OutboxRun {
    /// Lag at quantile `q` (one of the reported quantiles), nanoseconds.
    pub fn lag_ns(&self, q: f64) -> u64 {
        super::lab::at_quantile(&self.lag_ns_quantiles, q)
    }
}

/// When each local notice's post started, for the lag.
pub(crate) type PostedAt = Mutex<HashMap<u64, Instant>>;

/// Whether deliveries to `host` fail (its server is down).
fn down(host: &str) -> bool {
    host.strip_prefix('s')
        .and_then(|h| h.strip_suffix(".example"))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n % SIM_DOWN_EVERY == SIM_DOWN_EVERY - 1)
}

/// The delivery worker: drains the outbox until `stop` is set and nothing is due.
pub(crate) fn deliver(
    engine: &Engine,
    remote: &Remote,
    posted_at: &PostedAt,
    stop: &AtomicBool,
) -> Result<OutboxRun> {
    let mut run = OutboxRun {
        remote_accounts: remote.count(),
        remote_servers: {
            let mut s = remote.server.clone();
            s.sort_unstable();
            s.dedup();
            s.len() as u32
        },
        ..OutboxRun::default()
    };
    let mut lag =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
    // First attempts taken before their post returned (and `posted_at` had them):
    // matched at the next batch, or at the end.
    let mut unmatched: Vec<(u64, Instant)> = Vec::new();
    let match_up = |taken: &mut Vec<(u64, Instant)>, lag: &mut Histogram<u64>| {
        let at = posted_at.lock();
        taken.retain(|&(notice, when)| match at.get(&notice) {
            Some(&p) => {
                let _ = lag.record((when.duration_since(p).as_nanos() as u64).max(1));
                false
            }
            None => true,
        });
    };
    let started = Instant::now();
    loop {
        // Read before taking: a stop seen here came after every post, so an empty
        // take after it means nothing is left to hand out.
        let stopping = stop.load(Ordering::Acquire);
        let t = Instant::now();
        let ds = engine.deliveries(BATCH);
        if ds.is_empty() {
            run.busy += t.elapsed();
            if stopping {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let taken = Instant::now();
        run.handed_out += ds.len() as u64;
        let (failing, ok): (Vec<_>, Vec<_>) = ds.into_iter().partition(|d| down(&d.server));
        for d in &failing {
            engine.fail(d, None)?;
        }
        run.failed += failing.len() as u64;
        engine.ack_all(&ok)?;
        run.busy += t.elapsed();
        run.acked += ok.len() as u64;
        unmatched.extend(
            ok.iter()
                .filter(|d| d.attempt == 1)
                .map(|d| (d.notice.0, taken)),
        );
        match_up(&mut unmatched, &mut lag);
        run.followers_addressed += ok.iter().map(|d| d.followers.len() as u64).sum::<u64>();
        let s = engine.outbox_stats();
        run.pending_max = run.pending_max.max(s.pending + s.in_flight);
        run.queue_bytes_max = run.queue_bytes_max.max(s.queue_bytes);
    }
    run.worker = started.elapsed();
    match_up(&mut unmatched, &mut lag);
    run.lag_unmatched = unmatched.len() as u64;
    // The run's memory figure is taken after this: leave nothing of the lab's here.
    *posted_at.lock() = HashMap::new();
    let s = engine.outbox_stats();
    run.pending_end = s.pending;
    run.file_bytes = s.file_bytes;
    run.lag_ns_quantiles = super::latency_quantiles(&lag);
    Ok(run)
}
