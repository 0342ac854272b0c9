//! `feedcore sim --baseline redis`: the same workload through a local `redis-server`,
//! the way Twitter kept home timelines (a list per user: `LPUSH` then `LTRIM 0 799` per
//! follower per post); `redis-zset` the way Mastodon does (a sorted set per user: `ZADD`
//! then `ZREMRANGEBYRANK` down to 800), `redis-all` both; with the client as those systems ran it: several
//! connections, fan-out pipelined about 4000 commands at a time behind the post, and
//! reads pipelined (a batch of `LRANGE`/`ZREVRANGE`, then the `MGET`s of the bodies).
//! Bodies are stored with `SET`. `redis-benchmark -P 4000 -t lpush` against the same
//! server gives the figure the fan-out is held against.
//!
//! The server runs on 127.0.0.1, on a free port, in a temporary directory, without
//! persistence (`--save '' --appendonly no`). [`RedisServer`] kills it when dropped
//! (normal end, error, or Ctrl-C unwinding through the run), and the child asks the
//! kernel to kill it should this process die without unwinding.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use feedcore::UserId;
use feedcore::sim::{Observer, Op, PostKind, Workload, latency_quantiles};
use hdrhistogram::Histogram;

use crate::resp::{Conn, Reply};
use crate::sim::Phases;

/// Home-timeline length, as both did.
const TIMELINE_LEN: usize = 800;
/// Commands per fan-out pipeline (Twitter pipelined about 4k at a time).
const PIPELINE_COMMANDS: usize = 4000;
/// Client connections taking the posts and reads (a server's connection pool).
pub(crate) const CLIENT_CONNECTIONS: usize = 4;
/// Operations a client connection takes at once: their `SET`s and page reads go out
/// as one pipeline, the reads' `MGET`s as a second. Small, so that a read waits for
/// little more than its own two round trips.
pub(crate) const OPS_PER_BATCH: usize = 16;

/// How the timelines are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Twitter 2012: a list, LPUSH + LTRIM.
    List,
    /// Mastodon: a sorted set scored by id, ZADD + ZREMRANGEBYRANK.
    SortedSet,
}

impl Layout {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Layout::List => "redis-list",
            Layout::SortedSet => "redis-zset",
        }
    }
}

/// Finds `redis-server` on the PATH.
pub(crate) fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

/// A `redis-server` child process, killed on drop.
pub(crate) struct RedisServer {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub(crate) fn start() -> Result<RedisServer, String> {
        let binary = find_binary().ok_or(
            "redis-server is not installed (not on PATH); install it (apt-get install redis-server) or drop --baseline redis",
        )?;
        let dir =
            tempfile::tempdir().map_err(|e| format!("creating a directory for redis: {e}"))?;
        // A free port: bind port 0, read the port, let it go. Another process could
        // take it in between; then redis fails to start and we say so.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let log = std::fs::File::create(dir.path().join("redis.log"))
            .map_err(|e| format!("creating the redis log: {e}"))?;
        let mut command = Command::new(&binary);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches us, and we stop it.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing and touches
        // no lock, as code between fork and exec must not.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let mut server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = Conn::connect(port)
                && conn.call(&[b"PING"]).is_ok()
            {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(server._dir.path().join("redis.log"))
                    .unwrap_or_default();
                return Err(format!("redis-server exited at start ({status}):\n{log}"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server did not answer on 127.0.0.1:{port} within 10 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one Redis layout measured, in the units of `EngineRun`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RedisRun {
    pub(crate) layout: &'static str,
    pub(crate) complete: bool,
    pub(crate) ops_done: u64,
    pub(crate) posts: u64,
    pub(crate) reads: u64,
    /// Client connections and fan-out connections.
    pub(crate) connections: usize,
    pub(crate) fanout_connections: usize,
    /// Until the clients finished every operation.
    pub(crate) run: Duration,
    /// From then until the fan-out connections finished.
    pub(crate) drain: Duration,
    pub(crate) deliveries: u64,
    /// Fan-out commands sent, and the pipelines they went in.
    pub(crate) commands: u64,
    pub(crate) pipelines: u64,
    pub(crate) read_ns_quantiles: Vec<(f64, u64)>,
    /// A post's `SET` round trip (in its batch's pipeline), microseconds.
    pub(crate) post_us_p50: f64,
    pub(crate) post_us_p99: f64,
    /// From a post's `SET` acknowledged to its last delivery acknowledged, ms.
    pub(crate) lag_ms_p50: f64,
    pub(crate) lag_ms_p99: f64,
    /// INFO used_memory after the run minus before (bodies included).
    pub(crate) used_memory_delta_bytes: i64,
    /// MEMORY USAGE over LLEN/ZCARD of up to 1000 timelines.
    pub(crate) bytes_per_entry: f64,
}

impl RedisRun {
    pub(crate) fn read_ns(&self, q: f64) -> u64 {
        self.read_ns_quantiles
            .iter()
            .find(|(at, _)| (*at - q).abs() < 1e-12)
            .map_or(0, |&(_, ns)| ns)
    }
}

fn used_memory(conn: &mut Conn) -> Result<i64, String> {
    let info = conn.call(&[b"INFO", b"memory"])?;
    let text = String::from_utf8_lossy(info.bulk().unwrap_or_default()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "INFO memory has no used_memory".to_string())
}

fn key(prefix: &[u8], n: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(n.to_string().as_bytes());
}

/// Runs `workload` through the server in `layout`. `followers[u]` are `u`'s followers.
///
/// As deployed: [`CLIENT_CONNECTIONS`] client connections take the operations in
/// batches of [`OPS_PER_BATCH`] (a batch's posts' `SET`s and reads' `LRANGE`s go out as
/// one pipeline, then its reads' `MGET`s as a second one), and `fanout_connections`
/// fan-out connections take each stored post and write its deliveries in pipelines of
/// about [`PIPELINE_COMMANDS`] commands, batching the deliveries of several posts.
pub(crate) fn run(
    server: &RedisServer,
    layout: Layout,
    followers: &[Vec<u32>],
    workload: &Workload,
    fanout_connections: usize,
    phases: &Phases,
) -> Result<RedisRun, String> {
    let mut conn = Conn::connect(server.port)?;
    conn.call(&[b"FLUSHALL"])?;
    let before = used_memory(&mut conn)?;
    let mut out = RedisRun {
        layout: layout.name(),
        complete: true,
        connections: CLIENT_CONNECTIONS,
        fanout_connections,
        ..RedisRun::default()
    };
    phases.phase("run", workload.ops);
    let started = Instant::now();
    let (batch_tx, batch_rx) = crossbeam_channel::bounded::<Vec<Op>>(4 * CLIENT_CONNECTIONS);
    let (job_tx, job_rx) = crossbeam_channel::bounded::<FanOutJob>(1 << 16);
    let port = server.port;
    let page_size = workload.page_size;
    let (clients, fanouts, clients_done) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENT_CONNECTIONS)
            .map(|_| {
                let batches = batch_rx.clone();
                let jobs = job_tx.clone();
                scope.spawn(move || client(port, layout, page_size, &batches, &jobs))
            })
            .collect();
        drop((batch_rx, job_tx));
        let fanouts: Vec<_> = (0..fanout_connections)
            .map(|_| {
                let jobs = job_rx.clone();
                scope.spawn(move || fan_out(port, layout, followers, &jobs))
            })
            .collect();
        drop(job_rx);
        let mut batch = Vec::with_capacity(OPS_PER_BATCH);
        for (i, op) in workload.ops().enumerate() {
            if i % 256 == 0 {
                if phases.stopped() {
                    out.complete = false;
                    break;
                }
                phases.advance(i as u64);
            }
            batch.push(op);
            if batch.len() == OPS_PER_BATCH
                && batch_tx
                    .send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(OPS_PER_BATCH),
                    ))
                    .is_err()
            {
                // Every client is gone: one failed; its error is reported below.
                break;
            }
        }
        if !batch.is_empty() {
            let _ = batch_tx.send(batch);
        }
        drop(batch_tx);
        let clients: Vec<_> = clients
            .into_iter()
            .map(|h| h.join().expect("a client thread does not panic"))
            .collect();
        let clients_done = started.elapsed();
        let fanouts: Vec<_> = fanouts
            .into_iter()
            .map(|h| h.join().expect("a fan-out thread does not panic"))
            .collect();
        (clients, fanouts, clients_done)
    });
    out.run = clients_done;
    out.drain = started.elapsed() - clients_done;
    let mut latency = new_histogram();
    let mut post_latency = new_histogram();
    let mut lag = new_histogram();
    for c in clients {
        let c = c?;
        out.posts += c.posts;
        out.reads += c.reads;
        out.ops_done += c.posts + c.reads;
        latency.add(&c.read_ns).expect("same histogram bounds");
        post_latency.add(&c.post_ns).expect("same histogram bounds");
    }
    for f in fanouts {
        let f = f?;
        out.deliveries += f.deliveries;
        out.commands += f.commands;
        out.pipelines += f.pipelines;
        lag.add(&f.lag_us).expect("same histogram bounds");
    }
    out.read_ns_quantiles = latency_quantiles(&latency);
    out.post_us_p50 = post_latency.value_at_quantile(0.5) as f64 / 1000.0;
    out.post_us_p99 = post_latency.value_at_quantile(0.99) as f64 / 1000.0;
    out.lag_ms_p50 = lag.value_at_quantile(0.5) as f64 / 1000.0;
    out.lag_ms_p99 = lag.value_at_quantile(0.99) as f64 / 1000.0;
    out.used_memory_delta_bytes = used_memory(&mut conn)? - before;
    out.bytes_per_entry = bytes_per_entry(&mut conn, layout, workload.users)?;
    conn.call(&[b"FLUSHALL"])?;
    Ok(out)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// A stored post waiting for its fan-out: its id, author, and when its `SET` was
/// acknowledged (the lag counts from there, as feedcore's counts from `post` returning).
struct FanOutJob {
    id: u64,
    author: u32,
    stored: Instant,
}

/// What a client connection measured.
struct ClientRun {
    posts: u64,
    reads: u64,
    /// Per read: from its batch's first pipeline going out to its bodies arriving.
    read_ns: Histogram<u64>,
    /// Per post: its batch's first pipeline (the `SET`), round trip.
    post_ns: Histogram<u64>,
}

/// One client connection: takes batches of operations until the channel closes.
fn client(
    port: u16,
    layout: Layout,
    page_size: usize,
    batches: &crossbeam_channel::Receiver<Vec<Op>>,
    jobs: &crossbeam_channel::Sender<FanOutJob>,
) -> Result<ClientRun, String> {
    let mut conn = Conn::connect(port)?;
    let mut run = ClientRun {
        posts: 0,
        reads: 0,
        read_ns: new_histogram(),
        post_ns: new_histogram(),
    };
    let page_last = (page_size - 1).to_string();
    let mut k = Vec::new();
    let mut posts = Vec::new();
    for batch in batches {
        let t = Instant::now();
        posts.clear();
        let mut reads = 0;
        for op in &batch {
            match op {
                Op::Post(post) => {
                    let id = post.ordinal + 1;
                    let body = match post.kind {
                        PostKind::Repeat(_) => String::new(),
                        _ => post.notice().body,
                    };
                    key(b"n:", id, &mut k);
                    conn.cmd(&[b"SET", &k, body.as_bytes()]);
                    posts.push((id, post.author.0));
                }
                Op::Read(UserId(u)) => {
                    key(b"tl:", u64::from(*u), &mut k);
                    match layout {
                        Layout::List => conn.cmd(&[b"LRANGE", &k, b"0", page_last.as_bytes()]),
                        Layout::SortedSet => {
                            conn.cmd(&[b"ZREVRANGE", &k, b"0", page_last.as_bytes()])
                        }
                    }
                    reads += 1;
                }
            }
        }
        let replies = conn.send()?;
        let stored = Instant::now();
        for &(id, author) in &posts {
            let _ = run
                .post_ns
                .record((stored.duration_since(t).as_nanos() as u64).max(1));
            if jobs.send(FanOutJob { id, author, stored }).is_err() {
                return Err("every fan-out connection is gone".into());
            }
        }
        run.posts += posts.len() as u64;
        // The reads' bodies: one MGET a non-empty page, all in one pipeline.
        let mut queued = 0;
        for reply in &replies {
            if let Reply::Array(Some(ids)) = reply
                && !ids.is_empty()
            {
                let keys: Vec<Vec<u8>> = ids
                    .iter()
                    .filter_map(Reply::bulk)
                    .map(|id| [b"n:".as_slice(), id].concat())
                    .collect();
                let mut args: Vec<&[u8]> = vec![b"MGET"];
                args.extend(keys.iter().map(Vec::as_slice));
                conn.cmd(&args);
                queued += 1;
            }
        }
        if queued > 0 {
            std::hint::black_box(conn.send()?);
        }
        let ns = (t.elapsed().as_nanos() as u64).max(1);
        for _ in 0..reads {
            let _ = run.read_ns.record(ns);
        }
        run.reads += reads;
    }
    Ok(run)
}

/// What a fan-out connection measured.
struct FanOutRun {
    deliveries: u64,
    commands: u64,
    pipelines: u64,
    /// Per post: from its `SET` acknowledged to the pipeline holding its last
    /// delivery answered, microseconds.
    lag_us: Histogram<u64>,
}

/// One fan-out connection: takes stored posts until the channel closes, and writes
/// their deliveries in pipelines of about [`PIPELINE_COMMANDS`] commands.
fn fan_out(
    port: u16,
    layout: Layout,
    followers: &[Vec<u32>],
    jobs: &crossbeam_channel::Receiver<FanOutJob>,
) -> Result<FanOutRun, String> {
    let mut conn = Conn::connect(port)?;
    let mut run = FanOutRun {
        deliveries: 0,
        commands: 0,
        pipelines: 0,
        lag_us: new_histogram(),
    };
    let trim_stop = format!("-{}", TIMELINE_LEN + 1);
    let trim_last = (TIMELINE_LEN - 1).to_string();
    let (mut k, mut id_s) = (Vec::new(), Vec::new());
    // Posts whose last delivery is in the pipeline being built.
    let mut waiting: Vec<Instant> = Vec::new();
    let send = |conn: &mut Conn, waiting: &mut Vec<Instant>, run: &mut FanOutRun| {
        if conn.queued() == 0 {
            return Ok::<(), String>(());
        }
        run.commands += conn.queued() as u64;
        run.pipelines += 1;
        conn.send_discard()?;
        let now = Instant::now();
        for stored in waiting.drain(..) {
            let _ = run
                .lag_us
                .record((now.duration_since(stored).as_micros() as u64).max(1));
        }
        Ok(())
    };
    loop {
        // Block for the next post only with nothing queued; otherwise send what is
        // queued as soon as no post is waiting.
        let job = if conn.queued() == 0 {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        } else {
            match jobs.try_recv() {
                Ok(job) => job,
                Err(crossbeam_channel::TryRecvError::Empty) => {
                    send(&mut conn, &mut waiting, &mut run)?;
                    continue;
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => break,
            }
        };
        id_s.clear();
        id_s.extend_from_slice(job.id.to_string().as_bytes());
        let recipients =
            std::iter::once(job.author).chain(followers[job.author as usize].iter().copied());
        for r in recipients {
            key(b"tl:", u64::from(r), &mut k);
            match layout {
                Layout::List => {
                    conn.cmd(&[b"LPUSH", &k, &id_s]);
                    conn.cmd(&[b"LTRIM", &k, b"0", trim_last.as_bytes()]);
                }
                Layout::SortedSet => {
                    conn.cmd(&[b"ZADD", &k, &id_s, &id_s]);
                    conn.cmd(&[b"ZREMRANGEBYRANK", &k, b"0", trim_stop.as_bytes()]);
                }
            }
            run.deliveries += 1;
            if conn.queued() >= PIPELINE_COMMANDS {
                send(&mut conn, &mut waiting, &mut run)?;
            }
        }
        if conn.queued() == 0 {
            let _ = run
                .lag_us
                .record((job.stored.elapsed().as_micros() as u64).max(1));
        } else {
            waiting.push(job.stored);
        }
    }
    send(&mut conn, &mut waiting, &mut run)?;
    Ok(run)
}

/// `MEMORY USAGE` over `LLEN` / `ZCARD` of a fixed sample of up to 1000 timelines.
fn bytes_per_entry(conn: &mut Conn, layout: Layout, users: u32) -> Result<f64, String> {
    let mut k = Vec::new();
    let step = (users / 1000).max(1);
    for u in (0..users).step_by(step as usize) {
        key(b"tl:", u64::from(u), &mut k);
        conn.cmd(&[b"MEMORY", b"USAGE", &k, b"SAMPLES", b"0"]);
        match layout {
            Layout::List => conn.cmd(&[b"LLEN", &k]),
            Layout::SortedSet => conn.cmd(&[b"ZCARD", &k]),
        }
    }
    let replies = conn.send()?;
    let (mut bytes, mut entries) = (0i64, 0i64);
    for pair in replies.chunks(2) {
        bytes += pair[0].int().unwrap_or(0);
        entries += pair[1].int().unwrap_or(0);
    }
    Ok(if entries == 0 {
        0.0
    } else {
        bytes as f64 / entries as f64
    })
}

/// What `redis-benchmark` measured against the same server.
#[derive(Clone, Debug)]
pub(crate) struct BenchmarkRun {
    /// The command line, as run.
    pub(crate) command: String,
    /// LPUSH requests per second.
    pub(crate) lpush_per_s: f64,
}

/// Runs `redis-benchmark -P 4000 -t lpush` against the server (it writes only the key
/// `mylist`, deleted after). `None` with the reason when the tool is not installed or
/// says nothing this can read.
pub(crate) fn benchmark(server: &RedisServer) -> Result<BenchmarkRun, String> {
    let binary = find_binary()
        .and_then(|b| b.parent().map(|d| d.join("redis-benchmark")))
        .filter(|p| p.is_file())
        .ok_or("redis-benchmark is not installed beside redis-server")?;
    let port = server.port.to_string();
    let args = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-P",
        "4000",
        "-t",
        "lpush",
        "-n",
        "2000000",
        "-c",
        "4",
        "--csv",
    ];
    let output = Command::new(&binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // --csv: a header line, then "LPUSH","617283.94",...
    let lpush_per_s = text
        .lines()
        .find_map(|l| {
            let mut fields = l.split(',').map(|f| f.trim_matches('"'));
            (fields.next()? == "LPUSH").then(|| fields.next()?.parse::<f64>().ok())?
        })
        .ok_or_else(|| format!("redis-benchmark printed no LPUSH figure: {text:?}"))?;
    let mut conn = Conn::connect(server.port)?;
    conn.call(&[b"DEL", b"mylist"])?;
    Ok(BenchmarkRun {
        command: format!("redis-benchmark {}", args.join(" ")),
        lpush_per_s,
    })
}
