//! The listener's certificate: loading, refusing bad pairs, and reloading on change.

use std::sync::Arc;
use std::time::Duration;

use super::{Resolver, TlsFiles, load};

/// A self-signed certificate for `name` and its key, as PEM.
fn pair(name: &str) -> (String, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("generate a certificate");
    (cert.pem(), signing_key.serialize_pem())
}

fn write(dir: &tempfile::TempDir, (cert, key): &(String, String)) -> TlsFiles {
    let files = TlsFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
    std::fs::write(&files.cert, cert).expect("write cert");
    std::fs::write(&files.key, key).expect("write key");
    files
}

fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem").to_vec()
}

#[test]
fn a_pair_loads_and_a_bad_one_names_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write(&dir, &pair("a.test"));
    assert!(load(&files).is_ok());

    let missing = TlsFiles { cert: dir.path().join("nope.crt"), key: files.key.clone() };
    assert!(load(&missing).expect_err("missing").to_string().contains("nope.crt"));

    std::fs::write(&files.cert, "not pem").expect("write");
    assert!(load(&files).expect_err("garbage").to_string().contains("tls.crt"));

    // A key that is not the certificate's.
    let (cert, _) = pair("a.test");
    let (_, other_key) = pair("b.test");
    let files = write(&dir, &(cert, other_key.clone()));
    let error = load(&files).expect_err("mismatched").to_string();
    assert!(error.contains("usable pair"), "{error}");
    assert!(!error.contains("PRIVATE KEY"), "key material in an error: {error}");
}

#[test]
fn reload_swaps_a_changed_pair_and_keeps_the_old_one_on_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair("a.test");
    let files = write(&dir, &first);
    let resolver = Resolver::new(files.clone()).expect("resolver");
    assert_eq!(resolver.reload(), Ok(false), "unchanged files are not reloaded");

    let second = pair("b.test");
    write(&dir, &second);
    assert_eq!(resolver.reload(), Ok(true));
    assert_eq!(resolver.leaf().expect("leaf").to_vec(), der(&second.0));

    // Half a rotation: the new certificate with the old key. The served pair stays.
    std::fs::write(&files.cert, &first.0).expect("write");
    assert!(resolver.reload().is_err());
    assert_eq!(resolver.leaf().expect("leaf").to_vec(), der(&second.0));
}

#[tokio::test(start_paused = true)]
async fn the_watcher_serves_a_rotated_certificate_at_its_next_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write(&dir, &pair("a.test"));
    let resolver = Arc::new(Resolver::new(files).expect("resolver"));
    let watcher = resolver.watch();
    tokio::task::yield_now().await;

    let rotated = pair("b.test");
    write(&dir, &rotated);
    assert_ne!(resolver.leaf().expect("leaf").to_vec(), der(&rotated.0), "not before the check");
    tokio::time::sleep(super::RELOAD_CHECK + Duration::from_millis(1)).await;
    assert_eq!(resolver.leaf().expect("leaf").to_vec(), der(&rotated.0));
    watcher.abort();
}
