//! Bridges between a namespace's model and the machine's loopback:
//! [`expose`](NetnsBridgeExt::expose) a service of the model on the machine's
//! 127.0.0.1, [`forward`](NetnsBridgeExt::forward) a port of the model to a
//! real server on the machine's 127.0.0.1. (The third bridge, fallthrough, is
//! a flag of the namespace: [`Netns::set_fallthrough`].)
//!
//! `Netns` lives in lonet-runtime, which knows nothing of tokio, while a
//! bridge needs tokio's OS sockets and tasks; so the bridges are an extension
//! trait, [`NetnsBridgeExt`], implemented for [`Netns`]: bring it into scope
//! (`use lonet::bridge::NetnsBridgeExt;`) and call `ns.expose(..)` and
//! `ns.forward(..)`. The relay tasks are spawned on the tokio runtime current
//! at the call.
//!
//! Each accepted connection gets one relay task joining two legs, one a
//! connection of the model (an ordinary model socket: `ns.sockets()` lists
//! it, faults, captures and counters apply to it), the other a real kernel
//! socket on the machine's loopback. The relay:
//! - copies each direction through a bounded buffer, reading no more from
//!   one leg until the other has taken what was read (backpressure both
//!   ways, no loss, no reordering);
//! - passes a FIN on as a `shutdown` of the other leg's write side
//!   (half-close), and closes both legs when both directions are done;
//! - passes a reset on as a reset (`SO_LINGER` 0, then close): an error on
//!   either leg resets both;
//! - ends with its connection, and with the guard ([`Exposed`], [`Forward`]):
//!   dropping the guard closes the listener and resets the connections still
//!   relayed.

use crate::net::TcpStream;
use lonet_runtime::unstable::{is_local, Socket};
use lonet_runtime::Netns;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinSet};

/// The size each direction's relay buffer starts at.
const RELAY_BUF: usize = 64 * 1024;

/// The most a direction's relay buffer grows to: what a relay holds in
/// flight per direction beyond the two sockets' own buffers. A buffer
/// doubles, from [`RELAY_BUF`], each time one read filled it (the leg had
/// at least that much queued), so only a connection that moves data in bulk
/// gets the larger buffer. Draining a kernel socket in reads this large
/// keeps its receive window open: with 64 KiB reads a bulk sender on the
/// machine's loopback keeps meeting a zero window, and the kernel's time
/// goes into window updates and pure ACKs (about seven times as many as
/// with 1 MiB reads) instead of data.
const RELAY_MAX: usize = 1024 * 1024;

/// How long an accept loop pauses after an accept error (EMFILE, ...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The backlog of the bridges' listeners (tokio's, capped by `somaxconn`).
const BACKLOG: u32 = 1024;

/// Bridges between a namespace and the machine's loopback, as methods of
/// [`Netns`].
///
/// An extension trait because `Netns` belongs to lonet-runtime, which has no
/// tokio; every method spawns its tasks on the tokio runtime current at the
/// call, so it must be called from within one.
///
/// # Examples
/// ```
/// use lonet_transport::bridge::NetnsBridgeExt;
/// use lonet_transport::net::TcpListener;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let ns = lonet_transport::Netns::new();
/// let listener = ns.clone().scope(TcpListener::bind("127.0.0.1:8080")).await?;
/// let exposed = ns.expose("127.0.0.1:8080".parse().unwrap())?;
///
/// // Any client on the machine: here a plain tokio socket.
/// let mut client = tokio::net::TcpStream::connect(exposed.os_addr()).await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// # Ok(())
/// # }
/// ```
pub trait NetnsBridgeExt {
    /// Exposes `model_addr` on the machine's loopback: opens a listener on
    /// 127.0.0.1 (or `::1` for an IPv6 `model_addr`) on a port the kernel
    /// picks ([`Exposed::os_addr`]), and relays each connection it accepts
    /// into the namespace, as a connection to `model_addr` from a socket of
    /// the model. Any client of the machine (reqwest, curl, `std::net`,
    /// another process) then reaches the service of the model.
    ///
    /// # Errors
    /// `InvalidInput` when `model_addr` is not local to the namespace;
    /// `Other` outside a tokio runtime; what binding the OS listener gives.
    fn expose(&self, model_addr: SocketAddr) -> io::Result<Exposed>;

    /// As [`expose`](NetnsBridgeExt::expose), on `os_addr`, which must be a
    /// loopback address (127.0.0.0/8 or `::1`; port 0 lets the kernel pick).
    ///
    /// # Errors
    /// `InvalidInput` for an `os_addr` outside the loopback range, or a
    /// `model_addr` not local to the namespace; `AddrInUse` and the other
    /// errors of binding on the machine.
    fn expose_on(&self, model_addr: SocketAddr, os_addr: SocketAddr) -> io::Result<Exposed>;

    /// Forwards `model_addr` to `os_target` on the machine's loopback: binds
    /// a listener of the model on `model_addr` and relays each connection it
    /// accepts to `os_target` through a real OS socket. Clients of the model
    /// then reach a real server through the model, and a fault on
    /// `model_addr` ([`Netns::add_fault`]) puts latency, loss or a partition
    /// in front of it. A connection the target refuses is reset.
    ///
    /// # Errors
    /// `InvalidInput` when `os_target` is not a loopback address (only the
    /// machine's loopback is ever touched) or `model_addr` is not local to
    /// the namespace; `AddrInUse` when the model's port is taken; `Other`
    /// outside a tokio runtime.
    fn forward(&self, model_addr: SocketAddr, os_target: SocketAddr) -> io::Result<Forward>;
}

impl NetnsBridgeExt for Netns {
    fn expose(&self, model_addr: SocketAddr) -> io::Result<Exposed> {
        let os_ip = match model_addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        self.expose_on(model_addr, SocketAddr::new(os_ip, 0))
    }

    fn expose_on(&self, model_addr: SocketAddr, os_addr: SocketAddr) -> io::Result<Exposed> {
        check_loopback(
            os_addr,
            "expose: the machine's side must be a loopback address",
        )?;
        check_model(self, model_addr)?;
        let handle = runtime()?;
        let std_listener = std::net::TcpListener::bind(os_addr)?;
        std_listener.set_nonblocking(true)?;
        let os_addr = std_listener.local_addr()?;
        let listener = {
            let _rt = handle.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let ns = self.clone();
        let task = handle.spawn(async move {
            let mut relays = JoinSet::new();
            loop {
                // Reap finished relays as we go, so the set stays small.
                while relays.try_join_next().is_some() {}
                let (os, _peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(_) => {
                        // EMFILE and the like: pause accepting, as axum's
                        // serve does, and keep the relays going.
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let ns = ns.clone();
                relays.spawn(async move {
                    // Reset, not closed, if the connect fails or the guard
                    // goes first (an abort between the connect and the
                    // relay must not look like a clean close).
                    let mut os = Waiting(Some(TcpStream::from_os(os)));
                    if let Ok(model) = TcpStream::connect_model(&ns, model_addr).await {
                        if let Some(os) = os.0.take() {
                            relay(os, model).await;
                        }
                    }
                });
            }
        });
        Ok(Exposed {
            os_addr,
            model_addr,
            task: task.abort_handle(),
        })
    }

    fn forward(&self, model_addr: SocketAddr, os_target: SocketAddr) -> io::Result<Forward> {
        check_loopback(
            os_target,
            "forward: the target must be on the machine's loopback",
        )?;
        check_model(self, model_addr)?;
        let handle = runtime()?;
        let listener = Socket::listen(self, model_addr, BACKLOG)?;
        let model_addr = listener.local_addr()?;
        let listener = crate::net::TcpListener::from_parts(Some(listener), None);
        let task = handle.spawn(async move {
            let mut relays = JoinSet::new();
            loop {
                while relays.try_join_next().is_some() {}
                let (model, _peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(_) => {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                relays.spawn(async move {
                    // As in expose: reset if the connect fails or the guard
                    // goes before the relay starts.
                    let mut model = Waiting(Some(model));
                    if let Ok(os) = tokio::net::TcpStream::connect(os_target).await {
                        if let Some(model) = model.0.take() {
                            relay(TcpStream::from_os(os), model).await;
                        }
                    }
                });
            }
        });
        Ok(Forward {
            model_addr,
            os_target,
            task: task.abort_handle(),
        })
    }
}

fn check_loopback(addr: SocketAddr, what: &'static str) -> io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, what))
    }
}

fn check_model(ns: &Netns, addr: SocketAddr) -> io::Result<()> {
    if is_local(ns, addr.ip()) && !addr.ip().is_unspecified() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "lonet bridge: the model's address must be local to the namespace",
        ))
    }
}

fn runtime() -> io::Result<Handle> {
    Handle::try_current()
        .map_err(|_| io::Error::other("lonet bridge: must be called from within a tokio runtime"))
}

/// The guard of [`NetnsBridgeExt::expose`]: a listener on the machine's
/// loopback relaying into the namespace. Dropping it closes the listener
/// and resets the connections it still relays.
#[must_use = "dropping the guard closes the exposed listener"]
pub struct Exposed {
    os_addr: SocketAddr,
    model_addr: SocketAddr,
    task: AbortHandle,
}

impl Exposed {
    /// The address of the listener on the machine's loopback: where clients
    /// of the machine connect.
    pub fn os_addr(&self) -> SocketAddr {
        self.os_addr
    }

    /// The address of the model each connection is relayed to.
    pub fn model_addr(&self) -> SocketAddr {
        self.model_addr
    }
}

impl fmt::Debug for Exposed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposed")
            .field("os_addr", &self.os_addr)
            .field("model_addr", &self.model_addr)
            .finish()
    }
}

impl Drop for Exposed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The guard of [`NetnsBridgeExt::forward`]: a listener of the model
/// relaying to a server on the machine's loopback. Dropping it closes the
/// listener and resets the connections it still relays.
#[must_use = "dropping the guard closes the forwarding listener"]
pub struct Forward {
    model_addr: SocketAddr,
    os_target: SocketAddr,
    task: AbortHandle,
}

impl Forward {
    /// The address of the model's listener (its port resolved, when 0 was
    /// asked for).
    pub fn model_addr(&self) -> SocketAddr {
        self.model_addr
    }

    /// The server on the machine's loopback that connections go to.
    pub fn os_target(&self) -> SocketAddr {
        self.os_target
    }
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("model_addr", &self.model_addr)
            .field("os_target", &self.os_target)
            .finish()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Resets a connection: `SO_LINGER` 0, so the drop that follows sends RST.
fn reset(s: &TcpStream) {
    // Best effort: a socket already reset has nothing more to send.
    let _ = s.set_zero_linger();
}

/// The accepted leg of a relay while its other leg connects: dropped still
/// holding it (the connect failed, or the task was aborted with its guard),
/// it resets it, as the relay would have.
struct Waiting(Option<TcpStream>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            reset(s);
        }
    }
}

/// The two legs of a relay. Dropped before both directions finished (an
/// error, or the task aborted with its guard), it resets both.
struct Legs {
    a: TcpStream,
    b: TcpStream,
    clean: bool,
}

impl Drop for Legs {
    fn drop(&mut self) {
        if !self.clean {
            reset(&self.a);
            reset(&self.b);
        }
    }
}

/// One direction of a relay: a bounded buffer between a reader and a writer.
struct Dir {
    /// `buf[pos..cap]` is read and not yet written.
    buf: Box<[u8]>,
    pos: usize,
    cap: usize,
    /// The last read filled `buf`: the next one gets a buffer twice as
    /// large, up to [`RELAY_MAX`].
    grow: bool,
    eof: bool,
    done: bool,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            buf: vec![0; RELAY_BUF].into_boxed_slice(),
            pos: 0,
            cap: 0,
            grow: false,
            eof: false,
            done: false,
        }
    }

    /// Moves bytes from `r` to `w` until `r` has nothing more for now or `w`
    /// is full; at `r`'s EOF, shuts `w`'s write side down. Ready(Ok) when the
    /// direction is finished.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.pos == self.cap && !self.eof {
                if self.grow {
                    // Empty, so nothing to carry over.
                    let len = (self.buf.len() * 2).min(RELAY_MAX);
                    self.buf = vec![0; len].into_boxed_slice();
                    self.grow = false;
                }
                let mut rb = ReadBuf::new(&mut self.buf);
                ready!(Pin::new(&mut *r).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    self.eof = true;
                } else {
                    self.pos = 0;
                    self.cap = n;
                    self.grow = n == self.buf.len() && n < RELAY_MAX;
                }
            }
            while self.pos < self.cap {
                let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.buf[self.pos..self.cap]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
            }
            if self.eof {
                ready!(Pin::new(&mut *w).poll_shutdown(cx))?;
                self.done = true;
            }
        }
    }
}

/// Relays between two connected legs until both directions are done, or
/// resets both on the first error.
async fn relay(a: TcpStream, b: TcpStream) {
    // Relays add no delay of their own: the endpoints' Nagle already acted.
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let mut legs = Legs { a, b, clean: false };
    let mut ab = Dir::new();
    let mut ba = Dir::new();
    let r = poll_fn(|cx| {
        let Legs { a, b, .. } = &mut legs;
        let x = ab.poll_copy(cx, a, b)?;
        let y = ba.poll_copy(cx, b, a)?;
        if x.is_ready() && y.is_ready() {
            Poll::Ready(Ok::<(), io::Error>(()))
        } else {
            Poll::Pending
        }
    })
    .await;
    legs.clean = r.is_ok();
}

#[cfg(test)]
mod tests {
    use super::{Dir, RELAY_BUF, RELAY_MAX};
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// A leg with `left` bytes queued, handed out in reads of at most
    /// `queued` bytes (what the socket holds at each read): byte `i` of the
    /// stream is `i % 251`. Records the size of every buffer it is asked
    /// to fill.
    struct Source {
        next: u64,
        left: u64,
        queued: usize,
        asked: Vec<usize>,
    }

    impl AsyncRead for Source {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.asked.push(buf.remaining());
            let n = (buf.remaining() as u64)
                .min(self.queued as u64)
                .min(self.left);
            let start = self.next;
            let bytes: Vec<u8> = (start..start + n).map(|i| (i % 251) as u8).collect();
            buf.put_slice(&bytes);
            self.next += n;
            self.left -= n;
            Poll::Ready(Ok(()))
        }
    }

    /// A leg that takes at most `room` bytes before it is full (`Pending`),
    /// checking the stream's bytes in order.
    struct Sink {
        got: u64,
        room: usize,
        shut: bool,
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.room);
            if n == 0 {
                return Poll::Pending;
            }
            for &b in &buf[..n] {
                assert_eq!(b, (self.got % 251) as u8, "byte {} out of order", self.got);
                self.got += 1;
            }
            self.room -= n;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    fn source(left: u64, queued: usize) -> Source {
        Source {
            next: 0,
            left,
            queued,
            asked: Vec::new(),
        }
    }

    fn sink(room: usize) -> Sink {
        Sink {
            got: 0,
            room,
            shut: false,
        }
    }

    /// A leg that always has more queued than the buffer holds makes the
    /// buffer double on each read, from 64 KiB up to 1 MiB and no further;
    /// every byte crosses once, in order, and EOF becomes a shutdown.
    #[test]
    fn a_bulk_direction_doubles_its_buffer_up_to_the_cap() {
        let total = 4 * RELAY_MAX as u64 + 7;
        let mut r = source(total, usize::MAX);
        let mut w = sink(usize::MAX);
        let mut d = Dir::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(d.poll_copy(&mut cx, &mut r, &mut w).is_ready());
        assert_eq!((w.got, w.shut), (total, true));
        let sizes: Vec<usize> = r.asked.iter().copied().take(6).collect();
        assert_eq!(
            sizes,
            [
                RELAY_BUF,
                2 * RELAY_BUF,
                4 * RELAY_BUF,
                8 * RELAY_BUF,
                RELAY_MAX,
                RELAY_MAX
            ]
        );
        assert_eq!(RELAY_MAX, 16 * RELAY_BUF);
        assert!(r.asked.iter().all(|&n| n <= RELAY_MAX));
    }

    /// Reads that never fill the buffer (a leg with little queued at a
    /// time, as an interactive connection) leave it at 64 KiB.
    #[test]
    fn short_reads_keep_the_buffer_small() {
        let mut r = source(1 << 20, 1000);
        let mut w = sink(usize::MAX);
        let mut d = Dir::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(d.poll_copy(&mut cx, &mut r, &mut w).is_ready());
        assert_eq!(w.got, 1 << 20);
        assert!(r.asked.iter().all(|&n| n == RELAY_BUF), "{:?}", r.asked);
    }

    /// Backpressure: while the writing leg takes nothing, the relay reads
    /// no more than one buffer's worth; what it read crosses once the
    /// writing leg has room again.
    #[test]
    fn a_full_writer_stops_the_reads() {
        let mut r = source(u64::MAX, usize::MAX);
        let mut w = sink(3 * RELAY_MAX);
        let mut d = Dir::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(d.poll_copy(&mut cx, &mut r, &mut w).is_pending());
        let read = r.next;
        assert!(
            read - w.got <= RELAY_MAX as u64,
            "{read} read, {} written",
            w.got
        );
        // Polled again with the writer still full: nothing more is read.
        assert!(d.poll_copy(&mut cx, &mut r, &mut w).is_pending());
        assert_eq!(r.next, read);
        w.room = usize::MAX;
        r.left = 0; // EOF after what was queued
        assert!(d.poll_copy(&mut cx, &mut r, &mut w).is_ready());
        assert_eq!((w.got, w.shut), (read, true));
    }
}
