//! The P1 ceiling: what this machine's axum/tokio can answer at best. Every
//! request, whatever its method or path, gets the same small JSON body, so the
//! figure is the HTTP stack alone — no state, no serialisation.
//!
//! `bench-ceiling <port>` listens on 127.0.0.1 (port 0: any free one) and
//! prints the bound port on stdout, then serves until killed.

use std::io::Write;

use axum::Router;
use axum::http::header::CONTENT_TYPE;

const BODY: &str = r#"{"status":"active","position":0}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "0".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", listener.local_addr()?.port())?;
    stdout.flush()?;
    let app = Router::new().fallback(|| async { ([(CONTENT_TYPE, "application/json")], BODY) });
    axum::serve(listener, app).await
}
