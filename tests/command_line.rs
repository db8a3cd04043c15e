//! The command line as operators use it: `--version`, `--debug` streaming
//! netlab's output into the log, and JSON logs for machines.

mod common;

use std::process::Command;

use common::{Options, Server, TWO_NODES, Upload};
use reqwest::StatusCode;
use serde_json::Value;

#[test]
fn version_names_the_program_and_its_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("neops-remote-lab {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn debug_streams_netlab_output_and_json_logs_parse() {
    let netlab = require_netlab!();
    // WARNING would hide netlab's lines; --debug (here through its env var) shows them.
    let options = Options::new(&netlab)
        .log_level("WARNING")
        .arg("--log-format", "json")
        .env("NEOPS_DEBUG", "true");
    let s = Server::start(options).await;
    let (id, _) = s.create_session().await;
    let (status, _) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);

    let log = s.log();
    let events: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    // netlab's own words, line by line, under the `netlab` target.
    assert!(
        events.iter().any(|event| event["target"] == "netlab"
            && event["fields"]["message"] == "Starting external nodes"),
        "{log}"
    );
}
