//! Pages of the streams beyond home: a group's, a tag's, the public and local
//! timelines, an author's own notices as another user sees them, a list's; and the
//! members of a group. Each pages its whole history from its list (or, for a list, a
//! merge of its members' lists), under the stream rules.

use std::cell::OnceCell;

use super::paging::finish;
use super::pull_merge::PullMerge;
use crate::engine::facade::{LOCAL, PUBLIC, Shared};
use crate::engine::late::Late;
use crate::ids::{NoticeId, UserId};
use crate::notice::{NoticeRef, Scope};
use crate::timeline::{Page, TimelinePage};

/// What one home read learns once about its reader and uses for every candidate:
/// the names of the tags the reader follows (loaded at the first candidate that needs
/// them; a follow during the read takes effect at the next).
#[derive(Default)]
pub(super) struct Reach<'s> {
    followed_tags: OnceCell<Vec<&'s str>>,
}

impl Shared {
    /// The stream rules: whether `reader` sees `n` in a group's, a tag's, the public
    /// or an author's stream. Not for deleted notices (the caller could not read them)
    /// nor repeats of deleted ones; own notices always; otherwise no block either way,
    /// no mute of the author; scope `Followers` only for a follower of the author,
    /// `Addressees` only for a mentioned user; a repeat of a notice by someone the
    /// reader mutes or is blocked with is hidden.
    pub(super) fn visible_in_stream(&self, reader: u32, n: &NoticeRef<'_>) -> bool {
        if let Some(o) = n.repeat_of()
            && self.log.get(o).is_none()
        {
            return false;
        }
        let (r, a) = (UserId(reader), n.author());
        if a == r {
            return true;
        }
        if self.graph.is_blocked(r, a) || self.graph.is_muted(r, a) {
            return false;
        }
        let scope_ok = match n.scope() {
            Scope::Public => true,
            Scope::Followers => self.graph.is_following(r, a),
            Scope::Addressees => n.mentions().any(|m| m == r),
        };
        if !scope_ok {
            return false;
        }
        if let Some(x) = n.repeat_of_author()
            && x != r
            && (self.graph.is_muted(r, x) || self.graph.is_blocked(r, x))
        {
            return false;
        }
        true
    }

    /// Whether `reader` has `n` in the home timeline by a stream: a member of one of
    /// its groups, or a follower of one of its tags (the rest of the home rules apply
    /// on top, see `visible_home`).
    pub(super) fn reaches_by_stream<'s>(
        &'s self,
        reader: u32,
        n: &NoticeRef<'_>,
        reach: &Reach<'s>,
    ) -> bool {
        let r = UserId(reader);
        let members = &self.relations.members;
        if n.groups().any(|g| members.is_following(r, UserId(g.0))) {
            return true;
        }
        if n.tags().len() == 0 {
            return false;
        }
        // The reader's followed tags (a few) by name, from the registry's lock-free
        // table (no lock on the read path), once per read.
        let followed = reach.followed_tags.get_or_init(|| {
            let registry = &self.relations.registry;
            self.relations
                .tags
                .following(r)
                .filter_map(|t| registry.tag(t.0))
                .collect()
        });
        !followed.is_empty() && n.tags().any(|tag| followed.contains(&tag))
    }

    /// A page of group `group`'s stream as `reader` sees it.
    pub(crate) fn group_page(
        &self,
        reader: u32,
        group: u32,
        page: &Page,
        limit: usize,
    ) -> TimelinePage {
        self.ordered_list_page(&self.by_group, Late::Group, group, page, limit, |n| {
            self.visible_in_stream(reader, n)
        })
    }

    /// A page of tag `tag`'s stream as `reader` sees it.
    pub(crate) fn tag_page(
        &self,
        reader: u32,
        tag: u32,
        page: &Page,
        limit: usize,
    ) -> TimelinePage {
        self.ordered_list_page(&self.by_tag, Late::Tag, tag, page, limit, |n| {
            self.visible_in_stream(reader, n)
        })
    }

    /// A page of the public timeline (`local`: only the notices without a uri).
    pub(crate) fn public_page(
        &self,
        reader: u32,
        local: bool,
        page: &Page,
        limit: usize,
    ) -> TimelinePage {
        let list = if local { LOCAL } else { PUBLIC };
        self.ordered_list_page(&self.public, Late::Public, list, page, limit, |n| {
            self.visible_in_stream(reader, n)
        })
    }

    /// A page of `author`'s own notices as `reader` sees them; without replies unless
    /// `replies`.
    pub(crate) fn author_page(
        &self,
        reader: u32,
        author: u32,
        replies: bool,
        page: &Page,
        limit: usize,
    ) -> TimelinePage {
        self.ordered_list_page(&self.by_author, Late::Author, author, page, limit, |n| {
            (replies || n.reply_to().is_none()) && self.visible_in_stream(reader, n)
        })
    }

    /// A page of list `list` (owned by `owner`): the notices of its members now, under
    /// the stream rules for the owner and the reply rule of home, where a member of
    /// the list counts as followed.
    pub(crate) fn list_timeline_page(
        &self,
        owner: u32,
        list: u32,
        page: &Page,
        limit: usize,
    ) -> TimelinePage {
        let lists = &self.relations.lists;
        let o = UserId(owner);
        let keep = |n: &NoticeRef<'_>| {
            if !self.visible_in_stream(owner, n) {
                return false;
            }
            let mentioned = n.mentions().any(|m| m == o);
            n.reply_to_author().is_none_or(|x| {
                x == o
                    || mentioned
                    || self.graph.is_following(o, x)
                    || lists.is_following(UserId(list), x)
            })
        };
        let in_order = |page: &Page| {
            let members: Vec<(u32, Option<u64>)> = lists
                .following(UserId(list))
                .map(|m| (m.0, page.max_id.map(|b| b.0)))
                .collect();
            let mut merge = PullMerge::new(self, members, 0).wanting(limit + limit / 4 + 1);
            let mut ids = Vec::with_capacity(limit);
            for (id, _) in merge.by_ref() {
                if page.since_id.is_some_and(|s| id <= s.0) {
                    break;
                }
                if self.log.get(NoticeId(id)).is_some_and(|n| keep(&n)) {
                    ids.push(NoticeId(id));
                    if ids.len() == limit {
                        break;
                    }
                }
            }
            self.add_read_cost(merge.cost());
            finish(ids, page, limit)
        };
        self.ordered_page(
            page,
            limit,
            in_order,
            || {
                lists
                    .following(UserId(list))
                    .filter_map(|m| self.late.get(Late::Author, m.0))
                    .collect()
            },
            |id| self.log.get(NoticeId(id)).is_some_and(|n| keep(&n)),
        )
    }

    /// A page of group `group`'s members, highest user id first; the page's ids are
    /// user ids (`since_id` and `max_id` exclusive, as for notices).
    pub(crate) fn members_page(
        &self,
        group: u32,
        page: &Page,
        limit: usize,
    ) -> (Vec<UserId>, Option<Page>) {
        let below = page.max_id.map_or(u64::MAX, |m| m.0);
        let above = page.since_id.map(|s| s.0);
        let mut members: Vec<u32> = self
            .relations
            .members
            .followers(UserId(group))
            .map(|u| u.0)
            .filter(|&u| u64::from(u) < below && above.is_none_or(|a| u64::from(u) > a))
            .collect();
        members.sort_unstable_by(|a, b| b.cmp(a));
        members.truncate(limit);
        let next = (members.len() == limit).then(|| Page {
            since_id: page.since_id,
            max_id: members.last().map(|&u| NoticeId(u64::from(u))),
            limit,
        });
        (members.into_iter().map(UserId).collect(), next)
    }
}
