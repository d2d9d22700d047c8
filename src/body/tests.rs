use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::BodyInfo;

fn rewrite(body: &str, tier: Option<&str>, usage: bool) -> Value {
    let bytes = Bytes::from(body.to_owned());
    let info = BodyInfo::parse(&bytes).unwrap();
    let out = info.rewrite(&bytes, tier, usage);
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

#[test]
fn reads_routing_fields() {
    let info = BodyInfo::parse(
        br#"{"model":"gpt-5","stream":true,"service_tier":"flex","stream_options":{"include_usage":true}}"#,
    )
    .unwrap();
    assert_eq!(info.model.as_deref(), Some("gpt-5"));
    assert!(info.stream && info.include_usage);
    assert_eq!(info.service_tier.as_deref(), Some("flex"));
    let info = BodyInfo::parse(br#"{"model":"gpt-5","service_tier":null,"stream":null}"#).unwrap();
    assert_eq!(info.service_tier, None);
    assert!(!info.stream);
}

#[test]
fn reads_the_output_caps_for_the_estimate_without_judging_them() {
    let info = BodyInfo::parse(br#"{"model":"m","max_tokens":300,"max_completion_tokens":200,"n":3}"#).unwrap();
    assert_eq!((info.max_output, info.choices), (300, 3), "the largest cap counts");
    let info = BodyInfo::parse(br#"{"max_output_tokens":50,"max_output_tokens":70}"#).unwrap();
    assert_eq!(info.max_output, 70, "a repeat is not refused, the last one counts");
    let info = BodyInfo::parse(br#"{"max_tokens":"lots","n":-2}"#).unwrap();
    assert_eq!((info.max_output, info.choices), (0, 1), "left for the upstream to refuse");
    let info = BodyInfo::parse(br#"{"n":100000}"#).unwrap();
    assert_eq!(info.choices, 128);
}

#[test]
fn rejects_wrong_types_with_the_param_named() {
    for (body, param) in [
        (r#"{"model":5}"#, "model"),
        (r#"{"model":"m","stream":"yes"}"#, "stream"),
        (r#"{"model":"m","service_tier":"cheap"}"#, "service_tier"),
        (r#"{"model":"m","service_tier":1}"#, "service_tier"),
        (r#"{"model":"m","stream_options":[]}"#, "stream_options"),
        (r#"{"model":"m","stream_options":{"include_usage":"no"}}"#, "stream_options"),
    ] {
        match BodyInfo::parse(body.as_bytes()) {
            Err(crate::error::GatewayError::InvalidParam { param: p, .. }) => assert_eq!(p, param, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    for body in ["", "[1]", "{", "\"x\"", "{\"model\":\"a\",\"model\":\"b\"}"] {
        assert!(BodyInfo::parse(body.as_bytes()).is_err(), "{body}");
    }
}

#[test]
fn rejects_invalid_utf8_anywhere_not_only_in_routed_fields() {
    let bad: &[u8] = b"{\"model\":\"gpt-5\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}";
    match BodyInfo::parse(bad) {
        Err(crate::error::GatewayError::InvalidJson(message)) => assert!(message.contains("UTF-8"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn replaces_an_existing_tier_and_keeps_the_rest_byte_for_byte() {
    let body = r#"{"model":"gpt-5", "service_tier" : "auto","messages":[{"role":"user","content":"hi \"there\""}]}"#;
    let bytes = Bytes::from(body);
    let out = BodyInfo::parse(&bytes).unwrap().rewrite(&bytes, Some("flex"), false);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"model":"gpt-5", "service_tier" : "flex","messages":[{"role":"user","content":"hi \"there\""}]}"#
    );
}

#[test]
fn inserts_missing_fields() {
    let v = rewrite(r#"{"model":"gpt-5","stream":true}"#, Some("default"), true);
    assert_eq!(
        v,
        json!({"model":"gpt-5","stream":true,"service_tier":"default","stream_options":{"include_usage":true}})
    );
    let v = rewrite("{}", Some("flex"), true);
    assert_eq!(v, json!({"service_tier":"flex","stream_options":{"include_usage":true}}));
    let v = rewrite(" { } ", None, true);
    assert_eq!(v, json!({"stream_options":{"include_usage":true}}));
}

#[test]
fn forces_include_usage_in_every_shape() {
    for (body, expect) in [
        (r#"{"stream_options":{}}"#, json!({"stream_options":{"include_usage":true}})),
        (
            r#"{"stream_options":{"include_obfuscation":false}}"#,
            json!({"stream_options":{"include_usage":true,"include_obfuscation":false}}),
        ),
        (r#"{"stream_options":{"include_usage":false}}"#, json!({"stream_options":{"include_usage":true}})),
        (r#"{"stream_options":{"include_usage":null}}"#, json!({"stream_options":{"include_usage":true}})),
        (r#"{"stream_options":null}"#, json!({"stream_options":{"include_usage":true}})),
    ] {
        assert_eq!(rewrite(body, None, true), expect, "{body}");
    }
}

#[test]
fn no_change_is_zero_copy() {
    let bytes = Bytes::from_static(br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#);
    let out = BodyInfo::parse(&bytes).unwrap().rewrite(&bytes, None, true);
    assert_eq!(out.as_ptr(), bytes.as_ptr());
}

#[test]
fn a_body_already_rewritten_is_not_copied_again_and_can_still_change_tier() {
    let original = Bytes::from_static(br#"{"model":"m","stream":true,"messages":[]}"#);
    let sent = BodyInfo::parse(&original).unwrap().rewrite(&original, Some("flex"), true);
    let info = BodyInfo::parse(&sent).unwrap();
    assert_eq!(info.rewrite(&sent, Some("flex"), true).as_ptr(), sent.as_ptr());
    assert!(info.rewritten(&sent, Some("flex"), true).is_none());
    let from_sent: Value = serde_json::from_slice(&info.rewrite(&sent, Some("default"), true)).unwrap();
    let from_original: Value =
        serde_json::from_slice(&BodyInfo::parse(&original).unwrap().rewrite(&original, Some("default"), true)).unwrap();
    assert_eq!(from_sent, from_original);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z\"\\\\ {}:,é]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The rewrite changes exactly the intended fields; everything else is equal.
    #[test]
    fn rewrite_touches_only_intended_fields(
        fields in prop::collection::btree_map("[a-z_]{1,8}", arb_json(), 0..6),
        tier in prop::option::of(prop_oneof![Just("flex"), Just("default")]),
        existing_tier in prop::option::of(prop_oneof![Just("auto"), Just("priority")]),
        usage in any::<bool>(),
        pretty in any::<bool>(),
    ) {
        let mut obj: serde_json::Map<String, Value> = fields.into_iter()
            .filter(|(k, _)| k != "service_tier" && k != "stream_options" && k != "model" && k != "stream")
            .collect();
        if let Some(t) = existing_tier { obj.insert("service_tier".into(), json!(t)); }
        let original = Value::Object(obj.clone());
        let text = if pretty { serde_json::to_string_pretty(&original).unwrap() } else { original.to_string() };
        let out = rewrite(&text, tier, usage);
        let mut expected = obj;
        if let Some(t) = tier { expected.insert("service_tier".into(), json!(t)); }
        if usage { expected.insert("stream_options".into(), json!({"include_usage": true})); }
        prop_assert_eq!(out, Value::Object(expected));
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = BodyInfo::parse(&bytes);
    }
}

proptest! {
    /// The info worked out from the edits is what a fresh parse of the new body finds
    /// (`model` and `service_tier` are the original's by design).
    #[test]
    fn spans_after_a_rewrite_are_those_a_fresh_parse_finds(
        tier_field in prop::option::of(prop::sample::select(vec!["\"flex\"", "null", "\"auto\"", "\"default\""])),
        options in prop::option::of(prop::sample::select(vec![
            "null", "{}", "{ }", "{\"include_usage\":false}", "{ \"x\" : 1 }", "{\"include_usage\":null,\"x\":[1]}",
            "{\"x\":{\"y\":2}, \"include_usage\" :true}",
        ])),
        others in any::<bool>(),
        reverse in any::<bool>(),
        spaced in any::<bool>(),
        tier in prop::option::of(prop::sample::select(vec!["flex", "default", "priority"])),
        force in any::<bool>(),
    ) {
        let mut members: Vec<String> = Vec::new();
        if others {
            members.push(r#""model":"gpt-5""#.into());
            members.push(r#""messages":[{"role":"user","content":"hi \"there\""}]"#.into());
        }
        if let Some(t) = tier_field {
            members.push(format!("\"service_tier\":{t}"));
        }
        if let Some(o) = options {
            members.push(format!("\"stream_options\":{o}"));
        }
        if reverse {
            members.reverse();
        }
        let sep = if spaced { " , " } else { "," };
        let text = if spaced { format!(" {{ {} }} ", members.join(sep)) } else { format!("{{{}}}", members.join(sep)) };
        let bytes = Bytes::from(text.clone());
        let info = BodyInfo::parse(&bytes).unwrap();
        if let Some((out, got)) = info.rewritten_with_info(&bytes, tier, force) {
            let mut want = BodyInfo::parse(&out).unwrap();
            want.model.clone_from(&got.model);
            want.service_tier.clone_from(&got.service_tier);
            prop_assert_eq!(got, want, "{} -> {}", text, String::from_utf8_lossy(&out));
        }
    }
}
