//! The OpenAI API a request is for, by method and path: decides how usage is read, how a
//! stream is framed, and the bounded `endpoint` label.

use http::Method;

/// The API a body or stream came from; decides field names and stream framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Responses,
    Completions,
    Embeddings,
    /// A WebSocket session (Realtime, the Responses API's WebSocket mode): usage is read
    /// from its events by `crate::websocket`, never by the body and stream readers.
    Realtime,
    /// Anything else: read like chat (`prompt_tokens`, falling back to `input_tokens`).
    Other,
}

impl Endpoint {
    /// Every endpoint, for series created at start-up.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::ChatCompletions,
        Endpoint::Responses,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Realtime,
        Endpoint::Other,
    ];

    /// The OpenAI endpoint of a request, by method and the path after `/v1`.
    pub fn of(method: &Method, rest: &str) -> Endpoint {
        if method != Method::POST {
            return Endpoint::Other;
        }
        match rest.trim_end_matches('/') {
            "/chat/completions" => Endpoint::ChatCompletions,
            "/responses" | "/responses/compact" => Endpoint::Responses,
            "/completions" => Endpoint::Completions,
            "/embeddings" => Endpoint::Embeddings,
            _ => Endpoint::Other,
        }
    }

    /// Bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Responses => "responses",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Realtime => "realtime",
            Endpoint::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_by_method_and_path() {
        assert_eq!(Endpoint::of(&Method::POST, "/chat/completions"), Endpoint::ChatCompletions);
        assert_eq!(Endpoint::of(&Method::POST, "/responses/compact"), Endpoint::Responses);
        assert_eq!(Endpoint::of(&Method::POST, "/embeddings/"), Endpoint::Embeddings);
        assert_eq!(Endpoint::of(&Method::GET, "/chat/completions"), Endpoint::Other);
        assert_eq!(Endpoint::of(&Method::POST, "/files"), Endpoint::Other);
    }
}
