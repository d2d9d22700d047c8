//! What a chat or Responses request asks the answer to be: its output format, the
//! function tools and `tool_choice`, whether the conversation just handed back a tool's
//! output, `n`, `stop` and `logprobs`. Read once, validated as `OpenAI` validates them
//! (each refusal is a 400 naming its parameter).

use serde_json::{Value, json};

use crate::sim::errors::ApiError;

/// Most choices one chat request may ask for.
pub const MAX_N: u64 = 128;
/// Most `top_logprobs` per token.
pub const MAX_TOP_LOGPROBS: u64 = 20;
/// Most `stop` sequences.
pub const MAX_STOP: usize = 4;

/// The content format asked for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Format {
    Text,
    JsonObject,
    JsonSchema(Value),
}

/// A function tool: its name and its `parameters` schema.
#[derive(Clone, Debug)]
pub(crate) struct Tool {
    pub name: String,
    pub parameters: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

/// Everything the answer depends on besides the model and the output limit.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub format: Format,
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    /// The last input is a tool's output (a `tool` message, a `function_call_output`).
    pub after_tool_output: bool,
    pub n: u64,
    pub stop: Vec<String>,
    /// `Some(top_logprobs)` when `logprobs: true`.
    pub logprobs: Option<usize>,
}

impl Spec {
    /// A Chat Completions request.
    pub fn chat(json: &Value) -> Result<Self, ApiError> {
        let format = match json.get("response_format") {
            None | Some(Value::Null) => Format::Text,
            Some(format) => {
                let schema = format.pointer("/json_schema/schema");
                parse_format("response_format", format, schema)?
            }
        };
        let tools = tools(json, |tool| tool.get("function"))?;
        let tool_choice = tool_choice(json, &tools, |choice| choice.pointer("/function/name"))?;
        let last_role =
            json.get("messages").and_then(Value::as_array).and_then(|m| m.last()).and_then(|m| m.get("role"));
        let after_tool_output = matches!(last_role.and_then(Value::as_str), Some("tool" | "function"));
        let n = match json.get("n") {
            None | Some(Value::Null) => 1,
            Some(n) => n.as_u64().filter(|n| (1..=MAX_N).contains(n)).ok_or_else(|| {
                ApiError::invalid_param(
                    "n",
                    format!("Invalid 'n': expected an integer between 1 and {MAX_N}, got {n}."),
                )
            })?,
        };
        Ok(Self { format, tools, tool_choice, after_tool_output, n, stop: stop(json)?, logprobs: logprobs(json)? })
    }

    /// A Responses request (`text.format`, flat function tools, no `n`/`stop`).
    pub fn responses(json: &Value) -> Result<Self, ApiError> {
        let format = match json.pointer("/text/format") {
            None | Some(Value::Null) => Format::Text,
            Some(format) => parse_format("text.format", format, format.get("schema"))?,
        };
        let tools = tools(json, |tool| Some(tool))?;
        let tool_choice = tool_choice(json, &tools, |choice| choice.get("name"))?;
        let last_item = json.get("input").and_then(Value::as_array).and_then(|items| items.last());
        let last_type = last_item.and_then(|item| item.get("type")).and_then(Value::as_str);
        let after_tool_output = last_type == Some("function_call_output");
        Ok(Self { format, tools, tool_choice, after_tool_output, n: 1, stop: Vec::new(), logprobs: None })
    }

    /// Whether this answer is a tool call: always when `required` or named, with `auto`
    /// unless the conversation just handed back a tool's output (so agent loops end).
    pub fn calls_tool(&self) -> bool {
        match self.tool_choice {
            ToolChoice::None => false,
            ToolChoice::Auto => !self.tools.is_empty() && !self.after_tool_output,
            ToolChoice::Required | ToolChoice::Named(_) => true,
        }
    }
}

fn parse_format(param: &'static str, format: &Value, schema: Option<&Value>) -> Result<Format, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Format::Text),
        Some("json_object") => Ok(Format::JsonObject),
        Some("json_schema") => Ok(Format::JsonSchema(schema.cloned().unwrap_or_else(|| json!({"type": "object"})))),
        _ => Err(ApiError::invalid_param(
            param,
            format!("Invalid '{param}': expected type 'text', 'json_object' or 'json_schema', got {format}."),
        )),
    }
}

/// Function tools; `function` finds the object holding `name` and `parameters` (nested
/// under `function` in chat, the tool itself in Responses). Other tool types are ignored.
fn tools(json: &Value, function: fn(&Value) -> Option<&Value>) -> Result<Vec<Tool>, ApiError> {
    let Some(list) = json.get("tools").filter(|t| !t.is_null()) else { return Ok(Vec::new()) };
    let list =
        list.as_array().ok_or_else(|| ApiError::invalid_param("tools", "Invalid 'tools': expected an array."))?;
    let mut out = Vec::new();
    for tool in list.iter().filter(|t| t.get("type").and_then(Value::as_str) == Some("function")) {
        let name = function(tool).and_then(|f| f.get("name")).and_then(Value::as_str).filter(|n| !n.is_empty());
        let name = name.ok_or_else(|| ApiError::missing_param("tools[].function.name"))?;
        let parameters = function(tool).and_then(|f| f.get("parameters")).filter(|p| p.is_object());
        let parameters = parameters.cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        out.push(Tool { name: name.to_owned(), parameters });
    }
    Ok(out)
}

fn tool_choice(json: &Value, tools: &[Tool], name_of: fn(&Value) -> Option<&Value>) -> Result<ToolChoice, ApiError> {
    let invalid =
        |why: String| ApiError::invalid_param("tool_choice", format!("Invalid value for 'tool_choice': {why}"));
    let choice = match json.get("tool_choice") {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(mode)) => match mode.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => return Err(invalid(format!("'{other}' is not one of 'none', 'auto', 'required'."))),
        },
        Some(object) => match object.get("type").and_then(Value::as_str) {
            Some("function") => match name_of(object).and_then(Value::as_str) {
                Some(name) => ToolChoice::Named(name.to_owned()),
                None => return Err(invalid("a function choice needs the function's name.".into())),
            },
            // `allowed_tools` and hosted tool choices: the simulated model picks freely.
            _ => ToolChoice::Auto,
        },
    };
    if choice != ToolChoice::Auto && choice != ToolChoice::None && tools.is_empty() {
        return Err(invalid("'tool_choice' is only allowed when 'tools' are specified.".into()));
    }
    if let ToolChoice::Named(name) = &choice
        && !tools.iter().any(|tool| &tool.name == name)
    {
        return Err(invalid(format!("no function named '{name}' in 'tools'.")));
    }
    Ok(choice)
}

fn stop(json: &Value) -> Result<Vec<String>, ApiError> {
    let invalid =
        || ApiError::invalid_param("stop", format!("Invalid 'stop': expected a string or up to {MAX_STOP} strings."));
    let list = match json.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) if many.len() <= MAX_STOP => {
            many.iter().map(|s| s.as_str().map(str::to_owned).ok_or_else(invalid)).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(invalid()),
    };
    Ok(list.into_iter().filter(|s| !s.is_empty()).collect())
}

fn logprobs(json: &Value) -> Result<Option<usize>, ApiError> {
    let on = json.get("logprobs").and_then(Value::as_bool) == Some(true);
    let top = match json.get("top_logprobs") {
        None | Some(Value::Null) => 0,
        Some(top) => {
            let top = top.as_u64().filter(|t| *t <= MAX_TOP_LOGPROBS).ok_or_else(|| {
                ApiError::invalid_param(
                    "top_logprobs",
                    format!("Invalid 'top_logprobs': expected an integer between 0 and {MAX_TOP_LOGPROBS}."),
                )
            })?;
            if !on {
                return Err(ApiError::invalid_param(
                    "top_logprobs",
                    "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
                ));
            }
            top
        }
    };
    Ok(on.then(|| usize::try_from(top).unwrap_or(0)))
}
