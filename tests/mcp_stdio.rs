//! MCP stdio skills through the SkillManager, against examples/mcp_test_server.rs.

mod support;

use std::time::{Duration, Instant};

use perstack::skills::lock::{LockedExpert, LockedSkill};
use perstack::skills::{SkillError, SkillEventKind, SkillManagerOptions};
use perstack::tool::ToolContent;
use serde_json::json;
use support::*;

fn names(manager: &perstack::skills::SkillManager) -> Vec<String> {
    manager.tools().into_iter().map(|t| t.name).collect()
}

#[tokio::test]
async fn lists_tools_and_calls_echo_and_add() {
    let expert = expert(&server_skill("test", &[], ""));
    let mut s = start(&expert, &env_with(&[])).await;
    let tools = names(&s.manager);
    for name in [
        "echo",
        "add",
        "sleep",
        "crash",
        "big",
        "env",
        "readTextFile",
    ] {
        assert!(
            tools.contains(&name.to_string()),
            "{name} missing: {tools:?}"
        );
    }
    let echo = s.manager.tools().into_iter().find(|t| t.name == "echo");
    let echo = echo.expect("echo listed");
    assert_eq!(echo.description, "Returns the text it is given");
    assert_eq!(echo.input_schema["properties"]["text"]["type"], "string");

    assert_eq!(s.manager.skill_of("echo"), Some("test"));
    assert_eq!(s.manager.skill_of("readTextFile"), Some("@perstack/base"));
    assert_eq!(s.manager.skill_of("nope"), None);
    assert!(!s.manager.is_interactive("echo"));
    assert!(!s.manager.is_interactive("readTextFile"));

    let out = s.manager.call("echo", json!({"text": "hello"})).await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.joined_text(), "hello");
    let out = s.manager.call("add", json!({"a": 2, "b": 40})).await;
    assert_eq!(out.joined_text(), "42");

    let events = drain(&mut s.events);
    let connected = events.iter().find_map(|e| match &e.kind {
        SkillEventKind::Connected(info) if e.skill_name == "test" => Some(info.clone()),
        _ => None,
    });
    let connected = connected.expect("a Connected event");
    assert!(events.iter().any(|e| e.skill_name == "@perstack/base"
        && matches!(&e.kind, SkillEventKind::Connected(info)
            if info.server_name.as_deref() == Some("@perstack/base"))));
    assert_eq!(connected.server_name.as_deref(), Some("mcp-test-server"));
    assert_eq!(connected.server_version.as_deref(), Some("0.1.0"));
    assert!(connected.total_duration_ms >= connected.handshake_duration_ms);
    assert!(count(&events, |k| matches!(k, SkillEventKind::Starting { .. })) == 1);
    assert!(
        events.iter().any(|e| matches!(&e.kind,
            SkillEventKind::Stderr { line } if line.contains("mcp-test-server starting"))),
        "server stderr should surface as events: {events:?}"
    );

    s.manager.shutdown().await;
    let events = drain(&mut s.events);
    let disconnected: Vec<&str> = events
        .iter()
        .filter(|e| matches!(e.kind, SkillEventKind::Disconnected { .. }))
        .map(|e| e.skill_name.as_str())
        .collect();
    assert_eq!(disconnected.len(), 2, "{events:?}");
    assert!(disconnected.contains(&"test") && disconnected.contains(&"@perstack/base"));
}

#[tokio::test]
async fn tool_errors_images_and_bad_calls_are_outputs() {
    let expert = expert(&server_skill("test", &[], ""));
    let s = start(&expert, &env_with(&[])).await;
    let out = s.manager.call("fail", json!({})).await;
    assert!(out.is_error);
    assert_eq!(out.joined_text(), "this tool always fails");

    let out = s.manager.call("image", json!({})).await;
    assert!(!out.is_error);
    assert!(matches!(&out.contents[0],
        ToolContent::Image { mime_type, data } if mime_type == "image/png" && !data.is_empty()));

    let out = s.manager.call("add", json!({"a": "x"})).await;
    assert!(
        out.is_error,
        "bad arguments must be an error output: {out:?}"
    );
    let out = s.manager.call("echo", json!([1])).await;
    assert!(out.is_error);
    let out = s.manager.call("nope", json!({})).await;
    assert!(out.is_error && out.joined_text().contains("unknown tool nope"));
    s.manager.shutdown().await;
}

#[tokio::test]
async fn pick_and_omit_filter_tools_and_warn_about_unknown_names() {
    let skill = server_skill(
        "test",
        &[],
        "pick = [\"echo\", \"add\", \"ghost\"]\nomit = [\"add\", \"phantom\"]",
    );
    let expert = expert(&skill);
    let mut s = start(&expert, &env_with(&[])).await;
    let mcp: Vec<_> = s.manager.mcp_skills().flat_map(|m| m.tools()).collect();
    assert_eq!(
        mcp.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["echo"]
    );
    let out = s.manager.call("add", json!({"a": 1, "b": 1})).await;
    assert!(out.is_error, "an omitted tool cannot be called");
    let events = drain(&mut s.events);
    let warnings: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            SkillEventKind::Warning { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("\"ghost\"")));
    assert!(warnings.iter().any(|w| w.contains("\"phantom\"")));
    s.manager.shutdown().await;
}

#[tokio::test]
async fn server_sees_only_safe_env_and_required_env() {
    let skill = server_skill("test", &[], "requiredEnv = [\"VISIBLE_TOKEN\"]");
    let expert = expert(&skill);
    let env = env_with(&[
        ("VISIBLE_TOKEN", "v"),
        ("SECRET_TOKEN", "s"),
        ("LANG", "C.UTF-8"),
    ]);
    let s = start(&expert, &env).await;
    let out = s.manager.call("env", json!({})).await;
    let seen: Vec<String> = out.joined_text().lines().map(str::to_string).collect();
    assert!(seen.contains(&"VISIBLE_TOKEN".to_string()), "{seen:?}");
    assert!(seen.contains(&"PATH".to_string()), "{seen:?}");
    assert!(seen.contains(&"LANG".to_string()), "{seen:?}");
    assert!(!seen.contains(&"SECRET_TOKEN".to_string()), "{seen:?}");
    let allowed = [
        "PATH",
        "HOME",
        "SHELL",
        "TERM",
        "LANG",
        "VISIBLE_TOKEN",
        // The sandbox's private temp directory.
        "TMPDIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ];
    for name in &seen {
        assert!(allowed.contains(&name.as_str()), "unexpected {name}");
    }
    s.manager.shutdown().await;
}

#[tokio::test]
async fn missing_required_env_is_a_warning() {
    let skill = server_skill("test", &[], "requiredEnv = [\"NOT_SET_ANYWHERE\"]");
    let mut s = start(&expert(&skill), &env_with(&[])).await;
    let events = drain(&mut s.events);
    assert!(events.iter().any(|e| matches!(&e.kind,
        SkillEventKind::Warning { message } if message.contains("NOT_SET_ANYWHERE"))));
    s.manager.shutdown().await;
}

#[tokio::test]
async fn crash_gives_an_error_output_then_restarts() {
    let expert = expert(&server_skill("test", &[], ""));
    let mut s = start(&expert, &env_with(&[])).await;
    let first_pid = s.manager.mcp_skills().next().unwrap().pid().await.unwrap();
    let out = s.manager.call("crash", json!({})).await;
    assert!(out.is_error, "{out:?}");
    assert!(out.joined_text().contains("restarted"), "{out:?}");
    let events = drain(&mut s.events);
    assert!(
        count(&events, |k| matches!(
            k,
            SkillEventKind::Disconnected { .. }
        )) == 1,
        "{events:?}"
    );

    let out = s.manager.call("echo", json!({"text": "again"})).await;
    assert_eq!(out.joined_text(), "again", "{out:?}");
    let second_pid = s.manager.mcp_skills().next().unwrap().pid().await.unwrap();
    assert_ne!(first_pid, second_pid);
    let events = drain(&mut s.events);
    assert_eq!(
        count(&events, |k| matches!(k, SkillEventKind::Connected(_))),
        1
    );
    assert!(wait_gone(first_pid, Duration::from_secs(5)).await);
    s.manager.shutdown().await;
}

#[tokio::test]
async fn hang_past_the_call_timeout_is_an_error_and_the_run_goes_on() {
    let expert = expert(&server_skill("test", &[], ""));
    let mut s = start_with(&expert, &env_with(&[]), short_timeouts(1500))
        .await
        .unwrap();
    let pid = s.manager.mcp_skills().next().unwrap().pid().await.unwrap();
    let started = Instant::now();
    let out = s.manager.call("sleep", json!({"ms": 30_000})).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(out.is_error && out.joined_text().contains("did not answer within 1500 ms"));
    assert!(drain(&mut s.events).iter().any(|e| matches!(
        &e.kind,
        SkillEventKind::Disconnected { reason } if reason.contains("sleep")
    )));
    assert!(
        wait_gone(pid, Duration::from_secs(5)).await,
        "hung server killed"
    );
    let out = s.manager.call("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(out.joined_text(), "3");
    let out = s.manager.call("sleep", json!({"ms": 10})).await;
    assert_eq!(out.joined_text(), "slept 10 ms");
    s.manager.shutdown().await;
}

#[tokio::test]
async fn one_megabyte_output_arrives_whole() {
    let expert = expert(&server_skill("test", &[], ""));
    let s = start(&expert, &env_with(&[])).await;
    let out = s.manager.call("big", json!({})).await;
    assert!(!out.is_error);
    let text = out.joined_text();
    assert_eq!(text.len(), 1024 * 1024);
    assert!(text.bytes().all(|b| b == b'x'));
    let out = s
        .manager
        .call("big", json!({"bytes": 4 * 1024 * 1024}))
        .await;
    assert_eq!(out.joined_text().len(), 4 * 1024 * 1024);
    s.manager.shutdown().await;
}

#[tokio::test]
async fn no_process_is_left_after_shutdown_or_drop() {
    // Two copies of the server; disjoint tool lists so the names do not collide.
    let skills = format!(
        "{}{}",
        server_skill("one", &[], "omit = [\"crash\"]"),
        server_skill("two", &[], "pick = [\"crash\"]")
    );
    let expert = expert(&skills);
    let s = start(&expert, &env_with(&[])).await;
    let mut pids = Vec::new();
    for skill in s.manager.mcp_skills() {
        pids.push(skill.pid().await.unwrap());
    }
    assert_eq!(pids.len(), 2);
    s.manager.shutdown().await;
    for pid in &pids {
        assert!(wait_gone(*pid, Duration::from_secs(5)).await, "{pid} left");
    }

    // Dropping without shutdown kills as well.
    let s = start(&expert, &env_with(&[])).await;
    let mut pids = Vec::new();
    for skill in s.manager.mcp_skills() {
        pids.push(skill.pid().await.unwrap());
    }
    drop(s);
    for pid in &pids {
        assert!(wait_gone(*pid, Duration::from_secs(5)).await, "{pid} left");
    }
}

#[tokio::test]
async fn skills_start_concurrently() {
    let delay = 700;
    let mut skills = String::new();
    for (name, tool) in [("a", "echo"), ("b", "add"), ("c", "env")] {
        let pick = format!("pick = [\"{tool}\"]");
        skills.push_str(&server_skill(
            name,
            &["--startup-delay-ms", &delay.to_string()],
            &pick,
        ));
    }
    let expert = expert(&skills);
    let started = Instant::now();
    let s = start(&expert, &env_with(&[])).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(delay * 2),
        "three servers of {delay} ms each took {elapsed:?}"
    );
    assert_eq!(
        s.manager
            .call("add", json!({"a": 1, "b": 1}))
            .await
            .joined_text(),
        "2"
    );
    s.manager.shutdown().await;
}

#[tokio::test]
async fn lazy_init_waits_for_first_call_when_the_lock_knows_the_tools() {
    let skill = server_skill("lazy", &[], "lazyInit = true\npick = [\"echo\"]");
    let expert = expert(&skill);

    // Without a lock the tools are unknown, so the skill starts at once after all.
    let s = start(&expert, &env_with(&[])).await;
    assert!(s.manager.mcp_skills().next().unwrap().pid().await.is_some());
    let locked = s.manager.locked();
    s.manager.shutdown().await;
    assert_eq!(locked.tools_of("lazy").unwrap().len(), 1);

    let options = SkillManagerOptions {
        lock: Some(locked),
        ..Default::default()
    };
    let mut s = start_with(&expert, &env_with(&[]), options).await.unwrap();
    let skill = s.manager.mcp_skills().next().unwrap();
    assert!(skill.pid().await.is_none(), "lazy skill must not start yet");
    assert!(names(&s.manager).contains(&"echo".to_string()));
    assert!(
        !drain(&mut s.events)
            .iter()
            .any(|e| matches!(e.kind, SkillEventKind::Starting { .. }))
    );
    let out = s.manager.call("echo", json!({"text": "woke"})).await;
    assert_eq!(out.joined_text(), "woke");
    assert!(skill.pid().await.is_some());
    s.manager.shutdown().await;
}

#[tokio::test]
async fn lazy_init_with_a_lock_missing_the_skill_starts_at_once() {
    let skill = server_skill("lazy", &[], "lazyInit = true");
    let mut lock = LockedExpert::default();
    lock.skills.insert("other".into(), LockedSkill::default());
    let options = SkillManagerOptions {
        lock: Some(lock),
        ..Default::default()
    };
    let s = start_with(&expert(&skill), &env_with(&[]), options)
        .await
        .unwrap();
    assert!(s.manager.mcp_skills().next().unwrap().pid().await.is_some());
    s.manager.shutdown().await;
}

#[tokio::test]
async fn a_tool_name_in_two_skills_is_an_error_naming_both() {
    let skills = format!(
        "{}{}",
        server_skill("first", &[], "pick = [\"echo\"]"),
        server_skill("second", &[], "pick = [\"echo\", \"add\"]")
    );
    let err = start_with(&expert(&skills), &env_with(&[]), Default::default())
        .await
        .err()
        .expect("collision must fail");
    assert!(
        matches!(&err, SkillError::Collision { tool, first, second }
            if tool == "echo" && first == "first" && second == "second"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_command_fails_start_with_the_skill_name() {
    let skill = "[experts.t.skills.ghost]\ntype = \"mcpStdioSkill\"\n\
                 command = \"/nonexistent/server\"\nargs = []\n";
    let err = start_with(&expert(skill), &env_with(&[]), Default::default())
        .await
        .err()
        .expect("must fail");
    let text = err.to_string();
    assert!(
        text.contains("ghost") && text.contains("/nonexistent/server"),
        "{text}"
    );
}

#[tokio::test]
async fn interactive_tools_are_listed_but_not_called() {
    let skill = "[experts.t.skills.ask]\ntype = \"interactiveSkill\"\n\
                 [experts.t.skills.ask.tools.askUser]\ndescription = \"Ask the user\"\n\
                 inputJsonSchema = '{\"type\": \"object\", \"properties\": {\"q\": {\"type\": \"string\"}}}'\n";
    let s = start(&expert(skill), &env_with(&[])).await;
    assert!(s.manager.is_interactive("askUser"));
    let tool = s.manager.tools().into_iter().find(|t| t.name == "askUser");
    assert_eq!(
        tool.unwrap().input_schema["properties"]["q"]["type"],
        "string"
    );
    let out = s.manager.call("askUser", json!({"q": "?"})).await;
    assert!(out.is_error && out.joined_text().contains("answered by the user"));
    // The base skill is routed in-process.
    let out = s.manager.call("healthCheck", json!({})).await;
    assert!(!out.is_error && out.joined_text().contains("ok"));
    assert!(s.manager.base().todos().is_empty());
}

#[tokio::test]
async fn paginated_lists_are_followed_and_list_changed_refreshes_them() {
    let expert = expert(&server_skill("test", &[], ""));
    let s = start(&expert, &env_with(&[])).await;
    // The server pages by three; all its tools must be there.
    let tools = names(&s.manager);
    for name in [
        "add", "big", "crash", "echo", "env", "fail", "image", "reveal", "sleep",
    ] {
        assert!(
            tools.contains(&name.to_string()),
            "{name} missing: {tools:?}"
        );
    }
    assert!(!tools.contains(&"late".to_string()));
    let out = s.manager.call("reveal", json!({})).await;
    assert_eq!(out.joined_text(), "revealed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !names(&s.manager).contains(&"late".to_string()) {
        assert!(
            Instant::now() < deadline,
            "list_changed did not refresh the tools"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.manager.call("late", json!({})).await.joined_text(),
        "late tool"
    );
    s.manager.shutdown().await;
}

#[tokio::test]
async fn an_initialize_timeout_fails_start_and_kills_the_server() {
    // A start-up delay no other test uses, to find this server's process.
    let marker = "4321";
    let skill = server_skill("slow", &["--startup-delay-ms", marker], "");
    let mut options = short_timeouts(1000);
    options.mcp.init_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = start_with(&expert(&skill), &env_with(&[]), options)
        .await
        .err()
        .expect("must time out");
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = err.to_string();
    assert!(
        text.contains("slow") && text.contains("timed out after 300 ms"),
        "{text}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_processes_with(&format!("--startup-delay-ms {marker}")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the timed-out server is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_that_dies_at_start_is_quoted_in_the_error() {
    let skill = "[experts.t.skills.broken]\ntype = \"mcpStdioSkill\"\ncommand = \"sh\"\n\
                 args = [\"-c\", \"echo 'config file missing' >&2; exit 1\"]\n";
    let err = start_with(&expert(skill), &env_with(&[]), Default::default())
        .await
        .err()
        .expect("must fail");
    let text = err.to_string();
    assert!(
        text.contains("broken") && text.contains("config file missing"),
        "{text}"
    );
}
