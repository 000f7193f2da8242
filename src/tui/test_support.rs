//! Scripted event streams for the workbench's tests and benchmark: fixed ids and times, so
//! state and snapshots are the same on every machine.

use std::sync::Arc;

use serde_json::json;

use crate::definition::{Config, parse_str};
use crate::runtime::checkpoint::{Checkpoint, CheckpointError, CheckpointStatus, ExpertRef, Usage};
use crate::runtime::event::{EventKind, RunEvent, Step, WireRequest};
use crate::runtime::frozen::Frozen;
use crate::runtime::message::{Message, Part, ToolCall, ToolResult};
use crate::tool::ToolOutput;

pub const T0: u64 = 1_700_000_000_000;
pub const COORD: &str = "run-coord-0001";
pub const READER: &str = "run-reader-0002";
pub const WRITER: &str = "run-writer-0003";

pub fn example_config() -> Config {
    let text = include_str!("../../perstack.toml");
    parse_str(text, std::path::Path::new("perstack.toml"))
        .map(|(config, _)| config)
        .unwrap_or_default()
}

pub fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input + output,
        ..Default::default()
    }
}

pub fn checkpoint(
    run: &str,
    expert: &str,
    step: u64,
    status: CheckpointStatus,
    used: Usage,
) -> Arc<Checkpoint> {
    Arc::new(Checkpoint {
        id: format!("cp-{run}-{step}"),
        job_id: "job-0001".into(),
        run_id: run.into(),
        status,
        step_number: step,
        messages: Vec::new(),
        expert: ExpertRef {
            key: expert.into(),
            name: expert.into(),
            version: "1.0.0".into(),
        },
        delegate_to: None,
        delegated_by: None,
        usage: used,
        context_window: None,
        pending_tool_calls: None,
        partial_tool_results: None,
        error: None,
        retry_count: None,
        todos: Vec::new(),
        forked_from: None,
        edited_requests: Vec::new(),
    })
}

fn text(id: &str, t: &str) -> Part {
    Part::TextPart {
        id: id.into(),
        text: t.into(),
    }
}

pub fn call(id: &str, skill: &str, tool: &str, args: serde_json::Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        skill_name: skill.into(),
        tool_name: tool.into(),
        args,
    }
}

pub fn result(call: &ToolCall, out: &str) -> ToolResult {
    ToolResult {
        id: call.id.clone(),
        skill_name: call.skill_name.clone(),
        tool_name: call.tool_name.clone(),
        result: ToolOutput::text(out),
    }
}

pub fn request(messages: &[Message]) -> WireRequest {
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 8192,
        "system": "You are an Expert.",
        "messages": messages.iter().map(|m| json!({"role": "user", "content": m.text()})).collect::<Vec<_>>(),
        "stream": true,
    });
    WireRequest {
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        method: "POST".into(),
        url: "https://api.anthropic.com/v1/messages".into(),
        headers: vec![
            ("x-api-key".into(), "[redacted]".into()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.to_string(),
        edited: false,
    }
}

pub struct Script {
    pub events: Vec<RunEvent>,
    clock: u64,
}

impl Default for Script {
    fn default() -> Self {
        Script::new()
    }
}

impl Script {
    pub fn new() -> Self {
        Script {
            events: Vec::new(),
            clock: T0,
        }
    }

    pub fn push(&mut self, run: &str, expert: &str, step: u64, kind: EventKind) {
        self.clock += 100;
        let parent = (run != COORD).then(|| COORD.to_string());
        self.events.push(RunEvent {
            id: format!("ev-{}", self.events.len()),
            job_id: "job-0001".into(),
            run_id: run.into(),
            expert_key: expert.into(),
            step_number: step,
            timestamp: self.clock,
            parent_run_id: parent,
            kind,
        });
    }

    pub fn now(&self) -> u64 {
        self.clock
    }

    fn start(&mut self, run: &str, expert: &str, query: &str) {
        let instruction = format!("You are \"{expert}\".\nWork in steps.");
        self.start_with(run, expert, query, &instruction);
    }

    fn start_with(&mut self, run: &str, expert: &str, query: &str, instruction: &str) {
        if run == COORD {
            self.push(
                run,
                expert,
                0,
                EventKind::InitializeRuntime {
                    runtime_version: "0.1.0".into(),
                    runtime: "local".into(),
                    expert_name: expert.into(),
                    experts: vec![expert.into()],
                    model: "claude-sonnet-4-5".into(),
                    max_steps: 40,
                    max_retries: 3,
                    timeout: 120_000,
                    query: query.into(),
                },
            );
        }
        let messages = vec![
            Message::InstructionMessage {
                id: "m-sys".into(),
                contents: vec![text("p-sys", instruction)],
                cache: true,
            },
            Message::UserMessage {
                id: "m-user".into(),
                contents: vec![text("p-user", query)],
            },
        ];
        self.push(
            run,
            expert,
            1,
            EventKind::StartRun {
                initial_checkpoint: checkpoint(
                    run,
                    expert,
                    0,
                    CheckpointStatus::Init,
                    Usage::default(),
                ),
                input_messages: messages.clone(),
            },
        );
        self.generation(run, expert, 1, messages);
    }

    fn generation(&mut self, run: &str, expert: &str, step: u64, messages: Vec<Message>) {
        let req = request(&messages);
        self.push(
            run,
            expert,
            step,
            EventKind::StartGeneration {
                messages: Arc::new(messages.into_iter().map(Into::into).collect()),
            },
        );
        self.push(
            run,
            expert,
            step,
            EventKind::LlmRequest {
                request: req,
                attempt: 1,
            },
        );
    }

    fn call_tools(
        &mut self,
        run: &str,
        expert: &str,
        step: u64,
        calls: Vec<ToolCall>,
        used: Usage,
    ) {
        let parts = calls.iter().map(Part::tool_call).collect();
        self.push(
            run,
            expert,
            step,
            EventKind::CallTools {
                new_message: Message::ExpertMessage {
                    id: format!("m-{run}-{step}"),
                    contents: parts,
                },
                tool_calls: calls,
                usage: used,
            },
        );
    }

    fn finish_call(
        &mut self,
        run: &str,
        expert: &str,
        step: u64,
        call: &ToolCall,
        out: &str,
        ms: u64,
    ) {
        self.push(
            run,
            expert,
            step,
            EventKind::ToolCallTiming {
                tool_call_id: call.id.clone(),
                skill_name: call.skill_name.clone(),
                tool_name: call.tool_name.clone(),
                started_at: self.clock,
                duration_ms: ms,
                is_error: false,
            },
        );
        self.push(
            run,
            expert,
            step,
            EventKind::ResolveToolResults {
                tool_results: vec![result(call, out)],
            },
        );
    }

    fn next_step(&mut self, run: &str, expert: &str, step: u64, used: Usage) {
        self.push(
            run,
            expert,
            step,
            EventKind::ContinueToNextStep {
                checkpoint: checkpoint(run, expert, step, CheckpointStatus::Proceeding, used),
                next_checkpoint: checkpoint(
                    run,
                    expert,
                    step + 1,
                    CheckpointStatus::Proceeding,
                    used,
                ),
                step: Box::new(Step {
                    step_number: step,
                    new_messages: Vec::new(),
                    tool_calls: Vec::new(),
                    tool_results: Vec::new(),
                    usage: used,
                    started_at: self.clock,
                    finished_at: Some(self.clock),
                }),
            },
        );
    }

    fn complete(&mut self, run: &str, expert: &str, step: u64, answer: &str, used: Usage) {
        self.push(
            run,
            expert,
            step,
            EventKind::CompleteRun {
                checkpoint: checkpoint(run, expert, step, CheckpointStatus::Completed, used),
                step: Box::new(Step {
                    step_number: step,
                    new_messages: Vec::new(),
                    tool_calls: Vec::new(),
                    tool_results: Vec::new(),
                    usage: used,
                    started_at: self.clock,
                    finished_at: Some(self.clock),
                }),
                text: answer.into(),
                usage: used,
            },
        );
    }
}

/// Where a scripted run can be cut to show a moment of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Streaming,
    ToolCallInFlight,
    ParallelDelegates,
    Completed,
    Error,
}

/// A coordinator that sends two delegates off in parallel, up to the given moment.
pub fn scripted_run(moment: Moment) -> Script {
    let mut s = Script::new();
    let coord = "release-notes";
    s.start(COORD, coord, "Write release notes for developers");
    s.push(COORD, coord, 1, EventKind::StartStreamingReasoning);
    s.push(
        COORD,
        coord,
        1,
        EventKind::StreamReasoning {
            delta: "The audience is given. ".into(),
        },
    );
    s.push(COORD, coord, 1, EventKind::StartStreamingRunResult);
    s.push(
        COORD,
        coord,
        1,
        EventKind::StreamRunResult {
            delta: "I'll ask both delegates ".into(),
        },
    );
    s.push(
        COORD,
        coord,
        1,
        EventKind::StreamRunResult {
            delta: "at once.".into(),
        },
    );
    if moment == Moment::Streaming {
        return s;
    }
    s.push(
        COORD,
        coord,
        1,
        EventKind::CompleteStreamingRunResult {
            text: "I'll ask both delegates at once.".into(),
        },
    );
    let to_reader = call(
        "tc-1",
        "changelog-reader",
        "changelog-reader",
        json!({"query": "Summarise CHANGELOG.md"}),
    );
    let to_writer = call(
        "tc-2",
        "writer",
        "writer",
        json!({"query": "Draft an outline for developers"}),
    );
    s.call_tools(
        COORD,
        coord,
        1,
        vec![to_reader.clone(), to_writer.clone()],
        usage(1450, 62),
    );
    for (c, run, expert) in [
        (&to_reader, READER, "changelog-reader"),
        (&to_writer, WRITER, "writer"),
    ] {
        s.push(
            COORD,
            coord,
            1,
            EventKind::CallDelegate {
                tool_call: c.clone(),
                delegate_run_id: run.into(),
                delegate_expert_key: expert.into(),
                query: c.args["query"].as_str().unwrap_or_default().into(),
            },
        );
    }
    s.start(READER, "changelog-reader", "Summarise CHANGELOG.md");
    s.start(WRITER, "writer", "Draft an outline for developers");
    let read = call(
        "tc-3",
        "@perstack/base",
        "readTextFile",
        json!({"path": "CHANGELOG.md"}),
    );
    s.call_tools(
        READER,
        "changelog-reader",
        1,
        vec![read.clone()],
        usage(980, 20),
    );
    if moment == Moment::ToolCallInFlight || moment == Moment::ParallelDelegates {
        return s;
    }
    let changelog = (1..=30)
        .map(|i| format!("- change number {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    s.finish_call(
        READER,
        "changelog-reader",
        1,
        &read,
        &format!("# Changelog\n{changelog}"),
        3,
    );
    s.next_step(READER, "changelog-reader", 1, usage(980, 20));
    if moment == Moment::Error {
        s.push(
            COORD,
            coord,
            1,
            EventKind::StopRunByError {
                checkpoint: checkpoint(
                    COORD,
                    coord,
                    1,
                    CheckpointStatus::StoppedByError,
                    usage(1450, 62),
                ),
                error: CheckpointError {
                    name: "ModelError".into(),
                    message: "401 Unauthorized: invalid x-api-key".into(),
                    status_code: Some(401),
                    is_retryable: false,
                },
            },
        );
        return s;
    }
    s.complete(
        READER,
        "changelog-reader",
        2,
        "Added: 30 changes",
        usage(2300, 110),
    );
    s.complete(WRITER, "writer", 1, "Outline ready", usage(900, 40));
    s.finish_call(COORD, coord, 1, &to_reader, "Added: 30 changes", 420);
    s.finish_call(COORD, coord, 1, &to_writer, "Outline ready", 380);
    // The coordinator's usage includes its finished delegates' (2300 + 900 in, 110 + 40 out).
    s.next_step(COORD, coord, 1, usage(1450 + 3200, 62 + 150));
    let messages = vec![
        Message::InstructionMessage {
            id: "m-sys".into(),
            contents: vec![text("p-sys", "You are \"release-notes\".\nWork in steps.")],
            cache: true,
        },
        Message::UserMessage {
            id: "m-user".into(),
            contents: vec![text("p-user", "Write release notes for developers")],
        },
        Message::ExpertMessage {
            id: "m-a1".into(),
            contents: vec![
                Part::ThinkingPart {
                    id: "p-think".into(),
                    thinking: "The audience is given.\nBoth delegates can work at once.".into(),
                    signature: None,
                },
                text("p-a1", "I'll ask both delegates at once."),
                Part::tool_call(&to_reader),
                Part::tool_call(&to_writer),
            ],
        },
        Message::tool_results(&[
            result(&to_reader, "Added: 30 changes"),
            result(&to_writer, "Outline ready"),
        ]),
    ];
    s.generation(COORD, coord, 2, messages);
    let done = call("tc-4", "@perstack/base", "attemptCompletion", json!({}));
    s.call_tools(COORD, coord, 2, vec![done.clone()], usage(1720, 12));
    s.push(
        COORD,
        coord,
        2,
        EventKind::AttemptCompletion {
            tool_result: result(&done, "{\"remainingTodos\": []}"),
        },
    );
    s.complete(
        COORD,
        coord,
        2,
        "Release notes written to RELEASE_NOTES.md.",
        usage(3170 + 3200, 74 + 150),
    );
    s
}

/// A run with `messages` messages in one request, about `bytes` bytes of body in all.
pub fn big_run(messages: usize, bytes: usize) -> Script {
    let mut s = Script::new();
    let expert = "release-notes";
    s.start(COORD, expert, "A long job");
    let per = (bytes / messages.max(1)).max(16);
    let chunk: String = "lorem ipsum dolor sit amet, ".repeat(per / 28 + 1);
    let body_text = chunk.get(..per).unwrap_or(&chunk).to_string();
    let history: Vec<Message> = (0..messages)
        .map(|i| match i % 2 {
            0 => Message::UserMessage {
                id: format!("u{i}"),
                contents: vec![text("p", &format!("message {i}: {body_text}"))],
            },
            _ => Message::ExpertMessage {
                id: format!("a{i}"),
                contents: vec![text("p", &format!("answer {i}:\n{body_text}"))],
            },
        })
        .collect();
    s.generation(COORD, expert, 2, history);
    for i in 0..200 {
        let c = call(
            &format!("big-{i}"),
            "@perstack/base",
            "readTextFile",
            json!({"path": format!("f{i}.txt")}),
        );
        s.call_tools(COORD, expert, 2, vec![c.clone()], usage(10, 1));
        s.finish_call(COORD, expert, 2, &c, &body_text, 2);
    }
    s
}

/// The coordinator's first step with `instruction` as its instruction (the request body's
/// `system` string too), answering `answer` as it streams.
pub fn instruction_run(instruction: &str, query: &str, answer: &str) -> Script {
    let mut s = Script::new();
    let expert = "release-notes";
    s.start_with(COORD, expert, query, instruction);
    for event in &mut s.events {
        if let EventKind::LlmRequest { request, .. } = &mut event.kind {
            if let Ok(mut body) = serde_json::from_str::<serde_json::Value>(&request.body) {
                body["system"] = instruction.into();
                request.body = body.to_string();
            }
        }
    }
    s.push(COORD, expert, 1, EventKind::StartStreamingRunResult);
    s.push(
        COORD,
        expert,
        1,
        EventKind::StreamRunResult {
            delta: answer.into(),
        },
    );
    s
}

pub const FORK: &str = "run-fork-0004";

fn plain(messages: &[Frozen<Message>]) -> Vec<Message> {
    messages.iter().map(|m| (**m).clone()).collect()
}

/// An event of a top-level run (a fork has no parent), at a fixed time after `T0`.
pub fn top_level_event(run: &str, expert: &str, step: u64, at: u64, kind: EventKind) -> RunEvent {
    RunEvent {
        id: format!("ev-{run}-{at}"),
        job_id: "job-0001".into(),
        run_id: run.into(),
        expert_key: expert.into(),
        step_number: step,
        timestamp: T0 + at,
        parent_run_id: None,
        kind,
    }
}

/// A run forked from `origin` (a checkpoint of the coordinator): it takes one more step, whose
/// request carries `instruction` as the new system prompt, and completes.
pub fn fork_run(origin: &Checkpoint, instruction: &str) -> Vec<RunEvent> {
    let expert = origin.expert.key.as_str();
    let step = origin.step_number + 1;
    let mut messages: Vec<Frozen<Message>> = vec![Frozen::new(Message::InstructionMessage {
        id: "m-sys".into(),
        contents: vec![text("p-sys", instruction)],
        cache: true,
    })];
    messages.extend(origin.messages.iter().skip(1).cloned());
    let mut start = (*checkpoint(FORK, expert, step, CheckpointStatus::Init, origin.usage)).clone();
    start.forked_from = Some(origin.id.clone());
    start.messages = messages.clone();
    messages.push(Frozen::new(Message::ExpertMessage {
        id: "m-fork-answer".into(),
        contents: vec![text("p-fork-answer", "Release notes, take two.")],
    }));
    let mut done = start.clone();
    done.id = format!("cp-{FORK}-{step}");
    done.status = CheckpointStatus::Completed;
    done.messages = messages;
    let done = Arc::new(done);
    let mut at = 60_000;
    let mut event = |kind| {
        at += 100;
        top_level_event(FORK, expert, step, at, kind)
    };
    vec![
        event(EventKind::StartRun {
            initial_checkpoint: Arc::new(start.clone()),
            input_messages: Vec::new(),
        }),
        event(EventKind::StartGeneration {
            messages: Arc::new(start.messages.clone()),
        }),
        event(EventKind::LlmRequest {
            request: request(&plain(&start.messages)),
            attempt: 1,
        }),
        event(EventKind::CompleteRun {
            checkpoint: done.clone(),
            step: Box::new(Step {
                step_number: step,
                new_messages: Vec::new(),
                tool_calls: Vec::new(),
                tool_results: Vec::new(),
                usage: done.usage,
                started_at: T0 + 60_000,
                finished_at: Some(T0 + 60_300),
            }),
            text: "Release notes, take two.".into(),
            usage: done.usage,
        }),
    ]
}
