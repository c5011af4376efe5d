//! Serving HTTP/1.1 connections, with the limits a daemon beside a patient needs against a
//! misbehaving or hostile client on its network:
//!
//! - at most [`MAX_CONNECTIONS`] connections at once; one more is answered `503` with a JSON
//!   error and closed, so clients cannot take the file descriptors the device drivers and the
//!   recorder need;
//! - a request head (request line and headers) must arrive whole within
//!   [`HEADER_READ_TIMEOUT`] of the connection opening or of the previous response (slow-loris,
//!   and idle connections, are closed), and may not exceed [`MAX_HEAD_BYTES`] (`431`);
//! - on shutdown, idle connections close at once and requests in flight get
//!   [`SHUTDOWN_GRACE`] to finish; an event stream never finishes, so it is closed then.
//!
//! `axum::serve` has none of these (no timer for hyper's header-read timeout, no connection
//! limit, and a graceful shutdown that waits for every event stream forever), so connections
//! are served here with hyper's HTTP/1 server directly, through the same axum `Router`.
//! HTTP/2 is not served: panels and tools speak HTTP/1.1 to a plain-HTTP daemon.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Connections served at once. Each costs a file descriptor and some buffer; 512 leaves room
/// under the common 1024-descriptor limit for devices, the database and the forwarder.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a client has to send a whole request head, from the connection's start or the end
/// of the previous response.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A connection's read and write buffers stay under this.
const MAX_BUFFER_BYTES: usize = 64 * 1024;
/// How long requests in flight may take to finish once the daemon stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long a refused connection is given to take its 503.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// What a connection over the limit is told before it is closed.
const TOO_MANY_CONNECTIONS: &str = "HTTP/1.1 503 Service Unavailable\r\n\
    content-type: application/json\r\n\
    retry-after: 5\r\n\
    connection: close\r\n\
    content-length: 80\r\n\r\n\
    {\"error\":\"too many connections to this daemon (512 at once); try again shortly\"}";

/// Serves `app` on `listener` until `shutdown` completes, then stops as described above.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stopping, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let app = app.clone();
                        let stop = stop.clone();
                        connections.spawn(async move {
                            serve_connection(low_latency(stream), app, stop).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        connections.spawn(refuse(stream));
                    }
                },
                Err(error) => accept_failed(error).await,
            },
            // Reap finished connections so the set stays as small as the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::info!(
            open = connections.len(),
            "closing the connections still open (event streams)"
        );
        connections.shutdown().await;
    }
}

async fn serve_connection(stream: TcpStream, app: Router, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(app);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_BUFFER_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let stopped = async move {
        // (The guard `wait_for` returns is not `Send`: drop it here.)
        let _ = stop.wait_for(|stopping| *stopping).await.is_ok();
    };
    tokio::select! {
        // A client's protocol error or a timeout ends its connection only.
        _ = connection.as_mut() => {}
        () = stopped => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Tells a connection over the limit so (503, JSON) and closes it, without reading it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(TOO_MANY_CONNECTIONS.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// A failed accept: nothing to do for a connection the client already gave up; otherwise
/// (out of file descriptors, most likely) wait a moment rather than spin.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("cannot accept an HTTP connection: {error}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Sends small writes at once: an alarm event is a few hundred bytes, and without `TCP_NODELAY`
/// it can wait for the client's delayed acknowledgement (up to 40 ms on Linux), which the soak
/// run measured as a 41 ms p99 at 50 panels (5.3 ms with it).
fn low_latency(stream: tokio::net::TcpStream) -> tokio::net::TcpStream {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {error}");
    }
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_http_response_with_a_json_error() {
        let (head, body) = TOO_MANY_CONNECTIONS.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains(&MAX_CONNECTIONS.to_string())
        );
    }
}
