//! [`TcpListener`]: a listening socket in the modeled namespace.

use super::addr::{resolve, ToSocketAddrs};
use super::TcpStream;
use lonet_runtime::unstable::{is_local, Socket};
use lonet_runtime::Netns;
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
    /// The listener in the namespace's tables (connections over the model).
    model: Option<Socket>,
    /// The OS listener (real connections), for wildcard and non-loopback
    /// addresses, or every address with the kernel switch on.
    os: Option<tokio::net::TcpListener>,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("model", &self.model)
            .field("os", &self.os)
            .finish()
    }
}

/// How many times a wildcard bind to port 0 looks for a port free in both
/// the OS and the model.
const DUAL_BIND_TRIES: usize = 16;

impl TcpListener {
    /// Binds and listens on `addr` in the current namespace, with tokio's
    /// backlog of 1024 (capped by `somaxconn`).
    ///
    /// Where the listener lives follows the address, as the kernel's local
    /// table would route to it:
    ///
    /// | address | listener |
    /// |---|---|
    /// | 127.0.0.0/8, ::1, addresses added with `Netns::add_local_addr` | the model only: no OS socket |
    /// | `0.0.0.0`, `[::]` | the model and an OS listener on the same port; `accept` yields from both |
    /// | another address (one of the machine's own) | an OS listener |
    /// | any, with the namespace's kernel switch on | an OS listener |
    ///
    /// Port 0 picks a free port (from `ip_local_port_range` in the model; for
    /// a wildcard, one port free for both halves). When `addr` resolves to
    /// several addresses, each is tried in order and the last error is
    /// returned, as tokio does. Like tokio (which sets `SO_REUSEADDR`), a port
    /// held only by finished connections can be bound again at once.
    ///
    /// # Errors
    /// `AddrInUse` when a listener or a connection's local port already holds
    /// the port on an overlapping address; `AddrNotAvailable` for an address
    /// that is neither local to the namespace nor the machine's; OS errors as
    /// the OS gives them; `InvalidInput` for an argument that is not an
    /// address.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let ns = Netns::current();
        let addrs = resolve(addr).await?;
        let mut last_err = None;
        for addr in addrs {
            match Self::bind_addr(&ns, addr).await {
                Ok(l) => return Ok(l),
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

    async fn bind_addr(ns: &Netns, addr: SocketAddr) -> io::Result<TcpListener> {
        let model_only = |model| TcpListener {
            model: Some(model),
            os: None,
        };
        if ns.kernel_loopback() {
            let os = tokio::net::TcpListener::bind(addr).await?;
            return Ok(TcpListener {
                model: None,
                os: Some(os),
            });
        }
        if addr.ip().is_unspecified() {
            return Self::bind_dual(ns, addr).await;
        }
        if is_local(ns, addr.ip()) {
            return Ok(model_only(Socket::listen(ns, addr, TOKIO_BACKLOG)?));
        }
        // Not local to the namespace: one of the machine's own addresses, or
        // the OS says why not.
        let os = tokio::net::TcpListener::bind(addr).await?;
        Ok(TcpListener {
            model: None,
            os: Some(os),
        })
    }

    /// 0.0.0.0 / [::]: the model and the OS on one port.
    async fn bind_dual(ns: &Netns, addr: SocketAddr) -> io::Result<TcpListener> {
        let mut last_err = None;
        for _ in 0..DUAL_BIND_TRIES {
            let os = tokio::net::TcpListener::bind(addr).await?;
            let port = os.local_addr()?.port();
            match Socket::listen(ns, SocketAddr::new(addr.ip(), port), TOKIO_BACKLOG) {
                Ok(model) => {
                    return Ok(TcpListener {
                        model: Some(model),
                        os: Some(os),
                    })
                }
                // The OS chose a port the model has in use: try another.
                Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                    last_err = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
    }

    /// Accepts the next connection, from the model or from the OS.
    ///
    /// # Cancel safety
    /// Cancel safe: a connection is taken off a queue only when returned.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls to accept a connection. Only the last task to poll is woken.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        if let Some(model) = &self.model {
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            if let Poll::Ready(r) = model.poll_accept(cx) {
                coop.made_progress();
                let (sock, peer) = r?;
                return Poll::Ready(Ok((TcpStream::from_socket(sock), peer)));
            }
        }
        if let Some(os) = &self.os {
            let (s, peer) = ready!(os.poll_accept(cx))?;
            return Poll::Ready(Ok((TcpStream::from_os(s), peer)));
        }
        Poll::Pending
    }

    /// The bound address, with the port chosen for port 0.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match (&self.model, &self.os) {
            (Some(m), _) => m.local_addr(),
            (None, Some(o)) => o.local_addr(),
            (None, None) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// `IP_TTL`, inherited by accepted connections.
    pub fn ttl(&self) -> io::Result<u32> {
        match (&self.model, &self.os) {
            (Some(m), _) => m.ttl(),
            (None, Some(o)) => o.ttl(),
            (None, None) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Sets `IP_TTL` (on both halves of a wildcard listener).
    ///
    /// # Errors
    /// `InvalidInput` outside 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        if let Some(m) = &self.model {
            m.set_ttl(ttl)?;
        }
        if let Some(o) = &self.os {
            o.set_ttl(ttl)?;
        }
        Ok(())
    }

    pub(crate) fn from_parts(
        model: Option<Socket>,
        os: Option<tokio::net::TcpListener>,
    ) -> TcpListener {
        TcpListener { model, os }
    }

    /// Whether the listener has a half in the model and one in the OS.
    pub fn paths(&self) -> (bool, bool) {
        (self.model.is_some(), self.os.is_some())
    }
}
