//! Where home timelines live: feedcore's own (push fan-out into its in-process rings),
//! or Redis lists (Twitter's layout), for comparison. Notices, the follow graph and
//! every other stream (public, local, tag, list) are feedcore's in both.

use std::sync::Arc;

use feedcore::{Engine, NoticeId, Page, Scope, TimelinePage, UserId};

use crate::api::ApiError;
use crate::redis_timelines::RedisTimelines;

/// The home-timeline store the handlers use.
pub enum Backend {
    /// feedcore's timelines (the engine runs its push strategy).
    Feedcore,
    /// Redis lists; the engine runs pull, which stores nothing per reader, and only its
    /// notices and graph are used.
    Redis(RedisTimelines),
}

impl Backend {
    /// A page of `user`'s home timeline.
    pub async fn home(
        &self,
        engine: &Engine,
        user: u32,
        page: Page,
    ) -> Result<TimelinePage, ApiError> {
        match self {
            Backend::Feedcore => Ok(engine.home_timeline(UserId(user), page)?),
            Backend::Redis(r) => r.page(engine, user, page).await,
        }
    }

    /// A notice was posted: hand it to the fan-out (feedcore's engine did already).
    pub fn posted(&self, id: NoticeId, author: u32, addressees: Option<Vec<u32>>) {
        if let Backend::Redis(r) = self {
            r.fan_out(id.0, author, addressees);
        }
    }

    /// `follower` now follows `author`: merge the author's newest notices into the
    /// follower's timeline (feedcore's engine did already).
    pub async fn followed(
        &self,
        engine: &Arc<Engine>,
        follower: u32,
        author: u32,
    ) -> Result<(), ApiError> {
        match self {
            Backend::Feedcore => Ok(()),
            Backend::Redis(r) => r.merge(engine, follower, author).await,
        }
    }

    /// The name shown in logs and the load report.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Feedcore => "feedcore",
            Backend::Redis(_) => "redis",
        }
    }
}

/// The streams beside home: feedcore's in both backends (the Redis backend stores
/// every notice in the engine too, so the engine pages them). Each reads as a user:
/// the anonymous reader of an unauthenticated request is a user id no account has
/// ([`crate::api::App::anonymous`]), so nobody blocks or is muted by it.
pub mod streams {
    use feedcore::{Engine, Error, ListId, Page, TimelinePage, UserId};

    use crate::api::ApiError;

    /// The public timeline as `reader` sees it; `local`: only the notices written on
    /// this server (those without a uri).
    pub fn public(
        engine: &Engine,
        reader: u32,
        local: bool,
        page: Page,
    ) -> Result<TimelinePage, ApiError> {
        Ok(if local {
            engine.local_timeline(UserId(reader), page)?
        } else {
            engine.public_timeline(UserId(reader), page)?
        })
    }

    /// The public statuses carrying `tag` (a leading `#` dropped, case ignored). A
    /// tag nobody used, or one that is no tag (too long, with whitespace), has no
    /// statuses: an empty page, as Mastodon answers.
    pub fn tag(
        engine: &Engine,
        reader: u32,
        tag: &str,
        page: Page,
    ) -> Result<TimelinePage, ApiError> {
        match engine.tag_timeline(UserId(reader), tag, page) {
            Err(Error::UnknownTag { .. } | Error::InvalidName { .. }) => {
                Ok(TimelinePage::default())
            }
            r => Ok(r?),
        }
    }

    /// The statuses of the accounts in `owner`'s list `list`; 404 for a list that
    /// does not exist or is another account's.
    pub fn list(
        engine: &Engine,
        owner: u32,
        list: ListId,
        page: Page,
    ) -> Result<TimelinePage, ApiError> {
        Ok(engine.list_timeline(UserId(owner), list, page)?)
    }
}

/// Whether `reader` (none: anonymous) may see this notice by its scope and the
/// blocks: what `GET /api/v1/statuses/:id` checks (Mastodon answers 404 otherwise).
pub fn may_see(engine: &Engine, reader: Option<u32>, id: NoticeId) -> bool {
    let Some(n) = engine.notice(id) else {
        return false;
    };
    let author = n.author().0;
    let Some(reader) = reader else {
        return n.scope() == Scope::Public;
    };
    if reader == author {
        return true;
    }
    let g = engine.graph();
    if g.is_blocked(UserId(reader), UserId(author)) {
        return false;
    }
    let mentioned = || n.mentions().any(|m| m.0 == reader);
    match n.scope() {
        Scope::Public => true,
        Scope::Followers => g.is_following(UserId(reader), UserId(author)) || mentioned(),
        Scope::Addressees => mentioned(),
    }
}

/// Whether a home timeline shows this notice to `reader` now, by feedcore's home rules
/// (the README's "Home timelines: the rules"): the reader's own; else not blocked
/// either way, not muted, by an author followed now; a reply only if the reader also
/// follows the user replied to, is that user, or is mentioned; `Addressees` only if
/// mentioned. The Redis backend filters what its lists hold by it at read time, as
/// feedcore does; this server posts no repeats, so feedcore's repeat rule never applies.
pub fn home_shows(engine: &Engine, reader: u32, id: NoticeId) -> bool {
    let Some(n) = engine.notice(id) else {
        return false;
    };
    let author = n.author().0;
    if author == reader {
        return true;
    }
    let g = engine.graph();
    let (r, a) = (UserId(reader), UserId(author));
    if g.is_blocked(r, a) || g.is_muted(r, a) || !g.is_following(r, a) {
        return false;
    }
    let mentioned = || n.mentions().any(|m| m.0 == reader);
    if n.scope() == Scope::Addressees && !mentioned() {
        return false;
    }
    if let Some(to) = n.reply_to_author()
        && to.0 != reader
        && !g.is_following(r, to)
        && !mentioned()
    {
        return false;
    }
    true
}
