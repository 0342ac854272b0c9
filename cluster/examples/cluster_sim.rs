//! The cluster beside the single-node engine on one seeded workload, in one run:
//! deliveries per second, cross-partition lag, and the bytes each cross-partition
//! message costs on the wire.
//!
//! ```text
//! cargo run --release -p feedcore-cluster --example cluster_sim -- \
//!     [--users 3000] [--follows 20] [--posts 30000] [--rate 10000] [--partitions 3]
//! ```
//!
//! `--rate 0` posts as fast as the posting threads can. Both runs use push, buffered
//! durability, and every user's timeline read once before the posts (so each gets
//! deliveries). The cluster runs its 3 nodes in this process and 3 NATS servers
//! beside it, on the same cores.

use std::time::{Duration, Instant};

use feedcore::{Config, Durability, Engine, NewNotice, Page, UserId};
use feedcore_cluster::harness::{NatsCluster, run_dir};
use feedcore_cluster::{Node, NodeConfig, partition_of};

struct Args {
    users: u32,
    follows: u32,
    posts: u64,
    rate: u64,
    partitions: u32,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str, default: u64| -> u64 {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .map(|v| {
                v.parse().unwrap_or_else(|_| {
                    eprintln!("{name} takes a number, not {v:?}");
                    std::process::exit(2)
                })
            })
            .unwrap_or(default)
    };
    Args {
        users: get("--users", 3000) as u32,
        follows: get("--follows", 20) as u32,
        posts: get("--posts", 30_000),
        rate: get("--rate", 10_000),
        partitions: get("--partitions", 3) as u32,
    }
}

fn config(users: u32) -> Config {
    Config {
        users_max: users,
        durability: Durability::Buffered,
        ..Default::default()
    }
}

/// A seeded follow graph: each user follows `follows` others (xorshift, no crate).
fn edges(users: u32, follows: u32) -> Vec<(u32, u32)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for a in 0..users {
        let mut mine = std::collections::BTreeSet::new();
        while mine.len() < follows.min(users - 1) as usize {
            let b = (next() % u64::from(users)) as u32;
            if b != a {
                mine.insert(b);
            }
        }
        out.extend(mine.into_iter().map(|b| (a, b)));
    }
    out
}

/// Posts `posts` notices by authors `authors` (round robin) at `rate` per second
/// (0: as fast as possible) through `post`.
fn post_paced(authors: &[u32], posts: u64, rate: f64, mut post: impl FnMut(NewNotice)) {
    let started = Instant::now();
    for k in 0..posts {
        if rate > 0.0 && k % 16 == 0 {
            let due = Duration::from_secs_f64(k as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let author = authors[(k as usize) % authors.len()];
        post(NewNotice {
            author: UserId(author),
            body: format!("notice {k} by {author}: something short, as most notices are"),
            ..Default::default()
        });
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let a = args();
    let graph = edges(a.users, a.follows);
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!(
        "workload: {} users, {} follows each, {} posts at {} posts/s; load average before: {}",
        a.users,
        a.follows,
        a.posts,
        if a.rate == 0 {
            "max".to_string()
        } else {
            a.rate.to_string()
        },
        loadavg()
    );

    // Single node.
    let single = Engine::open(dir.path().join("single"), config(a.users)).expect("open");
    for &(f, b) in &graph {
        single.follow(UserId(f), UserId(b)).expect("follow");
    }
    for u in 0..a.users {
        single
            .home_timeline(UserId(u), Page::latest(1))
            .expect("read");
    }
    let authors: Vec<u32> = (0..a.users).collect();
    let started = Instant::now();
    post_paced(&authors, a.posts, a.rate as f64, |n| {
        single.post(n).expect("post");
    });
    single.flush().expect("flush");
    let single_secs = started.elapsed().as_secs_f64();
    let s = single.stats();
    let single_rate = s.deliveries as f64 / single_secs;
    println!(
        "single node: {} deliveries in {single_secs:.2} s = {:.0} deliveries/s, {:.0} posts/s, \
         delivery lag p99 {:.2} ms",
        s.deliveries,
        single_rate,
        a.posts as f64 / single_secs,
        s.delivery_lag_ms_p99
    );
    drop(single);

    // Cluster.
    let nats = match NatsCluster::start(run_dir("cluster-sim")) {
        Ok(n) => n,
        Err(reason) => {
            println!("SKIP cluster run: {reason}");
            return;
        }
    };
    let nodes: Vec<Node> = (0..a.partitions)
        .map(|p| {
            let mut c = NodeConfig::new(
                p,
                a.partitions,
                dir.path().join(format!("n{p}")),
                nats.urls(),
            );
            c.engine = Config {
                workers: 1,
                ..config(a.users)
            };
            Node::open(c).expect("open a node")
        })
        .collect();
    let node_of = |u: u32| &nodes[partition_of(u, a.partitions) as usize];
    for &(f, b) in &graph {
        node_of(f).follow(UserId(f), UserId(b)).expect("follow");
    }
    for u in 0..a.users {
        node_of(u)
            .home_timeline(UserId(u), Page::latest(1))
            .expect("read");
    }
    let quiet = |nodes: &[Node]| {
        let mut rounds = 0;
        while rounds < 2 {
            for n in nodes {
                n.flush().expect("flush");
            }
            if nodes.iter().all(Node::is_idle) {
                rounds += 1;
            } else {
                rounds = 0;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    quiet(&nodes);
    let before: Vec<_> = nodes
        .iter()
        .map(|n| (n.engine().stats().deliveries, n.stats()))
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (p, node) in nodes.iter().enumerate() {
            let mine: Vec<u32> = (0..a.users)
                .filter(|&u| partition_of(u, a.partitions) as usize == p)
                .collect();
            let share = a.posts * mine.len() as u64 / u64::from(a.users);
            let rate = a.rate as f64 * mine.len() as f64 / f64::from(a.users);
            scope.spawn(move || {
                post_paced(&mine, share, rate, |n| {
                    node.post(n).expect("post");
                })
            });
        }
    });
    let posting_secs = started.elapsed().as_secs_f64();
    quiet(&nodes);
    let secs = started.elapsed().as_secs_f64();
    let mut deliveries = 0;
    let mut published = 0;
    let mut sent = 0;
    let mut bytes_out = 0;
    let mut bytes_in = 0;
    let mut lag_p99: f64 = 0.0;
    let mut lag_p50: f64 = 0.0;
    let mut posts = 0;
    for (n, (d0, s0)) in nodes.iter().zip(&before) {
        let s = n.stats();
        deliveries += n.engine().stats().deliveries - d0;
        published += s.published - s0.published;
        sent += s.messages_sent - s0.messages_sent;
        bytes_out += s.bytes_out - s0.bytes_out;
        bytes_in += s.bytes_in - s0.bytes_in;
        posts += s.posts - s0.posts;
        lag_p99 = lag_p99.max(s.cross_lag_ms_p99);
        lag_p50 = lag_p50.max(s.cross_lag_ms_p50);
    }
    let rate = deliveries as f64 / secs;
    println!(
        "cluster of {}: {deliveries} deliveries in {secs:.2} s = {rate:.0} deliveries/s; {:.0} \
         posts/s while posting; {sent} cross-partition messages in {published} publishes; \
         cross-partition lag p50 {lag_p50:.2} ms, p99 {lag_p99:.2} ms (worst node)",
        a.partitions,
        posts as f64 / posting_secs
    );
    println!(
        "wire: {:.0} bytes sent per cross-partition message, {:.0} sent + received; {:.1} sent + \
         received per timeline delivery (the nodes' clients: payloads and headers; each \
         JetStream server also sends each message to 2 replicas)",
        bytes_out as f64 / sent.max(1) as f64,
        (bytes_out + bytes_in) as f64 / sent.max(1) as f64,
        (bytes_out + bytes_in) as f64 / deliveries.max(1) as f64
    );
    println!(
        "ratio cluster / single node, deliveries/s: {:.2}; load average after: {}",
        rate / single_rate,
        loadavg()
    );
}
