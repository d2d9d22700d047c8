//! Unit tests of answer planning: stop sequences, limits, `n` and tool choice.

use serde_json::json;

use super::*;
use crate::sim::usage::usage_for;

fn spec(json: &serde_json::Value) -> Spec {
    Spec::chat(json).unwrap()
}

#[test]
fn stop_cuts_inside_a_token() {
    let mut pieces: Vec<String> = ["flex", " gateway", " routes"].map(str::to_owned).to_vec();
    assert!(stop_at(&mut pieces, &["way".to_owned(), "zzz".to_owned()]));
    assert_eq!(pieces, ["flex", " gate"]);
    let mut pieces = vec!["a".to_owned()];
    assert!(!stop_at(&mut pieces, &["b".to_owned()]));
}

#[test]
fn limits_end_with_length_and_usage_follows_the_choices() {
    let ids = Ids::new(0);
    let base = usage_for("gpt-4o", 10, None);
    let answer = plan(base, None, 10, &spec(&json!({"n": 3})), &ids);
    assert_eq!(answer.choices.len(), 3);
    assert!(answer.choices.iter().all(|c| c.finish == Finish::Stop && c.pieces.len() == 16));
    assert_eq!(answer.usage.completion_tokens, 48);
    assert_eq!(answer.usage.total_tokens, 58);
    assert_ne!(answer.choices[0].content(), answer.choices[1].content());

    let base = usage_for("gpt-4o", 10, Some(5));
    let answer = plan(base, Some(5), 10, &spec(&json!({})), &ids);
    assert_eq!(answer.choices[0].finish, Finish::Length);
    assert_eq!(answer.usage, base);

    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
    let format = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}});
    let answer = plan(base, Some(2), 10, &spec(&format), &ids);
    assert_eq!((answer.choices[0].finish, answer.usage.completion_tokens), (Finish::Length, 2));
}

#[test]
fn tool_choice_decides_tool_calls() {
    let ids = Ids::new(0);
    let base = usage_for("gpt-4o", 10, None);
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"], "additionalProperties": false}}}]);
    let user = json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools});
    let answer = plan(base, None, 1, &spec(&user), &ids);
    let call = &answer.choices[0].tool_calls[0];
    assert_eq!(answer.choices[0].finish, Finish::ToolCalls);
    assert!(serde_json::from_str::<serde_json::Value>(&call.arguments()).unwrap()["x"].is_i64());
    assert!(call.id.starts_with("call_"));

    let mut after = user.clone();
    after["messages"] =
        json!([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c", "content": "1"}]);
    assert!(plan(base, None, 1, &spec(&after), &ids).choices[0].tool_calls.is_empty());
    after["tool_choice"] = json!("required");
    assert_eq!(plan(base, None, 1, &spec(&after), &ids).choices[0].tool_calls.len(), 1);

    let mut none = user.clone();
    none["tool_choice"] = json!("none");
    assert!(plan(base, None, 1, &spec(&none), &ids).choices[0].tool_calls.is_empty());
    let mut unknown = user;
    unknown["tool_choice"] = json!({"type": "function", "function": {"name": "g"}});
    assert!(Spec::chat(&unknown).is_err());
    assert!(Spec::chat(&json!({"tool_choice": "required"})).is_err());
    assert!(Spec::chat(&json!({"top_logprobs": 2})).is_err());
    assert!(Spec::chat(&json!({"n": 0})).is_err());
}
