//! The request id and the marks the layers leave on a response for each other.
//!
//! Every request carries an `x-request-id` from the outermost layer inward (a client's
//! short printable one is kept, anything else replaced by a generated `fg-…` id), and the
//! response carries it back. These live apart from both the layer stack and the proxy,
//! which both use them, so that neither imports the other.

use http::{HeaderName, HeaderValue};

/// The request id header, generated when absent and passed both ways.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Marks a failed response whose request the ledger has already logged and counted (a
/// success is never marked: the outermost layer examines only answers that failed).
#[derive(Debug, Clone, Copy)]
pub struct Logged;

/// A request id we accept from a client: short and printable, so it is safe to log.
pub fn is_valid(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
}

/// `fg-` and 32 hex digits of a random 128-bit number.
pub fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"fg-00000000000000000000000000000000";
    for (i, b) in rand::random::<[u8; 16]>().into_iter().enumerate() {
        id[3 + 2 * i] = HEX[usize::from(b >> 4)];
        id[4 + 2 * i] = HEX[usize::from(b & 0xf)];
    }
    // Hex digits are always a valid header value; the fallback is never taken.
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("fg-unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_short_and_printable() {
        assert!(is_valid(&HeaderValue::from_static("req_123-abc")));
        assert!(!is_valid(&HeaderValue::from_static("has space")));
        assert!(!is_valid(&HeaderValue::from_str(&"x".repeat(200)).unwrap()));
    }

    #[test]
    fn generated_ids_are_fresh_valid_and_well_formed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(is_valid(&id));
            let text = id.to_str().unwrap();
            assert!(text.starts_with("fg-") && text.len() == 35, "{text}");
            assert!(text[3..].bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{text}");
        }
    }
}
