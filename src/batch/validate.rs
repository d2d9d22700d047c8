//! Validation of a batch's input file as OpenAI reports it: one pass over the file,
//! streamed (memory holds the line index and the set of `custom_id`s, never the file),
//! collecting `errors.data[]` entries (`code`, `line` counted from 1, `message`, `param`)
//! or the index of every line for the runner.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// OpenAI's cap on requests in one batch.
pub const MAX_LINES: usize = 50_000;
/// At most this many problems are listed; the first ones are the useful ones.
const MAX_ERRORS: usize = 1000;

/// Where one line is in the input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub line: i64,
    pub start: u64,
    pub len: u64,
    pub custom_id: String,
}

/// The outcome of a pass: the lines and the model, or the problems found.
#[derive(Debug, Default)]
pub struct Checked {
    pub lines: Vec<Indexed>,
    pub model: Option<String>,
    pub errors: Vec<Value>,
}

/// What a line must carry (its body is checked for `model` and `stream` only).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    custom_id: Option<&'a RawValue>,
    method: Option<String>,
    url: Option<String>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Body {
    model: Option<Value>,
    stream: Option<Value>,
}

fn problem(errors: &mut Vec<Value>, code: &str, line: Option<i64>, message: &str, param: Option<&str>) {
    if errors.len() < MAX_ERRORS {
        errors.push(json!({"code": code, "line": line, "message": message, "param": param}));
    }
}

/// Check the file at `path` for a batch on `endpoint`.
pub fn check(path: &Path, endpoint: &str, max_bytes: u64) -> std::io::Result<Checked> {
    let file = std::fs::File::open(path)?;
    let mut out = Checked::default();
    if file.metadata()?.len() > max_bytes {
        problem(&mut out.errors, "file_too_large", None, "The input file is larger than 200 MB.", None);
        return Ok(out);
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut seen: HashSet<String> = HashSet::new();
    let mut buffer = Vec::new();
    let (mut start, mut number, mut requests) = (0u64, 0i64, 0usize);
    loop {
        buffer.clear();
        let read = reader.read_until(b'\n', &mut buffer)? as u64;
        if read == 0 {
            break;
        }
        number += 1;
        let at = start;
        start += read;
        let text = buffer.trim_ascii();
        if text.is_empty() {
            continue;
        }
        requests += 1;
        if requests > MAX_LINES {
            problem(&mut out.errors, "too_many_tasks", None, "A batch holds at most 50,000 requests.", None);
            break;
        }
        if let Some(custom_id) = one(text, number, endpoint, &mut out, &mut seen) {
            out.lines.push(Indexed { line: number, start: at, len: read, custom_id });
        }
    }
    if out.lines.is_empty() && out.errors.is_empty() {
        problem(&mut out.errors, "empty_file", None, "The input file has no requests.", None);
    }
    if !out.errors.is_empty() {
        out.lines = Vec::new();
    }
    Ok(out)
}

/// Check one line; its `custom_id` when it is good.
fn one(text: &[u8], number: i64, endpoint: &str, out: &mut Checked, seen: &mut HashSet<String>) -> Option<String> {
    let errors = &mut out.errors;
    let Ok(line) = serde_json::from_slice::<Line<'_>>(text) else {
        problem(errors, "invalid_json_line", Some(number), "This line is not parseable as valid JSON.", None);
        return None;
    };
    let custom_id = match line.custom_id.map(|raw| serde_json::from_str::<String>(raw.get())) {
        Some(Ok(id)) if !id.is_empty() => id,
        _ => {
            let message = "Each request needs a non-empty string `custom_id`.";
            problem(errors, "missing_custom_id", Some(number), message, Some("custom_id"));
            return None;
        }
    };
    if line.method.as_deref() != Some("POST") {
        problem(errors, "invalid_method", Some(number), "Only the POST method is supported.", Some("method"));
        return None;
    }
    if line.url.as_deref() != Some(endpoint) {
        let message = format!("The url must be the batch's endpoint, '{endpoint}'.");
        problem(errors, "url_mismatch", Some(number), &message, Some("url"));
        return None;
    }
    let body = line.body.and_then(|b| serde_json::from_str::<Body>(b.get()).ok());
    let Some(body) = body else {
        problem(errors, "invalid_body", Some(number), "The request body must be a JSON object.", Some("body"));
        return None;
    };
    let Some(model) = body.model.as_ref().and_then(Value::as_str) else {
        problem(errors, "missing_model", Some(number), "The request body needs a `model`.", Some("body.model"));
        return None;
    };
    if body.stream.as_ref().and_then(Value::as_bool) == Some(true) {
        problem(errors, "stream_unsupported", Some(number), "Batch requests cannot stream.", Some("body.stream"));
        return None;
    }
    match &out.model {
        None => out.model = Some(model.to_owned()),
        Some(first) if first != model => {
            let message = format!("Every request in a batch must use the same model ('{first}').");
            problem(errors, "model_mismatch", Some(number), &message, Some("body.model"));
            return None;
        }
        Some(_) => {}
    }
    if !seen.insert(custom_id.clone()) {
        let message = format!(
            "The custom_id for this request is a duplicate of another request ('{custom_id}'); custom_ids must be unique."
        );
        problem(errors, "duplicate_custom_id", Some(number), &message, Some("custom_id"));
        return None;
    }
    Some(custom_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> Checked {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        check(file.path(), "/v1/chat/completions", 200_000_000).unwrap()
    }

    fn line(id: &str, model: &str) -> String {
        format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{{"model":"{model}","messages":[]}}}}"#
        )
    }

    #[test]
    fn a_good_file_is_indexed_line_by_line() {
        let text = format!("{}\n\n{}\n", line("a", "m"), line("b", "m"));
        let c = checked(&text);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.model.as_deref(), Some("m"));
        assert_eq!(c.lines.iter().map(|l| (l.line, l.custom_id.as_str())).collect::<Vec<_>>(), [(1, "a"), (3, "b")]);
        let second = &c.lines[1];
        let at = usize::try_from(second.start).unwrap();
        assert_eq!(text[at..at + usize::try_from(second.len).unwrap()].trim(), line("b", "m"));
    }

    #[test]
    fn each_problem_names_its_line_as_editors_count() {
        let text = [
            line("a", "m"),
            "{not json".to_owned(),
            line("a", "m"),
            line("c", "m").replace("POST", "GET"),
            line("d", "m").replace("/v1/chat/completions", "/v1/embeddings"),
            r#"{"custom_id":"e","method":"POST","url":"/v1/chat/completions","body":{"messages":[]}}"#.to_owned(),
            line("f", "other"),
            line("g", "m").replace("\"messages\"", "\"stream\":true,\"messages\""),
            r#"{"method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}"#.to_owned(),
        ]
        .join("\n");
        let c = checked(&text);
        let found: Vec<(String, i64)> =
            c.errors.iter().map(|e| (e["code"].as_str().unwrap().to_owned(), e["line"].as_i64().unwrap())).collect();
        let expected = [
            ("invalid_json_line", 2),
            ("duplicate_custom_id", 3),
            ("invalid_method", 4),
            ("url_mismatch", 5),
            ("missing_model", 6),
            ("model_mismatch", 7),
            ("stream_unsupported", 8),
            ("missing_custom_id", 9),
        ];
        assert_eq!(found, expected.map(|(c, l)| (c.to_owned(), l)));
        assert!(c.lines.is_empty(), "nothing is indexed from a bad file");
    }

    #[test]
    fn empty_oversized_and_overlong_files_fail_as_a_whole() {
        assert_eq!(checked("\n\n").errors[0]["code"], "empty_file");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), line("a", "m")).unwrap();
        let c = check(file.path(), "/v1/chat/completions", 10).unwrap();
        assert_eq!(c.errors[0]["code"], "file_too_large");
        let many: String = (0..=MAX_LINES).map(|i| line(&i.to_string(), "m") + "\n").collect();
        let c = checked(&many);
        assert_eq!(c.errors.last().unwrap()["code"], "too_many_tasks");
    }
}
