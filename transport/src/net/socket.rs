//! [`TcpSocket`]: a socket configured before it connects or listens, as
//! `tokio::net::TcpSocket`.

use super::{TcpListener, TcpStream};
use lonet_runtime::unstable::{is_local, Socket};
use lonet_runtime::Netns;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::task::{ready, Poll};
use std::time::Duration;

/// A TCP socket that has not yet been turned into a [`TcpStream`] or a
/// [`TcpListener`], with `tokio::net::TcpSocket`'s API (the subset below).
///
/// Its main use with lonet: give a service's outgoing connections its own
/// source address, so the services it calls see who is calling.
///
/// ```
/// use lonet_transport::net::{TcpListener, TcpSocket};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let ns = lonet_transport::Netns::new();
/// ns.add_local_addr("10.0.0.1".parse().unwrap())?;
/// ns.add_local_addr("10.0.0.2".parse().unwrap())?;
/// let _guard = ns.enter();
/// let server = TcpListener::bind("10.0.0.2:80").await?;
/// let socket = TcpSocket::new_v4()?;
/// socket.bind("10.0.0.1:0".parse().unwrap())?;
/// let _client = socket.connect("10.0.0.2:80".parse().unwrap()).await?;
/// let (_conn, peer) = server.accept().await?;
/// assert_eq!(peer.ip().to_string(), "10.0.0.1");
/// # Ok(())
/// # }
/// ```
///
/// Where it lives is decided as for [`TcpStream::connect`] and
/// [`TcpListener::bind`]: `bind` to an address local to the namespace (or
/// `connect` to one, unbound) keeps it in the model; any other address makes
/// it a real OS socket, as does the namespace's kernel switch.
///
/// A socket made with [`from_std_stream`](TcpSocket::from_std_stream) is a
/// kernel socket, so it takes the OS path.
///
/// `SO_REUSEPORT` groups, the TOS byte / traffic class (shown by captures)
/// and `SO_BINDTODEVICE` (`lo`, the model's one device) work on model
/// sockets as on Linux, and so do the buffer sizes and keepalive.
pub struct TcpSocket {
    // A lock, not a cell: tokio's `bind` and setters take `&self`, and the
    // first `bind` decides between the model and the OS.
    inner: Mutex<Inner>,
}

enum Inner {
    /// Not decided yet: no address given.
    Unbound { ns: Netns, v6: bool, opts: Opts },
    /// A socket of the model, bound.
    Model { sock: Socket, opts: Opts },
    /// A real OS socket.
    Os(tokio::net::TcpSocket),
}

#[derive(Debug, Clone, Copy, Default)]
struct Opts {
    reuseaddr: bool,
    nodelay: bool,
    linger: Option<Duration>,
    /// `SO_SNDBUF` / `SO_RCVBUF` as asked (the socket gets twice as much).
    send_buffer: Option<u32>,
    recv_buffer: Option<u32>,
    keepalive: bool,
    /// `SO_REUSEPORT`.
    reuseport: bool,
    /// `IP_TOS`, ECN bits clear.
    tos: u8,
    /// `IPV6_TCLASS`, ECN bits clear.
    tclass: u8,
    /// `SO_BINDTODEVICE` to `lo`.
    bound_lo: bool,
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.lock() {
            Inner::Unbound { v6, .. } => f.debug_struct("TcpSocket").field("v6", v6).finish(),
            Inner::Model { sock, .. } => sock.fmt(f),
            Inner::Os(s) => s.fmt(f),
        }
    }
}

impl TcpSocket {
    /// A new IPv4 socket in the current namespace.
    ///
    /// # Errors
    /// With the kernel switch on, what the OS gives for `socket()`.
    pub fn new_v4() -> io::Result<TcpSocket> {
        Self::new(false)
    }

    /// A new IPv6 socket in the current namespace.
    ///
    /// # Errors
    /// With the kernel switch on, what the OS gives for `socket()`.
    pub fn new_v6() -> io::Result<TcpSocket> {
        Self::new(true)
    }

    fn new(v6: bool) -> io::Result<TcpSocket> {
        let ns = Netns::current();
        let inner = if ns.kernel_loopback() {
            Inner::Os(os_socket(v6, Opts::default())?)
        } else {
            Inner::Unbound {
                ns,
                v6,
                opts: Opts::default(),
            }
        };
        Ok(TcpSocket {
            inner: Mutex::new(inner),
        })
    }

    /// Wraps a `std` socket, as `tokio::net::TcpSocket::from_std_stream`
    /// does (typically one made with `socket2` for options this type does not
    /// have). A `std` socket is a kernel socket: the result takes the OS
    /// path, and so does what it connects or listens to.
    ///
    /// The caller is responsible for putting the socket in non-blocking mode;
    /// otherwise every call on it can block the thread.
    pub fn from_std_stream(std_stream: std::net::TcpStream) -> TcpSocket {
        TcpSocket {
            inner: Mutex::new(Inner::Os(tokio::net::TcpSocket::from_std_stream(
                std_stream,
            ))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to the recorded options, or `os` to the OS socket.
    fn set(
        &self,
        f: impl FnOnce(&mut Opts),
        os: impl FnOnce(&tokio::net::TcpSocket) -> io::Result<()>,
    ) -> io::Result<()> {
        match &mut *self.lock() {
            Inner::Unbound { opts, .. } | Inner::Model { opts, .. } => {
                f(opts);
                Ok(())
            }
            Inner::Os(s) => os(s),
        }
    }

    fn get<T>(
        &self,
        f: impl FnOnce(&Opts) -> T,
        os: impl FnOnce(&tokio::net::TcpSocket) -> io::Result<T>,
    ) -> io::Result<T> {
        match &*self.lock() {
            Inner::Unbound { opts, .. } | Inner::Model { opts, .. } => Ok(f(opts)),
            Inner::Os(s) => os(s),
        }
    }

    /// Sets `SO_REUSEADDR`: two sockets that both set it may share a port
    /// while neither listens.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_reuseaddr(&self, reuseaddr: bool) -> io::Result<()> {
        self.set(|o| o.reuseaddr = reuseaddr, |s| s.set_reuseaddr(reuseaddr))
    }

    /// `SO_REUSEADDR`'s value.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.get(|o| o.reuseaddr, |s| s.reuseaddr())
    }

    /// Sets `TCP_NODELAY`, carried over to the connection.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.set(|o| o.nodelay = nodelay, |s| s.set_nodelay(nodelay))
    }

    /// `TCP_NODELAY`'s value.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.get(|o| o.nodelay, |s| s.nodelay())
    }

    /// Sets `SO_LINGER`, carried over to the connection. As on Linux the time
    /// is kept in whole seconds: a fraction is dropped, and a time under a
    /// second is a linger of 0 (a reset on close).
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        self.set(
            |o| o.linger = dur.map(|d| Duration::from_secs(d.as_secs())),
            |s| socket2::SockRef::from(s).set_linger(dur),
        )
    }

    /// `SO_LINGER`'s value.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.get(|o| o.linger, |s| socket2::SockRef::from(s).linger())
    }

    /// Sets `SO_SNDBUF`: as on Linux the send buffer becomes twice `size`
    /// (at most twice `net.core.wmem_max`, at least 4608 bytes) and is no
    /// longer grown automatically.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        match &mut *self.lock() {
            Inner::Unbound { opts, .. } => {
                opts.send_buffer = Some(size);
                Ok(())
            }
            Inner::Model { sock, opts } => {
                opts.send_buffer = Some(size);
                sock.set_send_buffer_size(size)
            }
            Inner::Os(s) => s.set_send_buffer_size(size),
        }
    }

    /// `SO_SNDBUF`'s value: the send buffer's size (`tcp_wmem[1]`, 16384,
    /// until the connection sizes it, or twice what was set).
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        match &*self.lock() {
            Inner::Unbound { ns, opts, .. } => {
                let sys = ns.sysctl();
                Ok(match opts.send_buffer {
                    Some(v) => doubled(v, sys.wmem_max, 4608),
                    None => sys.tcp_wmem[1].min(u32::MAX as usize) as u32,
                })
            }
            Inner::Model { sock, .. } => sock.send_buffer_size(),
            Inner::Os(s) => s.send_buffer_size(),
        }
    }

    /// Sets `SO_RCVBUF`: the receive buffer becomes twice `size` (at most
    /// twice `net.core.rmem_max`, at least 2304 bytes) and is no longer grown
    /// automatically.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        match &mut *self.lock() {
            Inner::Unbound { opts, .. } => {
                opts.recv_buffer = Some(size);
                Ok(())
            }
            Inner::Model { sock, opts } => {
                opts.recv_buffer = Some(size);
                sock.set_recv_buffer_size(size)
            }
            Inner::Os(s) => s.set_recv_buffer_size(size),
        }
    }

    /// `SO_RCVBUF`'s value: the receive buffer's size (`tcp_rmem[1]` by
    /// default, or twice what was set).
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        match &*self.lock() {
            Inner::Unbound { ns, opts, .. } => {
                let sys = ns.sysctl();
                Ok(match opts.recv_buffer {
                    Some(v) => doubled(v, sys.rmem_max, 2304),
                    None => sys.tcp_rmem[1].min(u32::MAX as usize) as u32,
                })
            }
            Inner::Model { sock, .. } => sock.recv_buffer_size(),
            Inner::Os(s) => s.recv_buffer_size(),
        }
    }

    /// Sets `SO_KEEPALIVE`, carried over to the connection (and, on a
    /// listener, to the connections it accepts): an idle connection is probed
    /// after `net.ipv4.tcp_keepalive_time` and reset with `TimedOut` when
    /// `tcp_keepalive_probes` probes go unanswered.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.set(|o| o.keepalive = keepalive, |s| s.set_keepalive(keepalive))
    }

    /// `SO_KEEPALIVE`'s value.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn keepalive(&self) -> io::Result<bool> {
        self.get(|o| o.keepalive, |s| s.keepalive())
    }

    /// Sets `SO_REUSEPORT`: sockets that all set it may bind the same
    /// address and port; once they listen, connections are spread over the
    /// group by the hash of their 4-tuple, as Linux's
    /// `reuseport_select_sock` does, and a listener that closes leaves it.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_reuseport(&self, reuseport: bool) -> io::Result<()> {
        self.set(|o| o.reuseport = reuseport, |s| s.set_reuseport(reuseport))
    }

    /// `SO_REUSEPORT`'s value.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn reuseport(&self) -> io::Result<bool> {
        self.get(|o| o.reuseport, |s| s.reuseport())
    }

    /// Sets a linger time of zero (`SO_LINGER` on, 0 s): closing the
    /// connection then sends RST and discards unsent data, with no
    /// TIME_WAIT, as `tokio::net::TcpSocket::set_zero_linger`.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set(|o| o.linger = Some(Duration::ZERO), |s| s.set_zero_linger())
    }

    /// Sets `IP_TOS`, the TOS byte of the IPv4 segments the connection
    /// sends (captures show it). TCP keeps the two ECN bits to itself, as
    /// Linux does: they read back as 0.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        // __ip_sock_set_tos: the value is stored in a byte, ECN bits kept.
        let v = (tos as u8) & !INET_ECN_MASK;
        self.set(|o| o.tos = v, |s| s.set_tos_v4(tos))
    }

    /// `IP_TOS`'s value.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn tos_v4(&self) -> io::Result<u32> {
        self.get(|o| u32::from(o.tos), |s| s.tos_v4())
    }

    /// Sets `IP_TOS`: the former name of [`set_tos_v4`](Self::set_tos_v4).
    ///
    /// # Errors
    /// As [`set_tos_v4`](Self::set_tos_v4).
    #[deprecated = "use `set_tos_v4()`"]
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.set_tos_v4(tos)
    }

    /// `IP_TOS`'s value: the former name of [`tos_v4`](Self::tos_v4).
    ///
    /// # Errors
    /// As [`tos_v4`](Self::tos_v4).
    #[deprecated = "use `tos_v4()`"]
    pub fn tos(&self) -> io::Result<u32> {
        self.tos_v4()
    }

    /// Sets `IPV6_TCLASS`, the traffic class of the IPv6 segments the
    /// connection sends (captures show it). The ECN bits read back as 0, as
    /// on Linux.
    ///
    /// # Errors
    /// `InvalidInput` (`EINVAL`) above 255; `ENOPROTOOPT` on an IPv4 socket
    /// (an IPv6 option); what the OS gives, for an OS socket.
    pub fn set_tclass_v6(&self, tclass: u32) -> io::Result<()> {
        let mut inner = self.lock();
        if let Inner::Os(s) = &*inner {
            return s.set_tclass_v6(tclass);
        }
        if !inner.is_v6()? {
            // tcp_setsockopt hands a level it does not own to the family's
            // setsockopt: ip_setsockopt refuses IPPROTO_IPV6.
            return Err(io::Error::from_raw_os_error(ENOPROTOOPT));
        }
        let v = u8::try_from(tclass).map_err(|_| io::Error::from_raw_os_error(EINVAL))?;
        if let Inner::Unbound { opts, .. } | Inner::Model { opts, .. } = &mut *inner {
            opts.tclass = v & !INET_ECN_MASK;
        }
        Ok(())
    }

    /// `IPV6_TCLASS`'s value.
    ///
    /// # Errors
    /// `EOPNOTSUPP` on an IPv4 socket (`ip_getsockopt` refuses the IPv6
    /// level); what the OS gives, for an OS socket.
    pub fn tclass_v6(&self) -> io::Result<u32> {
        let inner = self.lock();
        match &*inner {
            Inner::Os(s) => s.tclass_v6(),
            Inner::Unbound { opts, .. } | Inner::Model { opts, .. } => {
                if inner.is_v6()? {
                    Ok(u32::from(opts.tclass))
                } else {
                    Err(io::Error::from_raw_os_error(EOPNOTSUPP))
                }
            }
        }
    }

    /// `SO_BINDTODEVICE`: `Some(b"lo")` binds the socket to `lo`, which
    /// every modeled socket uses anyway; `None` or an empty name unbinds.
    /// Another name is refused with `ENODEV`, as Linux refuses a device the
    /// namespace does not have.
    ///
    /// # Errors
    /// `ENODEV` for a device other than `lo`; what the OS gives, for an OS
    /// socket.
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        let mut inner = self.lock();
        if let Inner::Os(s) = &*inner {
            return s.bind_device(interface);
        }
        let name = interface.unwrap_or_default();
        Socket::check_bind_device(name)?;
        if let Inner::Unbound { opts, .. } | Inner::Model { opts, .. } = &mut *inner {
            opts.bound_lo = !name.is_empty() && name[0] != 0;
        }
        Ok(())
    }

    /// `SO_BINDTODEVICE`'s value: the device's name, `None` when unbound.
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        self.get(|o| o.bound_lo.then(|| b"lo".to_vec()), |s| s.device())
    }

    /// `bind()`: an address local to the namespace keeps the socket in the
    /// model; any other address binds a real OS socket.
    ///
    /// # Errors
    /// `AddrInUse`, `AddrNotAvailable` as Linux gives them; `InvalidInput`
    /// (`EINVAL`) if the socket is already bound. An address of the other
    /// family: `EAFNOSUPPORT` for an IPv4 socket, `EINVAL` for an IPv6 one.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let mut inner = self.lock();
        let next = match &*inner {
            Inner::Unbound { ns, opts, v6 } => {
                check_family(*v6, addr)?;
                if !addr.ip().is_unspecified() && is_local(ns, addr.ip()) {
                    let sock = Socket::new(ns);
                    sock.bind_reuseport(addr, opts.reuseaddr, opts.reuseport)?;
                    apply_buffers(&sock, opts)?;
                    Inner::Model { sock, opts: *opts }
                } else {
                    let os = os_socket(addr.is_ipv6(), *opts)?;
                    os.bind(addr)?;
                    Inner::Os(os)
                }
            }
            Inner::Model { sock, .. } => {
                // inet_bind: the family first, then EINVAL for a bound socket.
                check_family(sock.local_addr()?.is_ipv6(), addr)?;
                return Err(io::Error::from_raw_os_error(EINVAL));
            }
            Inner::Os(s) => return s.bind(addr),
        };
        *inner = next;
        Ok(())
    }

    /// The bound address (the unspecified address and port 0 before `bind`,
    /// as `getsockname` gives).
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &*self.lock() {
            Inner::Unbound { v6: false, .. } => Ok(SocketAddr::from(([0, 0, 0, 0], 0))),
            Inner::Unbound { v6: true, .. } => Ok(SocketAddr::from(([0u16; 8], 0))),
            Inner::Model { sock, .. } => sock.local_addr(),
            Inner::Os(s) => s.local_addr(),
        }
    }

    /// `SO_ERROR`: takes the socket's pending error, if any (`None` for a
    /// socket that has not connected: nothing can have failed yet).
    ///
    /// # Errors
    /// What the OS gives, for an OS socket.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match &*self.lock() {
            Inner::Unbound { .. } => Ok(None),
            Inner::Model { sock, .. } => sock.take_error(),
            Inner::Os(s) => s.take_error(),
        }
    }

    /// Connects to `addr`: over the model when the socket is bound in it (or,
    /// unbound, when `addr` is local to the namespace), else through the OS.
    ///
    /// # Errors
    /// As [`TcpStream::connect`]; for an address of the other family,
    /// `EAFNOSUPPORT` on an IPv4 socket and `EINVAL` on an IPv6 one.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let inner = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        match inner {
            Inner::Unbound { ns, v6, opts } => {
                check_family(v6, addr)?;
                if ns.kernel_loopback() || !is_local(&ns, addr.ip()) {
                    let os = os_socket(v6, opts)?;
                    return Ok(TcpStream::from_os(os.connect(addr).await?));
                }
                let sock = Socket::new(&ns);
                apply_buffers(&sock, &opts)?;
                match Self::connect_model(sock, opts, addr).await {
                    // Fallthrough, as TcpStream::connect has it: nothing of the namespace
                    // listens there, so a real server on the machine's loopback may. Only
                    // an unbound socket (a bound one has its model address already), and
                    // only 127.0.0.0/8 (v4-mapped too) and ::1.
                    Err(refused)
                        if refused.kind() == io::ErrorKind::ConnectionRefused
                            && ns.fallthrough()
                            && addr.ip().to_canonical().is_loopback() =>
                    {
                        match os_socket(v6, opts)?.connect(addr).await {
                            Ok(os) => Ok(TcpStream::from_os(os)),
                            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(refused),
                            Err(e) => Err(e),
                        }
                    }
                    r => r,
                }
            }
            Inner::Model { sock, opts } => {
                check_family(sock.local_addr()?.is_ipv6(), addr)?;
                Self::connect_model(sock, opts, addr).await
            }
            Inner::Os(s) => Ok(TcpStream::from_os(s.connect(addr).await?)),
        }
    }

    /// The model's half of [`connect`](TcpSocket::connect): the options, then
    /// the handshake through the modeled path.
    async fn connect_model(sock: Socket, opts: Opts, addr: SocketAddr) -> io::Result<TcpStream> {
        sock.set_nodelay(opts.nodelay)?;
        sock.set_linger(opts.linger)?;
        sock.set_keepalive(opts.keepalive)?;
        let v4 = match addr.ip() {
            std::net::IpAddr::V4(_) => true,
            std::net::IpAddr::V6(v) => v.to_ipv4_mapped().is_some(),
        };
        sock.set_tos(u32::from(if v4 { opts.tos } else { opts.tclass }))?;
        sock.start_connect(addr)?;
        poll_fn(|cx| {
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            let r = ready!(sock.poll_connect(cx));
            coop.made_progress();
            Poll::Ready(r)
        })
        .await?;
        Ok(TcpStream::from_socket(sock))
    }

    /// Listens with `backlog` (capped by `somaxconn`). An unbound socket is
    /// bound to a free port on the model's wildcard address of its family
    /// first (`0.0.0.0`, or `[::]`, which takes IPv4 connections too), as Linux
    /// autobinds.
    ///
    /// # Errors
    /// `AddrInUse` when another socket listens on the address.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let inner = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        let (sock, opts) = match inner {
            Inner::Unbound { ns, opts, v6 } => {
                let sock = Socket::new(&ns);
                // inet_autobind: a free port on the wildcard address of the
                // socket's family ([::] takes IPv4 too), with its
                // SO_REUSEADDR and SO_REUSEPORT.
                let any = if v6 {
                    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
                } else {
                    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
                };
                sock.bind_reuseport(any, opts.reuseaddr, opts.reuseport)?;
                apply_buffers(&sock, &opts)?;
                (sock, opts)
            }
            Inner::Model { sock, opts } => (sock, opts),
            Inner::Os(s) => return Ok(TcpListener::from_parts(None, Some(s.listen(backlog)?))),
        };
        // Accepted connections inherit TCP_NODELAY, SO_LINGER, the TOS byte,
        // SO_KEEPALIVE and the buffer sizes, as on Linux.
        sock.set_nodelay(opts.nodelay)?;
        sock.set_linger(opts.linger)?;
        sock.set_keepalive(opts.keepalive)?;
        let v4 = sock.local_addr()?.is_ipv4();
        sock.set_tos(u32::from(if v4 { opts.tos } else { opts.tclass }))?;
        sock.start_listen(backlog)?;
        Ok(TcpListener::from_parts(Some(sock), None))
    }
}

/// `SO_SNDBUF`/`SO_RCVBUF` recorded before the socket was made.
fn apply_buffers(sock: &Socket, opts: &Opts) -> io::Result<()> {
    if let Some(v) = opts.send_buffer {
        sock.set_send_buffer_size(v)?;
    }
    if let Some(v) = opts.recv_buffer {
        sock.set_recv_buffer_size(v)?;
    }
    Ok(())
}

/// What `SO_SNDBUF`/`SO_RCVBUF` of `v` gives (`sk_setsockopt`): twice the
/// value capped by the `*mem_max` sysctl, at least `min`.
fn doubled(v: u32, max: usize, min: usize) -> u32 {
    let v = (v as usize).min(max).min(i32::MAX as usize / 2);
    (v * 2).max(min).min(u32::MAX as usize) as u32
}

/// `INET_ECN_MASK`: the ECN bits of the TOS byte, which TCP manages.
const INET_ECN_MASK: u8 = 3;

/// Linux's `EINVAL`.
const EINVAL: i32 = 22;

/// Linux's `EAFNOSUPPORT`.
const EAFNOSUPPORT: i32 = 97;

/// Linux's `ENOPROTOOPT`.
const ENOPROTOOPT: i32 = 92;

/// Linux's `EOPNOTSUPP`.
const EOPNOTSUPP: i32 = 95;

impl Inner {
    /// Whether the socket is `AF_INET6`: as created while undecided, else by
    /// its bound address (v4-mapped ones read back as IPv6).
    fn is_v6(&self) -> io::Result<bool> {
        Ok(match self {
            Inner::Unbound { v6, .. } => *v6,
            Inner::Model { sock, .. } => sock.local_addr()?.is_ipv6(),
            Inner::Os(s) => s.local_addr()?.is_ipv6(),
        })
    }
}

/// The errors `bind` and `connect` give for an address of the other family
/// (`v6`: the socket is `AF_INET6`): an IPv4 socket refuses an IPv6 address
/// with `EAFNOSUPPORT` (`__inet_bind`, `tcp_v4_connect` check `sin_family`);
/// an IPv6 socket refuses an IPv4 one with `EINVAL`, its `sockaddr_in` being
/// shorter than a `sockaddr_in6` (`inet6_bind`, `tcp_v6_connect`). A
/// v4-mapped IPv6 address is an IPv6 one.
fn check_family(v6: bool, addr: SocketAddr) -> io::Result<()> {
    match (v6, addr.is_ipv6()) {
        (false, true) => Err(io::Error::from_raw_os_error(EAFNOSUPPORT)),
        (true, false) => Err(io::Error::from_raw_os_error(EINVAL)),
        _ => Ok(()),
    }
}

/// A real socket with the recorded options applied.
fn os_socket(v6: bool, opts: Opts) -> io::Result<tokio::net::TcpSocket> {
    let s = if v6 {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    s.set_reuseaddr(opts.reuseaddr)?;
    if opts.reuseport {
        s.set_reuseport(true)?;
    }
    s.set_nodelay(opts.nodelay)?;
    if opts.tos != 0 {
        s.set_tos_v4(u32::from(opts.tos))?;
    }
    if opts.tclass != 0 && v6 {
        s.set_tclass_v6(u32::from(opts.tclass))?;
    }
    if opts.bound_lo {
        s.bind_device(Some(b"lo"))?;
    }
    if opts.linger.is_some() {
        socket2::SockRef::from(&s).set_linger(opts.linger)?;
    }
    if let Some(v) = opts.send_buffer {
        s.set_send_buffer_size(v)?;
    }
    if let Some(v) = opts.recv_buffer {
        s.set_recv_buffer_size(v)?;
    }
    if opts.keepalive {
        s.set_keepalive(true)?;
    }
    Ok(s)
}
