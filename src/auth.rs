//! Gateway-key authentication for managed mode; a no-op in passthrough mode.
//!
//! Keys are stored as SHA-256 digests. A presented key is hashed and compared against
//! every configured digest in constant time, without stopping at the first match, so
//! timing reveals neither which key matched nor how much of it.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, GatewayKey};
use crate::error::GatewayError;
use crate::state::AppState;

/// The client name of the gateway key a request presented (managed mode).
#[derive(Debug, Clone)]
pub struct ClientName(pub String);

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
fn bearer(request: &Request) -> Result<&str, GatewayError> {
    let value = request.headers().get(http::header::AUTHORIZATION).ok_or(GatewayError::Unauthorized(
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

/// Middleware on the proxied routes: in managed mode, require a valid gateway key.
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let AuthConfig::Managed { keys } = &state.config.auth else {
        return next.run(request).await;
    };
    let client = match bearer(&request) {
        Ok(token) => authenticate(keys, token),
        Err(e) => return e.into_response(),
    };
    let Some(client) = client else {
        return GatewayError::Unauthorized("Invalid gateway key. Check the key your client sends to flexgate.")
            .into_response();
    };
    let name = ClientName(client.to_owned());
    request.extensions_mut().insert(name);
    next.run(request).await
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
