//! Benchmarks of federation's delivery outbox, each figure beside a baseline measured in
//! the same run:
//!
//! * `outbox_post`: a post by an author with 1 M remote followers spread over 20 k
//!   servers (the first 20 k accounts one per server, the rest by a Zipf law of
//!   exponent 1), which records 20 k deliveries (one frame in the outbox file), against
//!   a post by an author with no remote follower in the same engine. Budget: at most
//!   200 ms. The bytes the queue holds per pending delivery are printed (budget: 16).
//! * `outbox_handout`: `deliveries(64)` then `ack` of each, on one thread, of an
//!   author's notices with one remote follower on each of 1,000 servers, against the
//!   same hand-out and ack on a `Mutex<VecDeque>` queue with a `HashMap` of deliveries
//!   in flight (in memory, nothing written); and the same with `ack_all` of each
//!   batch (one write a batch). Budget: at least 1 M deliveries/s. For
//!   information: handing out and acking the 20 k deliveries of the 1 M-follower post
//!   (their follower lists read from the graph).
//!
//! Stores live in `/dev/shm` where there is one, `Durability::Buffered` (each record
//! one `pwrite`, no `fsync`), strategy pull (no home-timeline fan-out runs behind the
//! posts). Run with `cargo bench --bench outbox`.

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

#[path = "support/figures.rs"]
mod figures;
use feedcore::{Config, Durability, Engine, NewNotice, Strategy, UserId};
use figures::{Figures, time_ns};

const FOLLOWERS: u32 = 1_000_000;
const SERVERS: u32 = 20_000;
const SMALL_SERVERS: u32 = 1_000;

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a directory in /dev/shm")
    } else {
        tempfile::tempdir().expect("a temporary directory")
    }
}

fn config(remote: u32) -> Config {
    Config {
        users_max: 1024,
        remote_users_max: remote,
        durability: Durability::Buffered,
        strategy: Strategy::Pull,
        ..Default::default()
    }
}

fn post(e: &Engine, author: u32) {
    e.post(NewNotice {
        author: UserId(author),
        body: "a notice for the fediverse".into(),
        ..Default::default()
    })
    .expect("a post");
}

/// An engine whose user 1 has `FOLLOWERS` remote followers over `SERVERS` servers.
fn big_engine(dir: &Path) -> Engine {
    let started = Instant::now();
    let e = Engine::open(dir, config(FOLLOWERS + 1)).expect("an engine");
    let zipf = Zipf::new(f64::from(SERVERS), 1.0).expect("valid Zipf parameters");
    let mut rng = SmallRng::seed_from_u64(20);
    for j in 0..FOLLOWERS {
        let s = if j < SERVERS {
            j
        } else {
            zipf.sample(&mut rng) as u32 - 1
        };
        let host = format!("s{s}.example");
        let u = e
            .register_remote(&host, &format!("https://{host}/users/{j}"))
            .expect("a remote account");
        e.follow(u, UserId(1)).expect("a follow");
    }
    println!(
        "setup: {FOLLOWERS} remote accounts on {SERVERS} servers registered and following in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    e
}

fn post_benches(c: &mut Criterion, e: &Engine) -> (f64, f64) {
    let mut g = c.benchmark_group("outbox_post");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("remote_followers_1m_servers_20k", |b| b.iter(|| post(e, 1)));
    g.bench_function("no_remote_followers", |b| b.iter(|| post(e, 2)));
    g.finish();
    let s = e.stats().outbox;
    let per = s.queue_bytes as f64 / s.pending.max(1) as f64;
    println!(
        "outbox: {} deliveries pending, queue {} bytes: {per:.1} bytes per pending delivery (capacity included)",
        s.pending, s.queue_bytes
    );
    // The 20 k deliveries of one post, handed out and acked (follower lists read from
    // the graph at hand-out).
    let before = s.pending;
    let started = Instant::now();
    let mut n = 0u64;
    while n < u64::from(SERVERS) {
        let ds = e.deliveries(64);
        if ds.is_empty() {
            break;
        }
        for d in &ds {
            e.ack(d).expect("an ack");
        }
        n += ds.len() as u64;
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "handing out and acking {n} of the {before} pending deliveries of 1 M-follower posts: {per_s:.0} deliveries/s"
    );
    (per, per_s)
}

/// The baseline queue: entries popped under a lock into an in-flight map, removed
/// from it at the ack.
#[derive(Default)]
struct Baseline {
    queue: Mutex<VecDeque<(u64, u32)>>,
    in_flight: Mutex<HashMap<(u64, u32), u64>>,
}

fn handout_benches(c: &mut Criterion) {
    let dir = scratch();
    let e = Engine::open(dir.path(), config(SMALL_SERVERS)).expect("an engine");
    for s in 0..SMALL_SERVERS {
        let host = format!("s{s}.example");
        let u = e
            .register_remote(&host, &format!("https://{host}/u"))
            .expect("a remote account");
        e.follow(u, UserId(1)).expect("a follow");
    }
    let mut g = c.benchmark_group("outbox_handout");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    // Posts until `iters` deliveries are pending, then times handing them out 64 at a
    // time and giving each batch to `ack`.
    let timed = |iters: u64, ack: &dyn Fn(&[feedcore::Delivery])| {
        while e.outbox_stats().pending < iters {
            post(&e, 1);
        }
        let started = Instant::now();
        let mut done = 0;
        while done < iters {
            let ds = e.deliveries(64);
            ack(&ds);
            done += ds.len() as u64;
        }
        started.elapsed()
    };
    g.bench_function("engine_deliveries_ack", |b| {
        b.iter_custom(|iters| {
            timed(iters, &|ds| {
                for d in ds {
                    e.ack(d).expect("an ack");
                }
            })
        })
    });
    g.bench_function("engine_deliveries_ack_all", |b| {
        b.iter_custom(|iters| timed(iters, &|ds| e.ack_all(ds).expect("an ack of the batch")))
    });
    let base = Baseline::default();
    let mut token = 0u64;
    g.bench_function("mutex_vecdeque_baseline", |b| {
        b.iter_custom(|iters| {
            {
                let mut q = base.queue.lock().unwrap();
                let mut n = 0u64;
                while (q.len() as u64) < iters {
                    q.push_back((
                        n / u64::from(SMALL_SERVERS),
                        (n % u64::from(SMALL_SERVERS)) as u32,
                    ));
                    n += 1;
                }
            }
            let started = Instant::now();
            let mut done = 0;
            let mut batch = Vec::with_capacity(64);
            while done < iters {
                {
                    let mut q = base.queue.lock().unwrap();
                    let mut f = base.in_flight.lock().unwrap();
                    while batch.len() < 64 {
                        let Some(k) = q.pop_front() else { break };
                        token += 1;
                        f.insert(k, token);
                        batch.push(k);
                    }
                }
                for k in batch.drain(..) {
                    black_box(base.in_flight.lock().unwrap().remove(&k));
                    done += 1;
                }
            }
            started.elapsed()
        })
    });
    g.finish();
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let since = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    let mut fig = Figures::new("outbox", "cargo bench --bench outbox");
    let dir = scratch();
    let big = big_engine(dir.path());
    let (bytes_per, big_rate) = post_benches(&mut c, &big);
    drop(big);
    handout_benches(&mut c);
    c.final_summary();
    if let (Some(post), Some(quiet)) = (
        time_ns("outbox_post", "remote_followers_1m_servers_20k", since),
        time_ns("outbox_post", "no_remote_followers", since),
    ) {
        println!(
            "post recording 20 k deliveries: {:.1} ms, {:.0}x a post with no remote follower ({:.1} us); budget 200 ms",
            post / 1e6,
            post / quiet,
            quiet / 1e3
        );
        fig.add(
            "post by an author with 1 M remote followers on 20 k servers (20 k deliveries recorded)",
            post / 1e6,
            "ms",
            "post by an author with no remote follower, same engine",
            quiet / 1e6,
            "<= 200 ms",
        );
    }
    fig.add_alone(
        "queue bytes per pending delivery (capacity included)",
        bytes_per,
        "B",
        "<= 16 B",
    );
    if let (Some(engine), Some(base)) = (
        time_ns("outbox_handout", "engine_deliveries_ack", since),
        time_ns("outbox_handout", "mutex_vecdeque_baseline", since),
    ) {
        let (rate, base_rate) = (1e9 / engine, 1e9 / base);
        println!(
            "deliveries + ack, one thread: {rate:.0}/s, {:.2}x the Mutex<VecDeque> baseline ({base_rate:.0}/s); budget 1 M/s",
            rate / base_rate
        );
        fig.add(
            "deliveries(64) + ack, one thread, 1 follower per server",
            rate,
            "deliveries/s",
            "Mutex<VecDeque> + in-flight HashMap, in memory",
            base_rate,
            ">= 1 M/s",
        );
        if let Some(all) = time_ns("outbox_handout", "engine_deliveries_ack_all", since) {
            let all_rate = 1e9 / all;
            println!(
                "deliveries + ack_all of each batch, one thread: {all_rate:.0}/s, {:.2}x the baseline; budget 1 M/s",
                all_rate / base_rate
            );
            fig.add(
                "deliveries(64) + ack_all of the batch (one write), one thread",
                all_rate,
                "deliveries/s",
                "Mutex<VecDeque> + in-flight HashMap, in memory",
                base_rate,
                ">= 1 M/s",
            );
        }
        fig.add(
            "deliveries(64) + ack of the 20 k deliveries of a 1 M-follower post",
            big_rate,
            "deliveries/s",
            "the same engine, 1 follower per server",
            rate,
            "",
        );
    }
    fig.write();
}
