//! [`TcpStream`]: a connection over the modeled loopback.

use super::addr::{each_addr, ToSocketAddrs};
use super::readiness::{Sticky, Waiter};
use super::tcp::{split, split_owned, OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use lonet_runtime::unstable::{is_local, Socket};
use lonet_runtime::Netns;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};

/// A TCP connection, with `tokio::net::TcpStream`'s API.
///
/// Connections to a local address (127.0.0.0/8, ::1, `localhost`) run through
/// the model of the Linux loopback path: SYN, SYN-ACK and ACK, segments at
/// the MSS, ACKs and window updates, through `lo`, the per-CPU backlog and the
/// NET_RX softirq, into the peer's receive queue.
///
/// # Examples
/// ```
/// use lonet_transport::net::{TcpListener, TcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let mut client = TcpStream::connect(addr).await?;
/// let (mut server, peer) = listener.accept().await?;
/// assert_eq!(peer, client.local_addr()?);
///
/// client.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// # Ok(())
/// # }
/// ```
pub struct TcpStream {
    inner: Inner,
}

/// The two paths a connection can take. Enum dispatch: no boxing, no
/// allocation on the I/O path.
enum Inner {
    /// Through the model of the loopback path.
    Model(Model),
    /// Through a real OS socket.
    Os(tokio::net::TcpStream),
}

/// A connection of the model, with the readiness tokio would have cached for
/// it (see `readiness.rs`). One per socket: split halves share it.
struct Model {
    sock: Socket,
    sticky: Sticky,
}

/// Which path a [`TcpStream`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The in-process model of the kernel's loopback path.
    Model,
    /// A real OS socket (a non-local address, a namespace with the kernel
    /// switch on, or a loopback connect the model refused that fell through
    /// to a server on the machine's loopback).
    Os,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Model(m) => m.sock.fmt(f),
            Inner::Os(s) => s.fmt(f),
        }
    }
}

/// Calls `$m` on whichever socket the stream holds.
macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.inner {
            Inner::Model(Model { sock: $s, .. }) => $e,
            Inner::Os($s) => $e,
        }
    };
}

impl TcpStream {
    /// Opens a connection to `addr` in the current namespace.
    ///
    /// When `addr` resolves to several addresses they are tried in order and
    /// the last error is returned, as tokio does.
    ///
    /// # Errors
    /// `ConnectionRefused` when nothing listens there (the model's listener
    /// lookup answers the SYN with RST) and, for 127.0.0.0/8 and ::1 with the
    /// namespace's fallthrough on (the default, see `Netns::set_fallthrough`),
    /// nothing listens on the machine's own loopback either: a server there
    /// is reached through a real OS socket ([`Path::Os`]); `AddrNotAvailable` when the ephemeral
    /// port range is used up for this destination; `TimedOut` when SYN
    /// retransmissions run out; `InvalidInput` for an argument that is not an
    /// address. A non-local address is connected through a real OS socket,
    /// and its errors are the OS's own.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping the future closes the connecting socket.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let ns = Netns::current();
        each_addr(addr, |a| Self::connect_addr(&ns, a)).await
    }

    async fn connect_addr(ns: &Netns, addr: SocketAddr) -> io::Result<TcpStream> {
        if ns.kernel_loopback() || !is_local(ns, addr.ip()) {
            let os = tokio::net::TcpStream::connect(addr).await?;
            return Ok(TcpStream::from_os(os));
        }
        match Self::connect_model(ns, addr).await {
            // Fallthrough: nothing of the namespace listens there (the model
            // answered the SYN with RST), so a real server on the machine's
            // loopback may. Only 127.0.0.0/8 (v4-mapped too) and ::1, never an
            // added address.
            Err(refused)
                if refused.kind() == io::ErrorKind::ConnectionRefused
                    && ns.fallthrough()
                    && addr.ip().to_canonical().is_loopback() =>
            {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(os) => Ok(TcpStream::from_os(os)),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(refused),
                    Err(e) => Err(e),
                }
            }
            r => r,
        }
    }

    /// Connects through the model only, without fallthrough (the bridges'
    /// model legs use it too).
    pub(crate) async fn connect_model(ns: &Netns, addr: SocketAddr) -> io::Result<TcpStream> {
        let sock = Socket::connect(ns, addr)?;
        // On loopback the handshake usually completes inside `connect`; take
        // from tokio's cooperative budget so a connect loop still lets the
        // accepting task run (tokio's connect always yields once).
        poll_fn(|cx| {
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            let r = ready!(sock.poll_connect(cx));
            coop.made_progress();
            Poll::Ready(r)
        })
        .await?;
        Ok(TcpStream::from_socket(sock))
    }

    /// A connection of the model that `connect` made.
    pub(crate) fn from_socket(sock: Socket) -> TcpStream {
        TcpStream {
            inner: Inner::Model(Model {
                sock,
                sticky: Sticky::default(),
            }),
        }
    }

    /// A connection of the model that `accept` returned: assumed readable
    /// and writable, as tokio assumes an accepted stream is.
    pub(crate) fn from_accepted(sock: Socket) -> TcpStream {
        TcpStream {
            inner: Inner::Model(Model {
                sock,
                sticky: Sticky::accepted(),
            }),
        }
    }

    pub(crate) fn from_os(os: tokio::net::TcpStream) -> TcpStream {
        TcpStream {
            inner: Inner::Os(os),
        }
    }

    /// Wraps a connected `std` socket, as `tokio::net::TcpStream::from_std`
    /// does. A `std` socket is a kernel socket, so the stream takes the OS
    /// path ([`Path::Os`]), whatever its address.
    ///
    /// The caller is responsible for putting the socket in non-blocking mode
    /// ([`std::net::TcpStream::set_nonblocking`]); otherwise every call on
    /// the stream can block the thread. tokio's debug builds assert it.
    ///
    /// # Errors
    /// What registering the socket with tokio's I/O driver gives.
    ///
    /// # Panics
    /// As tokio's: when not called within a tokio runtime with I/O enabled.
    #[track_caller]
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream::from_os(tokio::net::TcpStream::from_std(stream)?))
    }

    /// Turns an OS-path stream into a [`std::net::TcpStream`] (in
    /// non-blocking mode, as tokio leaves it), like
    /// `tokio::net::TcpStream::into_std`.
    ///
    /// # Errors
    /// `Unsupported` for a connection of the model ([`Path::Model`]): it has
    /// no kernel socket to hand out (the stream is dropped, which closes the
    /// connection). tokio's signature has no room to give the stream back;
    /// check [`path`](TcpStream::path) first to keep it.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        match self.inner {
            Inner::Os(s) => s.into_std(),
            Inner::Model(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "lonet: a connection of the model has no OS socket to convert into std",
            )),
        }
    }

    /// Which path the connection takes: the model, or a real OS socket.
    pub fn path(&self) -> Path {
        match &self.inner {
            Inner::Model(_) => Path::Model,
            Inner::Os(_) => Path::Os,
        }
    }

    /// The local address (`getsockname`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        dispatch!(self, s => s.local_addr())
    }

    /// The peer's address (`getpeername`).
    ///
    /// # Errors
    /// `NotConnected` once the connection was reset, as on Linux.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        dispatch!(self, s => s.peer_addr())
    }

    /// The modeled socket underneath (state, queues), for a connection that
    /// takes the model. Calls made on it directly bypass the readiness that
    /// the stream keeps the way tokio does.
    pub fn socket(&self) -> Option<&Socket> {
        match &self.inner {
            Inner::Model(m) => Some(&m.sock),
            Inner::Os(_) => None,
        }
    }

    /// Receives data without removing it (`MSG_PEEK`), registering the waker
    /// when nothing is queued.
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        match &self.inner {
            Inner::Model(m) => {
                let len = buf.remaining();
                let r = m
                    .sock
                    .poll_recv_with(Some(cx), len, true, |p| buf.put_slice(p));
                m.read_outcome(&r, None);
                r
            }
            Inner::Os(s) => s.poll_peek(cx, buf),
        }
    }

    /// Receives data without removing it from the queue: a later read sees
    /// the same bytes. Waits for data; `Ok(0)` at EOF.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Model(m) => {
                poll_fn(|cx| {
                    let r = m.sock.poll_recv(Some(cx), buf, true);
                    m.read_outcome(&r, None);
                    r
                })
                .await
            }
            Inner::Os(s) => s.peek(buf).await,
        }
    }

    /// Waits for any of `interest` and returns what is ready, with tokio's
    /// rules: readiness stays set until an operation returns `WouldBlock`
    /// (or a `poll_read` comes back short), so this can return at once after
    /// a read that emptied the queue; then `try_read` says `WouldBlock`.
    /// `READ_CLOSED` once the peer's FIN (or a reset) arrived;
    /// `WRITE_CLOSED` once both directions are shut or the connection was
    /// reset (own `shutdown` alone does not set it on Linux). Every task
    /// waiting here is woken by the next event, and returns even if another
    /// task consumed the readiness first: then with what is left, possibly
    /// [`Ready::EMPTY`], as tokio does. `Ready::ERROR` (`EPOLLERR`) is
    /// reported to an interest with `Interest::ERROR` while a socket error
    /// is pending (after a reset, until a call or `take_error` takes it);
    /// `Ready::PRIORITY` is not reported on a connection of the model.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        match &self.inner {
            Inner::Model(m) => {
                let mut waiter = None;
                poll_fn(|cx| m.poll_ready(cx, interest, &mut waiter)).await
            }
            Inner::Os(s) => s.ready(interest).await,
        }
    }

    /// Waits until a read would not block (data, EOF or an error is queued),
    /// or tokio would still think so: see [`ready`](TcpStream::ready).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Interest::READABLE).await.map(|_| ())
    }

    /// Polls for read readiness, with tokio's rules (see
    /// [`ready`](TcpStream::ready)). As in tokio, only the last task to poll
    /// is sure to be woken; on the model every task that polled is.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Model(m) => {
                let coop = ready!(tokio::task::coop::poll_proceed(cx));
                if !m.sticky.read() {
                    ready!(m.sock.poll_read_ready(cx))?;
                }
                coop.made_progress();
                Poll::Ready(Ok(()))
            }
            Inner::Os(s) => s.poll_read_ready(cx),
        }
    }

    /// Reads what is queued without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is queued (which clears the read readiness).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Model(m) => m.try_recv(|| m.sock.poll_recv(None, buf, false)),
            Inner::Os(s) => s.try_read(buf),
        }
    }

    /// Reads into several buffers without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is queued.
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs.iter_mut().filter(|b| !b.is_empty()) {
            let want = buf.len();
            match self.try_read(buf) {
                Ok(n) => {
                    total += n;
                    if n < want {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if let Inner::Model(m) = &self.inner {
            // A later buffer's WouldBlock must not clear what the first read
            // found.
            m.sticky.set_read(true);
        }
        Ok(total)
    }

    /// Reads into a `BufMut` without waiting, advancing it.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is queued.
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        match &self.inner {
            // Copied straight into the buffer's spare room (`put_slice`), so
            // nothing is zeroed first.
            Inner::Model(m) => {
                let len = buf.remaining_mut();
                m.try_recv(|| {
                    m.sock
                        .poll_recv_with(None, len, false, |p| buf.put_slice(p))
                })
            }
            Inner::Os(s) => s.try_read_buf(buf),
        }
    }

    /// Waits until a write would not block (room in the send buffer, or an
    /// error), or tokio would still think so: see
    /// [`ready`](TcpStream::ready).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Interest::WRITABLE).await.map(|_| ())
    }

    /// Polls for write readiness, with tokio's rules (see
    /// [`ready`](TcpStream::ready)). As in tokio, only the last task to poll
    /// is sure to be woken; on the model every task that polled is.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Model(m) => {
                let coop = ready!(tokio::task::coop::poll_proceed(cx));
                if !m.sticky.write() {
                    ready!(m.sock.poll_write_ready(cx))?;
                }
                coop.made_progress();
                Poll::Ready(Ok(()))
            }
            Inner::Os(s) => s.poll_write_ready(cx),
        }
    }

    /// Writes what fits in the send buffer without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when the send buffer is full (which clears the write
    /// readiness); `BrokenPipe` / `ConnectionReset` as Linux gives them.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write_vectored(&[IoSlice::new(buf)])
    }

    /// Writes several buffers without waiting.
    ///
    /// # Errors
    /// As [`try_write`](TcpStream::try_write).
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.inner {
            Inner::Model(m) => {
                let r = match m.sock.poll_send(None, bufs) {
                    Poll::Ready(r) => r,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                };
                match &r {
                    Ok(_) => m.sticky.set_write(true),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => m.sticky.set_write(false),
                    Err(_) => {}
                }
                r
            }
            Inner::Os(s) => s.try_write_vectored(bufs),
        }
    }

    /// `TCP_NODELAY`: off by default, so Nagle holds a small segment while an
    /// earlier small one is unacknowledged.
    pub fn nodelay(&self) -> io::Result<bool> {
        dispatch!(self, s => s.nodelay())
    }

    /// Sets `TCP_NODELAY`; turning it on sends a held segment at once.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        dispatch!(self, s => s.set_nodelay(nodelay))
    }

    /// `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        match &self.inner {
            Inner::Model(m) => m.sock.linger(),
            Inner::Os(s) => socket2::SockRef::from(s).linger(),
        }
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes drop send RST. As on
    /// Linux the time is kept in whole seconds: a fraction is dropped, and a
    /// time under a second is a linger of 0.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        match &self.inner {
            Inner::Model(m) => m.sock.set_linger(dur),
            Inner::Os(s) => socket2::SockRef::from(s).set_linger(dur),
        }
    }

    /// Sets `SO_LINGER` to zero: dropping the stream then resets the
    /// connection (RST) instead of closing it with FIN.
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set_linger(Some(Duration::ZERO))
    }

    /// Takes the socket's pending error (`SO_ERROR`), which the next call
    /// would otherwise report.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        dispatch!(self, s => s.take_error())
    }

    /// `TCP_QUICKACK`, as Linux reads it: `true` unless the connection is in
    /// interactive ("pingpong") mode, where ACKs are delayed; so `true` on a
    /// fresh connection.
    pub fn quickack(&self) -> io::Result<bool> {
        dispatch!(self, s => s.quickack())
    }

    /// Sets `TCP_QUICKACK`, as Linux does: `true` leaves interactive mode and
    /// sends a pending delayed ACK now; it is one-shot, since the connection
    /// may enter interactive mode again when it next replies to data. `false`
    /// enters interactive mode.
    pub fn set_quickack(&self, quickack: bool) -> io::Result<()> {
        dispatch!(self, s => s.set_quickack(quickack))
    }

    /// `IP_TTL` (64 by default).
    pub fn ttl(&self) -> io::Result<u32> {
        dispatch!(self, s => s.ttl())
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    /// `InvalidInput` outside 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        dispatch!(self, s => s.set_ttl(ttl))
    }

    /// Splits into borrowed read and write halves that can be used
    /// concurrently.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split::split(self)
    }

    /// Splits into owned halves. Dropping the write half shuts the write side
    /// down (FIN), as tokio's does; [`OwnedReadHalf::reunite`] puts them back.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned::split_owned(self)
    }

    #[inline]
    pub(crate) fn poll_read_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Model(m) => {
                let coop = ready!(tokio::task::coop::poll_proceed(cx));
                // Copied straight into the unfilled part (`put_slice`), as
                // tokio's own TcpStream reads into it: no zeroing of the
                // caller's whole uninitialized capacity on every read.
                let len = buf.remaining();
                let r = m
                    .sock
                    .poll_recv_with(Some(cx), len, false, |p| buf.put_slice(p));
                // tokio's poll_read on Linux: a read shorter than the buffer
                // shows the queue drained, and clears readiness.
                m.read_outcome(&r, Some(len));
                let _ = ready!(r)?;
                coop.made_progress();
                Poll::Ready(Ok(()))
            }
            // Out of line: the model's path above stays a small leaf.
            Inner::Os(s) => poll_read_os(s, cx, buf),
        }
    }

    /// A write, with tokio's rules: `WouldBlock` clears the write readiness,
    /// and so does a single-buffer write that took less than it was given
    /// (`whole` is that buffer's length: tokio's `poll_write` does that on
    /// Linux; its `poll_write_vectored`, which passes `None`, does not).
    #[inline]
    pub(crate) fn poll_write_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        whole: Option<usize>,
    ) -> Poll<io::Result<usize>> {
        match &self.inner {
            Inner::Model(m) => {
                let coop = ready!(tokio::task::coop::poll_proceed(cx));
                let r = m.sock.poll_send(Some(cx), bufs);
                match &r {
                    Poll::Pending => m.sticky.set_write(false),
                    Poll::Ready(Ok(n)) => m.sticky.set_write(!is_short(*n, whole)),
                    Poll::Ready(Err(_)) => {}
                }
                let n = ready!(r)?;
                coop.made_progress();
                Poll::Ready(Ok(n))
            }
            // Out of line: the model's path above stays a small leaf.
            Inner::Os(s) => poll_write_os(s, cx, bufs, whole),
        }
    }

    /// `shutdown(SHUT_WR)`, with tokio's mapping: `ENOTCONN` (the peer
    /// already reset the connection) is not an error for `poll_shutdown`.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        let r = match &self.inner {
            Inner::Model(m) => m.sock.shutdown_write(),
            Inner::Os(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }
}

/// Whether a write of `n` bytes took less than the single buffer of
/// `whole` bytes it was given (never for a vectored write, `None`).
#[inline]
fn is_short(n: usize, whole: Option<usize>) -> bool {
    matches!(whole, Some(len) if 0 < n && n < len)
}

/// [`TcpStream::poll_read_priv`] on a real OS socket: through `&self`, as
/// tokio's own split halves do it, and with tokio's poll_read rules:
/// readiness, then a read; `WouldBlock` or a read shorter than the buffer
/// clears readiness (through `try_io`, so with the tick it observed).
#[inline(never)]
fn poll_read_os(
    s: &tokio::net::TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    loop {
        ready!(s.poll_read_ready(cx))?;
        let unfilled = buf.initialize_unfilled();
        let len = unfilled.len();
        let mut short = 0;
        let r = s.try_io(Interest::READABLE, || {
            let n = (&*socket2::SockRef::from(s)).read(unfilled)?;
            if 0 < n && n < len {
                short = n;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match r {
            Ok(n) => {
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => {
                buf.advance(short);
                return Poll::Ready(Ok(()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// [`TcpStream::poll_write_priv`] on a real OS socket, with tokio's
/// poll_write rules (readiness, then a write, through `try_io`).
#[inline(never)]
fn poll_write_os(
    s: &tokio::net::TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
    whole: Option<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(s.poll_write_ready(cx))?;
        let mut short = 0;
        let r = s.try_io(Interest::WRITABLE, || {
            let n = (&*socket2::SockRef::from(s)).write_vectored(bufs)?;
            if is_short(n, whole) {
                short = n;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => {
                return Poll::Ready(Ok(short))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

impl Model {
    /// Records a read's (or peek's) outcome in the sticky readiness, where
    /// tokio keeps or clears its bit: `Pending` or `WouldBlock` clears it; so
    /// does a `poll_read` of `Some(len)` that came back shorter; a success
    /// keeps it; an error leaves it (the model reports the socket readable
    /// from then on anyway).
    #[inline]
    fn read_outcome(&self, r: &Poll<io::Result<usize>>, poll_read_len: Option<usize>) {
        match r {
            Poll::Pending => self.sticky.set_read(false),
            Poll::Ready(Ok(n)) => {
                let short = matches!(poll_read_len, Some(len) if 0 < *n && *n < len);
                self.sticky.set_read(!short);
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                self.sticky.set_read(false)
            }
            Poll::Ready(Err(_)) => {}
        }
    }

    /// A `try_read*`: `recv` without a waker, `WouldBlock` when nothing is
    /// queued. Only `WouldBlock` clears readiness (tokio's `try_io`).
    fn try_recv(&self, recv: impl FnOnce() -> Poll<io::Result<usize>>) -> io::Result<usize> {
        let r = recv();
        self.read_outcome(&r, None);
        match r {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// `ready(interest)`: what is ready now (the model's state and the sticky
    /// bits); else, once `waiter` was woken by an event, what is left
    /// (possibly nothing, as a woken tokio waiter returns); else register
    /// `waiter` on the wait queues of `interest` and wait.
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
            "a connection",
        )
    }
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    /// [`TcpStream::from_std`].
    fn try_from(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_std(stream)
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, &[IoSlice::new(buf)], Some(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, bufs, None)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered above the socket.
        Poll::Ready(Ok(()))
    }

    /// `shutdown(SHUT_WR)`: FIN after the queued data.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_write())
    }
}

#[cfg(test)]
mod tests {
    use super::TcpStream;
    use crate::net::TcpListener;
    use lonet_runtime::Netns;
    use std::future::poll_fn;
    use std::mem::MaybeUninit;
    use std::pin::Pin;
    use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("local_addr");
        let c = TcpStream::connect(addr).await.expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        (c, s)
    }

    /// Reads and peeks through an uninitialized `ReadBuf` (copied in with
    /// `put_slice`, never zeroed), across several queued chunks, a partly
    /// filled buffer, a short buffer, then EOF; `try_read_buf` likewise.
    #[tokio::test(flavor = "current_thread")]
    async fn reads_into_uninitialized_buffers() {
        let ns = Netns::new();
        let _g = ns.enter();
        let (mut c, mut s) = pair().await;
        c.set_nodelay(true).expect("nodelay");
        for part in [&b"hello, "[..], b"uninit", b" world"] {
            c.write_all(part).await.expect("write");
        }
        let mut mem = [MaybeUninit::<u8>::uninit(); 64];
        let mut buf = ReadBuf::uninit(&mut mem);
        buf.put_slice(b">");
        let n = poll_fn(|cx| s.poll_peek(cx, &mut buf)).await.expect("peek");
        assert_eq!((n, buf.filled()), (19, &b">hello, uninit world"[..]));
        buf.set_filled(1);
        let mut short = ReadBuf::uninit(&mut mem[1..10]);
        poll_fn(|cx| Pin::new(&mut s).poll_read(cx, &mut short))
            .await
            .expect("read");
        assert_eq!(short.filled(), b"hello, un");
        let mut rest = Vec::with_capacity(4);
        assert_eq!(s.try_read_buf(&mut rest).expect("try_read_buf"), 10);
        assert_eq!(rest, b"init world");
        c.shutdown().await.expect("shutdown");
        let mut end = ReadBuf::uninit(&mut mem);
        poll_fn(|cx| Pin::new(&mut s).poll_read(cx, &mut end))
            .await
            .expect("eof");
        assert!(end.filled().is_empty());
        let mut none = [0u8; 0];
        assert_eq!(s.try_read_buf(&mut &mut none[..]).expect("empty"), 0);
    }
}
