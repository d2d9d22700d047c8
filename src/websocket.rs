//! WebSocket passthrough: an upgrade on any lane (the Realtime API's `/v1/realtime`, the
//! Responses API's WebSocket mode on `/v1/responses`) is tunnelled to the upstream over a
//! dedicated HTTP/1.1 connection, opened by the same route as the pool's (TLS, proxy).
//!
//! The handshake is authenticated as an HTTP request is (`handshake`), forwarded, and
//! the upstream's answer returned: a 101 with its `Sec-WebSocket-Accept`, or any other
//! answer as it is (status, headers, body). After a 101 both upgraded sockets are joined
//! by the relay (`relay`) in a task of the connection's own thread, bytes unchanged; the
//! usage the upstream reports in its events (`usage`, found by `frames`) is counted turn
//! by turn with endpoint `realtime`, classed as the handshake was routed.
//!
//! Sessions outlive hyper's view of their connection (an upgraded connection is done as
//! far as its graceful shutdown is concerned), so `state::Sessions` counts them
//! (`flexgate_websocket_sessions`) and ends them on shutdown: once `server.drain_timeout`
//! has passed after the signal, each open session is closed with code 1001.

mod frames;
mod handshake;
mod relay;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::budgets::ClientBudget;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::ledger::{Ledger, RequestFacts};
use crate::metrics::Outcome;
use crate::proxy::headers;
use crate::proxy::path;
use crate::request_id::{Logged, X_REQUEST_ID};
use crate::routing::{self, RouteInput};
use crate::state::AppState;
use crate::upstream::connect::{Connector, Io};

pub use handshake::is_upgrade;

/// One open session, counted while it lives.
struct Open(AppState);

impl Open {
    fn new(state: &AppState) -> Self {
        state.websockets.enter();
        state.metrics.websocket_sessions().inc();
        Self(state.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.websockets.leave();
        self.0.metrics.websocket_sessions().dec();
    }
}

/// Answer a WebSocket handshake (`is_upgrade`): the upstream's answer, and on a 101 the
/// session, relayed in a task of its own.
pub async fn handle(state: AppState, request: Request) -> Response {
    match open(state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn open(state: AppState, mut request: Request) -> Result<Response, GatewayError> {
    let start = Instant::now();
    let config = &state.config;
    let client = handshake::client(&config.auth, request.headers())?;
    let target = path::target(config, request.method(), request.uri().path())?;
    let uri = state.upstream.uri(target.rest, request.uri().query()).map_err(|_| GatewayError::InvalidParam {
        param: "path",
        message: "The request target cannot be forwarded to the upstream.".into(),
    })?;
    // The Realtime API names its model in the query; the Responses API's events name it.
    let model = query_param(request.uri(), "model");
    let input = RouteInput {
        headers: request.headers(),
        lane: target.lane,
        client,
        model: model.as_deref(),
        client_tier: None,
        tier_routed: false,
    };
    let plan = routing::plan(config, &input)?;
    // A client past its budget is refused the session; one under it is charged each turn
    // as it happens (a session, like a stream, is never cut for the budget). A session
    // cannot be estimated: it is admitted while anything is left, and holds nothing.
    let nothing = || crate::budgets::Estimate { cost: Some(0), input_tokens: 0 };
    if let Err(refusal) = state.budgets.admit(client, nothing) {
        state.metrics.budgets.refused(client.unwrap_or_default());
        return Err(refusal);
    }
    let budget = state.budgets.client(client);
    let request_id = request.headers().get(X_REQUEST_ID).filter(|v| v.to_str().is_ok()).cloned();
    let facts = RequestFacts {
        method: http::Method::GET,
        lane: target.lane,
        request_id: request_id.clone().unwrap_or_else(|| HeaderValue::from_static("")),
        endpoint: Endpoint::Realtime,
        class: plan.class,
        requested_model: model,
        metered: true,
    };
    let client_upgrade = hyper::upgrade::on(&mut request);
    let (connector, managed_auth, proxy_auth) = state.upstream.websocket_route();
    let mut sent = handshake::upstream_request(
        std::mem::take(request.headers_mut()),
        managed_auth,
        proxy_auth,
        host(&uri).ok_or_else(|| GatewayError::Internal("the upstream URL has no host".into()))?,
    );
    if let Some(id) = request_id {
        sent.insert(X_REQUEST_ID, id);
    }
    let mut answer = send(connector, uri, sent, config.upstream.timeout).await?;
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(refused(&state, facts, start, answer));
    }
    let upstream_upgrade = hyper::upgrade::on(&mut answer);
    let open = Open::new(&state);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "a WebSocket upgrade did not complete");
                return;
            }
        };
        let io = (TokioIo::new(client), TokioIo::new(upstream));
        session(&open.0, &facts, budget.as_ref(), io, start).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = handshake::client_response(std::mem::take(answer.headers_mut()));
    Ok(response)
}

/// Relay one session to its end, counting each turn's usage, then log it.
async fn session<C, U>(
    state: &AppState,
    facts: &RequestFacts,
    budget: Option<&Arc<ClientBudget>>,
    (client, upstream): (C, U),
    start: Instant,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let limits =
        relay::Limits { idle: state.config.websocket.idle_timeout, lifetime: state.config.websocket.max_lifetime };
    let stop = state.websockets.drained(state.config.server.drain_timeout);
    let mut turn_start = start;
    let (mut turns, mut audio) = (0_u64, (0_u64, 0_u64));
    let (end, totals) = relay::run(client, upstream, &limits, stop, |message| {
        if let Some(turn) = usage::read_turn(message) {
            turns += 1;
            audio = (audio.0 + turn.audio.0, audio.1 + turn.audio.1);
            usage::record(state, facts, turn_start, turn, budget.map(ClientBudget::charge));
            turn_start = Instant::now();
        }
    })
    .await;
    tracing::info!(
        request_id = facts.request_id.to_str().unwrap_or_default(),
        class = state.config.class(facts.class).name.as_str(),
        model = facts.requested_model.as_deref().unwrap_or_default(),
        end = end.as_str(),
        upstream_close_code = totals.upstream_close.unwrap_or(0),
        turns,
        audio_input_tokens = audio.0,
        audio_output_tokens = audio.1,
        unread_messages = totals.unread,
        bytes_to_upstream = totals.to_upstream,
        bytes_to_client = totals.to_client,
        duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        "websocket session"
    );
}

/// Open a dedicated connection and send the handshake; the answer's head, or why not.
async fn send(
    connector: Connector,
    uri: Uri,
    headers: HeaderMap,
    timeout: Duration,
) -> Result<http::Response<hyper::body::Incoming>, GatewayError> {
    let io: Io = connector.oneshot(uri.clone()).await.map_err(|e| GatewayError::UpstreamUnreachable(e.to_string()))?;
    // A forwarding proxy takes the absolute URI; a server its path.
    let target = if io.connected().is_proxied() {
        uri
    } else {
        uri.path_and_query().map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()))
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| GatewayError::UpstreamUnreachable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream WebSocket connection ended with an error");
        }
    });
    let mut request = http::Request::new(Empty::new());
    *request.uri_mut() = target;
    *request.headers_mut() = headers;
    match tokio::time::timeout(timeout, sender.send_request(request)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(GatewayError::UpstreamUnreachable(e.to_string())),
        Err(_) => Err(GatewayError::UpstreamTimeout(humantime::format_duration(timeout).to_string())),
    }
}

/// The upstream refused the upgrade: its answer goes to the client as it is.
fn refused(
    state: &AppState,
    facts: RequestFacts,
    start: Instant,
    answer: http::Response<hyper::body::Incoming>,
) -> Response {
    let (mut parts, body) = answer.into_parts();
    let status = parts.status;
    let mut ledger = Ledger::open(state.clone(), facts, start);
    ledger.record_handshake(status, &parts.headers);
    let outcome = if status.is_client_error() { Outcome::ClientError } else { Outcome::UpstreamError };
    ledger.settle(outcome, &crate::ledger::Report::default());
    parts.headers = headers::client_response(parts.headers, true);
    let mut response = Response::from_parts(parts, Body::new(body));
    response.extensions_mut().insert(Logged);
    response
}

/// `Host` for the upstream: its host, and its port when the URL names one.
fn host(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let text = match uri.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    HeaderValue::try_from(text).ok()
}

/// The first value of `name` in the URI's query, percent-decoded.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Config;

    #[test]
    fn session_bounds_are_validated_with_every_problem_reported() {
        let env = HashMap::new();
        let config = Config::from_toml("[websocket]\nidle_timeout = \"90s\"\nmax_lifetime = \"2h\"\n", &env).unwrap();
        assert_eq!(config.websocket.idle_timeout.as_secs(), 90);
        assert_eq!(config.websocket.max_lifetime.as_secs(), 7200);
        let errors =
            Config::from_toml("[websocket]\nidle_timeout = \"0s\"\nmax_lifetime = \"soon\"\n", &env).unwrap_err();
        let text = errors.to_string();
        assert!(text.contains("`websocket.idle_timeout`: must be greater than zero"), "{text}");
        assert!(text.contains("`websocket.max_lifetime`: `soon` is not a duration"), "{text}");
        assert!(Config::from_toml("[websocket]\nping = \"1s\"\n", &env).is_err(), "unknown keys are refused");
    }

    #[test]
    fn the_model_comes_from_the_query() {
        let uri: http::Uri = "/v1/realtime?intent=x&model=gpt-realtime%2Dmini".parse().unwrap();
        assert_eq!(super::query_param(&uri, "model").as_deref(), Some("gpt-realtime-mini"));
        assert_eq!(super::query_param(&uri, "call_id"), None);
    }
}
