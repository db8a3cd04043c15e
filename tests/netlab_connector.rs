//! The connector against the installed netlab: the one-call host view of
//! every node (a netlab-internal function) must equal the public per-node
//! form, `netlab inspect --node <name> --format json`, key for key, and
//! both must keep netlab's node order (the topology's, not sorted). If a
//! netlab upgrade breaks this, the connector still works through its
//! per-node fallback, and this test says so.

mod common;

use std::time::Duration;

use neops_remote_lab::lab::LineSink;
use neops_remote_lab::lab::netlab::{Netlab, NetlabConfig};
use tokio_util::sync::CancellationToken;

/// netlab's progress lines are not this test's business.
struct Discard;

impl LineSink for Discard {
    fn line(&self, _line: &str) {}
}

#[test]
fn one_call_inspect_equals_the_per_node_form() {
    let program = require_netlab!();
    let home = tempfile::tempdir().unwrap();
    // SAFETY: this test binary holds this single test, and no other thread
    // runs yet; netlab keeps its registry under $HOME.
    unsafe { std::env::set_var("HOME", home.path()) };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = NetlabConfig {
            program,
            up_args: common::EXTERNAL_UP_ARGS
                .split(' ')
                .map(str::to_string)
                .collect(),
            up_timeout: Duration::from_secs(300),
            command_timeout: Duration::from_secs(120),
            kill_grace: Duration::from_secs(10),
            owner: None,
        };
        let netlab = Netlab::connect(config).await.expect("netlab version");
        let lab = tempfile::tempdir().unwrap();
        let topology = "defaults.device: eos\nnodes: [pe1, ce1, r10, r9]\nlinks: [pe1-ce1]\n";
        std::fs::write(lab.path().join("t.yml"), topology).unwrap();
        netlab
            .up(
                lab.path(),
                std::path::Path::new("t.yml"),
                &CancellationToken::new(),
                std::sync::Arc::new(Discard),
            )
            .await
            .expect("netlab up");

        let all = netlab
            .host_views_in_one_call(lab.path())
            .await
            .expect("one-call inspect");
        let names: Vec<&str> = all.iter().map(|device| device.name.as_str()).collect();
        assert_eq!(names, ["pe1", "ce1", "r10", "r9"]);
        let per_node = netlab
            .devices_node_by_node(lab.path())
            .await
            .expect("per-node inspect");
        assert_eq!(all, per_node, "the two paths differ (order or content)");
        netlab.down(lab.path()).await.expect("netlab down");
    });
}
