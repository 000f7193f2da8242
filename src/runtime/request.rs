//! The request a run sends its model, kept from step to step. A run's conversation only grows,
//! so each step converts just the messages added since the one before, instead of all of them.

use super::frozen::Frozen;
use super::message::Message;
use super::prompt::LlmMessages;
use crate::definition::ReasoningBudget;
use crate::llm::{self, LanguageModel, LlmError, PreparedRequest};
use crate::tool::ToolDefinition;

pub struct RunRequest {
    /// The checkpoint messages `converted` was made from: the next list must start with the
    /// very same ones, or everything is converted again.
    sources: Vec<Frozen<Message>>,
    converted: LlmMessages,
    tools: Vec<ToolDefinition>,
    reasoning: ReasoningBudget,
    expert_key: String,
    provider_tools: Vec<llm::provider_tools::ProviderTool>,
    provider_skills: Vec<crate::definition::ProviderSkill>,
    custom_skill_ids: std::collections::BTreeMap<String, String>,
}

impl RunRequest {
    pub fn new(reasoning: ReasoningBudget, expert_key: String) -> Self {
        RunRequest {
            sources: Vec::new(),
            converted: LlmMessages::default(),
            tools: Vec::new(),
            reasoning,
            expert_key,
            provider_tools: Vec::new(),
            provider_skills: Vec::new(),
            custom_skill_ids: Default::default(),
        }
    }

    /// The provider skills of the Expert, custom ones needing an upload.
    pub fn provider_skills(&self) -> &[crate::definition::ProviderSkill] {
        &self.provider_skills
    }

    /// The uploaded ids of the custom Agent Skills (name → id), used in every request.
    pub fn set_custom_skill_ids(&mut self, ids: std::collections::BTreeMap<String, String>) {
        self.custom_skill_ids = ids;
    }

    /// The provider tools and Agent Skills `expert` asks for, sent with every step.
    pub fn with_provider_tools(mut self, expert: &crate::definition::Expert) -> Self {
        self.provider_tools = llm::provider_tools::ProviderTool::of_expert(expert);
        self.provider_skills = expert.provider_skills.clone().unwrap_or_default();
        self
    }

    /// The tools the model is offered from now on.
    pub fn offer_tools(&mut self, tools: Vec<ToolDefinition>) {
        self.tools = tools;
    }

    /// The model's wire request for `messages`; without tools when the answer is the run's
    /// final text.
    pub fn prepare(
        &mut self,
        model: &dyn LanguageModel,
        messages: &[Frozen<Message>],
        offer_tools: bool,
    ) -> Result<PreparedRequest, LlmError> {
        self.catch_up(messages);
        let request = llm::Request {
            system: std::mem::take(&mut self.converted.system),
            messages: std::mem::take(&mut self.converted.messages),
            tools: if offer_tools {
                std::mem::take(&mut self.tools)
            } else {
                Vec::new()
            },
            max_tokens: None,
            reasoning: Some(self.reasoning),
            expert_key: self.expert_key.clone(),
            provider_tools: std::mem::take(&mut self.provider_tools),
            provider_skills: std::mem::take(&mut self.provider_skills),
            custom_skill_ids: std::mem::take(&mut self.custom_skill_ids),
        };
        let prepared = model.prepare(&request);
        self.provider_tools = request.provider_tools;
        self.provider_skills = request.provider_skills;
        self.custom_skill_ids = request.custom_skill_ids;
        // The model only borrowed the request: its parts are kept for the next step.
        self.converted.system = request.system;
        self.converted.messages = request.messages;
        if offer_tools {
            self.tools = request.tools;
        }
        prepared
    }

    fn catch_up(&mut self, messages: &[Frozen<Message>]) {
        let extends = self.sources.len() <= messages.len()
            && self
                .sources
                .iter()
                .zip(messages)
                .all(|(seen, now)| Frozen::ptr_eq(seen, now));
        if !extends {
            self.sources.clear();
            self.converted = LlmMessages::default();
        }
        let new = &messages[self.sources.len()..];
        self.converted.extend(new.iter().map(|m| &**m));
        self.sources.extend_from_slice(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::message::{Part, ToolCall, ToolResult};
    use crate::runtime::prompt::to_llm_messages;
    use crate::tool::ToolOutput;

    /// Answers nothing; `prepare` keeps the body: the request as JSON.
    struct Echo;

    impl LanguageModel for Echo {
        fn provider(&self) -> &str {
            "echo"
        }

        fn model(&self) -> &str {
            "echo"
        }

        fn prepare(&self, req: &llm::Request) -> Result<PreparedRequest, LlmError> {
            let body = serde_json::to_vec(req).unwrap_or_default();
            Ok(PreparedRequest::new(
                "echo",
                "POST",
                "echo:",
                Vec::new(),
                body,
            ))
        }

        fn send(
            &self,
            _prepared: PreparedRequest,
        ) -> futures_util::future::BoxFuture<'_, Result<llm::ChunkStream, LlmError>> {
            Box::pin(async {
                Err(LlmError::Unsupported {
                    provider: "echo".into(),
                })
            })
        }
    }

    fn sent(request: &mut RunRequest, messages: &[Frozen<Message>], tools: bool) -> String {
        request
            .prepare(&Echo, messages, tools)
            .expect("prepared")
            .body_text()
    }

    fn whole(messages: &[Frozen<Message>], tools: &[ToolDefinition]) -> String {
        let (system, converted) = to_llm_messages(messages.iter().map(|m| &**m));
        let request = llm::Request {
            system,
            messages: converted,
            tools: tools.to_vec(),
            max_tokens: None,
            reasoning: Some(ReasoningBudget::Low),
            expert_key: "lead".into(),
            ..Default::default()
        };
        serde_json::to_string(&request).expect("json")
    }

    #[test]
    fn a_growing_conversation_is_sent_as_if_converted_whole() {
        let tools = vec![ToolDefinition {
            name: "readTextFile".into(),
            description: "Reads a file".into(),
            input_schema: serde_json::json!({"type": "object"}),
        }];
        let mut request = RunRequest::new(ReasoningBudget::Low, "lead".into());
        request.offer_tools(tools.clone());
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
        let mut messages: Vec<Frozen<Message>> = vec![
            Message::instruction("sys").into(),
            Message::user("go").into(),
        ];
        assert_eq!(
            sent(&mut request, &messages, true),
            whole(&messages, &tools)
        );
        messages.push(Message::expert(vec![Part::tool_call(&call)]).into());
        messages.push(Message::tool_results(&[result]).into());
        assert_eq!(
            sent(&mut request, &messages, true),
            whole(&messages, &tools)
        );
        // A note after the tool result joins its user turn, across the step boundary.
        messages.push(Message::user("note").into());
        assert_eq!(sent(&mut request, &messages, false), whole(&messages, &[]));
        assert_eq!(
            sent(&mut request, &messages, true),
            whole(&messages, &tools)
        );
        // A list that does not extend the last one (a resumed or forked run) is converted anew.
        messages[0] = Message::instruction("another").into();
        messages.truncate(3);
        assert_eq!(
            sent(&mut request, &messages, true),
            whole(&messages, &tools)
        );
    }
}
