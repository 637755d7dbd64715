//! The socket calls of an `AF_INET`/`AF_INET6` stream socket
//! (net/socket.c, net/ipv4/af_inet.c, tcp_ipv4.c's `tcp_v4_connect`): what
//! `socket`, `bind`, `listen`, `connect`, `accept`, `shutdown`,
//! `getsockname`/`getpeername` and `setsockopt` do to a modeled socket, and
//! the dispatch of `sendmsg`, `recvmsg` and `close` to TCP
//! (tcp/syscalls.rs). [`Socket`] is the handle the tokio-facing layer holds;
//! dropping the last handle is `close()`.
//!
//! The port a call takes comes from the tables: `bind` from
//! `inet_csk_get_port` (inet_connection_sock.rs), `connect` from
//! `__inet_hash_connect` (inet_hashtables.rs).
//!
//! Every call that can send a segment runs the softirq it raised before it
//! returns (`release_sock` + `local_bh_enable`), after the socket lock is
//! released, as the kernel does.

use crate::ctx::Ctx;
use crate::errno::{err, EADDRNOTAVAIL, EINVAL, ENETUNREACH, ENOTCONN};
use crate::fib::{unmap, DstEntry, RouteType};
use crate::inet_connection_sock::{inet_csk_get_port, inet_csk_listen_start};
use crate::inet_hashtables::{inet_check_established, inet_hash_connect};
use crate::netns::Netns;
use crate::stats::inc;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::write;
use crate::sync::Arc;
use crate::tcp::minisocks::tw_isn;
use crate::tcp::syscalls::{tcp_close, tcp_recvmsg, tcp_sendmsg};
use crate::tcp::{Sock, TcpState, WaitQueue};
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

/// What [`Socket::readiness`] reports: `tcp_poll`'s mask (`EPOLLIN`,
/// `EPOLLOUT`, `EPOLLRDHUP`, `EPOLLHUP`/`EPOLLERR` folded in).
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
    /// A socket error is pending (`sk->sk_err`, `tcp_poll`'s `EPOLLERR`):
    /// the next call, or `SO_ERROR`, takes it.
    pub error: bool,
}

fn register(q: &mut WaitQueue, cx: &Context<'_>) {
    q.register(cx.waker());
}

/// A linger time as `SO_LINGER` stores it: whole seconds (`l_linger`, an
/// `int`; socket2 passes the seconds and drops the fraction).
fn linger_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
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
    /// connection to `addr`; for a socket bound to an address of the other
    /// family than `addr`'s (v4-mapped counting as IPv4), `ENETUNREACH` when
    /// it is bound to an IPv6 one and `EAFNOSUPPORT` when bound to an IPv4 one.
    pub fn start_connect(&self, addr: SocketAddr) -> io::Result<()> {
        let sk = &self.sk;
        let nsi = &*sk.ns;
        let daddr = normalize_dst(addr);
        // ip_route_connect: the route, whose generation is read first so a
        // table change during the lookup invalidates what is cached below.
        let genid = nsi.fib.genid();
        let route = match nsi.fib.fib_lookup(daddr.ip()) {
            Some(r) if r.rtype == RouteType::Local => r,
            _ => return Err(err(ENETUNREACH)),
        };
        // The three sysctls it reads, not a copy of them all.
        let (port_range, tw_reuse, syn_retries) = {
            let s = nsi.sysctl_locked();
            (s.ip_local_port_range, s.tcp_tw_reuse, s.tcp_syn_retries)
        };
        let mtu = nsi.lo.mtu.load(Relaxed);
        let mut ctx = Ctx::process(nsi);
        {
            let mut s = sk.lock();
            if s.state != TcpState::Close || s.hashed || s.err != 0 {
                return Err(err(libc::EISCONN));
            }
            let bound = s.bound.then_some(s.local);
            // tcp_v6_connect: a socket bound to an IPv6 address (not
            // v4-mapped) is IPv6-only (inet6_bind sets sk_ipv6only), so a
            // v4-mapped destination is ENETUNREACH; one bound to an IPv4 or
            // v4-mapped address cannot reach an IPv6 one (EAFNOSUPPORT).
            if let Some(b) = bound.filter(|b| !b.ip().is_unspecified()) {
                match (b.is_ipv6(), daddr.is_ipv6()) {
                    (true, false) => return Err(err(ENETUNREACH)),
                    (false, true) => return Err(err(libc::EAFNOSUPPORT)),
                    _ => {}
                }
            }
            let saddr_ip = match bound {
                Some(b) if !b.ip().is_unspecified() => b.ip(),
                _ => route.prefsrc,
            };
            {
                let now = nsi.ms(ctx.now());
                let mut t = write(&nsi.tables);
                t.tw_sweep_if_due(now, false);
                // A TIME_WAIT entry on the chosen 4-tuple, taken over.
                let (port, recycle) = match bound {
                    Some(b) if b.port() != 0 => {
                        let key = (SocketAddr::new(saddr_ip, b.port()), daddr);
                        (b.port(), inet_check_established(&mut t, &key)?)
                    }
                    _ => {
                        inet_hash_connect(&mut t, saddr_ip, daddr, s.id, port_range, tw_reuse, now)
                            .ok_or_else(|| err(EADDRNOTAVAIL))?
                    }
                };
                s.local = SocketAddr::new(saddr_ip, port);
                s.remote = daddr;
                // tcp_v6_connect hands a v4-mapped destination to
                // tcp_v4_connect, but the socket stays AF_INET6: its names
                // read back v4-mapped.
                if addr.is_ipv6() && daddr.is_ipv4() {
                    s.v6_mapped = true;
                }
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
            // sk_setup_caps: the connected socket keeps the route
            // (sk_dst_cache), so its SYN is sent without a second lookup.
            s.dst = Some(DstEntry {
                genid,
                ifindex: route.ifindex,
            });
            nsi.socks.inuse.fetch_add(1, Relaxed);
            s.timers.syn_retries = syn_retries;
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
        self.bind_reuseport(addr, reuse, false)
    }

    /// [`bind`](Socket::bind) with `SO_REUSEPORT` too: sockets that all set
    /// it may bind the same address and port, and once they listen they
    /// form one group, over which connections are spread by their 4-tuple's
    /// hash (`reuseport_select_sock`). A listener that closes leaves the
    /// group.
    ///
    /// # Errors
    /// As [`bind`](Socket::bind).
    pub fn bind_reuseport(&self, addr: SocketAddr, reuse: bool, reuseport: bool) -> io::Result<()> {
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
        let mut t = write(&nsi.tables);
        t.tw_sweep_if_due(now, false);
        let port = inet_csk_get_port(
            &mut t,
            wire_ip,
            addr.port(),
            (reuse, reuseport),
            s.id,
            sysctl.ip_local_port_range,
            now,
        )?;
        s.local = SocketAddr::new(wire_ip, port);
        s.v6_mapped = ip.is_ipv6() && wire_ip.is_ipv4();
        s.bound = true;
        s.bindport_lock = addr.port() != 0;
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
            s.listen.max_ack_backlog = backlog.min(sysctl.somaxconn);
            return Ok(());
        }
        if s.state != TcpState::Close || s.hashed {
            return Err(err(EINVAL));
        }
        let mut t = write(&nsi.tables);
        let now = nsi.ms(nsi.clock_now());
        inet_csk_listen_start(&mut t, sk, s.local, now)?;
        drop(t);
        s.listen.listener = true;
        s.hashed = true;
        s.listen.max_ack_backlog = backlog.min(sysctl.somaxconn);
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
        match s.listen.accept_queue.pop_front() {
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
        put: impl FnMut(&[u8]),
    ) -> Poll<io::Result<usize>> {
        tcp_recvmsg(&self.sk, cx, len, peek, put)
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
        tcp_sendmsg(&self.sk, cx, bufs)
    }

    /// Registers for readability; ready when [`Readiness::readable`].
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.sk.lock();
        if s.rcv.recvq_bytes > 0 || s.err != 0 || s.shut.rcv_shutdown || s.state == TcpState::Close
        {
            return Poll::Ready(Ok(()));
        }
        register(&mut s.rx_waiters, cx);
        Poll::Pending
    }

    /// Registers for writability; ready when [`Readiness::writable`].
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.sk.lock();
        if s.stream_writeable() || s.err != 0 || s.shut.snd_shutdown || s.state == TcpState::Close {
            return Poll::Ready(Ok(()));
        }
        s.snd.nospace = true;
        register(&mut s.tx_waiters, cx);
        Poll::Pending
    }

    /// Registers for a pending error (`EPOLLERR`); ready when
    /// [`Readiness::error`]. The wait ends with the event that sets the
    /// error (a reset, a timeout), which wakes the read side's waiters.
    pub fn poll_error_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.sk.lock();
        if s.err != 0 {
            return Poll::Ready(Ok(()));
        }
        register(&mut s.rx_waiters, cx);
        Poll::Pending
    }

    /// The socket's readiness now (`tcp_poll`).
    pub fn readiness(&self) -> Readiness {
        let s = self.sk.lock();
        let closed = s.state == TcpState::Close;
        Readiness {
            readable: s.rcv.recvq_bytes > 0 || s.err != 0 || s.shut.rcv_shutdown || closed,
            writable: s.stream_writeable() || s.err != 0 || s.shut.snd_shutdown || closed,
            read_closed: s.shut.rcv_shutdown || closed,
            write_closed: s.shut.snd_shutdown || closed,
            error: s.err != 0,
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
        s.shut.snd_shutdown = true;
        s.snd.fin_queued = true;
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
        s.opt.nodelay = on;
        if on {
            s.write_xmit(&mut ctx, true);
        }
        drop(s);
        ctx.local_bh_enable();
        Ok(())
    }

    /// `TCP_NODELAY`'s value.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.sk.lock().opt.nodelay)
    }

    /// `IP_TTL` (1..=255; `EINVAL` otherwise).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        if !(1..=255).contains(&ttl) {
            return Err(err(EINVAL));
        }
        self.sk.lock().opt.ttl = ttl as u8;
        Ok(())
    }

    /// `IP_TTL`'s value (64 by default).
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(u32::from(self.sk.lock().opt.ttl))
    }

    /// `SO_LINGER`. With `Some(0)`, close sends RST and discards queued data.
    /// (A non-zero linger time does not make close wait in the model: close is
    /// a drop, which cannot block.) The time is kept in whole seconds, as
    /// `struct linger`'s `l_linger` has it: a fraction is dropped, so a time
    /// under a second is a linger of 0.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.sk.lock().opt.linger = linger.map(linger_secs);
        Ok(())
    }

    /// `SO_LINGER`'s value.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.sk.lock().opt.linger)
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

    /// `TCP_QUICKACK` (`__tcp_sock_set_quickack`, net/ipv4/tcp.c): off
    /// enters interactive (pingpong) mode, where ACKs wait for a reply to
    /// ride on; on leaves it and sends an owed ACK now. Not sticky: the
    /// delayed-ACK engine enters and leaves the mode by itself afterwards, as
    /// on Linux.
    pub fn set_quickack(&self, on: bool) -> io::Result<()> {
        let ns = &*self.sk.ns;
        let mut ctx = Ctx::process(ns);
        let mut s = self.sk.lock();
        if !on {
            s.enter_pingpong();
        } else {
            s.rcv.pingpong = 0;
            if matches!(s.state, TcpState::Established | TcpState::CloseWait) && s.rcv.ack_pending {
                s.rcv.pushed = true;
                if crate::tcp::syscalls::tcp_cleanup_rbuf(&s, 1) {
                    s.send_ack(&mut ctx);
                }
            }
        }
        drop(s);
        ctx.local_bh_enable();
        Ok(())
    }

    /// `TCP_QUICKACK`'s value: whether the socket is out of interactive
    /// (pingpong) mode, true on a fresh socket.
    pub fn quickack(&self) -> io::Result<bool> {
        Ok(!self.sk.lock().in_pingpong())
    }

    /// `IP_TOS` / `IPV6_TCLASS`: the TOS byte (IPv4) or traffic class
    /// (IPv6) of the segments this socket sends, as captures show them. A
    /// listener's value also marks its SYN-ACKs and the connections it
    /// accepts, as Linux copies it to the child.
    ///
    /// # Errors
    /// `EINVAL` for a value above 255.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        let tos = u8::try_from(tos).map_err(|_| err(EINVAL))?;
        self.sk.lock().opt.tos = tos;
        Ok(())
    }

    /// `IP_TOS` / `IPV6_TCLASS`'s value (0 by default).
    pub fn tos(&self) -> io::Result<u32> {
        Ok(u32::from(self.sk.lock().opt.tos))
    }

    /// `SO_BINDTODEVICE`: the model has one device, `lo`, which every
    /// modeled socket already uses, so binding to it changes nothing and an
    /// empty name unbinds. Any other name is refused with `ENODEV`, as
    /// Linux refuses a device the namespace does not have.
    ///
    /// # Errors
    /// `ENODEV` for a name other than `lo` (as the kernel, a name is cut to
    /// `IFNAMSIZ - 1` bytes and ends at a NUL).
    pub fn check_bind_device(interface: &[u8]) -> io::Result<()> {
        let cut = &interface[..interface.len().min(15)];
        let name = cut.split(|&b| b == 0).next().unwrap_or_default();
        match name {
            b"" | b"lo" => Ok(()),
            _ => Err(err(libc::ENODEV)),
        }
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
        (s.rcv.recvq_bytes, s.snd.sendq_bytes)
    }

    // Buffer sizes and keepalive (`sk_setsockopt`, net/core/sock.c).

    /// `SO_SNDBUF`: the send buffer becomes twice `size` (capped by
    /// `wmem_max` first), at least `SOCK_MIN_SNDBUF` (4608), and is no longer
    /// autotuned (`SOCK_SNDBUF_LOCK`), as `sk_setsockopt` does.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        let max = self.sk.ns.sysctl().wmem_max;
        let mut s = self.sk.lock();
        let val = (size as usize).min(max).min(i32::MAX as usize / 2);
        s.opt.sndbuf_lock = true;
        s.snd.sndbuf = (val * 2).max(crate::tcp::SOCK_MIN_SNDBUF);
        Ok(())
    }

    /// `SO_SNDBUF`'s value: the send buffer's size in bytes (`tcp_wmem[1]`
    /// before the connection is established, then as `tcp_sndbuf_expand`
    /// grew it, or twice what `SO_SNDBUF` asked).
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        Ok(self.sk.lock().snd.sndbuf.min(u32::MAX as usize) as u32)
    }

    /// `SO_RCVBUF`: the receive buffer becomes twice `size` (capped by
    /// `rmem_max` first), at least `SOCK_MIN_RCVBUF` (2304), and is no longer
    /// autotuned (`__sock_set_rcvbuf`).
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        let max = self.sk.ns.sysctl().rmem_max;
        let mut s = self.sk.lock();
        let val = (size as usize).min(max).min(i32::MAX as usize / 2);
        s.opt.rcvbuf_lock = true;
        s.rcv.rcvbuf = (val * 2).max(crate::tcp::SOCK_MIN_RCVBUF);
        Ok(())
    }

    /// `SO_RCVBUF`'s value: the receive buffer's size in bytes.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        Ok(self.sk.lock().rcv.rcvbuf.min(u32::MAX as usize) as u32)
    }

    /// `SO_KEEPALIVE`: probe an idle connection after `tcp_keepalive_time`,
    /// every `tcp_keepalive_intvl`, and reset it with `ETIMEDOUT` after
    /// `tcp_keepalive_probes` unanswered probes (`tcp_set_keepalive`,
    /// `tcp_keepalive_timer`).
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        let ns = &*self.sk.ns;
        let mut ctx = Ctx::process(ns);
        let mut s = self.sk.lock();
        s.set_keepalive(&mut ctx, on);
        drop(s);
        ctx.local_bh_enable();
        Ok(())
    }

    /// `SO_KEEPALIVE`'s value.
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(self.sk.lock().opt.keepalive)
    }
}

impl Drop for Socket {
    /// `close()` (`inet_release` → `tcp_close`).
    fn drop(&mut self) {
        tcp_close(&self.sk);
    }
}
