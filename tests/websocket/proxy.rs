//! The upstream's route applies to WebSocket sessions too: through a forwarding proxy, the
//! handshake goes with an absolute-form target and the proxy's credentials.

use crate::support::{connect, until};

#[tokio::test]
async fn a_session_goes_through_the_configured_forwarding_proxy() {
    let (_sim, sim_run) = crate::common::spawn_sim(flexgate::sim::SimConfig::zero_latency()).await;
    let (proxy, heads) = crate::forward_proxy::spawn(sim_run.addr).await;
    let toml = format!("[upstream]\nproxy = \"http://flex:secret@{proxy}\"\n");
    let env = std::collections::HashMap::new();
    let (_state, gw) = crate::common::spawn_gateway_with(sim_run.addr, &toml, &env).await;
    let (mut socket, _) =
        connect(&gw, "/v1/realtime?model=gpt-realtime", &[("authorization", "Bearer sk-client")]).await.unwrap();
    until(&mut socket, "session.created").await;
    let heads = heads.lock().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let first = heads[0].lines().next().unwrap();
    assert_eq!(first, format!("GET http://{}/v1/realtime?model=gpt-realtime HTTP/1.1", sim_run.addr));
    // "flex:secret" as Basic credentials.
    assert!(heads[0].to_lowercase().contains("proxy-authorization: basic zmxledpzzwnyzxq="), "{heads:?}");
}
