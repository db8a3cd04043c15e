//! Slow and idle clients cannot hold connections for ever: a request head
//! that does not arrive in time, and a keep-alive connection that stays
//! idle, are both closed (hyper's header read timeout, 10 s).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Options, Server};

/// Reads until the server closes the connection; the bytes read. Gives up
/// (panics) after a minute, far beyond the server's 10 s limit.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(error) => panic!("the server kept the connection open: {error}"),
        }
    }
}

fn connect(s: &Server) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://")).unwrap()
}

#[tokio::test]
async fn a_request_head_that_trickles_in_is_cut_off() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let mut slow = connect(&s);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: lab")
        .unwrap();
    let answer = read_until_closed(&mut slow);
    assert!(
        !answer.starts_with(b"HTTP/1.1 204"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Everyone else is served meanwhile and after.
    assert_eq!(s.get_json("/debug/health").await["status"], "ok");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let mut idle = connect(&s);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: lab\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut idle);
    assert!(
        answer.starts_with(b"HTTP/1.1 204"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// An upload that drips a byte now and then never goes 30 s without data,
/// but is still cut at `--upload-timeout` in all.
#[tokio::test]
async fn an_upload_that_drips_is_cut_at_the_total_deadline() {
    use tokio::io::AsyncWriteExt;
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab).arg("--upload-timeout", "2")).await;
    let (session, _) = s.create_session().await;
    let stream = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /lab HTTP/1.1\r\nHost: lab\r\nX-Session-ID: {session}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n\
         --b\r\nContent-Disposition: form-data; name=\"topology\"; filename=\"t.yml\"\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let drip = tokio::spawn(async move {
        // One byte every half second, until the server stops reading.
        while writer.write_all(b"#").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let answer = common::raw_answer(&mut reader).await;
    drip.abort();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("Upload took longer than 2 s, the server's --upload-timeout"),
        "{answer}"
    );
    // The session is not held busy by it any longer.
    assert_eq!(s.session_status(&session).await.0, reqwest::StatusCode::OK);
}
