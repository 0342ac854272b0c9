//! The command line: serve a store directory, or seed one with accounts and follows.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use feedcore::{Config, Durability, Engine, NoticeId, Strategy};

use crate::accounts::Accounts;
use crate::api::{self, App};
use crate::backend::Backend;
use crate::json::Urls;
use crate::redis_timelines::RedisTimelines;

/// An example server that embeds feedcore behind Mastodon's client API.
#[derive(Parser, Debug)]
#[command(
    name = "feedcore-server",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Seed instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving options (the default command).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Commands other than serving.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Creates accounts (and follows between them) in DIR with one fsync, and writes
    /// `id<TAB>username<TAB>token` lines for them; the server must not be running.
    Seed(SeedArgs),
}

/// Where home timelines are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// feedcore's own timelines (push fan-out into in-process rings).
    Feedcore,
    /// Redis lists, Twitter's layout (LPUSH + LTRIM 0 799, fan-out pipelined).
    Redis,
}

/// When a post (or a follow) counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityKind {
    /// fdatasync of every record.
    Always,
    /// fdatasync shared by concurrent writers (feedcore's default).
    Group,
    /// The page cache only.
    Buffered,
}

/// Options of the store, shared by `serve` and `seed`.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The store directory (notices, graph, accounts).
    #[arg(long, required = true)]
    pub dir: Option<PathBuf>,
    /// Accounts at most (user ids 0 to this, exclusive; the engine has one user more,
    /// the anonymous reader of the public and tag timelines); memory is sized by it.
    #[arg(long, default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(1..i64::from(u32::MAX)))]
    pub users_max: u32,
    /// When a post, follow or account creation is acknowledged.
    #[arg(long, value_enum, default_value_t = DurabilityKind::Group)]
    pub durability: DurabilityKind,
}

/// Options of the server.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on (port 0: any free port; the line printed at start says
    /// which).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Listen on a non-loopback address too (the server has no TLS and open
    /// registration: loopback only unless asked).
    #[arg(long)]
    pub allow_remote: bool,
    /// Where home timelines are kept.
    #[arg(long, value_enum, default_value_t = BackendKind::Feedcore)]
    pub backend: BackendKind,
    /// The redis-server of `--backend redis`.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    pub redis: String,
    /// The base URL links point at (default: http:// and the listening address).
    #[arg(long)]
    pub public_url: Option<String>,
}

/// Options of `seed`.
#[derive(Args, Debug, Clone)]
pub struct SeedArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Accounts to create, named `{prefix}{n}`.
    #[arg(long)]
    pub users: u32,
    /// Name prefix.
    #[arg(long, default_value = "user")]
    pub prefix: String,
    /// Follows per account on average, drawn as feedcore's sim draws a Twitter-like
    /// graph (`feedcore::sim::TwitterGraph`) over every account in DIR.
    #[arg(long, default_value_t = 0)]
    pub follows_mean: u32,
    /// Seed of the follow draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the tokens (default: standard output).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
}

fn config(store: &StoreArgs, strategy: Strategy) -> Config {
    Config {
        // The last user id is the anonymous reader (`App::anonymous`); clap keeps
        // `users_max` below u32::MAX.
        users_max: store.users_max + 1,
        durability: match store.durability {
            DurabilityKind::Always => Durability::Always,
            DurabilityKind::Group => Durability::default(),
            DurabilityKind::Buffered => Durability::Buffered,
        },
        strategy,
        ..Default::default()
    }
}

/// Runs the command line (the `feedcore-server` binary and the `server` example).
pub fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Seed(args)) => seed(&args),
        None => serve(cli.serve),
    };
    if let Err(e) = result {
        eprintln!("feedcore-server: {e}");
        std::process::exit(1);
    }
}

/// Opens the store and serves it until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> Result<(), String> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(format!(
            "refusing to listen on {}: not a loopback address (pass --allow-remote)",
            args.listen
        ));
    }
    let dir = args.store.dir.clone().expect("clap requires --dir");
    let strategy = match args.backend {
        BackendKind::Feedcore => Strategy::Push,
        // The engine keeps notices and the graph; pull stores nothing per reader.
        BackendKind::Redis => Strategy::Pull,
    };
    let engine = Arc::new(
        Engine::open(&dir, config(&args.store, strategy))
            .map_err(|e| format!("opening {}: {e}", dir.display()))?,
    );
    let accounts = Accounts::open(&dir, args.store.users_max).map_err(|e| e.to_string())?;
    for n in engine.log().iter_from(NoticeId(1)) {
        accounts.count_status(n.author().0, 1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let served = Arc::clone(&engine);
    runtime.block_on(async move {
        let engine = served;
        let backend = match args.backend {
            BackendKind::Feedcore => Backend::Feedcore,
            BackendKind::Redis => {
                Backend::Redis(RedisTimelines::connect(&args.redis, Arc::clone(&engine)).await?)
            }
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("listening on {}: {e}", args.listen))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("local address: {e}"))?;
        let base = args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local}"))
            .trim_end_matches('/')
            .to_string();
        // Links are written into JSON and headers without escaping.
        if !base
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'<' | b'>'))
        {
            return Err(format!(
                "--public-url {base:?} holds a character a URL may not"
            ));
        }
        let app = Arc::new(App {
            engine: Arc::clone(&engine),
            accounts,
            urls: Urls { base: base.clone() },
            backend,
            anonymous: args.store.users_max,
        });
        println!(
            "feedcore-server listening on {base} (backend {}, dir {}, pid {})",
            app.backend.name(),
            dir.display(),
            std::process::id()
        );
        let _ = std::io::stdout().flush();
        axum::serve(listener, api::router(app))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| format!("serving: {e}"))
    })?;
    engine.flush().map_err(|e| e.to_string())?;
    engine.sync().map_err(|e| e.to_string())
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Creates `args.users` accounts and their follows, and writes their tokens.
pub fn seed(args: &SeedArgs) -> Result<(), String> {
    let dir = args.store.dir.clone().expect("clap requires --dir");
    let mut store = args.store.clone();
    store.durability = DurabilityKind::Buffered; // one sync at the end
    let engine = Engine::open(&dir, config(&store, Strategy::Push))
        .map_err(|e| format!("opening {}: {e}", dir.display()))?;
    let accounts = Accounts::open(&dir, args.store.users_max).map_err(|e| e.to_string())?;
    let first = accounts.len() as u32;
    let names: Vec<String> = (first..first + args.users)
        .map(|n| format!("{}{n}", args.prefix))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let made = accounts.create(&refs, now).map_err(|e| e.to_string())?;
    let users = accounts.len() as u32;
    let mut follows = 0u64;
    if args.follows_mean > 0 && users > 1 {
        // feedcore's Twitter-calibrated graph (the sim's): skewed in-degree, the top
        // account followed by 7% of users, 22% of pairs reciprocal.
        let graph = feedcore::sim::TwitterGraph {
            users,
            follows_mean: f64::from(args.follows_mean),
            seed: args.seed,
            ..Default::default()
        };
        for (a, b) in graph.edges() {
            if engine.follow(a, b).map_err(|e| e.to_string())? {
                follows += 1;
            }
        }
    }
    engine.sync().map_err(|e| e.to_string())?;
    let mut text = String::new();
    for ((id, token), name) in made.iter().zip(&names) {
        text.push_str(&format!("{id}\t{name}\t{token}\n"));
    }
    match &args.tokens {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?,
        None => print!("{text}"),
    }
    eprintln!(
        "seeded {} accounts and {follows} follows in {}",
        made.len(),
        dir.display()
    );
    Ok(())
}

/// A small seeded generator (SplitMix64): the seed alone fixes what is drawn.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf's law over ranks 0..n: rank k drawn with weight 1 / (k + 1)^s.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks (n >= 1) with exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 0..n {
            sum += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut SplitMix) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}
