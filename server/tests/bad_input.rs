//! Guards that bad input gets a 4xx with a Mastodon-style `{"error": "..."}` body and
//! never takes the server down: malformed JSON, an oversized status, a body past the
//! limit, bad ids in paths and queries, limit 0 and 10 000, missing and unknown
//! tokens, unknown routes and methods, and the streams this version does not serve.

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

    // Routes and methods; the streams this version of feedcore does not have.
    s.request("GET", "/api/v1/nothing/here", t, None, b"")
        .assert_error(404);
    s.request("PUT", "/api/v1/timelines/home", t, None, b"")
        .assert_error(405);
    s.request("GET", "/api/v1/timelines/public", None, None, b"")
        .assert_error(501);
    s.request("GET", "/api/v1/timelines/tag/rust", None, None, b"")
        .assert_error(501);
    s.request("GET", "/api/v1/timelines/list/1", t, None, b"")
        .assert_error(501);
    s.request("GET", "/api/v1/timelines/list/1", None, None, b"")
        .assert_error(401);
    s.request("GET", "/api/v1/timelines/public?limit=0", None, None, b"")
        .assert_error(400);

    // Still up, still right.
    assert!(s.alive());
    let r = s.request("GET", "/api/v1/accounts/verify_credentials", t, None, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["statuses_count"], 1);
    let r = s.request("GET", "/api/v1/instance/", None, None, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["stats"]["user_count"], 1);
}
