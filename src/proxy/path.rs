//! Maps an incoming path to its lane and OpenAI endpoint, and refuses paths that could
//! escape the upstream's `/v1` (dot segments, encoded slashes or dots, backslashes).

use http::Method;

use crate::config::{ClassId, Config};
use crate::error::GatewayError;
use crate::usage::Endpoint;

/// Where a request goes: the class of its lane and the path after `/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub lane: Option<ClassId>,
    /// Starts with `/`, e.g. `/chat/completions`.
    pub rest: &'a str,
}

pub fn target<'a>(config: &Config, method: &Method, path: &'a str) -> Result<Target<'a>, GatewayError> {
    let not_found = || GatewayError::NotFound { method: method.to_string(), path: path.chars().take(256).collect() };
    if !is_safe(path) {
        return Err(GatewayError::InvalidParam {
            param: "path",
            message: "The request path contains dot segments or encoded separators, which flexgate does not forward."
                .into(),
        });
    }
    if let Some(rest) = path.strip_prefix("/v1").filter(|r| r.starts_with('/')) {
        return Ok(Target { lane: None, rest });
    }
    for (id, class) in config.classes.iter().enumerate() {
        let Some(prefix) = class.path_prefix.as_deref() else {
            continue;
        };
        if let Some(rest) = path.strip_prefix(prefix).filter(|r| r.starts_with('/')) {
            return Ok(Target { lane: Some(id), rest });
        }
    }
    Err(not_found())
}

fn is_safe(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    !path.contains('\\')
        && !lower.contains("%2f")
        && !lower.contains("%5c")
        && !lower.contains("%2e")
        && !lower.contains("%00")
        && path.split('/').all(|segment| segment != "." && segment != "..")
}

/// The OpenAI endpoint of a request, by method and the path after `/v1`.
pub fn endpoint(method: &Method, rest: &str) -> Endpoint {
    if method != Method::POST {
        return Endpoint::Other;
    }
    match rest.trim_end_matches('/') {
        "/chat/completions" => Endpoint::ChatCompletions,
        "/responses" | "/responses/compact" => Endpoint::Responses,
        "/completions" => Endpoint::Completions,
        "/embeddings" => Endpoint::Embeddings,
        _ => Endpoint::Other,
    }
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
        assert_eq!(endpoint(&Method::POST, "/responses/compact"), Endpoint::Responses);
        assert_eq!(endpoint(&Method::GET, "/chat/completions"), Endpoint::Other);
        assert_eq!(endpoint(&Method::POST, "/files"), Endpoint::Other);
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
