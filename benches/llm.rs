//! SSE parsing + chunk decoding throughput on 10 MB synthetic streams, and the cost of
//! `prepare` (building the exact request) per generation.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perstack::definition::{ProviderName, ProviderSetting, ReasoningBudget};
use perstack::llm::http::decode_all;
use perstack::llm::{Message, Part, Request, Role, anthropic, build_provider, openai};
use perstack::tool::{ToolContent, ToolDefinition};
use serde_json::json;

const TARGET: usize = 10 * 1024 * 1024;
/// Network-sized pieces, so line joining across chunks is part of the cost.
const NET_CHUNK: usize = 16 * 1024;

fn openai_stream() -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < TARGET {
        let text = format!("token {i} with ünïcode and \"quotes\" ");
        s += &format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        );
        i += 1;
    }
    s += &format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    );
    s.into_bytes()
}

fn anthropic_stream() -> Vec<u8> {
    let mut s = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    let mut i = 0;
    while s.len() < TARGET {
        let text = format!("token {i} with ünïcode and \"quotes\" ");
        s += &format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})
        );
        i += 1;
    }
    s += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
          event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n\
          event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    s.into_bytes()
}

fn decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    let bytes = openai_stream();
    let pieces: Vec<&[u8]> = bytes.chunks(NET_CHUNK).collect();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("openai_10MB", |b| {
        b.iter(|| {
            let chunks = decode_all("openai", openai::Decoder::new("openai"), &pieces).unwrap();
            black_box(chunks.len())
        })
    });
    let bytes = anthropic_stream();
    let pieces: Vec<&[u8]> = bytes.chunks(NET_CHUNK).collect();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("anthropic_10MB", |b| {
        b.iter(|| {
            let chunks = decode_all("anthropic", anthropic::Decoder::default(), &pieces).unwrap();
            black_box(chunks.len())
        })
    });
    group.finish();
}

/// A mid-sized step: 20 messages, 15 tools.
fn typical_request() -> Request {
    let mut messages = vec![Message::user_text("Write a report about the repository.")];
    for i in 0..10 {
        messages.push(Message {
            role: Role::Assistant,
            parts: vec![
                Part::Text {
                    text: format!("Step {i}: reading a file."),
                },
                Part::ToolCall {
                    id: format!("call_{i}"),
                    name: "readTextFile".into(),
                    args: json!({"path": format!("src/file{i}.rs")}),
                },
            ],
        });
        messages.push(Message {
            role: Role::User,
            parts: vec![Part::ToolResult {
                tool_call_id: format!("call_{i}"),
                tool_name: "readTextFile".into(),
                contents: vec![ToolContent::text(
                    "fn main() { println!(\"hello\"); }\n".repeat(20),
                )],
                is_error: false,
            }],
        });
    }
    Request {
        system: "You are an Expert. ".repeat(100),
        messages,
        tools: (0..15)
            .map(|i| ToolDefinition {
                name: format!("tool{i}"),
                description: "Does a thing with a path.".into(),
                input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
            })
            .collect(),
        max_tokens: Some(4096),
        reasoning: Some(ReasoningBudget::Low),
        expert_key: "bench".into(),
        ..Default::default()
    }
}

fn prepare(c: &mut Criterion) {
    let env = [
        ("ANTHROPIC_API_KEY", "k"),
        ("OPENAI_API_KEY", "k"),
        ("GOOGLE_GENERATIVE_AI_API_KEY", "k"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let setting = ProviderSetting {
        base_url: Some("http://127.0.0.1:9/v1".into()),
        ..Default::default()
    };
    let req = typical_request();
    let mut group = c.benchmark_group("prepare");
    for name in [
        ProviderName::Anthropic,
        ProviderName::Openai,
        ProviderName::Google,
    ] {
        let model = build_provider(name, Some(&setting), "model", &env, Path::new(".")).unwrap();
        group.bench_function(name.as_str(), |b| {
            b.iter(|| black_box(model.prepare(black_box(&req)).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, decoding, prepare);
criterion_main!(benches);
