//! [`UdpSocket`]: a UDP socket with `tokio::net::UdpSocket`'s API, in the
//! model or on the OS.

use super::addr::{each_addr, resolve, ToSocketAddrs};
use super::readiness::{Sticky, Waiter};
use bytes::BufMut;
use lonet_runtime::unstable::{is_local, UdpSocket as ModelSocket};
use lonet_runtime::Netns;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{Interest, ReadBuf, Ready};

/// How many times a wildcard bind to port 0 looks for a port free in both
/// the OS and the model.
const DUAL_BIND_TRIES: usize = 16;

/// `ENOTCONN` (Linux), what `getpeername` gives an unconnected socket.
const ENOTCONN: i32 = 107;
/// Linux's `ENOPROTOOPT`.
const ENOPROTOOPT: i32 = 92;
/// Linux's `EOPNOTSUPP`.
const EOPNOTSUPP: i32 = 95;

/// `errno` unless the model's socket is `AF_INET6` (bound to an IPv6 or
/// v4-mapped address): an IPv4 socket hands the IPv6 level to the IPv4 code,
/// which refuses it.
fn ipv6_level(m: &Model, errno: i32) -> io::Result<()> {
    if m.sock.local_addr()?.is_ipv6() {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(errno))
    }
}

/// Which half a connected socket was connected through.
const CONN_NONE: u8 = 0;
const CONN_MODEL: u8 = 1;
const CONN_OS: u8 = 2;

/// A UDP socket, with `tokio::net::UdpSocket`'s API.
///
/// Where it lives follows the address it is bound to, as for
/// [`TcpListener`](super::TcpListener):
///
/// | address | socket |
/// |---|---|
/// | 127.0.0.0/8, ::1, addresses added with `Netns::add_local_addr` | the model only: no OS socket |
/// | `0.0.0.0`, `[::]` | the model and an OS socket on the same port: a datagram to a local, broadcast or multicast address goes through the model, any other through the OS; `recv*` take from both |
/// | another address (one of the machine's own) | an OS socket |
/// | any, with the namespace's kernel switch on | an OS socket |
///
/// `connect` picks the half its peer is reached through; from then on the
/// socket sends and receives through that half only, as a connected socket
/// receives only from its peer.
///
/// # Examples
/// ```
/// use lonet_transport::net::UdpSocket;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = UdpSocket::bind("127.0.0.1:0").await?;
/// let client = UdpSocket::bind("127.0.0.1:0").await?;
/// client.connect(server.local_addr()?).await?;
/// client.send(b"ping").await?;
/// let mut buf = [0; 16];
/// let (n, from) = server.recv_from(&mut buf).await?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], client.local_addr()?));
/// # Ok(())
/// # }
/// ```
pub struct UdpSocket {
    /// The socket in the namespace's `udp_table`.
    model: Option<Model>,
    /// The OS socket, for wildcard and non-loopback addresses, or every
    /// address with the kernel switch on.
    os: Option<tokio::net::UdpSocket>,
    /// `CONN_*`: the half `connect` went through.
    connected: AtomicU8,
}

/// The model's half, with the readiness tokio would have cached for it.
struct Model {
    sock: ModelSocket,
    sticky: Sticky,
    /// `SO_BINDTODEVICE` set to `lo`.
    bound_lo: AtomicBool,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("model", &self.model.as_ref().map(|m| &m.sock))
            .field("os", &self.os)
            .finish()
    }
}

fn unsupported(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, what)
}

/// The "no halves" state cannot be built; this is its error anyway.
fn not_bound() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

impl Model {
    fn new(sock: ModelSocket) -> Model {
        Model {
            sock,
            sticky: Sticky::default(),
            bound_lo: AtomicBool::new(false),
        }
    }

    /// Whether tokio would make the `recvmsg` call now: its readiness has
    /// `READABLE` (the sticky flag, or a datagram queued). A pending error
    /// alone is `EPOLLERR`, which tokio does not count as readable: as on
    /// Linux, a receive then waits for a datagram, and the call it makes
    /// then returns the error.
    fn may_recv(&self) -> bool {
        self.sticky.read() || self.sock.readiness().readable
    }

    /// A receive on the model, with tokio's rules: the cooperative budget,
    /// the call made only when readable, and readiness kept until
    /// `WouldBlock`.
    fn poll_recv<R>(
        &self,
        cx: &mut Context<'_>,
        peek: bool,
        f: impl FnOnce(&[u8], SocketAddr) -> R,
    ) -> Poll<io::Result<R>> {
        self.poll_recv_msg(cx, peek, |d, a, _| f(d, a))
    }

    /// [`poll_recv`](Model::poll_recv), `f` also given the segment size of
    /// a GSO datagram received whole (`UDP_GRO`), else 0.
    fn poll_recv_msg<R>(
        &self,
        cx: &mut Context<'_>,
        peek: bool,
        f: impl FnOnce(&[u8], SocketAddr, u16) -> R,
    ) -> Poll<io::Result<R>> {
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        if !self.may_recv() {
            // Registers under the socket's lock; a datagram that came
            // meanwhile makes it ready, and the call is made.
            if self.sock.poll_read_ready(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let r = self.sock.poll_recv_msg(cx, peek, f);
        self.read_outcome(&r);
        let r = ready!(r);
        coop.made_progress();
        Poll::Ready(r)
    }

    fn try_recv<R>(&self, peek: bool, f: impl FnOnce(&[u8], SocketAddr) -> R) -> io::Result<R> {
        self.try_recv_msg(peek, |d, a, _| f(d, a))
    }

    /// [`try_recv`](Model::try_recv), `f` also given the segment size as
    /// [`poll_recv_msg`](Model::poll_recv_msg).
    fn try_recv_msg<R>(
        &self,
        peek: bool,
        f: impl FnOnce(&[u8], SocketAddr, u16) -> R,
    ) -> io::Result<R> {
        if !self.may_recv() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let r = self.sock.try_recv_msg(peek, f);
        match &r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.sticky.set_read(false),
            Ok(_) => self.sticky.set_read(true),
            Err(_) => {}
        }
        r
    }

    fn read_outcome<R>(&self, r: &Poll<io::Result<R>>) {
        match r {
            Poll::Pending => self.sticky.set_read(false),
            Poll::Ready(Ok(_)) => self.sticky.set_read(true),
            Poll::Ready(Err(_)) => {}
        }
    }

    fn send(&self, buf: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
        self.send_msg(buf, to, None)
    }

    /// `sendmsg` with a `UDP_SEGMENT` control message (`gso_size`).
    fn send_msg(
        &self,
        buf: &[u8],
        to: Option<SocketAddr>,
        gso_size: Option<u16>,
    ) -> io::Result<usize> {
        let r = self.sock.send_msg(buf, to, gso_size);
        if r.is_ok() {
            self.sticky.set_write(true);
        }
        r
    }

    /// `ready(interest)` on the model: as `TcpStream`'s (see readiness.rs).
    fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        waiter: &mut Option<Arc<Waiter>>,
    ) -> Poll<io::Result<Ready>> {
        super::readiness::poll_ready(
            &self.sock,
            &self.sticky,
            cx,
            interest,
            waiter,
            "a UDP socket",
        )
    }
}

/// Copies a datagram into `buf`'s unfilled part; the rest is discarded.
fn fill(buf: &mut ReadBuf<'_>, data: &[u8]) -> usize {
    let n = data.len().min(buf.remaining());
    buf.put_slice(&data[..n]);
    n
}

/// Copies a datagram into `buf`'s current chunk, as tokio's `recv_buf`
/// reads into `chunk_mut()`.
fn fill_buf<B: BufMut>(buf: &mut B, data: &[u8]) -> usize {
    let n = data.len().min(buf.chunk_mut().len());
    buf.put_slice(&data[..n]);
    n
}

/// Copies a datagram into a slice.
fn fill_slice(buf: &mut [u8], data: &[u8]) -> usize {
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    n
}

impl UdpSocket {
    /// Binds a UDP socket to `addr` in the current namespace (see the
    /// table above for where it lives). Port 0 picks a free port. When
    /// `addr` resolves to several addresses, each is tried in order and the
    /// last error is returned, as tokio does.
    ///
    /// # Errors
    /// `AddrInUse` when a socket already holds the port on an overlapping
    /// address; `AddrNotAvailable` for an address that is neither local to
    /// the namespace nor the machine's; `InvalidInput` for an argument that
    /// is not an address.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let ns = Netns::current();
        each_addr(addr, |a| Self::bind_addr(&ns, a)).await
    }

    fn from_parts(model: Option<ModelSocket>, os: Option<tokio::net::UdpSocket>) -> UdpSocket {
        UdpSocket {
            model: model.map(Model::new),
            os,
            connected: AtomicU8::new(CONN_NONE),
        }
    }

    async fn bind_addr(ns: &Netns, addr: SocketAddr) -> io::Result<UdpSocket> {
        if ns.kernel_loopback() {
            let os = tokio::net::UdpSocket::bind(addr).await?;
            return Ok(Self::from_parts(None, Some(os)));
        }
        if addr.ip().is_unspecified() {
            return Self::bind_dual(ns, addr).await;
        }
        if is_local(ns, addr.ip()) || addr.ip().is_multicast() {
            return Ok(Self::from_parts(Some(ModelSocket::bind(ns, addr)?), None));
        }
        let os = tokio::net::UdpSocket::bind(addr).await?;
        Ok(Self::from_parts(None, Some(os)))
    }

    /// 0.0.0.0 / [::]: the model and the OS on one port.
    async fn bind_dual(ns: &Netns, addr: SocketAddr) -> io::Result<UdpSocket> {
        let mut last_err = None;
        for _ in 0..DUAL_BIND_TRIES {
            let os = tokio::net::UdpSocket::bind(addr).await?;
            let port = os.local_addr()?.port();
            match ModelSocket::bind(ns, SocketAddr::new(addr.ip(), port)) {
                Ok(model) => return Ok(Self::from_parts(Some(model), Some(os))),
                // The OS chose a port the model has in use: try another.
                Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                    last_err = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
    }

    /// Which halves this socket has: `(model, os)`. lonet's own addition.
    pub fn paths(&self) -> (bool, bool) {
        (self.model.is_some(), self.os.is_some())
    }

    /// Whether a datagram to `dst` goes through the model (else the OS).
    fn via_model(&self, dst: IpAddr) -> bool {
        let Some(m) = &self.model else {
            return false;
        };
        if self.os.is_none() {
            return true;
        }
        dst.is_multicast()
            || dst == IpAddr::V4(Ipv4Addr::BROADCAST)
            || is_local(&m.sock.netns(), dst)
    }

    /// The halves a receive takes from: the connected one, else both.
    fn rx_halves(&self) -> (Option<&Model>, Option<&tokio::net::UdpSocket>) {
        match self.connected.load(Relaxed) {
            CONN_MODEL => (self.model.as_ref(), None),
            CONN_OS => (None, self.os.as_ref()),
            _ => (self.model.as_ref(), self.os.as_ref()),
        }
    }

    /// Wraps a `std` socket, as `tokio::net::UdpSocket::from_std` does. A
    /// `std` socket is a kernel socket: the result has an OS half only.
    ///
    /// The caller is responsible for putting the socket in non-blocking
    /// mode.
    ///
    /// # Errors
    /// What registering the socket with tokio's I/O driver gives.
    ///
    /// # Panics
    /// As tokio's: when not called within a tokio runtime with I/O enabled.
    #[track_caller]
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(Self::from_parts(
            None,
            Some(tokio::net::UdpSocket::from_std(socket)?),
        ))
    }

    /// Turns a socket with an OS half only into a [`std::net::UdpSocket`].
    ///
    /// # Errors
    /// `Unsupported` for a socket with a half in the model, which has no
    /// kernel socket to hand out (the socket is dropped, which closes it).
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        match (self.model, self.os) {
            (None, Some(os)) => os.into_std(),
            _ => Err(unsupported(
                "lonet: a UDP socket with a half in the model has no OS socket to convert into std",
            )),
        }
    }

    /// The bound address (for a socket connected through the model from a
    /// wildcard, the source address the route chose, as Linux shows it).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match (self.connected.load(Relaxed), &self.model, &self.os) {
            (CONN_OS, _, Some(o)) => o.local_addr(),
            (_, Some(m), _) => m.sock.local_addr(),
            (_, None, Some(o)) => o.local_addr(),
            _ => Err(not_bound()),
        }
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `NotConnected` unless connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match (self.connected.load(Relaxed), &self.model, &self.os) {
            (CONN_MODEL, Some(m), _) => m.sock.peer_addr(),
            (CONN_OS, _, Some(o)) => o.peer_addr(),
            _ => Err(io::Error::from_raw_os_error(ENOTCONN)),
        }
    }

    /// Connects to `addr`: `send`/`recv` then go to and come from it only.
    /// Each address `addr` resolves to is tried in order.
    ///
    /// # Errors
    /// `ENETUNREACH` for an address the socket cannot reach; `EACCES` for a
    /// broadcast address without `SO_BROADCAST`.
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |addr| async move {
            let half = if self.via_model(addr.ip()) {
                match &self.model {
                    Some(m) => m.sock.connect(addr).map(|()| CONN_MODEL)?,
                    None => return Err(not_bound()),
                }
            } else {
                match &self.os {
                    Some(o) => o.connect(addr).await.map(|()| CONN_OS)?,
                    None => return Err(not_bound()),
                }
            };
            self.connected.store(half, Relaxed);
            Ok(())
        })
        .await
    }

    /// Waits for any of the requested readiness, with tokio's rules
    /// (readiness stays set until an operation returns `WouldBlock`).
    ///
    /// # Errors
    /// `Unsupported` for an interest of the model's half that is only
    /// `PRIORITY`.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        let (model, os) = (self.model.as_ref(), self.os.as_ref());
        let mut os_fut = pin!(async {
            match os {
                Some(o) => o.ready(interest).await,
                None => std::future::pending().await,
            }
        });
        let mut waiter = None;
        poll_fn(|cx| {
            if let Some(m) = model {
                if let Poll::Ready(r) = m.poll_ready(cx, interest, &mut waiter) {
                    return Poll::Ready(r);
                }
            }
            os_fut.as_mut().poll(cx)
        })
        .await
    }

    /// Waits until a datagram can be sent (at once on the model).
    ///
    /// # Errors
    /// As [`ready`](UdpSocket::ready).
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Interest::WRITABLE).await.map(|_| ())
    }

    /// Polls for write readiness. The model's half is always writable (on
    /// `lo` a datagram's buffer is released as it is handed on), so a
    /// socket with an OS half, unless connected through the model, reports
    /// the OS half's: that is the one a send can find full.
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match (self.connected.load(Relaxed), &self.model, &self.os) {
            (CONN_MODEL, Some(m), _) | (_, Some(m), None) => m.sock.poll_write_ready(cx),
            (_, _, Some(o)) => o.poll_send_ready(cx),
            _ => Poll::Ready(Err(not_bound())),
        }
    }

    /// Waits until a datagram (or an error) can be received.
    ///
    /// # Errors
    /// As [`ready`](UdpSocket::ready).
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Interest::READABLE).await.map(|_| ())
    }

    /// Polls for read readiness: ready once a datagram or an error waits
    /// on either half.
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (model, os) = self.rx_halves();
        if let Some(m) = model {
            if m.sticky.read() {
                return Poll::Ready(Ok(()));
            }
            if let Poll::Ready(r) = m.sock.poll_read_ready(cx) {
                return Poll::Ready(r);
            }
        }
        match os {
            Some(o) => o.poll_recv_ready(cx),
            None => Poll::Pending,
        }
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    /// `EDESTADDRREQ` unless connected; a pending error (`ConnectionRefused`
    /// after an ICMP port unreachable); `EMSGSIZE` past the largest datagram.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// Polls to send a datagram to the connected peer.
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match (self.connected.load(Relaxed), &self.model, &self.os) {
            (CONN_OS, _, Some(o)) => o.poll_send(cx, buf),
            (_, Some(m), _) => {
                let coop = ready!(tokio::task::coop::poll_proceed(cx));
                coop.made_progress();
                Poll::Ready(m.send(buf, None))
            }
            (_, None, Some(o)) => o.poll_send(cx, buf),
            _ => Poll::Ready(Err(not_bound())),
        }
    }

    /// Sends a datagram to the connected peer without waiting.
    ///
    /// # Errors
    /// As [`send`](UdpSocket::send); `WouldBlock` when an OS socket's
    /// buffer is full.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        match (self.connected.load(Relaxed), &self.model, &self.os) {
            (CONN_OS, _, Some(o)) => o.try_send(buf),
            (_, Some(m), _) => m.send(buf, None),
            (_, None, Some(o)) => o.try_send(buf),
            _ => Err(not_bound()),
        }
    }

    /// Receives a datagram from the connected peer; a longer datagram is
    /// truncated to `buf`.
    ///
    /// # Cancel safety
    /// Cancel safe, as tokio's.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv_slice(cx, buf, false).map_ok(|(n, _)| n)).await
    }

    /// Polls to receive a datagram into `buf`.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.poll_recv_readbuf(cx, buf, false).map_ok(|_| ())
    }

    /// Receives a datagram without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_recv_slice(buf, false).map(|(n, _)| n)
    }

    /// Receives a datagram into `buf`'s spare capacity without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued.
    pub fn try_recv_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.try_recv_buf_from(buf).map(|(n, _)| n)
    }

    /// Receives a datagram into `buf`'s spare capacity.
    pub async fn recv_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.recv_buf_from(buf).await.map(|(n, _)| n)
    }

    /// Receives a datagram and its source into `buf`'s spare capacity
    /// without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued.
    pub fn try_recv_buf_from<B: BufMut>(&self, buf: &mut B) -> io::Result<(usize, SocketAddr)> {
        let (model, os) = self.rx_halves();
        if let Some(m) = model {
            match m.try_recv(false, |d, a| (fill_buf(buf, d), a)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && os.is_some() => {}
                r => return r,
            }
        }
        match os {
            Some(o) => o.try_recv_buf_from(buf),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Receives a datagram and its source into `buf`'s spare capacity.
    pub async fn recv_buf_from<B: BufMut>(&self, buf: &mut B) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| {
            let (model, os) = self.rx_halves();
            if let Some(m) = model {
                if let Poll::Ready(r) = m.poll_recv(cx, false, |d, a| (fill_buf(buf, d), a)) {
                    return Poll::Ready(r);
                }
            }
            let Some(o) = os else {
                return Poll::Pending;
            };
            loop {
                ready!(o.poll_recv_ready(cx))?;
                match o.try_recv_buf_from(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return Poll::Ready(r),
                }
            }
        })
        .await
    }

    /// Sends a datagram to `addr` (its first address).
    ///
    /// # Errors
    /// As [`send`](UdpSocket::send), with `EACCES` for a broadcast address
    /// without `SO_BROADCAST`.
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let target = resolve(addr).await?.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        poll_fn(|cx| self.poll_send_to(cx, buf, target)).await
    }

    /// Polls to send a datagram to `target`.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        if self.via_model(target.ip()) {
            match &self.model {
                Some(m) => {
                    let coop = ready!(tokio::task::coop::poll_proceed(cx));
                    coop.made_progress();
                    Poll::Ready(m.send(buf, Some(target)))
                }
                None => Poll::Ready(Err(not_bound())),
            }
        } else {
            match &self.os {
                Some(o) => o.poll_send_to(cx, buf, target),
                None => Poll::Ready(Err(not_bound())),
            }
        }
    }

    /// Sends a datagram to `target` without waiting.
    ///
    /// # Errors
    /// As [`send_to`](UdpSocket::send_to); `WouldBlock` when an OS
    /// socket's buffer is full.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        if self.via_model(target.ip()) {
            match &self.model {
                Some(m) => m.send(buf, Some(target)),
                None => Err(not_bound()),
            }
        } else {
            match &self.os {
                Some(o) => o.try_send_to(buf, target),
                None => Err(not_bound()),
            }
        }
    }

    /// Receives a datagram and its source.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_slice(cx, buf, false)).await
    }

    /// Polls to receive a datagram into `buf`; gives its source.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.poll_recv_readbuf(cx, buf, false)
    }

    /// Receives a datagram and its source without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.try_recv_slice(buf, false)
    }

    /// Receives the next datagram without taking it off the queue.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv_slice(cx, buf, true).map_ok(|(n, _)| n)).await
    }

    /// Polls to peek at the next datagram.
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.poll_recv_readbuf(cx, buf, true).map_ok(|_| ())
    }

    /// Peeks at the next datagram without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued.
    pub fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_recv_slice(buf, true).map(|(n, _)| n)
    }

    /// Peeks at the next datagram and its source.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_slice(cx, buf, true)).await
    }

    /// Polls to peek at the next datagram and its source.
    pub fn poll_peek_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.poll_recv_readbuf(cx, buf, true)
    }

    /// Peeks at the next datagram and its source without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued.
    pub fn try_peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.try_recv_slice(buf, true)
    }

    /// The source of the next datagram, which stays queued.
    pub async fn peek_sender(&self) -> io::Result<SocketAddr> {
        poll_fn(|cx| self.poll_peek_sender(cx)).await
    }

    /// Polls for the source of the next datagram.
    pub fn poll_peek_sender(&self, cx: &mut Context<'_>) -> Poll<io::Result<SocketAddr>> {
        let (model, os) = self.rx_halves();
        if let Some(m) = model {
            if let Poll::Ready(r) = m.poll_recv(cx, true, |_, a| a) {
                return Poll::Ready(r);
            }
        }
        match os {
            Some(o) => o.poll_peek_sender(cx),
            None => Poll::Pending,
        }
    }

    /// The source of the next datagram, without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued.
    pub fn try_peek_sender(&self) -> io::Result<SocketAddr> {
        let (model, os) = self.rx_halves();
        if let Some(m) = model {
            match m.try_recv(true, |_, a| a) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && os.is_some() => {}
                r => return r,
            }
        }
        match os {
            Some(o) => o.try_peek_sender(),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn poll_recv_slice(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        peek: bool,
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let (model, os) = self.rx_halves();
        if let Some(m) = model {
            if let Poll::Ready(r) = m.poll_recv(cx, peek, |d, a| (fill_slice(buf, d), a)) {
                return Poll::Ready(r);
            }
        }
        let Some(o) = os else {
            return Poll::Pending;
        };
        let mut rb = ReadBuf::new(buf);
        let from = ready!(if peek {
            o.poll_peek_from(cx, &mut rb)
        } else {
            o.poll_recv_from(cx, &mut rb)
        })?;
        Poll::Ready(Ok((rb.filled().len(), from)))
    }

    fn poll_recv_readbuf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        peek: bool,
    ) -> Poll<io::Result<SocketAddr>> {
        let (model, os) = self.rx_halves();
        if let Some(m) = model {
            if let Poll::Ready(r) = m.poll_recv(cx, peek, |d, a| {
                fill(buf, d);
                a
            }) {
                return Poll::Ready(r);
            }
        }
        match (os, peek) {
            (Some(o), false) => o.poll_recv_from(cx, buf),
            (Some(o), true) => o.poll_peek_from(cx, buf),
            (None, _) => Poll::Pending,
        }
    }

    fn try_recv_slice(&self, buf: &mut [u8], peek: bool) -> io::Result<(usize, SocketAddr)> {
        let (model, os) = self.rx_halves();
        if let Some(m) = model {
            match m.try_recv(peek, |d, a| (fill_slice(buf, d), a)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && os.is_some() => {}
                r => return r,
            }
        }
        match (os, peek) {
            (Some(o), false) => o.try_recv_from(buf),
            (Some(o), true) => o.try_peek_from(buf),
            (None, _) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Sends `buf` to `target` as segments of `segment_size` bytes (the
    /// last may be shorter), as `sendmsg` with a `UDP_SEGMENT` control
    /// message: through the model, one GSO datagram, which `lo` carries
    /// whole; through the OS half, one datagram per segment. For the quinn
    /// module (its GSO batches).
    pub(crate) fn try_send_segments(
        &self,
        buf: &[u8],
        target: SocketAddr,
        segment_size: usize,
    ) -> io::Result<()> {
        if segment_size == 0 || segment_size >= buf.len() {
            return self.try_send_to(buf, target).map(|_| ());
        }
        if let (true, Some(m), Ok(gso)) = (
            self.via_model(target.ip()),
            &self.model,
            u16::try_from(segment_size),
        ) {
            return m.send_msg(buf, Some(target), Some(gso)).map(|_| ());
        }
        for seg in buf.chunks(segment_size) {
            self.try_send_to(seg, target)?;
        }
        Ok(())
    }

    /// `UDP_GRO` on the model's half (the OS half, if any, is left
    /// without: its datagrams arrive one by one). For the quinn module.
    pub(crate) fn set_gro(&self, on: bool) -> io::Result<()> {
        match &self.model {
            Some(m) => m.sock.set_gro(on),
            None => Ok(()),
        }
    }

    /// The most segments one receive can give: `UDP_GRO_CNT_MAX` with a
    /// model half, 1 without.
    pub(crate) fn gro_segments(&self) -> usize {
        match &self.model {
            Some(_) => ModelSocket::GRO_MAX_SEGMENTS,
            None => 1,
        }
    }

    /// Receives a datagram into `buf`: its length, its source and its
    /// stride (the segment size of a GSO datagram received whole by a
    /// `UDP_GRO` socket, else its length). `wait`: register the waker
    /// when nothing is queued, else `WouldBlock`. For the quinn module.
    pub(crate) fn poll_recv_segments(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        wait: bool,
    ) -> Poll<io::Result<(usize, SocketAddr, usize)>> {
        let fill = |buf: &mut [u8], d: &[u8], a, gso: u16| {
            let n = fill_slice(buf, d);
            let stride = if gso == 0 { n } else { usize::from(gso) };
            (n, a, stride)
        };
        let (model, os) = self.rx_halves();
        if let Some(m) = model {
            let r = if wait {
                m.poll_recv_msg(cx, false, |d, a, g| fill(buf, d, a, g))
            } else {
                match m.try_recv_msg(false, |d, a, g| fill(buf, d, a, g)) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
                    r => Poll::Ready(r),
                }
            };
            if r.is_ready() {
                return r;
            }
        }
        let with_stride = |(n, a)| (n, a, n);
        match (os, wait) {
            (Some(o), true) => {
                let mut rb = ReadBuf::new(buf);
                let from = ready!(o.poll_recv_from(cx, &mut rb))?;
                Poll::Ready(Ok(with_stride((rb.filled().len(), from))))
            }
            (Some(o), false) => Poll::Ready(o.try_recv_from(buf).map(with_stride)),
            (None, true) => Poll::Pending,
            (None, false) => Poll::Ready(Err(io::ErrorKind::WouldBlock.into())),
        }
    }

    /// Applies a setter to both halves.
    fn set(
        &self,
        m: impl FnOnce(&Model) -> io::Result<()>,
        o: impl FnOnce(&tokio::net::UdpSocket) -> io::Result<()>,
    ) -> io::Result<()> {
        if let Some(x) = &self.model {
            m(x)?;
        }
        if let Some(x) = &self.os {
            o(x)?;
        }
        Ok(())
    }

    /// Reads an option from the model's half, else the OS's.
    fn get<T>(
        &self,
        m: impl FnOnce(&Model) -> io::Result<T>,
        o: impl FnOnce(&tokio::net::UdpSocket) -> io::Result<T>,
    ) -> io::Result<T> {
        match (&self.model, &self.os) {
            (Some(x), _) => m(x),
            (None, Some(x)) => o(x),
            _ => Err(not_bound()),
        }
    }

    /// [`set`](Self::set) for an `IPPROTO_IPV6` option: an IPv4 socket of the
    /// model refuses the level, as `ip_setsockopt` does (`ENOPROTOOPT`).
    fn set_v6(
        &self,
        m: impl FnOnce(&Model) -> io::Result<()>,
        o: impl FnOnce(&tokio::net::UdpSocket) -> io::Result<()>,
    ) -> io::Result<()> {
        self.set(
            |x| {
                ipv6_level(x, ENOPROTOOPT)?;
                m(x)
            },
            o,
        )
    }

    /// [`get`](Self::get) for an `IPPROTO_IPV6` option: an IPv4 socket of the
    /// model refuses the level, as `ip_getsockopt` does (`EOPNOTSUPP`).
    fn get_v6<T>(
        &self,
        m: impl FnOnce(&Model) -> io::Result<T>,
        o: impl FnOnce(&tokio::net::UdpSocket) -> io::Result<T>,
    ) -> io::Result<T> {
        self.get(
            |x| {
                ipv6_level(x, EOPNOTSUPP)?;
                m(x)
            },
            o,
        )
    }

    /// `SO_BROADCAST`'s value.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.get(|m| m.sock.broadcast(), |o| o.broadcast())
    }

    /// Sets `SO_BROADCAST`: without it a datagram to a broadcast address is
    /// refused with `EACCES`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.set(|m| m.sock.set_broadcast(on), |o| o.set_broadcast(on))
    }

    /// `IP_MULTICAST_LOOP`'s value.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.get(|m| m.sock.multicast_loop_v4(), |o| o.multicast_loop_v4())
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host's members of a group
    /// get the multicast datagrams it sends (in the model, the only ones
    /// that do).
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.set(
            |m| m.sock.set_multicast_loop_v4(on),
            |o| o.set_multicast_loop_v4(on),
        )
    }

    /// `IP_MULTICAST_TTL`'s value.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.get(|m| m.sock.multicast_ttl_v4(), |o| o.multicast_ttl_v4())
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.set(
            |m| m.sock.set_multicast_ttl_v4(ttl),
            |o| o.set_multicast_ttl_v4(ttl),
        )
    }

    /// `IPV6_MULTICAST_LOOP`'s value.
    ///
    /// # Errors
    /// `EOPNOTSUPP` on an IPv4 socket (`ip_getsockopt` refuses the IPv6
    /// level).
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.get_v6(|m| m.sock.multicast_loop_v6(), |o| o.multicast_loop_v6())
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    ///
    /// # Errors
    /// `ENOPROTOOPT` on an IPv4 socket (`udp_setsockopt` hands the IPv6
    /// level to `ip_setsockopt`, which refuses it).
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.set_v6(
            |m| m.sock.set_multicast_loop_v6(on),
            |o| o.set_multicast_loop_v6(on),
        )
    }

    /// `IPV6_TCLASS`'s value.
    ///
    /// # Errors
    /// `EOPNOTSUPP` on an IPv4 socket (`ip_getsockopt` refuses the IPv6
    /// level).
    pub fn tclass_v6(&self) -> io::Result<u32> {
        self.get_v6(|m| m.sock.tos(), |o| o.tclass_v6())
    }

    /// Sets `IPV6_TCLASS`, the traffic class of the datagrams sent over
    /// IPv6 (captures show it).
    ///
    /// # Errors
    /// `ENOPROTOOPT` on an IPv4 socket (`udp_setsockopt` hands the IPv6
    /// level to `ip_setsockopt`, which refuses it).
    pub fn set_tclass_v6(&self, tclass: u32) -> io::Result<()> {
        self.set_v6(|m| m.sock.set_tos(tclass), |o| o.set_tclass_v6(tclass))
    }

    /// `IP_TTL`'s value (64 by default).
    pub fn ttl(&self) -> io::Result<u32> {
        self.get(|m| m.sock.ttl(), |o| o.ttl())
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    /// `InvalidInput` outside 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.set(|m| m.sock.set_ttl(ttl), |o| o.set_ttl(ttl))
    }

    /// `IP_TOS`'s value.
    pub fn tos_v4(&self) -> io::Result<u32> {
        self.get(|m| m.sock.tos(), |o| o.tos_v4())
    }

    /// `IP_TOS`'s value: the former name of [`tos_v4`](Self::tos_v4).
    #[deprecated = "use `tos_v4()`"]
    pub fn tos(&self) -> io::Result<u32> {
        self.tos_v4()
    }

    /// Sets `IP_TOS`, the TOS byte of the datagrams sent over IPv4.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        self.set(|m| m.sock.set_tos(tos), |o| o.set_tos_v4(tos))
    }

    /// Sets `IP_TOS`: the former name of [`set_tos_v4`](Self::set_tos_v4).
    #[deprecated = "use `set_tos_v4()`"]
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.set_tos_v4(tos)
    }

    /// `SO_BINDTODEVICE`'s value: the device's name, `None` when unbound.
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        self.get(
            |m| Ok(m.bound_lo.load(Relaxed).then(|| b"lo".to_vec())),
            |o| o.device(),
        )
    }

    /// `SO_BINDTODEVICE`: `Some(b"lo")` binds the model's half to `lo`,
    /// which it uses anyway; `None` or an empty name unbinds; another name
    /// is refused with `ENODEV`.
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        self.set(
            |m| {
                let name = interface.unwrap_or_default();
                lonet_runtime::unstable::Socket::check_bind_device(name)?;
                m.bound_lo.store(!name.is_empty() && name[0] != 0, Relaxed);
                Ok(())
            },
            |o| o.bind_device(interface),
        )
    }

    /// `IP_ADD_MEMBERSHIP`: joins `multiaddr` on `interface` (the
    /// unspecified address or a local one: `lo`, in the model).
    ///
    /// # Errors
    /// `EINVAL` for an address that is not multicast; `ENODEV` for another
    /// interface; `EADDRINUSE` if already joined.
    pub fn join_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.set(
            |m| {
                let ok =
                    interface.is_unspecified() || is_local(&m.sock.netns(), IpAddr::V4(interface));
                m.sock.join_multicast(IpAddr::V4(multiaddr), ok)
            },
            |o| o.join_multicast_v4(multiaddr, interface),
        )
    }

    /// `IPV6_ADD_MEMBERSHIP`: joins `multiaddr` on interface index
    /// `interface` (0 or 1, `lo`, in the model).
    ///
    /// # Errors
    /// As [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.set(
            |m| {
                m.sock
                    .join_multicast(IpAddr::V6(*multiaddr), interface <= 1)
            },
            |o| o.join_multicast_v6(multiaddr, interface),
        )
    }

    /// `IP_DROP_MEMBERSHIP`.
    ///
    /// # Errors
    /// `EADDRNOTAVAIL` for a group not joined.
    pub fn leave_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.set(
            |m| m.sock.leave_multicast(IpAddr::V4(multiaddr)),
            |o| o.leave_multicast_v4(multiaddr, interface),
        )
    }

    /// `IPV6_DROP_MEMBERSHIP`.
    ///
    /// # Errors
    /// `EADDRNOTAVAIL` for a group not joined.
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.set(
            |m| m.sock.leave_multicast(IpAddr::V6(*multiaddr)),
            |o| o.leave_multicast_v6(multiaddr, interface),
        )
    }

    /// `SO_ERROR`: takes the pending error (`ConnectionRefused` after an
    /// ICMP port unreachable, on a connected socket).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        if let Some(m) = &self.model {
            if let Some(e) = m.sock.take_error()? {
                return Ok(Some(e));
            }
        }
        match &self.os {
            Some(o) => o.take_error(),
            None => Ok(None),
        }
    }
}

impl TryFrom<std::net::UdpSocket> for UdpSocket {
    type Error = io::Error;

    /// [`UdpSocket::from_std`].
    fn try_from(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::from_std(socket)
    }
}
