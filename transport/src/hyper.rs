//! hyper and hyper-util over the modeled loopback (feature `hyper`).
//!
//! - Clients: [`Connector`] is a `tower_service::Service<http::Uri>`, the
//!   shape hyper-util's `client::legacy::Client` and tonic's
//!   `Endpoint::connect_with_connector` take. It opens a
//!   [`lonet::net::TcpStream`](crate::net::TcpStream) to the URI's host and
//!   port and hands back a [`Connection`], which implements hyper's
//!   `rt::Read`/`rt::Write` and hyper-util's `Connection` (carrying a
//!   [`ConnectInfo`] with both addresses).
//! - Servers need nothing from this module: a
//!   [`TcpStream`] implements tokio's
//!   `AsyncRead`/`AsyncWrite`, so `hyper_util::rt::TokioIo::new(stream)` goes
//!   straight into hyper's `serve_connection` or hyper-util's
//!   `server::conn::auto::Builder`.
//!
//! # Namespaces
//! [`Connector::new`] captures [`Netns::current()`](crate::Netns::current)
//! and every connection it opens lives in that namespace, whichever task
//! calls it. This matters because hyper-util's client (and tonic's channel)
//! connect from their own pool tasks, which do not run inside the caller's
//! [`Netns::scope`](crate::Netns::scope). Create the connector inside the
//! scope of the namespace the servers live in, or name the namespace with
//! [`Connector::with_netns`].
//!
//! # Examples
//! A hyper server and a hyper-util client, both on lonet:
//! ```
//! use hyper::{body::Incoming, service::service_fn, Request, Response};
//! use hyper_util::{client::legacy::Client, rt::{TokioExecutor, TokioIo}};
//! use lonet_transport::{hyper::Connector, net::TcpListener};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let listener = TcpListener::bind("127.0.0.1:8080").await?;
//! tokio::spawn(async move {
//!     let (stream, _) = listener.accept().await?;
//!     let hello = service_fn(|_req: Request<Incoming>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::from("hello")))
//!     });
//!     hyper::server::conn::http1::Builder::new()
//!         .serve_connection(TokioIo::new(stream), hello)
//!         .await
//!         .map_err(std::io::Error::other)
//! });
//!
//! let client: Client<Connector, String> =
//!     Client::builder(TokioExecutor::new()).build(Connector::new());
//! let res = client.get("http://localhost:8080/".parse()?).await?;
//! assert_eq!(res.status(), 200);
//! # Ok(())
//! # }
//! ```

use crate::net::TcpStream;
use ::http::uri::{Scheme, Uri};
use ::hyper::rt::{Read, ReadBufCursor, Write};
use ::hyper_util::client::legacy::connect::{Connected, Connection as HyperConnection};
use ::hyper_util::rt::TokioIo;
use lonet_runtime::Netns;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A connector for hyper-util's client and tonic's channel: opens
/// [`TcpStream`]s over the modeled loopback.
///
/// Like hyper-util's `HttpConnector`, it takes `http://` URIs, connects to
/// the host and port (80 when the URI has none) and resolves the host as
/// [`TcpStream::connect`] does: IP literals (`127.0.0.1`, `[::1]`),
/// `localhost` (127.0.0.1, then ::1, without DNS), other names through the OS
/// resolver. HTTP/1 and HTTP/2 both run over it; the client picks.
///
/// Connections live in the namespace captured when the connector was made
/// (see [the module docs](self#namespaces)).
///
/// # Errors
/// The future fails with an `io::Error`, which hyper-util's client reports as
/// a connect error (`is_connect()`):
/// - `InvalidInput` for a URI without a host, or whose scheme is not `http`
///   (unless [`enforce_http(false)`](Connector::enforce_http)): lonet does
///   not do TLS;
/// - whatever [`TcpStream::connect`] returns (`ConnectionRefused` when
///   nothing listens there, ...);
/// - `TimedOut` when the [connect timeout](Connector::set_connect_timeout)
///   runs out first.
///
/// # Examples
/// ```
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
/// use lonet_transport::hyper::Connector;
///
/// let mut connector = Connector::new();
/// connector.set_nodelay(true);
/// connector.set_connect_timeout(Some(std::time::Duration::from_secs(1)));
/// let client: Client<Connector, String> =
///     Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
/// ```
#[derive(Clone)]
pub struct Connector {
    ns: Netns,
    enforce_http: bool,
    nodelay: bool,
    connect_timeout: Option<Duration>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("enforce_http", &self.enforce_http)
            .field("nodelay", &self.nodelay)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Connector {
    /// [`Connector::new`].
    fn default() -> Self {
        Connector::new()
    }
}

impl Connector {
    /// A connector for the current namespace
    /// ([`Netns::current()`](crate::Netns::current) at this call): every
    /// connection it opens lives there, whichever task asks for it.
    pub fn new() -> Connector {
        Connector::with_netns(Netns::current())
    }

    /// A connector whose connections live in `ns`.
    pub fn with_netns(ns: Netns) -> Connector {
        Connector {
            ns,
            enforce_http: true,
            nodelay: false,
            connect_timeout: None,
        }
    }

    /// The namespace connections are opened in.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Whether only `http://` URIs are accepted. On by default, as in
    /// hyper-util's `HttpConnector`.
    ///
    /// Turn it off to put a TLS layer on top (a connector that wraps this one
    /// and does the handshake for `https://`): any scheme is then accepted,
    /// with port 443 by default for `https` and 80 otherwise. This connector
    /// itself never speaks TLS.
    pub fn enforce_http(&mut self, enforce: bool) {
        self.enforce_http = enforce;
    }

    /// Sets `TCP_NODELAY` on every connection. Off by default, as in
    /// hyper-util's `HttpConnector`.
    pub fn set_nodelay(&mut self, nodelay: bool) {
        self.nodelay = nodelay;
    }

    /// Bounds how long one connect may take; `None` (the default) waits as
    /// long as [`TcpStream::connect`] does (SYN retries, `tcp_syn_retries`).
    ///
    /// # Panics
    /// With a timeout set, connecting uses tokio's timer, which panics when
    /// polled on a runtime built without it (`enable_time`), as hyper-util's
    /// `HttpConnector` does.
    pub fn set_connect_timeout(&mut self, timeout: Option<Duration>) {
        self.connect_timeout = timeout;
    }

    async fn connect(self, dst: Uri) -> io::Result<Connection> {
        let (host, port) = host_port(&dst, self.enforce_http)?;
        let connect = self.ns.scope(TcpStream::connect((host.as_str(), port)));
        let stream = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connect).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("lonet::hyper::Connector: connect to {dst} timed out after {limit:?}"),
                )
            })??,
            None => connect.await?,
        };
        stream.set_nodelay(self.nodelay)?;
        Ok(Connection::new(stream))
    }
}

/// The host (IPv6 brackets removed) and port a URI names, as hyper-util's
/// `HttpConnector` reads them.
fn host_port(dst: &Uri, enforce_http: bool) -> io::Result<(String, u16)> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    match dst.scheme() {
        Some(s) if *s == Scheme::HTTP => {}
        Some(_) if !enforce_http => {}
        Some(s) => {
            return Err(invalid(format!(
                "lonet::hyper::Connector: only http:// URIs are supported, got {s}:// in {dst} \
                 (lonet does not do TLS)"
            )))
        }
        None => {
            return Err(invalid(format!(
                "lonet::hyper::Connector: URI has no scheme: {dst}"
            )))
        }
    }
    let host = match dst.host() {
        Some(h) if !h.is_empty() => h,
        _ => {
            return Err(invalid(format!(
                "lonet::hyper::Connector: URI has no host: {dst}"
            )))
        }
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = match dst.port_u16() {
        Some(port) => port,
        None if dst.scheme() == Some(&Scheme::HTTPS) => 443,
        None => 80,
    };
    Ok((host.to_owned(), port))
}

impl tower_service::Service<Uri> for Connector {
    type Response = Connection;
    type Error = io::Error;
    type Future = Connecting;

    /// Always ready: each call opens its own connection.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        Connecting {
            fut: Box::pin(self.clone().connect(dst)),
        }
    }
}

/// The future [`Connector`] returns: a [`Connection`], once the handshake is
/// done. `Send` and `Unpin`.
///
/// Not cancel safe: dropping it closes the connecting socket.
#[must_use = "futures do nothing unless polled"]
pub struct Connecting {
    fut: Pin<Box<dyn Future<Output = io::Result<Connection>> + Send>>,
}

impl fmt::Debug for Connecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connecting").finish_non_exhaustive()
    }
}

impl Future for Connecting {
    type Output = io::Result<Connection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// A connection [`Connector`] opened: a [`TcpStream`] with hyper's
/// `rt::Read`/`rt::Write`, and hyper-util's `Connection`.
///
/// `connected()` carries a [`ConnectInfo`] with both addresses; hyper-util's
/// client puts it in every response's extensions.
pub struct Connection {
    io: TokioIo<TcpStream>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Connection").field(self.io.inner()).finish()
    }
}

impl Connection {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> Connection {
        Connection {
            io: TokioIo::new(stream),
        }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &TcpStream {
        self.io.inner()
    }

    /// The stream underneath, mutably.
    pub fn get_mut(&mut self) -> &mut TcpStream {
        self.io.inner_mut()
    }

    /// The stream back.
    pub fn into_inner(self) -> TcpStream {
        self.io.into_inner()
    }
}

impl From<TcpStream> for Connection {
    fn from(stream: TcpStream) -> Connection {
        Connection::new(stream)
    }
}

impl Read for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl HyperConnection for Connection {
    fn connected(&self) -> Connected {
        self.io.inner().connected()
    }
}

/// `connected()` with a [`ConnectInfo`], as hyper-util's own `TcpStream`
/// gives its `HttpInfo`; so `TokioIo<lonet::net::TcpStream>` is a
/// hyper-util `Connection` too.
impl HyperConnection for TcpStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        match (self.local_addr(), self.peer_addr()) {
            (Ok(local_addr), Ok(remote_addr)) => connected.extra(ConnectInfo {
                local_addr,
                remote_addr,
            }),
            _ => connected,
        }
    }
}

/// Both ends of a client connection, as hyper-util's `HttpInfo`: found in
/// the extensions of every response hyper-util's client returns over a
/// [`Connector`].
///
/// # Examples
/// ```no_run
/// # async fn demo(client: hyper_util::client::legacy::Client<lonet_transport::hyper::Connector, String>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// let res = client.get("http://127.0.0.1:8080/".parse()?).await?;
/// if let Some(info) = res.extensions().get::<lonet_transport::hyper::ConnectInfo>() {
///     println!("{} -> {}", info.local_addr, info.remote_addr);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectInfo {
    /// The client's end (`getsockname`).
    pub local_addr: SocketAddr,
    /// The server's end (`getpeername`).
    pub remote_addr: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(uri: &str, enforce: bool) -> io::Result<(String, u16)> {
        host_port(&uri.parse().expect("test URI"), enforce)
    }

    #[test]
    fn host_port_reads_uris_as_http_connector_does() {
        assert_eq!(
            hp("http://127.0.0.1/", true).unwrap(),
            ("127.0.0.1".into(), 80)
        );
        assert_eq!(
            hp("http://localhost:8080/x", true).unwrap(),
            ("localhost".into(), 8080)
        );
        assert_eq!(hp("http://[::1]:9/", true).unwrap(), ("::1".into(), 9));
        assert_eq!(
            hp("https://a.localhost/", false).unwrap(),
            ("a.localhost".into(), 443)
        );
        for bad in [
            "https://127.0.0.1/",
            "ftp://127.0.0.1/",
            "/path",
            "127.0.0.1:80",
        ] {
            let e = hp(bad, true).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }
}
