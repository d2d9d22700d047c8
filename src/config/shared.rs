//! `[shared]`: the Redis (or Valkey) that replicas share their budgets through, as
//! written and validated. The URL may carry a password, so it is kept as a secret:
//! the configuration's summary and `Debug` show it with the password masked.

use std::fmt;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShared {
    /// `redis://[user:password@]host[:port][/db]`; env `FLEXGATE_REDIS_URL`.
    pub redis_url: Option<String>,
}

/// The validated `[shared]` table: where the shared state lives.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedConfig {
    /// The whole URL, password included: handed to the client and nowhere else.
    url: String,
}

impl SharedConfig {
    /// The URL to connect to (it may hold a password: never log it, log `self`).
    pub fn redis_url(&self) -> &str {
        &self.url
    }
}

/// The URL with its password (and a user name's password-like token) masked.
impl fmt::Display for SharedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                } else if !u.username().is_empty() {
                    // `redis://TOKEN@host` authenticates with the user part alone.
                    let _ = u.set_username("***");
                }
                write!(f, "{u}")
            }
            Err(_) => f.write_str("<redacted>"),
        }
    }
}

impl fmt::Debug for SharedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedConfig({self})")
    }
}

/// `shared.redis_url`, when set: a `redis://` URL with a host.
pub fn validate(raw: &RawShared, add: &mut dyn FnMut(&str, String)) -> Option<SharedConfig> {
    let text = raw.redis_url.as_deref().map(str::trim).filter(|t| !t.is_empty())?;
    let Ok(url) = url::Url::parse(text) else {
        // The text may hold a password: the message does not repeat it.
        add("shared.redis_url", "is not a URL such as `redis://redis:6379/0`".into());
        return None;
    };
    if url.scheme() != "redis" {
        add("shared.redis_url", format!("scheme `{}` is not supported: use `redis://`", url.scheme()));
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        add("shared.redis_url", "names no host".into());
        return None;
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u32>().is_err() {
        add("shared.redis_url", "the path must be a database number such as `/0`".into());
        return None;
    }
    Some(SharedConfig { url: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> (Option<SharedConfig>, Vec<String>) {
        let mut problems = Vec::new();
        let raw = RawShared { redis_url: Some(url.into()) };
        let c = validate(&raw, &mut |k, m| problems.push(format!("`{k}`: {m}")));
        (c, problems)
    }

    #[test]
    fn the_password_never_shows() {
        let (c, problems) = check("redis://:hunter2@redis:6379/0");
        let c = c.unwrap();
        assert!(problems.is_empty());
        assert_eq!(c.redis_url(), "redis://:hunter2@redis:6379/0");
        let shown = format!("{c} {c:?}");
        assert!(!shown.contains("hunter2") && shown.contains("redis:6379"), "{shown}");
        let (token, _) = check("redis://hunter2@redis");
        assert!(!token.unwrap().to_string().contains("hunter2"));
    }

    #[test]
    fn bad_urls_are_reported_without_repeating_them() {
        for bad in ["http://redis:6379", "not a url :hunter2", "redis:///0", "redis://redis/x"] {
            let (c, problems) = check(bad);
            assert!(c.is_none(), "{bad}");
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert!(problems[0].starts_with("`shared.redis_url`") && !problems[0].contains("hunter2"));
        }
        assert!(validate(&RawShared::default(), &mut |_, _| panic!()).is_none());
    }
}
