//! TLS on the gateway's listener: loading the PEM certificate and key, the rustls
//! acceptor (ALPN `h2` and `http/1.1`), and re-reading the files when they change so a
//! rotated certificate is served without a restart.
//!
//! The files are checked every [`RELOAD_CHECK`] by content (a SHA-256 of both), not by
//! modification time: Kubernetes rotates a mounted Secret by swapping a symlink, and
//! coarse timestamps can miss a rewrite within the same second. A pair that fails to
//! load (a half-written rotation, a key that does not match) keeps the previous
//! certificate in service and is tried again at the next check.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// How often the certificate and key files are compared with what is being served.
pub const RELOAD_CHECK: Duration = Duration::from_secs(10);

/// Where the listener's certificate chain and private key are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate and key could not be served. The message names the file; it never
/// carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Read both files and check that they make a usable pair.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let (cert, key) = read(files)?;
    certified(files, &cert, &key)
}

fn read(files: &TlsFiles) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| TlsError(format!("cannot read `{}`: {e}", path.display())));
    Ok((read(&files.cert)?, read(&files.key)?))
}

fn certified(files: &TlsFiles, cert: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("`{}` is not a PEM certificate chain: {e}", files.cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("`{}` holds no PEM certificate", files.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| TlsError(format!("`{}` holds no PEM private key: {e}", files.key.display())))?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        TlsError(format!("`{}` and `{}` do not make a usable pair: {e}", files.cert.display(), files.key.display()))
    })?;
    Ok(Arc::new(certified))
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(cert);
    hash.update(b"\0");
    hash.update(key);
    hash.finalize().into()
}

/// The certificate being served, swapped in place when the files change.
pub struct Resolver {
    files: TlsFiles,
    current: RwLock<(Arc<CertifiedKey>, [u8; 32])>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").field("files", &self.files).finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let (cert, key) = read(&files)?;
        let certified = certified(&files, &cert, &key)?;
        Ok(Resolver { current: RwLock::new((certified, digest(&cert, &key))), files })
    }

    /// The certificate chain's leaf as served now.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.read().0.cert.first().cloned()
    }

    /// Re-read the files; serve them from now on if they changed and load. Returns whether
    /// the served certificate changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let (cert, key) = read(&self.files)?;
        let hash = digest(&cert, &key);
        if self.current.read().1 == hash {
            return Ok(false);
        }
        let certified = certified(&self.files, &cert, &key)?;
        *self.current.write() = (certified, hash);
        Ok(true)
    }

    /// Check the files every [`RELOAD_CHECK`] until the returned task is aborted. The
    /// reads are a few kilobytes every ten seconds, so they run inline rather than on the
    /// blocking pool.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let resolver = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match resolver.reload() {
                    Ok(true) => tracing::info!(cert = %resolver.files.cert.display(), "TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, "TLS certificate not reloaded; still serving the previous one");
                    }
                }
            }
        })
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().0))
    }
}

/// The rustls acceptor for the listener: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`
/// (hyper detects HTTP/2 from the connection preface either way).
pub fn acceptor(resolver: Arc<Resolver>) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS protocol versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests;
