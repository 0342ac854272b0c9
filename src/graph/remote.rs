//! Federation's part of the registry: remote servers (kind 4: the host, unique) and
//! remote accounts (kind 5: the actor uri, unique, and the id of its server in
//! `owner`). Ids are dense from 0 per kind; the engine maps account `k` to the user id
//! `users_max + k` (see `docs/design.md`, "Federation").

use std::collections::HashMap;

use parking_lot::RwLock;

use super::registry::{Kind, Registry};
use crate::error::{Error, Result};

/// At most this many bytes in a server's host (with its `:port`).
pub(crate) const HOST_BYTES_MAX: usize = 253;

/// Remote servers and accounts, installed from the registry's records.
#[derive(Default)]
pub(crate) struct Remote {
    servers: boxcar::Vec<Box<str>>,
    server_names: RwLock<HashMap<Box<str>, u32>>,
    /// Per account: its server.
    account_server: boxcar::Vec<u32>,
    account_uris: RwLock<HashMap<Box<str>, u32>>,
    /// Per server: its accounts, in the order of registration (ascending).
    server_accounts: RwLock<Vec<Vec<u32>>>,
}

impl Remote {
    pub(super) fn install_server(&self, id: u32, host: Box<str>) {
        let at = self.servers.push(host.clone());
        debug_assert_eq!(at, id as usize, "ids are dense, pushed in order");
        self.server_names.write().insert(host, id);
        self.server_accounts.write().push(Vec::new());
    }

    pub(super) fn install_account(&self, id: u32, server: u32, uri: Box<str>) {
        let at = self.account_server.push(server);
        debug_assert_eq!(at, id as usize, "ids are dense, pushed in order");
        self.account_uris.write().insert(uri, id);
        if let Some(list) = self.server_accounts.write().get_mut(server as usize) {
            list.push(id);
        }
    }

    pub(super) fn servers(&self) -> usize {
        self.servers.count()
    }

    pub(super) fn accounts(&self) -> usize {
        self.account_server.count()
    }
}

impl Registry {
    /// The id of the server `host` (checked and normalised by [`host`]), registered
    /// and synced if new.
    pub(crate) fn server_or_register(&self, host: &str) -> Result<u32> {
        if let Some(id) = self.server_id(host) {
            return Ok(id);
        }
        match self.register(Kind::Server, 0, host, true, || self.server_id(host))? {
            Ok(id) | Err(id) => Ok(id),
        }
    }

    /// Registers the account `uri` on `server` (synced), or returns its id when it is
    /// registered on that server already; registered on another server, it is
    /// [`Error::RemoteConflict`].
    pub(crate) fn account_or_register(&self, server: u32, uri: &str) -> Result<u32> {
        let existing = || self.remote.account_uris.read().get(uri).copied();
        let id = match existing() {
            Some(id) => id,
            None => match self.register(Kind::Account, server, uri, true, existing)? {
                Ok(id) => return Ok(id),
                Err(id) => id,
            },
        };
        let was = self.account_server(id).expect("a registered account");
        if was != server {
            return Err(Error::RemoteConflict {
                uri: uri.to_owned(),
                registered: self.server(was).unwrap_or_default().to_owned(),
            });
        }
        Ok(id)
    }

    /// The id of server `host` (normalised).
    pub(crate) fn server_id(&self, host: &str) -> Option<u32> {
        self.remote.server_names.read().get(host).copied()
    }

    /// The host of server `id`.
    pub(crate) fn server(&self, id: u32) -> Option<&str> {
        self.remote.servers.get(id as usize).map(|h| &**h)
    }

    /// The server of account `id`.
    pub(crate) fn account_server(&self, id: u32) -> Option<u32> {
        self.remote.account_server.get(id as usize).copied()
    }

    /// Servers registered.
    pub(crate) fn servers(&self) -> u32 {
        self.remote.servers() as u32
    }

    /// Accounts registered.
    pub(crate) fn accounts(&self) -> u32 {
        self.remote.accounts() as u32
    }

    /// Calls `f` with the accounts of `server` (ascending ids).
    pub(crate) fn with_server_accounts<R>(&self, server: u32, f: impl FnOnce(&[u32]) -> R) -> R {
        let lists = self.remote.server_accounts.read();
        f(lists.get(server as usize).map_or(&[][..], Vec::as_slice))
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidRemote { reason }
}

/// Checks a server's host (`name[:port]`) and returns it in lower case: 1 to
/// [`HOST_BYTES_MAX`] bytes of dot-separated labels of ASCII letters, digits and `-`
/// (1 to 63 bytes each, no `-` at either end), optionally `:port` (1 to 65535).
pub(crate) fn host(server: &str) -> Result<String> {
    if server.is_empty() || server.len() > HOST_BYTES_MAX {
        return Err(invalid(format!(
            "server name of {} bytes; a host is 1 to {HOST_BYTES_MAX} bytes",
            server.len()
        )));
    }
    let lower = server.to_ascii_lowercase();
    let (name, port) = match lower.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (lower.as_str(), None),
    };
    if let Some(port) = port
        && !(port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65535)))
    {
        return Err(invalid(format!(
            "server {server:?}: port {port:?} is not 1 to 65535"
        )));
    }
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(invalid(format!(
                "server {server:?} is not a host name (dot-separated labels of letters, digits and -)"
            )));
        }
    }
    Ok(lower)
}

/// Checks a remote uri (an actor's or a notice's): `http://` or `https://`, a host as
/// [`host`] takes it, then an optional path; at most [`crate::URI_BYTES_MAX`] bytes,
/// no whitespace or control characters.
pub(crate) fn uri(uri: &str) -> Result<()> {
    if uri.is_empty() || uri.len() > crate::URI_BYTES_MAX {
        return Err(invalid(format!(
            "uri of {} bytes; a uri is 1 to {} bytes",
            uri.len(),
            crate::URI_BYTES_MAX
        )));
    }
    if let Some(c) = uri.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(format!("uri {uri:?} holds {c:?}")));
    }
    let Some(rest) = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
    else {
        return Err(invalid(format!("uri {uri:?} is not an http(s) uri")));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    host(authority).map_err(|_| invalid(format!("uri {uri:?} names no plausible host")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_uris_are_checked() {
        assert_eq!(host("Social.Example:8443").unwrap(), "social.example:8443");
        assert_eq!(host("localhost").unwrap(), "localhost");
        let long = "a".repeat(254);
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a\nb",
            "a:0",
            "a:70000",
            "a:",
            "ex_ample.org",
            "ü.example",
            long.as_str(),
        ] {
            assert!(
                matches!(host(bad), Err(Error::InvalidRemote { .. })),
                "{bad:?}"
            );
        }
        uri("https://social.example/users/ann").unwrap();
        uri("http://social.example:8080").unwrap();
        let long = format!("https://a.example/{}", "x".repeat(1100));
        for bad in [
            "",
            "social.example/users/ann",
            "ftp://social.example/a",
            "https://",
            "https:///a",
            "https://bad host/a",
            "https://a.example/\u{7}",
            long.as_str(),
        ] {
            assert!(
                matches!(uri(bad), Err(Error::InvalidRemote { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn servers_and_accounts_reopen_and_conflict() {
        let dir = tempfile::tempdir().unwrap();
        {
            let reg = Registry::open(dir.path(), 4, 4).unwrap();
            let a = reg.server_or_register("a.example").unwrap();
            let b = reg.server_or_register("b.example").unwrap();
            assert_eq!((a, b), (0, 1));
            assert_eq!(reg.server_or_register("a.example").unwrap(), 0);
            assert_eq!(
                reg.account_or_register(a, "https://a.example/u/1").unwrap(),
                0
            );
            assert_eq!(
                reg.account_or_register(a, "https://a.example/u/1").unwrap(),
                0
            );
            assert!(matches!(
                reg.account_or_register(b, "https://a.example/u/1"),
                Err(Error::RemoteConflict { .. })
            ));
            assert_eq!(
                reg.account_or_register(b, "https://b.example/u/2").unwrap(),
                1
            );
            reg.create_group(crate::UserId(0), "g").unwrap();
        }
        let reg = Registry::open(dir.path(), 4, 4).unwrap();
        assert_eq!((reg.servers(), reg.accounts(), reg.groups()), (2, 2, 1));
        assert_eq!(reg.server(1), Some("b.example"));
        assert_eq!(reg.account_server(1), Some(1));
        reg.with_server_accounts(0, |a| assert_eq!(a, [0]));
        assert_eq!(reg.server_id("b.example"), Some(1));
    }
}
