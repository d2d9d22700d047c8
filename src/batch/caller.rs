//! Whose request this is: the owner a file or batch is stored under, and how its lines
//! authenticate upstream. Managed mode: the gateway key's client (`client:NAME`), and
//! lines use flexgate's own upstream key. Passthrough mode: the SHA-256 of the
//! `Authorization` header (`key:HEX`); the header itself stays in memory
//! (`super::Batches`) and is never written anywhere.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::auth;
use crate::config::AuthConfig;
use crate::error::GatewayError;
use crate::state::AppState;

/// The caller of a files or batches request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What the store keeps: a client name or a key's digest, never a key.
    pub owner: String,
}

/// Authenticate the request and, in passthrough mode, remember its key for the owner's
/// batches (a batch resumed after a restart waits for it).
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    match &state.config.auth {
        AuthConfig::Managed { .. } => {
            let client = auth::client(&state.config.auth, headers)?.unwrap_or_default();
            Ok(Caller { owner: format!("client:{client}") })
        }
        AuthConfig::Passthrough => {
            let Some(authorization) = headers.get(http::header::AUTHORIZATION) else {
                return Ok(Caller { owner: "anonymous".into() });
            };
            let owner = owner_of_key(authorization.as_bytes());
            state.batches.offer_key(&owner, authorization);
            Ok(Caller { owner })
        }
    }
}

/// The owner a passthrough key is stored as.
pub fn owner_of_key(authorization: &[u8]) -> String {
    format!("key:{}", hex::encode(Sha256::digest(authorization)))
}

/// The managed-mode client an owner names, for its lines' accounting.
pub fn client_of(owner: &str) -> Option<&str> {
    owner.strip_prefix("client:")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_is_stored_as_its_digest_only() {
        let owner = super::owner_of_key(b"Bearer sk-secret");
        assert!(owner.starts_with("key:") && owner.len() == 4 + 64);
        assert!(!owner.contains("sk-secret"));
        assert_ne!(owner, super::owner_of_key(b"Bearer sk-other"));
        assert_eq!(super::client_of("client:team-a"), Some("team-a"));
    }
}
