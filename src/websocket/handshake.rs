//! The WebSocket opening handshake as flexgate passes it on: which requests are
//! upgrades, who the client is, and the headers sent upstream and back.
//!
//! `Sec-WebSocket-Key`, `-Version` and `-Protocol` cross unchanged (the upstream's
//! `Sec-WebSocket-Accept` is computed from the client's key, and the client checks it),
//! except for the gateway key a browser may put in the protocol list.
//! `Sec-WebSocket-Extensions` is not forwarded: without permessage-deflate every frame
//! arrives uncompressed, which is what lets usage be read from the upstream's events (and
//! the handshake stays valid, since a server may only accept extensions it was offered).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::auth;
use crate::config::AuthConfig;
use crate::error::GatewayError;
use crate::proxy::headers;

/// The subprotocol prefix under which a browser client sends its key: browsers cannot
/// set `Authorization` on a WebSocket.
pub const KEY_PROTOCOL: &str = "openai-insecure-api-key.";

/// A WebSocket opening handshake: an HTTP/1.1 `GET` whose `Connection` lists `upgrade`
/// and whose `Upgrade` is `websocket`.
pub fn is_upgrade<B>(request: &http::Request<B>) -> bool {
    request.method() == http::Method::GET
        && request.version() == http::Version::HTTP_11
        && tokens(request.headers(), &header::CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade"))
        && tokens(request.headers(), &header::UPGRADE).any(|t| t.eq_ignore_ascii_case("websocket"))
}

/// The comma-separated items of every `name` header.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// In managed mode, the client whose gateway key the handshake presents, in
/// `Authorization` or, from a browser, as the `openai-insecure-api-key.<KEY>` subprotocol;
/// `None` in passthrough mode, where the client's credentials go upstream unchanged.
pub fn client<'a>(config: &'a AuthConfig, headers: &HeaderMap) -> Result<Option<&'a str>, GatewayError> {
    let AuthConfig::Managed { keys } = config else {
        return Ok(None);
    };
    if headers.contains_key(header::AUTHORIZATION) {
        return auth::client(config, headers);
    }
    let presented = tokens(headers, &header::SEC_WEBSOCKET_PROTOCOL).find_map(|p| p.strip_prefix(KEY_PROTOCOL));
    let presented = presented.ok_or(GatewayError::Unauthorized(
        "Missing gateway key. Send it as `Authorization: Bearer <key>` or in the `openai-insecure-api-key.<key>` subprotocol.",
    ))?;
    auth::authenticate(keys, presented)
        .map(Some)
        .ok_or(GatewayError::Unauthorized("Invalid gateway key. Check the key your client sends to flexgate."))
}

/// The client's handshake headers, made fit to send upstream over a connection of its
/// own. `managed_auth`: the upstream key's `Authorization`, which replaces whatever
/// credentials the client sent.
pub fn upstream_request(
    client: HeaderMap,
    managed_auth: Option<&HeaderValue>,
    proxy_auth: Option<&HeaderValue>,
    host: HeaderValue,
) -> HeaderMap {
    let protocols = protocols_upstream(&client, managed_auth.is_some());
    let mut out = headers::upstream_request(client, managed_auth.is_some(), false);
    out.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    out.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if let Some(protocols) = protocols {
        out.insert(header::SEC_WEBSOCKET_PROTOCOL, protocols);
    }
    out.insert(header::HOST, host);
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Some(auth) = managed_auth {
        out.insert(header::AUTHORIZATION, auth.clone());
    }
    if let Some(auth) = proxy_auth {
        out.insert(header::PROXY_AUTHORIZATION, auth.clone());
    }
    out
}

/// The `Sec-WebSocket-Protocol` list sent upstream.
///
/// In managed mode the gateway-key item is dropped and the upstream key goes in
/// `Authorization` instead, rather than the item being rewritten to
/// `openai-insecure-api-key.<UPSTREAM_KEY>`: the client must get back a protocol it
/// offered, and a server that echoed the rewritten item would hand the client a protocol
/// it never offered, with the upstream key in it. With the item dropped, whatever the
/// upstream picks (`realtime`) is one the client offered, and the 101's protocol header
/// crosses unchanged. In passthrough mode the list crosses as it is: the key in it is the
/// client's own upstream key.
fn protocols_upstream(client: &HeaderMap, managed: bool) -> Option<HeaderValue> {
    if !managed {
        let mut all = client.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
        let first = all.next()?.clone();
        // Several headers are one list; joined so the single `insert` keeps them all.
        return Some(if client.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().count() == 1 {
            first
        } else {
            joined(tokens(client, &header::SEC_WEBSOCKET_PROTOCOL))?
        });
    }
    joined(tokens(client, &header::SEC_WEBSOCKET_PROTOCOL).filter(|p| !p.starts_with(KEY_PROTOCOL)))
}

fn joined<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let list = items.collect::<Vec<_>>().join(", ");
    let mut value = HeaderValue::try_from(list).ok().filter(|v| !v.is_empty())?;
    value.set_sensitive(true);
    Some(value)
}

/// The upstream's 101 headers for the client: its end-to-end headers
/// (`Sec-WebSocket-Accept`, `-Protocol`, `x-request-id`, OpenAI's own) and the upgrade pair.
pub fn client_response(upstream: HeaderMap) -> HeaderMap {
    let mut out = headers::client_response(upstream, false);
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    fn handshake(pairs: &[(&str, &str)]) -> http::Request<()> {
        let mut request = http::Request::get("/v1/realtime").body(()).unwrap();
        *request.headers_mut() = map(pairs);
        request
    }

    #[test]
    fn upgrades_are_recognised() {
        assert!(is_upgrade(&handshake(&[("connection", "keep-alive, Upgrade"), ("upgrade", "WebSocket")])));
        assert!(!is_upgrade(&handshake(&[("connection", "keep-alive"), ("upgrade", "websocket")])));
        assert!(!is_upgrade(&handshake(&[("connection", "upgrade"), ("upgrade", "h2c")])));
        let mut post = handshake(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        *post.method_mut() = http::Method::POST;
        assert!(!is_upgrade(&post));
    }

    fn managed() -> AuthConfig {
        let key = |client: &str, secret: &str| crate::config::GatewayKey {
            client: client.into(),
            sha256: Sha256::digest(secret.as_bytes()).into(),
        };
        AuthConfig::Managed { keys: vec![key("web", "gw-web"), key("svc", "gw-svc")] }
    }

    #[test]
    fn a_gateway_key_in_either_place_is_accepted() {
        let auth = managed();
        let header = map(&[("authorization", "Bearer gw-svc")]);
        assert_eq!(client(&auth, &header).unwrap(), Some("svc"));
        let protocol = map(&[("sec-websocket-protocol", "realtime, openai-insecure-api-key.gw-web")]);
        assert_eq!(client(&auth, &protocol).unwrap(), Some("web"));
        for bad in [
            map(&[("sec-websocket-protocol", "realtime, openai-insecure-api-key.nope")]),
            map(&[("sec-websocket-protocol", "realtime")]),
            map(&[("authorization", "Bearer nope"), ("sec-websocket-protocol", "openai-insecure-api-key.gw-web")]),
        ] {
            assert!(matches!(client(&auth, &bad), Err(GatewayError::Unauthorized(_))));
        }
        assert_eq!(client(&AuthConfig::Passthrough, &HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn managed_handshakes_go_upstream_with_the_upstream_key_only() {
        let client = map(&[
            ("host", "gateway:8080"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "realtime, openai-insecure-api-key.gw-web"),
            ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
            ("x-flexgate-class", "background"),
            ("openai-beta", "realtime=v1"),
        ]);
        let up = HeaderValue::from_static("Bearer sk-up");
        let out = upstream_request(client.clone(), Some(&up), None, HeaderValue::from_static("api.example"));
        assert_eq!(out["sec-websocket-protocol"], "realtime");
        assert_eq!(out["authorization"], "Bearer sk-up");
        assert_eq!(out["host"], "api.example");
        assert_eq!(out["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(out["connection"], "Upgrade");
        assert_eq!(out["upgrade"], "websocket");
        assert_eq!(out["openai-beta"], "realtime=v1");
        assert!(out.get("sec-websocket-extensions").is_none());
        assert!(out.get("x-flexgate-class").is_none());
        // Passthrough: the client's own key crosses, in its protocol list.
        let out = upstream_request(client, None, None, HeaderValue::from_static("api.example"));
        assert_eq!(out["sec-websocket-protocol"], "realtime, openai-insecure-api-key.gw-web");
    }

    #[test]
    fn the_101_keeps_the_accept_and_protocol() {
        let upstream = map(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("sec-websocket-protocol", "realtime"),
            ("x-request-id", "req_1"),
        ]);
        let out = client_response(upstream);
        assert_eq!(out["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(out["sec-websocket-protocol"], "realtime");
        assert_eq!(out["upgrade"], "websocket");
    }
}
