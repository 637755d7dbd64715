//! [`TcpListener`]: a listening socket in the modeled namespace.

use super::addr::{each_addr, ToSocketAddrs};
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
        each_addr(addr, |a| Self::bind_addr(&ns, a)).await
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

    /// Polls to accept a connection. As in tokio, only the last task to poll
    /// is sure to be woken; on the model every task that polled is.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        if let Some(model) = &self.model {
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            if let Poll::Ready(r) = model.poll_accept(cx) {
                coop.made_progress();
                let (sock, peer) = r?;
                return Poll::Ready(Ok((TcpStream::from_accepted(sock), peer)));
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

    /// Wraps a listening `std` socket, as `tokio::net::TcpListener::from_std`
    /// does. A `std` socket is a kernel socket, so the listener has an OS half
    /// only ([`paths`](TcpListener::paths) gives `(false, true)`) and accepts
    /// OS-path connections, whatever its address: a lonet connection to it
    /// goes through the kernel only from a namespace with the kernel switch
    /// on, or to a non-local address.
    ///
    /// The caller is responsible for putting the socket in non-blocking mode
    /// ([`std::net::TcpListener::set_nonblocking`]); otherwise `accept` can
    /// block the thread. tokio's debug builds assert it.
    ///
    /// # Errors
    /// What registering the socket with tokio's I/O driver gives.
    ///
    /// # Panics
    /// As tokio's: when not called within a tokio runtime with I/O enabled.
    #[track_caller]
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            model: None,
            os: Some(tokio::net::TcpListener::from_std(listener)?),
        })
    }

    /// Turns a listener with an OS half only into a
    /// [`std::net::TcpListener`] (in non-blocking mode, as tokio leaves it),
    /// like `tokio::net::TcpListener::into_std`.
    ///
    /// # Errors
    /// `Unsupported` for a listener with a half in the model (a local
    /// address, or a wildcard one, which has both): the model's half has no
    /// kernel socket to hand out (the listener is dropped, which closes it).
    /// tokio's signature has no room to give it back; check
    /// [`paths`](TcpListener::paths) first to keep it.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        match (self.model, self.os) {
            (None, Some(os)) => os.into_std(),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "lonet: a listener with a half in the model has no OS socket to convert into std",
            )),
        }
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

impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;

    /// [`TcpListener::from_std`].
    fn try_from(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(listener)
    }
}
