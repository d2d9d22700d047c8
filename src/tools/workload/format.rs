//! The JSONL workload format: one JSON object per line, one request each. It is a
//! superset of OpenAI Batch API input lines, so existing batch files replay as they are:
//!
//! ```text
//! {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}
//! {"id": "ui-7", "lane": "interactive", "url": "/v1/responses", "body": {...}, "headers": {"x-flexgate-deadline": "30s"}}
//! ```
//!
//! `url` is relative to the API root: a leading `/v1` is dropped and the rest appended to
//! the lane's base URL (which carries its own `/v1` or `/flex/v1`). Only `POST` with a
//! JSON body is replayed. Parsing collects every problem with its line number rather
//! than stopping at the first. Documented for users in `docs/workload.md`.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Lane;

/// Problems reported at most, so a wrong file does not print a wall of text.
const MAX_PROBLEMS: usize = 20;

/// Headers the runner sets itself; a line may not override them.
const RESERVED_HEADERS: [&str; 4] = ["authorization", "content-type", "content-length", "host"];

/// One request of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// `id`, else the Batch `custom_id`, else `line N`.
    pub id: String,
    /// `None`: the replay's default lane (`--lane`).
    pub lane: Option<Lane>,
    /// Path below the API root, starting with `/`: `/chat/completions`.
    pub path: String,
    pub body: Map<String, Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Item {
    /// `body.stream == true`.
    pub fn stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool).unwrap_or(false)
    }

    /// `body.model`, if it is a string.
    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    id: Option<String>,
    custom_id: Option<String>,
    method: Option<String>,
    url: String,
    body: Map<String, Value>,
    lane: Option<Lane>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Every problem found in a workload file, each naming its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid workload:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct FormatErrors(pub Vec<String>);

/// Parse a whole file. Blank lines are skipped; an empty workload is an error.
pub fn parse_jsonl(text: &str) -> Result<Vec<Item>, FormatErrors> {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let mut failed = 0_usize;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(index + 1, line) {
            Ok(item) => items.push(item),
            Err(problem) => {
                failed += 1;
                if problems.len() < MAX_PROBLEMS {
                    problems.push(problem);
                }
            }
        }
    }
    if failed > problems.len() {
        problems.push(format!("… and {} more lines with problems", failed - problems.len()));
    }
    if problems.is_empty() && items.is_empty() {
        problems.push("the workload has no requests".to_owned());
    }
    if problems.is_empty() { Ok(items) } else { Err(FormatErrors(problems)) }
}

/// Parse one line; `number` is 1-based.
pub fn parse_line(number: usize, line: &str) -> Result<Item, String> {
    let raw: RawLine = serde_json::from_str(line).map_err(|e| format!("line {number}: {e}"))?;
    let bad = |what: String| format!("line {number}: {what}");
    if let Some(method) = &raw.method
        && !method.eq_ignore_ascii_case("POST")
    {
        return Err(bad(format!("`method` is `{method}`; only POST requests can be replayed")));
    }
    let path = api_path(&raw.url).map_err(bad)?;
    let mut headers = Vec::with_capacity(raw.headers.len());
    for (name, value) in raw.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(format!("bad header name `{name}`")))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(bad(format!("header `{name}` is set by the replay tool, not by a line")));
        }
        let value = HeaderValue::from_str(&value).map_err(|_| bad(format!("bad value for header `{name}`")))?;
        headers.push((name, value));
    }
    let id = raw.id.or(raw.custom_id).unwrap_or_else(|| format!("line {number}"));
    Ok(Item { id, lane: raw.lane, path, body: raw.body, headers })
}

/// The endpoint path below the API root: `/v1/chat/completions` and `/chat/completions`
/// both give `/chat/completions`. Absolute URLs, queries and dot segments are refused.
fn api_path(url: &str) -> Result<String, String> {
    if !url.starts_with('/') || url.contains("://") {
        return Err(format!("`url` must be a path such as `/v1/chat/completions`, not `{url}`"));
    }
    if url.contains(['?', '#', '\\']) || url.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("`url` `{url}` may not contain a query, fragment or dot segments"));
    }
    let rest = if url == "/v1" { "" } else { url.strip_prefix("/v1").filter(|r| r.starts_with('/')).unwrap_or(url) };
    if rest.trim_matches('/').is_empty() {
        return Err(format!("`url` `{url}` names no endpoint"));
    }
    Ok(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_api_lines_parse_as_they_are() {
        let line = r#"{"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 100}}"#;
        let item = parse_line(1, line).unwrap();
        assert_eq!(item.id, "request-1");
        assert_eq!(item.lane, None);
        assert_eq!(item.path, "/chat/completions");
        assert_eq!(item.model(), Some("gpt-5-mini"));
        assert!(!item.stream());
        assert!(item.headers.is_empty());
    }

    #[test]
    fn native_lines_carry_lane_headers_and_stream() {
        let line = r#"{"id": "ui-7", "lane": "interactive", "url": "/responses", "body": {"model": "gpt-5", "input": "hi", "stream": true}, "headers": {"x-flexgate-deadline": "30s"}}"#;
        let item = parse_line(4, line).unwrap();
        assert_eq!(item.id, "ui-7");
        assert_eq!(item.lane, Some(Lane::Interactive));
        assert_eq!(item.path, "/responses");
        assert!(item.stream());
        assert_eq!(item.headers[0].0.as_str(), "x-flexgate-deadline");
        let unnamed = parse_line(9, r#"{"url": "/v1/embeddings", "body": {"model": "m", "input": "x"}}"#).unwrap();
        assert_eq!(unnamed.id, "line 9");
    }

    #[test]
    fn urls_are_relative_to_the_api_root() {
        assert_eq!(api_path("/v1/chat/completions").unwrap(), "/chat/completions");
        assert_eq!(api_path("/chat/completions").unwrap(), "/chat/completions");
        assert_eq!(api_path("/v1beta/x").unwrap(), "/v1beta/x");
        for bad in ["https://api.openai.com/v1/chat/completions", "v1/chat", "/v1", "/v1/", "/v1/../admin", "/v1/x?y=1"]
        {
            assert!(api_path(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = [
            r#"{"url": "/v1/chat/completions", "body": {"model": "m"}}"#,
            "",
            "not json",
            r#"{"custom_id": "x", "method": "GET", "url": "/v1/models", "body": {}}"#,
            r#"{"url": "/v1/chat/completions", "body": {}, "headers": {"Authorization": "Bearer sk"}}"#,
            r#"{"url": "/v1/chat/completions", "body": [], "lane": "urgent"}"#,
            r#"{"url": "/v1/chat/completions", "body": {}, "priority": 1}"#,
        ]
        .join("\n");
        let errors = parse_jsonl(&text).unwrap_err().0;
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with("line 3:"), "{errors:#?}");
        assert!(errors[1].starts_with("line 4:") && errors[1].contains("only POST"));
        assert!(errors[2].starts_with("line 5:") && errors[2].contains("authorization"));
        assert!(errors[3].starts_with("line 6:"));
        assert!(errors[4].starts_with("line 7:") && errors[4].contains("priority"));
    }

    #[test]
    fn empty_and_oversized_failures() {
        assert!(parse_jsonl("\n\n").unwrap_err().0[0].contains("no requests"));
        let many = "x\n".repeat(MAX_PROBLEMS + 5);
        let errors = parse_jsonl(&many).unwrap_err().0;
        assert_eq!(errors.len(), MAX_PROBLEMS + 1);
        assert!(errors[MAX_PROBLEMS].contains("5 more"));
    }
}
