//! `feedcore sim --baseline redis`: the same workload through a local `redis-server`,
//! the way Twitter kept home timelines (a list per user: pipelined `LPUSH` then
//! `LTRIM 0 799` per follower per post) and the way Mastodon does (a sorted set per
//! user: `ZADD` then `ZREMRANGEBYRANK` down to 800). Bodies are stored with `SET`; a
//! read is `LRANGE`/`ZREVRANGE` of one page, then `MGET` of the bodies: two round trips.
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
/// Recipients per pipeline (Twitter pipelined 4k at a time).
const PIPELINE_RECIPIENTS: usize = 4096;

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
    pub(crate) run: Duration,
    pub(crate) post_time: Duration,
    pub(crate) read_time: Duration,
    pub(crate) deliveries: u64,
    pub(crate) read_ns_quantiles: Vec<(f64, u64)>,
    /// A post's SET plus its whole pipelined fan-out, milliseconds.
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
pub(crate) fn run(
    server: &RedisServer,
    layout: Layout,
    followers: &[Vec<u32>],
    workload: &Workload,
    phases: &Phases,
) -> Result<RedisRun, String> {
    let mut conn = Conn::connect(server.port)?;
    conn.call(&[b"FLUSHALL"])?;
    let before = used_memory(&mut conn)?;
    let mut out = RedisRun {
        layout: layout.name(),
        complete: true,
        ..RedisRun::default()
    };
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds");
    let mut lag =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
    let trim_stop = format!("-{}", TIMELINE_LEN + 1);
    let trim_last = (TIMELINE_LEN - 1).to_string();
    let page_last = (workload.page_size - 1).to_string();
    let (mut k, mut id_s) = (Vec::new(), Vec::new());
    phases.phase("run", workload.ops);
    let started = Instant::now();
    for (i, op) in workload.ops().enumerate() {
        if i % 256 == 0 {
            if phases.stopped() {
                out.complete = false;
                break;
            }
            phases.advance(i as u64);
        }
        match op {
            Op::Post(post) => {
                let t = Instant::now();
                let id = post.ordinal + 1;
                id_s.clear();
                id_s.extend_from_slice(id.to_string().as_bytes());
                let body = match post.kind {
                    PostKind::Repeat(_) => String::new(),
                    _ => post.notice().body,
                };
                key(b"n:", id, &mut k);
                conn.cmd(&[b"SET", &k, body.as_bytes()]);
                let author = post.author.0;
                let recipients =
                    std::iter::once(author).chain(followers[author as usize].iter().copied());
                let mut in_pipeline = 0;
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
                    out.deliveries += 1;
                    in_pipeline += 1;
                    if in_pipeline == PIPELINE_RECIPIENTS {
                        conn.send_discard()?;
                        in_pipeline = 0;
                    }
                }
                conn.send_discard()?;
                let spent = t.elapsed();
                out.post_time += spent;
                let _ = lag.record((spent.as_micros() as u64).max(1));
                out.posts += 1;
            }
            Op::Read(UserId(u)) => {
                let t = Instant::now();
                key(b"tl:", u64::from(u), &mut k);
                let ids = match layout {
                    Layout::List => conn.call(&[b"LRANGE", &k, b"0", page_last.as_bytes()])?,
                    Layout::SortedSet => {
                        conn.call(&[b"ZREVRANGE", &k, b"0", page_last.as_bytes()])?
                    }
                };
                if let Reply::Array(Some(ids)) = ids
                    && !ids.is_empty()
                {
                    let keys: Vec<Vec<u8>> = ids
                        .iter()
                        .filter_map(Reply::bulk)
                        .map(|id| [b"n:".as_slice(), id].concat())
                        .collect();
                    let mut args: Vec<&[u8]> = vec![b"MGET"];
                    args.extend(keys.iter().map(Vec::as_slice));
                    let bodies = conn.call(&args)?;
                    std::hint::black_box(bodies);
                }
                let spent = t.elapsed();
                out.read_time += spent;
                let _ = latency.record((spent.as_nanos() as u64).max(1));
                out.reads += 1;
            }
        }
        out.ops_done += 1;
    }
    out.run = started.elapsed();
    out.read_ns_quantiles = latency_quantiles(&latency);
    out.lag_ms_p50 = lag.value_at_quantile(0.5) as f64 / 1000.0;
    out.lag_ms_p99 = lag.value_at_quantile(0.99) as f64 / 1000.0;
    out.used_memory_delta_bytes = used_memory(&mut conn)? - before;
    // Bytes per entry over a fixed sample of timelines.
    let users = workload.users;
    let step = (users / 1000).max(1);
    let sample: Vec<u32> = (0..users).step_by(step as usize).collect();
    for &u in &sample {
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
    out.bytes_per_entry = if entries == 0 {
        0.0
    } else {
        bytes as f64 / entries as f64
    };
    conn.call(&[b"FLUSHALL"])?;
    Ok(out)
}
