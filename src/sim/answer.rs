//! What the simulated model answers to a chat or Responses request, decided before the
//! answer is rendered (so usage and the `x-ratelimit-*` token count agree with it):
//! per choice, the content as a list of tokens or the tool calls, and why it ended.
//!
//! - **Text**: the usage formula's visible words (see [`usage`](super::usage)). The
//!   simulated model writes 16 tokens on its own and, given an output limit, writes up
//!   to the limit, so a request with a limit ends with `length`. A `stop` sequence cuts
//!   the text before its first occurrence and ends it with `stop`.
//! - **JSON** (`json_object`, `json_schema`) and **tool calls**: a generated instance
//!   (of the schema, of the tool's `parameters`), cut into tokens of 4 characters. Its
//!   tokens are its visible output; a limit too small cuts it and ends with `length`.
//! - Reasoning models add the formula's reasoning tokens to each choice; usage sums all
//!   `n` choices, the prompt counted once.

pub(crate) mod request;

use serde_json::json;

pub(crate) use request::{Format, Spec};

use super::schema;
use super::text::{self, Ids, splitmix64};
use super::usage::SimUsage;

/// Characters per token of generated JSON.
const JSON_TOKEN_CHARS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    Length,
    ToolCalls,
}

impl Finish {
    /// The chat `finish_reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments JSON, in tokens; concatenated they are the `arguments` string.
    pub pieces: Vec<String>,
}

impl ToolCall {
    pub fn arguments(&self) -> String {
        self.pieces.concat()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Choice {
    /// Content tokens; empty (and `content: null`) when the choice calls a tool.
    pub pieces: Vec<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish: Finish,
    /// Seeds the choice's logprobs.
    pub seed: u64,
}

impl Choice {
    pub fn content(&self) -> Option<String> {
        self.tool_calls.is_empty().then(|| self.pieces.concat())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub choices: Vec<Choice>,
    pub usage: SimUsage,
    /// `Some(top_logprobs)` when the request asked for logprobs.
    pub logprobs: Option<usize>,
}

/// The answer to a request whose prompt and limit give `base` usage (one choice).
pub(crate) fn plan(base: SimUsage, limit: Option<u64>, seed: u64, spec: &Spec, ids: &Ids) -> Answer {
    let mut choices = Vec::new();
    let mut completion = 0u64;
    let mut reasoning = 0u64;
    for index in 0..spec.n {
        // Choice 0 keeps the request's seed, so `n: 1` answers as it always did.
        let seed = if index == 0 { seed } else { splitmix64(seed ^ index) };
        let choice = choice(base, limit, seed, spec, ids);
        let visible: usize = choice.pieces.len() + choice.tool_calls.iter().map(|c| c.pieces.len()).sum::<usize>();
        completion += base.reasoning_tokens + u64::try_from(visible).unwrap_or(u64::MAX);
        reasoning += base.reasoning_tokens;
        choices.push(choice);
    }
    let usage = SimUsage {
        completion_tokens: completion,
        reasoning_tokens: reasoning,
        total_tokens: base.prompt_tokens.saturating_add(completion),
        ..base
    };
    Answer { choices, usage, logprobs: spec.logprobs }
}

/// An answer with no planned choices: legacy completions and embeddings render from
/// the usage alone.
pub(crate) fn plain(base: SimUsage) -> Answer {
    Answer { choices: Vec::new(), usage: base, logprobs: None }
}

fn choice(base: SimUsage, limit: Option<u64>, seed: u64, spec: &Spec, ids: &Ids) -> Choice {
    // Visible tokens the limit leaves after reasoning; `None` = unlimited.
    let budget = limit.map(|l| usize::try_from(l.saturating_sub(base.reasoning_tokens)).unwrap_or(usize::MAX));
    if spec.calls_tool()
        && let Some(tool) = pick_tool(spec, seed)
    {
        let arguments = schema::instance(&tool.parameters, seed).to_string();
        let (pieces, cut) = cut(json_pieces(&arguments), budget);
        let call = ToolCall { id: ids.object_id("call_", 24), name: tool.name.clone(), pieces };
        let finish = if cut { Finish::Length } else { Finish::ToolCalls };
        return Choice { pieces: Vec::new(), tool_calls: vec![call], finish, seed };
    }
    let json = match &spec.format {
        Format::Text => None,
        Format::JsonObject => Some(json!({"answer": text::sentence(seed, 6)})),
        Format::JsonSchema(schema) => Some(schema::instance(schema, seed)),
    };
    if let Some(value) = json {
        let (pieces, cut) = cut(json_pieces(&value.to_string()), budget);
        return Choice {
            pieces,
            tool_calls: Vec::new(),
            finish: if cut { Finish::Length } else { Finish::Stop },
            seed,
        };
    }
    let words = base.visible_tokens();
    let mut pieces: Vec<String> = (0..words).map(|i| text::delta(seed, i)).collect();
    let mut finish = if limit.is_some() { Finish::Length } else { Finish::Stop };
    if stop_at(&mut pieces, &spec.stop) {
        finish = Finish::Stop;
    }
    Choice { pieces, tool_calls: Vec::new(), finish, seed }
}

fn pick_tool(spec: &Spec, seed: u64) -> Option<&request::Tool> {
    match &spec.tool_choice {
        request::ToolChoice::Named(name) => spec.tools.iter().find(|t| &t.name == name),
        _ if spec.tools.is_empty() => None,
        _ => spec.tools.get(usize::try_from(seed % spec.tools.len() as u64).unwrap_or(0)),
    }
}

/// `text` in tokens of [`JSON_TOKEN_CHARS`] characters.
fn json_pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(JSON_TOKEN_CHARS).map(|c| c.iter().collect()).collect()
}

/// The first `budget` pieces, and whether any were cut.
fn cut(mut pieces: Vec<String>, budget: Option<usize>) -> (Vec<String>, bool) {
    match budget {
        Some(budget) if pieces.len() > budget => {
            pieces.truncate(budget);
            (pieces, true)
        }
        _ => (pieces, false),
    }
}

/// Cuts `pieces` before the first occurrence of any `stop` sequence; whether one occurred.
fn stop_at(pieces: &mut Vec<String>, stop: &[String]) -> bool {
    if stop.is_empty() {
        return false;
    }
    let text = pieces.concat();
    let Some(at) = stop.iter().filter_map(|s| text.find(s.as_str())).min() else { return false };
    let mut start = 0;
    let mut kept = Vec::new();
    for piece in pieces.drain(..) {
        if start >= at {
            break;
        }
        let end = start + piece.len();
        kept.push(if end > at { piece[..at - start].to_owned() } else { piece });
        start = end;
    }
    kept.retain(|p| !p.is_empty());
    *pieces = kept;
    true
}

#[cfg(test)]
mod tests;
