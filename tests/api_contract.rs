//! The HTTP contract, route by route, against the real binary and real
//! netlab — including every case of the original service's own test list.
//! Each test runs twice: `open::` as the contract has it, and `with_auth::`
//! against a server with bearer-token auth on, whose client sends a token
//! (auth changes nothing for a session's own token).

mod common;

use common::{Options, Server, TWO_NODES, Upload};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn server(auth: bool) -> Option<Server> {
    let netlab = common::netlab()?;
    let options = Options::new(&netlab);
    let options = if auth {
        options
            .tokens("contract:c0ntract-t0ken-0123456,other:0ther-t0ken-0123456")
            .bearer("c0ntract-t0ken-0123456")
    } else {
        options
    };
    Some(Server::start(options).await)
}

/// The server for the mode of the module the test is in (`AUTH`).
macro_rules! server {
    () => {
        match server(AUTH).await {
            Some(server) => server,
            None => return,
        }
    };
}

/// Every test, once in `open` and once in `with_auth`.
macro_rules! in_both_modes {
    ($($test:item)*) => {
        mod open {
            use super::*;
            const AUTH: bool = false;
            $($test)*
        }
        mod with_auth {
            use super::*;
            const AUTH: bool = true;
            $($test)*
        }
    };
}

in_both_modes! {

#[tokio::test]
async fn session_queue_follows_the_original_tests_1_to_9() {
    let s = server!();
    // 7. empty queue: no active session.
    let response = s.http.get(s.url("/active-session")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"],
        "No active session"
    );

    // 1. first session is active at position 0; 2. the second waits at 1.
    let (first, position) = s.create_session().await;
    assert_eq!(position, 0);
    assert_eq!(
        s.session_status(&first).await.1,
        serde_json::json!({"status": "active", "position": 0, "declared_labs": []})
    );
    let (second, position) = s.create_session().await;
    assert_eq!(position, 1);
    assert_eq!(
        s.session_status(&second).await.1,
        serde_json::json!({"status": "waiting", "position": 1, "declared_labs": []})
    );
    let (third, _) = s.create_session().await;

    // 6 and 8. /active-session names the head.
    let active = s.get_json("/active-session").await;
    assert_eq!(
        active,
        serde_json::json!({"session_id": first, "status": "active", "position": 0})
    );

    // 4. heartbeat 204, for waiting and active sessions alike.
    for id in [&first, &second] {
        assert_eq!(s.heartbeat(id).await, StatusCode::NO_CONTENT);
    }

    // 3 and 9. deleting the active session promotes the next.
    assert_eq!(s.end_session(&first).await, StatusCode::NO_CONTENT);
    s.wait_until_active(&second).await;
    assert_eq!(s.session_status(&second).await.1["position"], 0);
    assert_eq!(
        s.session_status(&third).await.1,
        serde_json::json!({"status": "waiting", "position": 1, "declared_labs": []})
    );
    let active = s.get_json("/active-session").await;
    assert_eq!(active["session_id"], second);

    // 5. unknown ids are 404 everywhere.
    let ghost = "00000000-0000-4000-8000-000000000000";
    for response in [
        s.http
            .get(s.url(&format!("/session/{ghost}")))
            .send()
            .await
            .unwrap(),
        s.http
            .get(s.url("/session/not-a-uuid"))
            .send()
            .await
            .unwrap(),
        s.http
            .delete(s.url(&format!("/session/{ghost}")))
            .send()
            .await
            .unwrap(),
        s.http
            .post(s.url("/session/heartbeat"))
            .header("X-Session-ID", ghost)
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.json::<Value>().await.unwrap()["detail"],
            "Session not found"
        );
    }
    assert_eq!(
        s.end_session(&first).await,
        StatusCode::NOT_FOUND,
        "a session ends once"
    );
}

#[tokio::test]
async fn heartbeat_without_header_is_422() {
    let s = server!();
    let response = s
        .http
        .post(s.url("/session/heartbeat"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("X-Session-ID")
    );
}

#[tokio::test]
async fn lab_routes_check_header_then_session_then_activity() {
    let s = server!();
    let (active, _) = s.create_session().await;
    let (waiting, _) = s.create_session().await;
    let ghost = "00000000-0000-4000-8000-000000000000";
    for (method, path) in [
        (Method::GET, "/lab"),
        (Method::POST, "/lab/release"),
        (Method::DELETE, "/lab"),
        (Method::GET, "/lab/devices"),
        (Method::POST, "/lab"),
    ] {
        let no_header = s
            .http
            .request(method.clone(), s.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            no_header.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}"
        );
        let (status, body) = s.lab_call(method.clone(), path, ghost).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (StatusCode::NOT_FOUND, Some("Session not found"))
        );
        // 13. a WAITING session is locked out.
        let (status, body) = s.lab_call(method.clone(), path, &waiting).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (StatusCode::LOCKED, Some("Session is not active"))
        );
    }
    // The gate comes before form fields: an active session without a form is 422.
    let (status, _) = s.lab_call(Method::POST, "/lab", &active).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = s
        .acquire(&waiting, Upload::new("topology.txt", TWO_NODES))
        .await;
    assert_eq!(
        status,
        StatusCode::LOCKED,
        "session check precedes the extension check: {body}"
    );
}

#[tokio::test]
async fn lab_lifecycle_follows_the_original_tests_10_to_17() {
    let s = server!();
    let (id, _) = s.create_session().await;

    // 17. release with no lab.
    let (status, body) = s.lab_call(Method::POST, "/lab/release", &id).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("No lab running"))
    );
    let (status, _) = s.lab_call(Method::GET, "/lab/devices", &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // DELETE with nothing running: 204.
    let (status, _) = s.lab_call(Method::DELETE, "/lab", &id).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // 10. acquire, reuse=true: a fresh lab with devices.
    let (status, body) = s
        .acquire(&id, Upload::new("topology.yml", TWO_NODES).reuse(true))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reused"], false);
    let names: Vec<&str> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r1", "r2"]);
    let (status, lab) = s.lab_call(Method::GET, "/lab", &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lab["running"], true);
    assert_eq!(lab["topology"], "topology.yml");
    assert_eq!(lab["ref_count"], 1);
    assert!(
        lab["netlab_status"]
            .as_str()
            .unwrap()
            .contains("\"default\""),
        "{lab}"
    );

    // 16. devices carry what consumers read.
    let (status, devices) = s.lab_call(Method::GET, "/lab/devices", &id).await;
    assert_eq!(status, StatusCode::OK);
    for device in devices.as_array().unwrap() {
        let raw = &device["raw"];
        assert!(raw["mgmt"]["ipv4"].is_string(), "{device}");
        assert_eq!(raw["ansible_network_os"], "eos");
        assert_eq!(raw["ansible_user"], "vagrant");
    }
    assert_eq!(devices, body["devices"]);

    // 11. held twice, a different topology with reuse=false is busy.
    let (status, again) = s.acquire(&id, Upload::new("topology.yml", TWO_NODES)).await;
    assert_eq!(
        (status, &again["reused"]),
        (StatusCode::OK, &Value::Bool(true))
    );
    let other = "defaults.device: eos\nnodes: [x1]\n";
    let (status, body) = s
        .acquire(&id, Upload::new("other.yml", other).reuse(false))
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::LOCKED, Some("Lab currently busy"))
    );

    // 14. force=false while held: 409; 15. force=true: 202.
    let (status, body) = s.lab_call(Method::DELETE, "/lab?force=false", &id).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::CONFLICT, Some("Lab still in use"))
    );
    let (status, _) = s.lab_call(Method::DELETE, "/lab?force=true", &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, lab) = s.lab_call(Method::GET, "/lab", &id).await;
    assert_eq!(lab["running"], false);
    assert!(
        lab["netlab_status"]
            .as_str()
            .unwrap()
            .contains("No netlab-managed labs"),
        "{lab}"
    );
    assert!(s.dirs.lab_dirs().is_empty());
    let (status, _) = s.lab_call(Method::DELETE, "/lab?force=maybe", &id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn topology_extension_rules_match_the_original() {
    let s = server!();
    let (id, _) = s.create_session().await;
    // 12. and `.json`: 400 before anything runs.
    for name in ["topology.txt", "topology.json"] {
        let (status, body) = s.acquire(&id, Upload::new(name, TWO_NODES)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("Topology must be a"),
            "{body}"
        );
    }
    for name in ["a.yml", "b.yaml", "c.YML", "d.YAML"] {
        let (status, body) = s.acquire(&id, Upload::new(name, TWO_NODES)).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        s.lab_call(Method::POST, "/lab/release", &id).await;
    }
}

#[tokio::test]
async fn extra_files_are_stored_next_to_the_topology() {
    // 18. `configs/init.cfg` and `templates/template.j2` keep their paths;
    // netlab runs where they are, so a topology-defaults.yml beside the
    // topology decides the device type.
    let s = server!();
    let (id, _) = s.create_session().await;
    let upload = Upload::new("topology.yml", "nodes: [r1, r2]\n")
        .extra("configs/init.cfg", "hostname r1\n")
        .extra("templates/template.j2", "{{ hostname }}\n")
        .extra("topology-defaults.yml", "device: vyos\n");
    let (status, body) = s.acquire(&id, upload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["devices"][0]["raw"]["ansible_network_os"], "vyos");

    let roots = s.dirs.upload_roots();
    assert_eq!(roots.len(), 1);
    let dir = &roots[0];
    assert_eq!(
        std::fs::read_to_string(dir.join("configs/init.cfg")).unwrap(),
        "hostname r1\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("templates/template.j2")).unwrap(),
        "{{ hostname }}\n"
    );
    assert!(dir.join("topology.yml").is_file());
}

#[tokio::test]
async fn health_routes_and_api_docs() {
    let s = server!();
    let response = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());

    s.create_session().await;
    let health: Value = s
        .http
        .get(s.url("/debug/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["timestamp"].as_f64().unwrap() > 1.7e9);
    assert!(health["uptime"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        (health["sessions"].as_u64(), health["queue_length"].as_u64()),
        (Some(1), Some(1))
    );

    let spec: Value = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/session",
        "/session/{session_id}",
        "/active-session",
        "/session/heartbeat",
        "/lab",
        "/lab/release",
        "/lab/devices",
        "/healthz",
        "/debug/health",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // 401 is documented exactly where the server can answer it.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let documented = operation["responses"].get("401").is_some();
            assert_eq!(documented, AUTH && path != "/healthz", "401 of {method} {path}");
        }
    }
    // The Idempotency-Key's character rule is in the schema.
    for (path, method) in [("/session", "post"), ("/lab", "post")] {
        let parameters = spec["paths"][path][method]["parameters"].as_array().unwrap();
        let key = parameters
            .iter()
            .find(|parameter| parameter["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("{method} {path}: no Idempotency-Key"));
        assert_eq!(key["schema"]["pattern"], "^[!-~]+$", "{method} {path}");
    }
    for schema in [
        "CreateSessionResponseDto",
        "SessionStatusResponseDto",
        "ActiveSessionResponseDto",
        "DeviceInfoDto",
        "AcquireResponseDto",
        "LabStatusDto",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
    let docs = s.http.get(s.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "Swagger UI is served locally"
    );

    let missing = s.http.get(s.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["detail"],
        "Not Found"
    );
}

#[tokio::test]
async fn redoc_is_served_from_the_binary() {
    let s = server!();
    let page = s.http.get(s.url("/redoc")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = page.text().await.unwrap();
    assert!(
        page.contains(r#"<redoc spec-url="/openapi.json">"#),
        "{page}"
    );
    assert!(
        !page.contains("http"),
        "nothing is loaded from elsewhere: {page}"
    );

    let script = s
        .http
        .get(s.url("/redoc/redoc.standalone.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    let script = script.text().await.unwrap();
    assert!(script.len() > 500_000, "the whole ReDoc bundle");
    assert!(script.contains("redoc"), "ReDoc's code");
}

#[tokio::test]
async fn long_poll_answers_when_the_position_changes() {
    let s = server!();
    let (first, _) = s.create_session().await;
    let (second, _) = s.create_session().await;
    let url = s.url(&format!("/session/{second}?wait=30"));
    let poll = tokio::spawn({
        let http = s.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    // Ending the head is what the poll waits for. It answers at the first
    // change: the hand-over (waiting at 0 while the slot is handed back) or,
    // when that was quicker, the promotion itself.
    assert_eq!(s.end_session(&first).await, StatusCode::NO_CONTENT);
    let answer = poll.await.unwrap();
    let handing_over = serde_json::json!({"status": "waiting", "position": 0, "declared_labs": []});
    let active = serde_json::json!({"status": "active", "position": 0, "declared_labs": []});
    assert!(answer == handing_over || answer == active, "{answer}");
    let (_, now) = s.session_status(&second).await;
    assert_eq!(now, active, "promoted once the slot was handed back");

    let response = s
        .http
        .get(s.url(&format!("/session/{second}?wait=soon")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

}
