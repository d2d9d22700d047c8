//! In-process tests of the layer stack: `build_router` + `oneshot`, no sockets.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::{build_router, with_layers};
use crate::config::Config;
use crate::state::AppState;

fn state(extra: &str) -> AppState {
    let env = std::collections::HashMap::from([
        ("OPENAI_API_KEY".to_owned(), "sk-up".to_owned()),
        ("K".to_owned(), "gw-key".to_owned()),
    ]);
    let text = format!("[upstream]\nbase_url = \"http://127.0.0.1:9/v1\"\n{extra}");
    AppState::new(Config::from_toml(&text, &env).unwrap()).unwrap()
}

async fn json(response: axum::response::Response) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn boom() -> &'static str {
    panic!("kaboom")
}

#[tokio::test]
async fn a_panic_becomes_an_openai_shaped_500_and_the_service_lives_on() {
    let s = state("");
    let routes: Router<AppState> = Router::new().route("/boom", get(boom)).route("/fine", get(|| async { "ok" }));
    let app = with_layers(routes.with_state(s.clone()), s.clone());
    let r = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.headers().contains_key("x-request-id"));
    let v = json(r).await;
    assert_eq!(v["error"]["code"], "internal_error");
    assert!(!v.to_string().contains("kaboom"), "panic text stays in the log");
    let r = app.oneshot(Request::get("/fine").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(s.metrics.count("flexgate_requests_total", &[("outcome", "gateway_error")]), 1);
}

#[tokio::test]
async fn readiness_follows_the_drain_flag() {
    let s = state("");
    let app = build_router(s.clone(), true);
    let r = app.clone().oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.start_draining();
    let r = app.oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn managed_auth_guards_the_proxy_but_not_health() {
    let s = state("[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"a\"\nenv = \"K\"\n");
    let app = build_router(s, true);
    let r = app.clone().oneshot(Request::post("/v1/chat/completions").body(Body::from("{}")).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(r).await["error"]["code"], "invalid_api_key");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn rejections_before_routing_are_counted_once() {
    let s = state("");
    let app = build_router(s.clone(), true);
    let r = app.clone().oneshot(Request::get("/nowhere").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.oneshot(Request::post("/v1/chat/completions").body(Body::from("{oops")).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.metrics.count("flexgate_requests_total", &[("outcome", "client_error")]), 2);
}

/// Every request's future is allocated for as long as the request lives, minutes when
/// flex holds it: ten thousand held requests pay each byte ten thousand times.
#[tokio::test]
async fn a_request_future_stays_small() {
    use tower::Service;
    let mut app = build_router(state(""), true);
    let future = app.call(Request::post("/v1/chat/completions").body(Body::empty()).unwrap());
    let size = std::mem::size_of_val(&future);
    assert!(size <= 256, "the stack's future is {size} bytes (the router's own future must stay boxed)");
}
