//! SIGTERM against the real binary with 100 streams open: the listener closes, every
//! stream runs to its `[DONE]`, and the process exits 0 well within the drain timeout.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use tokio::time::Instant;

use crate::process::Process;

const STREAMS: usize = 100;
const DRAIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_100_open_streams_completes_them_all_within_the_drain_timeout() {
    // 300 tokens at 15 ms a chunk: every stream runs for several seconds.
    let (_sim, sim_addr) = Process::sim(&["--chunk-interval", "15ms", "--latency-standard", "0ms"]).await;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = \"{}s\"\n[upstream]\nbase_url = \"http://{sim_addr}/v1\"\n[log]\nformat = \"json\"\n",
        DRAIN.as_secs()
    );
    let (mut gw, gw_addr) = Process::serve("drain", &config, &[]).await;

    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
    let body = serde_json::json!({"model": "gpt-4.1-mini", "stream": true, "max_tokens": 300, "messages": [{"role": "user", "content": "hi"}]});
    let opened = (0..STREAMS).map(|_| {
        let request = client.post(format!("http://{gw_addr}/v1/chat/completions")).bearer_auth("sk-test").json(&body);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let mut stream = r.bytes_stream();
            let first = stream.next().await.unwrap().unwrap();
            (String::from_utf8(first.to_vec()).unwrap(), stream)
        }
    });
    let open = join_all(opened).await;
    assert!(open.iter().all(|(first, _)| !first.contains("[DONE]")), "a stream ended before SIGTERM");

    let signalled = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &gw.pid()]).status().unwrap().success());
    gw.line_with("draining").await;
    // No new work is accepted once draining has begun.
    let refused = async {
        loop {
            if tokio::net::TcpStream::connect(&gw_addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused).await.expect("the listener closed on SIGTERM");

    let finished = open.into_iter().map(|(mut text, mut stream)| async move {
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        text
    });
    for text in join_all(finished).await {
        assert!(text.ends_with("data: [DONE]\n\n"), "a stream was cut by the shutdown: {text}");
        assert!(!text.contains("\"error\""), "{text}");
    }
    let status = tokio::time::timeout(DRAIN, gw.child.wait()).await.expect("exited within the drain timeout").unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(signalled.elapsed() < DRAIN, "{:?}", signalled.elapsed());
    // Each stream was settled as a success in the gateway's own accounting before it
    // exited (the pipe readers may still be draining the last lines).
    let logged = || {
        gw.all
            .lock()
            .iter()
            .filter(|l| l.contains("\"message\":\"request\"") && l.contains("\"outcome\":\"success\""))
            .count()
    };
    crate::poll::eventually(|| logged() >= STREAMS).await;
    assert_eq!(logged(), STREAMS);
}
