//! The accept loop: serves a router over HTTP/1.1 with hyper itself, because `axum::serve`
//! sets no header read timeout, so a client trickling its headers (slowloris) or opening a
//! connection and sending nothing held it for as long as it liked. Here hyper closes a
//! connection whose request head has not arrived within `header_read_timeout` (the first
//! request's and every later one's on a kept-alive connection). Each request carries its
//! peer's address (`ConnectInfo<SocketAddr>`). On shutdown it stops accepting, lets each
//! connection finish the request it is serving, and returns when all have closed, as
//! `axum::serve`'s graceful shutdown did. WebSockets leave the loop once upgraded.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown` completes, then drains (see the module).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    // Connections watch `stop` to begin their graceful shutdown, and each holds a `done`
    // receiver until it has closed, so `closed()` tells when the last one is gone.
    let (stop, stopping) = watch::channel(false);
    let (done, done_watch) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if !is_per_connection(&error) {
                        // Out of file descriptors, most likely: give the others time to close.
                        tracing::warn!(%error, "cannot accept connections");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        ));
        let mut stopping = stopping.clone();
        let done = done_watch.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let stop = async {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            let finished = tokio::select! {
                result = connection.as_mut() => Some(result),
                () = stop => None,
            };
            let result = match finished {
                Some(result) => result,
                None => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                // A timed-out head, a reset, a malformed request: the client's doing.
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(done_watch);
    done.closed().await;
}

/// Errors of one connection that was being accepted, not of the listener.
fn is_per_connection(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
