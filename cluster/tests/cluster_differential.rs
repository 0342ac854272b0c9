//! Guards the cluster's promise that partitioning changes nothing a reader sees: a
//! seeded workload (follows, unfollows, posts with mentions and scopes, replies,
//! mutes, blocks, deletes) runs on 3 nodes of 3 partitions over a 3-server JetStream
//! cluster and, in step, on one single-node `Engine`. One NATS server is killed with
//! SIGKILL in the middle and started again later. Once the cluster is quiet, every
//! user's home timeline (all pages) and mentions hold the same notices, named by global
//! id, as the single engine's, each exactly once. Order is not compared: a node stores
//! notices from different partitions in the order they arrive.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use feedcore::{Config, Durability, Engine, NewNotice, NoticeId, Scope, UserId};
use feedcore_cluster::{GlobalId, Node, NodeConfig, partition_of};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const USERS: u32 = 48;
const PARTITIONS: u32 = 3;
const OPS: usize = 700;

fn engine_config() -> Config {
    Config {
        users_max: USERS,
        durability: Durability::Buffered,
        workers: 1,
        ..Default::default()
    }
}

/// The cluster under test and its single-engine reference, run in step.
struct Pair {
    nodes: Vec<Node>,
    single: Engine,
    /// The single engine's id of each post, to its global id in the cluster.
    ids: BTreeMap<NoticeId, GlobalId>,
}

impl Pair {
    fn node(&self, user: u32) -> &Node {
        &self.nodes[partition_of(user, PARTITIONS) as usize]
    }

    fn to_global(&self, ids: &[NoticeId]) -> Vec<GlobalId> {
        let mut out: Vec<GlobalId> = ids
            .iter()
            .map(|id| {
                *self
                    .ids
                    .get(id)
                    .expect("every single-engine notice was posted here")
            })
            .collect();
        out.sort();
        out
    }

    /// One random operation on both sides; both must agree on whether it succeeds.
    fn step(&mut self, rng: &mut SmallRng, k: usize) {
        let a = rng.random_range(0..USERS);
        let b = rng.random_range(0..USERS);
        let (ua, ub) = (UserId(a), UserId(b));
        let g = self.single.graph();
        let blocked = g.is_blocked(ua, ub) || g.is_blocked(ub, ua);
        match rng.random_range(0..100) {
            0..40 => {
                if a == b || blocked {
                    return; // refused by both; not what this test is about
                }
                let expected = self.single.follow(ua, ub).expect("single follow");
                let got = self.node(a).follow(ua, ub).expect("cluster follow");
                assert_eq!(got, expected, "op {k}: follow {a} -> {b}");
            }
            40..46 if a != b => {
                let expected = self.single.unfollow(ua, ub).expect("single unfollow");
                let got = self.node(a).unfollow(ua, ub).expect("cluster unfollow");
                assert_eq!(got, expected, "op {k}: unfollow {a} -> {b}");
            }
            46..49 if a != b => {
                self.single.mute(ua, ub).expect("single mute");
                self.node(a).mute(ua, ub).expect("cluster mute");
            }
            49..51 if a != b => {
                self.single.block(ua, ub).expect("single block");
                self.node(a).block(ua, ub).expect("cluster block");
            }
            51..53 => {
                // Delete one of a's own notices, if any.
                let own = self
                    .single
                    .user_timeline(ua, ua, feedcore::Page::latest(20))
                    .expect("single user timeline")
                    .ids;
                if let Some(&id) = own.get(rng.random_range(0..own.len().max(1))) {
                    let gid = self.ids[&id];
                    self.single.delete(id).expect("single delete");
                    self.node(a).delete(gid).expect("cluster delete");
                }
            }
            53..60 => {
                // A reply to a notice in a's home timeline on both sides.
                let home = common::engine_home(&self.single, a);
                let Some(&target) = home.get(rng.random_range(0..home.len().max(1))) else {
                    return;
                };
                let node = self.node(a);
                let Some(local) = node.local_id(self.ids[&target]) else {
                    return; // not arrived on a's node yet
                };
                let body = format!("reply {k}");
                let id = self
                    .single
                    .post(NewNotice {
                        author: ua,
                        body: body.clone(),
                        reply_to: Some(target),
                        ..Default::default()
                    })
                    .expect("single reply");
                let gid = node
                    .post(NewNotice {
                        author: ua,
                        body,
                        reply_to: Some(local),
                        ..Default::default()
                    })
                    .expect("cluster reply");
                self.ids.insert(id, gid);
            }
            _ => {
                let mentions = if rng.random_bool(0.2) {
                    vec![ub]
                } else {
                    vec![]
                };
                let scope = match rng.random_range(0..10) {
                    0 => Scope::Followers,
                    1 => Scope::Addressees,
                    _ => Scope::Public,
                };
                let notice = NewNotice {
                    author: ua,
                    body: format!("notice {k} by {a}"),
                    created_at_ms: 1_700_000_000_000 + k as u64,
                    mentions,
                    scope,
                    tags: vec!["cluster".into()],
                    ..Default::default()
                };
                let id = self.single.post(notice.clone()).expect("single post");
                let gid = self.node(a).post(notice).expect("cluster post");
                self.ids.insert(id, gid);
            }
        }
    }
}

#[test]
fn three_partitions_show_what_one_engine_shows_across_a_nats_server_kill() {
    let Some(mut nats) = common::nats_or_skip("differential") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<Node> = (0..PARTITIONS)
        .map(|p| {
            let mut config = NodeConfig::new(
                p,
                PARTITIONS,
                dir.path().join(format!("node{p}")),
                nats.urls(),
            );
            config.engine = engine_config();
            Node::open(config).expect("opening a node")
        })
        .collect();
    let single = Engine::open(dir.path().join("single"), engine_config()).unwrap();
    let mut pair = Pair {
        nodes,
        single,
        ids: BTreeMap::new(),
    };
    let mut rng = SmallRng::seed_from_u64(21);
    for k in 0..OPS {
        if k == OPS / 3 {
            nats.kill(1);
        }
        if k == 2 * OPS / 3 {
            nats.restart(1).expect("restarting the NATS server");
        }
        pair.step(&mut rng, k);
    }
    let nodes: Vec<&Node> = pair.nodes.iter().collect();
    common::quiesce(&nodes, Duration::from_secs(60));
    pair.single.flush().unwrap();

    let mut entries = 0;
    for user in 0..USERS {
        let node = pair.node(user);
        let expected = pair.to_global(&common::engine_home(&pair.single, user));
        let local = common::read_all(
            |p| {
                node.home_timeline(UserId(user), p)
                    .map_err(|e| e.to_string())
            },
            50,
        );
        let mut got: Vec<GlobalId> = local
            .iter()
            .map(|&id| {
                node.global_id(id)
                    .expect("a timeline entry has a global id")
            })
            .collect();
        got.sort();
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(
            unique.len(),
            got.len(),
            "user {user}: a notice twice: {got:?}"
        );
        if got != expected {
            let describe = |ids: Vec<&GlobalId>| -> Vec<String> {
                ids.into_iter()
                    .map(|gid| {
                        let origin = &pair.nodes[gid.partition as usize];
                        match origin.engine().notice(gid.local) {
                            Some(n) => format!(
                                "{gid} by {} {:?} reply_to {:?} (alive at origin: {}; \
                                 the reader's copy replies to {:?}) scope {:?} mentions {:?}",
                                n.author().0,
                                n.body(),
                                n.reply_to(),
                                n.reply_to()
                                    .is_some_and(|r| origin.engine().notice(r).is_some()),
                                node.local_id(*gid)
                                    .and_then(|l| node.engine().notice(l))
                                    .map(|c| c.reply_to_author()),
                                n.scope(),
                                n.mentions().collect::<Vec<_>>()
                            ),
                            None => format!("{gid} (deleted at its origin)"),
                        }
                    })
                    .collect()
            };
            panic!(
                "home timeline of user {user} (partition {}): only in the cluster's: {:?}; \
                 only in the single engine's: {:?}",
                partition_of(user, PARTITIONS),
                describe(got.iter().filter(|g| !expected.contains(g)).collect()),
                describe(expected.iter().filter(|g| !got.contains(g)).collect()),
            );
        }
        entries += got.len();

        let expected = pair.to_global(&common::read_all(
            |p| {
                pair.single
                    .mentions(UserId(user), p)
                    .map_err(|e| e.to_string())
            },
            50,
        ));
        let mut got: Vec<GlobalId> = common::read_all(
            |p| node.mentions(UserId(user), p).map_err(|e| e.to_string()),
            50,
        )
        .iter()
        .map(|&id| node.global_id(id).expect("a mention has a global id"))
        .collect();
        got.sort();
        assert_eq!(got, expected, "mentions of user {user}");
    }
    let stats: Vec<_> = pair.nodes.iter().map(Node::stats).collect();
    let applied: u64 = stats.iter().map(|s| s.applied).sum();
    assert!(entries > 500, "only {entries} timeline entries compared");
    assert!(applied > 200, "only {applied} messages crossed partitions");
    eprintln!(
        "{OPS} ops, {} posts, {entries} home entries compared; per node: {stats:?}",
        pair.ids.len()
    );
}
