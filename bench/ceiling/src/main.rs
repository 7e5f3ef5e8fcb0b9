//! The benchmark's ceiling: one axum route that returns a fixed small JSON body.
//!
//! `bench/run` measures it with the same wrk settings as the origin, so every
//! origin throughput figure can be stated as a share of what axum on tokio's
//! multi-threaded runtime serves on the same machine with no application work.
//!
//!     velro-bench-ceiling 127.0.0.1:0
//!
//! It prints `listening on ADDRESS` once the socket is bound and stops on
//! SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::http::header;
use axum::routing::get;
use axum::Router;

/// A body about the size of a short API response, such as a user profile.
const BODY: &str = r#"{"id":"0190c3a4-5b6e-7f00-8a1b-2c3d4e5f6a7b","email":"ceiling@velro.test","display_name":"Ceiling","created_at":"2026-01-01T00:00:00Z"}"#;

#[tokio::main]
async fn main() -> ExitCode {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let address: SocketAddr = match address.parse() {
        Ok(address) => address,
        Err(error) => {
            eprintln!(
                "error: invalid listen address {address:?}: {error}; pass one such as 127.0.0.1:0"
            );
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: binding {address} failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(bound) => println!("listening on {bound}"),
        Err(error) => {
            eprintln!("error: reading the bound address failed: {error}");
            return ExitCode::FAILURE;
        }
    }

    let app = Router::new().route(
        "/",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], BODY) }),
    );
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("error: serving failed: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM (how bench/run stops it) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
