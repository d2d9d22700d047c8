//! Header hygiene in both directions: hop-by-hop headers never cross, `x-flexgate-*`
//! request headers stay here, and the upstream key replaces the client's in managed mode.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The request id header, generated when absent and passed both ways.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies still see.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Header names the `Connection` header marks as hop-by-hop for this message.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Remove a message's hop-by-hop headers, in place: the map is not rebuilt and no value
/// is copied (rebuilding the answer's map cost about ten allocations per request, one per
/// header value hyper had parsed).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed = connection_listed(headers);
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    for name in &listed {
        headers.remove(name.as_str());
    }
}

/// The client's request headers, made fit to send upstream.
pub fn upstream_request(mut headers: HeaderMap, managed: bool, identity_encoding: bool) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    if managed {
        headers.remove(header::AUTHORIZATION);
    }
    if identity_encoding {
        // flexgate reads usage from metered answers, so it asks for them uncompressed.
        headers.remove(header::ACCEPT_ENCODING);
    }
    let ours: Vec<HeaderName> = headers.keys().filter(|n| n.as_str().starts_with("x-flexgate-")).cloned().collect();
    for name in ours {
        headers.remove(name);
    }
    headers
}

/// The upstream answer's headers, made fit to return to the client.
pub fn client_response(mut headers: HeaderMap, keep_length: bool) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    if !keep_length {
        headers.remove(header::CONTENT_LENGTH);
    }
    headers
}

/// A request id we accept from a client: short and printable, so it is safe to log.
pub fn valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn request_headers_are_filtered() {
        let h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("host", "gateway"),
            ("content-length", "10"),
            ("x-flexgate-class", "background"),
            ("x-flexgate-deadline", "30s"),
            ("authorization", "Bearer client"),
            ("accept-encoding", "gzip"),
            ("openai-organization", "org"),
            ("x-request-id", "abc"),
        ]);
        let out = upstream_request(h.clone(), false, true);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "openai-organization", "x-request-id"]);
        let out = upstream_request(h, true, false);
        assert!(out.get("authorization").is_none());
        assert!(out.get("accept-encoding").is_some());
    }

    #[test]
    fn response_headers_are_filtered() {
        let h = map(&[
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("x-request-id", "req_1"),
            ("openai-processing-ms", "3"),
            ("upgrade", "h2c"),
        ]);
        let out = client_response(h.clone(), false);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["openai-processing-ms", "x-request-id"]);
        assert!(client_response(h, true).get("content-length").is_some());
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(&HeaderValue::from_static("req_123-abc")));
        assert!(!valid_request_id(&HeaderValue::from_static("has space")));
        assert!(!valid_request_id(&HeaderValue::from_str(&"x".repeat(200)).unwrap()));
    }
}
