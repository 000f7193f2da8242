//! Spans in the OTLP protobuf form (`ExportTraceServiceRequest`), the body of a
//! `POST /v1/traces`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as otlp;
use prost::Message as _;

use super::span::{AttrValue, Span, SpanKind, Status};

fn any_value(value: &AttrValue) -> AnyValue {
    let value = match value {
        AttrValue::Str(text) => any_value::Value::StringValue(text.clone()),
        AttrValue::Int(number) => any_value::Value::IntValue(*number),
        AttrValue::Bool(flag) => any_value::Value::BoolValue(*flag),
        AttrValue::StrList(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|item| AnyValue {
                    value: Some(any_value::Value::StringValue(item.clone())),
                })
                .collect(),
        }),
    };
    AnyValue { value: Some(value) }
}

fn key_values<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a AttrValue)>) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|(key, value)| KeyValue {
            key: key.to_string(),
            value: Some(any_value(value)),
            ..Default::default()
        })
        .collect()
}

const NANOS_PER_MILLI: u64 = 1_000_000;

fn span(span: &Span) -> otlp::Span {
    otlp::Span {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        parent_span_id: span
            .parent_span_id
            .map(|id| id.to_vec())
            .unwrap_or_default(),
        name: span.name.clone(),
        kind: match span.kind {
            SpanKind::Internal => otlp::span::SpanKind::Internal,
            SpanKind::Client => otlp::span::SpanKind::Client,
        } as i32,
        start_time_unix_nano: span.start_ms.saturating_mul(NANOS_PER_MILLI),
        end_time_unix_nano: span.end_ms.saturating_mul(NANOS_PER_MILLI),
        attributes: key_values(span.attributes.iter().map(|(k, v)| (*k, v))),
        events: span
            .events
            .iter()
            .map(|event| otlp::span::Event {
                time_unix_nano: event.time_ms.saturating_mul(NANOS_PER_MILLI),
                name: event.name.to_string(),
                attributes: key_values(event.attributes.iter().map(|(k, v)| (*k, v))),
                ..Default::default()
            })
            .collect(),
        status: match &span.status {
            Status::Unset => None,
            Status::Error(message) => Some(otlp::Status {
                message: message.clone(),
                code: otlp::status::StatusCode::Error as i32,
            }),
        },
        ..Default::default()
    }
}

/// One request with every span under one resource (the service) and one scope (perstack).
pub fn request(service_name: &str, spans: &[Span]) -> ExportTraceServiceRequest {
    let service = AttrValue::Str(service_name.to_string());
    let version = AttrValue::Str(env!("CARGO_PKG_VERSION").to_string());
    ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(Resource {
                attributes: key_values([
                    ("service.name", &service),
                    ("service.version", &version),
                    // Phoenix files spans under a project named by this.
                    ("openinference.project.name", &service),
                ]),
                ..Default::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "perstack".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.iter().map(span).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn encode(service_name: &str, spans: &[Span]) -> Vec<u8> {
    request(service_name, spans).encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::span::{SpanEvent, span_id, trace_id};

    #[test]
    fn encodes_and_decodes_back_with_ids_times_and_status() {
        let span = Span {
            trace_id: trace_id("j"),
            span_id: span_id(&["s"]),
            parent_span_id: Some(span_id(&["p"])),
            name: "chat m".into(),
            kind: SpanKind::Client,
            start_ms: 1_000,
            end_ms: 1_500,
            attributes: vec![
                ("gen_ai.usage.input_tokens", AttrValue::Int(7)),
                (
                    "gen_ai.response.finish_reasons",
                    AttrValue::StrList(vec!["stop".into()]),
                ),
            ],
            events: vec![SpanEvent {
                name: "retry",
                time_ms: 1_200,
                attributes: vec![("perstack.retry.attempt", AttrValue::Int(1))],
            }],
            status: Status::Error("boom".into()),
        };
        let bytes = encode("svc", std::slice::from_ref(&span));
        let back = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
        let resource = &back.resource_spans[0];
        let service = &resource.resource.as_ref().expect("resource").attributes[0];
        assert_eq!(service.key, "service.name");
        let decoded = &resource.scope_spans[0].spans[0];
        assert_eq!(decoded.trace_id, span.trace_id.to_vec());
        assert_eq!(decoded.parent_span_id, span_id(&["p"]).to_vec());
        assert_eq!(decoded.start_time_unix_nano, 1_000_000_000);
        assert_eq!(decoded.end_time_unix_nano, 1_500_000_000);
        assert_eq!(decoded.kind, otlp::span::SpanKind::Client as i32);
        assert_eq!(decoded.events[0].name, "retry");
        let status = decoded.status.as_ref().expect("status");
        assert_eq!(status.code, otlp::status::StatusCode::Error as i32);
        assert_eq!(status.message, "boom");
        assert_eq!(
            decoded.attributes[0].value,
            Some(AnyValue {
                value: Some(any_value::Value::IntValue(7))
            })
        );
    }
}
