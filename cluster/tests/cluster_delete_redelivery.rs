//! Guards the receiving side of a delete: a copy of a notice that reaches a partition
//! again after the notice's delete (a redelivery after a lost ack, a retried publish
//! past JetStream's duplicate window, a copy carried beside a reply posted before the
//! delete arrived) is not stored again, also after the receiving node restarts. The
//! notice log frees a uri when its notice is deleted, so only the node's durable record
//! of deleted notices can refuse it.
//!
//! The copy is the exact message that carried the notice the first time: a probe
//! consumer on the receiving partition's subject captures it, and the test publishes
//! it again, after the delete, under a fresh `Nats-Msg-Id`.

mod common;

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use feedcore::{Config, Durability, NewNotice, UserId};
use feedcore_cluster::{GlobalId, Node, NodeConfig, partition_of};
use futures_util::StreamExt;

const USERS: u32 = 16;
const PARTITIONS: u32 = 2;
const BODY: &str = "deleted-notice-probe";

fn open(p: u32, dir: &std::path::Path, urls: Vec<String>) -> Node {
    let mut config = NodeConfig::new(p, PARTITIONS, dir.join(format!("node{p}")), urls);
    config.engine = Config {
        users_max: USERS,
        durability: Durability::Buffered,
        workers: 1,
        ..Default::default()
    };
    Node::open(config).expect("opening a node")
}

/// The bodies in `user`'s home timeline on `node`.
fn home_bodies(node: &Node, user: UserId) -> Vec<String> {
    let ids = common::read_all(
        |p| node.home_timeline(user, p).map_err(|e| e.to_string()),
        50,
    );
    ids.iter()
        .filter_map(|&id| node.engine().notice(id).map(|n| n.body().to_owned()))
        .collect()
}

/// Publishes `payload` to `subject` under `msg_id` and waits until JetStream stored it.
async fn republish(js: &jetstream::Context, subject: &str, msg_id: &str, payload: Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    let ack = js
        .publish_with_headers(subject.to_owned(), headers, payload)
        .await
        .expect("publishing the copy again")
        .await
        .expect("JetStream storing the copy again");
    assert!(!ack.duplicate, "a fresh Nats-Msg-Id is not a duplicate");
}

#[test]
fn a_copy_that_comes_again_after_its_delete_is_not_stored_again() {
    let Some(nats) = common::nats_or_skip("delete_redelivery") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = (0..USERS)
        .find(|&u| partition_of(u, PARTITIONS) == 0)
        .expect("a user on 0");
    let b = (0..USERS)
        .find(|&u| partition_of(u, PARTITIONS) == 1)
        .expect("a user on 1");
    let (ua, ub) = (UserId(a), UserId(b));
    let origin = open(0, dir.path(), nats.urls());
    let mut receiver = Some(open(1, dir.path(), nats.urls()));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = runtime
        .block_on(async_nats::connect(nats.urls()))
        .expect("connecting the probe");
    let js = {
        let _in_runtime = runtime.enter();
        jetstream::new(client)
    };
    let subject = "feedcore.fanout.1";
    // No acks, no interest kept past delivery: the probe only watches.
    let probe: consumer::PullConsumer = runtime
        .block_on(async {
            js.get_stream("FEEDCORE")
                .await
                .expect("the nodes made the stream")
                .create_consumer(consumer::pull::Config {
                    filter_subject: subject.into(),
                    ack_policy: consumer::AckPolicy::None,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                })
                .await
        })
        .expect("creating the probe consumer");

    let node = receiver.as_ref().unwrap();
    assert!(node.follow(ub, ua).expect("b follows a"));
    common::quiesce(&[&origin, node], Duration::from_secs(30));
    let gid: GlobalId = origin
        .post(NewNotice {
            author: ua,
            body: BODY.into(),
            ..Default::default()
        })
        .expect("a posts");
    common::quiesce(&[&origin, node], Duration::from_secs(30));
    assert!(
        node.local_id(gid).is_some(),
        "the copy reached b's partition"
    );
    assert_eq!(home_bodies(node, ub), vec![BODY.to_owned()]);

    // The message that carried the copy, as JetStream stored it.
    let carried: Bytes = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(
                Instant::now() < deadline,
                "the probe saw no copy of the notice"
            );
            let mut batch = probe
                .fetch()
                .max_messages(100)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .expect("fetching from the probe");
            while let Some(m) = batch.next().await {
                let m = m.expect("a probe message");
                if m.payload.windows(BODY.len()).any(|w| w == BODY.as_bytes()) {
                    return m.payload.clone();
                }
            }
        }
    });

    origin.delete(gid).expect("a deletes the notice");
    common::quiesce(&[&origin, node], Duration::from_secs(30));
    assert_eq!(node.local_id(gid), None, "the copy is gone with the notice");
    assert!(home_bodies(node, ub).is_empty());

    let duplicates_before = node.stats().duplicates;
    runtime.block_on(republish(&js, subject, "copy-again-1", carried.clone()));
    common::quiesce(&[&origin, node], Duration::from_secs(30));
    assert!(
        node.stats().duplicates > duplicates_before,
        "the copy was delivered and refused: {:?}",
        node.stats()
    );
    assert_eq!(
        node.local_id(gid),
        None,
        "a copy after its delete is not stored"
    );
    assert!(home_bodies(node, ub).is_empty());

    // The record of the delete outlives the node.
    drop(receiver.take());
    let node = receiver.insert(open(1, dir.path(), nats.urls()));
    runtime.block_on(republish(&js, subject, "copy-again-2", carried));
    common::quiesce(&[&origin, node], Duration::from_secs(30));
    assert!(node.stats().duplicates >= 1, "{:?}", node.stats());
    assert_eq!(node.local_id(gid), None, "refused after a restart too");
    assert!(home_bodies(node, ub).is_empty());
}
