//! The load generator: seeds a store, starts `feedcore-server` (this binary, re-run as
//! the server) once per backend, drives each over loopback HTTP with the same seeded
//! mix, open loop at a target rate, and prints requests/s, latency percentiles of home
//! reads and posts, and the server's memory, for both backends from the same run.
//!
//! ```sh
//! cargo run --release --example load -- --rate 20000 --seconds 10
//! ```
//!
//! The mix: `--reads-per-post` home reads (page of 20) per post; post authors drawn
//! Zipf-skewed (exponent 1), readers uniform; follows seeded Zipf-skewed. Each of the
//! `--connections` keep-alive connections sends on its own schedule (rate /
//! connections, evenly spaced); a request that falls due while its connection still
//! waits for the last response has its latency counted from the time it was due, not
//! from when it was sent, so a server that falls behind shows it (no coordinated
//! omission). The generator runs on the same machine as the server and
//! shares its cores (`--client-threads`, default 1).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use feedcore_server::cli::{DurabilityKind, SeedArgs, SplitMix, StoreArgs, Zipf};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Set in the environment of the server child: this binary then runs the server.
const SERVE_ENV: &str = "FEEDCORE_LOAD_SERVE";

#[derive(Parser, Debug, Clone)]
#[command(about = "Load generator for feedcore-server: both backends, one run")]
struct Args {
    /// Accounts seeded.
    #[arg(long, default_value_t = 10_000)]
    users: u32,
    /// Follows per account on average (followees Zipf-skewed).
    #[arg(long, default_value_t = 30)]
    follows_mean: u32,
    /// Target requests per second (all connections together).
    #[arg(long, default_value_t = 20_000)]
    rate: u32,
    /// Measured seconds per backend.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of the same mix before measuring (fills timelines, warms caches).
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Home reads per post.
    #[arg(long, default_value_t = 10)]
    reads_per_post: u32,
    /// Backends to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "feedcore,redis")]
    backends: Vec<String>,
    /// Durability of the server's store.
    #[arg(long, value_enum, default_value_t = DurabilityKind::Buffered)]
    durability: DurabilityKind,
    /// Seed of the graph and the mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        feedcore_server::cli::main();
        return;
    }
    let args = Args::parse();
    println!(
        "load: {} users, {} follows each on average, {} req/s target for {} s (+{} s warm-up), {} connections, {} reads a post, durability {:?}, seed {}; generator on {} thread(s) of the same {} cores",
        args.users,
        args.follows_mean,
        args.rate,
        args.seconds,
        args.warmup_seconds,
        args.connections,
        args.reads_per_post,
        args.durability,
        args.seed,
        args.client_threads,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results = Vec::new();
    for backend in &args.backends {
        match run_backend(&args, backend) {
            Ok(r) => results.push(r),
            Err(e) => println!("SKIP backend {backend}: {e}"),
        }
    }
    report(&results);
}

struct Outcome {
    backend: String,
    seconds: f64,
    requests: u64,
    errors: u64,
    home: Histogram<u64>,
    post: Histogram<u64>,
    home_bytes: u64,
    server_rss_kb: u64,
    server_hwm_kb: u64,
    redis_rss_kb: Option<u64>,
    server_cpu_s: f64,
    redis_cpu_s: f64,
}

struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_backend(args: &Args, backend: &str) -> Result<Outcome, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = dir.path().join("store");
    let tokens_file = dir.path().join("tokens");
    let seeded = Instant::now();
    feedcore_server::cli::seed(&SeedArgs {
        store: StoreArgs {
            dir: Some(store.clone()),
            users_max: args.users,
            durability: args.durability,
        },
        users: args.users,
        prefix: "user".into(),
        follows_mean: args.follows_mean,
        seed: args.seed,
        tokens: Some(tokens_file.clone()),
    })?;
    let tokens: Vec<String> = std::fs::read_to_string(&tokens_file)
        .map_err(|e| e.to_string())?
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap_or_default().to_string())
        .collect();
    println!(
        "[{backend}] seeded in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let mut redis = None;
    let mut extra: Vec<String> = Vec::new();
    if backend == "redis" {
        let (child, url, pid) = start_redis(dir.path())?;
        redis = Some((Spawned(child), pid));
        extra = vec!["--backend".into(), "redis".into(), "--redis".into(), url];
    } else if backend != "feedcore" {
        return Err(format!("unknown backend {backend} (feedcore, redis)"));
    }
    let durability = format!("{:?}", args.durability).to_lowercase();
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(SERVE_ENV, "1")
        .arg("--dir")
        .arg(&store)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--users-max",
            &args.users.to_string(),
        ])
        .args(["--durability", &durability])
        .args(&extra)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let pid = child.id();
    let server = Spawned(child);
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .and_then(Result::ok)
        .ok_or("the server printed nothing")?;
    std::thread::spawn(move || for _ in lines {});
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .ok_or_else(|| format!("no address in {line:?}"))?
        .to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let tokens = Arc::new(tokens);
    let zipf = Arc::new(Zipf::new(args.users as usize, 1.0));
    let pids = [Some(pid), redis.as_ref().map(|(_, p)| *p)];
    let outcome = runtime.block_on(drive(args, &addr, tokens, zipf, pids))?;
    let (rss, hwm) = memory_kb(pid);
    println!(
        "[{backend}] {} requests measured; server CPU {:.1} s, redis-server CPU {:.1} s",
        outcome.requests, outcome.server_cpu_s, outcome.redis_cpu_s
    );
    let redis_rss_kb = redis.as_ref().map(|(_, pid)| memory_kb(*pid).0);
    drop(server);
    drop(redis);
    Ok(Outcome {
        backend: backend.to_string(),
        server_rss_kb: rss,
        server_hwm_kb: hwm,
        redis_rss_kb,
        ..outcome
    })
}

fn start_redis(dir: &Path) -> Result<(Child, String, u32), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let redis_dir: PathBuf = dir.join("redis");
    std::fs::create_dir_all(&redis_dir).map_err(|e| e.to_string())?;
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&redis_dir)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("redis-server does not start ({e}); server/scripts/redis.sh installs it")
        })?;
    let pid = child.id();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, format!("redis://127.0.0.1:{port}/"), pid))
}

/// Resident and peak resident kilobytes of a process, from /proc/PID/status.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct ConnStats {
    requests: u64,
    errors: u64,
    home: Histogram<u64>,
    post: Histogram<u64>,
    home_bytes: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

async fn drive(
    args: &Args,
    addr: &str,
    tokens: Arc<Vec<String>>,
    zipf: Arc<Zipf>,
    pids: [Option<u32>; 2],
) -> Result<Outcome, String> {
    let per_conn = f64::from(args.rate) / f64::from(args.connections);
    let interval = Duration::from_secs_f64(1.0 / per_conn);
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + Duration::from_secs(args.warmup_seconds);
    let end = measure_from + Duration::from_secs(args.seconds);
    // CPU seconds the server (and redis-server) spend over the measured window.
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before = pids.map(|p| p.map_or(0.0, cpu_seconds));
        tokio::time::sleep_until(end.into()).await;
        let after = pids.map(|p| p.map_or(0.0, cpu_seconds));
        [after[0] - before[0], after[1] - before[1]]
    });
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (tokens, zipf) = (Arc::clone(&tokens), Arc::clone(&zipf));
        let addr = addr.to_string();
        let reads_per_post = args.reads_per_post;
        let seed = args.seed.wrapping_mul(1_000_003).wrapping_add(u64::from(c));
        // Connections spread their first request over one interval.
        let phase = interval.mul_f64(f64::from(c) / f64::from(args.connections));
        tasks.push(tokio::spawn(async move {
            connection(
                stream,
                addr,
                tokens,
                zipf,
                reads_per_post,
                seed,
                start + phase,
                interval,
                measure_from,
                end,
            )
            .await
        }));
    }
    let mut total = ConnStats {
        requests: 0,
        errors: 0,
        home: histogram(),
        post: histogram(),
        home_bytes: 0,
    };
    for t in tasks {
        let s = t.await.map_err(|e| e.to_string())??;
        total.requests += s.requests;
        total.errors += s.errors;
        total.home_bytes += s.home_bytes;
        total.home.add(&s.home).map_err(|e| e.to_string())?;
        total.post.add(&s.post).map_err(|e| e.to_string())?;
    }
    let cpu = cpu.await.map_err(|e| e.to_string())?;
    let seconds = (Instant::now().min(end + Duration::from_secs(60)) - measure_from)
        .as_secs_f64()
        .max(args.seconds as f64);
    Ok(Outcome {
        backend: String::new(),
        seconds,
        requests: total.requests,
        errors: total.errors,
        home: total.home,
        post: total.post,
        home_bytes: total.home_bytes,
        server_rss_kb: 0,
        server_hwm_kb: 0,
        redis_rss_kb: None,
        server_cpu_s: cpu[0],
        redis_cpu_s: cpu[1],
    })
}

/// User plus system CPU seconds of a process so far, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    ticks as f64 / USER_HZ
}

/// Clock ticks a second in /proc's CPU times (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

#[allow(clippy::too_many_arguments)]
async fn connection(
    mut stream: TcpStream,
    addr: String,
    tokens: Arc<Vec<String>>,
    zipf: Arc<Zipf>,
    reads_per_post: u32,
    seed: u64,
    first: Instant,
    interval: Duration,
    measure_from: Instant,
    end: Instant,
) -> Result<ConnStats, String> {
    let mut rng = SplitMix(seed);
    let mut stats = ConnStats {
        requests: 0,
        errors: 0,
        home: histogram(),
        post: histogram(),
        home_bytes: 0,
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut request = Vec::with_capacity(1024);
    let mut due = first;
    let mut n: u64 = 0;
    while due < end {
        // On schedule, the request goes out when the timer fires (tokio's timer wakes
        // up to a millisecond late: that slack is the generator's, so latency counts
        // from the wake-up). Behind schedule (the last response came after this one
        // was due), it goes out at once and latency counts from when it was due.
        let from = if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        };
        let is_post = rng.next_u64().is_multiple_of(u64::from(reads_per_post + 1));
        request.clear();
        if is_post {
            let author = zipf.sample(&mut rng);
            let body = format!(
                "status=post+{n}+from+user{author}+about+timelines+and+fan-out,+a+sentence+of+a+usual+length+for+a+notice+%23load&visibility=public"
            );
            request.extend_from_slice(
                format!(
                    "POST /api/v1/statuses HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                    tokens[author],
                    body.len()
                )
                .as_bytes(),
            );
        } else {
            let reader = (rng.next_u64() % tokens.len() as u64) as usize;
            request.extend_from_slice(
                format!(
                    "GET /api/v1/timelines/home HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
                    tokens[reader]
                )
                .as_bytes(),
            );
        }
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let (status, body_len) = read_response(&mut stream, &mut buf).await?;
        let done = Instant::now();
        if due >= measure_from {
            stats.requests += 1;
            if status != 200 {
                stats.errors += 1;
            }
            let us = (done - from).as_micros().max(1) as u64;
            if is_post {
                let _ = stats.post.record(us);
            } else {
                let _ = stats.home.record(us);
                stats.home_bytes += body_len as u64;
            }
        }
        n += 1;
        due += interval;
    }
    Ok(stats)
}

/// Reads one HTTP/1.1 response with a Content-Length; returns its status and body
/// length, leaving any bytes past it in `buf`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, usize), String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|e| e.to_string())?;
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or("no status")?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or("no content-length")?;
            let total = end + 4 + len;
            while buf.len() < total {
                read_more(stream, buf).await?;
            }
            buf.drain(..total);
            return Ok((status, len));
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 32 * 1024];
    let n = stream
        .read(&mut chunk)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn report(results: &[Outcome]) {
    println!();
    println!(
        "| backend | req/s | home reads | home p50 / p99 / p999 ms | KB a page | posts | post p50 / p99 / p999 ms | non-200 | server RSS (peak) MB | redis-server RSS MB | CPU us a request (server + redis) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        println!(
            "| {} | {:.0} | {} | {:.2} / {:.2} / {:.2} | {:.1} | {} | {:.2} / {:.2} / {:.2} | {} | {:.1} ({:.1}) | {} | {:.1} + {:.1} |",
            r.backend,
            r.requests as f64 / r.seconds,
            r.home.len(),
            ms(&r.home, 0.5),
            ms(&r.home, 0.99),
            ms(&r.home, 0.999),
            r.home_bytes as f64 / r.home.len().max(1) as f64 / 1024.0,
            r.post.len(),
            ms(&r.post, 0.5),
            ms(&r.post, 0.99),
            ms(&r.post, 0.999),
            r.errors,
            r.server_rss_kb as f64 / 1024.0,
            r.server_hwm_kb as f64 / 1024.0,
            r.redis_rss_kb
                .map_or("-".to_string(), |kb| format!("{:.1}", kb as f64 / 1024.0)),
            r.server_cpu_s * 1e6 / r.requests.max(1) as f64,
            r.redis_cpu_s * 1e6 / r.requests.max(1) as f64,
        );
    }
    if let (Some(f), Some(r)) = (
        results.iter().find(|r| r.backend == "feedcore"),
        results.iter().find(|r| r.backend == "redis"),
    ) {
        println!(
            "redis / feedcore, same run: req/s {:.2}, home p50 {:.2}, home p99 {:.2}, post p99 {:.2}, CPU a request (server + redis) {:.2}",
            (r.requests as f64 / r.seconds) / (f.requests as f64 / f.seconds),
            ms(&r.home, 0.5) / ms(&f.home, 0.5),
            ms(&r.home, 0.99) / ms(&f.home, 0.99),
            ms(&r.post, 0.99) / ms(&f.post, 0.99),
            (r.server_cpu_s + r.redis_cpu_s)
                / r.requests.max(1) as f64
                / (f.server_cpu_s / f.requests.max(1) as f64),
        );
    }
}
