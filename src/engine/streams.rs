//! The engine's streams beyond home: groups (`!group`), followed tags (`#tag`), lists,
//! the public and local timelines and an author's own notices; the relations behind
//! them are durable in the graph directory (see `graph/relations.rs`).

use std::path::Path;

use super::config::Config;
use super::facade::Engine;
use super::read::{Source, check_page};
use crate::error::{Error, IoContext, Result};
use crate::graph::FollowGraph;
use crate::graph::registry::{self, Registry};
use crate::graph::relations::{GROUPS_DIR, Relations};
use crate::ids::{GroupId, ListId, UserId};
use crate::notice::NewNotice;
use crate::timeline::{Page, TimelinePage};

/// Which notices of an author [`Engine::user_timeline`] pages: all of them (what a
/// plain [`UserId`] means), or all but replies.
///
/// ```
/// use feedcore::{UserId, UserStream};
/// assert!(UserStream::from(UserId(3)).replies);
/// assert!(!UserStream::without_replies(UserId(3)).replies);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserStream {
    /// Whose notices.
    pub author: UserId,
    /// Whether replies are in it.
    pub replies: bool,
}

impl UserStream {
    /// Every notice of `author`, replies too.
    pub fn with_replies(author: UserId) -> UserStream {
        UserStream {
            author,
            replies: true,
        }
    }

    /// The notices of `author` that answer nothing (StatusNet's and Mastodon's
    /// profile without replies).
    pub fn without_replies(author: UserId) -> UserStream {
        UserStream {
            author,
            replies: false,
        }
    }
}

impl From<UserId> for UserStream {
    fn from(author: UserId) -> UserStream {
        UserStream::with_replies(author)
    }
}

/// A page of a group's members, highest user id first (see [`Engine::group_members`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberPage {
    /// The members, highest id first.
    pub members: Vec<UserId>,
    /// The next page, when this one is full; its `max_id` is a user id.
    pub next: Option<Page>,
}

/// Counts of the groups, lists and tags and their relations, and the memory of the
/// membership store (see [`Engine::streams_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsStats {
    /// Groups created.
    pub groups: u32,
    /// Lists created.
    pub lists: u32,
    /// Tags seen in notices or followed.
    pub tags: u32,
    /// Group memberships.
    pub memberships: u64,
    /// List members.
    pub list_members: u64,
    /// Tag follows.
    pub tag_follows: u64,
    /// Bytes of the membership store: its mapped snapshot plus its overlay.
    pub membership_bytes: u64,
}

impl Engine {
    fn group_id(&self, group: GroupId) -> Result<u32> {
        if group.0 >= self.shared.relations.registry.groups() {
            return Err(Error::UnknownGroup { group });
        }
        Ok(group.0)
    }

    fn list_of(&self, list: ListId) -> Result<&registry::Entry> {
        self.shared
            .relations
            .registry
            .list(list.0)
            .ok_or(Error::UnknownList { list })
    }

    fn tag_id(&self, tag: &[u8]) -> Result<u32> {
        let name = registry::tag_name(tag)?;
        self.shared
            .relations
            .registry
            .tag_id(&name)
            .ok_or(Error::UnknownTag { tag: name })
    }

    /// The groups a notice goes to: `group`, `groups` and the `!name`s of its body
    /// that name a group, written back into `groups` (so the log stores them).
    pub(super) fn notice_groups(&self, notice: &mut NewNotice) -> Result<Vec<u32>> {
        for &g in notice.group.iter().chain(&notice.groups) {
            self.group_id(g)?;
        }
        let registry = &self.shared.relations.registry;
        if notice.body.contains('!') && registry.groups() > 0 {
            for name in bang_names(&notice.body) {
                if let Some(g) = registry.group_id(&name)
                    && notice.group != Some(GroupId(g))
                    && !notice.groups.contains(&GroupId(g))
                {
                    notice.groups.push(GroupId(g));
                }
            }
        }
        let mut groups: Vec<u32> = Vec::new();
        for g in notice.group.iter().chain(&notice.groups) {
            if !groups.contains(&g.0) {
                groups.push(g.0);
            }
        }
        Ok(groups)
    }

    /// Registers the tags of a notice about to be posted (not synced: the log holds
    /// them, and open registers again any a crash lost) and returns their ids. A
    /// notice the log would refuse registers nothing.
    pub(super) fn register_tags(&self, notice: &NewNotice) -> Result<Vec<u32>> {
        if notice.tags.is_empty() {
            return Ok(Vec::new());
        }
        let limits = crate::notice::Limits {
            body_bytes_max: self.shared.config.body_bytes_max,
        };
        let validated = crate::notice::validate(notice, limits)?;
        let registry = &self.shared.relations.registry;
        validated
            .stored
            .tags
            .iter()
            .map(|t| registry.tag_or_register(t, false))
            .collect()
    }

    /// Creates a group owned by `owner`, named `name`: 1 to
    /// [`NAME_BYTES_MAX`](crate::NAME_BYTES_MAX) bytes of letters, digits and `_`,
    /// stored lower-case, unique (a body names it as `!name`). Durable when it returns.
    /// The owner is not made a member.
    ///
    /// ```
    /// use feedcore::{Config, Engine, NewNotice, Page, UserId};
    /// let dir = tempfile::tempdir()?;
    /// let engine = Engine::open(dir.path(), Config { users_max: 1000, ..Default::default() })?;
    /// let rust = engine.create_group(UserId(1), "rustaceans")?;
    /// engine.join_group(UserId(2), rust)?;
    /// engine.follow_tag(UserId(3), "#Rust")?;
    /// // Reaches user 2 (a member) and user 3 (follows the tag), who follow nobody.
    /// let id = engine.post(NewNotice {
    ///     author: UserId(1),
    ///     body: "hello !rustaceans #rust".into(),
    ///     tags: vec!["rust".into()],
    ///     ..Default::default()
    /// })?;
    /// engine.flush()?;
    /// assert_eq!(engine.home_timeline(UserId(2), Page::latest(20))?.ids, vec![id]);
    /// assert_eq!(engine.home_timeline(UserId(3), Page::latest(20))?.ids, vec![id]);
    /// assert_eq!(engine.group_timeline(UserId(9), rust, Page::latest(20))?.ids, vec![id]);
    /// assert_eq!(engine.tag_timeline(UserId(9), "RUST", Page::latest(20))?.ids, vec![id]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_group(&self, owner: UserId, name: impl AsRef<[u8]>) -> Result<GroupId> {
        self.user(owner)?;
        let name = registry::group_name(name.as_ref())?;
        let id = self.shared.relations.registry.create_group(owner, &name)?;
        Ok(GroupId(id))
    }

    /// The group named `name` (with or without the `!`, any case).
    pub fn group_by_name(&self, name: impl AsRef<[u8]>) -> Option<GroupId> {
        let name = registry::group_name(name.as_ref()).ok()?;
        self.shared.relations.registry.group_id(&name).map(GroupId)
    }

    /// The owner and name of `group`.
    pub fn group_info(&self, group: GroupId) -> Result<(UserId, String)> {
        let e = self
            .shared
            .relations
            .registry
            .group(self.group_id(group)?)
            .ok_or(Error::UnknownGroup { group })?;
        Ok((e.owner, e.name.to_string()))
    }

    /// `user` joins `group`: the group's notices reach the user's home timeline, its
    /// newest at once. [`Error::AlreadyMember`] when it is one.
    pub fn join_group(&self, user: UserId, group: GroupId) -> Result<()> {
        let u = self.user(user)?;
        let g = self.group_id(group)?;
        if !self.shared.relations.members.follow(user, UserId(g))? {
            return Err(Error::AlreadyMember { user, group });
        }
        self.shared.merge_stream(u, Source::Group, g);
        Ok(())
    }

    /// `user` leaves `group`: its notices leave the user's home timeline at once
    /// (unless they reach it another way). [`Error::NotMember`] when it is none.
    pub fn leave_group(&self, user: UserId, group: GroupId) -> Result<()> {
        self.user(user)?;
        let g = self.group_id(group)?;
        if !self.shared.relations.members.unfollow(user, UserId(g))? {
            return Err(Error::NotMember { user, group });
        }
        Ok(())
    }

    /// Whether `user` is a member of `group`.
    pub fn is_member(&self, user: UserId, group: GroupId) -> bool {
        self.shared
            .relations
            .members
            .is_following(user, UserId(group.0))
    }

    /// A page of `group`'s members, highest user id first; `page`'s `since_id` and
    /// `max_id` are user ids here.
    pub fn group_members(&self, group: GroupId, page: Page) -> Result<MemberPage> {
        let g = self.group_id(group)?;
        let limit = check_page(&page, self.shared.config.page_limit_max)?;
        let (members, next) = self.shared.members_page(g, &page, limit);
        Ok(MemberPage { members, next })
    }

    /// A page of `group`'s stream (every notice addressed to it) as `reader` sees it,
    /// newest first: deleted notices, notices by users the reader blocks, is blocked
    /// by or mutes, and notices whose scope leaves the reader out are not in it.
    pub fn group_timeline(
        &self,
        reader: UserId,
        group: GroupId,
        page: Page,
    ) -> Result<TimelinePage> {
        let r = self.user(reader)?;
        let g = self.group_id(group)?;
        let limit = self.shared.check_page(&page)?;
        Ok(self.shared.group_page(r, g, &page, limit))
    }

    /// `user` follows tag `tag` (`#` and case do not matter): notices carrying it reach
    /// the user's home timeline (once, if they reach it another way too), its newest
    /// at once. `Ok(false)` when the user followed it already. A tag no notice carried
    /// yet can be followed.
    pub fn follow_tag(&self, user: UserId, tag: impl AsRef<[u8]>) -> Result<bool> {
        let u = self.user(user)?;
        let name = registry::tag_name(tag.as_ref())?;
        // Durable before the follow that names it.
        let t = self
            .shared
            .relations
            .registry
            .tag_or_register(&name, true)?;
        let new = self.shared.relations.tags.follow(user, UserId(t))?;
        if new {
            self.shared.merge_stream(u, Source::Tag, t);
        }
        Ok(new)
    }

    /// `user` stops following tag `tag`; `Ok(false)` when it did not follow it.
    pub fn unfollow_tag(&self, user: UserId, tag: impl AsRef<[u8]>) -> Result<bool> {
        self.user(user)?;
        let t = self.tag_id(tag.as_ref())?;
        self.shared.relations.tags.unfollow(user, UserId(t))
    }

    /// Whether `user` follows tag `tag`.
    pub fn follows_tag(&self, user: UserId, tag: impl AsRef<[u8]>) -> bool {
        self.tag_id(tag.as_ref())
            .is_ok_and(|t| self.shared.relations.tags.is_following(user, UserId(t)))
    }

    /// A page of the notices carrying tag `tag` (normalised as notices store it:
    /// lower-case, without `#`) as `reader` sees them, newest first, under the rules
    /// of [`Engine::group_timeline`]. [`Error::UnknownTag`] for a tag no notice
    /// carried and nobody followed.
    pub fn tag_timeline(
        &self,
        reader: UserId,
        tag: impl AsRef<[u8]>,
        page: Page,
    ) -> Result<TimelinePage> {
        let r = self.user(reader)?;
        let t = self.tag_id(tag.as_ref())?;
        let limit = self.shared.check_page(&page)?;
        Ok(self.shared.tag_page(r, t, &page, limit))
    }

    /// Creates a list owned by `owner`, named `name` (1 to
    /// [`NAME_BYTES_MAX`](crate::NAME_BYTES_MAX) bytes of UTF-8 without control
    /// characters; names need not be unique). Durable when it returns.
    pub fn create_list(&self, owner: UserId, name: impl AsRef<[u8]>) -> Result<ListId> {
        self.user(owner)?;
        let name = registry::list_name(name.as_ref())?;
        let id = self.shared.relations.registry.create_list(owner, &name)?;
        Ok(ListId(id))
    }

    /// The owner and name of `list`.
    pub fn list_info(&self, list: ListId) -> Result<(UserId, String)> {
        let e = self.list_of(list)?;
        Ok((e.owner, e.name.to_string()))
    }

    /// Adds `member` to `list`; `Ok(false)` when it is in it already.
    pub fn list_add(&self, list: ListId, member: UserId) -> Result<bool> {
        self.list_of(list)?;
        self.user(member)?;
        self.shared.relations.lists.follow(UserId(list.0), member)
    }

    /// Removes `member` from `list`; `Ok(false)` when it was not in it.
    pub fn list_remove(&self, list: ListId, member: UserId) -> Result<bool> {
        self.list_of(list)?;
        self.user(member)?;
        self.shared.relations.lists.unfollow(UserId(list.0), member)
    }

    /// The members of `list`, ascending.
    pub fn list_members(&self, list: ListId) -> Result<Vec<UserId>> {
        self.list_of(list)?;
        Ok(self
            .shared
            .relations
            .lists
            .following(UserId(list.0))
            .collect())
    }

    /// A page of `list`: the notices of its members, newest first, under the rules of
    /// [`Engine::group_timeline`] for the owner, and the reply rule of home (a reply
    /// shows when the owner follows, is or is mentioned by the author answered, or
    /// that author is in the list). [`Error::NotOwner`] when `owner` does not own it.
    pub fn list_timeline(&self, owner: UserId, list: ListId, page: Page) -> Result<TimelinePage> {
        let o = self.user(owner)?;
        let entry = self.list_of(list)?;
        if entry.owner != owner {
            return Err(Error::NotOwner {
                list,
                owner: entry.owner,
                user: owner,
            });
        }
        let limit = self.shared.check_page(&page)?;
        Ok(self.shared.list_timeline_page(o, list.0, &page, limit))
    }

    /// A page of the public timeline: every notice of scope `Public`, local or remote,
    /// newest first, as `reader` sees it (no blocks either way, no mutes).
    pub fn public_timeline(&self, reader: UserId, page: Page) -> Result<TimelinePage> {
        let r = self.user(reader)?;
        let limit = self.shared.check_page(&page)?;
        Ok(self.shared.public_page(r, false, &page, limit))
    }

    /// The public timeline with `local_only`: the public notices written here (those
    /// without a uri).
    pub fn local_timeline(&self, reader: UserId, page: Page) -> Result<TimelinePage> {
        let r = self.user(reader)?;
        let limit = self.shared.check_page(&page)?;
        Ok(self.shared.public_page(r, true, &page, limit))
    }

    /// A page of an author's own notices (StatusNet's user stream) as `reader` sees
    /// them, newest first: all of them when `reader` is the author; otherwise under
    /// the rules of [`Engine::group_timeline`]. `author` is a [`UserId`] (replies
    /// included) or a [`UserStream`] (replies optional).
    pub fn user_timeline(
        &self,
        reader: UserId,
        author: impl Into<UserStream>,
        page: Page,
    ) -> Result<TimelinePage> {
        let stream = author.into();
        let r = self.user(reader)?;
        let a = self.user(stream.author)?;
        let limit = self.shared.check_page(&page)?;
        Ok(self.shared.author_page(r, a, stream.replies, &page, limit))
    }

    /// Counts of groups, lists, tags and their relations.
    pub fn streams_stats(&self) -> StreamsStats {
        let r = &self.shared.relations;
        let members = r.members.stats();
        StreamsStats {
            groups: r.registry.groups(),
            lists: r.registry.lists(),
            tags: r.registry.tags(),
            memberships: members.follows,
            list_members: r.lists.stats().follows,
            tag_follows: r.tags.stats().follows,
            membership_bytes: members.snapshot_bytes + members.overlay_bytes,
        }
    }

    /// Compacts the relation stores (memberships, lists, tag follows) into new
    /// snapshots, as [`FollowGraph::compact`] does for follows.
    pub fn compact_relations(&self) -> Result<()> {
        let r = &self.shared.relations;
        r.members.compact()?;
        r.lists.compact()?;
        r.tags.compact()
    }

    /// Creates groups and their memberships in the store `dir` straight from lists, as
    /// a snapshot (for simulations and imports), before the store is opened:
    /// `groups[i]` (owner, name) becomes `GroupId(i)`, and each `(user, group)` of
    /// `memberships` a membership (duplicates stored once). The store must hold no
    /// group yet. Names are checked as [`Engine::create_group`] does; a user or
    /// group out of range is an error.
    pub fn bulk_load_groups(
        dir: impl AsRef<Path>,
        config: &Config,
        groups: &[(UserId, &str)],
        memberships: impl IntoIterator<Item = (UserId, GroupId)>,
    ) -> Result<Vec<GroupId>> {
        config.validate()?;
        let graph_dir = dir.as_ref().join("graph");
        std::fs::create_dir_all(&graph_dir)
            .context(|| format!("creating {}", graph_dir.display()))?;
        let users = config.users_max;
        let registry = Registry::open(&graph_dir, users, config.remote_users_max)?;
        if registry.groups() > 0 || graph_dir.join(GROUPS_DIR).exists() {
            return Err(Error::InvalidConfig {
                reason: format!("{} holds groups already", graph_dir.display()),
            });
        }
        let mut names = Vec::with_capacity(groups.len());
        for &(owner, name) in groups {
            if owner.0 >= users {
                return Err(Error::UnknownUser {
                    user: owner,
                    users_max: users,
                });
            }
            let name = registry::group_name(name.as_bytes())?;
            if names.contains(&name) {
                return Err(Error::InvalidName {
                    reason: format!("group name {name:?} given twice"),
                });
            }
            names.push(name);
        }
        if groups.len() as u64 > u64::from(users) {
            return Err(Error::TooMany {
                what: "group",
                max: users,
            });
        }
        let count = groups.len() as u32;
        let mut edges = Vec::new();
        for (user, group) in memberships {
            if user.0 >= users {
                return Err(Error::UnknownUser {
                    user,
                    users_max: users,
                });
            }
            if group.0 >= count {
                return Err(Error::UnknownGroup { group });
            }
            edges.push((user, UserId(group.0)));
        }
        // The memberships first: a crash before the registry is written leaves a
        // store whose memberships name no group, which `bulk_load_groups` refuses to
        // load into again and `feedcore check` reports.
        drop(FollowGraph::bulk_load_relation(
            &graph_dir.join(GROUPS_DIR),
            config.graph_config(),
            edges,
        )?);
        for (&(owner, _), name) in groups.iter().zip(&names) {
            registry.create_group(owner, name)?;
        }
        registry.sync()?;
        Ok((0..count).map(GroupId).collect())
    }

    /// The relations, for the sim and benches.
    #[allow(dead_code)]
    pub(crate) fn relations(&self) -> &Relations {
        &self.shared.relations
    }
}

/// The names after each `!` that starts a word of `body` (lower-case), as group names
/// are stored.
fn bang_names(body: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut prev_space = true;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '!' && prev_space {
            let rest = &body[i + 1..];
            let end = rest
                .char_indices()
                .find(|&(_, c)| !registry::is_group_char(c))
                .map_or(rest.len(), |(j, _)| j);
            if end > 0 && end <= registry::NAME_BYTES_MAX {
                names.push(rest[..end].to_lowercase());
            }
        }
        prev_space = c.is_whitespace();
        let _ = chars.peek();
    }
    names
}

#[cfg(test)]
mod tests {
    use super::bang_names;

    #[test]
    fn bang_names_start_words() {
        assert_eq!(
            bang_names("hi !Rust and !go_lang, not a!b; !"),
            ["rust", "go_lang"]
        );
        assert!(bang_names("wow!").is_empty());
    }
}
