//! The notice: its input form ([`NewNotice`]), its validation, its stored rkyv form, and
//! the zero-copy view readers get ([`NoticeRef`]).

use std::fmt;

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::error::{Error, Result};
use crate::ids::{GroupId, NoticeId, UserId};

/// At most this many mentioned users per notice.
pub const MENTIONS_MAX: usize = 64;
/// At most this many hashtags per notice.
pub const TAGS_MAX: usize = 32;
/// At most this many bytes in one hashtag.
pub const TAG_BYTES_MAX: usize = 140;
/// At most this many bytes in a remote notice's uri.
pub const URI_BYTES_MAX: usize = 1024;
/// At most this many groups per notice (`group`, `groups` and the `!name`s of the body
/// together).
pub const GROUPS_MAX: usize = 16;
/// The default for `body_bytes_max`.
pub const BODY_BYTES_MAX_DEFAULT: usize = 5000;

/// Who may see a notice (StatusNet's scope bits, simplified).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everyone.
    #[default]
    Public,
    /// The author's followers.
    Followers,
    /// Only the users the notice mentions.
    Addressees,
}

impl Scope {
    // Stored as one byte; tags start at 1 so that zero never means a valid scope.
    pub(crate) fn to_tag(self) -> u8 {
        match self {
            Scope::Public => 1,
            Scope::Followers => 2,
            Scope::Addressees => 3,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Scope> {
        match tag {
            1 => Some(Scope::Public),
            2 => Some(Scope::Followers),
            3 => Some(Scope::Addressees),
            _ => None,
        }
    }
}

/// A notice to be posted: the input of `append` and `post`.
///
/// ```
/// use feedcore::{NewNotice, UserId};
/// let notice = NewNotice { author: UserId(7), body: "hi".into(), ..Default::default() };
/// assert!(notice.tags.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewNotice {
    /// Who wrote it.
    pub author: UserId,
    /// The text, UTF-8, at most `body_bytes_max` bytes; empty only for a repeat.
    pub body: String,
    /// When it was written, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// For a remote notice: when its server published it, milliseconds since the Unix
    /// epoch; `None` for a local post. Every stream places a notice by this time (then
    /// by id), so a notice published before what streams already hold lands by its
    /// time, not at the head. A time after the engine's clock is clamped to the clock;
    /// one before [`PUBLISHED_MS_MIN`](crate::PUBLISHED_MS_MIN) (2006-03-21) is
    /// refused as [`Error::InvalidNotice`]. Without it, the notice is placed by
    /// `created_at_ms`, raised to the newest time stored before it: a local post always
    /// goes at the head. [`NoticeRef::published_ms`] reads back the time used.
    pub published: Option<u64>,
    /// The notice this one answers; it must be stored and not deleted.
    pub reply_to: Option<NoticeId>,
    /// For a remote notice (`uri` set) that answers a notice not stored here (gone, or
    /// not arrived), with `reply_to` `None`: the author of the notice it answers, so
    /// the reply rule of home timelines holds as if that notice were here. With
    /// `reply_to` set, the author of `reply_to` is taken and this is ignored.
    pub reply_to_author: Option<UserId>,
    /// The notice this one repeats (a retweet / reblog); it must be stored and not deleted.
    pub repeat_of: Option<NoticeId>,
    /// The conversation (thread) this notice belongs to.
    pub conversation: Option<u64>,
    /// Users mentioned with `@user`, at most [`MENTIONS_MAX`]; duplicates are dropped.
    pub mentions: Vec<UserId>,
    /// Hashtags, at most [`TAGS_MAX`], each 1 to [`TAG_BYTES_MAX`] bytes without
    /// whitespace; a leading `#` is dropped and they are stored lower-case.
    pub tags: Vec<String>,
    /// The group (`!group`) the notice is addressed to. Kept beside `groups`: the
    /// notice is addressed to this one and all of `groups`.
    pub group: Option<GroupId>,
    /// More groups the notice is addressed to (with `group`: at most [`GROUPS_MAX`],
    /// duplicates dropped). [`crate::Engine::post`] also adds the groups its body
    /// names as `!name`, and delivers the notice to every member of each.
    pub groups: Vec<GroupId>,
    /// Who may see it.
    pub scope: Scope,
    /// The unique uri of a remote notice (arrived by federation), at most
    /// [`URI_BYTES_MAX`] bytes. A uri is stored once.
    pub uri: Option<String>,
}

/// The stored form of a notice: what the log writes as an rkyv archive and reads back
/// in place. Field order puts the fixed-size fields first; the id is not stored here but
/// in the record header, so a notice can be encoded before its id is known.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
pub(crate) struct StoredNotice {
    pub(crate) author: u32,
    pub(crate) created_at_ms: u64,
    pub(crate) reply_to: Option<u64>,
    /// Author of `reply_to`, filled in by the log at append.
    pub(crate) reply_to_author: Option<u32>,
    pub(crate) repeat_of: Option<u64>,
    /// Author of `repeat_of`, filled in by the log at append.
    pub(crate) repeat_of_author: Option<u32>,
    pub(crate) conversation: Option<u64>,
    pub(crate) group: Option<u32>,
    pub(crate) scope: u8,
    pub(crate) mentions: Vec<u32>,
    pub(crate) tags: Vec<String>,
    pub(crate) body: String,
    pub(crate) uri: Option<String>,
}

/// The stored form of a notice addressed to two or more groups (record format version
/// 2): the version-1 notice, whose `group` is the first group, and the others. A notice
/// with at most one group is stored as a plain [`StoredNotice`] (version 1), so logs
/// without such notices read as before.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
pub(crate) struct StoredNoticeV2 {
    pub(crate) notice: StoredNotice,
    /// The groups after the first, in the order given, without duplicates.
    pub(crate) more_groups: Vec<u32>,
}

/// The stored form of a notice with an explicit time it is placed by (record format
/// version 3): a remote notice's clamped `published` time, or a notice whose
/// `created_at_ms` is below a time stored before it (the time it was raised to). Any
/// number of groups.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
pub(crate) struct StoredNoticeV3 {
    pub(crate) published_ms: u64,
    /// Whether `published_ms` is the notice's own `published` time (else a raised
    /// `created_at_ms`).
    pub(crate) given: bool,
    /// The groups after the first, in the order given, without duplicates.
    pub(crate) more_groups: Vec<u32>,
    pub(crate) notice: StoredNotice,
}

/// A validated notice: its stored form, and the groups past the first.
#[derive(Debug, PartialEq)]
pub(crate) struct Validated {
    pub(crate) stored: StoredNotice,
    pub(crate) more_groups: Vec<u32>,
}

/// The limits a notice is validated against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) body_bytes_max: usize,
}

/// Checks every rule that does not need the log (existence of `reply_to` and
/// `repeat_of` is the log's to check) and returns the normalised stored form.
pub(crate) fn validate(notice: &NewNotice, limits: Limits) -> Result<Validated> {
    if notice.body.len() > limits.body_bytes_max {
        return Err(Error::invalid(format!(
            "body is {} bytes, more than the {} allowed",
            notice.body.len(),
            limits.body_bytes_max
        )));
    }
    if notice.body.is_empty() && notice.repeat_of.is_none() {
        return Err(Error::invalid(
            "body is empty and the notice is not a repeat",
        ));
    }
    if notice.reply_to_author.is_some() && notice.reply_to.is_none() && notice.uri.is_none() {
        return Err(Error::invalid(
            "reply_to_author without reply_to is for remote notices (with a uri)",
        ));
    }
    if notice.reply_to == Some(NoticeId(0)) || notice.repeat_of == Some(NoticeId(0)) {
        return Err(Error::invalid("notice ids start at 1; 0 is not a notice"));
    }
    let mut mentions: Vec<u32> = Vec::with_capacity(notice.mentions.len());
    for user in &notice.mentions {
        if !mentions.contains(&user.0) {
            mentions.push(user.0);
        }
    }
    if mentions.len() > MENTIONS_MAX {
        return Err(Error::invalid(format!(
            "{} users mentioned, more than the {MENTIONS_MAX} allowed",
            mentions.len()
        )));
    }
    if notice.tags.len() > TAGS_MAX {
        return Err(Error::invalid(format!(
            "{} tags, more than the {TAGS_MAX} allowed",
            notice.tags.len()
        )));
    }
    let mut tags: Vec<String> = Vec::with_capacity(notice.tags.len());
    for tag in &notice.tags {
        let tag = tag.strip_prefix('#').unwrap_or(tag).to_lowercase();
        if tag.is_empty() || tag.len() > TAG_BYTES_MAX {
            return Err(Error::invalid(format!(
                "tag {tag:?} must be 1 to {TAG_BYTES_MAX} bytes"
            )));
        }
        if tag.chars().any(char::is_whitespace) {
            return Err(Error::invalid(format!("tag {tag:?} contains whitespace")));
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if let Some(uri) = &notice.uri
        && (uri.is_empty() || uri.len() > URI_BYTES_MAX)
    {
        return Err(Error::invalid(format!(
            "uri is {} bytes; it must be 1 to {URI_BYTES_MAX}",
            uri.len()
        )));
    }
    let mut groups: Vec<u32> = Vec::with_capacity(1 + notice.groups.len());
    for g in notice.group.iter().chain(&notice.groups) {
        if !groups.contains(&g.0) {
            groups.push(g.0);
        }
    }
    if groups.len() > GROUPS_MAX {
        return Err(Error::invalid(format!(
            "{} groups, more than the {GROUPS_MAX} allowed",
            groups.len()
        )));
    }
    let more_groups = groups.get(1..).unwrap_or_default().to_vec();
    let stored = StoredNotice {
        author: notice.author.0,
        created_at_ms: notice.created_at_ms,
        reply_to: notice.reply_to.map(|id| id.0),
        // Replaced by the log with `reply_to`'s author when `reply_to` is set.
        reply_to_author: notice.reply_to_author.map(|u| u.0),
        repeat_of: notice.repeat_of.map(|id| id.0),
        repeat_of_author: None,
        conversation: notice.conversation,
        group: groups.first().copied(),
        scope: notice.scope.to_tag(),
        mentions,
        tags,
        body: notice.body.clone(),
        uri: notice.uri.clone(),
    };
    Ok(Validated {
        stored,
        more_groups,
    })
}

/// Serialises a validated notice into its archived bytes; returns them and the record
/// format version they are of (3 for a notice with an explicit time `published_ms`,
/// else 2 for a notice with two or more groups, else 1).
pub(crate) fn encode(notice: Validated, published_ms: Option<u64>) -> (AlignedVec, u8) {
    encode_time(notice, published_ms, true)
}

/// [`encode`], with `given` false for a raised `created_at_ms` (version 3 keeps which).
pub(crate) fn encode_time(
    notice: Validated,
    published_ms: Option<u64>,
    given: bool,
) -> (AlignedVec, u8) {
    let expect = "serialising into a growable in-memory buffer has no failure mode";
    if let Some(published_ms) = published_ms {
        let v3 = StoredNoticeV3 {
            published_ms,
            given,
            more_groups: notice.more_groups,
            notice: notice.stored,
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&v3).expect(expect);
        return (bytes, crate::log::frame::VERSION_PUBLISHED);
    }
    if notice.more_groups.is_empty() {
        let bytes = rkyv::to_bytes::<rancor::Error>(&notice.stored).expect(expect);
        return (bytes, crate::log::frame::VERSION);
    }
    let v2 = StoredNoticeV2 {
        notice: notice.stored,
        more_groups: notice.more_groups,
    };
    let bytes = rkyv::to_bytes::<rancor::Error>(&v2).expect(expect);
    (bytes, crate::log::frame::VERSION_GROUPS)
}

/// Validates archived bytes of record format `version` read from disk: the rkyv
/// structure and the notice's own rules (scope tag). Returns a reason on failure.
pub(crate) fn check_archived(bytes: &[u8], version: u8) -> Result<(), String> {
    let archived = if version == crate::log::frame::VERSION_PUBLISHED {
        let v3 = rkyv::access::<ArchivedStoredNoticeV3, rancor::Error>(bytes)
            .map_err(|e| format!("notice archive (version 3) does not validate: {e}"))?;
        &v3.notice
    } else if version == crate::log::frame::VERSION_GROUPS {
        let v2 = rkyv::access::<ArchivedStoredNoticeV2, rancor::Error>(bytes)
            .map_err(|e| format!("notice archive (version 2) does not validate: {e}"))?;
        if v2.more_groups.is_empty() {
            return Err("a version 2 notice with no second group".into());
        }
        &v2.notice
    } else {
        rkyv::access::<ArchivedStoredNotice, rancor::Error>(bytes)
            .map_err(|e| format!("notice archive does not validate: {e}"))?
    };
    if Scope::from_tag(archived.scope).is_none() {
        return Err(format!("unknown scope tag {}", archived.scope));
    }
    Ok(())
}

/// The groups past the first of a version-1 notice: none.
const NO_MORE_GROUPS: &[rkyv::rend::u32_le] = &[];

/// What [`access_trusted`] returns: the notice, its groups past the first, and its
/// explicit time with whether it was the notice's own `published` (version 3 only).
pub(crate) type Trusted<'a> = (
    &'a ArchivedStoredNotice,
    &'a [rkyv::rend::u32_le],
    Option<(u64, bool)>,
);

/// Reinterprets bytes that were validated by [`check_archived`] (or written by
/// [`encode`]) as of record format `version`, without checking them again; returns the
/// notice, its groups past the first and its explicit time.
///
/// # Safety
/// `bytes` must be exactly the bytes of a notice archive of format `version` that
/// passed `check_archived` or came out of `encode`, aligned to 16 bytes, and must stay
/// unchanged for `'a`.
pub(crate) unsafe fn access_trusted(bytes: &[u8], version: u8) -> Trusted<'_> {
    debug_assert!(
        bytes.as_ptr().align_offset(16) == 0,
        "payloads are 16-byte aligned"
    );
    if version == crate::log::frame::VERSION_PUBLISHED {
        // SAFETY: forwarded from the caller: the bytes are a validated version-3
        // archive that does not change while borrowed.
        let v3 = unsafe { rkyv::access_unchecked::<ArchivedStoredNoticeV3>(bytes) };
        return (
            &v3.notice,
            v3.more_groups.as_slice(),
            Some((v3.published_ms.to_native(), v3.given)),
        );
    }
    if version == crate::log::frame::VERSION_GROUPS {
        // SAFETY: forwarded from the caller: the bytes are a validated version-2
        // archive that does not change while borrowed.
        let v2 = unsafe { rkyv::access_unchecked::<ArchivedStoredNoticeV2>(bytes) };
        return (&v2.notice, v2.more_groups.as_slice(), None);
    }
    // SAFETY: forwarded from the caller: the bytes are a validated version-1 archive
    // that does not change while borrowed.
    let v1 = unsafe { rkyv::access_unchecked::<ArchivedStoredNotice>(bytes) };
    (v1, NO_MORE_GROUPS, None)
}

/// A notice read in place from the mapped log: no copy, no deserialisation.
///
/// The borrowed accessors (`body`, `tags`, `uri`) borrow from the `NoticeRef` itself,
/// not from the log: the bytes are only guaranteed in place while the reference lives.
///
/// While a `NoticeRef` is alive, the bytes it points at stay in place: a concurrent
/// `delete` scrubs them only once every reference taken before it is dropped. A
/// `NoticeRef` is tied to its thread (it holds an epoch pin).
pub struct NoticeRef<'a> {
    id: NoticeId,
    archived: &'a ArchivedStoredNotice,
    /// The groups past the first (empty for a version-1 record).
    more_groups: &'a [rkyv::rend::u32_le],
    /// The time it is placed by, when stored in the record (version 3), and whether
    /// it is the notice's own `published`.
    explicit_ms: Option<(u64, bool)>,
    /// The time it is placed by, as the log's order keys hold it (`None` while the
    /// log is being recovered).
    placed_ms: Option<u64>,
    // Keeps the scrub of a concurrently deleted notice from running while `archived`
    // is borrowed (see `log::notice_log::NoticeLog::delete`).
    _pin: crossbeam_epoch::Guard,
}

impl<'a> NoticeRef<'a> {
    pub(crate) fn new(
        id: NoticeId,
        (archived, more_groups, explicit_ms): Trusted<'a>,
        placed_ms: Option<u64>,
        pin: crossbeam_epoch::Guard,
    ) -> Self {
        NoticeRef {
            id,
            archived,
            more_groups,
            explicit_ms,
            placed_ms,
            _pin: pin,
        }
    }

    /// The time it is placed by in every stream, milliseconds since the Unix epoch:
    /// its clamped `published` time when it gave one, else `created_at_ms` raised to
    /// the newest time stored before it (see [`NewNotice::published`]).
    pub fn published_ms(&self) -> u64 {
        self.placed_ms
            .or(self.explicit_ms())
            .unwrap_or_else(|| self.created_at_ms())
    }

    /// The time stored in the record, when it has one (record version 3).
    pub(crate) fn explicit_ms(&self) -> Option<u64> {
        self.explicit_ms.map(|(ms, _)| ms)
    }

    /// The notice's id.
    pub fn id(&self) -> NoticeId {
        self.id
    }

    /// Who wrote it.
    pub fn author(&self) -> UserId {
        UserId(self.archived.author.to_native())
    }

    /// The text.
    pub fn body(&self) -> &str {
        self.archived.body.as_str()
    }

    /// When it was written, milliseconds since the Unix epoch.
    pub fn created_at_ms(&self) -> u64 {
        self.archived.created_at_ms.to_native()
    }

    /// The notice it answers.
    pub fn reply_to(&self) -> Option<NoticeId> {
        self.archived
            .reply_to
            .as_ref()
            .map(|id| NoticeId(id.to_native()))
    }

    /// The author of the notice it answers (kept when that notice is deleted).
    pub fn reply_to_author(&self) -> Option<UserId> {
        self.archived
            .reply_to_author
            .as_ref()
            .map(|u| UserId(u.to_native()))
    }

    /// The author of the notice it repeats (kept when that notice is deleted).
    pub fn repeat_of_author(&self) -> Option<UserId> {
        self.archived
            .repeat_of_author
            .as_ref()
            .map(|u| UserId(u.to_native()))
    }

    /// The notice it repeats.
    pub fn repeat_of(&self) -> Option<NoticeId> {
        self.archived
            .repeat_of
            .as_ref()
            .map(|id| NoticeId(id.to_native()))
    }

    /// The conversation it belongs to.
    pub fn conversation(&self) -> Option<u64> {
        self.archived.conversation.as_ref().map(|c| c.to_native())
    }

    /// The users it mentions, in the order given, without duplicates.
    pub fn mentions(&self) -> impl ExactSizeIterator<Item = UserId> + '_ {
        self.archived.mentions.iter().map(|u| UserId(u.to_native()))
    }

    /// Its hashtags, lower-case, without the `#`.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.archived.tags.iter().map(|t| t.as_str())
    }

    /// The (first) group it is addressed to.
    pub fn group(&self) -> Option<GroupId> {
        self.archived.group.as_ref().map(|g| GroupId(g.to_native()))
    }

    /// Every group it is addressed to: [`NoticeRef::group`] first, then the others, in
    /// the order given, without duplicates.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.group()
            .into_iter()
            .chain(self.more_groups.iter().map(|g| GroupId(g.to_native())))
    }

    /// Who may see it.
    pub fn scope(&self) -> Scope {
        Scope::from_tag(self.archived.scope)
            .expect("scope tags are checked at append and at recovery")
    }

    /// Its uri, for a remote notice.
    pub fn uri(&self) -> Option<&str> {
        self.archived.uri.as_ref().map(|u| u.as_str())
    }

    /// Copies it back into the input form (for tests, exports and re-posting).
    pub fn to_new_notice(&self) -> NewNotice {
        NewNotice {
            author: self.author(),
            body: self.body().to_owned(),
            created_at_ms: self.created_at_ms(),
            published: self.explicit_ms.and_then(|(ms, given)| given.then_some(ms)),
            reply_to: self.reply_to(),
            reply_to_author: self.reply_to_author().filter(|_| self.reply_to().is_none()),
            repeat_of: self.repeat_of(),
            conversation: self.conversation(),
            mentions: self.mentions().collect(),
            tags: self.tags().map(str::to_owned).collect(),
            group: self.group(),
            groups: self.groups().skip(1).collect(),
            scope: self.scope(),
            uri: self.uri().map(str::to_owned),
        }
    }
}

impl fmt::Debug for NoticeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoticeRef")
            .field("id", &self.id)
            .field("author", &self.author())
            .field("body", &self.body())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        body_bytes_max: BODY_BYTES_MAX_DEFAULT,
    };

    fn notice(body: &str) -> NewNotice {
        NewNotice {
            author: UserId(1),
            body: body.into(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_through_the_archive() {
        let input = NewNotice {
            author: UserId(9),
            body: "héllo #World".into(),
            created_at_ms: 1_700_000_000_000,
            published: None,
            reply_to: Some(NoticeId(3)),
            reply_to_author: None,
            repeat_of: None,
            conversation: Some(44),
            mentions: vec![UserId(1), UserId(2), UserId(1)],
            tags: vec!["#World".into(), "rust".into()],
            group: Some(GroupId(5)),
            groups: Vec::new(),
            scope: Scope::Followers,
            uri: Some("https://example.org/notice/1".into()),
        };
        let (bytes, version) = encode(validate(&input, LIMITS).unwrap(), None);
        assert_eq!(version, 1, "one group: a version-1 record");
        check_archived(&bytes, version).unwrap();
        // SAFETY: checked just above; `bytes` outlives the view.
        let view = NoticeRef::new(
            NoticeId(1),
            unsafe { access_trusted(&bytes, version) },
            None,
            crossbeam_epoch::pin(),
        );
        let back = view.to_new_notice();
        assert_eq!(back.mentions, vec![UserId(1), UserId(2)]);
        assert_eq!(back.tags, vec!["world".to_string(), "rust".to_string()]);
        assert_eq!(
            NewNotice {
                mentions: back.mentions.clone(),
                tags: back.tags.clone(),
                ..input
            },
            back
        );
    }

    #[test]
    fn several_groups_make_a_version_2_record() {
        let input = NewNotice {
            group: Some(GroupId(3)),
            groups: vec![GroupId(7), GroupId(3), GroupId(9)],
            ..notice("to groups")
        };
        let (bytes, version) = encode(validate(&input, LIMITS).unwrap(), None);
        assert_eq!(version, 2);
        check_archived(&bytes, version).unwrap();
        assert!(
            check_archived(&bytes, 1).is_err() || {
                // A version-2 archive read as version 1 must not pass as this notice.
                // SAFETY: it validated as version 1 just now.
                let (v1, _, _) = unsafe { access_trusted(&bytes, 1) };
                v1.body.as_str() != "to groups"
            }
        );
        // SAFETY: checked above; `bytes` outlives the view.
        let view = NoticeRef::new(
            NoticeId(1),
            unsafe { access_trusted(&bytes, version) },
            None,
            crossbeam_epoch::pin(),
        );
        let groups: Vec<GroupId> = view.groups().collect();
        assert_eq!(groups, [GroupId(3), GroupId(7), GroupId(9)]);
        assert_eq!(view.group(), Some(GroupId(3)));
        let back = view.to_new_notice();
        assert_eq!(back.groups, [GroupId(7), GroupId(9)]);
        let too_many = NewNotice {
            groups: (0..GROUPS_MAX as u32 + 1).map(GroupId).collect(),
            ..notice("hi")
        };
        assert!(validate(&too_many, LIMITS).is_err());
    }

    #[test]
    fn refuses_what_breaks_the_rules() {
        let long = "x".repeat(BODY_BYTES_MAX_DEFAULT + 1);
        assert!(validate(&notice(&long), LIMITS).is_err());
        assert!(validate(&notice(""), LIMITS).is_err());
        let repeat = NewNotice {
            repeat_of: Some(NoticeId(1)),
            ..notice("")
        };
        assert!(validate(&repeat, LIMITS).is_ok());
        let mentions = NewNotice {
            mentions: (0..65).map(UserId).collect(),
            ..notice("hi")
        };
        assert!(validate(&mentions, LIMITS).is_err());
        let tags = NewNotice {
            tags: (0..33).map(|i| format!("t{i}")).collect(),
            ..notice("hi")
        };
        assert!(validate(&tags, LIMITS).is_err());
        for bad in ["", "#", "two words", &"t".repeat(TAG_BYTES_MAX + 1)] {
            let n = NewNotice {
                tags: vec![bad.to_string()],
                ..notice("hi")
            };
            assert!(validate(&n, LIMITS).is_err(), "tag {bad:?} accepted");
        }
        let uri = NewNotice {
            uri: Some("u".repeat(URI_BYTES_MAX + 1)),
            ..notice("hi")
        };
        assert!(validate(&uri, LIMITS).is_err());
        let zero = NewNotice {
            reply_to: Some(NoticeId(0)),
            ..notice("hi")
        };
        assert!(validate(&zero, LIMITS).is_err());
    }

    #[test]
    fn garbage_archives_are_refused() {
        let (bytes, version) = encode(validate(&notice("hello"), LIMITS).unwrap(), None);
        let mut damaged = AlignedVec::<16>::new();
        damaged.extend_from_slice(&bytes);
        let last = damaged.len() - 1;
        damaged[last] ^= 0x7f;
        // Either the archive is refused or it still decodes to something valid; it
        // must never panic.
        let _ = check_archived(&damaged, version);
        let _ = check_archived(&damaged, 2);
        assert!(check_archived(&bytes[..bytes.len() / 2], version).is_err());
    }
}
