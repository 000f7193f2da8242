//! Every wire decoder gives the same chunks however the bytes are cut.

use super::http::{ChunkDecoder, decode_all};
use super::{StreamChunk, anthropic, google, openai};

const ANTHROPIC: &str = concat!(
    "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\r\n\r\n",
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"☃😀\"}}\r\n\r\n",
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{}}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\": \\\"é\"}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"}\"}}\r\n\r\n",
    "event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":1}\r\n\r\n",
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":4}}\r\n\r\n",
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
);

const OPENAI: &str = concat!(
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"☃😀\"}}]}\n\n",
    ": keep-alive\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"n\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"é\\\"}\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
    "data: [DONE]\n\n",
);

const GEMINI: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"☃😀\"}]}}]}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"id\":\"g\",\"name\":\"n\",\"args\":{\"a\":\"é\"}}}]},\"finishReason\":\"STOP\"}],",
    "\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4}}\r\n\r\n",
);

fn every_split<D: ChunkDecoder>(
    provider: &str,
    text: &str,
    make: impl Fn() -> D,
) -> Vec<StreamChunk> {
    let bytes = text.as_bytes();
    let whole = decode_all(provider, make(), &[bytes]).unwrap();
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        let split = decode_all(provider, make(), &[a, b]).unwrap();
        assert_eq!(split, whole, "{provider}: cut at byte {cut}");
    }
    whole
}

fn finished_args(chunks: &[StreamChunk]) -> serde_json::Value {
    chunks
        .iter()
        .find_map(|c| match c {
            StreamChunk::ToolCallFinished { args, .. } => Some(args.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn anthropic_any_cut() {
    let chunks = every_split("anthropic", ANTHROPIC, anthropic::Decoder::default);
    assert_eq!(
        chunks[0],
        StreamChunk::TextDelta {
            text: "☃😀".into()
        }
    );
    assert_eq!(finished_args(&chunks), serde_json::json!({"a": "é"}));
}

#[test]
fn openai_any_cut() {
    let chunks = every_split("openai", OPENAI, || openai::Decoder::new("openai"));
    assert_eq!(
        chunks[0],
        StreamChunk::TextDelta {
            text: "☃😀".into()
        }
    );
    assert_eq!(finished_args(&chunks), serde_json::json!({"a": "é"}));
}

#[test]
fn gemini_any_cut() {
    let chunks = every_split("google", GEMINI, google::Decoder::default);
    assert_eq!(
        chunks[0],
        StreamChunk::TextDelta {
            text: "☃😀".into()
        }
    );
    assert_eq!(finished_args(&chunks), serde_json::json!({"a": "é"}));
}

#[test]
fn truncated_streams_are_cut_not_complete() {
    for (provider, text) in [
        ("anthropic", ANTHROPIC),
        ("openai", OPENAI),
        ("google", GEMINI),
    ] {
        let half = &text.as_bytes()[..text.len() / 2];
        let result = match provider {
            "anthropic" => decode_all(provider, anthropic::Decoder::default(), &[half]),
            "openai" => decode_all(provider, openai::Decoder::new(provider), &[half]),
            _ => decode_all(provider, google::Decoder::default(), &[half]),
        };
        assert!(result.is_err(), "{provider}: {result:?}");
    }
}
