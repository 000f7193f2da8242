//! Tests of every tool through `BaseSkill::call`, the way the runtime uses it.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

fn setup() -> (tempfile::TempDir, BaseSkill) {
    let dir = tempfile::tempdir().expect("tempdir");
    let skill = BaseSkill::new(dir.path()).expect("skill");
    (dir, skill)
}

fn root(skill: &BaseSkill) -> &Path {
    skill.workspace().root()
}

async fn ok(skill: &BaseSkill, tool: &str, args: Value) -> String {
    let output = skill.call(tool, args.clone()).await;
    assert!(
        !output.is_error,
        "{tool} {args} failed: {}",
        output.joined_text()
    );
    output.joined_text()
}

async fn err(skill: &BaseSkill, tool: &str, args: Value) -> String {
    let output = skill.call(tool, args.clone()).await;
    assert!(
        output.is_error,
        "{tool} {args} should fail: {}",
        output.joined_text()
    );
    output.joined_text()
}

fn exec_args(command: &str, args: &[&str]) -> Value {
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

#[tokio::test]
async fn write_read_append_round_trip() {
    let (_dir, skill) = setup();
    let text = ok(
        &skill,
        "writeTextFile",
        json!({"path": "dir/sub/a.txt", "text": "one\n"}),
    )
    .await;
    assert_eq!(text, "wrote 4 bytes to dir/sub/a.txt");
    ok(
        &skill,
        "appendTextFile",
        json!({"path": "dir/sub/a.txt", "text": "two\n"}),
    )
    .await;
    ok(
        &skill,
        "appendTextFile",
        json!({"path": "new.txt", "text": "fresh"}),
    )
    .await;
    assert_eq!(
        ok(&skill, "readTextFile", json!({"path": "dir/sub/a.txt"})).await,
        "one\ntwo\n"
    );
    assert_eq!(
        ok(&skill, "readTextFile", json!({"path": "new.txt"})).await,
        "fresh"
    );
    // Overwrite replaces the content.
    ok(
        &skill,
        "writeTextFile",
        json!({"path": "dir/sub/a.txt", "text": "replaced"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(root(&skill).join("dir/sub/a.txt")).expect("read"),
        "replaced"
    );
}

#[tokio::test]
async fn read_text_file_line_ranges() {
    let (_dir, skill) = setup();
    std::fs::write(root(&skill).join("f.txt"), "l1\nl2\nl3\nl4\nl5\n").expect("write");
    let read = |args: Value| {
        let skill = &skill;
        async move { ok(skill, "readTextFile", args).await }
    };
    assert_eq!(
        read(json!({"path": "f.txt", "from": 2, "to": 3})).await,
        "l2\nl3\n"
    );
    assert_eq!(read(json!({"path": "f.txt", "from": 4})).await, "l4\nl5\n");
    assert_eq!(read(json!({"path": "f.txt", "to": 1})).await, "l1\n");
    assert_eq!(
        read(json!({"path": "f.txt", "from": 5, "to": 99})).await,
        "l5\n"
    );
    let text = err(&skill, "readTextFile", json!({"path": "f.txt", "from": 9})).await;
    assert!(text.contains("has 5 lines"), "{text}");
    let text = err(
        &skill,
        "readTextFile",
        json!({"path": "f.txt", "from": 3, "to": 2}),
    )
    .await;
    assert!(text.contains("before `from`"), "{text}");
    let text = err(&skill, "readTextFile", json!({"path": "f.txt", "from": 0})).await;
    assert!(text.contains("1-based"), "{text}");
    let text = err(&skill, "readTextFile", json!({"path": "f.txt", "from": -1})).await;
    assert!(text.contains("`from`"), "{text}");
}

#[tokio::test]
async fn read_text_file_errors() {
    let (_dir, skill) = setup();
    let text = err(&skill, "readTextFile", json!({"path": "missing.txt"})).await;
    assert!(text.starts_with("cannot read missing.txt"), "{text}");
    std::fs::create_dir(root(&skill).join("d")).expect("mkdir");
    let text = err(&skill, "readTextFile", json!({"path": "d"})).await;
    assert!(text.contains("is a directory"), "{text}");
    std::fs::write(root(&skill).join("bin"), [0xff, 0xfe, 0x00]).expect("write");
    let text = err(&skill, "readTextFile", json!({"path": "bin"})).await;
    assert!(text.contains("not UTF-8"), "{text}");
}

#[tokio::test]
async fn read_text_file_cuts_long_output_and_says_where_to_continue() {
    let (_dir, skill) = setup();
    let line = "x".repeat(1023) + "\n";
    let content = line.repeat(300); // 300 KiB, over the 256 KiB output cap
    std::fs::write(root(&skill).join("big.txt"), &content).expect("write");
    let text = ok(&skill, "readTextFile", json!({"path": "big.txt"})).await;
    assert!(text.len() <= files::MAX_TEXT_OUTPUT_BYTES + 200);
    assert!(
        text.contains("[truncated: showed lines 1-256 of 300; pass from: 257"),
        "{}",
        &text[text.len() - 120..]
    );
}

#[tokio::test]
async fn edit_text_file_needs_exactly_one_match() {
    let (_dir, skill) = setup();
    std::fs::write(root(&skill).join("e.txt"), "alpha beta\nbeta gamma\n").expect("write");
    let text = err(
        &skill,
        "editTextFile",
        json!({"path": "e.txt", "oldText": "delta", "newText": "x"}),
    )
    .await;
    assert!(text.contains("was not found in e.txt"), "{text}");
    let text = err(
        &skill,
        "editTextFile",
        json!({"path": "e.txt", "oldText": "beta", "newText": "x"}),
    )
    .await;
    assert!(
        text.contains("occurs 2 times") && text.contains("exactly once"),
        "{text}"
    );
    let text = err(
        &skill,
        "editTextFile",
        json!({"path": "e.txt", "oldText": "", "newText": "x"}),
    )
    .await;
    assert!(text.contains("`oldText` is empty"), "{text}");
    ok(
        &skill,
        "editTextFile",
        json!({"path": "e.txt", "oldText": "beta gamma", "newText": "BETA"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(root(&skill).join("e.txt")).expect("read"),
        "alpha beta\nBETA\n"
    );
    let text = err(
        &skill,
        "editTextFile",
        json!({"path": "nope.txt", "oldText": "a", "newText": "b"}),
    )
    .await;
    assert!(text.starts_with("cannot read nope.txt"), "{text}");
}

#[tokio::test]
async fn move_and_delete_files() {
    let (_dir, skill) = setup();
    std::fs::write(root(&skill).join("a.txt"), "a").expect("write");
    std::fs::write(root(&skill).join("b.txt"), "b").expect("write");
    let text = err(
        &skill,
        "moveFile",
        json!({"source": "a.txt", "destination": "b.txt"}),
    )
    .await;
    assert!(text.contains("b.txt already exists"), "{text}");
    let text = err(
        &skill,
        "moveFile",
        json!({"source": "missing", "destination": "c.txt"}),
    )
    .await;
    assert!(text.starts_with("cannot move missing"), "{text}");
    let text = ok(
        &skill,
        "moveFile",
        json!({"source": "a.txt", "destination": "sub/c.txt"}),
    )
    .await;
    assert_eq!(text, "moved a.txt to sub/c.txt");
    assert!(!root(&skill).join("a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(root(&skill).join("sub/c.txt")).expect("read"),
        "a"
    );
    let text = err(
        &skill,
        "moveFile",
        json!({"source": ".", "destination": "x"}),
    )
    .await;
    assert!(text.contains("workspace root itself"), "{text}");

    ok(&skill, "deleteFile", json!({"path": "sub/c.txt"})).await;
    assert!(!root(&skill).join("sub/c.txt").exists());
    let text = err(&skill, "deleteFile", json!({"path": "sub"})).await;
    assert!(text.contains("use deleteDirectory"), "{text}");
    let text = err(&skill, "deleteFile", json!({"path": "sub/c.txt"})).await;
    assert!(text.starts_with("cannot delete sub/c.txt"), "{text}");
}

#[tokio::test]
async fn deleting_a_symlink_removes_the_link_not_its_target() {
    let (_dir, skill) = setup();
    std::fs::write(root(&skill).join("target.txt"), "keep").expect("write");
    symlink("target.txt", root(&skill).join("link.txt")).expect("symlink");
    ok(&skill, "deleteFile", json!({"path": "link.txt"})).await;
    assert!(root(&skill).join("target.txt").exists());
    assert!(std::fs::symlink_metadata(root(&skill).join("link.txt")).is_err());
}

#[tokio::test]
async fn directories_list_create_delete() {
    let (_dir, skill) = setup();
    ok(&skill, "createDirectory", json!({"path": "x/y/z"})).await;
    ok(&skill, "createDirectory", json!({"path": "x/y/z"})).await;
    std::fs::write(root(&skill).join("x/file.txt"), "12345").expect("write");
    let text = ok(&skill, "listDirectory", json!({"path": "x"})).await;
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["path"], "x");
    assert_eq!(
        body["items"],
        json!([
            {"name": "file.txt", "type": "file", "size": 5},
            {"name": "y", "type": "directory", "size": body["items"][1]["size"]},
        ])
    );
    let text = err(&skill, "listDirectory", json!({"path": "x/file.txt"})).await;
    assert!(text.starts_with("cannot list x/file.txt"), "{text}");

    let text = err(&skill, "deleteDirectory", json!({"path": "x"})).await;
    assert!(text.contains("pass recursive: true"), "{text}");
    let text = err(&skill, "deleteDirectory", json!({"path": "x/file.txt"})).await;
    assert!(text.contains("use deleteFile"), "{text}");
    let text = err(
        &skill,
        "deleteDirectory",
        json!({"path": ".", "recursive": true}),
    )
    .await;
    assert!(text.contains("workspace root itself"), "{text}");
    ok(&skill, "deleteDirectory", json!({"path": "x/y/z"})).await;
    assert!(!root(&skill).join("x/y/z").exists());
    ok(
        &skill,
        "deleteDirectory",
        json!({"path": "x", "recursive": true}),
    )
    .await;
    assert!(!root(&skill).join("x").exists());
    assert!(root(&skill).exists());
}

#[tokio::test]
async fn get_file_info_describes_files_and_links() {
    let (_dir, skill) = setup();
    std::fs::write(root(&skill).join("info.md"), "hello").expect("write");
    symlink("info.md", root(&skill).join("alias.md")).expect("symlink");
    let body: Value =
        serde_json::from_str(&ok(&skill, "getFileInfo", json!({"path": "info.md"})).await)
            .expect("json");
    assert_eq!(body["type"], "file");
    assert_eq!(body["size"], 5);
    assert_eq!(body["name"], "info.md");
    assert_eq!(body["extension"], "md");
    assert_eq!(body["isSymlink"], false);
    assert!(body["modified"].as_str().expect("modified").ends_with('Z'));
    let body: Value =
        serde_json::from_str(&ok(&skill, "getFileInfo", json!({"path": "alias.md"})).await)
            .expect("json");
    assert_eq!(body["isSymlink"], true);
    assert_eq!(body["symlinkTarget"], "info.md");
    assert_eq!(body["size"], 5);
    let text = err(&skill, "getFileInfo", json!({"path": "none"})).await;
    assert!(text.starts_with("cannot inspect none"), "{text}");
}

#[tokio::test]
async fn read_image_file_returns_base64_image_content() {
    use base64::Engine;
    let (_dir, skill) = setup();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    std::fs::write(root(&skill).join("pic.png"), &png).expect("write");
    let output = skill
        .call("readImageFile", json!({"path": "pic.png"}))
        .await;
    assert!(!output.is_error, "{}", output.joined_text());
    assert_eq!(
        output.contents,
        vec![ToolContent::Image {
            mime_type: "image/png".into(),
            data: base64::engine::general_purpose::STANDARD.encode(&png),
        }]
    );
    // Content decides; a wrong extension gets a note.
    std::fs::write(root(&skill).join("pic.jpg"), &png).expect("write");
    let output = skill
        .call("readImageFile", json!({"path": "pic.jpg"}))
        .await;
    assert!(
        matches!(&output.contents[0], ToolContent::Image { mime_type, .. } if mime_type == "image/png")
    );
    assert!(output.joined_text().contains("extension .jpg"));

    std::fs::write(root(&skill).join("fake.png"), "not an image").expect("write");
    let text = err(&skill, "readImageFile", json!({"path": "fake.png"})).await;
    assert!(text.contains("not a PNG, JPEG, GIF or WebP"), "{text}");

    let big = std::fs::File::create(root(&skill).join("big.png")).expect("create");
    big.set_len(MAX_IMAGE_BYTES + 1).expect("grow");
    let text = err(&skill, "readImageFile", json!({"path": "big.png"})).await;
    assert!(text.contains("larger than"), "{text}");
}

#[tokio::test]
async fn read_pdf_file_is_not_supported() {
    let (_dir, skill) = setup();
    std::fs::write(root(&skill).join("doc.pdf"), "%PDF-1.4").expect("write");
    let text = err(&skill, "readPdfFile", json!({"path": "doc.pdf"})).await;
    assert!(text.contains("not supported in this version"), "{text}");
}

#[tokio::test]
async fn todos_gate_attempt_completion() {
    let (_dir, skill) = setup();
    assert!(skill.attempt_completion().is_accepted());

    let text = ok(
        &skill,
        "todo",
        json!({"newTodos": ["write tests", "fix bug"]}),
    )
    .await;
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        body,
        json!({"todos": [
            {"id": 0, "title": "write tests", "completed": false},
            {"id": 1, "title": "fix bug", "completed": false},
        ]})
    );

    let output = skill.call("attemptCompletion", json!({})).await;
    assert!(!output.is_error);
    let text = output.joined_text();
    assert!(
        text.contains("remainingTodos") && text.contains("fix bug"),
        "{text}"
    );
    assert!(text.contains("Finish them"), "{text}");
    match skill.attempt_completion() {
        Completion::Pending { open, .. } => assert_eq!(open.len(), 2),
        other => panic!("expected pending, got {other:?}"),
    }

    let text = ok(&skill, "todo", json!({"completedTodos": [0, 9]})).await;
    assert!(text.contains("no todo has id [9]"), "{text}");
    assert_eq!(skill.open_todos().len(), 1);
    ok(&skill, "todo", json!({"completedTodos": [1]})).await;
    let completion = skill.attempt_completion();
    assert!(completion.is_accepted());
    assert!(completion.output().joined_text().contains("may complete"));
    let output = skill.call("attemptCompletion", Value::Null).await;
    assert!(output.joined_text().starts_with("{}"));
}

#[tokio::test]
async fn clear_and_restore_todos() {
    let (_dir, skill) = setup();
    ok(&skill, "todo", json!({"newTodos": ["a", "b"]})).await;
    let saved = serde_json::to_string(&skill.todos()).expect("serialize");

    let text = ok(&skill, "clearTodo", json!({})).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        json!({"todos": []})
    );
    assert!(skill.attempt_completion().is_accepted());

    let restored = BaseSkill::new(root(&skill)).expect("skill");
    restored.restore_todos(serde_json::from_str(&saved).expect("deserialize"));
    assert_eq!(restored.open_todos().len(), 2);
    assert!(!restored.attempt_completion().is_accepted());
    ok(&restored, "todo", json!({"newTodos": ["c"]})).await;
    assert_eq!(restored.todos()[2].id, 2);
}

#[tokio::test]
async fn exec_runs_without_a_shell_and_reports_exit_codes() {
    let (_dir, skill) = setup();
    let text = ok(&skill, "exec", exec_args("echo", &["hello", "$HOME", "*"])).await;
    assert_eq!(text, "exit code: 0\nstdout:\nhello $HOME *\n\nstderr:\n");

    let output = skill
        .call("exec", exec_args("sh", &["-c", "echo oops >&2; exit 3"]))
        .await;
    assert!(output.is_error);
    let text = output.joined_text();
    assert!(text.starts_with("exit code: 3"), "{text}");
    assert!(text.contains("stderr:\noops"), "{text}");

    let text = err(
        &skill,
        "exec",
        exec_args("definitely-not-a-program-xyz", &[]),
    )
    .await;
    assert!(
        text.contains("cannot run `definitely-not-a-program-xyz`"),
        "{text}"
    );
    let text = err(&skill, "exec", json!({"command": "true"})).await;
    assert_eq!(
        text,
        "invalid arguments for exec: missing required argument `args`"
    );
}

#[tokio::test]
async fn exec_respects_stream_flags_env_and_cwd() {
    let (_dir, skill) = setup();
    std::fs::create_dir(root(&skill).join("sub")).expect("mkdir");
    let args = json!({
        "command": "sh",
        "args": ["-c", "pwd; echo \"$GREETING\"; echo host=${CARGO_MANIFEST_DIR:-unset}; echo err >&2"],
        "env": {"GREETING": "hi"},
        "cwd": "sub",
        "stdout": true,
        "stderr": false,
    });
    // The test runner sets CARGO_MANIFEST_DIR; exec must not pass host variables on.
    let text = ok(&skill, "exec", args).await;
    let expected_dir = root(&skill).join("sub");
    assert_eq!(
        text,
        format!(
            "exit code: 0\nstdout:\n{}\nhi\nhost=unset\n",
            expected_dir.display()
        )
    );
    let text = err(
        &skill,
        "exec",
        json!({"command": "true", "args": [], "env": {}, "cwd": "missing", "stdout": true, "stderr": true}),
    )
    .await;
    assert!(text.contains("not an existing directory"), "{text}");
    let text = err(
        &skill,
        "exec",
        json!({"command": "true", "args": [], "env": {"N": 1}, "cwd": ".", "stdout": true, "stderr": true}),
    )
    .await;
    assert!(text.contains("`env.N` must be a string"), "{text}");
}

#[tokio::test]
async fn exec_runs_relative_programs_from_cwd() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, skill) = setup();
    std::fs::create_dir(root(&skill).join("bin")).expect("mkdir");
    let script = root(&skill).join("bin/hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho from-script\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let args = json!({"command": "./hello.sh", "args": [], "env": {}, "cwd": "bin",
                      "stdout": true, "stderr": true});
    let text = ok(&skill, "exec", args).await;
    assert!(text.contains("from-script"), "{text}");
}

#[tokio::test]
async fn exec_caps_output() {
    let (_dir, skill) = setup();
    // 300 000 bytes on stdout: 100 KiB kept, the rest counted.
    let args = exec_args("sh", &["-c", "head -c 300000 /dev/zero | tr '\\0' a"]);
    let text = ok(&skill, "exec", args).await;
    let dropped = 300_000 - EXEC_MAX_OUTPUT_BYTES;
    assert!(
        text.contains(&format!("[truncated {dropped} bytes]")),
        "{}",
        &text[text.len() - 80..]
    );
    assert!(text.len() < EXEC_MAX_OUTPUT_BYTES + 200);
}

fn process_alive(pid: u32) -> bool {
    // A killed process may stay a zombie until its parent (or init) reaps it; that is dead too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or("?");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_process_group() {
    let (_dir, skill) = setup();
    // The shell records the background sleep's pid, then waits on a second sleep.
    let args = json!({
        "command": "sh",
        "args": ["-c", "sleep 30 & echo $! > grandchild.pid; sleep 30"],
        "env": {}, "cwd": ".", "stdout": true, "stderr": true, "timeout": 500,
    });
    let started = Instant::now();
    let text = err(&skill, "exec", args).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.starts_with("timed out after 500 ms"), "{text}");
    let pid: u32 = std::fs::read_to_string(root(&skill).join("grandchild.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!process_alive(pid), "grandchild {pid} survived the timeout");
}

#[tokio::test]
async fn exec_returns_promptly_when_a_background_child_holds_the_output() {
    let (_dir, skill) = setup();
    let args = exec_args("sh", &["-c", "sleep 30 & echo $! > bg.pid; echo done"]);
    let started = Instant::now();
    let text = ok(&skill, "exec", args).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.contains("done"), "{text}");
    let pid: u32 = std::fs::read_to_string(root(&skill).join("bg.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !process_alive(pid),
        "background child {pid} was left running"
    );
}

#[tokio::test]
async fn exec_rejects_zero_timeout() {
    let (_dir, skill) = setup();
    let mut args = exec_args("true", &[]);
    args["timeout"] = json!(0);
    let text = err(&skill, "exec", args).await;
    assert!(text.contains("`timeout` must be at least 1 ms"), "{text}");
}
