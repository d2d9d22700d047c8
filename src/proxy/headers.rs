//! Header hygiene in both directions: hop-by-hop headers never cross, `x-flexgate-*`
//! request headers stay here, and the upstream key replaces the client's in managed mode.

use http::header::{self, HeaderMap, HeaderName};

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

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::UPGRADE
}

/// Remove, in place, the hop-by-hop headers, those the `Connection` header lists, and
/// those `also` names. The map is not rebuilt and no value is copied (rebuilding it costs
/// an allocation per header value hyper parsed). One pass over the names finds them:
/// usually there are none, and removing each candidate blindly would cost a hash lookup
/// per candidate on every request.
fn strip(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let mut doomed: Vec<HeaderName> = headers.keys().filter(|n| is_hop_by_hop(n) || also(n)).cloned().collect();
    if doomed.contains(&header::CONNECTION) {
        let listed = connection_listed(headers);
        doomed.extend(headers.keys().filter(|n| listed.iter().any(|l| l == n.as_str())).cloned());
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// The client's request headers, made fit to send upstream.
pub fn upstream_request(mut headers: HeaderMap, managed: bool, identity_encoding: bool) -> HeaderMap {
    strip(&mut headers, |name| {
        name == header::HOST
            || name == header::CONTENT_LENGTH
            || (managed && name == header::AUTHORIZATION)
            // flexgate reads usage from metered answers, so it asks for them uncompressed.
            || (identity_encoding && name == header::ACCEPT_ENCODING)
            || name.as_str().starts_with("x-flexgate-")
    });
    headers
}

/// The upstream answer's headers, made fit to return to the client.
pub fn client_response(mut headers: HeaderMap, keep_length: bool) -> HeaderMap {
    strip(&mut headers, |name| !keep_length && name == header::CONTENT_LENGTH);
    headers
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

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
            ("connection", "X-Upstream-Hop"),
            ("x-upstream-hop", "1"),
        ]);
        let out = client_response(h.clone(), false);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["openai-processing-ms", "x-request-id"]);
        assert!(client_response(h, true).get("content-length").is_some());
    }
}
