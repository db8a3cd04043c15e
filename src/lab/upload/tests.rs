use super::*;

fn file(name: &str, bytes: &[u8]) -> FilePart {
    FilePart {
        name: Some(name.into()),
        bytes: bytes.to_vec(),
    }
}

fn form(topology: &str, extras: &[&str]) -> Form {
    Form {
        topology: vec![file(topology, b"nodes: [r1]\n")],
        reuse: None,
        extra_files: extras.iter().map(|name| file(name, b"x")).collect(),
    }
}

fn with_topology(content: &[u8]) -> Form {
    Form {
        topology: vec![file("t.yml", content)],
        ..Form::default()
    }
}

fn invalid(result: Result<Upload, UploadError>) -> String {
    match result {
        Err(UploadError::Invalid(message)) => message,
        other => panic!("expected 400, got {other:?}"),
    }
}

#[test]
fn names_that_leave_the_folder_are_refused() {
    for name in [
        "/etc/passwd",
        "../x.cfg",
        "configs/../../x",
        "",
        "a\0b",
        "dir/",
        "..",
        ".",
        "a\\b",
    ] {
        let message = invalid(Upload::validate(form("t.yml", &[name])));
        assert!(message.starts_with("File name"), "{name:?}: {message}");
    }
    for topology in ["../t.yml", "/abs/t.yml", "labs/../../t.yml"] {
        invalid(Upload::validate(form(topology, &[])));
    }
}

#[test]
fn folders_inside_the_upload_are_kept() {
    let upload =
        Upload::validate(form("t.yml", &["configs/init.cfg", "./templates/t.j2"])).unwrap();
    let paths: Vec<&Path> = upload
        .extra_files
        .iter()
        .map(|(p, _)| p.as_path())
        .collect();
    assert_eq!(
        paths,
        [Path::new("configs/init.cfg"), Path::new("templates/t.j2")]
    );
    assert!(upload.reuse, "reuse defaults to true");
}

#[test]
fn names_longer_than_the_file_system_allows_are_refused() {
    let long_part = "a".repeat(MAX_COMPONENT_BYTES + 1);
    let long_path = vec!["d"; MAX_PATH_BYTES / 2 + 1].join("/");
    let long_topology = format!("{}.yml", "t".repeat(296));
    for (topology, extra) in [
        ("t.yml", long_part.as_str()),
        ("t.yml", long_path.as_str()),
        (long_topology.as_str(), "ok.cfg"),
    ] {
        let message = invalid(Upload::validate(form(topology, &[extra])));
        assert!(message.contains("at most"), "{message}");
    }
    let longest_part = "a".repeat(MAX_COMPONENT_BYTES);
    Upload::validate(form("t.yml", &[&longest_part])).expect("255 bytes fit");
}

#[test]
fn a_file_and_a_folder_of_the_same_name_collide_in_either_order() {
    for extras in [
        &["a", "a/b"][..],
        &["a/b", "a"],
        &["a/b/c", "a/b"],
        &["t2.yml/x"],
        &["t.yml/x"],
    ] {
        let topology = if extras == ["t2.yml/x"] {
            "t2.yml"
        } else {
            "t.yml"
        };
        let message = invalid(Upload::validate(form(topology, extras)));
        assert!(message.contains("folder"), "{extras:?}: {message}");
    }
    // A file where the topology's path needs a folder.
    invalid(Upload::validate(form("labs/t.yml", &["labs"])));
}

#[test]
fn extra_file_may_not_replace_the_topology_or_repeat() {
    invalid(Upload::validate(form("t.yml", &["t.yml"])));
    invalid(Upload::validate(form("labs/t.yml", &["labs/t.yml"])));
    invalid(Upload::validate(form("t.yml", &["a/b", "a/./b"])));
}

#[test]
fn names_netlab_owns_in_the_topology_folder_are_refused() {
    for name in [
        "netlab.lock",
        "netlab.snapshot.pickle",
        "netlab.snapshot.yml",
        "netlab.snapshot.anything",
        "hosts.yml",
        "ansible.cfg",
        "group_vars",
        "group_vars/all/x.yml",
        "host_vars/r1.yml",
        "node_files/r1/initial",
        "clab.yml",
        "clab_files/x",
        "Vagrantfile",
        "external.txt",
    ] {
        let message = invalid(Upload::validate(form("t.yml", &[name])));
        assert!(message.contains("netlab writes"), "{name}: {message}");
        let nested = format!("labs/{name}");
        invalid(Upload::validate(form("labs/t.yml", &[&nested])));
    }
    for topology in ["hosts.yml", "clab.yml", "labs/netlab.snapshot.yml"] {
        invalid(Upload::validate(form(topology, &[])));
    }
    // Outside the topology's folder the names are the user's.
    Upload::validate(form(
        "labs/basic/t.yml",
        &["hosts.yml", "labs/group_vars.txt"],
    ))
    .expect("not in the topology's folder");
}

#[test]
fn topology_may_sit_in_a_sub_folder() {
    let upload = Upload::validate(form("labs/basic/t.yml", &["defaults.yml"])).unwrap();
    assert_eq!(upload.topology_name, "t.yml");
    assert_eq!(upload.topology_path, Path::new("labs/basic/t.yml"));
}

#[test]
fn topology_extension_is_checked_case_insensitively() {
    for name in ["a.yml", "a.yaml", "a.YML", "a.YAML"] {
        assert!(Upload::validate(form(name, &[])).is_ok(), "{name}");
    }
    let message = invalid(Upload::validate(form("a.json", &[])));
    assert!(message.starts_with("Topology must be a"));
}

#[test]
fn missing_topology_is_a_form_error_even_before_bad_names() {
    let raw = Form {
        extra_files: vec![file("../x", b"")],
        ..Form::default()
    };
    assert!(matches!(Upload::validate(raw), Err(UploadError::Form(_))));
}

#[test]
fn reuse_accepts_pydantic_booleans() {
    for (text, value) in [("true", true), ("0", false), ("Yes", true), ("OFF", false)] {
        assert_eq!(parse_bool(text), Some(value));
    }
    let raw = Form {
        reuse: Some("maybe".into()),
        ..form("t.yml", &[])
    };
    assert!(matches!(Upload::validate(raw), Err(UploadError::Form(_))));
}

fn identity(topology: &str, extras: &[(&str, &str)]) -> Identity {
    let raw = Form {
        topology: vec![file(topology, b"nodes: [r1]\n")],
        reuse: None,
        extra_files: extras
            .iter()
            .map(|(name, bytes)| file(name, bytes.as_bytes()))
            .collect(),
    };
    Upload::validate(raw).unwrap().identity
}

#[test]
fn identity_covers_every_file_but_not_the_topology_name_or_order() {
    let base = identity("t.yml", &[("a.j2", "x"), ("b/c.cfg", "y")]);
    assert_eq!(
        base,
        identity("other.yaml", &[("b/c.cfg", "y"), ("a.j2", "x")])
    );
    for different in [
        identity("t.yml", &[("a.j2", "x"), ("b/c.cfg", "z")]),
        identity("t.yml", &[("a.j2", "x"), ("b/d.cfg", "y")]),
        identity("t.yml", &[("a.j2", "x")]),
        identity("labs/t.yml", &[("a.j2", "x"), ("b/c.cfg", "y")]),
        // Moving bytes between name and content must not collide.
        identity("t.yml", &[("a.j2x", ""), ("b/c.cfg", "y")]),
    ] {
        assert_ne!(base, different);
    }
}

#[test]
fn identity_is_a_sha256_of_a_length_prefixed_encoding() {
    let upload = Upload::validate(with_topology(b"nodes: [r1]\n")).unwrap();
    let mut expected = Sha256::new();
    for field in [&b""[..], b"nodes: [r1]\n", &0u64.to_be_bytes()] {
        expected.update((field.len() as u64).to_be_bytes());
        expected.update(field);
    }
    assert_eq!(upload.identity.to_string(), hex(&expected.finalize()));
}

/// The YAML variants people write, with netlab's own verdict. Measured on
/// networklab 26.10 by running `netlab up -q --no-config -p external -s
/// defaults.multilab.id=default topology.yml` on each (exit code and first
/// error line noted). `Some(cause)`: the pre-check refuses with a message
/// containing `cause`; `None`: it passes the file on to netlab.
const YAML_TABLE: &[(&str, &[u8], &str, Option<&str>)] = &[
    (
        "plain",
        b"nodes: [r1, r2]\nlinks: [r1-r2]\n",
        "accepted",
        None,
    ),
    (
        "UTF-8 BOM",
        b"\xef\xbb\xbfdefaults.device: eos\nnodes: [r1, r2]\nlinks: [r1-r2]\n",
        "accepted",
        None,
    ),
    (
        "CRLF",
        b"nodes: [r1, r2]\r\nlinks: [r1-r2]\r\n",
        "accepted",
        None,
    ),
    (
        "BOM and CRLF",
        b"\xef\xbb\xbfnodes: [r1, r2]\r\n",
        "accepted",
        None,
    ),
    (
        "--- start marker",
        b"---\nnodes: [r1, r2]\n",
        "accepted",
        None,
    ),
    (
        "--- and ... markers",
        b"---\nnodes: [r1, r2]\n...\n",
        "accepted",
        None,
    ),
    (
        "%YAML 1.2 directive",
        b"%YAML 1.2\n---\nnodes: [r1]\n",
        "accepted",
        None,
    ),
    (
        "anchors and aliases",
        b"nodes:\n  r1: &n\n    device: eos\n  r2: *n\n",
        "accepted",
        None,
    ),
    (
        "comments",
        b"# lab\nnodes: [r1, r2] # two\n# end\n",
        "accepted",
        None,
    ),
    (
        "non-ASCII value",
        "message: \"Grüße, 路由器\"\nnodes: [r1]\n".as_bytes(),
        "accepted",
        None,
    ),
    (
        // A YAML-valid name netlab refuses later ("node name rö1 must be a
        // 16-character identifier"): netlab's verdict, not the pre-check's.
        "non-ASCII node name",
        "nodes: [rö1, r2]\n".as_bytes(),
        "refused by topology validation (exit 1)",
        None,
    ),
    (
        // PyYAML's SafeLoader under netlab's duplicate-key check has no
        // constructor for `<<`: "could not determine a constructor for the
        // tag 'tag:yaml.org,2002:merge'". The pre-check leaves it to netlab.
        "merge key <<",
        b"x: &c\n  device: eos\nnodes:\n  r1:\n    <<: *c\n",
        "refused: no constructor for merge (exit 1)",
        None,
    ),
    (
        "duplicate top-level key",
        b"nodes: [r1]\nnodes: [r2]\n",
        "refused: Duplicate section nodes (exit 1)",
        Some("duplicate entry"),
    ),
    (
        "duplicate nested key",
        b"nodes:\n  r1:\n    id: 1\n    id: 2\n",
        "refused: Duplicate section id (exit 1)",
        Some("duplicate entry"),
    ),
    (
        "tab indentation",
        b"nodes:\n\tr1:\n\tr2:\n",
        "refused: found character '\\t' that cannot start any token (exit 1)",
        Some("not valid YAML"),
    ),
    (
        // PyYAML never skips a tab between tokens; libyaml does after a
        // colon. Telling a separating tab from one inside a block scalar
        // needs a full scanner, so the pre-check leaves this to netlab,
        // whose refusal comes back as 502 with its message.
        "tab after a colon",
        b"nodes:\t[r1,\tr2]\n",
        "refused: found character '\\t' that cannot start any token (exit 1)",
        None,
    ),
    (
        "two documents",
        b"---\nnodes: [r1]\n---\nnodes: [r2]\n",
        "refused: expected a single document in the stream (exit 1)",
        Some("more than one document"),
    ),
    (
        "Latin-1 bytes",
        b"message: Gr\xfc\xdfe\nnodes: [r1]\n",
        "refused: 'utf-8' codec can't decode byte 0xfc (exit 1)",
        Some("not UTF-8"),
    ),
    (
        "UTF-16 with BOM",
        b"\xff\xfen\x00o\x00d\x00e\x00s\x00:\x00 \x00[\x00r\x001\x00]\x00\n\x00",
        "refused: 'utf-8' codec can't decode byte 0xff (exit 1)",
        Some("not UTF-8"),
    ),
    (
        "control character",
        b"message: \"a\x07b\"\nnodes: [r1]\n",
        "refused: unacceptable character #x0007 (exit 1)",
        Some("not valid YAML"),
    ),
    (
        "NUL byte",
        b"nodes: [r1]\n\x00\n",
        "refused: unacceptable character #x0000 (exit 1)",
        Some("not valid YAML"),
    ),
    (
        "unclosed flow sequence",
        b"nodes: [r1\n",
        "refused: expected ',' or ']' (exit 1)",
        Some("not valid YAML"),
    ),
    (
        "empty file",
        b"",
        "refused: Required topology element 'nodes' is missing (exit 1)",
        Some("Topology is empty"),
    ),
    (
        "comment only",
        b"# nothing\n",
        "refused: Required topology element 'nodes' is missing (exit 1)",
        Some("Topology is empty"),
    ),
    (
        "top-level list",
        b"- r1\n- r2\n",
        "refused: yaml data not returned as a dictionary but rather a list (exit 1)",
        Some("must be a YAML mapping"),
    ),
];

#[test]
fn yaml_pre_check_follows_netlabs_loader() {
    for (variant, content, netlab, expected) in YAML_TABLE {
        let result = Upload::validate(with_topology(content));
        match (expected, result) {
            (None, Ok(_)) => {}
            (Some(cause), Err(UploadError::Invalid(message))) if message.contains(cause) => {}
            (expected, result) => panic!(
                "{variant}: netlab {netlab}; expected {expected:?}, pre-check gave {result:?}"
            ),
        }
    }
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let depth = MAX_NESTING + 1;
    let flow = format!("nodes: {}r1{}\n", "[".repeat(depth), "]".repeat(depth));
    let block: String = (0..depth)
        .map(|level| format!("{}k{level}:\n", " ".repeat(level)))
        .collect();
    let dashes = format!("nodes:\n{}r1\n", "- ".repeat(depth));
    for text in [&flow, &block, &dashes] {
        let message = invalid(Upload::validate(with_topology(text.as_bytes())));
        assert!(message.contains("levels deep"), "{message}");
    }
    // Brackets in comments do not count; a usual topology passes.
    let commented = format!("# {}\nnodes: [r1]\n", "[".repeat(depth));
    Upload::validate(with_topology(commented.as_bytes())).expect("comment");
    let fine = format!("nodes: {}r1{}\n", "[".repeat(10), "]".repeat(10));
    Upload::validate(with_topology(fine.as_bytes())).expect("ten levels");
}

#[test]
fn brackets_and_indentation_inside_strings_are_not_nesting() {
    // Each is a topology netlab accepts (checked with `netlab create` on
    // netlab 26.10): the brackets are text, not collections.
    let many = "[".repeat(80);
    let indented: String = (1..80)
        .map(|level| format!("  {}x{level}\n", " ".repeat(2 * level)))
        .collect();
    for text in [
        format!("nodes: [r1]\nmessage: |\n  {many}\n"),
        format!("nodes: [r1]\nmessage: '{many}'\n"),
        format!("nodes: [r1]\nmessage: \"{many}\"\n"),
        format!("nodes: [r1]\nmessage: a{many}\n"),
        format!("nodes: [r1]\nmessage: >-\n{indented}"),
        format!("nodes: [r1]\nitems:\n  - |\n    {many}\nother: [a, '{many}']\n"),
    ] {
        Upload::validate(with_topology(text.as_bytes()))
            .unwrap_or_else(|error| panic!("{text:?}: {error:?}"));
    }
    // A flow collection inside a flow collection still counts.
    let deep = format!(
        "nodes: [r1]\nx: {{a: {}1{}}}\n",
        "[".repeat(MAX_NESTING),
        "]".repeat(MAX_NESTING)
    );
    let message = invalid(Upload::validate(with_topology(deep.as_bytes())));
    assert!(message.contains("levels deep"), "{message}");
}

#[test]
fn a_huge_bracket_bomb_is_refused_by_the_nesting_check() {
    let bomb = "[".repeat(160 * 1024);
    let message = invalid(Upload::validate(with_topology(bomb.as_bytes())));
    assert!(message.contains("levels deep"), "{message}");
}

/// Ten megabytes of brackets after an anchor or a tag: the walk stops at
/// the first collection past the limit, whatever comes before it.
#[test]
fn brackets_after_an_anchor_or_a_tag_are_refused_at_the_limit() {
    let ten_mb = 10_000_000;
    for (head, bracket) in [
        ("a: &x ", "["),
        ("a: !t ", "["),
        ("a: !!seq ", "["),
        ("a: &x !t ", "{"),
        ("a: &x\n  ", "- "),
    ] {
        let mut text = head.to_string();
        text.push_str(&bracket.repeat(ten_mb / bracket.len()));
        let message = invalid(Upload::validate(with_topology(text.as_bytes())));
        assert!(message.contains("levels deep"), "{head:?}: {message}");
    }
    let anchored_blocks: String = (0..=MAX_NESTING)
        .map(|level| format!("{}k{level}: &a{level}\n", " ".repeat(level)))
        .collect();
    let message = invalid(Upload::validate(with_topology(anchored_blocks.as_bytes())));
    assert!(message.contains("levels deep"), "{message}");
}

#[test]
fn aliases_that_stand_for_too_many_nodes_are_refused() {
    // Each level holds ten aliases of the one before: 10^9 nodes.
    let mut laughs = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n".to_string();
    for level in 1..10 {
        let aliases = vec![format!("*l{}", level - 1); 10].join(", ");
        laughs.push_str(&format!("l{level}: &l{level} [{aliases}]\n"));
    }
    let message = invalid(Upload::validate(with_topology(laughs.as_bytes())));
    assert!(message.contains("aliases stand for more than"), "{message}");
    // A few device defaults shared by alias are fine.
    let shared = "d: &d {device: eos, cpu: 2}\nnodes:\n  r1: *d\n  r2: *d\n";
    Upload::validate(with_topology(shared.as_bytes())).expect("shared defaults");
}

/// Where a flow collection could be a mapping key (at a line's start, after
/// `- `), the parser reads all of it before its first event.
#[test]
fn a_flow_collection_the_parser_must_read_ahead_is_bounded() {
    let items = vec!["r1"; MAX_FLOW_ENTRIES_AHEAD + 1].join(", ");
    for long in [format!("x:\n- [{items}]\n"), format!("{{a: [{items}]}}\n")] {
        let message = invalid(Upload::validate(with_topology(long.as_bytes())));
        assert!(message.contains("flow collection"), "{message}");
    }
    // As a value, or in block style, it is read as it comes.
    let value = format!("nodes: [{items}]\n");
    Upload::validate(with_topology(value.as_bytes())).expect("a value");
    let block: String = std::iter::once("nodes:\n".to_string())
        .chain((0..MAX_FLOW_ENTRIES_AHEAD + 1).map(|n| format!("  - r{n}\n")))
        .collect();
    Upload::validate(with_topology(block.as_bytes())).expect("block style");
}

/// Long scalars and comments hold no tokens: a megabyte of prose, commas and
/// brackets included, is read as it comes.
#[test]
fn long_scalars_and_comments_are_not_bounded_as_flow_collections() {
    let prose = "a line of text, [with] a bracket and a comma ".repeat(20_000);
    let long = [
        format!("# {prose}\nname: x\n"),
        format!("name: x\nmessage: {prose}\n"),
        format!("message: \"{prose}\"\n"),
        format!("message: |\n  {prose}\n"),
        format!("x:\n- \"{prose}\"\n"),
    ];
    for topology in &long {
        assert!(topology.len() > 900_000);
        Upload::validate(with_topology(topology.as_bytes())).expect("a long scalar or comment");
    }
}

#[test]
fn a_check_stops_when_its_request_ends_or_its_time_is_up() {
    let long: String = (0..100_000).map(|n| format!("k{n}: v\n")).collect();
    let ended = Arc::new(AtomicBool::new(true));
    let budget = Budget::new(ended);
    let message = invalid(Upload::validate_within(
        with_topology(long.as_bytes()),
        budget,
    ));
    assert!(message.contains("the request ended"), "{message}");

    let past = std::time::Instant::now();
    let budget = Budget::until(past, Arc::default());
    let message = invalid(Upload::validate_within(
        with_topology(long.as_bytes()),
        budget,
    ));
    assert!(message.contains("longer than"), "{message}");

    // Dropping the guard a check is handed is what sets the flag.
    let flag = Arc::new(AtomicBool::new(false));
    drop(CancelOnDrop(Arc::clone(&flag)));
    assert!(flag.load(Ordering::Relaxed));
}

#[test]
fn characters_pyyaml_refuses_are_named_with_their_line() {
    let message = invalid(Upload::validate(with_topology(
        b"nodes: [r1]\nx: \"\x1b\"\n",
    )));
    assert!(
        message.contains("unacceptable character #x001b at line 2"),
        "{message}"
    );
}

/// On a single-threaded runtime, another task gets to run while a check is
/// under way only if the check left the async thread.
#[tokio::test(flavor = "current_thread")]
async fn the_check_runs_off_the_async_thread() {
    let other = tokio::spawn(async {});
    Upload::check(with_topology(b"nodes: [r1]\n"))
        .await
        .unwrap();
    assert!(other.is_finished(), "the check held the only async thread");
}

#[tokio::test]
async fn writes_the_folder_below_empty_server_owned_folders() {
    let root = tempfile::tempdir().unwrap();
    let raw = Form {
        extra_files: vec![
            file("defaults.yml", b"x"),
            file("labs/basic/configs/init.cfg", b"y"),
        ],
        ..form("labs/basic/t.yml", &[])
    };
    let upload = Upload::validate(raw).unwrap();
    let dir = root.path().join("lab-1");
    let topology = upload.write_into(&dir).await.unwrap();
    let upload_root = dir.join("_/_/_/_/lab-1");
    assert_eq!(topology, upload_root.join("labs/basic/t.yml"));
    assert_eq!(
        std::fs::read(upload_root.join("defaults.yml")).unwrap(),
        b"x"
    );
    assert_eq!(
        std::fs::read(upload_root.join("labs/basic/configs/init.cfg")).unwrap(),
        b"y"
    );
    // Every folder above the upload's root holds only the next one down.
    for folder in upload_root.ancestors().skip(1).take(CONFINEMENT.len() + 1) {
        assert_eq!(
            std::fs::read_dir(folder).unwrap().count(),
            1,
            "{}",
            folder.display()
        );
    }
}
