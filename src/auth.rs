//! Gateway-key authentication for managed mode; a no-op in passthrough mode.
//!
//! Keys are stored as SHA-256 digests. A presented key is hashed and compared against
//! every configured digest in constant time, without stopping at the first match, so
//! timing reveals neither which key matched nor how much of it.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, GatewayKey};
use crate::error::GatewayError;

/// A request flexgate sends to itself (a batch line), as a request extension, which no
/// client can set: it was authenticated when its batch was created, as `client` in
/// managed mode, and its deadline is what is left of the batch's window (it replaces the
/// class deadline, which is minutes where a window may be hours).
#[derive(Debug, Clone)]
pub struct InProcess {
    pub client: Option<String>,
    pub deadline: std::time::Duration,
}

/// The configured client named `name` (managed mode), borrowed from the configuration.
pub fn known_client<'a>(auth: &'a AuthConfig, name: Option<&str>) -> Option<&'a str> {
    let AuthConfig::Managed { keys } = auth else {
        return None;
    };
    keys.iter().map(|k| k.client.as_str()).find(|c| Some(*c) == name)
}

/// Find the client whose key is `presented`, in time independent of the keys' contents.
pub fn authenticate<'a>(keys: &'a [GatewayKey], presented: &str) -> Option<&'a str> {
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for key in keys {
        if bool::from(key.sha256.ct_eq(&digest)) {
            found = Some(key.client.as_str());
        }
    }
    found
}

/// The bearer token of an `Authorization` header, if it has that shape.
pub fn bearer(headers: &HeaderMap) -> Result<&str, GatewayError> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or(GatewayError::Unauthorized(
        "Missing gateway key. Send it as `Authorization: Bearer <key>`; flexgate holds the upstream key itself.",
    ))?;
    let text =
        value.to_str().map_err(|_| GatewayError::Unauthorized("The `Authorization` header is not valid text."))?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or(GatewayError::Unauthorized("Malformed `Authorization` header: use `Bearer <key>`."))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(GatewayError::Unauthorized("Unsupported `Authorization` scheme: use `Bearer <key>`."));
    }
    Ok(token.trim())
}

/// The first step of every proxied request: in managed mode, the client whose gateway
/// key the request presents (401 without a valid one); `None` in passthrough mode. A plain
/// call from the handler rather than a middleware layer, which would box and clone the
/// service stack on every request.
pub fn client<'a>(auth: &'a AuthConfig, headers: &HeaderMap) -> Result<Option<&'a str>, GatewayError> {
    let AuthConfig::Managed { keys } = auth else {
        return Ok(None);
    };
    let client = authenticate(keys, bearer(headers)?)
        .ok_or(GatewayError::Unauthorized("Invalid gateway key. Check the key your client sends to flexgate."))?;
    Ok(Some(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: &str, secret: &str) -> GatewayKey {
        GatewayKey { client: client.into(), sha256: Sha256::digest(secret.as_bytes()).into() }
    }

    #[test]
    fn finds_the_matching_client_only() {
        let keys = [key("a", "sk-a"), key("b", "sk-b")];
        assert_eq!(authenticate(&keys, "sk-a"), Some("a"));
        assert_eq!(authenticate(&keys, "sk-b"), Some("b"));
        assert_eq!(authenticate(&keys, "sk-c"), None);
        assert_eq!(authenticate(&keys, ""), None);
        assert_eq!(authenticate(&keys, "sk-a "), None);
    }
}
