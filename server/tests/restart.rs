//! Guards that accounts, tokens, statuses and follows survive a restart (the process
//! killed with SIGKILL, no clean shutdown), and that a torn last line of the accounts
//! file is cut off instead of refusing to start.

mod common;

use std::io::Write;

#[test]
fn accounts_and_statuses_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, id) = {
        let s = common::Server::start(dir.path(), &[]);
        let alice = s.account("alice");
        let bob = s.account("bob");
        let r = s.request("POST", "/api/v1/accounts/0/follow", Some(&bob), None, b"");
        assert_eq!(r.json()["following"], true);
        let r = s.request(
            "POST",
            "/api/v1/statuses",
            Some(&alice),
            None,
            b"status=kept",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        (alice, bob, r.json()["id"].as_str().unwrap().to_string())
        // dropped: SIGKILL
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("accounts"))
        .unwrap();
    f.write_all(b"a\t2\tcarol\tAAAA").unwrap(); // torn: no newline
    drop(f);
    let s = common::Server::start(dir.path(), &[]);
    let r = s.request(
        "GET",
        "/api/v1/accounts/verify_credentials",
        Some(&alice),
        None,
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["username"], "alice");
    assert_eq!(r.json()["statuses_count"], 1);
    assert_eq!(r.json()["followers_count"], 1);
    let r = s.request("GET", "/api/v1/timelines/home", Some(&bob), None, b"");
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![id.clone()]);
    // The torn account is gone; its name and the next id are free again.
    let carol = s.account("carol");
    let r = s.request(
        "GET",
        "/api/v1/accounts/verify_credentials",
        Some(&carol),
        None,
        b"",
    );
    assert_eq!(r.json()["id"], "2");
}
