//! Request bodies (JSON or form-encoded, as Mastodon accepts both) and what a status's
//! text says: its `@mentions` and `#tags`.

use std::collections::HashMap;

use feedcore::{MENTIONS_MAX, Scope, TAG_BYTES_MAX, TAGS_MAX, UserId};

use crate::accounts::Accounts;

/// The longest status, in characters (Mastodon's default).
pub const STATUS_CHARS_MAX: usize = 500;

/// The parameters of a request body, each as text.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses a body by its `Content-Type`: JSON (an object), or form-encoded (also
    /// when there is no body or no type). Errors name what is wrong.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Params, String> {
        let kind = content_type
            .and_then(|t| t.split(';').next())
            .map(|t| t.trim().to_ascii_lowercase());
        match kind.as_deref() {
            Some("application/json") => {
                let value: serde_json::Value = serde_json::from_slice(body)
                    .map_err(|e| format!("the request body is not valid JSON: {e}"))?;
                let serde_json::Value::Object(map) = value else {
                    return Err("the request body must be a JSON object".into());
                };
                let mut params = HashMap::new();
                for (k, v) in map {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        serde_json::Value::Null => continue,
                        _ => continue, // arrays and objects (media_ids, poll): unused here
                    };
                    params.insert(k, text);
                }
                Ok(Params(params))
            }
            None | Some("application/x-www-form-urlencoded") => {
                let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                    .map_err(|e| format!("the request body is not form-encoded: {e}"))?;
                Ok(Params(pairs.into_iter().collect()))
            }
            Some(other) => Err(format!(
                "unsupported Content-Type {other}: send application/json or application/x-www-form-urlencoded"
            )),
        }
    }

    /// The parameter `key`, when given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// Mastodon's visibility onto feedcore's scope: `public` and `unlisted` are
/// `Scope::Public` (feedcore has no unlisted scope), `private` is `Scope::Followers`,
/// `direct` is `Scope::Addressees`.
pub fn scope(visibility: Option<&str>) -> Result<Scope, String> {
    match visibility {
        None | Some("public") | Some("unlisted") => Ok(Scope::Public),
        Some("private") => Ok(Scope::Followers),
        Some("direct") => Ok(Scope::Addressees),
        Some(other) => Err(format!(
            "Validation failed: Visibility {other:?} is not one of public, unlisted, private, direct"
        )),
    }
}

/// The local users a text mentions (`@name`, known names only; `@name@domain` is
/// remote and skipped) and the tags it carries (`#tag`), each at most as many as a
/// notice holds.
pub fn mentions_and_tags(text: &str, accounts: &Accounts) -> (Vec<UserId>, Vec<String>) {
    let mut mentions = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let starts = i == 0 || !word(chars[i - 1].1) && chars[i - 1].1 != '@';
        if (c == '@' || c == '#') && starts {
            let mut j = i + 1;
            while j < chars.len() && word(chars[j].1) {
                j += 1;
            }
            let end = chars.get(j).map_or(text.len(), |&(e, _)| e);
            let name = &text[at + 1..end];
            let remote = chars.get(j).is_some_and(|&(_, c)| c == '@');
            if !name.is_empty() {
                if c == '@' && !remote {
                    if let Some(a) = accounts.by_name(name)
                        && !mentions.contains(&UserId(a.id))
                        && mentions.len() < MENTIONS_MAX
                    {
                        mentions.push(UserId(a.id));
                    }
                } else if c == '#'
                    && name.len() <= TAG_BYTES_MAX
                    && tags.len() < TAGS_MAX
                    && !tags.iter().any(|t| t.eq_ignore_ascii_case(name))
                {
                    tags.push(name.to_string());
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    (mentions, tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_as_json_or_form() {
        let p = Params::parse(
            Some("application/json"),
            br#"{"status":"hi","in_reply_to_id":7}"#,
        )
        .unwrap();
        assert_eq!(p.get("status"), Some("hi"));
        assert_eq!(p.get("in_reply_to_id"), Some("7"));
        let p = Params::parse(None, b"status=a+b%21&visibility=private").unwrap();
        assert_eq!(p.get("status"), Some("a b!"));
        assert!(Params::parse(Some("application/json"), b"{nope").is_err());
        assert!(Params::parse(Some("application/json"), b"[1]").is_err());
        assert!(Params::parse(Some("text/plain"), b"x").is_err());
    }

    #[test]
    fn mentions_and_tags_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::open(dir.path(), 10).unwrap();
        accounts.create(&["alice", "bob"], 1).unwrap();
        let (m, t) = mentions_and_tags(
            "hi @alice and @Bob@elsewhere.example, @carol #Rust #rust x#no #2024 mail@alice",
            &accounts,
        );
        assert_eq!(m, vec![UserId(0)]);
        assert_eq!(t, vec!["Rust".to_string(), "2024".to_string()]);
    }
}
