//! OpenTelemetry traces of runs: one more reader of a job's events. [`convert`] turns events
//! into spans (pure, testable without a network), [`export`] batches and posts them as
//! OTLP/HTTP protobuf, and [`tee`] puts both between a job and its front end, so the runtime
//! itself does nothing differently.

pub mod convert;
pub mod export;
pub mod proto;
pub mod span;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use convert::TraceBuilder;
pub use export::{ExportReport, OtlpConfig, OtlpConfigError, Poster};

use crate::runtime::event::RunEvent;

/// The trace id of a job as the tools show it (32 hex digits): the same for the live export
/// and for `perstack export otel`.
pub fn trace_id_hex(job_id: &str) -> String {
    span::hex(&span::trace_id(job_id))
}

/// Reads a job's events on their way to the front end, turns them into spans and hands those
/// to the exporter; the events go on unchanged and in order. The task's result says how the
/// export went once the job's events have ended and the last batch is sent.
pub fn tee(
    mut events: mpsc::UnboundedReceiver<RunEvent>,
    job_id: &str,
    poster: Poster,
) -> (mpsc::UnboundedReceiver<RunEvent>, JoinHandle<ExportReport>) {
    let (forward, out) = mpsc::unbounded_channel();
    let mut builder = TraceBuilder::new(job_id, poster.config().capture_content);
    let task = tokio::spawn(async move {
        let (queue, exporter) = export::spawn_exporter(poster, export::QUEUE_SPANS);
        while let Some(event) = events.recv().await {
            for span in builder.push(&event) {
                queue.send(span);
            }
            // A front end that stopped reading does not stop the trace.
            let _ = forward.send(event);
        }
        for span in builder.finish() {
            queue.send(span);
        }
        drop(queue);
        exporter.await.unwrap_or_else(|err| ExportReport {
            first_error: Some(format!("the exporter stopped: {err}")),
            ..ExportReport::default()
        })
    });
    (out, task)
}
