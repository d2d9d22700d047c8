//! Maps an incoming path to its lane and the path after `/v1`, and refuses paths that could
//! escape the upstream's `/v1` (dot segments, encoded slashes or dots, backslashes).

use http::Method;

use crate::config::{ClassId, Config};
use crate::error::GatewayError;

/// Where a request goes: the class of its lane and the path after `/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneTarget<'a> {
    pub lane: Option<ClassId>,
    /// Starts with `/`, e.g. `/chat/completions`.
    pub rest: &'a str,
}

pub fn target<'a>(config: &Config, method: &Method, path: &'a str) -> Result<LaneTarget<'a>, GatewayError> {
    let not_found = || GatewayError::NotFound { method: method.to_string(), path: path.chars().take(256).collect() };
    if !is_safe(path) {
        return Err(GatewayError::InvalidParam {
            param: "path",
            message: "The request path contains dot segments or encoded separators, which flexgate does not forward."
                .into(),
        });
    }
    if let Some(rest) = path.strip_prefix("/v1").filter(|r| r.starts_with('/')) {
        return Ok(LaneTarget { lane: None, rest });
    }
    for (id, class) in config.classes.iter().enumerate() {
        let Some(prefix) = class.path_prefix.as_deref() else {
            continue;
        };
        if let Some(rest) = path.strip_prefix(prefix).filter(|r| r.starts_with('/')) {
            return Ok(LaneTarget { lane: Some(id), rest });
        }
    }
    Err(not_found())
}

fn is_safe(path: &str) -> bool {
    // Percent-encoded `/`, `\`, `.` and NUL, in either case; compared in place, since a
    // lowered copy of the path cost an allocation on every request.
    const REFUSED: [&[u8]; 4] = [b"2f", b"5c", b"2e", b"00"];
    let bytes = path.as_bytes();
    let encoded = memchr::memchr_iter(b'%', bytes)
        .any(|at| bytes.get(at + 1..at + 3).is_some_and(|code| REFUSED.iter().any(|r| code.eq_ignore_ascii_case(r))));
    !path.contains('\\') && !encoded && path.split('/').all(|segment| segment != "." && segment != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_and_endpoints() {
        let c = Config::for_upstream("http://127.0.0.1:1/v1").unwrap();
        let t = target(&c, &Method::POST, "/v1/chat/completions").unwrap();
        assert_eq!((t.lane, t.rest), (None, "/chat/completions"));
        let t = target(&c, &Method::POST, "/flex/v1/responses").unwrap();
        assert_eq!((t.lane, t.rest), (c.class_by_name("background"), "/responses"));
        assert!(matches!(target(&c, &Method::GET, "/v2/models"), Err(GatewayError::NotFound { .. })));
        assert!(matches!(target(&c, &Method::GET, "/v1"), Err(GatewayError::NotFound { .. })));
        assert!(matches!(target(&c, &Method::GET, "/v1x/models"), Err(GatewayError::NotFound { .. })));
    }

    proptest::proptest! {
        /// The in-place check refuses exactly what a check on a lowered copy refused.
        #[test]
        fn encoded_separators_are_found_in_either_case(path in "[/%a-fA-F0-9.\\\\x]{0,12}") {
            let lower = path.to_ascii_lowercase();
            let lowered = !path.contains('\\')
                && !["%2f", "%5c", "%2e", "%00"].iter().any(|code| lower.contains(code))
                && path.split('/').all(|segment| segment != "." && segment != "..");
            proptest::prop_assert_eq!(is_safe(&path), lowered, "{}", path);
        }
    }

    #[test]
    fn path_tricks_are_refused() {
        let c = Config::for_upstream("http://127.0.0.1:1/v1").unwrap();
        for p in [
            "/v1/../metrics",
            "/v1/./models",
            "/v1/%2e%2e/metrics",
            "/v1/files%2Fx",
            "/v1/a\\b",
            "/flex/v1/../../x",
            "/v1/%2E%2E",
        ] {
            assert!(
                matches!(target(&c, &Method::GET, p), Err(GatewayError::InvalidParam { param: "path", .. })),
                "{p}"
            );
        }
    }
}
