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
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::ReadBuf;

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
        Ok(Arc::new(QuinnSocket(net::UdpSocket::from_std(t)?)))
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// lonet's [`net::UdpSocket`] as quinn's [`AsyncUdpSocket`]: a transmit of
/// several segments is sent as one datagram per segment; a receive fills
/// as many of quinn's buffers as datagrams are queued; no ECN.
pub struct QuinnSocket(pub net::UdpSocket);

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

    /// A transmit of several segments (quinn's GSO batch) goes as one
    /// datagram per segment, as the kernel's UDP GSO cuts it.
    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        match transmit.segment_size {
            Some(size) if size > 0 && size < transmit.contents.len() => {
                for seg in transmit.contents.chunks(size) {
                    self.0.try_send_to(seg, transmit.destination)?;
                }
                Ok(())
            }
            _ => self
                .0
                .try_send_to(transmit.contents, transmit.destination)
                .map(|_| ()),
        }
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
            let mut rb = ReadBuf::new(buf);
            let addr = if n == 0 {
                ready!(self.0.poll_recv_from(cx, &mut rb))?
            } else {
                let filled = match self.0.try_recv_from(rb.initialize_unfilled()) {
                    Ok((len, addr)) => (len, addr),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                rb.advance(filled.0);
                filled.1
            };
            let len = rb.filled().len();
            m.addr = addr;
            m.len = len;
            m.stride = len;
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

    /// Segments per transmit: as many as Linux's UDP GSO takes in a batch
    /// quinn makes (`UDP_MAX_SEGMENTS` is 64; quinn asks for at most this).
    fn max_transmit_segments(&self) -> usize {
        64
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
        Arc::new(QuinnSocket(socket)),
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
