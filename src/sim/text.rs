//! Deterministic filler of the simulator: generated words, object ids, request ids,
//! pseudo-random numbers and timestamps. Cheap on purpose (no locks, no RNG state shared
//! between requests) because every answer uses them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Vocabulary of generated text; output word `i` is a pure function of (seed, i).
const WORDS: [&str; 32] = [
    "flex",
    "gateway",
    "routes",
    "latency",
    "tolerant",
    "work",
    "to",
    "the",
    "cheaper",
    "tier",
    "while",
    "urgent",
    "requests",
    "stay",
    "on",
    "standard",
    "and",
    "every",
    "token",
    "is",
    "counted",
    "so",
    "savings",
    "show",
    "up",
    "in",
    "metrics",
    "before",
    "deadlines",
    "pass",
    "quietly",
    "today",
];

const ALPHANUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `SplitMix64`: a tiny, well-mixed deterministic generator step.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, to derive seeds from input text.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Output word `i` of a text seeded with `seed`.
pub(crate) fn word(seed: u64, i: u64) -> &'static str {
    let idx = splitmix64(seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D)) % WORDS.len() as u64;
    WORDS[usize::try_from(idx).unwrap_or(0)]
}

/// The stream delta for word `i`: words after the first carry their leading space, so
/// the deltas concatenate to exactly [`sentence`].
pub(crate) fn delta(seed: u64, i: u64) -> String {
    if i == 0 { word(seed, 0).to_owned() } else { format!(" {}", word(seed, i)) }
}

/// The whole generated text of `n` words.
pub(crate) fn sentence(seed: u64, n: u64) -> String {
    let mut out = String::with_capacity(usize::try_from(n).unwrap_or(0) * 8);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word(seed, i));
    }
    out
}

/// Seconds since the Unix epoch, as `OpenAI`'s `created` fields.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Id source: seeded counter, so ids are unique per run and reproducible across runs.
pub(crate) struct Ids {
    seed: u64,
    next: AtomicU64,
}

impl Ids {
    pub fn new(seed: u64) -> Self {
        Self { seed: splitmix64(seed), next: AtomicU64::new(0) }
    }

    fn raw(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// `prefix` followed by `len` base-62 characters.
    pub fn object_id(&self, prefix: &str, len: usize) -> String {
        let mut out = String::with_capacity(prefix.len() + len);
        out.push_str(prefix);
        let mut bits = self.raw();
        for i in 0..len {
            if i % 10 == 9 {
                bits = self.raw();
            }
            out.push(char::from(ALPHANUM[usize::try_from(bits % 62).unwrap_or(0)]));
            bits /= 62;
        }
        out
    }

    /// `req_` + 32 hex digits, like `OpenAI`'s `x-request-id`.
    pub fn request_id(&self) -> String {
        format!("req_{:016x}{:016x}", self.raw(), self.raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_concatenate_to_sentence() {
        let joined: String = (0..7).map(|i| delta(9, i)).collect();
        assert_eq!(joined, sentence(9, 7));
        assert_eq!(sentence(9, 7).split(' ').count(), 7);
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let ids = Ids::new(1);
        let a = ids.object_id("chatcmpl-", 29);
        let b = ids.object_id("chatcmpl-", 29);
        assert_ne!(a, b);
        assert_eq!(a.len(), 38);
        assert!(a[9..].chars().all(|c| c.is_ascii_alphanumeric()));
        let r = ids.request_id();
        assert!(r.starts_with("req_") && r.len() == 36);
        assert_eq!(Ids::new(1).object_id("x", 12), Ids::new(1).object_id("x", 12));
    }
}
