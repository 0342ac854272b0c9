//! Home timelines in Redis, Twitter's way: one list per user (`h:{user}`) of notice
//! ids, newest at the head, kept to 800 by `LPUSH` + `LTRIM 0 799` on every delivery.
//!
//! The fan-out runs behind the POST, as feedcore's does: followers are split over
//! [`PARTITIONS`] tasks by `user % PARTITIONS` (each task is the only writer of its
//! users' lists, so a list never sees two writers reorder its pushes), and each task
//! pipelines its followers' commands 4,096 followers to a round trip, as Twitter did.
//! Notice bodies stay in feedcore's log (this compares where timelines are kept, not
//! where bodies are); a read takes ids from the list and filters them by the home
//! rules at read time, as feedcore does ([`crate::backend::home_shows`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use feedcore::{Engine, NoticeId, Page, TimelinePage, UserId};
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};

use crate::api::ApiError;

/// Fan-out tasks (and their connections).
pub const PARTITIONS: u32 = 2;
/// Entries kept per list (Twitter's and Mastodon's 800).
pub const CAPACITY: isize = 800;
/// Followers whose commands go in one pipelined round trip.
const PIPELINE_FOLLOWERS: usize = 4096;

enum Job {
    Post {
        id: u64,
        author: u32,
        addressees: Option<Arc<[u32]>>,
    },
    Merge {
        follower: u32,
        ids: Vec<u64>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// The Redis side of the Redis backend.
pub struct RedisTimelines {
    read: MultiplexedConnection,
    partitions: Vec<mpsc::UnboundedSender<Job>>,
    /// List entries pushed so far, for the stats.
    pub deliveries: Arc<AtomicU64>,
}

fn key(user: u32) -> String {
    format!("h:{user}")
}

fn redis_err(e: redis::RedisError) -> ApiError {
    ApiError::unavailable(format!("redis: {e}"))
}

impl RedisTimelines {
    /// Connects to `url` (`redis://127.0.0.1:PORT/`) and starts the fan-out tasks.
    pub async fn connect(url: &str, engine: Arc<Engine>) -> Result<RedisTimelines, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url {url}: {e}"))?;
        let connect = async || {
            client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("connecting to redis at {url}: {e}"))
        };
        let mut read = connect().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut read)
            .await
            .map_err(|e| format!("redis at {url} does not answer PING: {e}"))?;
        let deliveries = Arc::new(AtomicU64::new(0));
        let mut partitions = Vec::new();
        for p in 0..PARTITIONS {
            let (tx, rx) = mpsc::unbounded_channel();
            let conn = connect().await?;
            tokio::spawn(partition(
                p,
                rx,
                conn,
                Arc::clone(&engine),
                Arc::clone(&deliveries),
            ));
            partitions.push(tx);
        }
        Ok(RedisTimelines {
            read,
            partitions,
            deliveries,
        })
    }

    /// Queues the delivery of notice `id` to the author's followers (and the author);
    /// `addressees`, when given, are the only followers it goes to.
    pub fn fan_out(&self, id: u64, author: u32, addressees: Option<Vec<u32>>) {
        let addressees: Option<Arc<[u32]>> = addressees.map(Into::into);
        for tx in &self.partitions {
            // A send fails only when the task is gone, i.e. the runtime shuts down.
            let _ = tx.send(Job::Post {
                id,
                author,
                addressees: addressees.clone(),
            });
        }
    }

    /// Merges `author`'s newest notices into `follower`'s list, through the task that
    /// writes it (so no delivery of the same list is lost between read and rewrite),
    /// and waits for it.
    pub async fn merge(&self, engine: &Engine, follower: u32, author: u32) -> Result<(), ApiError> {
        let newest = engine.user_timeline(UserId(author), UserId(author), Page::latest(200))?;
        let ids = newest.ids.iter().map(|id| id.0).collect();
        let (done, wait) = oneshot::channel();
        let tx = &self.partitions[(follower % PARTITIONS) as usize];
        tx.send(Job::Merge {
            follower,
            ids,
            done,
        })
        .map_err(|_| ApiError::unavailable("the fan-out has stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ApiError::unavailable(format!("redis: {e}"))),
            Err(_) => Err(ApiError::unavailable("the fan-out has stopped".into())),
        }
    }

    /// A page of `user`'s home timeline from its list: ids in the page's range, newest
    /// first, that the home rules show now.
    pub async fn page(
        &self,
        engine: &Engine,
        user: u32,
        page: Page,
    ) -> Result<TimelinePage, ApiError> {
        let limit = page.limit.clamp(1, 200);
        let chunk = (2 * limit) as isize;
        let mut conn = self.read.clone();
        let key = key(user);
        let mut ids = Vec::with_capacity(limit);
        let mut start: isize = 0;
        let mut more = false;
        'scan: while start < CAPACITY {
            let got: Vec<u64> = redis::cmd("LRANGE")
                .arg(&key)
                .arg(start)
                .arg((start + chunk - 1).min(CAPACITY - 1))
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            for &id in &got {
                if page.max_id.is_some_and(|m| id >= m.0) {
                    continue;
                }
                if page.since_id.is_some_and(|s| id <= s.0) {
                    break 'scan; // the list is newest first
                }
                if ids.len() == limit {
                    more = true;
                    break 'scan;
                }
                if crate::backend::home_shows(engine, user, NoticeId(id)) {
                    ids.push(NoticeId(id));
                }
            }
            if (got.len() as isize) < chunk {
                break;
            }
            start += chunk;
        }
        Ok(TimelinePage {
            next: more.then(|| Page {
                max_id: ids.last().copied(),
                ..page
            }),
            ids,
        })
    }
}

async fn partition(
    p: u32,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    mut conn: MultiplexedConnection,
    engine: Arc<Engine>,
    deliveries: Arc<AtomicU64>,
) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Post {
                id,
                author,
                addressees,
            } => {
                let users = recipients(&engine, p, author, addressees.as_deref());
                for chunk in users.chunks(PIPELINE_FOLLOWERS) {
                    let mut pipe = redis::pipe();
                    for &u in chunk {
                        let k = key(u);
                        pipe.lpush(&k, id)
                            .ignore()
                            .ltrim(&k, 0, CAPACITY - 1)
                            .ignore();
                    }
                    match pipe.query_async::<()>(&mut conn).await {
                        Ok(()) => {
                            deliveries.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                        Err(e) => eprintln!("redis fan-out of notice {id}: {e}"),
                    }
                }
            }
            Job::Merge {
                follower,
                ids,
                done,
            } => {
                let _ = done.send(merge(&mut conn, follower, ids).await);
            }
        }
    }
}

/// The users of partition `p` a notice goes to: the author's followers (minus those
/// blocked either way, and those not addressed when it has addressees) and the author.
fn recipients(engine: &Engine, p: u32, author: u32, addressees: Option<&[u32]>) -> Vec<u32> {
    let g = engine.graph();
    let a = UserId(author);
    let mut users: Vec<u32> = g
        .followers_in(a, p, PARTITIONS)
        .map(|u| u.0)
        .filter(|&u| addressees.is_none_or(|ad| ad.contains(&u)))
        .filter(|&u| !g.is_blocked(UserId(u), a))
        .collect();
    if author % PARTITIONS == p {
        users.push(author);
    }
    users
}

async fn merge(
    conn: &mut MultiplexedConnection,
    follower: u32,
    add: Vec<u64>,
) -> Result<(), String> {
    let k = key(follower);
    let have: Vec<u64> = redis::cmd("LRANGE")
        .arg(&k)
        .arg(0)
        .arg(CAPACITY - 1)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut all: Vec<u64> = have.into_iter().chain(add).collect();
    all.sort_unstable_by(|a, b| b.cmp(a));
    all.dedup();
    all.truncate(CAPACITY as usize);
    let mut pipe = redis::pipe();
    pipe.atomic().del(&k).ignore();
    if !all.is_empty() {
        pipe.rpush(&k, &all).ignore();
    }
    pipe.query_async::<()>(conn)
        .await
        .map_err(|e| e.to_string())
}
