//! Every upload is checked completely before the lab is touched: hostile or
//! broken uploads get 400 (or 413) with a clear `detail`, nothing is
//! written, and the idle lab that was running is still up, untouched. And
//! the YAML pre-check lets through what netlab's own loader accepts.

mod common;

use std::path::PathBuf;

use common::{Options, Server, TWO_NODES, Upload, tree};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The server's upload limit in these tests, in bytes.
const LIMIT: usize = 256 * 1024;

/// A server whose lab is up: idle (reference count 0) or held (1).
struct LabUp {
    s: Server,
    session: String,
    ref_count: u64,
    /// netlab's registry and every path under the work folder, as they
    /// were when the lab went idle.
    registry: String,
    tree: Vec<PathBuf>,
}

impl LabUp {
    async fn start() -> Option<LabUp> {
        LabUp::start_with(0).await
    }

    /// A lab held `ref_count` times (0 or 1).
    async fn start_with(ref_count: u64) -> Option<LabUp> {
        let netlab = common::netlab()?;
        let s = Server::start(Options::new(&netlab).arg("--max-upload-bytes", &LIMIT.to_string()))
            .await;
        let (session, _) = s.create_session().await;
        let (status, body) = s
            .acquire(&session, Upload::new("idle.yml", TWO_NODES))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if ref_count == 0 {
            s.lab_call(Method::POST, "/lab/release", &session).await;
        }
        let registry = s.dirs.netlab_registry();
        assert!(registry.contains("default:"), "{registry}");
        let tree = tree(&s.dirs.tmp().join("neops_remote_lab_labs"));
        Some(LabUp {
            s,
            session,
            ref_count,
            registry,
            tree,
        })
    }

    /// Sends `form`; expects `status` with `detail` containing `cause`, and
    /// the lab exactly as it was.
    async fn refused(&self, case: &str, form: Form, status: StatusCode, cause: &str) {
        let (answer, body) = self.s.post_lab(&self.session, form).await;
        assert_eq!(answer, status, "{case}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(cause), "{case}: {detail:?} lacks {cause:?}");
        let (_, lab) = self.s.lab_call(Method::GET, "/lab", &self.session).await;
        assert_eq!(
            (&lab["running"], &lab["ref_count"], &lab["topology"]),
            (
                &Value::Bool(true),
                &Value::from(self.ref_count),
                &Value::from("idle.yml")
            ),
            "{case}: the lab changed: {lab}"
        );
        assert_eq!(self.s.dirs.netlab_registry(), self.registry, "{case}");
        assert_eq!(
            tree(&self.s.dirs.tmp().join("neops_remote_lab_labs")),
            self.tree,
            "{case}: files were written or removed"
        );
    }
}

macro_rules! idle_lab {
    () => {
        match LabUp::start().await {
            Some(lab) => lab,
            None => return,
        }
    };
}

/// A form with a topology and extra files given as raw bytes.
fn form(topology: &str, content: &[u8], extras: &[(&str, &[u8])]) -> Form {
    let mut form = Form::new().part(
        "topology",
        Part::bytes(content.to_vec()).file_name(topology.to_string()),
    );
    for (name, bytes) in extras {
        form = form.part(
            "extra_files",
            Part::bytes(bytes.to_vec()).file_name(name.to_string()),
        );
    }
    form
}

fn extra(name: &str) -> Form {
    form("t.yml", TWO_NODES.as_bytes(), &[(name, b"x")])
}

#[tokio::test]
async fn names_too_long_for_the_file_system_are_refused() {
    let lab = idle_lab!();
    let bad = StatusCode::BAD_REQUEST;
    let component = "a".repeat(256);
    lab.refused("256-byte name", extra(&component), bad, "at most 255")
        .await;
    let path = format!("{}f", "d/".repeat(2100));
    lab.refused("4201-byte path", extra(&path), bad, "bytes long")
        .await;
    let topology = format!("{}.yml", "t".repeat(296));
    let long_topology = form(&topology, TWO_NODES.as_bytes(), &[]);
    lab.refused("300-byte topology name", long_topology, bad, "at most 255")
        .await;
}

#[tokio::test]
async fn a_file_and_a_folder_of_the_same_name_are_refused_in_either_order() {
    let lab = idle_lab!();
    let bad = StatusCode::BAD_REQUEST;
    let x: &[u8] = b"x";
    for (case, form) in [
        (
            "a, a/b",
            form("t.yml", TWO_NODES.as_bytes(), &[("a", x), ("a/b", x)]),
        ),
        (
            "a/b, a",
            form("t.yml", TWO_NODES.as_bytes(), &[("a/b", x), ("a", x)]),
        ),
        (
            "t2.yml/x",
            form("t2.yml", TWO_NODES.as_bytes(), &[("t2.yml/x", x)]),
        ),
        (
            "file where the topology needs a folder",
            form("labs/t.yml", TWO_NODES.as_bytes(), &[("labs", x)]),
        ),
    ] {
        lab.refused(case, form, bad, "folder").await;
    }
}

#[tokio::test]
async fn names_netlab_owns_are_refused() {
    let lab = idle_lab!();
    for name in [
        "netlab.lock",
        "netlab.snapshot.pickle",
        "group_vars",
        "hosts.yml",
        "ansible.cfg",
        "host_vars/r1.yml",
        "clab.yml",
        "Vagrantfile",
    ] {
        lab.refused(name, extra(name), StatusCode::BAD_REQUEST, "netlab writes")
            .await;
    }
}

#[tokio::test]
async fn a_held_lab_is_not_attached_by_a_refused_upload_of_its_own_topology() {
    let Some(lab) = LabUp::start_with(1).await else {
        return;
    };
    let pickle = form(
        "idle.yml",
        TWO_NODES.as_bytes(),
        &[("netlab.snapshot.pickle", b"not a pickle")],
    );
    lab.refused("held", pickle, StatusCode::BAD_REQUEST, "netlab writes")
        .await;
}

#[tokio::test]
async fn every_byte_of_the_body_counts_and_parts_are_capped() {
    let lab = idle_lab!();
    // Empty parts of a field the server ignores: only headers and names,
    // 300 of them (under the part cap), each over 1 KB.
    let mut headers = form("t.yml", TWO_NODES.as_bytes(), &[]);
    let long_name = format!("{}.txt", "n".repeat(1024));
    for _ in 0..300 {
        headers = headers.part(
            "ignored-field",
            Part::bytes(Vec::new()).file_name(long_name.clone()),
        );
    }
    lab.refused(
        "headers and empty parts",
        headers,
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("{LIMIT} bytes"),
    )
    .await;

    let mut parts = form("t.yml", TWO_NODES.as_bytes(), &[]);
    for _ in 0..1000 {
        parts = parts.text("x", "");
    }
    lab.refused(
        "1001 parts",
        parts,
        StatusCode::BAD_REQUEST,
        "more than 1000 parts",
    )
    .await;
}

#[tokio::test]
async fn deeply_nested_yaml_is_refused_before_parsing() {
    let lab = idle_lab!();
    let bomb = "[".repeat(160 * 1024);
    // Two at once, and the server still answers everything else.
    let (first, second) = tokio::join!(
        lab.s
            .post_lab(&lab.session, form("t.yml", bomb.as_bytes(), &[])),
        lab.s
            .post_lab(&lab.session, form("t.yml", bomb.as_bytes(), &[])),
    );
    for (status, body) in [first, second] {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("levels deep"));
    }
    lab.refused(
        "bracket bomb",
        form("t.yml", bomb.as_bytes(), &[]),
        StatusCode::BAD_REQUEST,
        "levels deep",
    )
    .await;
}

/// Ten megabytes of brackets after an anchor or a tag (a hand-written
/// nesting scan missed both; the parser then took hours): refused at the
/// nesting limit, while the server answers status polls throughout.
#[tokio::test]
async fn nesting_after_an_anchor_or_a_tag_is_refused_and_the_server_keeps_answering() {
    let Some(netlab) = common::netlab() else {
        return;
    };
    // The default upload limit (10 MiB) holds the 10 MB topology.
    let s = std::sync::Arc::new(Server::start(Options::new(&netlab)).await);
    let (session, _) = s.create_session().await;
    for head in ["a: &x ", "a: !netlab "] {
        let mut bomb = head.to_string();
        bomb.push_str(&"[".repeat(10_000_000));
        let upload = tokio::spawn({
            let (s, session) = (std::sync::Arc::clone(&s), session.clone());
            async move {
                s.post_lab(&session, form("t.yml", bomb.as_bytes(), &[]))
                    .await
            }
        });
        let mut polls = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !upload.is_finished() || polls == 0 {
            let (status, body) = s.session_status(&session).await;
            assert_eq!(status, StatusCode::OK, "{head:?}: a poll failed: {body}");
            polls += 1;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            assert!(
                std::time::Instant::now() < deadline,
                "{head:?}: the upload was never answered"
            );
        }
        let (status, body) = upload.await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{head:?}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("nests more than 64 levels deep (line 1)"),
            "{head:?}: {detail}"
        );
    }
}

#[tokio::test]
async fn yaml_netlab_accepts_comes_up_and_what_it_refuses_is_400() {
    let lab = idle_lab!();
    let (s, id) = (&lab.s, &lab.session);
    let base = "defaults.device: eos\nnodes: [r1, r2]\nlinks: [r1-r2]\n";
    for (case, content) in [
        ("UTF-8 BOM", format!("\u{feff}{base}")),
        ("CRLF", base.replace('\n', "\r\n")),
        ("markers", format!("---\n{base}...\n")),
        (
            "anchors",
            "nodes:\n  r1: &n\n    device: eos\n  r2: *n\n".to_string(),
        ),
        (
            "comments and non-ASCII",
            format!("# Grüße\n{base}message: \"路由器\" # x\n"),
        ),
    ] {
        let (status, body) = s.post_lab(id, form("v.yml", content.as_bytes(), &[])).await;
        assert_eq!(status, StatusCode::OK, "{case}: {body}");
        assert_eq!(body["devices"].as_array().map(Vec::len), Some(2), "{case}");
        s.lab_call(Method::POST, "/lab/release", id).await;
    }
    for (case, content, cause) in [
        (
            "duplicate key",
            &b"nodes: [r1]\nnodes: [r2]\n"[..],
            "duplicate entry",
        ),
        ("tab indentation", b"nodes:\n\tr1:\n", "not valid YAML"),
        (
            "two documents",
            b"nodes: [r1]\n---\nnodes: [r2]\n",
            "more than one document",
        ),
        (
            "Latin-1",
            b"message: Gr\xfc\xdfe\nnodes: [r1]\n",
            "not UTF-8",
        ),
    ] {
        let (status, body) = s.post_lab(id, form("v.yml", content, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(cause),
            "{case}: {body}"
        );
    }
}
