//! The visibility rules of a home timeline, applied at read time: follows, group
//! memberships and tag follows, blocks, mutes, scope, the reply rule, and the repeat
//! fall-off.

use super::pull_merge::PullMerge;
use super::streams::Reach;
use crate::engine::facade::Shared;
use crate::ids::{NoticeId, UserId};
use crate::notice::Scope;

/// A repeat is hidden when its original, or another repeat of it, is among this many
/// entries before it (Mastodon's reblog fall-off).
pub(crate) const REPEAT_WINDOW: usize = 40;

impl Shared {
    /// Whether `reader` sees notice `id` in the home timeline, by the rules; when it
    /// does, the id of the notice it repeats (for the fall-off rule).
    pub(super) fn visible_home<'s>(
        &'s self,
        reader: u32,
        id: u64,
        reach: &Reach<'s>,
    ) -> Option<Option<u64>> {
        let n = self.log.get(NoticeId(id))?;
        let repeat_of = n.repeat_of().map(|o| o.0);
        // A repeat of a deleted notice goes with it.
        if let Some(o) = repeat_of
            && self.log.get(NoticeId(o)).is_none()
        {
            return None;
        }
        let author = n.author().0;
        if author == reader {
            return Some(repeat_of);
        }
        let (r, a) = (UserId(reader), UserId(author));
        if self.graph.is_muted(r, a) || self.graph.is_blocked(r, a) {
            return None;
        }
        let follows = self.graph.is_following(r, a);
        if !follows && !self.reaches_by_stream(reader, &n, reach) {
            return None;
        }
        let mentioned = n.mentions().any(|m| m.0 == reader);
        if n.scope() == Scope::Addressees && !mentioned {
            return None;
        }
        // Followers-only reaches the author's followers, whatever groups or tags it
        // names.
        if n.scope() == Scope::Followers && !follows {
            return None;
        }
        if let Some(x) = n.reply_to_author()
            && !(x == r || mentioned || self.graph.is_following(r, x))
        {
            return None;
        }
        if let Some(x) = n.repeat_of_author()
            && x != r
            && (self.graph.is_muted(r, x) || self.graph.is_blocked(r, x))
        {
            return None;
        }
        Some(repeat_of)
    }

    /// The fall-off rule against the complete candidate sequence below `id` (for
    /// strategies whose stored timeline is a sample).
    pub(super) fn falls_off_in_full(&self, user: u32, id: u64, original: u64) -> bool {
        let mut merge = PullMerge::everything(self, user, Some(id));
        let reach = Reach::default();
        let hidden = merge
            .by_ref()
            .filter_map(|(i, _)| self.visible_home(user, i, &reach).map(|r| (i, r)))
            .take(REPEAT_WINDOW)
            .any(|(i, r)| i == original || r == Some(original));
        self.add_read_cost(merge.cost());
        hidden
    }
}
