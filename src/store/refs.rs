//! How events are kept in the store, and made whole again when read.
//!
//! An event that embeds a checkpoint (`startRun`, `continueToNextStep`, `completeRun`, the
//! `stopRunBy*` events) or the message list (`startGeneration`) would repeat the whole
//! conversation: at step N every such event holds N steps of messages, so a job's storage grew
//! with the square of its steps. Stored, such a message list keeps only what the last stored
//! checkpoint of the run does not already hold:
//!
//! ```json
//! "messages": {"ref": "<checkpointId>", "prefix": 41, "tail": [ ...new messages... ]}
//! ```
//!
//! meaning "the first 41 messages of checkpoint `<checkpointId>` of this job, then `tail`".
//! The body of an `llmRequest` (the whole conversation in the provider's wire format) is kept
//! the same way against the run's previous `llmRequest`:
//!
//! ```json
//! "body": {"ref": "<eventId>", "prefix": 18211, "tail": "...the bytes after..."}
//! ```
//!
//! Every stored event also has `seq`: the order in which it was emitted, which is the order
//! `perstack run` printed it (timestamps tie within a millisecond). Reading an event back
//! ([`inflate`]) restores the very JSON that was printed, without `seq`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::runtime::checkpoint::Checkpoint;
use crate::runtime::event::{EventKind, RunEvent};
use crate::runtime::frozen::Frozen;
use crate::runtime::message::Message;

/// Where an embedded checkpoint can appear in an event.
const CHECKPOINT_FIELDS: [&str; 3] = ["initialCheckpoint", "checkpoint", "nextCheckpoint"];

/// The sequence number of events stored before sequence numbers were: their timestamp on the
/// same scale (see [`sequence_start`]), so old and new events of one job still sort together.
pub fn order_key(stored: &Value) -> u64 {
    stored["seq"].as_u64().unwrap_or_else(|| {
        stored["timestamp"]
            .as_u64()
            .unwrap_or(0)
            .saturating_mul(SEQ_PER_MS)
    })
}

/// A process numbers its events from `start_ms * SEQ_PER_MS`: a later process starts a later
/// millisecond, so its numbers are above every earlier one unless that process emitted a
/// million events a millisecond.
const SEQ_PER_MS: u64 = 1_000_000;

/// The first sequence number of a process that starts at `now_ms`.
pub fn sequence_start(now_ms: u64) -> u64 {
    now_ms.saturating_mul(SEQ_PER_MS)
}

/// Turns events into their stored form. Keeps, per run, the last checkpoint known to be in the
/// store, which later events refer to.
#[derive(Default)]
pub struct Deflater {
    stored: HashMap<String, Arc<Checkpoint>>,
    /// Per run, the last `llmRequest` stored: its event id and body.
    requests: HashMap<String, (String, String)>,
}

impl Deflater {
    /// `checkpoint` is in the store now: later events of `run_id` may refer to it.
    pub fn stored(&mut self, run_id: &str, checkpoint: Arc<Checkpoint>) {
        self.stored.insert(run_id.to_string(), checkpoint);
    }

    /// The stored JSON of `event`, numbered `seq`.
    pub fn deflate(&mut self, event: &RunEvent, seq: u64) -> Result<Value, serde_json::Error> {
        if let EventKind::LlmRequest { request, .. } = &event.kind {
            return Ok(self.deflate_request(event, &request.body, request.edited, seq));
        }
        let base = self.stored.get(&event.run_id).map(|c| &**c);
        let mut kind = event.kind.clone();
        // (field, checkpoint id, prefix length) for each list cut short.
        let mut cuts: Vec<(&'static str, String, usize)> = Vec::new();
        if let Some(base) = base {
            match &mut kind {
                EventKind::StartRun {
                    initial_checkpoint, ..
                } => cut_checkpoint(initial_checkpoint, base, "initialCheckpoint", &mut cuts),
                EventKind::ContinueToNextStep {
                    checkpoint,
                    next_checkpoint,
                    ..
                } => {
                    cut_checkpoint(checkpoint, base, "checkpoint", &mut cuts);
                    cut_checkpoint(next_checkpoint, base, "nextCheckpoint", &mut cuts);
                }
                EventKind::CompleteRun { checkpoint, .. }
                | EventKind::StopRunByError { checkpoint, .. }
                | EventKind::StopRunByExceededMaxSteps { checkpoint }
                | EventKind::StopRunByDelegate { checkpoint }
                | EventKind::StopRunByInteractiveTool { checkpoint }
                | EventKind::StopRunByCancel { checkpoint } => {
                    cut_checkpoint(checkpoint, base, "checkpoint", &mut cuts)
                }
                EventKind::StartGeneration { messages } => {
                    let prefix = common_prefix(messages, &base.messages);
                    if prefix > 0 {
                        *messages = Arc::new(messages[prefix..].to_vec());
                        cuts.push(("messages", base.id.clone(), prefix));
                    }
                }
                _ => {}
            }
        }
        let shortened = RunEvent {
            kind,
            ..header(event)
        };
        let mut value = serde_json::to_value(&shortened)?;
        if let Value::Object(map) = &mut value {
            for (field, id, prefix) in cuts {
                let holder = if field == "messages" {
                    Some(&mut *map)
                } else {
                    map.get_mut(field).and_then(Value::as_object_mut)
                };
                if let Some(holder) = holder {
                    let tail = holder.get_mut("messages").map(Value::take);
                    holder.insert("messages".into(), reference(&id, prefix, tail));
                }
            }
            map.insert("seq".into(), Value::from(seq));
        }
        Ok(value)
    }
}

impl Deflater {
    /// A request a person edited by hand is kept whole: it is rare, and read on its own.
    fn deflate_request(&mut self, event: &RunEvent, body: &str, edited: bool, seq: u64) -> Value {
        let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
        let previous = self
            .requests
            .insert(event.run_id.clone(), (event.id.clone(), body.to_string()));
        let previous = previous.filter(|_| !edited);
        if let (Some((id, earlier)), Some(slot)) = (previous, value.pointer_mut("/request/body")) {
            let prefix = common_text_prefix(&earlier, body);
            if prefix > 0 {
                let mut object = Map::new();
                object.insert("ref".into(), Value::from(id));
                object.insert("prefix".into(), Value::from(prefix as u64));
                object.insert("tail".into(), Value::from(&body[prefix..]));
                *slot = Value::Object(object);
            }
        }
        if let Value::Object(map) = &mut value {
            map.insert("seq".into(), Value::from(seq));
        }
        value
    }
}

/// The length in bytes of the longest common prefix of two texts, at a character boundary.
fn common_text_prefix(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// The event without its kind's payload (which the caller replaces).
fn header(event: &RunEvent) -> RunEvent {
    RunEvent {
        id: event.id.clone(),
        job_id: event.job_id.clone(),
        run_id: event.run_id.clone(),
        expert_key: event.expert_key.clone(),
        step_number: event.step_number,
        timestamp: event.timestamp,
        parent_run_id: event.parent_run_id.clone(),
        kind: EventKind::StartStreamingRunResult,
    }
}

fn reference(id: &str, prefix: usize, tail: Option<Value>) -> Value {
    let mut object = Map::new();
    object.insert("ref".into(), Value::from(id));
    object.insert("prefix".into(), Value::from(prefix as u64));
    object.insert("tail".into(), tail.unwrap_or(Value::Array(Vec::new())));
    Value::Object(object)
}

fn cut_checkpoint(
    checkpoint: &mut Arc<Checkpoint>,
    base: &Checkpoint,
    field: &'static str,
    cuts: &mut Vec<(&'static str, String, usize)>,
) {
    let prefix = common_prefix(&checkpoint.messages, &base.messages);
    if prefix == 0 {
        return;
    }
    let mut shorter = (**checkpoint).clone();
    shorter.messages.drain(..prefix);
    *checkpoint = Arc::new(shorter);
    cuts.push((field, base.id.clone(), prefix));
}

/// How many leading messages two lists share. Messages of one run are shared (`Frozen`), so
/// this is mostly pointer comparisons.
fn common_prefix(a: &[Frozen<Message>], b: &[Frozen<Message>]) -> usize {
    a.iter()
        .zip(b)
        .take_while(|(x, y)| Frozen::ptr_eq(x, y) || ***x == ***y)
        .count()
}

/// Why a stored event could not be made whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    #[error("it refers to checkpoint {0}, which is not in the job")]
    MissingCheckpoint(String),
    #[error("it refers to {prefix} messages of checkpoint {id}, which holds {held}")]
    ShortCheckpoint {
        id: String,
        prefix: usize,
        held: usize,
    },
    #[error(
        "its request body continues the one of event {0}, which is not the run's previous request"
    )]
    MissingRequest(String),
}

/// Makes the stored events of one run whole again, read in order: the JSON `perstack run`
/// printed. `messages_of` gives the stored message list of a checkpoint of the same job.
#[derive(Default)]
pub struct Inflater {
    /// The last `llmRequest` made whole: its event id and body.
    request: Option<(String, String)>,
}

impl Inflater {
    pub fn inflate(
        &mut self,
        stored: &mut Value,
        messages_of: &mut dyn FnMut(&str) -> Option<Arc<Vec<Value>>>,
    ) -> Result<(), InflateError> {
        inflate(stored, messages_of)?;
        if stored["type"] != "llmRequest" {
            return Ok(());
        }
        let id = stored["id"].as_str().unwrap_or_default().to_string();
        let Some(slot) = stored.pointer_mut("/request/body") else {
            return Ok(());
        };
        if let Value::Object(reference) = slot {
            let wanted = reference["ref"].as_str().unwrap_or_default();
            let prefix = reference["prefix"].as_u64().unwrap_or(0) as usize;
            let head = match &self.request {
                Some((earlier_id, body)) if earlier_id == wanted => body.get(..prefix),
                _ => return Err(InflateError::MissingRequest(wanted.to_string())),
            };
            let head = head.ok_or_else(|| InflateError::MissingRequest(wanted.to_string()))?;
            let whole = format!("{head}{}", reference["tail"].as_str().unwrap_or_default());
            *slot = Value::String(whole);
        }
        if let Some(body) = slot.as_str() {
            self.request = Some((id, body.to_string()));
        }
        Ok(())
    }
}

/// Makes a stored event whole again, except an `llmRequest`'s body (see [`Inflater`]).
/// `messages_of` gives the stored message list of a checkpoint of the same job.
pub fn inflate(
    stored: &mut Value,
    messages_of: &mut dyn FnMut(&str) -> Option<Arc<Vec<Value>>>,
) -> Result<(), InflateError> {
    let Value::Object(map) = stored else {
        return Ok(());
    };
    map.shift_remove("seq");
    if let Some(slot) = map.get_mut("messages") {
        restore(slot, messages_of)?;
    }
    for field in CHECKPOINT_FIELDS {
        if let Some(slot) = map.get_mut(field).and_then(|c| c.get_mut("messages")) {
            restore(slot, messages_of)?;
        }
    }
    Ok(())
}

fn restore(
    slot: &mut Value,
    messages_of: &mut dyn FnMut(&str) -> Option<Arc<Vec<Value>>>,
) -> Result<(), InflateError> {
    let Value::Object(reference) = slot else {
        return Ok(());
    };
    let Some(id) = reference.get("ref").and_then(Value::as_str) else {
        return Ok(());
    };
    let prefix = reference["prefix"].as_u64().unwrap_or(0) as usize;
    let messages = messages_of(id).ok_or_else(|| InflateError::MissingCheckpoint(id.into()))?;
    let head = messages
        .get(..prefix)
        .ok_or(InflateError::ShortCheckpoint {
            id: id.to_string(),
            prefix,
            held: messages.len(),
        })?;
    let mut whole = head.to_vec();
    if let Some(Value::Array(tail)) = reference.get_mut("tail") {
        whole.append(tail);
    }
    *slot = Value::Array(whole);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::checkpoint::{CheckpointStatus, ExpertRef, Usage};
    use crate::runtime::event::{RunIds, Step};

    fn checkpoint(id: &str, messages: Vec<Frozen<Message>>) -> Arc<Checkpoint> {
        let expert = ExpertRef {
            key: "a".into(),
            name: "a".into(),
            version: "1.0.0".into(),
        };
        let mut checkpoint = Checkpoint::new("j", "r", expert, Vec::new());
        checkpoint.id = id.into();
        checkpoint.messages = messages;
        checkpoint.status = CheckpointStatus::Proceeding;
        Arc::new(checkpoint)
    }

    fn ids() -> RunIds {
        RunIds {
            job_id: "j".into(),
            run_id: "r".into(),
            expert_key: "a".into(),
            parent_run_id: None,
        }
    }

    #[test]
    fn a_stored_event_refers_to_the_checkpoint_and_inflates_to_what_was_printed() {
        let shared: Vec<Frozen<Message>> = (0..50)
            .map(|i| Frozen::new(Message::user(format!("message {i} {}", "x".repeat(200)))))
            .collect();
        let saved = checkpoint("cp1", shared.clone());
        let mut longer = shared.clone();
        longer.push(Frozen::new(Message::user("new")));
        let next = checkpoint("cp2", longer.clone());
        let step = Step {
            step_number: 1,
            new_messages: Vec::new(),
            tool_calls: Vec::new(),
            tool_results: Vec::new(),
            usage: Usage::default(),
            started_at: 1,
            finished_at: None,
        };
        let events = [
            ids().event(
                1,
                EventKind::ContinueToNextStep {
                    checkpoint: saved.clone(),
                    next_checkpoint: next,
                    step: Box::new(step),
                },
            ),
            ids().event(
                2,
                EventKind::StartGeneration {
                    messages: Arc::new(longer),
                },
            ),
            ids().event(2, EventKind::StartStreamingRunResult),
        ];
        let mut deflater = Deflater::default();
        deflater.stored("r", saved.clone());
        let stored_checkpoint = serde_json::to_value(&*saved).expect("serialises");
        let held = Arc::new(
            stored_checkpoint["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        for (n, event) in events.iter().enumerate() {
            let printed = serde_json::to_value(event).expect("serialises");
            let mut stored = deflater.deflate(event, 7 + n as u64).expect("deflates");
            assert_eq!(order_key(&stored), 7 + n as u64);
            if n < 2 {
                let stored_len = stored.to_string().len();
                assert!(
                    stored_len * 5 < printed.to_string().len(),
                    "{} is stored in {stored_len} bytes",
                    event.kind.name()
                );
            }
            inflate(&mut stored, &mut |id| (id == "cp1").then(|| held.clone())).expect("inflates");
            assert_eq!(stored.to_string(), printed.to_string());
        }
    }

    #[test]
    fn without_a_stored_checkpoint_an_event_is_stored_whole() {
        let messages = vec![Frozen::new(Message::user("hi"))];
        let event = ids().event(
            1,
            EventKind::StartGeneration {
                messages: Arc::new(messages),
            },
        );
        let stored = Deflater::default().deflate(&event, 1).expect("deflates");
        assert_eq!(stored["messages"][0]["type"], "userMessage");
        let mut missing = Deflater::default().deflate(&event, 1).expect("deflates");
        missing["messages"] = serde_json::json!({"ref": "gone", "prefix": 1, "tail": []});
        assert_eq!(
            inflate(&mut missing, &mut |_| None),
            Err(InflateError::MissingCheckpoint("gone".into()))
        );
    }

    #[test]
    fn a_request_body_is_stored_as_what_it_adds_to_the_previous_one() {
        use crate::runtime::event::WireRequest;
        let request = |body: String| EventKind::LlmRequest {
            request: WireRequest {
                provider: "openai".into(),
                model: "m".into(),
                method: "POST".into(),
                url: "u".into(),
                headers: Vec::new(),
                body,
                edited: false,
            },
            attempt: 1,
        };
        let conversation = "é".repeat(2000);
        let events = [
            ids().event(1, request(format!("{{\"m\":\"{conversation}\"}}"))),
            ids().event(2, request(format!("{{\"m\":\"{conversation}é more\"}}"))),
            ids().event(3, request(format!("{{\"m\":\"{conversation}è other\"}}"))),
        ];
        let mut deflater = Deflater::default();
        let mut inflater = Inflater::default();
        for (n, event) in events.iter().enumerate() {
            let printed = serde_json::to_value(event).expect("serialises");
            let mut stored = deflater.deflate(event, n as u64).expect("deflates");
            if n > 0 {
                assert!(stored["request"]["body"]["ref"].is_string());
                assert!(stored.to_string().len() < 400, "{stored}");
            }
            inflater
                .inflate(&mut stored, &mut |_| None)
                .expect("inflates");
            assert_eq!(stored, printed);
        }
        let mut edited = events[2].clone();
        if let EventKind::LlmRequest { request, .. } = &mut edited.kind {
            request.edited = true;
        }
        let kept = deflater.deflate(&edited, 9).expect("deflates");
        assert!(
            kept["request"]["body"].is_string(),
            "an edited request is kept whole"
        );
        let mut orphan = Deflater::default();
        orphan.deflate(&events[0], 0).expect("deflates");
        let mut stored = orphan.deflate(&events[1], 1).expect("deflates");
        assert!(matches!(
            Inflater::default().inflate(&mut stored, &mut |_| None),
            Err(InflateError::MissingRequest(_))
        ));
    }

    #[test]
    fn events_stored_before_sequence_numbers_sort_by_their_timestamp() {
        let old = serde_json::json!({"timestamp": 5});
        let new = serde_json::json!({"timestamp": 5, "seq": sequence_start(5) + 3});
        assert!(order_key(&old) < order_key(&new));
        assert!(order_key(&new) < sequence_start(6));
    }
}
