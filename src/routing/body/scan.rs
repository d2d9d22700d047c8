//! The fast path of request-body parsing: one pass over the body that checks it is a
//! well-formed JSON object and keeps the raw text of the four members routing reads.
//!
//! `serde_json` skips the strings of a chat request (nearly all of its bytes) at about two
//! instructions a byte, and the whole parse was the largest cost of flexgate's own in an
//! instruction profile; here strings are skipped with `memchr`. Anything unusual (an
//! escaped key, a repeated routed member, deep nesting, or any error) returns `None` and
//! the caller parses with `serde_json`, which then gives the exact error message. So this
//! path never accepts what `serde_json` would refuse: the tests hold it to that.

/// Raw JSON text of the members routing reads, as slices of the body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub model: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub service_tier: Option<&'a str>,
    pub stream_options: Option<&'a str>,
}

/// Nesting this deep is left to `serde_json`, whose own limit is 128.
const MAX_DEPTH: u32 = 100;

/// The routed members of `text` if it is a well-formed JSON object and nothing about it
/// needs `serde_json`'s judgement; `None` otherwise.
pub fn top_fields(text: &str) -> Option<Fields<'_>> {
    let mut s = Scanner { b: text.as_bytes(), i: 0 };
    let mut fields = Fields::default();
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
            let key = &text[key_start + 1..s.i - 1];
            s.ws();
            s.eat(b':')?;
            s.ws();
            let value_start = s.i;
            s.value(1)?;
            let slot = match key {
                "model" => &mut fields.model,
                "stream" => &mut fields.stream,
                "service_tier" => &mut fields.service_tier,
                "stream_options" => &mut fields.stream_options,
                _ => &mut None,
            };
            if slot.replace(&text[value_start..s.i]).is_some() {
                return None; // a repeated routed member: serde_json names the error
            }
            s.ws();
            match s.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == s.b.len()).then_some(fields)
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
            let rest = &self.b[self.i..];
            let n = memchr::memchr2(b'"', b'\\', rest)?;
            if has_control(&rest[..n]) {
                return None;
            }
            self.i += n + 1;
            if rest[n] == b'"' {
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

/// Whether `s` holds a control character, which JSON strings may not contain raw.
/// Branch-free over 32-byte chunks so it compiles to vector compares.
fn has_control(s: &[u8]) -> bool {
    s.chunks(32).any(|chunk| chunk.iter().fold(0u8, |seen, &b| seen | u8::from(b < 0x20)) != 0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;
    use serde_json::value::RawValue;

    use super::super::Top;
    use super::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            r#"[a-z"\\é\t\n/]{0,8}"#.prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{0,6}|model|stream|service_tier|stream_options", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A serialised object, then maybe one byte deleted or one structural byte inserted.
    fn body() -> impl Strategy<Value = (String, bool)> {
        let top =
            prop::collection::btree_map("[a-z_]{0,6}|model|stream|service_tier|stream_options", json_value(), 0..5)
                .prop_map(|m| serde_json::to_string_pretty(&Value::Object(m.into_iter().collect())).unwrap());
        let mutation = prop_oneof![
            Just(None),
            (
                any::<prop::sample::Index>(),
                prop::option::of(prop::sample::select(vec![
                    '{', '}', '[', ']', '"', ',', ':', '\\', '0', '-', '.', 'e', 't', '\t', '\u{1}'
                ]))
            )
                .prop_map(Some)
        ];
        (top, mutation).prop_map(|(text, m)| match m {
            None => (text, true),
            Some((at, c)) => {
                let mut chars: Vec<char> = text.chars().collect();
                let i = at.index(chars.len() + 1);
                match c {
                    Some(c) => chars.insert(i, c),
                    None if i < chars.len() => drop(chars.remove(i)),
                    None => {}
                }
                (chars.into_iter().collect(), false)
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Whatever the fast scan accepts, serde_json accepts with the same raw members;
        /// and it accepts every unmodified serialised object.
        #[test]
        fn never_accepts_what_serde_refuses((text, pristine) in body()) {
            let fast = top_fields(&text);
            let slow = serde_json::from_str::<Top<'_>>(&text);
            if let Some(f) = &fast {
                let top = match &slow {
                    Ok(top) => top,
                    Err(e) => return Err(TestCaseError::fail(format!("fast accepted, serde refused: {e}\n{text}"))),
                };
                prop_assert_eq!(f.model, top.model.map(RawValue::get));
                prop_assert_eq!(f.stream, top.stream.map(RawValue::get));
                prop_assert_eq!(f.service_tier, top.service_tier.map(RawValue::get));
                prop_assert_eq!(f.stream_options, top.stream_options.map(RawValue::get));
            }
            if pristine {
                prop_assert!(fast.is_some(), "{text}");
            }
        }
    }

    #[test]
    fn reads_the_routed_members_as_raw_text() {
        let text = r#" { "model" : "gpt-5", "messages":[{"role":"user","content":"a \"q\" \u00e9"}],
            "stream":true, "service_tier":null, "stream_options":{"include_usage":false}, "n":-1.5e+3 } "#;
        let f = top_fields(text).unwrap();
        assert_eq!(f.model, Some(r#""gpt-5""#));
        assert_eq!(f.stream, Some("true"));
        assert_eq!(f.service_tier, Some("null"));
        assert_eq!(f.stream_options, Some(r#"{"include_usage":false}"#));
        assert_eq!(top_fields("{}"), Some(Fields::default()));
    }

    #[test]
    fn leaves_to_serde_what_is_malformed_or_unusual() {
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
            r#"{"model":"a","model":"b"}"#,
        ] {
            assert_eq!(top_fields(text), None, "{text}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(top_fields(&deep), None);
    }
}
