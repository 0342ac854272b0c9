//! Guards the notice log's observable behaviour against a plain model: random
//! sequences of `append`, `append_batch`, `get`, `delete`, `find_uri` and reopen, run
//! beside a `Vec<Option<NewNotice>>`, must agree after every step on every notice's
//! content, on `len`, on which uris are stored, and on which calls fail and how. Small
//! (64 KiB) segments make the sequences roll segments, so reads and deletes cross
//! segment boundaries and reopen recovers several segments.

use std::collections::HashMap;
use std::path::Path;

use feedcore::{
    Durability, Error, GroupId, LogConfig, MENTIONS_MAX, NewNotice, NoticeId, NoticeLog, Scope,
    TAG_BYTES_MAX, TAGS_MAX, URI_BYTES_MAX, UserId,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Large enough that a dozen long bodies fill a 64 KiB segment (a quarter of it is
/// the most the config allows).
const BODY_BYTES_MAX: usize = 8000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        durability: Durability::Buffered,
        body_bytes_max: BODY_BYTES_MAX,
    }
}

/// The uris notices draw from: few, so that duplicates are common.
const URIS: [&str; 6] = [
    "https://a.example/notice/1",
    "https://a.example/notice/2",
    "https://b.example/n/x",
    "https://b.example/n/y",
    "https://c.example/objects/\u{e9}t\u{e9}",
    "tag:d.example,2024:noticeId=7",
];

/// A notice as generated: references to other notices are selectors, turned into ids
/// against the log's length when the operation runs (so they hit live, deleted and
/// missing ids alike).
#[derive(Clone, Debug)]
struct GenNotice {
    author: u32,
    body: String,
    created_at_ms: u64,
    reply_to: Option<u64>,
    repeat_of: Option<u64>,
    conversation: Option<u64>,
    mentions: Vec<u32>,
    tags: Vec<String>,
    group: Option<u32>,
    scope: Scope,
    uri: Option<String>,
}

#[derive(Clone, Debug)]
enum Op {
    Append(GenNotice),
    Batch(Vec<GenNotice>),
    Get(u64),
    Delete(u64),
    FindUri(usize),
    Reopen,
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => "[a-zA-Z0-9 #@!.,\u{e9}\u{4e2d}]{1,60}",
        // Long bodies fill a 64 KiB segment in about a dozen notices.
        1 => (2000usize..=BODY_BYTES_MAX).prop_map(|n| "y".repeat(n)),
    ]
}

fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "rust",
            "#Rust",
            "FEED",
            "#federation",
            "a-b",
            "x",
            "\u{c9}t\u{e9}",
        ])
        .prop_map(str::to_owned),
        "#?[a-zA-Z0-9_]{1,12}",
    ]
}

fn uri() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => prop::sample::select(URIS.to_vec()).prop_map(|u| Some(u.to_owned())),
    ]
}

fn reference() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![4 => Just(None), 1 => any::<u64>().prop_map(Some)]
}

/// One thing to change in an otherwise valid notice: a broken rule, or a value right
/// at a limit (which must be accepted).
#[derive(Clone, Copy, Debug)]
enum Twist {
    BodyTooLong,
    BodyAtLimit,
    EmptyBody,
    TooManyMentions,
    MentionsAtLimitWithDuplicates,
    TooManyTags,
    TagsAtLimit,
    BadTag(usize),
    TagTooLong,
    TagAtLimit,
    UriTooLong,
    UriAtLimit,
    UriEmpty,
    ReplyToZero,
}

const BAD_TAGS: [&str; 4] = ["", "#", "two words", "tab\there"];

impl Twist {
    fn apply(self, n: &mut GenNotice) {
        match self {
            Twist::BodyTooLong => n.body = "z".repeat(BODY_BYTES_MAX + 1),
            Twist::BodyAtLimit => n.body = "z".repeat(BODY_BYTES_MAX),
            // Valid exactly when the notice is a repeat.
            Twist::EmptyBody => n.body.clear(),
            Twist::TooManyMentions => n.mentions = (0..=MENTIONS_MAX as u32).collect(),
            Twist::MentionsAtLimitWithDuplicates => {
                n.mentions = (0..MENTIONS_MAX as u32).chain([0, 5, 63]).collect();
            }
            Twist::TooManyTags => n.tags = (0..=TAGS_MAX).map(|i| format!("t{i}")).collect(),
            Twist::TagsAtLimit => n.tags = (0..TAGS_MAX).map(|i| format!("#T{i}")).collect(),
            Twist::BadTag(i) => n.tags.push(BAD_TAGS[i % BAD_TAGS.len()].to_owned()),
            Twist::TagTooLong => n.tags.push("t".repeat(TAG_BYTES_MAX + 1)),
            Twist::TagAtLimit => n.tags.push(format!("#{}", "T".repeat(TAG_BYTES_MAX))),
            Twist::UriTooLong => n.uri = Some("u".repeat(URI_BYTES_MAX + 1)),
            Twist::UriAtLimit => n.uri = Some("v".repeat(URI_BYTES_MAX)),
            Twist::UriEmpty => n.uri = Some(String::new()),
            Twist::ReplyToZero => n.reply_to = Some(0),
        }
    }
}

fn twist() -> impl Strategy<Value = Option<Twist>> {
    prop_oneof![
        12 => Just(None),
        1 => prop::sample::select(vec![
            Twist::BodyTooLong,
            Twist::BodyAtLimit,
            Twist::EmptyBody,
            Twist::TooManyMentions,
            Twist::MentionsAtLimitWithDuplicates,
            Twist::TooManyTags,
            Twist::TagsAtLimit,
            Twist::BadTag(0),
            Twist::BadTag(1),
            Twist::BadTag(2),
            Twist::BadTag(3),
            Twist::TagTooLong,
            Twist::TagAtLimit,
            Twist::UriTooLong,
            Twist::UriAtLimit,
            Twist::UriEmpty,
            Twist::ReplyToZero,
        ])
        .prop_map(Some),
    ]
}

fn notice() -> impl Strategy<Value = GenNotice> {
    (
        (any::<u32>(), body(), any::<u64>(), reference(), reference()),
        (
            prop::option::of(any::<u64>()),
            // A small range, so duplicates (dropped on store) are common.
            prop::collection::vec(0u32..8, 0..5),
            prop::collection::vec(tag(), 0..4),
            prop::option::of(any::<u32>()),
            prop::sample::select(vec![Scope::Public, Scope::Followers, Scope::Addressees]),
            uri(),
            twist(),
        ),
    )
        .prop_map(
            |(
                (author, body, created_at_ms, reply_to, repeat_of),
                (conversation, mentions, tags, group, scope, uri, twist),
            )| {
                let mut n = GenNotice {
                    author,
                    body,
                    created_at_ms,
                    reply_to,
                    repeat_of,
                    conversation,
                    mentions,
                    tags,
                    group,
                    scope,
                    uri,
                };
                if let Some(twist) = twist {
                    twist.apply(&mut n);
                }
                n
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => notice().prop_map(Op::Append),
        3 => prop::collection::vec(notice(), 0..5).prop_map(Op::Batch),
        2 => any::<u64>().prop_map(Op::Get),
        3 => any::<u64>().prop_map(Op::Delete),
        1 => (0..URIS.len()).prop_map(Op::FindUri),
        1 => Just(Op::Reopen),
    ]
}

/// The model: notice `id` is `notices[id - 1]`, `None` once deleted.
#[derive(Default)]
struct Model {
    notices: Vec<Option<NewNotice>>,
    uris: HashMap<String, NoticeId>,
}

/// How the model expects a call to fail.
#[derive(Debug, PartialEq)]
enum Refusal {
    Invalid(String),
    DuplicateUri(NoticeId),
    Unknown(NoticeId),
}

impl Model {
    fn len(&self) -> u64 {
        self.notices.len() as u64
    }

    fn is_live(&self, id: NoticeId) -> bool {
        id.0 >= 1
            && self
                .notices
                .get(id.0 as usize - 1)
                .is_some_and(Option::is_some)
    }

    /// Maps a selector onto `0..=len + 1`: the invalid id 0, every stored id, and the
    /// first id not yet handed out.
    fn pick(&self, selector: u64) -> NoticeId {
        NoticeId(selector % (self.len() + 2))
    }

    fn resolve(&self, g: &GenNotice) -> NewNotice {
        NewNotice {
            author: UserId(g.author),
            body: g.body.clone(),
            created_at_ms: g.created_at_ms,
            // A remote notice's publication time makes a version-3 record: the model
            // covers that format too.
            published: g
                .uri
                .as_ref()
                .map(|_| feedcore::PUBLISHED_MS_MIN + g.created_at_ms % 1_000_000),
            reply_to: g.reply_to.map(|s| self.pick(s)),
            reply_to_author: None,
            repeat_of: g.repeat_of.map(|s| self.pick(s)),
            conversation: g.conversation,
            mentions: g.mentions.iter().copied().map(UserId).collect(),
            tags: g.tags.clone(),
            group: g.group.map(GroupId),
            // A second group makes a version-2 record: the model covers both formats.
            groups: g
                .group
                .filter(|x| x % 2 == 0)
                .map(|x| vec![GroupId(x + 1)])
                .unwrap_or_default(),
            scope: g.scope,
            uri: g.uri.clone(),
        }
    }

    /// What the log must store for `n` (tags lower-case without '#', duplicates
    /// dropped), or why it must refuse it.
    fn normalise(&self, n: &NewNotice) -> Result<NewNotice, Refusal> {
        let invalid = |why: &str| Err(Refusal::Invalid(why.to_owned()));
        if n.body.len() > BODY_BYTES_MAX {
            return invalid("body too long");
        }
        if n.body.is_empty() && n.repeat_of.is_none() {
            return invalid("empty body, not a repeat");
        }
        let mut mentions = Vec::new();
        for m in &n.mentions {
            if !mentions.contains(m) {
                mentions.push(*m);
            }
        }
        if mentions.len() > MENTIONS_MAX {
            return invalid("too many mentions");
        }
        if n.tags.len() > TAGS_MAX {
            return invalid("too many tags");
        }
        let mut tags: Vec<String> = Vec::new();
        for t in &n.tags {
            let t = t.strip_prefix('#').unwrap_or(t).to_lowercase();
            if t.is_empty() || t.len() > TAG_BYTES_MAX || t.chars().any(char::is_whitespace) {
                return invalid("bad tag");
            }
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        if let Some(uri) = &n.uri
            && (uri.is_empty() || uri.len() > URI_BYTES_MAX)
        {
            return invalid("bad uri");
        }
        for target in [n.reply_to, n.repeat_of].into_iter().flatten() {
            if !self.is_live(target) {
                return invalid("reference to a notice that is not live");
            }
        }
        Ok(NewNotice {
            mentions,
            tags,
            ..n.clone()
        })
    }

    /// Applies a batch: either all of it (returning the new ids) or none.
    fn append_batch(&mut self, batch: &[NewNotice]) -> Result<Vec<NoticeId>, Refusal> {
        let mut stored = Vec::with_capacity(batch.len());
        for (i, n) in batch.iter().enumerate() {
            stored.push(self.normalise(n)?);
            if let Some(uri) = &n.uri
                && batch[..i].iter().any(|m| m.uri.as_ref() == Some(uri))
            {
                return Err(Refusal::Invalid("uri twice in the batch".into()));
            }
        }
        for n in batch {
            if let Some(existing) = n.uri.as_ref().and_then(|u| self.uris.get(u)) {
                return Err(Refusal::DuplicateUri(*existing));
            }
        }
        let mut ids = Vec::new();
        for n in stored {
            let id = NoticeId(self.len() + 1);
            if let Some(uri) = &n.uri {
                self.uris.insert(uri.clone(), id);
            }
            self.notices.push(Some(n));
            ids.push(id);
        }
        Ok(ids)
    }

    fn delete(&mut self, id: NoticeId) -> Result<(), Refusal> {
        if !self.is_live(id) {
            return Err(Refusal::Unknown(id));
        }
        let gone = self.notices[id.0 as usize - 1]
            .take()
            .expect("is_live checked it");
        if let Some(uri) = gone.uri {
            self.uris.remove(&uri);
        }
        Ok(())
    }

    fn deleted(&self) -> u64 {
        self.notices.iter().filter(|n| n.is_none()).count() as u64
    }
}

/// Turns the log's error into the model's terms; any other error fails the test.
fn refusal(e: Error) -> Refusal {
    match e {
        Error::InvalidNotice { reason } => Refusal::Invalid(reason),
        Error::DuplicateUri { existing } => Refusal::DuplicateUri(existing),
        Error::UnknownNotice { id } => Refusal::Unknown(id),
        other => panic!("unexpected error from the log: {other:?}"),
    }
}

/// Same outcome: same ids, or the same kind of refusal (invalid reasons are worded by
/// the log; only the variant is compared).
fn same_outcome<T: PartialEq + std::fmt::Debug>(
    log: Result<T, Refusal>,
    model: Result<T, Refusal>,
) -> Result<(), TestCaseError> {
    match (&log, &model) {
        (Err(Refusal::Invalid(_)), Err(Refusal::Invalid(_))) => Ok(()),
        _ => {
            prop_assert_eq!(log, model);
            Ok(())
        }
    }
}

fn compare(log: &NoticeLog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.len(), model.len());
    prop_assert_eq!(log.stats().deleted, model.deleted());
    for id in 0..=model.len() + 1 {
        let id = NoticeId(id);
        let expected = if id.0 == 0 {
            None
        } else {
            model.notices.get(id.0 as usize - 1).cloned().flatten()
        };
        let got = log.get(id).map(|n| {
            assert_eq!(n.id(), id, "a NoticeRef carries the id it was read under");
            n.to_new_notice()
        });
        prop_assert_eq!(got, expected, "notice {}", id.0);
    }
    for uri in URIS {
        prop_assert_eq!(
            log.find_uri(uri),
            model.uris.get(uri).copied(),
            "uri {}",
            uri
        );
    }
    let live: Vec<NoticeId> = log.iter_from(NoticeId(1)).map(|n| n.id()).collect();
    let expected: Vec<NoticeId> = (1..=model.len())
        .map(NoticeId)
        .filter(|id| model.is_live(*id))
        .collect();
    prop_assert_eq!(live, expected);
    Ok(())
}

fn run(dir: &Path, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut log = NoticeLog::open(dir, config()).expect("a fresh log opens");
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(g) => {
                let n = model.resolve(g);
                let got = log.append(&n).map_err(refusal);
                let expected = model
                    .append_batch(std::slice::from_ref(&n))
                    .map(|ids| ids[0]);
                same_outcome(got, expected)?;
            }
            Op::Batch(gs) => {
                let batch: Vec<NewNotice> = gs.iter().map(|g| model.resolve(g)).collect();
                let got = log.append_batch(&batch).map_err(refusal);
                let expected = model.append_batch(&batch);
                same_outcome(got, expected)?;
            }
            Op::Get(selector) => {
                // `compare` below reads every id; this one is read with nothing else first.
                let id = model.pick(*selector);
                let got = log.get(id).map(|n| n.to_new_notice());
                let expected = model.is_live(id).then(|| {
                    model.notices[id.0 as usize - 1]
                        .clone()
                        .expect("live notices are in the model")
                });
                prop_assert_eq!(got, expected);
            }
            Op::Delete(selector) => {
                let id = model.pick(*selector);
                same_outcome(log.delete(id).map_err(refusal), model.delete(id))?;
            }
            Op::FindUri(i) => {
                prop_assert_eq!(log.find_uri(URIS[*i]), model.uris.get(URIS[*i]).copied());
            }
            Op::Reopen => {
                drop(log);
                log = NoticeLog::open(dir, config()).expect("the log reopens");
                let r = log.recovery();
                prop_assert_eq!(r.notices, model.len());
                prop_assert_eq!(r.deleted, model.deleted());
                prop_assert_eq!(&r.torn_tail, &None);
                prop_assert_eq!(r.scrubs_finished, 0, "every scrub ran before the drop");
            }
        }
        compare(&log, &model)?;
    }
    drop(log);
    let report = NoticeLog::check(dir).expect("check reads the directory");
    prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
    prop_assert_eq!(report.stats.notices, model.len());
    prop_assert_eq!(report.stats.deleted, model.deleted());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Integration tests have no lib.rs beside them for the default persistence.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_log_behaves_like_the_model(ops in prop::collection::vec(op(), 1..150)) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        run(dir.path(), &ops)?;
    }
}

/// The generators must reach what the model test is for: rolled segments, deletes,
/// duplicate uris. A fixed sequence that does all of it, so a generator change that
/// stops producing them cannot hollow out the property above unnoticed.
#[test]
fn a_fixed_sequence_rolls_segments_and_hits_every_rule() {
    let long = GenNotice {
        author: 1,
        body: "y".repeat(BODY_BYTES_MAX),
        created_at_ms: 5,
        reply_to: None,
        repeat_of: None,
        conversation: Some(3),
        mentions: vec![1, 1, 2],
        tags: vec!["#Rust".into(), "rust".into()],
        group: Some(9),
        scope: Scope::Addressees,
        uri: None,
    };
    let mut ops: Vec<Op> = (0..70).map(|_| Op::Append(long.clone())).collect();
    let remote = GenNotice {
        uri: Some(URIS[0].into()),
        reply_to: Some(1), // id 1 with 72 ids to choose from
        ..long.clone()
    };
    ops.push(Op::Append(remote.clone()));
    ops.push(Op::Append(remote.clone())); // duplicate uri
    ops.push(Op::Batch(vec![long.clone(), remote.clone()])); // duplicate against stored
    ops.push(Op::Delete(71)); // the remote one: its uri is free again
    ops.push(Op::Batch(vec![remote.clone(), long.clone()]));
    ops.push(Op::Delete(3));
    ops.push(Op::Delete(3)); // already deleted
    ops.push(Op::Reopen);
    ops.push(Op::FindUri(0));
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &ops).unwrap();
    let log = NoticeLog::open(dir.path(), config()).unwrap();
    assert!(log.stats().segments >= 3, "{:?}", log.stats());
    assert_eq!(log.len(), 73);
    assert_eq!(log.find_uri(URIS[0]), Some(NoticeId(72)));
    assert_eq!(log.recovery().deleted, 2);
}
