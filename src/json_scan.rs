//! A one-pass check that bytes are a well-formed JSON object, handing each top-level
//! member's key and value span to the caller: the fast path of reading request bodies
//! (`body`) and buffered answers (`usage`).
//!
//! `serde_json` skips strings (nearly all the bytes of a chat request or answer) at about
//! two instructions a byte, and its typed parse reads every key; the two parses were the
//! largest JSON cost of flexgate's own in an instruction profile. Here a string's first
//! 32 bytes are tested eight at a time in registers, and the rest skipped with `memchr`.
//! Anything unusual (an escaped top-level key, deep nesting, any error)
//! gives `None`, and callers then parse with `serde_json`, which keeps its exact errors
//! and its decisions: this scan never accepts what `serde_json` would refuse (tested in
//! `body::scan`).

use std::ops::Range;

/// Nesting this deep is left to `serde_json`, whose own limit is 128.
const MAX_DEPTH: u32 = 100;

/// Call `f(key, value)` for each top-level member of the JSON object `b`, in order, with
/// the key's unescaped bytes and the value's span. `None` if `b` is not a well-formed
/// object, a top-level key has escapes, or `f` returns `None`.
pub fn members(b: &[u8], mut f: impl FnMut(&[u8], Range<usize>) -> Option<()>) -> Option<()> {
    let mut s = Scanner { b, i: 0 };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.eat(b'}').is_none() {
        loop {
            s.ws();
            let key_start = s.i;
            if s.string()? {
                return None; // an escaped key: serde_json decodes it
            }
            let key = &b[key_start + 1..s.i - 1];
            s.ws();
            s.eat(b':')?;
            s.ws();
            let value_start = s.i;
            s.value(1)?;
            f(key, value_start..s.i)?;
            s.ws();
            match s.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == b.len()).then_some(())
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    /// A string, from its opening quote; `Some(true)` if it has escapes.
    fn string(&mut self) -> Option<bool> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            self.i += stop(&self.b[self.i..])?;
            if self.next()? == b'"' {
                return Some(escaped);
            }
            escaped = true;
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = self.b.get(self.i..self.i + 4)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.i += 4;
                }
                _ => return None,
            }
        }
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => self.string().map(drop),
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object (`keyed`) or array, from its opening bracket.
    fn container(&mut self, depth: u32, close: u8, keyed: bool) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            self.ws();
            if keyed {
                self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            self.value(depth + 1)?;
            self.ws();
            match self.next()? {
                b',' => {}
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(word).then(|| self.i += word.len())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.some_digits()?;
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
}

/// Where a string's text `s` (from just after its opening quote) stops: the offset of its
/// first `"` or `\`, or `None` if a control character (not allowed raw in JSON) or the
/// end comes first.
///
/// Most strings in a request or an answer are short (keys, ids, roles): the first 32
/// bytes are tested eight at a time in registers, which costs a fraction of a `memchr`
/// call. A longer string continues with `memchr2` (vectorised) and then a control check
/// of what it skipped.
fn stop(s: &[u8]) -> Option<usize> {
    let mut words = s.chunks_exact(8);
    for (n, word) in words.by_ref().take(4).enumerate() {
        let w = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
        if let Some(at) = first_special(w) {
            let at = n * 8 + at;
            return (s[at] >= 0x20).then_some(at);
        }
    }
    let from = s.len() - words.len() * 8 - words.remainder().len();
    if from < 32 {
        // Fewer than four whole words were left: the string ends in the last few bytes.
        let at = from + s[from..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        return (s[at] >= 0x20).then_some(at);
    }
    let rest = &s[from..];
    let n = memchr::memchr2(b'"', b'\\', rest)?;
    (!has_control(&rest[..n])).then_some(from + n)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The index of the first byte of `word` (little-endian) that a JSON string cannot hold
/// as it is: below 0x20, `"` or `\`. Also the log writer's escape check. These are the
/// classic "has a byte less than n" and "has a zero byte" tricks: they set a byte's high
/// bit where it matches, and may set it above a match (a borrow moves upwards), but never
/// below the first one. Flipping bit 1 first swaps `"` (0x22) with the space (0x20) and
/// keeps the controls below 0x20, so one "less than 0x21" finds both.
#[inline]
pub fn first_special(word: u64) -> Option<usize> {
    let controls_or_quote = word ^ (ONES * 0x02);
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let flags = ((controls_or_quote.wrapping_sub(ONES * 0x21) & !controls_or_quote)
        | (backslash.wrapping_sub(ONES) & !backslash))
        & HIGH;
    (flags != 0).then(|| flags.trailing_zeros() as usize / 8)
}

/// Whether `s` holds a control character, which JSON strings may not contain raw.
/// Eight bytes at a time: `(w - 0x20..20) & !w & 0x80..80` is non-zero exactly when some
/// byte of `w` is below 0x20 (a borrow only reaches a byte above a flagged one).
fn has_control(s: &[u8]) -> bool {
    let mut words = s.chunks_exact(8);
    let mut seen = 0;
    for word in &mut words {
        let w = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
        seen |= w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    }
    seen != 0 || words.remainder().iter().any(|&b| b < 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_finds_the_first_quote_backslash_or_control_at_every_offset() {
        let naive = |s: &[u8]| {
            let at = s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            (s[at] >= 0x20).then_some(at)
        };
        for len in 0..80 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    // Bytes just above and below the special ones around it, and UTF-8.
                    let mut s: Vec<u8> = (0..len).map(|i| [b'a', 0x20, 0x7f, 0xc3, 0xa9, b'#', b']'][i % 7]).collect();
                    s[at] = special;
                    if at + 1 < len {
                        s[at + 1] = b'"';
                    }
                    assert_eq!(stop(&s), naive(&s), "len {len}, {special:#x} at {at}");
                }
            }
            let plain = vec![b'x'; len];
            assert_eq!(stop(&plain), None, "no end in {len} bytes");
        }
    }

    fn accepts(text: &str) -> bool {
        members(text.as_bytes(), |_, _| Some(())).is_some()
    }

    #[test]
    fn hands_over_every_member_in_order() {
        let text = r#" { "a" : "x \"q\" \u00e9", "b":[1,{"c":null}], "d":-1.5e+3, "e":true } "#;
        let mut seen = Vec::new();
        members(text.as_bytes(), |k, v| {
            seen.push((String::from_utf8(k.to_vec()).unwrap(), text[v].to_owned()));
            Some(())
        })
        .unwrap();
        let expect = [("a", r#""x \"q\" \u00e9""#), ("b", r#"[1,{"c":null}]"#), ("d", "-1.5e+3"), ("e", "true")];
        assert_eq!(seen, expect.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert!(accepts("{}"));
        assert!(members(b"{\"a\":1}", |_, _| None).is_none(), "the caller can stop the walk");
    }

    #[test]
    fn finds_control_characters_at_every_position() {
        for len in 0..40 {
            let clean = "é".repeat(len / 2) + &"a".repeat(len % 2);
            assert!(!has_control(clean.as_bytes()), "{len}");
            for at in 0..clean.len() {
                for c in [0x00, 0x0a, 0x1f] {
                    let mut bytes = clean.clone().into_bytes();
                    bytes[at] = c;
                    assert!(has_control(&bytes), "{len} {at} {c}");
                }
            }
        }
        assert!(!has_control(&[0x20, 0x7f, 0x80, 0xff, 0x21, 0x20, 0x20, 0x20, 0x20]));
    }

    #[test]
    fn refuses_what_is_malformed_or_unusual() {
        for text in [
            "",
            "[]",
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":"x"#,
            "{\"a\":\"tab\tinside\"}",
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":1} x"#,
            r#"{"mod\u0065l":"gpt-5"}"#,
        ] {
            assert!(!accepts(text), "{text}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(!accepts(&deep));
        // Long strings, with escapes and control characters past the first words.
        let long = "x".repeat(100);
        for (inner, ok) in [
            (format!("{long}\\\"{long}"), true),
            (format!("{long}\\u00e9{long}\\n"), true),
            (format!("{long}\t{long}"), false),
            (format!("{long}\\q"), false),
            (long.clone(), true),
        ] {
            assert_eq!(accepts(&format!("{{\"a\":\"{inner}\"}}")), ok, "{inner}");
            assert_eq!(serde_json::from_str::<serde_json::Value>(&format!("{{\"a\":\"{inner}\"}}")).is_ok(), ok);
        }
        assert!(!accepts(&format!("{{\"a\":\"{long}")), "unterminated");
    }
}
