//! [`TcpListener`]: a listening socket in the modeled namespace.

use super::addr::{resolve, ToSocketAddrs};
use super::TcpStream;
use lonet_runtime::{Netns, Socket};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::{ready, Context, Poll};

/// The backlog `tokio::net::TcpListener::bind` passes to `listen()`; the
/// model caps it at `somaxconn`, as Linux does.
const TOKIO_BACKLOG: u32 = 1024;

/// A TCP listener, with `tokio::net::TcpListener`'s API.
///
/// Binding 127.x.y.z or ::1 opens no OS socket at all: the listener lives in
/// the current namespace's tables, and connections reach it through the model
/// of the loopback path.
///
/// # Examples
/// ```
/// use lonet_transport::net::{TcpListener, TcpStream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// assert!((32768..=60999).contains(&port)); // ip_local_port_range
/// let _client = TcpStream::connect(("127.0.0.1", port)).await?;
/// let (_server, _peer) = listener.accept().await?;
/// # Ok(())
/// # }
/// ```
pub struct TcpListener {
    sock: Socket,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.sock.fmt(f)
    }
}

impl TcpListener {
    /// Binds and listens on `addr` in the current namespace, with tokio's
    /// backlog of 1024 (capped by `somaxconn`).
    ///
    /// Port 0 picks a free port from `ip_local_port_range`. When `addr`
    /// resolves to several addresses, each is tried in order and the last
    /// error is returned, as tokio does. Like tokio (which sets
    /// `SO_REUSEADDR`), a port held only by finished connections can be bound
    /// again at once.
    ///
    /// # Errors
    /// `AddrInUse` when a listener or a connection's local port already holds
    /// the port on an overlapping address; `AddrNotAvailable` for an address
    /// that is not local to the namespace; `InvalidInput` for an argument that
    /// is not an address.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let ns = Netns::current();
        let addrs = resolve(addr).await?;
        let mut last_err = None;
        for addr in addrs {
            match Socket::listen(&ns, addr, TOKIO_BACKLOG) {
                Ok(sock) => return Ok(TcpListener { sock }),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any address",
            )
        }))
    }

    /// Accepts the next connection from the accept queue.
    ///
    /// # Cancel safety
    /// Cancel safe: a connection is taken off the queue only when returned.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls to accept a connection. Only the last task to poll is woken.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let (sock, peer) = ready!(self.sock.poll_accept(cx))?;
        coop.made_progress();
        Poll::Ready(Ok((TcpStream::from_socket(sock), peer)))
    }

    /// The bound address, with the port chosen for port 0.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// `IP_TTL`, inherited by accepted connections.
    pub fn ttl(&self) -> io::Result<u32> {
        self.sock.ttl()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    /// `InvalidInput` outside 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.set_ttl(ttl)
    }

    /// The namespace the listener lives in.
    pub fn netns(&self) -> Netns {
        self.sock.netns()
    }
}
