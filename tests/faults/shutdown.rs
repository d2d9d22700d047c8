//! SIGTERM against the real binary with 100 streams open: the listener closes, every
//! stream runs to its `[DONE]`, and the process exits 0 well within the drain timeout.

use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_flexgate");
const STREAMS: usize = 100;
const DRAIN: Duration = Duration::from_secs(30);

/// Spawn the binary; its stdout and stderr lines arrive on the channel.
fn spawn(args: &[&str]) -> (Child, mpsc::UnboundedReceiver<String>) {
    let mut child =
        Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let out: Box<dyn tokio::io::AsyncRead + Unpin + Send> = Box::new(child.stdout.take().unwrap());
    let err: Box<dyn tokio::io::AsyncRead + Unpin + Send> = Box::new(child.stderr.take().unwrap());
    for reader in [out, err] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

async fn line_with(rx: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = rx.recv().await {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("process ended before printing {needle:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no line with {needle:?}"))
}

fn addr_in(line: &str) -> String {
    let at = line.find("127.0.0.1:").unwrap_or_else(|| panic!("no address in {line}"));
    line[at..].chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_100_open_streams_completes_them_all_within_the_drain_timeout() {
    // 300 tokens at 15 ms a chunk: every stream runs for several seconds.
    let (_sim, mut sim_rx) =
        spawn(&["sim", "--listen", "127.0.0.1:0", "--chunk-interval", "15ms", "--latency-standard", "0ms"]);
    let sim_addr = addr_in(&line_with(&mut sim_rx, "listening").await);
    let config = std::env::temp_dir().join(format!("flexgate-{}-drain.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = \"{}s\"\n[upstream]\nbase_url = \"http://{sim_addr}/v1\"\n[log]\nformat = \"json\"\n",
            DRAIN.as_secs()
        ),
    )
    .unwrap();
    let (mut gw, mut gw_rx) = spawn(&["serve", "--config", config.to_str().unwrap()]);
    let gw_addr = addr_in(&line_with(&mut gw_rx, "\"listening\"").await);

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

    let pid = gw.id().unwrap().to_string();
    let signalled = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    line_with(&mut gw_rx, "draining").await;
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
    let status = tokio::time::timeout(DRAIN, gw.wait()).await.expect("exited within the drain timeout").unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(signalled.elapsed() < DRAIN, "{:?}", signalled.elapsed());
    let _ = std::fs::remove_file(config);
}
