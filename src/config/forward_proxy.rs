//! `upstream.proxy`: whether the upstream is reached through an HTTP proxy, decided once.
//!
//! flexgate only ever talks to `upstream.base_url`, so the proxy question has one answer
//! for the whole process; it is settled while the configuration is validated, where a
//! proxy flexgate cannot use is reported like any other configuration problem.

use std::fmt;

use http::HeaderValue;
use hyper_util::client::proxy::matcher::Matcher;

use super::Env;

/// An HTTP proxy the upstream is reached through: a `CONNECT` tunnel for an `https`
/// upstream, a forwarding proxy for an `http` one. Not `crate::proxy::Proxy`, which is
/// flexgate's own request handler.
#[derive(Clone)]
pub struct ForwardProxy {
    /// `http://host:port/`, credentials removed.
    pub uri: http::Uri,
    /// `Basic …` from the proxy URL's user info, sent as `Proxy-Authorization`.
    pub auth: Option<HeaderValue>,
}

impl fmt::Debug for ForwardProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = self.auth.as_ref().map(|_| "<redacted>");
        f.debug_struct("ForwardProxy").field("uri", &self.uri).field("auth", &auth).finish()
    }
}

/// The proxy for `base` under `setting` (`"env"`, `"none"` or an `http://` URL), or
/// `None` to connect directly. The error text never repeats the URL, which may hold a
/// password.
pub fn resolve(setting: &str, base: &url::Url, env: &dyn Env) -> Result<Option<ForwardProxy>, String> {
    let (matcher, source) = match setting.trim() {
        "none" => return Ok(None),
        // The variables curl reads, upper case first, as reqwest did before.
        "env" => {
            let mut b = Matcher::builder();
            if let Some(v) = first(env, ["ALL_PROXY", "all_proxy"]) {
                b = b.all(v);
            }
            if let Some(v) = first(env, ["HTTP_PROXY", "http_proxy"]) {
                b = b.http(v);
            }
            if let Some(v) = first(env, ["HTTPS_PROXY", "https_proxy"]) {
                b = b.https(v);
            }
            if let Some(v) = first(env, ["NO_PROXY", "no_proxy"]) {
                b = b.no(v);
            }
            (b.build(), "the proxy named by HTTP_PROXY, HTTPS_PROXY or ALL_PROXY")
        }
        url => {
            let valid = url
                .parse::<http::Uri>()
                .is_ok_and(|u| u.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("http")) && u.host().is_some());
            if !valid {
                return Err("must be `env`, `none` or an http:// proxy URL such as `http://proxy.internal:3128`".into());
            }
            (Matcher::builder().all(url).build(), "the proxy")
        }
    };
    let dst: http::Uri = base.as_str().parse().map_err(|_| "cannot apply a proxy to `upstream.base_url`".to_owned())?;
    let Some(intercept) = matcher.intercept(&dst) else {
        return Ok(None);
    };
    match intercept.uri().scheme_str() {
        Some("http") => {}
        other => {
            return Err(format!(
                "{source} is a {}:// proxy; flexgate speaks to http:// proxies only \
                 (`upstream.proxy = \"none\"` connects directly)",
                other.unwrap_or("schemeless")
            ));
        }
    }
    let auth = intercept.basic_auth().cloned().map(|mut v| {
        v.set_sensitive(true);
        v
    });
    Ok(Some(ForwardProxy { uri: intercept.uri().clone(), auth }))
}

fn first<const N: usize>(env: &dyn Env, keys: [&str; N]) -> Option<String> {
    keys.into_iter().find_map(|k| env.get(k))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Vars(HashMap<&'static str, &'static str>);

    impl Env for Vars {
        fn get(&self, key: &str) -> Option<String> {
            self.0.get(key).map(|v| (*v).to_owned())
        }
    }

    fn vars(pairs: &[(&'static str, &'static str)]) -> Vars {
        Vars(pairs.iter().copied().collect())
    }

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn the_environment_picks_the_proxy_by_scheme_and_no_proxy_wins() {
        let env = vars(&[("HTTPS_PROXY", "http://u:p%40ss@proxy.internal:3128"), ("http_proxy", "http://plain:8080")]);
        let p = resolve("env", &url("https://api.openai.com/v1"), &env).unwrap().unwrap();
        assert_eq!(p.uri.authority().unwrap().as_str(), "proxy.internal:3128");
        assert_eq!(p.auth.as_ref().unwrap(), "Basic dTpwQHNz");
        assert!(p.auth.as_ref().unwrap().is_sensitive());
        assert!(!format!("{p:?}").contains("dTpw"), "credentials stay out of Debug");
        let p = resolve("env", &url("http://sim.internal:9000/v1"), &env).unwrap().unwrap();
        assert_eq!(p.uri.authority().unwrap().as_str(), "plain:8080");

        let env = vars(&[("HTTPS_PROXY", "http://proxy.internal:3128"), ("NO_PROXY", "api.openai.com")]);
        assert!(resolve("env", &url("https://api.openai.com/v1"), &env).unwrap().is_none());
        assert!(resolve("env", &url("https://api.openai.com/v1"), &vars(&[])).unwrap().is_none());
    }

    #[test]
    fn none_ignores_the_environment_and_a_url_ignores_no_proxy() {
        let env = vars(&[("ALL_PROXY", "http://proxy.internal:3128"), ("NO_PROXY", "*")]);
        assert!(resolve("none", &url("https://api.openai.com/v1"), &env).unwrap().is_none());
        let p = resolve("http://other:1080", &url("https://api.openai.com/v1"), &env).unwrap().unwrap();
        assert_eq!(p.uri.authority().unwrap().as_str(), "other:1080");
        assert!(p.auth.is_none());
    }

    #[test]
    fn unusable_proxies_are_refused_without_echoing_credentials() {
        for bad in ["proxy:3128", "https://proxy:3128", "socks5://u:secret@proxy:1080", "http://", "nonsense value"] {
            let err = resolve(bad, &url("https://api.openai.com/v1"), &vars(&[])).unwrap_err();
            assert!(err.contains("http://"), "{bad}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
        let env = vars(&[("HTTPS_PROXY", "socks5://u:secret@proxy:1080")]);
        let err = resolve("env", &url("https://api.openai.com/v1"), &env).unwrap_err();
        assert!(err.contains("socks5://") && err.contains("HTTPS_PROXY") && !err.contains("secret"), "{err}");
    }
}
