//! The socket calls (net/socket.c, net/ipv4/af_inet.c, tcp.c): what
//! `connect`, `listen`, `accept`, `recvmsg`, `sendmsg`, `shutdown`,
//! `getsockname`/`getpeername`, `setsockopt` and `close` do to a modeled
//! socket. [`Socket`] is the handle the tokio-facing layer holds; dropping the
//! last handle is `close()`.
//!
//! Every call that can send a segment runs the softirq it raised before it
//! returns (`release_sock` + `local_bh_enable`), after the socket lock is
//! released, as the kernel does.

use crate::ctx::Ctx;
use crate::errno::{err, EADDRINUSE, EADDRNOTAVAIL, EINVAL, ENETUNREACH, ENOTCONN, EPIPE};
use crate::fib::{unmap, RouteType};
use crate::inet_hashtables::{BindEntry, BindKind};
use crate::netns::Netns;
use crate::stats::inc;
use crate::tcp::minisocks::{tw_isn, tw_reuse_allowed};
use crate::tcp::{Sock, TcpState, WaitQueue};
use bytes::Bytes;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A modeled TCP socket (`struct socket`). Dropping it closes it: FIN after
/// the queued data, or RST if received data was left unread.
pub struct Socket {
    sk: Arc<Sock>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.sk.lock();
        f.debug_struct("Socket")
            .field("state", &s.state)
            .field("local", &s.user_addr(s.local))
            .field("remote", &s.user_addr(s.remote))
            .finish()
    }
}

/// What [`Socket::readiness`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Data, EOF or an error is waiting for `recv`.
    pub readable: bool,
    /// `send` would accept bytes (or fail at once).
    pub writable: bool,
    /// The read side is closed (FIN received or reset).
    pub read_closed: bool,
    /// The write side is closed (shutdown or reset).
    pub write_closed: bool,
}

fn register(q: &mut WaitQueue, cx: &Context<'_>) {
    q.register(cx.waker());
}

/// Normalizes a destination: v4-mapped to IPv4, the unspecified address to
/// the loopback address of its family (Linux: connecting to 0.0.0.0 means
/// 127.0.0.1).
fn normalize_dst(addr: SocketAddr) -> SocketAddr {
    let ip = match unmap(addr.ip()) {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// The `i`-th candidate offset into a port range of `range` ports, starting
/// at `start`: first every offset of parity `parity`, then the others. Linux
/// (since 4.6) has `connect` prefer even offsets and `bind(0)` odd ones, so
/// the two rarely collide, and a client never lands on a port a test just
/// freed with `bind(0)`.
fn port_offset(start: u32, i: u32, range: u32, parity: u32) -> u32 {
    let same = range.div_ceil(2) - (range % 2) * parity;
    let (k, p) = if i < same {
        (i, parity)
    } else {
        (i - same, parity ^ 1)
    };
    let count = if p == 0 { range.div_ceil(2) } else { range / 2 };
    let base = (start / 2) % count.max(1);
    2 * ((base + k) % count.max(1)) + p
}

/// Whether the namespace can deliver to `ip` through `lo` (`fib_lookup` gives
/// `RTN_LOCAL`).
pub fn is_local(ns: &Netns, ip: IpAddr) -> bool {
    let ip = unmap(ip);
    ip.is_unspecified() || matches!(ns.0.fib.fib_lookup(ip), Some(r) if r.rtype == RouteType::Local)
}

impl Socket {
    /// `socket()`: a new unbound socket in `ns`.
    pub fn new(ns: &Netns) -> Socket {
        Socket {
            sk: Sock::new(&ns.0, |_| {}),
        }
    }

    /// `socket()` + `connect()` to `addr`: routes the destination, picks the
    /// source address (the route's preferred source) and an ephemeral port
    /// (`inet_hash_connect`), and sends the SYN. On loopback the handshake
    /// usually completes before this returns; [`poll_connect`] reports it.
    ///
    /// # Errors
    /// `ENETUNREACH` for a destination the local table does not hold (or a
    /// broadcast one); `EADDRNOTAVAIL` when no ephemeral port is left for this
    /// destination.
    ///
    /// [`poll_connect`]: Socket::poll_connect
    pub fn connect(ns: &Netns, addr: SocketAddr) -> io::Result<Socket> {
        let sock = Socket::new(ns);
        sock.start_connect(addr)?;
        Ok(sock)
    }

    /// `connect()` on this socket (bound or not): sends the SYN. A bound
    /// socket keeps its address and port; an unbound one gets the route's
    /// preferred source and an ephemeral port.
    ///
    /// # Errors
    /// As [`connect`](Socket::connect); `EISCONN` if it already connected or
    /// listens; `EADDRNOTAVAIL` if the bound address and port already have a
    /// connection to `addr`.
    pub fn start_connect(&self, addr: SocketAddr) -> io::Result<()> {
        let sk = &self.sk;
        let nsi = &*sk.ns;
        let daddr = normalize_dst(addr);
        let route = match nsi.fib.fib_lookup(daddr.ip()) {
            Some(r) if r.rtype == RouteType::Local => r,
            _ => return Err(err(ENETUNREACH)),
        };
        let sysctl = nsi.sysctl();
        let mtu = nsi.lo.mtu.load(Relaxed);
        let mut ctx = Ctx::process(nsi);
        {
            let mut s = sk.lock();
            if s.state != TcpState::Close || s.hashed || s.err != 0 {
                return Err(err(libc::EISCONN));
            }
            let bound = s.bound.then_some(s.local);
            let saddr_ip = match bound {
                Some(b) if !b.ip().is_unspecified() => b.ip(),
                _ => route.prefsrc,
            };
            {
                let now = nsi.ms(ctx.now());
                let mut t = nsi.tables.write().unwrap_or_else(|e| e.into_inner());
                t.tw_sweep_if_due(now, false);
                // A TIME_WAIT entry on the chosen 4-tuple, taken over.
                let mut recycle = None;
                let port = match bound {
                    Some(b) if b.port() != 0 => {
                        // __inet_check_established without a twp: a bound
                        // port takes a TIME_WAIT 4-tuple over whatever
                        // tcp_tw_reuse says (Linux requires timestamps,
                        // which loopback always has).
                        let key = (SocketAddr::new(saddr_ip, b.port()), daddr);
                        if t.ehash.contains_key(&key) {
                            return Err(err(EADDRNOTAVAIL));
                        }
                        recycle = t.tw_kill(&key);
                        b.port()
                    }
                    _ => {
                        // inet_hash_connect: an ephemeral port whose 4-tuple
                        // is unused (or in TIME_WAIT that tcp_tw_reuse lets
                        // us take over) and that no bind() owns.
                        let (lo, hi) = sysctl.ip_local_port_range;
                        let range = u32::from(hi) - u32::from(lo) + 1;
                        let start = t.connect_rover;
                        let mut chosen = None;
                        for i in 0..range {
                            let off = port_offset(start, i, range, 0);
                            let port = (u32::from(lo) + off) as u16;
                            if let Some(owners) = t.bhash.get(&port) {
                                if owners.iter().any(|e| e.kind != BindKind::Connect) {
                                    continue;
                                }
                            }
                            if t.tw_port_bound(port) {
                                continue;
                            }
                            let key = (SocketAddr::new(saddr_ip, port), daddr);
                            if t.ehash.contains_key(&key) {
                                continue;
                            }
                            // The kernel would also wait tcp_tw_reuse_delay
                            // (1 s) after the entry was made; the model
                            // reuses at once (it has no timestamps to order
                            // the two incarnations by anyway).
                            if tw_reuse_allowed(sysctl.tcp_tw_reuse, &key) {
                                recycle = t.tw_kill(&key);
                            } else if let Some(tw) = t.tw.get(&key) {
                                if tw.expires > now {
                                    continue;
                                }
                                recycle = t.tw_kill(&key);
                            }
                            chosen = Some((port, off));
                            break;
                        }
                        let Some((port, off)) = chosen else {
                            return Err(err(EADDRNOTAVAIL));
                        };
                        t.connect_rover = off + 2;
                        t.bhash.entry(port).or_default().push(BindEntry {
                            addr: saddr_ip,
                            sock_id: s.id,
                            kind: BindKind::Connect,
                            reuse: false,
                        });
                        port
                    }
                };
                s.local = SocketAddr::new(saddr_ip, port);
                s.remote = daddr;
                if let Some(tw) = recycle {
                    if tw.expires > now {
                        inc(&nsi.mib.tw_recycled);
                    }
                    // tcp_twsk_unique: start beyond the old incarnation.
                    s.set_iss(tw_isn(&tw));
                }
                t.ehash.insert((s.local, daddr), sk.clone());
            }
            s.bound = true;
            s.hashed = true;
            nsi.socks.inuse.fetch_add(1, Relaxed);
            s.syn_retries = sysctl.tcp_syn_retries;
            s.init_mss(mtu);
            s.init_snd_after_syn();
            s.set_state(nsi, TcpState::SynSent);
            inc(&nsi.mib.active_opens);
            s.send_syn(&mut ctx, false);
        }
        ctx.local_bh_enable();
        Ok(())
    }

    /// Waits for the handshake: `Ok` once established, the error the
    /// connection got otherwise (`ECONNREFUSED` after an RST, `ETIMEDOUT`
    /// after the SYN retries).
    pub fn poll_connect(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.sk.lock();
        match s.state {
            TcpState::SynSent | TcpState::SynRecv => {
                register(&mut s.tx_waiters, cx);
                Poll::Pending
            }
            TcpState::Close if s.err != 0 => {
                let e = std::mem::take(&mut s.err);
                Poll::Ready(Err(err(e)))
            }
            _ => Poll::Ready(Ok(())),
        }
    }

    /// `bind()` + `listen(backlog)` with `SO_REUSEADDR`, as
    /// `tokio::net::TcpListener::bind` does. Port 0 picks a free port from
    /// `ip_local_port_range`. The accept queue holds `min(backlog,
    /// somaxconn) + 1` connections.
    ///
    /// # Errors
    /// `EADDRNOTAVAIL` for an address that is not local to the namespace,
    /// `EADDRINUSE` when the port is taken on an overlapping address (or no
    /// ephemeral port is free).
    pub fn listen(ns: &Netns, addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
        let sock = Socket::new(ns);
        sock.bind(addr, true)?;
        sock.start_listen(backlog)?;
        Ok(sock)
    }

    /// `bind()`: takes `addr` (port 0: a free port from
    /// `ip_local_port_range`) for this socket. `reuse` is `SO_REUSEADDR`: two
    /// sockets that both set it may share a port while neither listens.
    ///
    /// # Errors
    /// `EADDRNOTAVAIL` for an address that is not local to the namespace;
    /// `EADDRINUSE` for a port taken on an overlapping address; `EINVAL` if
    /// the socket is already bound.
    pub fn bind(&self, addr: SocketAddr, reuse: bool) -> io::Result<()> {
        let sk = &self.sk;
        let nsi = &*sk.ns;
        let ip = addr.ip();
        let wire_ip = unmap(ip);
        if !is_local(&Netns(sk.ns.clone()), wire_ip) {
            return Err(err(EADDRNOTAVAIL));
        }
        let sysctl = nsi.sysctl();
        let mut s = sk.lock();
        if s.bound || s.state != TcpState::Close {
            return Err(err(EINVAL));
        }
        let now = nsi.ms(nsi.clock_now());
        let mut t = nsi.tables.write().unwrap_or_else(|e| e.into_inner());
        t.tw_sweep_if_due(now, false);
        let id = s.id;
        let port = if addr.port() != 0 {
            if t.bind_conflict(addr.port(), wire_ip, reuse, id)
                || t.tw_bind_conflict(addr.port(), wire_ip, reuse, now)
            {
                return Err(err(EADDRINUSE));
            }
            addr.port()
        } else {
            // inet_csk_find_open_port
            let (lo, hi) = sysctl.ip_local_port_range;
            let range = u32::from(hi) - u32::from(lo) + 1;
            let start = t.bind_rover;
            let found = (0..range).find_map(|i| {
                let off = port_offset(start, i, range, 1);
                let port = (u32::from(lo) + off) as u16;
                (!t.bhash.contains_key(&port) && !t.tw_port_used(port)).then_some((port, off))
            });
            let Some((port, off)) = found else {
                return Err(err(EADDRINUSE));
            };
            t.bind_rover = off + 2;
            port
        };
        t.bhash.entry(port).or_default().push(BindEntry {
            addr: wire_ip,
            sock_id: id,
            kind: BindKind::Bound,
            reuse,
        });
        s.local = SocketAddr::new(wire_ip, port);
        s.v6_mapped = ip.is_ipv6() && wire_ip.is_ipv4();
        s.bound = true;
        s.sk_reuse = reuse;
        Ok(())
    }

    /// `listen(backlog)` on a bound socket (an unbound one is bound to
    /// 0.0.0.0 and a free port first, as Linux's autobind does).
    ///
    /// # Errors
    /// `EADDRINUSE` if another socket listens on an overlapping address and
    /// port; `EINVAL` if it is connected.
    pub fn start_listen(&self, backlog: u32) -> io::Result<()> {
        if !self.sk.lock().bound {
            self.bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), false)?;
        }
        let sk = &self.sk;
        let nsi = &*sk.ns;
        let sysctl = nsi.sysctl();
        let mut s = sk.lock();
        if s.state == TcpState::Listen {
            s.max_ack_backlog = backlog.min(sysctl.somaxconn);
            return Ok(());
        }
        if s.state != TcpState::Close || s.hashed {
            return Err(err(EINVAL));
        }
        let mut t = nsi.tables.write().unwrap_or_else(|e| e.into_inner());
        let (port, ip, id) = (s.local.port(), s.local.ip(), s.id);
        // inet_csk_listen_start re-checks the port, now as a listener.
        let reuse = t
            .bhash
            .get(&port)
            .and_then(|v| v.iter().find(|e| e.sock_id == id))
            .is_some_and(|e| e.reuse);
        let now = nsi.ms(nsi.clock_now());
        if t.bind_conflict(port, ip, reuse, id) || t.tw_bind_conflict(port, ip, reuse, now) {
            return Err(err(EADDRINUSE));
        }
        if let Some(e) = t
            .bhash
            .get_mut(&port)
            .and_then(|v| v.iter_mut().find(|e| e.sock_id == id))
        {
            e.kind = BindKind::Listener;
        }
        t.lhash.entry(port).or_default().push((ip, sk.clone()));
        drop(t);
        s.listener = true;
        s.hashed = true;
        s.max_ack_backlog = backlog.min(sysctl.somaxconn);
        s.set_state(nsi, TcpState::Listen);
        nsi.socks.inuse.fetch_add(1, Relaxed);
        Ok(())
    }

    /// `accept()`: the next established connection and its peer address.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Socket, SocketAddr)>> {
        let mut s = self.sk.lock();
        if s.state != TcpState::Listen {
            return Poll::Ready(Err(err(EINVAL)));
        }
        match s.accept_queue.pop_front() {
            Some(child) => {
                drop(s);
                let peer = {
                    let c = child.lock();
                    c.user_addr(c.remote)
                };
                Poll::Ready(Ok((Socket { sk: child }, peer)))
            }
            None => {
                register(&mut s.rx_waiters, cx);
                Poll::Pending
            }
        }
    }

    /// `recvmsg` into `buf` (`MSG_PEEK` with `peek`). With `cx`, waits for
    /// data; without, returns `EWOULDBLOCK` (`try_read`).
    ///
    /// Queued data comes first; then a pending error, reported once; then
    /// `Ok(0)` once the peer's FIN (or a reset) closed the read side.
    pub fn poll_recv(
        &self,
        cx: Option<&mut Context<'_>>,
        buf: &mut [u8],
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        let mut at = 0;
        self.poll_recv_with(cx, buf.len(), peek, |piece| {
            buf[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        })
    }

    /// [`poll_recv`](Self::poll_recv) through a sink instead of a slice: at
    /// most `len` bytes, handed to `put` in order, piece by piece (one call
    /// per queued chunk touched), and their total returned. This lets the
    /// caller copy straight into memory it has not initialized (tokio's
    /// `ReadBuf::put_slice`), with no zeroing first. `len == 0` reads
    /// nothing and returns `Ok(0)`, as `recv` with an empty buffer does.
    pub fn poll_recv_with(
        &self,
        cx: Option<&mut Context<'_>>,
        len: usize,
        peek: bool,
        mut put: impl FnMut(&[u8]),
    ) -> Poll<io::Result<usize>> {
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        let ns = &*self.sk.ns;
        let mut s = self.sk.lock();
        if s.recvq_bytes > 0 {
            let mut copied = 0;
            if peek {
                for chunk in s.recvq.iter() {
                    let n = chunk.len().min(len - copied);
                    put(&chunk[..n]);
                    copied += n;
                    if copied == len {
                        break;
                    }
                }
                return Poll::Ready(Ok(copied));
            }
            while copied < len {
                let Some(front) = s.recvq.front_mut() else {
                    break;
                };
                let n = front.len().min(len - copied);
                put(&front[..n]);
                copied += n;
                if n == front.len() {
                    s.recvq.pop_front();
                } else {
                    let _ = front.split_to(n);
                }
            }
            s.recvq_bytes -= copied;
            ns.mem_sub(copied);
            if s.recvq_bytes == 0 && s.fin_rcvd && copied < len {
                // The read went on to the FIN (tcp_recvmsg's found_fin_ok).
                s.fin_copied = true;
            }
            if tcp_cleanup_rbuf(&s, copied) {
                // The process context only when something is sent: most
                // reads owe no ACK (delayed, or piggybacked on the reply).
                let mut ctx = Ctx::process(ns);
                s.send_ack(&mut ctx);
                drop(s);
                ctx.local_bh_enable();
            }
            return Poll::Ready(Ok(copied));
        }
        // tcp_recvmsg: after the peer's FIN (SOCK_DONE) a read is EOF and a
        // pending error waits for the next write.
        if s.fin_rcvd {
            if !peek {
                s.fin_copied = true;
            }
            return Poll::Ready(Ok(0));
        }
        if s.err != 0 {
            let e = std::mem::take(&mut s.err);
            return Poll::Ready(Err(err(e)));
        }
        if s.rcv_shutdown || s.state == TcpState::Close {
            return Poll::Ready(Ok(0));
        }
        match cx {
            Some(cx) => {
                register(&mut s.rx_waiters, cx);
                Poll::Pending
            }
            None => Poll::Ready(Err(io::ErrorKind::WouldBlock.into())),
        }
    }

    /// `sendmsg` of `bufs`: copies as much as the send buffer has room for
    /// (one allocation for the whole call), then pushes segments out.
    ///
    /// A pending error is reported first, once (`ECONNRESET`, or `EPIPE` if
    /// the reset came in CLOSE_WAIT); after that, or after our own shutdown,
    /// `EPIPE`. With `cx`, waits for room; without, `EWOULDBLOCK`.
    pub fn poll_send(
        &self,
        cx: Option<&mut Context<'_>>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let ns = &*self.sk.ns;
        let mut ctx = Ctx::process(ns);
        let mut s = self.sk.lock();
        if s.err != 0 {
            let e = std::mem::take(&mut s.err);
            return Poll::Ready(Err(err(e)));
        }
        if s.snd_shutdown || !matches!(s.state, TcpState::Established | TcpState::CloseWait) {
            if matches!(s.state, TcpState::SynSent | TcpState::SynRecv) {
                return Poll::Ready(Err(err(ENOTCONN)));
            }
            return Poll::Ready(Err(err(EPIPE)));
        }
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let space = s.send_space();
        if space == 0 {
            return match cx {
                Some(cx) => {
                    register(&mut s.tx_waiters, cx);
                    Poll::Pending
                }
                None => Poll::Ready(Err(io::ErrorKind::WouldBlock.into())),
            };
        }
        let n = total.min(space);
        copy_in(&mut s, &ns.buf_pool, bufs, n);
        s.sendq_bytes += n;
        s.write_seq = s.write_seq.wrapping_add(n as u32);
        ns.mem_add(n);
        s.write_xmit(&mut ctx, false);
        drop(s);
        ctx.local_bh_enable();
        Poll::Ready(Ok(n))
    }

    /// Registers for readability; ready when [`Readiness::readable`].
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.sk.lock();
        if s.recvq_bytes > 0 || s.err != 0 || s.rcv_shutdown || s.state == TcpState::Close {
            return Poll::Ready(Ok(()));
        }
        register(&mut s.rx_waiters, cx);
        Poll::Pending
    }

    /// Registers for writability; ready when [`Readiness::writable`].
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.sk.lock();
        if s.send_space() > 0 || s.err != 0 || s.snd_shutdown || s.state == TcpState::Close {
            return Poll::Ready(Ok(()));
        }
        register(&mut s.tx_waiters, cx);
        Poll::Pending
    }

    /// The socket's readiness now (`tcp_poll`).
    pub fn readiness(&self) -> Readiness {
        let s = self.sk.lock();
        let closed = s.state == TcpState::Close;
        Readiness {
            readable: s.recvq_bytes > 0 || s.err != 0 || s.rcv_shutdown || closed,
            writable: s.send_space() > 0 || s.err != 0 || s.snd_shutdown || closed,
            read_closed: s.rcv_shutdown || closed,
            write_closed: s.snd_shutdown || closed,
        }
    }

    /// `shutdown(SHUT_WR)`: FIN after the queued data. The peer reads the
    /// data, then EOF; this socket can still read.
    ///
    /// # Errors
    /// `ENOTCONN` if the connection is already closed (reset).
    pub fn shutdown_write(&self) -> io::Result<()> {
        let ns = &*self.sk.ns;
        let mut ctx = Ctx::process(ns);
        let mut s = self.sk.lock();
        match s.state {
            TcpState::Established => s.set_state(ns, TcpState::FinWait1),
            TcpState::CloseWait => s.set_state(ns, TcpState::LastAck),
            TcpState::Close | TcpState::Listen | TcpState::SynSent => {
                return Err(err(ENOTCONN));
            }
            _ => return Ok(()),
        }
        s.snd_shutdown = true;
        s.fin_queued = true;
        s.write_xmit(&mut ctx, true);
        drop(s);
        ctx.local_bh_enable();
        Ok(())
    }

    /// `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let s = self.sk.lock();
        Ok(s.user_addr(s.local))
    }

    /// `getpeername`: `ENOTCONN` once the connection is closed (after a reset)
    /// and for listeners.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let s = self.sk.lock();
        if matches!(
            s.state,
            TcpState::Close | TcpState::Listen | TcpState::SynSent
        ) {
            return Err(err(ENOTCONN));
        }
        Ok(s.user_addr(s.remote))
    }

    /// `TCP_NODELAY`. Turning it on pushes out a held small segment.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let ns = &*self.sk.ns;
        let mut ctx = Ctx::process(ns);
        let mut s = self.sk.lock();
        s.nodelay = on;
        if on {
            s.write_xmit(&mut ctx, true);
        }
        drop(s);
        ctx.local_bh_enable();
        Ok(())
    }

    /// `TCP_NODELAY`'s value.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.sk.lock().nodelay)
    }

    /// `IP_TTL` (1..=255; `EINVAL` otherwise).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        if !(1..=255).contains(&ttl) {
            return Err(err(EINVAL));
        }
        self.sk.lock().ttl = ttl as u8;
        Ok(())
    }

    /// `IP_TTL`'s value (64 by default).
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(u32::from(self.sk.lock().ttl))
    }

    /// `SO_LINGER`. With `Some(0)`, close sends RST and discards queued data.
    /// (A non-zero linger time does not make close wait in the model: close is
    /// a drop, which cannot block.)
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.sk.lock().linger = linger;
        Ok(())
    }

    /// `SO_LINGER`'s value.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.sk.lock().linger)
    }

    /// `SO_ERROR`: takes the pending error, if any (it is then not reported
    /// by the next call).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut s = self.sk.lock();
        Ok(match std::mem::take(&mut s.err) {
            0 => None,
            e => Some(err(e)),
        })
    }

    /// `TCP_QUICKACK`: while on, every data segment is acknowledged at once
    /// instead of by the delayed-ACK rules. Turning it on sends an owed ACK.
    pub fn set_quickack(&self, on: bool) -> io::Result<()> {
        let ns = &*self.sk.ns;
        let mut ctx = Ctx::process(ns);
        let mut s = self.sk.lock();
        s.quickack = on;
        if on && s.ack_pending && s.state != TcpState::Close {
            s.send_ack(&mut ctx);
        }
        drop(s);
        ctx.local_bh_enable();
        Ok(())
    }

    /// `TCP_QUICKACK`'s value.
    pub fn quickack(&self) -> io::Result<bool> {
        Ok(self.sk.lock().quickack)
    }

    /// The namespace the socket lives in.
    pub fn netns(&self) -> Netns {
        Netns(self.sk.ns.clone())
    }

    /// The TCP state, as `ss` shows it.
    pub fn state(&self) -> TcpState {
        self.sk.lock().state
    }

    /// Bytes in the receive queue and the send queue (`ss`'s Recv-Q, Send-Q).
    pub fn queues(&self) -> (usize, usize) {
        let s = self.sk.lock();
        (s.recvq_bytes, s.sendq_bytes)
    }
}

/// Writes up to this size are copied into the socket's small arena.
const SMALL_WRITE: usize = 512;
/// The arena's size: small enough that an idle connection holds little, big
/// enough that an interactive exchange reuses one buffer (reclaimed in place
/// once every earlier chunk was acknowledged and read).
const ARENA: usize = 2048;

/// `tcp_sendmsg`'s copy from user memory: `n` bytes of `bufs` onto the send
/// queue, as refcounted chunks. Small writes share the socket's arena (no
/// allocation in steady state); large ones are cut into buffers of at most
/// [`POOL_BUF`] from the namespace's pool, so a bulk writer reuses the same
/// memory instead of having the allocator return it to the OS and fault it
/// back in on every write.
fn copy_in(s: &mut crate::tcp::TcpSock, pool: &Arc<BufPool>, bufs: &[IoSlice<'_>], n: usize) {
    if n <= SMALL_WRITE {
        if let Some(first) = bufs.first().filter(|b| b.len() >= n) {
            // The usual small write, one buffer: straight into the arena.
            let arena = &mut s.tx_arena;
            if arena.capacity() < n {
                arena.reserve(ARENA);
            }
            arena.extend_from_slice(&first[..n]);
            let chunk = arena.split().freeze();
            s.sendq.push_back(chunk);
            return;
        }
    }
    let mut src = bufs.iter().flat_map(|b| b.chunks(POOL_BUF)).peekable();
    let mut fill = |dst: &mut dyn FnMut(&[u8]), mut want: usize| {
        while want > 0 {
            let Some(piece) = src.peek_mut() else { break };
            let k = want.min(piece.len());
            dst(&piece[..k]);
            *piece = &piece[k..];
            if piece.is_empty() {
                src.next();
            }
            want -= k;
        }
    };
    if n <= SMALL_WRITE {
        let arena = &mut s.tx_arena;
        if arena.capacity() < n {
            arena.reserve(ARENA);
        }
        fill(&mut |p| arena.extend_from_slice(p), n);
        let chunk = arena.split().freeze();
        s.sendq.push_back(chunk);
        return;
    }
    let mut left = n;
    while left > 0 {
        let k = left.min(POOL_BUF);
        if k < POOL_BUF / 2 {
            // A remainder: a buffer of its own size, so a slow reader's queue
            // of medium writes does not pin 64 KiB each.
            let mut buf = Vec::with_capacity(k);
            fill(&mut |p| buf.extend_from_slice(p), k);
            s.sendq.push_back(Bytes::from(buf));
        } else {
            let mut buf = pool.get();
            fill(&mut |p| buf.extend_from_slice(p), k);
            s.sendq.push_back(Bytes::from_owner(PooledBuf {
                buf,
                pool: pool.clone(),
            }));
        }
        left -= k;
    }
}

/// Size of a pooled payload buffer: a 64 KiB write is one buffer.
pub(crate) const POOL_BUF: usize = 64 * 1024;
/// Buffers a namespace keeps for reuse (4 MiB).
const POOL_MAX: usize = 64;

/// Recycled payload buffers for large writes (the kernel's per-socket page
/// fragments play this part).
#[derive(Default)]
pub(crate) struct BufPool {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    fn get(&self) -> Vec<u8> {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(POOL_BUF))
    }

    fn put(&self, mut buf: Vec<u8>) {
        if buf.capacity() != POOL_BUF {
            return;
        }
        buf.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < POOL_MAX {
            free.push(buf);
        }
    }
}

/// A pooled buffer owned by the `Bytes` chunks that share it; it goes back to
/// the pool when the last of them (send queue, segment, receive queue) is
/// dropped.
struct PooledBuf {
    buf: Vec<u8>,
    pool: Arc<BufPool>,
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}

/// `tcp_cleanup_rbuf`: after the application read `copied` bytes, whether
/// to send the ACK that is owed when the read emptied the queue outside
/// interactive (pingpong) mode, or a window update when the window grew
/// enough. The caller sends it.
fn tcp_cleanup_rbuf(s: &crate::tcp::TcpSock, copied: usize) -> bool {
    if copied == 0 || s.state == TcpState::Close {
        return false;
    }
    let mut time_to_ack = false;
    if s.ack_pending
        && (s.rcv_nxt.wrapping_sub(s.rcv_wup) > s.rcv_mss || (s.recvq_bytes == 0 && !s.pingpong))
    {
        time_to_ack = true;
    }
    if !time_to_ack && !s.rcv_shutdown {
        let now = s.receive_window();
        if 2 * u64::from(now) <= s.rcvbuf as u64 {
            let new = s.free_window();
            if new != 0 && u64::from(new) >= 2 * u64::from(now) {
                time_to_ack = true;
            }
        }
    }
    time_to_ack
}

impl Drop for Socket {
    /// `close()`.
    fn drop(&mut self) {
        tcp_close(&self.sk);
    }
}

/// `tcp_close`.
fn tcp_close(sk: &Arc<Sock>) {
    let ns = &*sk.ns;
    let mut ctx = Ctx::process(ns);
    let mut s = sk.lock();
    s.rx_waiters.clear();
    s.tx_waiters.clear();
    match s.state {
        TcpState::Close => {
            s.purge_recvq(ns);
            s.unhash(ns);
        }
        TcpState::Listen => {
            // inet_csk_listen_stop: reset every child waiting to be accepted.
            let children = std::mem::take(&mut s.accept_queue);
            s.tcp_done(ns);
            drop(s);
            for child in children {
                let mut c = child.lock();
                if c.state != TcpState::Close {
                    c.orphan = true;
                    ns.socks.orphan.fetch_add(1, Relaxed);
                    c.send_active_reset(&mut ctx);
                    c.tcp_done(ns);
                }
            }
            ctx.local_bh_enable();
            return;
        }
        TcpState::SynSent | TcpState::SynRecv => {
            s.tcp_done(ns);
        }
        _ => {
            s.orphan = true;
            ns.socks.orphan.fetch_add(1, Relaxed);
            let unread = s.recvq_bytes > 0;
            s.purge_recvq(ns);
            if unread {
                inc(&ns.mib.tcp_abort_on_close);
                s.send_active_reset(&mut ctx);
                s.tcp_done(ns);
            } else if s.linger == Some(Duration::ZERO) {
                // tcp_close → tcp_disconnect; Linux counts this as
                // TCPAbortOnData.
                inc(&ns.mib.tcp_abort_on_data);
                s.send_active_reset(&mut ctx);
                s.tcp_done(ns);
            } else {
                s.rcv_shutdown = true;
                match s.state {
                    TcpState::Established => s.set_state(ns, TcpState::FinWait1),
                    TcpState::CloseWait => s.set_state(ns, TcpState::LastAck),
                    _ => {}
                }
                if !s.snd_shutdown {
                    s.snd_shutdown = true;
                    s.fin_queued = true;
                }
                s.write_xmit(&mut ctx, true);
                s.arm_fin_wait2(&mut ctx);
            }
        }
    }
    drop(s);
    ctx.local_bh_enable();
}
