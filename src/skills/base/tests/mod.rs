//! Tests of every tool through `BaseSkill::call`, the way the runtime uses it.

mod exec;
mod files;
mod todo;

use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::{Value, json};

use super::*;

pub(super) fn setup() -> (tempfile::TempDir, BaseSkill) {
    let dir = tempfile::tempdir().expect("tempdir");
    let skill = BaseSkill::new(dir.path()).expect("skill");
    (dir, skill)
}

pub(super) fn root(skill: &BaseSkill) -> &Path {
    skill.workspace().root()
}

pub(super) async fn ok(skill: &BaseSkill, tool: &str, args: Value) -> String {
    let output = skill.call(tool, args.clone()).await;
    assert!(
        !output.is_error,
        "{tool} {args} failed: {}",
        output.joined_text()
    );
    output.joined_text()
}

pub(super) async fn err(skill: &BaseSkill, tool: &str, args: Value) -> String {
    let output = skill.call(tool, args.clone()).await;
    assert!(
        output.is_error,
        "{tool} {args} should fail: {}",
        output.joined_text()
    );
    output.joined_text()
}

pub(super) fn exec_args(command: &str, args: &[&str]) -> Value {
    json!({"command": command, "args": args, "env": {}, "cwd": ".", "stdout": true, "stderr": true})
}

#[test]
fn tool_definitions_are_object_schemas_with_known_required_fields() {
    let tools = BaseSkill::tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for expected in [
        "attemptCompletion",
        "todo",
        "clearTodo",
        "exec",
        "readTextFile",
        "writeTextFile",
        "appendTextFile",
        "editTextFile",
        "moveFile",
        "deleteFile",
        "listDirectory",
        "createDirectory",
        "deleteDirectory",
        "getFileInfo",
        "healthCheck",
        "readImageFile",
        "readPdfFile",
    ] {
        assert!(names.contains(&expected), "missing tool {expected}");
    }
    assert_eq!(names.len(), 17);
    for tool in &tools {
        let schema = &tool.input_schema;
        assert_eq!(schema["type"], "object", "{}", tool.name);
        let properties = schema["properties"].as_object().expect("properties");
        for required in schema["required"].as_array().expect("required") {
            let required = required.as_str().expect("name");
            assert!(
                properties.contains_key(required),
                "{}: {required}",
                tool.name
            );
        }
        assert!(!tool.description.is_empty());
    }
    let exec = tools.iter().find(|t| t.name == "exec").expect("exec");
    assert_eq!(
        exec.input_schema["required"],
        json!(["command", "args", "env", "cwd", "stdout", "stderr"])
    );
}

#[tokio::test]
async fn unknown_tool_and_bad_arguments_are_error_outputs() {
    let (_dir, skill) = setup();
    let text = err(&skill, "rm_rf", json!({})).await;
    assert!(text.contains("unknown tool rm_rf"), "{text}");
    let text = err(&skill, "readTextFile", json!({})).await;
    assert_eq!(
        text,
        "invalid arguments for readTextFile: missing required argument `path`"
    );
    let text = err(&skill, "writeTextFile", json!({"path": "a", "text": 5})).await;
    assert!(text.contains("argument `text` must be a string"), "{text}");
    let text = err(&skill, "todo", json!({"completedTodos": ["x"]})).await;
    assert!(text.contains("`completedTodos`"), "{text}");
    let text = err(&skill, "readTextFile", json!("a.txt")).await;
    assert!(text.contains("must be a JSON object"), "{text}");
    // Argument-less tools accept null.
    ok(&skill, "healthCheck", Value::Null).await;
}

#[tokio::test]
async fn health_check_reports_the_workspace() {
    let (_dir, skill) = setup();
    let text = ok(&skill, "healthCheck", json!({})).await;
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["workspace"], root(&skill).display().to_string());
}

#[tokio::test]
async fn every_path_taking_tool_refuses_escapes() {
    let (_dir, skill) = setup();
    symlink("/etc", root(&skill).join("etc-link")).expect("symlink");
    std::fs::write(root(&skill).join("inside.txt"), "x").expect("write");
    let escapes = ["../outside.txt", "/etc/passwd", "etc-link/passwd"];
    for path in escapes {
        let calls = [
            ("readTextFile", json!({"path": path})),
            ("writeTextFile", json!({"path": path, "text": "x"})),
            ("appendTextFile", json!({"path": path, "text": "x"})),
            (
                "editTextFile",
                json!({"path": path, "oldText": "root", "newText": "x"}),
            ),
            (
                "moveFile",
                json!({"source": path, "destination": "moved.txt"}),
            ),
            (
                "moveFile",
                json!({"source": "inside.txt", "destination": path}),
            ),
            ("deleteFile", json!({"path": path})),
            ("listDirectory", json!({"path": path})),
            ("createDirectory", json!({"path": path})),
            ("deleteDirectory", json!({"path": path, "recursive": true})),
            ("getFileInfo", json!({"path": path})),
            ("readImageFile", json!({"path": path})),
            ("readPdfFile", json!({"path": path})),
            (
                "exec",
                json!({"command": "true", "args": [], "env": {}, "cwd": path,
                       "stdout": true, "stderr": true}),
            ),
        ];
        for (tool, args) in calls {
            let text = err(&skill, tool, args).await;
            assert!(
                text.contains("is outside the workspace")
                    && text.contains("use a path relative to the workspace"),
                "{tool} with {path}: {text}"
            );
        }
    }
    // Nothing was moved out and nothing was written outside.
    assert!(root(&skill).join("inside.txt").exists());
    assert!(
        !root(&skill)
            .parent()
            .expect("parent")
            .join("outside.txt")
            .exists()
    );
}

#[test]
fn skill_can_be_shared_across_tasks() {
    // The skill manager keeps skills in an Arc and spawns tool calls on tokio tasks.
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BaseSkill>();
    let (_dir, skill) = setup();
    assert_send(&skill.call("healthCheck", json!({})));
}
