//! Request bodies (JSON or form-encoded, as Mastodon accepts both) and what a status's
//! text says: its `@mentions` and `#tags`.

use std::collections::HashMap;

use feedcore::{MENTIONS_MAX, Scope, TAG_BYTES_MAX, TAGS_MAX, UserId};

use crate::accounts::Accounts;

/// The longest status, in characters (Mastodon's default).
pub const STATUS_CHARS_MAX: usize = 500;

/// The parameters of a request body, each as text; a parameter may have several
/// values (a form's repeated `key[]`, a JSON array).
#[derive(Debug, Default)]
pub struct Params(HashMap<String, Vec<String>>);

/// A JSON scalar as text; `None` for null, arrays and objects.
fn json_text(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Params {
    /// Parses a body by its `Content-Type`: JSON (an object), or form-encoded (also
    /// when there is no body or no type). Errors name what is wrong.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Params, String> {
        let kind = content_type
            .and_then(|t| t.split(';').next())
            .map(|t| t.trim().to_ascii_lowercase());
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        match kind.as_deref() {
            Some("application/json") => {
                let value: serde_json::Value = serde_json::from_slice(body)
                    .map_err(|e| format!("the request body is not valid JSON: {e}"))?;
                let serde_json::Value::Object(map) = value else {
                    return Err("the request body must be a JSON object".into());
                };
                for (k, v) in map {
                    let values: Vec<String> = match v {
                        // account_ids: [...]; objects (a poll) are unused here.
                        serde_json::Value::Array(items) => {
                            items.into_iter().filter_map(json_text).collect()
                        }
                        v => json_text(v).into_iter().collect(),
                    };
                    if !values.is_empty() {
                        params.insert(k, values);
                    }
                }
            }
            None | Some("application/x-www-form-urlencoded") => {
                let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                    .map_err(|e| format!("the request body is not form-encoded: {e}"))?;
                for (k, v) in pairs {
                    // Rails' `key[]=a&key[]=b` is the array `key`.
                    let k = k.strip_suffix("[]").map(str::to_string).unwrap_or(k);
                    params.entry(k).or_default().push(v);
                }
            }
            Some(other) => {
                return Err(format!(
                    "unsupported Content-Type {other}: send application/json or application/x-www-form-urlencoded"
                ));
            }
        }
        Ok(Params(params))
    }

    /// The parameter `key` (its last value), when given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .and_then(|values| values.last())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Every non-empty value of the parameter `key`, in the order given.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .get(key)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// A boolean parameter as Rails reads one: empty, `0`, `f`, `false` or `off` (any
/// case) is false, anything else true (Mastodon.py sends `1` and `0`).
pub fn truthy(value: &str) -> bool {
    !matches!(
        value.to_ascii_lowercase().as_str(),
        "" | "0" | "f" | "false" | "off"
    )
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
        let p = Params::parse(None, b"account_ids[]=1&account_ids[]=2&title=t").unwrap();
        assert_eq!(p.all("account_ids"), vec!["1", "2"]);
        assert_eq!(p.get("title"), Some("t"));
        let p = Params::parse(Some("application/json"), br#"{"account_ids":[3,"4"]}"#).unwrap();
        assert_eq!(p.all("account_ids"), vec!["3", "4"]);
        assert!(p.all("missing").is_empty());
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
