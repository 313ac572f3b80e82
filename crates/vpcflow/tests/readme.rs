//! The README's sample sessions are what the commands print, so they
//! cannot drift: every fenced block whose first line is `$ vpcflow ...` is
//! run from the repository's root, and its output (stdout, then stderr)
//! must be the block's lines. A line `...` stands for any number of
//! lines; `(...)` inside a line for any text there.

use std::path::PathBuf;

mod common;
use common::vpcflow;

/// Whether `actual` is `expected`, with its `...` lines and `(...)` parts.
fn matches(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|skip| matches(rest, &actual[skip..])),
        Some((line, rest)) => actual.split_first().is_some_and(|(a, more)| {
            let same = match line.split_once("(...)") {
                Some((head, tail)) => {
                    a.len() >= head.len() + tail.len() && a.starts_with(head) && a.ends_with(tail)
                }
                None => a == line,
            };
            same && matches(rest, more)
        }),
    }
}

#[test]
fn the_matcher_takes_elisions_and_nothing_else() {
    assert!(matches(&["a", "...", "d"], &["a", "b", "c", "d"]));
    assert!(matches(&["a", "...", "d"], &["a", "d"]));
    assert!(matches(&["x (...) y"], &["x 1 2 y"]));
    assert!(!matches(&["a", "d"], &["a", "b", "d"]));
    assert!(!matches(&["x (...) y"], &["x 1 2 z"]));
    assert!(!matches(&["a"], &["a", "b"]));
}

#[test]
fn the_readmes_sample_sessions_are_what_the_commands_print() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut sessions = 0;
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let Some(command) = block.first().and_then(|l| l.strip_prefix("$ vpcflow ")) else {
            continue;
        };
        sessions += 1;
        let o = vpcflow()
            .current_dir(&root)
            .args(command.split_whitespace())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8(o.stdout).unwrap() + &String::from_utf8(o.stderr).unwrap();
        let actual: Vec<&str> = out.lines().collect();
        assert!(
            matches(&block[1..], &actual),
            "README's session `vpcflow {command}` differs from what it prints:\n{out}"
        );
    }
    assert!(sessions > 0, "no `$ vpcflow` session in the README");
}
