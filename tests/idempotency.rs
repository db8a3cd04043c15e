//! `Idempotency-Key` with real netlab: a client that lost an answer sends
//! the request again and gets the first one's result — one session, one
//! `netlab up`.

mod common;

use common::{Options, Server, TWO_NODES, Upload};
use reqwest::StatusCode;
use serde_json::Value;

async fn create_with_key(s: &Server, key: &str) -> Value {
    let response = s
        .http
        .post(s.url("/session"))
        .header("Idempotency-Key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

#[tokio::test]
async fn repeated_requests_with_a_key_create_one_session_and_run_netlab_once() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let first = create_with_key(&s, "ci-job-17").await;
    assert_eq!(create_with_key(&s, "ci-job-17").await, first);
    assert_eq!(s.get_json("/debug/health").await["sessions"], 1);
    let id = first["session_id"].as_str().unwrap();

    // The same POST /lab twice at once: the second waits for the first.
    let upload = || Upload::new("t.yml", TWO_NODES).idempotency_key("acquire-1");
    let ((first_code, first_lab), (second_code, second_lab)) =
        tokio::join!(s.acquire(id, upload()), s.acquire(id, upload()));
    assert_eq!((first_code, second_code), (StatusCode::OK, StatusCode::OK));
    assert_eq!(first_lab, second_lab);
    assert_eq!(first_lab["reused"], false);
    // And once more after it finished.
    assert_eq!(s.acquire(id, upload()).await.1, first_lab);
    assert_eq!(s.log().matches("starting lab").count(), 1, "{}", s.log());

    // The OpenAPI document declares the header on both operations, so a
    // client can tell that repeating is safe.
    let openapi = s.get_json("/openapi.json").await;
    for path in ["/session", "/lab"] {
        let params = openapi["paths"][path]["post"]["parameters"]
            .as_array()
            .unwrap();
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
            "{path}: {params:?}"
        );
    }
}
