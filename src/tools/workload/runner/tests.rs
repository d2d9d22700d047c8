//! How items become requests: lane → base URL, `url` joined below it, and the two body
//! changes (`include_usage` on streamed chat, `service_tier` for background without a
//! flex base URL).

use serde_json::json;

use super::*;
use crate::tools::workload::format::parse_line;

fn target(flex: Option<&str>) -> Target {
    Target {
        base_url: "http://gw:8080/v1/".into(),
        flex_base_url: flex.map(str::to_owned),
        api_key: None,
        default_lane: Lane::Background,
        env_proxy: false,
    }
}

fn item(line: &str) -> Item {
    parse_line(1, line).unwrap()
}

#[test]
fn batch_lines_go_to_the_default_lane_below_its_base_url() {
    let batch =
        item(r#"{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-5"}}"#);
    let p = prepare(&batch, &target(Some("http://gw:8080/flex/v1")));
    assert_eq!(p.url, "http://gw:8080/flex/v1/chat/completions");
    assert_eq!(p.lane, Lane::Background);
    assert_eq!(p.endpoint, Endpoint::ChatCompletions);
    assert_eq!(p.body.get("service_tier"), None, "the lane asks for flex, the body stays as it was");
}

#[test]
fn without_a_flex_base_url_background_asks_for_flex_in_the_body() {
    let batch = item(r#"{"url": "/v1/responses", "body": {"model": "gpt-5", "input": "x"}}"#);
    let p = prepare(&batch, &target(None));
    assert_eq!(p.url, "http://gw:8080/v1/responses");
    assert_eq!(p.body["service_tier"], json!("flex"));
    let own = item(r#"{"url": "/v1/responses", "body": {"model": "gpt-5", "service_tier": "default"}}"#);
    assert_eq!(prepare(&own, &target(None)).body["service_tier"], json!("default"), "an explicit tier is kept");
    let embed = item(r#"{"url": "/v1/embeddings", "body": {"model": "m", "input": "x"}}"#);
    assert_eq!(prepare(&embed, &target(None)).body.get("service_tier"), None, "only tier-routed endpoints");
}

#[test]
fn interactive_items_use_the_base_url_untouched() {
    let ui = item(r#"{"lane": "interactive", "url": "/chat/completions", "body": {"model": "gpt-5"}}"#);
    let p = prepare(&ui, &target(None));
    assert_eq!(p.url, "http://gw:8080/v1/chat/completions");
    assert_eq!(p.lane, Lane::Interactive);
    assert_eq!(p.body.get("service_tier"), None);
}

#[test]
fn streamed_chat_asks_for_usage_and_keeps_other_stream_options() {
    let s = item(
        r#"{"url": "/v1/chat/completions", "body": {"model": "gpt-5", "stream": true, "stream_options": {"include_obfuscation": false}}}"#,
    );
    let p = prepare(&s, &target(Some("http://f/v1")));
    assert_eq!(p.body["stream_options"], json!({"include_obfuscation": false, "include_usage": true}));
    let r = item(r#"{"url": "/v1/responses", "body": {"model": "gpt-5", "stream": true}}"#);
    assert_eq!(prepare(&r, &target(Some("http://f/v1"))).body.get("stream_options"), None, "Responses report usage");
    let plain = item(r#"{"url": "/v1/chat/completions", "body": {"model": "gpt-5"}}"#);
    assert_eq!(prepare(&plain, &target(Some("http://f/v1"))).body.get("stream_options"), None);
}
