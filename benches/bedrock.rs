//! Bedrock's costs: event-stream framing (ours against `aws-smithy-eventstream`, which is why
//! ours is used), framing plus chunk decoding, and SigV4 signing per request.
//! Targets: decode ≥ 100 MB/s; signing < 50 µs.

use std::hint::black_box;
use std::time::SystemTime;

use bytes::{Buf, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perstack::llm::aws::{AwsCredentials, Scope, sign_request};
use perstack::llm::bedrock::Decoder;
use perstack::llm::eventstream::{EventStreamParser, encode_event};
use perstack::llm::http::decode_all_with;
use serde_json::json;

const TARGET: usize = 10 * 1024 * 1024;
const NET_CHUNK: usize = 16 * 1024;

fn stream() -> Vec<u8> {
    let mut out = encode_event("messageStart", r#"{"role":"assistant"}"#);
    let mut i = 0;
    while out.len() < TARGET {
        let text = format!("token {i} with ünïcode and \"quotes\" ");
        out.extend(encode_event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": text}, "p": "abcdefghijklmnopqrstuvwxyz"})
                .to_string(),
        ));
        i += 1;
    }
    out.extend(encode_event(
        "contentBlockStop",
        r#"{"contentBlockIndex":0}"#,
    ));
    out.extend(encode_event("messageStop", r#"{"stopReason":"end_turn"}"#));
    out.extend(encode_event(
        "metadata",
        r#"{"usage":{"inputTokens":1,"outputTokens":2}}"#,
    ));
    out
}

fn decoding(c: &mut Criterion) {
    let bytes = stream();
    let pieces: Vec<&[u8]> = bytes.chunks(NET_CHUNK).collect();
    let mut group = c.benchmark_group("bedrock_eventstream");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(20);
    group.bench_function("framing_ours", |b| {
        b.iter(|| {
            let mut parser = EventStreamParser::with_max_message(1 << 24);
            let mut events = Vec::new();
            let mut n = 0;
            for piece in &pieces {
                parser.feed(piece, &mut events).expect("frames");
                n += events.len();
                events.clear();
            }
            black_box(n)
        })
    });
    group.bench_function("framing_aws_smithy_eventstream", |b| {
        b.iter(|| {
            let mut decoder = aws_smithy_eventstream::frame::MessageFrameDecoder::new();
            let mut buffer = BytesMut::new();
            let mut n = 0;
            for piece in &pieces {
                buffer.extend_from_slice(piece);
                while let aws_smithy_eventstream::frame::DecodedFrame::Complete(message) =
                    decoder.decode_frame(&mut buffer).expect("frames")
                {
                    // The same work as ours: the payload as text.
                    let text = std::str::from_utf8(message.payload().chunk()).expect("utf8");
                    n += text.len();
                }
            }
            black_box(n)
        })
    });
    group.bench_function("framing_and_chunks", |b| {
        b.iter(|| {
            let chunks = decode_all_with(
                "amazon-bedrock",
                EventStreamParser::with_max_message(1 << 24),
                Decoder::default(),
                &pieces,
            )
            .expect("decodes");
            black_box(chunks.len())
        })
    });
    group.finish();
}

fn signing(c: &mut Criterion) {
    let credentials = AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: Some("FwoGZXIvYXdzEXAMPLETOKEN".into()),
    };
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (
            "accept".to_string(),
            "application/vnd.amazon.eventstream".to_string(),
        ),
    ];
    // A typical step: a few KB of conversation and tool schemas.
    let body = json!({"messages": [{"role": "user", "content": [{"text": "x".repeat(4096)}]}]})
        .to_string()
        .into_bytes();
    let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream";
    c.bench_function("bedrock_sigv4_sign", |b| {
        b.iter(|| {
            let signed = sign_request(
                &credentials,
                &Scope {
                    region: "us-east-1",
                    service: "bedrock",
                },
                "POST",
                url,
                &headers,
                &body,
                SystemTime::now(),
            )
            .expect("signs");
            black_box(signed)
        })
    });
}

criterion_group!(benches, decoding, signing);
criterion_main!(benches);
