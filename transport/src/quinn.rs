//! quinn over lonet's UDP: a [`quinn::Runtime`] whose sockets are
//! [`net::UdpSocket`]s, so a QUIC client and server in one process talk
//! through the modeled loopback (faults, captures and counters included).
//!
//! ```no_run
//! # async fn demo(server_config: quinn::ServerConfig) -> std::io::Result<()> {
//! let server = lonet_transport::quinn::server(server_config, "127.0.0.1:4433").await?;
//! let client = lonet_transport::quinn::client("127.0.0.1:0").await?;
//! # Ok(())
//! # }
//! ```

use crate::net::{self, ToSocketAddrs};
use lonet_runtime::Netns;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{
    AsyncTimer, AsyncUdpSocket, Endpoint, EndpointConfig, Runtime, ServerConfig, UdpPoller,
};
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// quinn's [`Runtime`] for lonet: tokio's timers and tasks, and sockets
/// that are lonet's [`net::UdpSocket`]s. The endpoint's driver task runs in
/// the namespace that was current when the runtime was made.
#[derive(Debug, Clone)]
pub struct LonetRuntime {
    ns: Netns,
}

impl LonetRuntime {
    /// A runtime for the current namespace ([`Netns::current`]).
    pub fn new() -> LonetRuntime {
        LonetRuntime {
            ns: Netns::current(),
        }
    }

    /// A runtime for `ns`.
    pub fn with_netns(ns: Netns) -> LonetRuntime {
        LonetRuntime { ns }
    }
}

impl Default for LonetRuntime {
    fn default() -> Self {
        LonetRuntime::new()
    }
}

/// A tokio sleep as quinn's timer.
#[derive(Debug)]
struct Timer(Pin<Box<tokio::time::Sleep>>);

impl AsyncTimer for Timer {
    fn reset(mut self: Pin<&mut Self>, i: Instant) {
        tokio::time::Sleep::reset(self.0.as_mut(), i.into())
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Future::poll(self.0.as_mut(), cx)
    }
}

impl Runtime for LonetRuntime {
    fn new_timer(&self, i: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer(Box::pin(tokio::time::sleep_until(i.into()))))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        tokio::spawn(self.ns.clone().scope(future));
    }

    /// A `std` socket is a kernel socket: it stays one (lonet's OS path).
    fn wrap_udp_socket(&self, t: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        t.set_nonblocking(true)?;
        Ok(Arc::new(QuinnSocket::new(net::UdpSocket::from_std(t)?)?))
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// lonet's [`net::UdpSocket`] as quinn's [`AsyncUdpSocket`], with what
/// quinn-udp uses on Linux: a transmit of several segments (quinn's GSO
/// batch) is one `UDP_SEGMENT` send, which the modeled `lo` carries whole,
/// and a socket made with [`QuinnSocket::new`] has `UDP_GRO`, so it
/// receives that batch whole, quinn told the segment size
/// ([`RecvMeta::stride`]); a receive fills as many of quinn's buffers as
/// datagrams are queued (`recvmmsg`). No ECN. Through an OS half, segments
/// go one datagram each.
pub struct QuinnSocket(pub net::UdpSocket);

impl QuinnSocket {
    /// Wraps `socket` with `UDP_GRO` set on its model half, as quinn-udp
    /// sets it on its sockets.
    ///
    /// # Errors
    /// None in the model; the `Result` is the socket option's.
    pub fn new(socket: net::UdpSocket) -> io::Result<QuinnSocket> {
        socket.set_gro(true)?;
        Ok(QuinnSocket(socket))
    }
}

impl fmt::Debug for QuinnSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QuinnSocket").field(&self.0).finish()
    }
}

/// Write readiness for one waiting task.
#[derive(Debug)]
struct Poller(Arc<QuinnSocket>);

impl UdpPoller for Poller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0 .0.poll_send_ready(cx)
    }
}

impl AsyncUdpSocket for QuinnSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Poller(self))
    }

    /// A transmit of several segments (quinn's GSO batch) is one send with
    /// a segment size (`UDP_SEGMENT`).
    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.0.try_send_segments(
            transmit.contents,
            transmit.destination,
            transmit.segment_size.unwrap_or(0),
        )
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        // The first datagram waits; the ones already queued behind it fill
        // the rest of the batch (recvmmsg), without waiting.
        let mut n = 0;
        for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()) {
            let (len, addr, stride) = match self.0.poll_recv_segments(cx, buf, n == 0) {
                Poll::Ready(Ok(got)) => got,
                Poll::Ready(Err(e)) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            m.addr = addr;
            m.len = len;
            m.stride = stride;
            m.ecn = None;
            m.dst_ip = None;
            n += 1;
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn may_fragment(&self) -> bool {
        false
    }

    /// Segments per transmit: Linux's `UDP_MAX_SEGMENTS` (128 since 6.11;
    /// quinn asks for at most 10).
    fn max_transmit_segments(&self) -> usize {
        lonet_runtime::unstable::UdpSocket::MAX_SEGMENTS
    }

    /// Segments per receive: `UDP_GRO_CNT_MAX` (64) through the model,
    /// as quinn-udp reports on Linux (quinn sizes its buffers by it); 1
    /// for a socket with an OS half only.
    fn max_receive_segments(&self) -> usize {
        self.0.gro_segments()
    }
}

/// A quinn [`Endpoint`] on `socket`, driven by a [`LonetRuntime`] of the
/// current namespace.
///
/// # Errors
/// What quinn's `Endpoint::new_with_abstract_socket` gives.
pub fn endpoint(
    config: EndpointConfig,
    server_config: Option<ServerConfig>,
    socket: net::UdpSocket,
) -> io::Result<Endpoint> {
    Endpoint::new_with_abstract_socket(
        config,
        server_config,
        Arc::new(QuinnSocket::new(socket)?),
        Arc::new(LonetRuntime::new()),
    )
}

/// A client endpoint bound to `addr` (`quinn::Endpoint::client` over
/// lonet); set its `ClientConfig` with `set_default_client_config` or pass
/// one to `connect_with`.
///
/// # Errors
/// Binding the socket, as [`net::UdpSocket::bind`].
pub async fn client<A: ToSocketAddrs>(addr: A) -> io::Result<Endpoint> {
    let socket = net::UdpSocket::bind(addr).await?;
    endpoint(EndpointConfig::default(), None, socket)
}

/// A server endpoint bound to `addr` (`quinn::Endpoint::server` over
/// lonet).
///
/// # Errors
/// Binding the socket, as [`net::UdpSocket::bind`].
pub async fn server<A: ToSocketAddrs>(config: ServerConfig, addr: A) -> io::Result<Endpoint> {
    let socket = net::UdpSocket::bind(addr).await?;
    endpoint(EndpointConfig::default(), Some(config), socket)
}
