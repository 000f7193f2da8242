//! The one place where prompt text is made: the system prompt of a run, and the conversion of
//! checkpoint messages into the provider-neutral request that goes to the model.

use std::path::Path;

use crate::definition::{Expert, delegate_tool_name};
use crate::llm;
use crate::tool::ToolContent;

use super::message::{Message, Part};

/// Everything the system prompt says, in order: how the loop works, when and where the run is,
/// the Expert's instruction, each skill's rule, and the delegates it may call.
pub fn system_prompt(
    expert_key: &str,
    expert: &Expert,
    delegates: &[(String, Option<String>)],
    workspace: &Path,
    now_rfc3339: &str,
) -> String {
    let mut out = format!(
        "You are \"{expert_key}\", an Expert: an agent that completes one task by calling tools.\n\
         Work in steps. In each step, call the tools you need; their results come back in the next message.\n\
         When the task is done, call attemptCompletion, then answer with the final result for whoever asked.\n\
         If attemptCompletion lists open todos, finish them first.\n\
         You see only this instruction and the query you were given; say what you need in your tool calls.\n\
         \n\
         Current time: {now_rfc3339}\n\
         Working directory: {}\n",
        workspace.display()
    );
    out.push_str("\n# Instruction\n\n");
    out.push_str(expert.instruction.trim_end());
    out.push('\n');
    let skills = expert.effective_skills();
    let rules: Vec<(&String, &str)> = skills
        .iter()
        .filter_map(|(name, skill)| Some((name, skill.rule()?)))
        .collect();
    if !rules.is_empty() {
        out.push_str("\n# Skill rules\n");
        for (name, rule) in rules {
            out.push_str(&format!("\n## {name}\n{}\n", rule.trim_end()));
        }
    }
    if !delegates.is_empty() {
        out.push_str("\n# Delegates\nThese Experts can be called as tools with a `query`. They see only that query.\n\n");
        for (key, description) in delegates {
            out.push_str(&format!(
                "- {}: {}\n",
                delegate_tool_name(key),
                description.as_deref().unwrap_or("(no description)")
            ));
        }
    }
    out
}

/// Checkpoint messages → the neutral request. Instruction messages become the system prompt;
/// tool results travel in user messages, as every wire format expects them next to the user.
pub fn to_llm_messages<'a>(
    messages: impl IntoIterator<Item = &'a Message>,
) -> (String, Vec<llm::Message>) {
    let mut converted = LlmMessages::default();
    converted.extend(messages);
    (converted.system, converted.messages)
}

/// Checkpoint messages converted so far; more can be added at the end, as a run's conversation
/// grows, without converting the earlier ones again.
#[derive(Debug, Default)]
pub(super) struct LlmMessages {
    pub(super) system: String,
    pub(super) messages: Vec<llm::Message>,
    instructions: usize,
}

impl LlmMessages {
    pub(super) fn extend<'a>(&mut self, messages: impl IntoIterator<Item = &'a Message>) {
        for message in messages {
            let (role, contents) = match message {
                Message::InstructionMessage { .. } => {
                    if self.instructions > 0 {
                        self.system.push_str("\n\n");
                    }
                    self.system.push_str(&message.text());
                    self.instructions += 1;
                    continue;
                }
                Message::UserMessage { contents, .. } | Message::ToolMessage { contents, .. } => {
                    (llm::Role::User, contents)
                }
                Message::ExpertMessage { contents, .. } => (llm::Role::Assistant, contents),
            };
            let parts = contents.iter().filter_map(to_llm_part);
            // Providers want roles to alternate: a tool result followed by a retry note is one
            // user turn.
            match self.messages.last_mut() {
                Some(last) if last.role == role => last.parts.extend(parts),
                _ => self.messages.push(llm::Message {
                    role,
                    parts: parts.collect(),
                }),
            }
        }
    }
}

fn to_llm_part(part: &Part) -> Option<llm::Part> {
    Some(match part {
        Part::TextPart { text, .. } => llm::Part::Text { text: text.clone() },
        Part::ImageInlinePart {
            encoded_data,
            mime_type,
            ..
        } => llm::Part::Image {
            mime_type: mime_type.clone(),
            data: encoded_data.clone(),
        },
        Part::ToolCallPart {
            tool_call_id,
            tool_name,
            args,
            ..
        } => llm::Part::ToolCall {
            id: tool_call_id.clone(),
            name: tool_name.clone(),
            args: args.clone(),
        },
        Part::ToolResultPart {
            tool_call_id,
            tool_name,
            contents,
            is_error,
            ..
        } => llm::Part::ToolResult {
            tool_call_id: tool_call_id.clone(),
            tool_name: tool_name.clone(),
            contents: contents
                .iter()
                .filter_map(|c| match c {
                    Part::TextPart { text, .. } => Some(ToolContent::Text { text: text.clone() }),
                    Part::ImageInlinePart {
                        encoded_data,
                        mime_type,
                        ..
                    } => Some(ToolContent::Image {
                        mime_type: mime_type.clone(),
                        data: encoded_data.clone(),
                    }),
                    _ => None,
                })
                .collect(),
            is_error: *is_error,
        },
        Part::ThinkingPart {
            thinking,
            signature,
            ..
        } => llm::Part::Thinking {
            text: thinking.clone(),
            signature: signature.clone(),
        },
        Part::ProviderToolPart {
            tool_call_id,
            tool_name,
            args,
            result,
            ..
        } => llm::Part::ProviderTool {
            id: tool_call_id.clone(),
            name: tool_name.clone(),
            args: args.clone(),
            result: result.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::message::{ToolCall, ToolResult};
    use crate::tool::ToolOutput;

    fn expert() -> Expert {
        Expert {
            instruction: "Write release notes.".into(),
            description: None,
            version: None,
            delegates: Some(vec!["@acme/reader".into()]),
            tags: None,
            min_runtime_version: None,
            skills: None,
            ..Expert::default()
        }
    }

    #[test]
    fn system_prompt_has_every_section_in_order() {
        let prompt = system_prompt(
            "lead",
            &expert(),
            &[("@acme/reader".into(), Some("Reads changelogs".into()))],
            Path::new("/work/space"),
            "2026-01-01T00:00:00Z",
        );
        let meta = prompt.find("attemptCompletion").expect("meta");
        let instruction = prompt.find("Write release notes.").expect("instruction");
        let delegates = prompt
            .find("- reader: Reads changelogs")
            .expect("delegates");
        assert!(meta < instruction && instruction < delegates);
        assert!(prompt.contains("Working directory: /work/space"));
        assert!(prompt.contains("Current time: 2026-01-01T00:00:00Z"));
    }

    #[test]
    fn messages_convert_with_system_and_alternating_roles() {
        let call = ToolCall {
            id: "c1".into(),
            skill_name: "@perstack/base".into(),
            tool_name: "readTextFile".into(),
            args: serde_json::json!({"path": "a"}),
        };
        let result = ToolResult {
            id: "c1".into(),
            skill_name: "@perstack/base".into(),
            tool_name: "readTextFile".into(),
            result: ToolOutput::text("hello"),
        };
        let messages = vec![
            Message::instruction("sys"),
            Message::user("query"),
            Message::expert(vec![Part::tool_call(&call)]),
            Message::tool_results(&[result]),
            Message::user("note"),
        ];
        let (system, converted) = to_llm_messages(&messages);
        assert_eq!(system, "sys");
        assert_eq!(converted.len(), 3);
        assert_eq!(converted[1].role, llm::Role::Assistant);
        assert_eq!(converted[2].role, llm::Role::User);
        assert_eq!(
            converted[2].parts.len(),
            2,
            "tool result and note share one user turn"
        );
        assert!(
            matches!(&converted[2].parts[0], llm::Part::ToolResult { tool_call_id, .. } if tool_call_id == "c1")
        );
    }
}
