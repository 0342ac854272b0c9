//! Guards the cluster's crash contract: three `feedcore-node` processes (3 partitions)
//! over a 3-server JetStream cluster take follows, then a stream of posts; one node
//! is killed with SIGKILL mid-stream while the others keep posting (their copies for
//! it wait in JetStream), a NATS server is killed with SIGKILL and started again, and
//! the node is started again on its store. Once the cluster is quiet, every user's home
//! timeline holds every acknowledged post of the users it follows and its own, each
//! exactly once, and nothing else but posts that were in flight at the kill.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use feedcore_cluster::partition_of;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const USERS: u32 = 60;
const PARTITIONS: u32 = 3;
const FOLLOWS_PER_USER: u32 = 6;
const POSTS_BEFORE: usize = 900;
const POSTS_AFTER: usize = 300;
const KILLED: u32 = 1;

/// A node process, its input, and the lines it printed.
struct NodeProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl NodeProc {
    fn spawn(partition: u32, dir: &Path, urls: &[String]) -> NodeProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_feedcore-node"))
            .args(["--partition", &partition.to_string()])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(["--users", &USERS.to_string()])
            .arg("--dir")
            .arg(dir.join(format!("node{partition}")))
            .args(["--nats", &urls.join(",")])
            .args(["--durability", "buffered"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting feedcore-node");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        NodeProc {
            stdin: child.stdin.take(),
            child,
            lines: rx,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the node is running");
        writeln!(stdin, "{line}").expect("writing to the node");
    }

    fn recv(&self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("a node gave no answer in 60 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("a node exited"),
        }
    }

    fn call(&mut self, line: &str) -> String {
        self.send(line);
        let answer = self.recv();
        assert!(!answer.starts_with("err"), "{line}: {answer}");
        answer
    }

    /// SIGKILL; returns what it printed before it died.
    fn kill(mut self) -> Vec<String> {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            out.push(line);
        }
        out
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A post sent: its author, and whether it was acknowledged.
#[derive(Clone, Copy)]
struct Sent {
    author: u32,
    acked: bool,
}

fn parse_ack(line: &str, sent: &mut BTreeMap<String, Sent>) {
    let f: Vec<&str> = line.split(' ').collect();
    match f.as_slice() {
        ["ack", "post", _, _, body] => {
            sent.get_mut(*body)
                .expect("an ack of a post that was sent")
                .acked = true;
        }
        _ => panic!("unexpected answer {line:?}"),
    }
}

fn quiesce(nodes: &mut [NodeProc]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    let mut last = Vec::new();
    while quiet < 2 {
        assert!(
            Instant::now() < deadline,
            "the cluster did not go quiet in 60 s"
        );
        std::thread::sleep(Duration::from_millis(150));
        let answers: Vec<String> = nodes.iter_mut().map(|n| n.call("idle")).collect();
        let idle = answers.iter().all(|a| a.starts_with("idle yes"));
        if idle && answers == last {
            quiet += 1;
        } else {
            quiet = 0;
        }
        last = answers;
    }
}

#[test]
fn sigkill_of_a_node_and_of_a_nats_server_loses_no_acknowledged_post_and_doubles_none() {
    let Some(mut nats) = common::nats_or_skip("node-kill") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let urls = nats.urls();
    let mut nodes: Vec<Option<NodeProc>> = (0..PARTITIONS)
        .map(|p| Some(NodeProc::spawn(p, dir.path(), &urls)))
        .collect();

    let node_of = |u: u32| partition_of(u, PARTITIONS) as usize;
    let mut rng = SmallRng::seed_from_u64(2121);

    let mut following: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for a in 0..USERS {
        while following.get(&a).map_or(0, BTreeSet::len) < FOLLOWS_PER_USER as usize {
            let b = rng.random_range(0..USERS);
            if b != a && following.entry(a).or_default().insert(b) {
                nodes[node_of(a)]
                    .as_mut()
                    .expect("the node is running")
                    .call(&format!("follow {a} {b}"));
            }
        }
    }

    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    let mut killed: Option<usize> = None;
    let mut in_flight_at_kill = 0;
    for k in 0..POSTS_BEFORE + POSTS_AFTER {
        if k == POSTS_BEFORE / 3 {
            // Kill the node mid-work: a burst of its users' posts sent, some answered.
            let node = nodes[KILLED as usize]
                .as_mut()
                .expect("the node is running");
            for j in 0..400 {
                let author = loop {
                    let u = rng.random_range(0..USERS);
                    if node_of(u) == KILLED as usize {
                        break u;
                    }
                };
                let body = format!("burst{j}");
                node.send(&format!("post {author} {body}"));
                sent.insert(
                    body,
                    Sent {
                        author,
                        acked: false,
                    },
                );
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(2..20)));
            let lines = nodes[KILLED as usize]
                .take()
                .expect("the node is running")
                .kill();
            for line in &lines {
                parse_ack(line, &mut sent);
            }
            in_flight_at_kill = sent
                .values()
                .filter(|s| node_of(s.author) == KILLED as usize && !s.acked)
                .count();
            killed = Some(k);
        }
        if k == POSTS_BEFORE / 2 {
            nats.kill(0);
        }
        if k == 2 * POSTS_BEFORE / 3 {
            nats.restart(0).expect("restarting the NATS server");
        }
        if k == POSTS_BEFORE {
            nodes[KILLED as usize] = Some(NodeProc::spawn(KILLED, dir.path(), &urls));
            killed = None;
        }
        let author = rng.random_range(0..USERS);
        let n = node_of(author);
        if killed.is_some() && n == KILLED as usize {
            continue;
        }
        let body = format!("p{k}");
        nodes[n]
            .as_mut()
            .expect("the node is running")
            .send(&format!("post {author} {body}"));
        sent.insert(
            body,
            Sent {
                author,
                acked: false,
            },
        );
    }
    // Collect the answers of every post sent to a running node.
    let mut nodes: Vec<NodeProc> = nodes
        .into_iter()
        .map(|n| n.expect("every node runs again"))
        .collect();
    for (n, node) in nodes.iter_mut().enumerate() {
        let waiting = sent
            .values()
            .filter(|s| node_of(s.author) == n && !s.acked)
            .count()
            - if n == KILLED as usize {
                in_flight_at_kill
            } else {
                0
            };
        for _ in 0..waiting {
            let line = node.recv();
            parse_ack(&line, &mut sent);
        }
    }
    quiesce(&mut nodes);

    let acked = sent.values().filter(|s| s.acked).count();
    let mut entries = 0;
    let mut landed = BTreeSet::new();
    for u in 0..USERS {
        let line = nodes[node_of(u)].call(&format!("home {u}"));
        let got: Vec<&str> = line.split(' ').skip(2).collect();
        let mut gids = BTreeSet::new();
        let mut bodies = BTreeSet::new();
        for entry in &got {
            let (gid, body) = entry
                .split_once('/')
                .unwrap_or_else(|| panic!("user {u}: entry {entry:?} has no global id"));
            assert!(
                gids.insert(gid),
                "user {u}: {gid} twice in the home timeline"
            );
            assert!(
                bodies.insert(body),
                "user {u}: {body} twice in the home timeline"
            );
        }
        let sees = |author: u32| author == u || following[&u].contains(&author);
        for (body, s) in &sent {
            if s.acked && sees(s.author) {
                assert!(
                    bodies.contains(body.as_str()),
                    "user {u}: acknowledged post {body} by {} is missing",
                    s.author
                );
            }
        }
        for body in &bodies {
            let s = sent
                .get(*body)
                .unwrap_or_else(|| panic!("user {u}: {body} was never posted"));
            assert!(
                sees(s.author),
                "user {u}: {body} by {} not followed",
                s.author
            );
            if !s.acked {
                assert_eq!(
                    node_of(s.author),
                    KILLED as usize,
                    "user {u}: {body} never acked"
                );
                landed.insert(body.to_string());
            }
        }
        entries += got.len();
    }
    assert!(
        landed.len() <= in_flight_at_kill,
        "{} unacknowledged posts landed, {in_flight_at_kill} were in flight",
        landed.len()
    );
    assert!(acked > POSTS_BEFORE / 2, "only {acked} posts acknowledged");
    assert!(entries > 2000, "only {entries} entries checked");
    eprintln!(
        "{} posts sent, {acked} acknowledged, {in_flight_at_kill} in flight at the kill \
         ({} landed); {entries} home entries checked",
        sent.len(),
        landed.len()
    );
}
