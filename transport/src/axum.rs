//! `axum::serve` over the modeled loopback (feature `axum`).

use crate::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Lets `axum::serve(listener, router)` take a lonet listener, as it takes
/// tokio's.
///
/// `accept` cannot fail in axum's trait, so errors are retried exactly as
/// axum's own `tokio::net::TcpListener` impl does: a connection error
/// (`ConnectionRefused`, `ConnectionAborted`, `ConnectionReset`: that
/// connection is gone, the next one is fine) is retried at once, after
/// yielding to the scheduler; any other error is retried after one second,
/// so a persistent error does not spin. axum logs the latter through
/// `tracing`; lonet has no logger and stays silent.
///
/// For `ConnectInfo<SocketAddr>` with
/// `into_make_service_with_connect_info::<SocketAddr>()`, wrap the listener
/// with `axum::serve::ListenerExt::tap_io(|_| {})`: axum provides that impl
/// generically for tapped listeners, while the plain one exists only for
/// tokio's listener (and the orphan rule keeps us from adding ours).
impl ::axum::serve::Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match TcpListener::accept(self).await {
                Ok(accepted) => return accepted,
                Err(e) if is_connection_error(&e) => tokio::task::yield_now().await,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

/// axum's `is_connection_error`: errors that concern one connection only.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
