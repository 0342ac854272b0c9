//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use crate::ids::NoticeId;

/// Everything that can go wrong in feedcore.
///
/// Variants carry what a caller needs to act on the error: the file and byte offset of
/// damage, the reason a notice was refused, the id a duplicate collided with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The notice was refused before anything was written.
    #[error("invalid notice: {reason}")]
    InvalidNotice {
        /// Which rule the notice broke, in words.
        reason: String,
    },

    /// A notice with the same `uri` is already stored (remote notices are stored once).
    #[error("a notice with this uri is already stored as {existing}")]
    DuplicateUri {
        /// The id under which the uri is stored.
        existing: NoticeId,
    },

    /// No notice with this id exists, or it was deleted.
    #[error("no notice {id}")]
    UnknownNotice {
        /// The id that was asked for.
        id: NoticeId,
    },

    /// A user id at or past `users_max`.
    #[error("{user} is past users_max ({users_max})")]
    UnknownUser {
        /// The user named.
        user: crate::ids::UserId,
        /// The configured limit.
        users_max: u32,
    },

    /// A follow, block or mute that the rules refuse (oneself, across a block, past
    /// `following_max`).
    #[error("refused: {reason}")]
    InvalidRelation {
        /// Which rule, in words.
        reason: String,
    },

    /// A page request that cannot be served (`limit` 0, `since_id` not below `max_id`).
    #[error("invalid page: {reason}")]
    InvalidPage {
        /// What is wrong with it.
        reason: String,
    },

    /// Another handle (in this process or another one) owns the directory.
    #[error("{} is already open by another handle or process (lock file {})", dir.display(), lock_file.display())]
    Locked {
        /// The directory that is locked.
        dir: PathBuf,
        /// The lock file that is held.
        lock_file: PathBuf,
    },

    /// Damage that recovery must not paper over: the file and byte offset say where.
    #[error("corrupt data in {} at byte {offset}: {reason}", file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the first damaged record or header in that file.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },

    /// An earlier write or fsync failed; the log refuses writes until it is reopened,
    /// because after a failed fsync the kernel may have dropped the dirty pages.
    #[error("the log is poisoned by an earlier I/O failure ({cause}); reopen it")]
    Poisoned {
        /// The failure that poisoned the log.
        cause: String,
    },

    /// A configuration value is out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// Which value, and the range it must be in.
        reason: String,
    },

    /// No group with this id was created.
    #[error("no {group}")]
    UnknownGroup {
        /// The group named.
        group: crate::ids::GroupId,
    },

    /// No list with this id was created.
    #[error("no {list}")]
    UnknownList {
        /// The list named.
        list: crate::ids::ListId,
    },

    /// No notice ever carried this tag, and nobody follows it.
    #[error("no tag {tag:?}")]
    UnknownTag {
        /// The tag, normalised (lower-case, without `#`).
        tag: String,
    },

    /// The user is a member of the group already.
    #[error("{user} is a member of {group} already")]
    AlreadyMember {
        /// The user.
        user: crate::ids::UserId,
        /// The group.
        group: crate::ids::GroupId,
    },

    /// The user is not a member of the group.
    #[error("{user} is not a member of {group}")]
    NotMember {
        /// The user.
        user: crate::ids::UserId,
        /// The group.
        group: crate::ids::GroupId,
    },

    /// The list belongs to another user.
    #[error("{list} belongs to {owner}, not to {user}")]
    NotOwner {
        /// The list.
        list: crate::ids::ListId,
        /// Its owner.
        owner: crate::ids::UserId,
        /// Who asked.
        user: crate::ids::UserId,
    },

    /// A group, list or tag name that is empty, too long, not UTF-8 or holds
    /// characters it may not.
    #[error("invalid name: {reason}")]
    InvalidName {
        /// What is wrong with it.
        reason: String,
    },

    /// The store holds as many groups, lists or tags as it can (`users_max` of each).
    #[error("no room for another {what}: {max} is the most")]
    TooMany {
        /// `"group"`, `"list"` or `"tag"`.
        what: &'static str,
        /// The limit.
        max: u32,
    },

    /// A remote server name or a remote uri (an actor's, a notice's) that is empty,
    /// too long, holds control characters or whitespace, or is not a plausible host
    /// or `http(s)` uri.
    #[error("invalid remote name: {reason}")]
    InvalidRemote {
        /// What is wrong with it.
        reason: String,
    },

    /// A remote account registered again with another server than its first
    /// registration named.
    #[error("remote account {uri} is registered on {registered} already")]
    RemoteConflict {
        /// The actor uri.
        uri: String,
        /// The server it is registered on.
        registered: String,
    },

    /// A remote notice whose uri is stored already with another body (a repeat with
    /// the same body returns the stored id instead).
    #[error("a remote notice with this uri is stored as {existing} with another body")]
    UriConflict {
        /// The id under which the uri is stored.
        existing: NoticeId,
    },

    /// An ack or a failure of a delivery that is not in flight under this token:
    /// never handed out, acked or failed already, or handed out again since.
    #[error("no delivery of {notice} to {server} is in flight under token {token}")]
    UnknownDelivery {
        /// The delivery's notice.
        notice: NoticeId,
        /// The delivery's server.
        server: String,
        /// The delivery's token.
        token: u64,
    },

    /// A remote server never registered.
    #[error("no remote server {server:?}")]
    UnknownServer {
        /// The name given.
        server: String,
    },

    /// An operating-system error, with what feedcore was doing when it happened.
    #[error("{context}: {source}")]
    Io {
        /// What feedcore was doing, including the path involved.
        context: String,
        /// The underlying error (`StorageFull` when the disk is full).
        #[source]
        source: io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidNotice {
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Adds the path and the operation to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
