//! The fast path of request-body parsing: the raw text of the four members routing reads
//! (and of the output caps the budget's estimate reads),
//! from one pass of [`crate::json_scan`] that also checks the body is a well-formed JSON
//! object. Whenever the scan cannot vouch for the body (or a routed member repeats), the
//! caller parses with `serde_json` instead, which gives the exact error message.

use crate::json_scan;

/// Raw JSON text of the members routing reads, as slices of the body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub model: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub service_tier: Option<&'a str>,
    pub stream_options: Option<&'a str>,
    /// The output caps and `n`, read for the budget's estimate only. A repeat of one of
    /// these is not refused (routing does not depend on them, and `serde_json` ignores
    /// them): the last one counts.
    pub max_completion_tokens: Option<&'a str>,
    pub max_tokens: Option<&'a str>,
    pub max_output_tokens: Option<&'a str>,
    pub n: Option<&'a str>,
}

/// The routed members of `text` if it is a well-formed JSON object and nothing about it
/// needs `serde_json`'s judgement; `None` otherwise.
pub fn top_fields(text: &str) -> Option<Fields<'_>> {
    let mut fields = Fields::default();
    json_scan::members(text.as_bytes(), |key, value| {
        let last = match key {
            b"max_completion_tokens" => Some(&mut fields.max_completion_tokens),
            b"max_tokens" => Some(&mut fields.max_tokens),
            b"max_output_tokens" => Some(&mut fields.max_output_tokens),
            b"n" => Some(&mut fields.n),
            _ => None,
        };
        if let Some(slot) = last {
            *slot = Some(&text[value]);
            return Some(());
        }
        let slot = match key {
            b"model" => &mut fields.model,
            b"stream" => &mut fields.stream,
            b"service_tier" => &mut fields.service_tier,
            b"stream_options" => &mut fields.stream_options,
            _ => return Some(()),
        };
        // A repeated routed member: serde_json names the error.
        slot.replace(&text[value]).is_none().then_some(())
    })?;
    Some(fields)
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
    fn leaves_repeated_routed_members_to_serde() {
        assert_eq!(top_fields(r#"{"model":"a","model":"b"}"#), None);
        assert!(top_fields(r#"{"n":1,"n":2}"#).is_some(), "other repeats are serde's business too, and it allows them");
    }
}
