//! The demo's mixed workload, reproducible from a seed: about 30% interactive requests
//! (short prompts, short answers, half of them streamed: a chat UI) and 70% background
//! requests (longer documents to summarise or classify: a nightly enrichment job), over
//! Chat Completions and Responses. A quarter of the background requests carry a short
//! `x-flexgate-deadline`, a job close to its SLA, so some of them escalate to standard
//! when flex answers 429 too often.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::{Item, Lane};

/// Share of interactive requests, in percent.
const INTERACTIVE_PERCENT: u32 = 30;
/// Share of background requests with a short deadline, in percent.
const SHORT_DEADLINE_PERCENT: u32 = 25;
/// The short deadline: flex gets half of it (the reserve), then standard.
pub const SHORT_DEADLINE: &str = "3s";

const QUESTIONS: [&str; 4] = [
    "What is the status of my order?",
    "Suggest a title for this ticket.",
    "Translate 'good morning' to French.",
    "Summarise the last message in one line.",
];

const TASKS: [&str; 3] = [
    "Summarise this support conversation and list follow-up actions:",
    "Classify the sentiment and topic of this product review:",
    "Extract company names, dates and amounts from this invoice:",
];

/// `n` requests, the same for the same `seed`.
pub fn demo_mix(n: usize, seed: u64) -> Vec<Item> {
    let mut rng = StdRng::seed_from_u64(seed);
    (1..=n).map(|i| one(&mut rng, i)).collect()
}

fn one(rng: &mut StdRng, i: usize) -> Item {
    let interactive = rng.random_ratio(INTERACTIVE_PERCENT, 100);
    let responses = rng.random_ratio(2, 5);
    let (lane, model, stream, prompt, max_tokens) = if interactive {
        let model = if rng.random_ratio(1, 4) { "gpt-5" } else { "gpt-5-mini" };
        let question = QUESTIONS[rng.random_range(0..QUESTIONS.len())];
        (Lane::Interactive, model, rng.random_bool(0.5), question.to_owned(), rng.random_range(40..=120_u64))
    } else {
        let model = ["gpt-5-mini", "gpt-5-mini", "gpt-5-nano", "gpt-5"][rng.random_range(0..4_usize)];
        let task = TASKS[rng.random_range(0..TASKS.len())];
        let document = "lorem ipsum dolor sit amet ".repeat(rng.random_range(20..=160_usize));
        (
            Lane::Background,
            model,
            rng.random_ratio(1, 5),
            format!("{task}\n\n{document}"),
            rng.random_range(150..=500_u64),
        )
    };
    let mut body = Map::new();
    body.insert("model".into(), Value::from(model));
    let path = if responses {
        body.insert("input".into(), Value::from(prompt));
        body.insert("max_output_tokens".into(), Value::from(max_tokens));
        "/responses"
    } else {
        body.insert("messages".into(), json!([{"role": "user", "content": prompt}]));
        body.insert("max_completion_tokens".into(), Value::from(max_tokens));
        "/chat/completions"
    };
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    let mut headers = Vec::new();
    if lane == Lane::Background && rng.random_ratio(SHORT_DEADLINE_PERCENT, 100) {
        headers.push((
            http::HeaderName::from_static("x-flexgate-deadline"),
            http::HeaderValue::from_static(SHORT_DEADLINE),
        ));
    }
    Item { id: format!("{}-{i}", lane.as_str()), lane: Some(lane), path: path.to_owned(), body, headers }
}

/// The items as JSONL in the documented format (for `--save-workload`).
pub fn to_jsonl(items: &[Item]) -> String {
    let mut out = String::new();
    for item in items {
        let headers: Map<String, Value> = item
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), Value::from(v.to_str().unwrap_or_default())))
            .collect();
        let mut line = json!({"id": item.id, "url": format!("/v1{}", item.path), "body": item.body});
        if let Some(lane) = item.lane {
            line["lane"] = Value::from(lane.as_str());
        }
        if !headers.is_empty() {
            line["headers"] = Value::Object(headers);
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::workload::parse_jsonl;

    #[test]
    fn the_mix_is_reproducible_and_mixed() {
        let items = demo_mix(400, 7);
        assert_eq!(items, demo_mix(400, 7));
        assert_ne!(items, demo_mix(400, 8));
        let interactive = items.iter().filter(|i| i.lane == Some(Lane::Interactive)).count();
        assert!((80..=160).contains(&interactive), "{interactive} of 400 interactive");
        assert!(items.iter().any(|i| i.path == "/responses" && i.stream()));
        assert!(items.iter().any(|i| i.path == "/chat/completions" && i.stream()));
        assert!(items.iter().any(|i| !i.headers.is_empty()));
        assert!(items.iter().filter(|i| i.lane == Some(Lane::Interactive)).all(|i| i.headers.is_empty()));
    }

    #[test]
    fn saved_workloads_parse_back_to_the_same_items() {
        let items = demo_mix(50, 1);
        assert_eq!(parse_jsonl(&to_jsonl(&items)).unwrap(), items);
    }
}
