//! Mastodon's JSON entities (Status, Account, Relationship, List, Instance), written straight
//! into a byte buffer: a home page renders 20 statuses per request, so no tree of
//! values is built on the way.

use feedcore::{Engine, NoticeRef, Scope, UserId};

use crate::accounts::{Account, Accounts};

/// Appends `s` as a JSON string (quoted, escaped).
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends an id as Mastodon sends ids: a JSON string of decimal digits.
pub fn id(out: &mut Vec<u8>, id: u64) {
    out.push(b'"');
    number(out, id);
    out.push(b'"');
}

fn number(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `{"error": message}`, Mastodon's error body.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    out.extend_from_slice(b"{\"error\":");
    string(&mut out, message);
    out.push(b'}');
    out
}

/// Milliseconds since the Unix epoch as ISO 8601 in UTC, `2024-05-01T12:00:00.000Z`.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Mastodon's visibility word for a feedcore scope (see the server README).
pub fn visibility(scope: Scope) -> &'static str {
    match scope {
        Scope::Public => "public",
        Scope::Followers => "private",
        Scope::Addressees => "direct",
    }
}

/// What the entities link to: the server's base URL, `http://host:port`.
pub struct Urls {
    /// No trailing slash.
    pub base: String,
}

/// Appends an Account entity. `source` adds the `source` object that
/// `verify_credentials` returns.
pub fn account(out: &mut Vec<u8>, engine: &Engine, urls: &Urls, a: &Account, source: bool) {
    let user = UserId(a.id);
    out.extend_from_slice(a.json_head.get_or_init(|| account_head(urls, a)));
    out.extend_from_slice(b",\"followers_count\":");
    number(out, engine.graph().follower_count(user));
    out.extend_from_slice(b",\"following_count\":");
    number(out, engine.graph().following_count(user));
    out.extend_from_slice(b",\"statuses_count\":");
    number(out, a.statuses.load(std::sync::atomic::Ordering::Relaxed));
    out.extend_from_slice(b",\"last_status_at\":null,\"emojis\":[],\"fields\":[]");
    if source {
        out.extend_from_slice(
            b",\"source\":{\"privacy\":\"public\",\"sensitive\":false,\"language\":null,\"note\":\"\",\"fields\":[],\"follow_requests_count\":0}",
        );
    }
    out.push(b'}');
}

/// The fields of an Account entity that do not change: everything before the counts.
fn account_head(urls: &Urls, a: &Account) -> Vec<u8> {
    let mut out = Vec::with_capacity(700);
    let created = iso8601(a.created_at_ms - a.created_at_ms % 86_400_000);
    out.extend_from_slice(b"{\"id\":");
    id(&mut out, u64::from(a.id));
    out.extend_from_slice(b",\"username\":");
    string(&mut out, &a.username);
    out.extend_from_slice(b",\"acct\":");
    string(&mut out, &a.username);
    out.extend_from_slice(b",\"display_name\":");
    string(&mut out, &a.username);
    out.extend_from_slice(
        b",\"locked\":false,\"bot\":false,\"discoverable\":true,\"group\":false,\"created_at\":",
    );
    string(&mut out, &created);
    out.extend_from_slice(b",\"note\":\"\",\"url\":");
    string(&mut out, &format!("{}/@{}", urls.base, a.username));
    out.extend_from_slice(b",\"uri\":");
    string(&mut out, &format!("{}/users/{}", urls.base, a.username));
    let missing = format!("{}/avatars/original/missing.png", urls.base);
    for key in ["avatar", "avatar_static", "header", "header_static"] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        string(&mut out, &missing);
    }
    out
}

/// Appends a List entity. feedcore's list rule shows replies to the list's members
/// (and to accounts the owner follows): Mastodon's `replies_policy` "list".
pub fn list(out: &mut Vec<u8>, list: u32, title: &str) {
    out.extend_from_slice(b"{\"id\":");
    id(out, u64::from(list));
    out.extend_from_slice(b",\"title\":");
    string(out, title);
    out.extend_from_slice(b",\"replies_policy\":\"list\",\"exclusive\":false}");
}

/// Appends a Status entity for `notice`. `text` adds the plain `text` field that a
/// delete returns (for "delete and redraft").
pub fn status(
    out: &mut Vec<u8>,
    engine: &Engine,
    accounts: &Accounts,
    urls: &Urls,
    notice: &NoticeRef<'_>,
    text: bool,
) {
    let Some(author) = accounts.get(notice.author().0) else {
        // A notice by a user id the accounts file does not know: render a placeholder
        // account rather than fail the whole page.
        let placeholder = Account::placeholder(notice.author().0);
        return status_by(out, engine, accounts, urls, notice, &placeholder, text);
    };
    status_by(out, engine, accounts, urls, notice, &author, text)
}

fn status_by(
    out: &mut Vec<u8>,
    engine: &Engine,
    accounts: &Accounts,
    urls: &Urls,
    notice: &NoticeRef<'_>,
    author: &Account,
    text: bool,
) {
    let nid = notice.id().0;
    out.extend_from_slice(b"{\"id\":");
    id(out, nid);
    out.extend_from_slice(b",\"created_at\":\"");
    out.extend_from_slice(iso8601(notice.created_at_ms()).as_bytes());
    out.push(b'"');
    out.extend_from_slice(b",\"in_reply_to_id\":");
    match notice.reply_to() {
        Some(r) => id(out, r.0),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"in_reply_to_account_id\":");
    match notice.reply_to_author() {
        Some(r) => id(out, u64::from(r.0)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"sensitive\":false,\"spoiler_text\":\"\",\"visibility\":\"");
    out.extend_from_slice(visibility(notice.scope()).as_bytes());
    // The base URL and usernames need no escaping (checked at start and creation).
    out.extend_from_slice(b"\",\"language\":null,\"uri\":\"");
    out.extend_from_slice(urls.base.as_bytes());
    out.extend_from_slice(b"/users/");
    out.extend_from_slice(author.username.as_bytes());
    out.extend_from_slice(b"/statuses/");
    number(out, nid);
    out.extend_from_slice(b"\",\"url\":\"");
    out.extend_from_slice(urls.base.as_bytes());
    out.extend_from_slice(b"/@");
    out.extend_from_slice(author.username.as_bytes());
    out.push(b'/');
    number(out, nid);
    out.push(b'"');
    out.extend_from_slice(
        b",\"replies_count\":0,\"reblogs_count\":0,\"favourites_count\":0,\"favourited\":false,\"reblogged\":false,\"muted\":false,\"bookmarked\":false,\"pinned\":false,\"edited_at\":null,\"content\":",
    );
    string(out, &html(notice.body()));
    if text {
        out.extend_from_slice(b",\"text\":");
        string(out, notice.body());
    }
    out.extend_from_slice(b",\"reblog\":null,\"application\":null,\"account\":");
    account(out, engine, urls, author, false);
    out.extend_from_slice(b",\"media_attachments\":[],\"mentions\":[");
    let mut first = true;
    for m in notice.mentions() {
        let Some(a) = accounts.get(m.0) else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"id\":");
        id(out, u64::from(a.id));
        out.extend_from_slice(b",\"username\":");
        string(out, &a.username);
        out.extend_from_slice(b",\"acct\":");
        string(out, &a.username);
        out.extend_from_slice(b",\"url\":");
        string(out, &format!("{}/@{}", urls.base, a.username));
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"tags\":[");
    for (i, tag) in notice.tags().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        string(out, tag);
        out.extend_from_slice(b",\"url\":");
        string(out, &format!("{}/tags/{tag}", urls.base));
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"emojis\":[],\"card\":null,\"poll\":null}");
}

/// A status body as Mastodon's `content`: one paragraph, escaped, line breaks as
/// `<br>`.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("<p>");
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out.push_str("</p>");
    out
}

/// Appends a Relationship entity between `me` and `other`. feedcore's graph says
/// whether a block exists between two users, not which of them made it: `blocking`
/// and `blocked_by` are both that answer.
pub fn relationship(out: &mut Vec<u8>, engine: &Engine, me: u32, other: u32) {
    let g = engine.graph();
    let (a, b) = (UserId(me), UserId(other));
    let flag = |out: &mut Vec<u8>, key: &str, v: bool| {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(if v { b"\":true" } else { b"\":false" });
    };
    out.extend_from_slice(b"{\"id\":");
    id(out, u64::from(other));
    let following = g.is_following(a, b);
    let blocked = g.is_blocked(a, b);
    let muted = g.is_muted(a, b);
    flag(out, "following", following);
    flag(out, "showing_reblogs", following);
    flag(out, "notifying", false);
    flag(out, "followed_by", g.is_following(b, a));
    flag(out, "blocking", blocked);
    flag(out, "blocked_by", blocked);
    flag(out, "muting", muted);
    flag(out, "muting_notifications", muted);
    flag(out, "requested", false);
    flag(out, "requested_by", false);
    flag(out, "domain_blocking", false);
    flag(out, "endorsed", false);
    out.extend_from_slice(b",\"languages\":null,\"note\":\"\"}");
}

/// The server's version string: a Mastodon version clients understand, and ours.
pub const VERSION: &str = concat!(
    "4.2.0 (compatible; feedcore-server ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// The instance document, v1 (`GET /api/v1/instance`).
pub fn instance_v1(urls: &Urls, users: usize, statuses: u64) -> Vec<u8> {
    let domain = urls.base.trim_start_matches("http://");
    serde_json::to_vec(&serde_json::json!({
        "uri": domain,
        "title": "feedcore",
        "short_description": "An example server embedding feedcore",
        "description": "An example server embedding feedcore",
        "email": "",
        "version": VERSION,
        "urls": {},
        "stats": {"user_count": users, "status_count": statuses, "domain_count": 1},
        "thumbnail": null,
        "languages": ["en"],
        "registrations": true,
        "approval_required": false,
        "invites_enabled": false,
        "configuration": {
            "statuses": {"max_characters": crate::compose::STATUS_CHARS_MAX, "max_media_attachments": 0, "characters_reserved_per_url": 23},
        },
        "contact_account": null,
        "rules": [],
    }))
    .expect("a json! value serialises")
}

/// The instance document, v2 (`GET /api/v2/instance`).
pub fn instance_v2(urls: &Urls, users: usize) -> Vec<u8> {
    let domain = urls.base.trim_start_matches("http://");
    serde_json::to_vec(&serde_json::json!({
        "domain": domain,
        "title": "feedcore",
        "version": VERSION,
        "source_url": "https://example.invalid/feedcore",
        "description": "An example server embedding feedcore",
        "usage": {"users": {"active_month": users}},
        "thumbnail": {"url": format!("{}/thumbnail.png", urls.base)},
        "languages": ["en"],
        "configuration": {
            "urls": {"streaming": ""},
            "accounts": {"max_featured_tags": 0},
            "statuses": {"max_characters": crate::compose::STATUS_CHARS_MAX, "max_media_attachments": 0, "characters_reserved_per_url": 23},
        },
        "registrations": {"enabled": true, "approval_required": false, "message": null},
        "contact": {"email": "", "account": null},
        "rules": [],
    }))
    .expect("a json! value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_714_564_800_000), "2024-05-01T12:00:00.000Z");
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        string(&mut out, "a\"b\\c\n\u{1}é");
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
        assert_eq!(html("<b>&\n"), "<p>&lt;b&gt;&amp;<br></p>");
    }
}
