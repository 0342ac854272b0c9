//! Guards that bad input gets a 4xx with a Mastodon-style `{"error": "..."}` body and
//! never takes the server down: malformed JSON, an oversized status, a body past the
//! limit, bad ids in paths and queries, limit 0 and 10 000, missing and unknown
//! tokens, unknown routes and methods; on the public, tag and list timelines and the
//! list endpoints: bad paging, unknown lists, another account's list (404, as if it
//! did not exist), unknown accounts to add, titles and options refused.

mod common;

const JSON: Option<&str> = Some("application/json");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

#[test]
fn bad_input_gets_4xx_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = common::Server::start(dir.path(), &[]);
    let alice = s.account("alice");
    let t = Some(alice.as_str());

    // Bodies.
    s.request("POST", "/api/v1/statuses", t, JSON, b"{\"status\": ")
        .assert_error(400);
    s.request("POST", "/api/v1/statuses", t, JSON, b"[\"status\"]")
        .assert_error(400);
    s.request("POST", "/api/v1/statuses", t, Some("text/plain"), b"hi")
        .assert_error(415);
    s.request("POST", "/api/v1/statuses", t, JSON, b"{}")
        .assert_error(422);
    let long = format!("{{\"status\": \"{}\"}}", "é".repeat(501));
    let m = s
        .request("POST", "/api/v1/statuses", t, JSON, long.as_bytes())
        .assert_error(422);
    assert!(m.contains("character limit"), "{m}");
    let exactly = format!("{{\"status\": \"{}\"}}", "é".repeat(500));
    assert_eq!(
        s.request("POST", "/api/v1/statuses", t, JSON, exactly.as_bytes())
            .status,
        200
    );
    let huge = vec![b'a'; 200 * 1024];
    s.request("POST", "/api/v1/statuses", t, FORM, &huge)
        .assert_error(413);
    s.request(
        "POST",
        "/api/v1/statuses",
        t,
        FORM,
        b"status=x&visibility=secret",
    )
    .assert_error(422);
    s.request(
        "POST",
        "/api/v1/statuses",
        t,
        FORM,
        b"status=x&in_reply_to_id=abc",
    )
    .assert_error(404);
    s.request(
        "POST",
        "/api/v1/statuses",
        t,
        FORM,
        b"status=x&in_reply_to_id=999999",
    )
    .assert_error(404);
    s.request(
        "POST",
        "/api/v1/accounts",
        None,
        FORM,
        b"username=no%20spaces",
    )
    .assert_error(422);
    s.request("POST", "/api/v1/accounts", None, FORM, b"username=ALICE")
        .assert_error(422);
    s.request("POST", "/api/v1/accounts", None, FORM, b"")
        .assert_error(422);

    // Ids.
    for path in [
        "/api/v1/statuses/abc",
        "/api/v1/statuses/0",
        "/api/v1/statuses/-1",
        "/api/v1/statuses/99999999999999999999999",
        "/api/v1/statuses/12345",
    ] {
        s.request("GET", path, t, None, b"").assert_error(404);
    }
    s.request("DELETE", "/api/v1/statuses/abc", t, None, b"")
        .assert_error(404);
    s.request("POST", "/api/v1/accounts/abc/follow", t, None, b"")
        .assert_error(404);
    s.request("POST", "/api/v1/accounts/4294967296/follow", t, None, b"")
        .assert_error(404);
    s.request("POST", "/api/v1/accounts/9999/follow", t, None, b"")
        .assert_error(404);
    s.request("POST", "/api/v1/accounts/0/frobnicate", t, None, b"")
        .assert_error(404);
    s.request("POST", "/api/v1/accounts/0/follow", t, None, b"")
        .assert_error(403); // oneself

    // Queries.
    for q in [
        "limit=0",
        "limit=10000",
        "limit=-1",
        "limit=abc",
        "max_id=abc",
        "since_id=0",
        "min_id=18446744073709551616",
        "max_id=%ff",
    ] {
        let m = s
            .request("GET", &format!("/api/v1/timelines/home?{q}"), t, None, b"")
            .assert_error(400);
        assert!(!m.is_empty(), "{q}");
    }
    let r = s.request("GET", "/api/v1/timelines/home?limit=40", t, None, b"");
    assert_eq!(r.status, 200, "{}", r.text());

    // Tokens: Mastodon's words, nobody's data.
    for token in [None, Some("nope"), Some(&"A".repeat(43)[..])] {
        let m = s
            .request("GET", "/api/v1/timelines/home", token, None, b"")
            .assert_error(401);
        assert_eq!(m, "The access token is invalid");
        s.request(
            "GET",
            "/api/v1/accounts/verify_credentials",
            token,
            None,
            b"",
        )
        .assert_error(401);
        s.request("POST", "/api/v1/statuses", token, FORM, b"status=x")
            .assert_error(401);
    }
    let mut forged = alice.clone().into_bytes();
    forged[42] = if forged[42] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    s.request("GET", "/api/v1/timelines/home", Some(&forged), None, b"")
        .assert_error(401);

    // Routes and methods.
    s.request("GET", "/api/v1/nothing/here", t, None, b"")
        .assert_error(404);
    s.request("PUT", "/api/v1/timelines/home", t, None, b"")
        .assert_error(405);

    // Streams: the open ones answer without a token (alice's one status is public,
    // untagged), the list needs one.
    let long_tag = format!("/api/v1/timelines/tag/{}", "x".repeat(300));
    for (path, statuses) in [
        ("/api/v1/timelines/public", 1),
        ("/api/v1/timelines/public?local=true", 1),
        ("/api/v1/timelines/public?only_media=1", 0),
        ("/api/v1/timelines/tag/rust", 0),
        ("/api/v1/timelines/tag/nobody%20uses%20this", 0),
        (&long_tag, 0),
    ] {
        let r = s.request("GET", path, None, None, b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json().as_array().unwrap().len(), statuses, "{path}");
    }
    for q in ["limit=0", "limit=10000", "max_id=abc"] {
        s.request(
            "GET",
            &format!("/api/v1/timelines/public?{q}"),
            None,
            None,
            b"",
        )
        .assert_error(400);
        s.request(
            "GET",
            &format!("/api/v1/timelines/tag/rust?{q}"),
            t,
            None,
            b"",
        )
        .assert_error(400);
    }
    s.request(
        "GET",
        "/api/v1/timelines/public?remote=true",
        None,
        None,
        b"",
    )
    .assert_error(501);
    s.request("GET", "/api/v1/timelines/public", Some("nope"), None, b"")
        .assert_error(401);
    s.request("GET", "/api/v1/timelines/list/0", None, None, b"")
        .assert_error(401);

    // Lists: unknown ones, another account's, bad bodies.
    for path in [
        "/api/v1/timelines/list/0",
        "/api/v1/timelines/list/abc",
        "/api/v1/timelines/list/-1",
        "/api/v1/timelines/list/99999999999",
        "/api/v1/lists/0",
        "/api/v1/lists/0/accounts",
    ] {
        let m = s.request("GET", path, t, None, b"").assert_error(404);
        assert_eq!(m, "Record not found", "{path}");
    }
    s.request("POST", "/api/v1/lists", t, FORM, b"")
        .assert_error(422);
    s.request("POST", "/api/v1/lists", t, JSON, b"{\"title\": ")
        .assert_error(400);
    s.request("POST", "/api/v1/lists", None, FORM, b"title=x")
        .assert_error(401);
    s.request(
        "POST",
        "/api/v1/lists",
        t,
        FORM,
        b"title=x&replies_policy=none",
    )
    .assert_error(422);
    s.request("POST", "/api/v1/lists", t, FORM, b"title=x&exclusive=true")
        .assert_error(422);
    let long = format!("title={}", "x".repeat(1000));
    s.request("POST", "/api/v1/lists", t, FORM, long.as_bytes())
        .assert_error(422);
    let bob = s.account("bob");
    let r = s.request("POST", "/api/v1/lists", Some(&bob), FORM, b"title=bob%27s");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["title"], "bob's");
    let bobs = r.json()["id"].as_str().unwrap().to_string();
    for (method, path) in [
        ("GET", format!("/api/v1/timelines/list/{bobs}")),
        ("GET", format!("/api/v1/lists/{bobs}")),
        ("GET", format!("/api/v1/lists/{bobs}/accounts")),
        ("POST", format!("/api/v1/lists/{bobs}/accounts")),
        ("DELETE", format!("/api/v1/lists/{bobs}/accounts")),
    ] {
        let m = s
            .request(method, &path, t, FORM, b"account_ids[]=0")
            .assert_error(404);
        assert_eq!(m, "Record not found", "{method} {path}");
    }
    let r = s.request("GET", "/api/v1/lists", t, None, b"");
    assert_eq!((r.status, r.json()), (200, serde_json::json!([])));
    let add = format!("/api/v1/lists/{bobs}/accounts");
    let b = Some(bob.as_str());
    for body in [
        &b"account_ids[]=9999"[..],
        b"account_ids[]=abc",
        b"account_ids[]=0&account_ids[]=77",
    ] {
        s.request("POST", &add, b, FORM, body).assert_error(404);
    }
    let r = s.request("GET", &add, b, None, b"");
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!([])),
        "nothing added"
    );
    s.request("PUT", &format!("/api/v1/lists/{bobs}"), b, FORM, b"title=y")
        .assert_error(405);

    // Still up, still right.
    assert!(s.alive());
    let r = s.request("GET", "/api/v1/accounts/verify_credentials", t, None, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["statuses_count"], 1);
    let r = s.request("GET", "/api/v1/instance/", None, None, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["stats"]["user_count"], 2);
}
