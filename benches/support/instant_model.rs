//! A model that answers at once, shared by the runtime and storage benchmarks: a healthCheck
//! call every step until the last, then text.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use perstack::llm::{
    ChunkStream, FinishReason, LanguageModel, LlmError, PreparedRequest, Request, StreamChunk,
};

/// Answers with a healthCheck call until the last step, then with text.
pub struct InstantModel {
    steps: usize,
    calls: AtomicUsize,
    /// When each request was sent: the wall clock, and the CPU time of the thread sending it.
    sent_at: Mutex<Vec<(Instant, Duration)>>,
}

impl InstantModel {
    /// A model for a run of `steps` model calls.
    pub fn new(steps: usize) -> Self {
        InstantModel {
            steps,
            calls: AtomicUsize::new(0),
            sent_at: Mutex::new(Vec::new()),
        }
    }

    /// When each request was sent: the wall clock, and the sending thread's CPU time.
    pub fn stamps(&self) -> Vec<(Instant, Duration)> {
        self.sent_at.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// CPU time spent so far by the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl LanguageModel for InstantModel {
    fn provider(&self) -> &str {
        "bench"
    }

    fn model(&self) -> &str {
        "instant"
    }

    fn prepare(&self, req: &Request) -> Result<PreparedRequest, LlmError> {
        // Serialise the whole request, as every real provider does.
        let body = serde_json::to_vec(req).unwrap_or_default();
        Ok(PreparedRequest::new(
            "bench",
            "POST",
            "bench:",
            Vec::new(),
            body,
        ))
    }

    fn send(&self, _prepared: PreparedRequest) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        if let Ok(mut stamps) = self.sent_at.lock() {
            stamps.push((Instant::now(), thread_cpu_time()));
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let chunks = if n + 1 < self.steps {
            vec![
                StreamChunk::ToolCallStarted {
                    index: 0,
                    id: format!("call{n}"),
                    name: "healthCheck".into(),
                },
                StreamChunk::ToolCallFinished {
                    index: 0,
                    id: format!("call{n}"),
                    name: "healthCheck".into(),
                    args: serde_json::json!({}),
                },
                StreamChunk::Finish {
                    reason: FinishReason::ToolUse,
                },
            ]
        } else {
            vec![
                StreamChunk::TextDelta {
                    text: "done".into(),
                },
                StreamChunk::Finish {
                    reason: FinishReason::Stop,
                },
            ]
        };
        Box::pin(async move { Ok(stream::iter(chunks.into_iter().map(Ok)).boxed()) })
    }
}

/// Runs the benchmarks' one Expert, `solo`, to completion in `context` and checks that it
/// completed and that every write reached the store.
pub async fn run_solo_to_completion(context: std::sync::Arc<perstack::runtime::run::JobContext>) {
    use perstack::runtime::run::{RunSpec, RunStart, run_expert};
    let outcome = run_expert(
        context.clone(),
        RunSpec {
            expert_key: "solo".into(),
            run_id: None,
            start: RunStart::Query("Check health repeatedly".into()),
            parent: None,
        },
    )
    .await;
    assert_eq!(format!("{:?}", outcome.status), "Completed");
    assert!(context.writer.finish().is_empty());
}
