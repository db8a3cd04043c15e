//! A client subcommand pointed at a server that is not there says so at
//! once, on every retry, instead of waiting out its retry minute in
//! silence; `run` names its version first.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A loopback address where nothing listens (a port just freed).
fn dead_url() -> String {
    format!("http://127.0.0.1:{}", common::free_port())
}

/// Starts the binary with `args`, its stderr piped.
fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"))
        .args(args)
        .env_remove("REMOTE_LAB_URL")
        .env_remove("REMOTE_LAB_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first `n` lines on the child's stderr, then stops the child (its
/// retries would go on for a minute).
fn first_lines(mut child: Child, n: usize) -> Vec<String> {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let lines = stderr.lines().take(n).map(Result::unwrap).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    lines
}

fn assert_retry_notice(line: &str, what: &str) {
    assert!(
        line.starts_with(&format!("neops-remote-lab: {what}: ")),
        "{line}"
    );
    assert!(line.contains("Connection refused"), "{line}");
    assert!(line.contains("; trying again in "), "{line}");
    assert!(line.ends_with(" s (for up to 60 s)"), "{line}");
}

#[test]
fn status_says_at_once_that_the_server_cannot_be_reached_and_shows_each_retry() {
    let url = dead_url();
    let lines = first_lines(start(&["status", "--url", &url]), 2);
    for line in &lines {
        assert_retry_notice(line, "GET /sessions");
    }
    assert!(lines[0].contains("trying again in 0.5 s"), "{lines:?}");
    assert!(lines[1].contains("trying again in 1.0 s"), "{lines:?}");
}

#[test]
fn run_names_its_version_first_then_shows_its_retries() {
    let lab = tempfile::tempdir().unwrap();
    std::fs::write(lab.path().join("topology.yml"), common::TWO_NODES).unwrap();
    let topology = lab.path().join("topology.yml");
    let url = dead_url();
    let child = start(&[
        "run",
        "--url",
        &url,
        "-t",
        topology.to_str().unwrap(),
        "--",
        "true",
    ]);
    let lines = first_lines(child, 2);
    assert_eq!(
        lines[0],
        format!(
            "neops-remote-lab {}: run against {url}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_retry_notice(&lines[1], "POST /session");
}
