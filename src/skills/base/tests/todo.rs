//! Todos and attemptCompletion.

use serde_json::{Value, json};

use super::{ok, root, setup};
use crate::skills::base::{BaseSkill, Completion};

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
