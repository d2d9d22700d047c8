//! What the answers say, over a real socket: `json_schema` content that parses and fits
//! its schema, tool calls (whole and streamed as `OpenAI` frames them), `n` choices,
//! output limits ending in `length` / `incomplete`, `stop`, `logprobs`, Responses
//! function calls and the agent loop's last turn, and embeddings' dimensions and base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::socket::{Running, start};
use crate::support::{sse_data, sse_events};

async fn post(running: &Running, path: &str, body: &Value) -> (u16, String) {
    let reply = reqwest::Client::new()
        .post(format!("{}{path}", running.base))
        .bearer_auth("sk-test")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

async fn json_of(running: &Running, path: &str, body: &Value) -> Value {
    let (status, text) = post(running, path, body).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Parsed chunks of a chat stream, `[DONE]` checked and dropped.
async fn chunks(running: &Running, body: &Value) -> Vec<Value> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let (status, text) = post(running, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{text}");
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect()
}

fn person_schema() -> Value {
    json!({
        "$defs": {"Pet": {"type": "object", "properties": {"kind": {"enum": ["cat", "dog"]}, "age": {"type": "integer", "minimum": 0, "maximum": 20}}, "required": ["kind", "age"], "additionalProperties": false}},
        "type": "object",
        "properties": {"name": {"type": "string"}, "pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}}, "nick": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
        "required": ["name", "pets", "nick"],
        "additionalProperties": false
    })
}

fn check_person(value: &Value) {
    let mut fields: Vec<&String> = value.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["name", "nick", "pets"], "all properties, no others");
    assert!(value["name"].is_string());
    assert!(value["nick"].is_string() || value["nick"].is_null());
    for pet in value["pets"].as_array().unwrap() {
        assert!(["cat", "dog"].contains(&pet["kind"].as_str().unwrap()));
        assert!((0..=20).contains(&pet["age"].as_i64().unwrap()));
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn structured_outputs_parse_and_fit_the_schema() {
    let running = start().await;
    let format =
        json!({"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": person_schema()}});
    let body = json!({"model": "gpt-5-mini", "messages": user("a person"), "response_format": format});
    let whole = json_of(&running, "/v1/chat/completions", &body).await;
    let content = whole["choices"][0]["message"]["content"].as_str().unwrap();
    check_person(&serde_json::from_str(content).unwrap());
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    let streamed: String =
        chunks(&running, &body).await.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(streamed, content, "the stream carries the same JSON");

    let object =
        json!({"model": "gpt-4o", "messages": user("json please"), "response_format": {"type": "json_object"}});
    let whole = json_of(&running, "/v1/chat/completions", &object).await;
    assert!(
        serde_json::from_str::<Value>(whole["choices"][0]["message"]["content"].as_str().unwrap()).unwrap().is_object()
    );

    let text_format =
        json!({"format": {"type": "json_schema", "name": "person", "strict": true, "schema": person_schema()}});
    let response =
        json_of(&running, "/v1/responses", &json!({"model": "o3", "input": "a person", "text": text_format})).await;
    assert_eq!(response["status"], "completed");
    assert_eq!(response["text"], json!({"format": text_format["format"], "verbosity": "medium"}));
    check_person(&serde_json::from_str(response["output"][0]["content"][0]["text"].as_str().unwrap()).unwrap());
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "strict": true, "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"], "additionalProperties": false}}})
}

#[tokio::test]
async fn tool_calls_whole_and_streamed() {
    let running = start().await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("weather?"), "tools": [weather_tool()], "tool_choice": "required"});
    let whole = json_of(&running, "/v1/chat/completions", &body).await;
    let choice = &whole["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!((call["type"].as_str(), call["function"]["name"].as_str()), (Some("function"), Some("get_weather")));
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(arguments["city"].is_string() && (1..=7).contains(&arguments["days"].as_i64().unwrap()));

    let chunks = chunks(&running, &body).await;
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    let head = &first["tool_calls"][0];
    assert!(head["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!((head["index"].as_u64(), head["type"].as_str()), (Some(0), Some("function")));
    assert_eq!(
        (head["function"]["name"].as_str(), head["function"]["arguments"].as_str()),
        (Some("get_weather"), Some(""))
    );
    let (finish, fragments) = chunks[1..].split_last().unwrap();
    assert!(fragments.len() > 1, "arguments arrive in fragments");
    let mut streamed = String::new();
    for chunk in fragments {
        let call = &chunk["choices"][0]["delta"]["tool_calls"][0];
        assert!(
            call.get("id").is_none() && call["function"].get("name").is_none(),
            "only the first delta names the call"
        );
        streamed.push_str(call["function"]["arguments"].as_str().unwrap());
    }
    assert_eq!(streamed, call["function"]["arguments"].as_str().unwrap());
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");

    // `auto` calls the tool on a user turn and answers in text after the tool's output.
    let mut auto = body.clone();
    auto["tool_choice"] = json!("auto");
    assert_eq!(json_of(&running, "/v1/chat/completions", &auto).await["choices"][0]["finish_reason"], "tool_calls");
    auto["messages"] = json!([{"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]);
    let last = json_of(&running, "/v1/chat/completions", &auto).await;
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last["choices"][0]["message"]["content"].as_str().unwrap().len() > 1);

    let mut unknown = body;
    unknown["tool_choice"] = json!({"type": "function", "function": {"name": "nope"}});
    let (status, text) = post(&running, "/v1/chat/completions", &unknown).await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn n_limits_stop_and_logprobs() {
    let running = start().await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("hi"), "n": 3, "max_completion_tokens": 5});
    let whole = json_of(&running, "/v1/chat/completions", &body).await;
    let choices = whole["choices"].as_array().unwrap();
    assert_eq!(choices.iter().map(|c| c["index"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(choices.iter().all(|c| c["finish_reason"] == "length"));
    assert_eq!(whole["usage"]["completion_tokens"], 15, "usage sums the choices");
    let streamed = chunks(&running, &body).await;
    for (index, choice) in choices.iter().enumerate() {
        let text: String = streamed
            .iter()
            .filter(|c| c["choices"][0]["index"] == index)
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, choice["message"]["content"].as_str().unwrap());
    }

    let plain = json_of(&running, "/v1/chat/completions", &json!({"model": "gpt-4o", "messages": user("hi")})).await;
    let text = plain["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    let second_word = text.split(' ').nth(1).unwrap();
    let stopped =
        json!({"model": "gpt-4o", "messages": user("hi"), "stop": [second_word], "logprobs": true, "top_logprobs": 3});
    let cut = json_of(&running, "/v1/chat/completions", &stopped).await;
    let choice = &cut["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    let cut_text = choice["message"]["content"].as_str().unwrap();
    assert!(text.starts_with(cut_text) && !cut_text.contains(second_word));
    assert_eq!(
        cut["usage"]["completion_tokens"].as_u64().unwrap(),
        choice["logprobs"]["content"].as_array().unwrap().len() as u64
    );
    for entry in choice["logprobs"]["content"].as_array().unwrap() {
        assert!(entry["logprob"].as_f64().unwrap() <= 0.0);
        assert_eq!(entry["bytes"], json!(entry["token"].as_str().unwrap().as_bytes()));
        assert_eq!(entry["top_logprobs"].as_array().unwrap().len(), 3);
        assert_eq!(entry["top_logprobs"][0]["token"], entry["token"]);
    }

    let limited = json!({"model": "gpt-4o", "input": "hi", "max_output_tokens": 4, "stream": true});
    let (_, text) = post(&running, "/v1/responses", &limited).await;
    let last = sse_events(&text).pop().unwrap();
    assert_eq!(last.0, "response.incomplete");
    assert_eq!(last.1["response"]["incomplete_details"]["reason"], "max_output_tokens");
}

#[tokio::test]
async fn responses_function_calls_and_the_turn_after() {
    let running = start().await;
    let tool = json!({"type": "function", "name": "get_weather", "strict": true, "parameters": weather_tool()["function"]["parameters"]});
    let body = json!({"model": "gpt-5-mini", "input": "weather?", "tools": [tool], "stream": true});
    let (_, text) = post(&running, "/v1/responses", &body).await;
    let events = sse_events(&text);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&kinds[..3], ["response.created", "response.in_progress", "response.output_item.added"]);
    let added = &events[2].1["item"];
    assert_eq!((added["type"].as_str(), added["arguments"].as_str()), (Some("function_call"), Some("")));
    let deltas: String = events
        .iter()
        .filter(|(k, _)| k == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let done = events.iter().find(|(k, _)| k == "response.function_call_arguments.done").unwrap();
    assert_eq!(done.1["arguments"], deltas.as_str());
    assert_eq!(&kinds[kinds.len() - 2..], ["response.output_item.done", "response.completed"]);
    let item = &events.last().unwrap().1["response"]["output"][0];
    assert!(item["call_id"].as_str().unwrap().starts_with("call_"));
    assert!(serde_json::from_str::<Value>(item["arguments"].as_str().unwrap()).unwrap()["city"].is_string());

    let follow = json!({"model": "gpt-5-mini", "tools": [tool], "input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": item["call_id"], "name": "get_weather", "arguments": item["arguments"]},
        {"type": "function_call_output", "call_id": item["call_id"], "output": "sunny"}]});
    let answer = json_of(&running, "/v1/responses", &follow).await;
    assert_eq!(answer["output"][0]["type"], "message");
    assert_eq!(answer["status"], "completed");
}

#[tokio::test]
async fn embeddings_dimensions_and_base64() {
    let running = start().await;
    let decode = |value: &Value| -> Vec<f32> {
        let raw = STANDARD.decode(value.as_str().unwrap()).unwrap();
        raw.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    };
    for (model, dims) in
        [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536)]
    {
        let body = json!({"model": model, "input": "flexgate", "encoding_format": "base64"});
        let vector = decode(&json_of(&running, "/v1/embeddings", &body).await["data"][0]["embedding"]);
        assert_eq!(vector.len(), dims, "{model}");
        assert!((vector.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    }
    let reduced = json!({"model": "text-embedding-3-small", "input": "flexgate", "dimensions": 256});
    assert_eq!(
        json_of(&running, "/v1/embeddings", &reduced).await["data"][0]["embedding"].as_array().unwrap().len(),
        256
    );
    for refused in [
        json!({"model": "text-embedding-3-small", "input": "x", "dimensions": 2000}),
        json!({"model": "text-embedding-ada-002", "input": "x", "dimensions": 256}),
    ] {
        let (status, text) = post(&running, "/v1/embeddings", &refused).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("\"param\":\"dimensions\""));
    }
}
