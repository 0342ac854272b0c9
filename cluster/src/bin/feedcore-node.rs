//! `feedcore-node`: one cluster node as a process, driven by lines on standard input
//! (for the crash tests, and for trying a cluster by hand).
//!
//! ```text
//! feedcore-node --partition P --partitions N --dir DIR --nats URL[,URL...]
//!               [--users N] [--durability always|group|buffered]
//! ```
//!
//! Commands, one a line, each answered by one line on standard output:
//!
//! | command | answer |
//! |---|---|
//! | `follow A B` | `ack follow A B true\|false` |
//! | `post A BODY` (BODY without spaces) | `ack post A P:ID BODY` once durable here |
//! | `home U` | `home U P:ID/BODY ...`: U's whole home timeline, newest first |
//! | `idle` | `idle yes\|no APPLIED`: see `Node::is_idle` |
//! | `flush` | `ack flush` |
//!
//! A refused command answers `err <reason>`. The node stops at the end of input.

use std::io::{BufRead, Write};
use std::time::Duration;

use feedcore::{Durability, NewNotice, Page, UserId};
use feedcore_cluster::{Node, NodeConfig};

fn usage() -> ! {
    eprintln!(
        "usage: feedcore-node --partition P --partitions N --dir DIR --nats URL[,URL...] \
         [--users N] [--durability always|group|buffered]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: Option<u32>| -> u32 {
        match get(name) {
            Some(v) => v.parse().unwrap_or_else(|_| usage()),
            None => default.unwrap_or_else(|| usage()),
        }
    };
    let partition = num("--partition", None);
    let partitions = num("--partitions", None);
    let users = num("--users", Some(1 << 16));
    let dir = get("--dir").unwrap_or_else(|| usage());
    let urls: Vec<String> = get("--nats")
        .unwrap_or_else(|| usage())
        .split(',')
        .map(str::to_owned)
        .collect();
    let durability = match get("--durability").as_deref() {
        None | Some("group") => Durability::default(),
        Some("always") => Durability::Always,
        Some("buffered") => Durability::Buffered,
        Some(_) => usage(),
    };
    let mut config = NodeConfig::new(partition, partitions, dir, urls);
    config.engine = feedcore::Config {
        users_max: users,
        durability,
        workers: 1,
        ..Default::default()
    };
    let node = match Node::open(config) {
        Ok(node) => node,
        Err(e) => {
            eprintln!("feedcore-node: {e}");
            std::process::exit(1);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = run(&node, &line).unwrap_or_else(|e| format!("err {e}"));
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    let _ = node.flush();
    // Give a last look to what is in flight before the node closes.
    std::thread::sleep(Duration::from_millis(10));
}

fn run(node: &Node, line: &str) -> Result<String, String> {
    let f: Vec<&str> = line.split(' ').collect();
    let user = |s: &str| {
        s.parse::<u32>()
            .map(UserId)
            .map_err(|e| format!("{s:?}: {e}"))
    };
    match f.as_slice() {
        ["follow", a, b] => {
            let new = node.follow(user(a)?, user(b)?).map_err(|e| e.to_string())?;
            Ok(format!("ack follow {a} {b} {new}"))
        }
        ["post", a, body] => {
            let id = node
                .post(NewNotice {
                    author: user(a)?,
                    body: (*body).to_owned(),
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?;
            Ok(format!("ack post {a} {id} {body}"))
        }
        ["home", u] => {
            let mut entries = Vec::new();
            let mut page = Some(Page::latest(100));
            while let Some(p) = page {
                let got = node.home_timeline(user(u)?, p).map_err(|e| e.to_string())?;
                for id in got.ids {
                    let body = node.engine().notice(id).map(|n| n.body().to_owned());
                    match (node.global_id(id), body) {
                        (Some(gid), Some(body)) => entries.push(format!("{gid}/{body}")),
                        _ => entries.push(format!("?{}", id.0)),
                    }
                }
                page = got.next;
            }
            Ok(format!("home {u} {}", entries.join(" "))
                .trim_end()
                .to_owned())
        }
        ["idle"] => {
            let idle = node.is_idle();
            let s = node.stats();
            Ok(format!(
                "idle {} {}",
                if idle { "yes" } else { "no" },
                s.applied + s.duplicates + s.refused
            ))
        }
        ["flush"] => {
            node.flush().map_err(|e| e.to_string())?;
            Ok("ack flush".into())
        }
        _ => Err(format!("unknown command {line:?}")),
    }
}
