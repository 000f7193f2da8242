//! File and directory tools.

use std::os::unix::fs::symlink;

use serde_json::{Value, json};

use super::{err, ok, root, setup};
use crate::skills::base::{MAX_IMAGE_BYTES, files};
use crate::tool::ToolContent;

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
    let fifo = root(&skill).join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let text = err(&skill, "readTextFile", json!({"path": "fifo"})).await;
    assert!(text.contains("not a regular file"), "{text}");
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

fn make_fifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

#[tokio::test]
async fn every_file_tool_refuses_a_fifo_without_waiting_on_it() {
    let (_dir, skill) = setup();
    make_fifo(&root(&skill).join("fifo"));
    let calls = [
        ("readTextFile", json!({"path": "fifo"})),
        ("writeTextFile", json!({"path": "fifo", "text": "x"})),
        ("appendTextFile", json!({"path": "fifo", "text": "x"})),
        (
            "editTextFile",
            json!({"path": "fifo", "oldText": "a", "newText": "b"}),
        ),
    ];
    for (tool, args) in calls {
        // Nobody opens the other end: a blocking open would never return.
        let text = tokio::time::timeout(std::time::Duration::from_secs(5), err(&skill, tool, args))
            .await
            .unwrap_or_else(|_| panic!("{tool} waited on the FIFO"));
        assert!(
            text.contains("fifo is not a regular file"),
            "{tool}: {text}"
        );
    }
}

#[tokio::test]
async fn edit_text_file_refuses_files_over_the_read_limit() {
    let (_dir, skill) = setup();
    let path = root(&skill).join("huge.txt");
    // Sparse: the size is over the limit without writing it.
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(files::MAX_TEXT_FILE_BYTES + 1)
        .expect("set_len");
    let text = err(
        &skill,
        "editTextFile",
        json!({"path": "huge.txt", "oldText": "a", "newText": "b"}),
    )
    .await;
    assert!(
        text.contains(&format!(
            "more than the {} bytes editTextFile handles",
            files::MAX_TEXT_FILE_BYTES
        )) && text.contains("use exec"),
        "{text}"
    );
    // Within the limit, an edit of a file that is not UTF-8 says so.
    std::fs::write(root(&skill).join("bin"), [0xff, b'a', 0xfe]).expect("write");
    let text = err(
        &skill,
        "editTextFile",
        json!({"path": "bin", "oldText": "a", "newText": "b"}),
    )
    .await;
    assert!(text.contains("not UTF-8"), "{text}");
}

#[tokio::test]
async fn a_line_longer_than_one_answer_is_read_in_pieces() {
    let (_dir, skill) = setup();
    // 1 MB on one line, with multi-byte characters so pieces must end on char boundaries,
    // then a short second line.
    let long: String = "aé😀".repeat(1024 * 1024 / 7) + "\n";
    let content = long.clone() + "tail\n";
    std::fs::write(root(&skill).join("wide.txt"), &content).expect("write");
    let mut read = String::new();
    let mut args = json!({"path": "wide.txt", "to": 1});
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 20, "no progress: {args}");
        let text = ok(&skill, "readTextFile", args.clone()).await;
        let Some(note) = text.rfind("\n[truncated: line 1 is too long") else {
            read.push_str(&text);
            break;
        };
        assert!(note <= files::MAX_TEXT_OUTPUT_BYTES, "{note}");
        read.push_str(&text[..note]);
        let hint = &text[note..];
        let column: u64 = hint
            .split("column: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no column in {hint}"));
        assert_eq!(column as usize, read.chars().count() + 1, "{hint}");
        args = json!({"path": "wide.txt", "from": 1, "to": 1, "column": column});
    }
    assert_eq!(read, long, "every character of the line, in order");
    assert!(calls >= 4, "{calls}");
    // Reading on past the long line: the rest of it, then the next line.
    let text = ok(
        &skill,
        "readTextFile",
        json!({"path": "wide.txt", "from": 1, "column": long.chars().count() - 1}),
    )
    .await;
    assert_eq!(text, "😀\ntail\n");
    let text = err(
        &skill,
        "readTextFile",
        json!({"path": "wide.txt", "from": 2, "column": 6}),
    )
    .await;
    assert!(text.contains("past the end of line 2"), "{text}");
    let text = err(
        &skill,
        "readTextFile",
        json!({"path": "wide.txt", "column": 0}),
    )
    .await;
    assert!(text.contains("1-based"), "{text}");
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
