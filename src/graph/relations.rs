//! The relations beyond follows: group memberships, list members and tag follows, each
//! a relation store with the follow graph's machinery (CSR snapshot, overlay, op log,
//! compaction) in a directory of its own under the graph's, plus the registry of the
//! groups, lists and tags they name.
//!
//! ```text
//! DIR/graph/registry.log   groups, lists, tags (see registry.rs)
//! DIR/graph/groups/        edges user -> group   (a user's groups; a group's members, by partition)
//! DIR/graph/lists/         edges list -> user    (a list's members; the lists naming a user)
//! DIR/graph/tags/          edges user -> tag     (a user's followed tags; a tag's followers, by partition)
//! ```

use std::path::Path;

use super::follow_graph::FollowGraph;
use super::registry::{Registry, RegistryCheck};
use super::{GraphCheckReport, GraphConfig};
use crate::error::Result;

/// Subdirectories of the graph directory, one per relation store.
pub(crate) const GROUPS_DIR: &str = "groups";
pub(crate) const LISTS_DIR: &str = "lists";
pub(crate) const TAGS_DIR: &str = "tags";

/// The registry and the three relation stores of a store directory.
pub(crate) struct Relations {
    pub(crate) registry: Registry,
    /// user -> group.
    pub(crate) members: FollowGraph,
    /// list -> user.
    pub(crate) lists: FollowGraph,
    /// user -> tag.
    pub(crate) tags: FollowGraph,
}

impl Relations {
    /// Opens (or creates) them in the graph directory `dir`. Ids of groups, lists and
    /// tags stay below `config.users_max`, like user ids, so one id space sizes each
    /// store's overlay.
    pub(crate) fn open(dir: &Path, config: &GraphConfig, remote_max: u32) -> Result<Relations> {
        let registry = Registry::open(dir, config.users_max, remote_max)?;
        let open = |name: &str| FollowGraph::open_relation(&dir.join(name), config.clone());
        Ok(Relations {
            registry,
            members: open(GROUPS_DIR)?,
            lists: open(LISTS_DIR)?,
            tags: open(TAGS_DIR)?,
        })
    }

    /// Makes every change so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        self.registry.sync()?;
        self.members.sync()?;
        self.lists.sync()?;
        self.tags.sync()
    }
}

/// What [`FollowGraph::check`] reports of the relations beside the follow graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelationsCheck {
    /// Groups registered.
    pub groups: u32,
    /// Lists registered.
    pub lists: u32,
    /// Tags registered (seen in a notice or followed).
    pub tags: u32,
    /// Group memberships (user, group).
    pub memberships: u64,
    /// List members (list, user).
    pub list_members: u64,
    /// Tag follows (user, tag).
    pub tag_follows: u64,
    /// Remote servers registered.
    pub remote_servers: u32,
    /// Remote accounts registered.
    pub remote_accounts: u32,
}

/// Checks the registry and the relation stores of the graph directory `dir` (those
/// present), adding their problems to `report`.
pub(crate) fn check(dir: &Path, report: &mut GraphCheckReport) -> Result<()> {
    let registry = dir.join(super::registry::FILE_NAME);
    let mut out = RelationsCheck::default();
    let mut any = false;
    if registry.exists() {
        any = true;
        let RegistryCheck {
            groups,
            lists,
            tags,
            servers,
            accounts,
            problems,
        } = Registry::check(dir)?;
        (out.groups, out.lists, out.tags) = (groups, lists, tags);
        (out.remote_servers, out.remote_accounts) = (servers, accounts);
        report.problems.extend(problems);
    }
    for (name, count, from_limit, to_limit) in [
        (GROUPS_DIR, &mut out.memberships, None, Some(out.groups)),
        (LISTS_DIR, &mut out.list_members, Some(out.lists), None),
        (TAGS_DIR, &mut out.tag_follows, None, Some(out.tags)),
    ] {
        let sub = dir.join(name);
        if !sub.is_dir() {
            continue;
        }
        any = true;
        let r = FollowGraph::check_dir(&sub, from_limit, to_limit)?;
        *count = r.stats.follows;
        report.problems.extend(r.problems);
    }
    if any {
        report.relations = Some(out);
    }
    Ok(())
}
