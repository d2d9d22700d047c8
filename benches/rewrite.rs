//! Criterion micro-benchmark of the routing body work done once per request: read the
//! routing fields of a chat request (`BodyInfo::parse`) and splice `service_tier` into it
//! (`BodyInfo::rewrite`), for bodies from 512 B to 512 KiB, so its cost per byte shows.
//!
//! Run with `cargo bench --bench rewrite`; `docs/benchmarks.md` quotes the results.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flexgate::body::BodyInfo;

/// A chat request of about `size` bytes: a system prompt, a short exchange, and a last
/// user message padded with prose (escapes included) up to the wanted size.
fn chat_body(size: usize, stream: bool) -> Bytes {
    let system = "You are a careful assistant. Answer in plain English, cite the \\\"source\\\" line when you use one.";
    let head = format!(
        r#"{{"model":"gpt-5-mini","messages":[{{"role":"system","content":"{system}"}},{{"role":"user","content":"Summarise the ticket below."}},{{"role":"assistant","content":"Sure: paste it."}},{{"role":"user","content":""#
    );
    let tail = format!(r#""}}],"temperature":0.2,"max_completion_tokens":512,"stream":{stream},"user":"bench-42"}}"#);
    let filler = "The gateway forwards the request body untouched except for one field. \\n";
    let mut body = head;
    while body.len() + tail.len() < size {
        let room = size - body.len() - tail.len();
        body.push_str(&filler[..filler.len().min(room)]);
    }
    // A cut at the end of the filler could leave a lone backslash; keep the JSON valid.
    if body.ends_with('\\') && !body.ends_with("\\\\") {
        body.pop();
        body.push(' ');
    }
    body.push_str(&tail);
    Bytes::from(body)
}

const SIZES: [usize; 6] = [512, 2 << 10, 8 << 10, 32 << 10, 128 << 10, 512 << 10];

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_and_rewrite");
    for size in SIZES {
        let body = chat_body(size, false);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok(), "bench body of {size} B is not JSON");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            b.iter(|| {
                let info = BodyInfo::parse(black_box(body)).map(|info| info.rewrite(body, Some("flex"), false));
                black_box(info.is_ok())
            });
        });
    }
    group.finish();

    // Streaming requests also get `stream_options.include_usage` spliced in.
    let mut group = c.benchmark_group("parse_and_rewrite_stream");
    let body = chat_body(2 << 10, true);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("2048", |b| {
        b.iter(|| {
            let info = BodyInfo::parse(black_box(&body)).map(|info| info.rewrite(&body, Some("flex"), true));
            black_box(info.is_ok())
        });
    });
    group.finish();

    let mut group = c.benchmark_group("parts_2048");
    let body = chat_body(2 << 10, false);
    group.bench_function("parse", |b| b.iter(|| black_box(BodyInfo::parse(black_box(&body)).is_ok())));
    if let Ok(info) = BodyInfo::parse(&body) {
        group.bench_function("rewrite", |b| b.iter(|| black_box(info.rewrite(black_box(&body), Some("flex"), false))));
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
