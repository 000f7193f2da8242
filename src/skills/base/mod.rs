//! The built-in base skill, `@perstack/base`: todos, completion, exec and file tools.
//!
//! Tool names and argument shapes follow the original package, so existing Experts work
//! unchanged; here it runs in-process and every path is confined to a [`Workspace`].
//!
//! Completion: [`BaseSkill::call`] answers `attemptCompletion` like any tool. A runtime that
//! must know whether the run may end calls [`BaseSkill::attempt_completion`] instead, which
//! returns the same output wrapped in a [`Completion`] that says whether it was accepted.

mod args;
mod exec;
mod files;
mod media;
mod schema;
mod todo;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};

pub use exec::{
    DEFAULT_TIMEOUT as EXEC_DEFAULT_TIMEOUT, MAX_OUTPUT_BYTES as EXEC_MAX_OUTPUT_BYTES,
};
pub use media::MAX_IMAGE_BYTES;
pub use todo::Todo;

use self::args::{ArgError, Args};
use self::todo::TodoList;
use crate::definition::BASE_SKILL_NAME;
use crate::skills::workspace::{Workspace, WorkspaceError};
use crate::tool::{ToolContent, ToolDefinition, ToolOutput};

/// The tool whose call may end a run; see [`BaseSkill::attempt_completion`].
pub const ATTEMPT_COMPLETION: &str = "attemptCompletion";

/// Why a tool call failed; always turned into an error [`ToolOutput`] for the model.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    #[error(transparent)]
    Args(#[from] ArgError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Message(String),
}

impl ToolError {
    fn message(text: impl Into<String>) -> Self {
        ToolError::Message(text.into())
    }
}

/// The result of `attemptCompletion`.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// No todo is open: the run may complete.
    Accepted(ToolOutput),
    /// Todos are still open; the output lists them and the run must go on.
    Pending { open: Vec<Todo>, output: ToolOutput },
}

impl Completion {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Completion::Accepted(_))
    }

    pub fn output(&self) -> &ToolOutput {
        match self {
            Completion::Accepted(output) | Completion::Pending { output, .. } => output,
        }
    }

    pub fn into_output(self) -> ToolOutput {
        match self {
            Completion::Accepted(output) | Completion::Pending { output, .. } => output,
        }
    }
}

/// One instance per run: it owns that run's todo list.
#[derive(Debug)]
pub struct BaseSkill {
    workspace: Workspace,
    todos: Mutex<TodoList>,
    /// How `exec` confines the programs it runs.
    sandbox: crate::sandbox::Sandbox,
}

impl BaseSkill {
    /// A base skill confined to `workspace_root`, which must be an existing directory.
    pub fn new(workspace_root: impl AsRef<Path>) -> Result<Self, WorkspaceError> {
        Ok(Self::with_workspace(Workspace::new(workspace_root)?))
    }

    pub fn with_workspace(workspace: Workspace) -> Self {
        BaseSkill {
            workspace,
            todos: Mutex::new(TodoList::default()),
            sandbox: crate::sandbox::Sandbox::default(),
        }
    }

    /// Runs `exec` under `sandbox` (confined by default).
    pub fn with_sandbox(mut self, sandbox: crate::sandbox::Sandbox) -> Self {
        self.sandbox = sandbox;
        self
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The tools offered to the model, with their JSON Schemas.
    pub fn tools() -> Vec<ToolDefinition> {
        schema::definitions()
    }

    /// Runs one tool. Every failure, including an unknown tool or bad arguments, comes back as
    /// an error output the model can read.
    pub async fn call(&self, tool_name: &str, args: Value) -> ToolOutput {
        match self.dispatch(tool_name, args).await {
            Ok(output) => output,
            Err(ToolError::Args(e)) => {
                ToolOutput::error(format!("invalid arguments for {tool_name}: {e}"))
            }
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }

    async fn dispatch(&self, tool_name: &str, args: Value) -> Result<ToolOutput, ToolError> {
        let args = Args::new(args)?;
        let ws = &self.workspace;
        match tool_name {
            ATTEMPT_COMPLETION => Ok(self.attempt_completion().into_output()),
            "todo" => self.todo(&args),
            "clearTodo" => {
                self.lock_todos().clear();
                Ok(self.todo_list_output(&[]))
            }
            "exec" => exec::exec(ws, &args, &self.sandbox).await,
            "readTextFile" => files::read_text_file(ws, &args).await,
            "writeTextFile" => files::write_text_file(ws, &args).await,
            "appendTextFile" => files::append_text_file(ws, &args).await,
            "editTextFile" => files::edit_text_file(ws, &args).await,
            "moveFile" => files::move_file(ws, &args).await,
            "deleteFile" => files::delete_file(ws, &args).await,
            "listDirectory" => files::list_directory(ws, &args).await,
            "createDirectory" => files::create_directory(ws, &args).await,
            "deleteDirectory" => files::delete_directory(ws, &args).await,
            "getFileInfo" => files::get_file_info(ws, &args).await,
            "healthCheck" => Ok(ToolOutput::text(files::to_pretty(&json!({
                "status": "ok",
                "skill": BASE_SKILL_NAME,
                "version": env!("CARGO_PKG_VERSION"),
                "workspace": ws.root().display().to_string(),
            })))),
            "readImageFile" => media::read_image_file(ws, &args).await,
            "readPdfFile" => media::read_pdf_file(ws, &args).await,
            other => Err(ToolError::message(format!(
                "unknown tool {other} in {BASE_SKILL_NAME}; available tools: {}",
                Self::tools()
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Answers `attemptCompletion`: accepted when no todo is open, otherwise the open todos.
    /// The output keeps the original's JSON (`{}` or `{"remainingTodos": [...]}`) as its first
    /// part; a pending answer adds a sentence telling the model what to do.
    pub fn attempt_completion(&self) -> Completion {
        let open = self.open_todos();
        if open.is_empty() {
            return Completion::Accepted(ToolOutput {
                contents: vec![
                    ToolContent::text("{}"),
                    ToolContent::text(
                        "No todos are open: the run may complete. Give your final answer now.",
                    ),
                ],
                is_error: false,
            });
        }
        let output = ToolOutput {
            contents: vec![
                ToolContent::text(files::to_pretty(&json!({"remainingTodos": open}))),
                ToolContent::text(format!(
                    "{} todo(s) are still open, so the run goes on. Finish them and mark them \
                     with todo {{\"completedTodos\": [ids]}} (or clear them with clearTodo if \
                     they no longer apply), then call attemptCompletion again.",
                    open.len()
                )),
            ],
            is_error: false,
        };
        Completion::Pending { open, output }
    }

    /// Every todo, for checkpoints.
    pub fn todos(&self) -> Vec<Todo> {
        self.lock_todos().all()
    }

    pub fn open_todos(&self) -> Vec<Todo> {
        self.lock_todos().open()
    }

    /// Replaces the todo list, e.g. when a run resumes from a checkpoint.
    pub fn restore_todos(&self, todos: Vec<Todo>) {
        self.lock_todos().restore(todos);
    }

    fn todo(&self, args: &Args) -> Result<ToolOutput, ToolError> {
        let new = args.opt_string_array("newTodos")?.unwrap_or_default();
        let completed = args.opt_u64_array("completedTodos")?.unwrap_or_default();
        let unknown = self.lock_todos().update(new, &completed);
        Ok(self.todo_list_output(&unknown))
    }

    fn todo_list_output(&self, unknown_ids: &[u64]) -> ToolOutput {
        let mut output = ToolOutput::text(files::to_pretty(&json!({"todos": self.todos()})));
        if !unknown_ids.is_empty() {
            output.contents.push(ToolContent::text(format!(
                "note: no todo has id {unknown_ids:?}; nothing was marked for those"
            )));
        }
        output
    }

    fn lock_todos(&self) -> MutexGuard<'_, TodoList> {
        // A panic elsewhere while holding the lock leaves a still-usable list.
        self.todos
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
