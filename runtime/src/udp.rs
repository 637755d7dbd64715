//! UDP (net/ipv4/udp.c, net/ipv6/udp.c) and the ICMP port unreachable that
//! answers a datagram nobody receives (net/ipv4/icmp.c, net/ipv6/icmp.c).
//!
//! ```text
//! send:    UdpSocket::send_to → udp_sendmsg → ip_make_skb (EMSGSIZE past
//!          65507 bytes, 65527 over IPv6) → ip_queue_xmit / ip_mc_output
//!          (ip.rs) → dev_queue_xmit → loopback_xmit → netif_rx (the path
//!          TCP takes)
//! softirq: ip_local_deliver → udp_rcv → __udp4_lib_lookup (connected beats
//!          bound beats wildcard; a SO_REUSEPORT group picks one member by
//!          the 4-tuple's hash) → __udp_enqueue_schedule_skb (the receive
//!          buffer, charged with the skb's truesize) → the reader's waker;
//!          broadcast and multicast: __udp4_lib_mcast_deliver, a copy to
//!          every matching socket; no socket: NoPorts and icmp_send
//!          → icmp_rcv → __udp4_lib_err: a connected sender gets
//!          ECONNREFUSED on its next call.
//! ```
//!
//! The sockets of a namespace are in its `udp_table`, a hash by local port
//! (the kernel's `hslot`), apart from TCP's tables: UDP and TCP ports do
//! not conflict. Each entry copies the addresses the lookup compares, so
//! the softirq reads the table without taking socket locks (the lock order
//! is socket, then table).

use crate::ctx::Ctx;
use crate::errno::{err, EADDRINUSE, EADDRNOTAVAIL, ECONNREFUSED, EINVAL, ENETUNREACH, ENOTCONN};
use crate::fib::{unmap, DstEntry, RouteType};
use crate::inet_hashtables::FxBuild;
use crate::ip::{ip_mc_output, ip_queue_xmit};
use crate::netns::{Netns, NsInner};
use crate::skbuff::{proto, SkBuff};
use crate::stats::{inc, SockInfo};
use crate::sync::atomic::{AtomicI64, Ordering::Relaxed};
use crate::sync::{lock, read, write};
use crate::sync::{Arc, Mutex, MutexGuard};
use crate::tcp::{TcpState, WaitQueue};
use crate::tcp::{SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::task::{Context, Poll};

/// The largest UDP payload over IPv4: 65535 - 20 - 8.
pub(crate) const UDP4_MAX_PAYLOAD: usize = 65_507;
/// The largest UDP payload over IPv6: 65535 - 8 (the payload length field
/// does not count the 40-byte header).
pub(crate) const UDP6_MAX_PAYLOAD: usize = 65_527;
/// `UDP_MAX_SEGMENTS`: the most segments one `UDP_SEGMENT` send may carry
/// (128 since Linux 6.11 and in the stable kernels the change went back
/// to; 64 before).
const UDP_MAX_SEGMENTS: usize = 128;
/// `UDP_GRO_CNT_MAX`: the most segments a `UDP_GRO` receive hands over in
/// one call.
const UDP_GRO_CNT_MAX: usize = 64;
/// The `truesize` of an skb built paged (`__ip_append_data` with
/// `cork->gso_size` set, or a segment `skb_segment` cut from one): a small
/// head with `struct sk_buff` (832 bytes), plus its page fragments by length.
fn paged_truesize(payload: usize) -> usize {
    576 + 256 + payload
}

/// How much of the offending datagram an ICMP error quotes: the reply fits
/// in 576 bytes (IPv4), 1280 (IPv6); the payload after its IP and UDP headers.
const ICMP_QUOTE4: usize = 576 - 20 - 8 - 20 - 8;
const ICMP_QUOTE6: usize = 1280 - 40 - 8 - 40 - 8;

/// The `truesize` Linux charges a UDP datagram sent over `lo` against the
/// receiver's buffer (6.x, x86-64): `__ip_append_data` allocates one linear
/// skb while `fraglen + 31 < SKB_MAX_ALLOC` (16064), whose head comes from
/// the 576-byte small-head cache when it fits and from the next power-of-two
/// kmalloc bucket otherwise, plus 256 for `struct sk_buff`; a larger
/// datagram gets a small head and page fragments charged by their length.
/// (Measured with `SO_MEMINFO` on Linux 6.18: 64 B → 832, 500 B → 1280,
/// 1200 B → 2304, 65000 B → 65832.)
pub(crate) fn udp_truesize(payload: usize, v6: bool) -> usize {
    const SMALL_HEAD: usize = 576;
    const SK_BUFF: usize = 256;
    const SHINFO: usize = 320;
    let hdrs = if v6 { 48 } else { 28 };
    let fraglen = hdrs + payload;
    if fraglen + 31 >= 16_064 {
        return SMALL_HEAD + SK_BUFF + payload;
    }
    let head = (fraglen + 31).div_ceil(64) * 64 + SHINFO;
    if head <= SMALL_HEAD {
        SMALL_HEAD + SK_BUFF
    } else {
        head.next_power_of_two() + SK_BUFF
    }
}

/// One queued datagram: a GSO skb kept whole for a `UDP_GRO` socket has a
/// `gso_size` (the segment size its reader is told, as the `UDP_GRO`
/// control message), else 0.
#[derive(Debug)]
struct Dgram {
    from: SocketAddr,
    data: Bytes,
    truesize: usize,
    gso_size: u16,
}

/// A UDP socket's state (`struct udp_sock` with its `struct sock`).
pub(crate) struct UdpInner {
    /// Bound address (v4-mapped addresses kept as IPv4), if bound.
    local: Option<SocketAddr>,
    /// Connected peer, if connected (`TCP_ESTABLISHED` in `sk_state`).
    remote: Option<SocketAddr>,
    rcvq: VecDeque<Dgram>,
    /// `sk_rmem_alloc`: the truesize of the queued datagrams.
    rmem_alloc: usize,
    /// `sk_forward_alloc`: bytes of the pages scheduled for the receive
    /// queue (`udp_memory_allocated`) not charged to a datagram yet.
    fwd_alloc: usize,
    rcvbuf: usize,
    sndbuf: usize,
    /// `sk_drops`.
    drops: u64,
    /// `sk_err`: a pending error (`ECONNREFUSED` from an ICMP).
    err: i32,
    broadcast: bool,
    ttl: u8,
    tos: u8,
    mc_ttl: u8,
    mc_loop4: bool,
    mc_loop6: bool,
    reuse: bool,
    reuseport: bool,
    /// `UDP_SEGMENT`: the segment size of every send (`up->gso_size`; 0:
    /// none), unless the send gives its own.
    gso_size: u16,
    /// `UDP_GRO` (`GRO_ENABLED` and `ACCEPT_L4`): a GSO datagram is queued
    /// whole, its reader told the segment size; without it `udp_rcv_segment`
    /// cuts it first.
    gro: bool,
    /// Multicast groups joined.
    groups: Vec<IpAddr>,
    rx_waiters: WaitQueue,
    dst: Option<DstEntry>,
    /// The last destination's route (`ip_route_output`'s result), valid
    /// while the FIB generation holds: a socket sending to one peer looks
    /// its route up once.
    rt_cache: Option<RtCache>,
}

/// A route looked up for one destination, and the FIB generation it holds
/// for.
#[derive(Clone, Copy)]
struct RtCache {
    daddr: IpAddr,
    genid: u32,
    kind: Dest,
    prefsrc: IpAddr,
}

/// A UDP socket of the model (`struct sock`).
pub(crate) struct UdpSock {
    ns: Arc<NsInner>,
    id: u64,
    /// An `AF_INET6` socket: addresses are shown v4-mapped.
    v6: bool,
    s: Mutex<UdpInner>,
}

impl UdpSock {
    fn lock(&self) -> MutexGuard<'_, UdpInner> {
        lock(&self.s)
    }

    /// The address as `getsockname`/`recvfrom` give it to this socket's
    /// family.
    fn user_addr(&self, a: SocketAddr) -> SocketAddr {
        match (self.v6, a) {
            (true, SocketAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => a,
        }
    }
}

impl Drop for UdpSock {
    /// `udp_destruct_common`: the queued datagrams are freed and every page
    /// the socket still holds goes back (`udp_rmem_release` in full).
    fn drop(&mut self) {
        let s = crate::sync::get_mut(&mut self.s);
        let pages = (s.fwd_alloc + s.rmem_alloc) / PAGE_SIZE;
        if pages > 0 {
            self.ns.udp_mem.sub(pages as i64);
        }
    }
}

/// One socket in the `udp_table`, with copies of what the lookup compares.
#[derive(Clone)]
struct UdpEntry {
    sk: Arc<UdpSock>,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    v6: bool,
    reuse: bool,
    reuseport: bool,
    groups: Vec<IpAddr>,
}

/// The namespace's `udp_table`: sockets by local port.
#[derive(Default)]
pub(crate) struct UdpTable {
    ports: HashMap<u16, Vec<UdpEntry>, FxBuild>,
    /// IPv4 and IPv6 sockets bound (`sockstat`'s `UDP: inuse`, and
    /// `sockstat6`'s `UDP6: inuse`).
    inuse: [usize; 2],
}

/// `sockstat`'s `UDP: inuse` and `sockstat6`'s `UDP6: inuse`.
pub(crate) fn udp_inuse(ns: &NsInner) -> (u64, u64) {
    let t = read(&ns.udp);
    (t.inuse[0] as u64, t.inuse[1] as u64)
}

/// A page, the unit of `udp_memory_allocated`.
const PAGE_SIZE: usize = 4096;
/// `SK_MEMORY_PCPU_RESERVE` (`net.core.mem_pcpu_rsv`): the pages a CPU
/// keeps in its own reserve before they reach the global count.
const MEM_PCPU_RSV: i64 = 256;

/// `udp_memory_allocated` (pages) with the per-CPU reserves
/// (`per_cpu_fw_alloc`) it is updated through: `sk_memory_allocated_add`
/// and `_sub` move a CPU's reserve to the global count once it reaches
/// [`MEM_PCPU_RSV`] pages either way (`proto_memory_pcpu_drain`), and
/// `/proc/net/sockstat` reads the global count only.
pub(crate) struct UdpMem {
    allocated: AtomicI64,
    pcpu: Box<[AtomicI64]>,
}

impl UdpMem {
    pub(crate) fn new(ncpu: usize) -> UdpMem {
        UdpMem {
            allocated: AtomicI64::new(0),
            pcpu: (0..ncpu.max(1)).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    fn this_cpu(&self) -> &AtomicI64 {
        &self.pcpu[crate::smp::this_cpu(self.pcpu.len()) % self.pcpu.len()]
    }

    fn drain(&self, cpu: &AtomicI64) {
        let v = cpu.swap(0, Relaxed);
        if v != 0 {
            self.allocated.fetch_add(v, Relaxed);
        }
    }

    /// `sk_memory_allocated_add`.
    fn add(&self, pages: i64) {
        let cpu = self.this_cpu();
        if cpu.fetch_add(pages, Relaxed) + pages >= MEM_PCPU_RSV {
            self.drain(cpu);
        }
    }

    /// `sk_memory_allocated_sub`.
    fn sub(&self, pages: i64) {
        let cpu = self.this_cpu();
        if cpu.fetch_sub(pages, Relaxed) - pages <= -MEM_PCPU_RSV {
            self.drain(cpu);
        }
    }

    /// `proto_memory_allocated`: the global count, never below 0.
    pub(crate) fn pages(&self) -> u64 {
        self.allocated.load(Relaxed).max(0) as u64
    }
}

/// Whether the bound address `w` (unmapped) takes datagrams to `x`.
fn addr_covers(w: IpAddr, w_v6: bool, x: IpAddr) -> bool {
    match w {
        IpAddr::V4(v) if v.is_unspecified() => x.is_ipv4(),
        IpAddr::V6(v) if v.is_unspecified() => x.is_ipv6() || w_v6,
        _ => w == x,
    }
}

/// Whether two bound addresses overlap (`udp_lib_lport_inuse`'s
/// `rcv_saddr_equal`).
fn addr_overlap(a: IpAddr, a_v6: bool, b: IpAddr, b_v6: bool) -> bool {
    a == b
        || addr_covers(a, a_v6, b) && a.is_unspecified()
        || addr_covers(b, b_v6, a) && b.is_unspecified()
}

fn is_mcast(ip: IpAddr) -> bool {
    ip.is_multicast()
}

fn is_limited_bcast(ip: IpAddr) -> bool {
    ip == IpAddr::V4(Ipv4Addr::BROADCAST)
}

impl UdpTable {
    fn conflict(&self, port: u16, ip: IpAddr, v6: bool, reuse: bool, reuseport: bool) -> bool {
        self.ports.get(&port).is_some_and(|v| {
            v.iter().any(|e| {
                addr_overlap(e.local.ip(), e.v6, ip, v6)
                    && !(e.reuse && reuse)
                    && !(e.reuseport && reuseport)
            })
        })
    }

    /// `compute_score`: -1 if `e` cannot take a datagram from `saddr` to
    /// `daddr`, else higher for a closer match (same family 2 / other 1;
    /// bound address +4; connected peer +8).
    fn score(e: &UdpEntry, saddr: SocketAddr, daddr: SocketAddr) -> i32 {
        if !addr_covers(e.local.ip(), e.v6, daddr.ip()) {
            return -1;
        }
        let mut score = if e.v6 == daddr.is_ipv6() { 2 } else { 1 };
        if !e.local.ip().is_unspecified() {
            score += 4;
        }
        if let Some(r) = e.remote {
            if r != saddr {
                return -1;
            }
            score += 8;
        }
        score
    }

    /// `__udp4_lib_lookup` / `__udp6_lib_lookup`: the best-scoring socket;
    /// within a `SO_REUSEPORT` group of equal score on one address,
    /// `reuseport_select_sock` picks by the 4-tuple's hash.
    fn lookup(&self, saddr: SocketAddr, daddr: SocketAddr) -> Option<Arc<UdpSock>> {
        let list = self.ports.get(&daddr.port())?;
        let mut best: Option<(i32, &UdpEntry)> = None;
        for e in list {
            let sc = Self::score(e, saddr, daddr);
            if sc >= 0 && best.is_none_or(|(b, _)| sc > b) {
                best = Some((sc, e));
            }
        }
        let (sc, e) = best?;
        if e.reuseport {
            let group: Vec<&UdpEntry> = list
                .iter()
                .filter(|o| o.reuseport && o.local == e.local && Self::score(o, saddr, daddr) == sc)
                .collect();
            if group.len() > 1 {
                let h = FxBuild::default().hash_one((saddr, daddr));
                // reciprocal_scale
                let i = ((h as u32 as u64 * group.len() as u64) >> 32) as usize;
                return Some(group[i].sk.clone());
            }
        }
        Some(e.sk.clone())
    }

    fn update(&mut self, id: u64, port: u16, f: impl FnOnce(&mut UdpEntry)) {
        if let Some(e) = self
            .ports
            .get_mut(&port)
            .and_then(|v| v.iter_mut().find(|e| e.sk.id == id))
        {
            f(e)
        }
    }

    fn remove(&mut self, id: u64, port: u16, v6: bool) {
        if let Some(v) = self.ports.get_mut(&port) {
            let before = v.len();
            v.retain(|e| e.sk.id != id);
            let gone = before - v.len();
            let fam = usize::from(v6);
            self.inuse[fam] -= gone;
            if v.is_empty() {
                self.ports.remove(&port);
            }
        }
    }
}

/// A modeled UDP socket (`struct socket` of `SOCK_DGRAM`), as
/// lonet-transport drives it. Dropping it closes it.
pub struct UdpSocket {
    sk: Arc<UdpSock>,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.sk.lock();
        f.debug_struct("UdpSocket")
            .field("local", &s.local.map(|a| self.sk.user_addr(a)))
            .field("remote", &s.remote.map(|a| self.sk.user_addr(a)))
            .finish()
    }
}

impl Drop for UdpSocket {
    /// `udp_lib_close` → `udp_lib_unhash`.
    fn drop(&mut self) {
        let port = self.sk.lock().local.map(|l| l.port());
        if let Some(port) = port {
            write(&self.sk.ns.udp).remove(self.sk.id, port, self.sk.v6);
        }
    }
}

/// The kind of destination `udp_sendmsg`'s route lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Local,
    Broadcast,
    Multicast,
}

/// `ip_route_output` for a datagram: the route type and preferred source.
fn route(ns: &NsInner, daddr: IpAddr) -> io::Result<(Dest, IpAddr)> {
    let lo = |ip: IpAddr| {
        if ip.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
    };
    if is_mcast(daddr) {
        return Ok((Dest::Multicast, lo(daddr)));
    }
    if is_limited_bcast(daddr) {
        return Ok((Dest::Broadcast, lo(daddr)));
    }
    match ns.fib.fib_lookup(daddr) {
        Some(r) if r.rtype == RouteType::Local => Ok((Dest::Local, r.prefsrc)),
        Some(r) if r.rtype == RouteType::Broadcast => Ok((Dest::Broadcast, r.prefsrc)),
        _ => Err(err(ENETUNREACH)),
    }
}

impl UdpSocket {
    /// `UDP_MAX_SEGMENTS`: the most segments one
    /// [`send_msg`](UdpSocket::send_msg) may carry (Linux 6.11 on).
    pub const MAX_SEGMENTS: usize = UDP_MAX_SEGMENTS;
    /// `UDP_GRO_CNT_MAX`: the most segments a datagram received whole by a
    /// `UDP_GRO` socket holds, as Linux bounds it (on `lo`, the 64 KiB of
    /// one datagram bound it first).
    pub const GRO_MAX_SEGMENTS: usize = UDP_GRO_CNT_MAX;

    /// `socket(AF_INET or AF_INET6, SOCK_DGRAM)` + `bind(addr)`: the family
    /// is that of `addr` (a v4-mapped IPv6 address makes an IPv6 socket
    /// bound to the IPv4 address). Port 0 picks an ephemeral port.
    ///
    /// # Errors
    /// `EADDRNOTAVAIL` for an address that is not local to the namespace;
    /// `EADDRINUSE` when a socket holds the port on an overlapping address
    /// (unless both set `SO_REUSEADDR`, or both `SO_REUSEPORT`);
    /// `EAGAIN` when no ephemeral port is left.
    pub fn bind(ns: &Netns, addr: SocketAddr) -> io::Result<UdpSocket> {
        UdpSocket::bind_with(ns, addr, false, false)
    }

    /// [`bind`](UdpSocket::bind) with `SO_REUSEADDR` and `SO_REUSEPORT` set
    /// first.
    ///
    /// # Errors
    /// As [`bind`](UdpSocket::bind).
    pub fn bind_with(
        ns: &Netns,
        addr: SocketAddr,
        reuse: bool,
        reuseport: bool,
    ) -> io::Result<UdpSocket> {
        let nsi = &ns.0;
        let sysctl = nsi.sysctl();
        let sock = UdpSocket {
            sk: Arc::new(UdpSock {
                ns: nsi.clone(),
                id: nsi.next_sock_id(),
                v6: addr.is_ipv6(),
                s: Mutex::new(UdpInner {
                    local: None,
                    remote: None,
                    rcvq: VecDeque::new(),
                    rmem_alloc: 0,
                    fwd_alloc: 0,
                    rcvbuf: sysctl.rmem_default,
                    sndbuf: sysctl.wmem_default,
                    drops: 0,
                    err: 0,
                    broadcast: false,
                    ttl: 64,
                    tos: 0,
                    mc_ttl: 1,
                    mc_loop4: true,
                    mc_loop6: true,
                    reuse,
                    reuseport,
                    gso_size: 0,
                    gro: false,
                    groups: Vec::new(),
                    rx_waiters: WaitQueue::default(),
                    dst: None,
                    rt_cache: None,
                }),
            }),
        };
        let ip = unmap(addr.ip());
        let ok = ip.is_unspecified()
            || is_mcast(ip)
            || is_limited_bcast(ip)
            || nsi.fib.fib_lookup(ip).is_some();
        if !ok {
            return Err(err(EADDRNOTAVAIL));
        }
        let mut s = sock.sk.lock();
        sock.hash(&mut s, SocketAddr::new(ip, addr.port()))?;
        drop(s);
        Ok(sock)
    }

    /// `udp_v4_get_port`: takes `addr`'s port (an ephemeral one for 0) and
    /// hashes the socket.
    fn hash(&self, s: &mut UdpInner, addr: SocketAddr) -> io::Result<()> {
        let ns = &*self.sk.ns;
        let (lo, hi) = ns.sysctl().ip_local_port_range;
        let start = if addr.port() == 0 {
            let n = u32::from(hi - lo) + 1;
            write(&ns.tables).secret.random_below(n)
        } else {
            0
        };
        let mut t = write(&ns.udp);
        let ip = addr.ip();
        let v6 = self.sk.v6;
        let port = if addr.port() != 0 {
            if t.conflict(addr.port(), ip, v6, s.reuse, s.reuseport) {
                return Err(err(EADDRINUSE));
            }
            addr.port()
        } else {
            let n = u32::from(hi - lo) + 1;
            (0..n)
                .map(|i| lo + ((start + i) % n) as u16)
                .find(|&p| !t.conflict(p, ip, v6, s.reuse, s.reuseport))
                .ok_or_else(|| err(libc::EAGAIN))?
        };
        let local = SocketAddr::new(ip, port);
        s.local = Some(local);
        t.ports.entry(port).or_default().push(UdpEntry {
            sk: self.sk.clone(),
            local,
            remote: None,
            v6,
            reuse: s.reuse,
            reuseport: s.reuseport,
            groups: s.groups.clone(),
        });
        t.inuse[usize::from(v6)] += 1;
        Ok(())
    }

    /// The destination as this socket's family may use it (v4-mapped to
    /// IPv4; the unspecified address to the loopback address, as Linux
    /// routes it).
    fn check_dst(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        if !self.sk.v6 && addr.is_ipv6() {
            return Err(err(libc::EAFNOSUPPORT));
        }
        let ip = match unmap(addr.ip()) {
            IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Ok(SocketAddr::new(ip, addr.port()))
    }

    /// `connect()` (`ip4_datagram_connect`): routes `addr`, binds an unbound
    /// socket (ephemeral port), takes the route's source as the local
    /// address of a socket bound to the wildcard, and from then on receives
    /// only from `addr`.
    ///
    /// # Errors
    /// `ENETUNREACH` for a destination the namespace cannot reach;
    /// `EACCES` for a broadcast one without `SO_BROADCAST`; `EAFNOSUPPORT`
    /// for an IPv6 address on an IPv4 socket.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        let daddr = self.check_dst(addr)?;
        let (kind, prefsrc) = route(&self.sk.ns, daddr.ip())?;
        let mut s = self.sk.lock();
        if kind == Dest::Broadcast && !s.broadcast {
            return Err(err(libc::EACCES));
        }
        if s.local.is_none() {
            let any = if self.sk.v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            self.hash(&mut s, SocketAddr::new(any, 0))?;
        }
        let Some(mut local) = s.local else {
            return Err(err(EINVAL));
        };
        if local.ip().is_unspecified() {
            local.set_ip(prefsrc);
        }
        s.local = Some(local);
        s.remote = Some(daddr);
        s.dst = None;
        drop(s);
        write(&self.sk.ns.udp).update(self.sk.id, local.port(), |e| {
            e.local = local;
            e.remote = Some(daddr);
        });
        Ok(())
    }

    /// `sendto()` (`udp_sendmsg`), or `send()` on a connected socket with
    /// `to` = `None`. The datagram is delivered (or dropped) before this
    /// returns; an error it causes (ICMP port unreachable) is reported by
    /// the next call of a connected socket.
    ///
    /// # Errors
    /// A pending socket error first (`ECONNREFUSED`); `EDESTADDRREQ`
    /// without a destination; `EMSGSIZE` past 65507 bytes (65527 over
    /// IPv6); `EACCES` to a broadcast address without `SO_BROADCAST`;
    /// `ENETUNREACH` for a destination the namespace cannot reach.
    pub fn send_to(&self, buf: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
        self.send_msg(buf, to, None)
    }

    /// `sendmsg()` with a `UDP_SEGMENT` control message of `gso_size`
    /// (`Some(0)`: no segmentation for this send, whatever the socket's
    /// option): `buf` goes as one skb of segments of `gso_size` bytes (the
    /// last may be shorter), which `lo` (`NETIF_F_GSO_UDP_L4`) passes on
    /// whole. A socket with `UDP_GRO` receives it whole; another gets the
    /// segments, cut on arrival (`udp_rcv_segment`). `None` is
    /// [`send_to`](UdpSocket::send_to), with the socket's `UDP_SEGMENT`.
    ///
    /// # Errors
    /// As [`send_to`](UdpSocket::send_to); with a segment size, `EMSGSIZE`
    /// when one segment with its headers exceeds `lo`'s MTU, `EINVAL` past
    /// [`MAX_SEGMENTS`](UdpSocket::MAX_SEGMENTS) segments.
    pub fn send_msg(
        &self,
        buf: &[u8],
        to: Option<SocketAddr>,
        gso_size: Option<u16>,
    ) -> io::Result<usize> {
        let ns = &*self.sk.ns;
        let mut ctx = Ctx::process(ns);
        let r = self.udp_sendmsg(&mut ctx, buf, to, gso_size);
        ctx.local_bh_enable();
        r
    }

    fn udp_sendmsg(
        &self,
        ctx: &mut Ctx<'_>,
        buf: &[u8],
        to: Option<SocketAddr>,
        cmsg_gso: Option<u16>,
    ) -> io::Result<usize> {
        let ns = &*self.sk.ns;
        let mut s = self.sk.lock();
        // udp_sendmsg and udpv6_sendmsg check the address before anything
        // else: a destination port 0 is EINVAL (a socket connected to port 0
        // still sends there).
        let daddr = match to {
            Some(a) if a.port() == 0 => return Err(err(EINVAL)),
            Some(a) => self.check_dst(a)?,
            None => s.remote.ok_or_else(|| err(libc::EDESTADDRREQ))?,
        };
        if s.err != 0 {
            return Err(err(std::mem::take(&mut s.err)));
        }
        let max = if daddr.is_ipv4() {
            UDP4_MAX_PAYLOAD
        } else {
            UDP6_MAX_PAYLOAD
        };
        if buf.len() > max {
            return Err(err(libc::EMSGSIZE));
        }
        let genid = ns.fib.genid();
        let (kind, prefsrc) = match s.rt_cache {
            Some(c) if c.daddr == daddr.ip() && c.genid == genid => (c.kind, c.prefsrc),
            _ => {
                let (kind, prefsrc) = route(ns, daddr.ip())?;
                s.rt_cache = Some(RtCache {
                    daddr: daddr.ip(),
                    genid,
                    kind,
                    prefsrc,
                });
                (kind, prefsrc)
            }
        };
        if kind == Dest::Broadcast && !s.broadcast {
            return Err(err(libc::EACCES));
        }
        if s.local.is_none() {
            let any = if self.sk.v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            self.hash(&mut s, SocketAddr::new(any, 0))?;
        }
        let Some(local) = s.local else {
            return Err(err(EINVAL));
        };
        let saddr = if local.ip().is_unspecified() || kind != Dest::Local && is_mcast(local.ip()) {
            prefsrc
        } else {
            local.ip()
        };
        if saddr.is_ipv4() != daddr.is_ipv4() {
            return Err(err(ENETUNREACH));
        }
        // udp_send_skb's checks of a UDP_SEGMENT send (6.x): one segment
        // with its headers must fit the route's MTU, and at most
        // UDP_MAX_SEGMENTS of them.
        let gso_size = cmsg_gso.unwrap_or(s.gso_size);
        if gso_size != 0 {
            let hlen = if daddr.is_ipv4() { 20 + 8 } else { 40 + 8 };
            let mtu = ns.lo.mtu.load(Relaxed) as usize;
            if hlen + buf.len().min(usize::from(gso_size)) > mtu {
                return Err(err(libc::EMSGSIZE));
            }
            if buf.len() > usize::from(gso_size) * UDP_MAX_SEGMENTS {
                return Err(err(EINVAL));
            }
        }
        let skb = SkBuff {
            saddr: SocketAddr::new(saddr, local.port()),
            daddr,
            seq: 0,
            ack_seq: 0,
            protocol: proto::UDP,
            flags: 0,
            window: 0,
            // For UDP, the cork's gso_size (see SkBuff::mss).
            mss: gso_size,
            ttl: if kind == Dest::Multicast {
                s.mc_ttl
            } else {
                s.ttl
            },
            tos: s.tos,
            payload: Bytes::copy_from_slice(buf),
        };
        crate::trace::kevent_skb!("udp_sendmsg", ns, skb, len = buf.len());
        inc(&ns.udp_mib.out_datagrams);
        match kind {
            Dest::Local => ip_queue_xmit(ctx, &mut s.dst, skb)?,
            // The looped copy of ip_mc_output (IP_MULTICAST_LOOP); without
            // it the datagram would leave by a real interface, which the
            // model does not have.
            Dest::Multicast => {
                let looped = if daddr.is_ipv4() {
                    s.mc_loop4
                } else {
                    s.mc_loop6
                };
                if looped {
                    ip_mc_output(ctx, skb)?
                }
            }
            Dest::Broadcast => ip_mc_output(ctx, skb)?,
        }
        Ok(buf.len())
    }

    /// `recvmsg()` (`udp_recvmsg`): `f` gets the first datagram and its
    /// source, and returns what the call returns (it copies what fits:
    /// the rest of a longer datagram is discarded, as `MSG_TRUNC` is). With
    /// `peek`, the datagram stays queued. Pending with the waker registered
    /// when nothing is queued.
    pub fn poll_recv_from<R>(
        &self,
        cx: &mut Context<'_>,
        peek: bool,
        f: impl FnOnce(&[u8], SocketAddr) -> R,
    ) -> Poll<io::Result<R>> {
        self.recv_inner(Some(cx), peek, |d, a, _| f(d, a))
    }

    /// [`poll_recv_from`](UdpSocket::poll_recv_from) that also gives the
    /// segment size of a GSO datagram a `UDP_GRO` socket received whole
    /// (what the `UDP_GRO` control message carries), or 0 for a plain
    /// datagram.
    pub fn poll_recv_msg<R>(
        &self,
        cx: &mut Context<'_>,
        peek: bool,
        f: impl FnOnce(&[u8], SocketAddr, u16) -> R,
    ) -> Poll<io::Result<R>> {
        self.recv_inner(Some(cx), peek, f)
    }

    /// [`poll_recv_msg`](UdpSocket::poll_recv_msg) without a waker.
    ///
    /// # Errors
    /// A pending socket error (taken); `WouldBlock`.
    pub fn try_recv_msg<R>(
        &self,
        peek: bool,
        f: impl FnOnce(&[u8], SocketAddr, u16) -> R,
    ) -> io::Result<R> {
        match self.recv_inner(None, peek, f) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// [`poll_recv_from`](UdpSocket::poll_recv_from) without a waker:
    /// `WouldBlock` when nothing is queued.
    ///
    /// # Errors
    /// A pending socket error (taken); `WouldBlock`.
    pub fn try_recv_from<R>(
        &self,
        peek: bool,
        f: impl FnOnce(&[u8], SocketAddr) -> R,
    ) -> io::Result<R> {
        match self.recv_inner(None, peek, |d, a, _| f(d, a)) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn recv_inner<R>(
        &self,
        cx: Option<&mut Context<'_>>,
        peek: bool,
        f: impl FnOnce(&[u8], SocketAddr, u16) -> R,
    ) -> Poll<io::Result<R>> {
        let mut s = self.sk.lock();
        // __skb_recv_udp: sock_error before the queue.
        if s.err != 0 {
            return Poll::Ready(Err(err(std::mem::take(&mut s.err))));
        }
        if peek {
            if let Some(d) = s.rcvq.front() {
                let from = self.sk.user_addr(d.from);
                return Poll::Ready(Ok(f(&d.data, from, d.gso_size)));
            }
        } else if let Some(d) = s.rcvq.pop_front() {
            s.rmem_alloc -= d.truesize;
            // udp_rmem_release(partial): the whole pages beyond the last
            // one go back.
            s.fwd_alloc += d.truesize;
            let amt = (s.fwd_alloc - 1) & !(PAGE_SIZE - 1);
            s.fwd_alloc -= amt;
            drop(s);
            if amt > 0 {
                self.sk.ns.udp_mem.sub((amt / PAGE_SIZE) as i64);
            }
            // One per recvmsg: a GSO datagram taken whole counts once.
            inc(&self.sk.ns.udp_mib.in_datagrams);
            return Poll::Ready(Ok(f(&d.data, self.sk.user_addr(d.from), d.gso_size)));
        }
        if let Some(cx) = cx {
            s.rx_waiters.register(cx.waker());
        }
        Poll::Pending
    }

    /// Ready once a datagram is waiting (`EPOLLIN`; a pending error alone
    /// is `EPOLLERR`, see [`poll_error_ready`](UdpSocket::poll_error_ready));
    /// else registers the waker.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.sk.lock();
        if !s.rcvq.is_empty() {
            return Poll::Ready(Ok(()));
        }
        s.rx_waiters.register(cx.waker());
        Poll::Pending
    }

    /// Always ready: on `lo` a datagram's send buffer is released as the
    /// device takes it, so a sender never waits.
    pub fn poll_write_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Ready once an error is pending; else registers the waker.
    pub fn poll_error_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.sk.lock();
        if s.err != 0 {
            return Poll::Ready(Ok(()));
        }
        s.rx_waiters.register(cx.waker());
        Poll::Pending
    }

    /// The socket's readiness now (`udp_poll` → `datagram_poll`: `EPOLLIN`
    /// for a queued datagram, `EPOLLOUT` always on `lo`, `EPOLLERR` for a
    /// pending error, which does not make the socket readable).
    pub fn readiness(&self) -> crate::af_inet::Readiness {
        let s = self.sk.lock();
        crate::af_inet::Readiness {
            readable: !s.rcvq.is_empty(),
            writable: true,
            read_closed: false,
            write_closed: false,
            error: s.err != 0,
        }
    }

    /// `getsockname()`: `0.0.0.0:0` (or `[::]:0`) while unbound.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let s = self.sk.lock();
        Ok(match s.local {
            Some(l) => self.sk.user_addr(l),
            None if self.sk.v6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        })
    }

    /// `getpeername()`.
    ///
    /// # Errors
    /// `ENOTCONN` unless connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let s = self.sk.lock();
        // inet_getname / inet6_getname: no peer while the destination port
        // is 0, even on a socket connected to port 0.
        s.remote
            .filter(|r| r.port() != 0)
            .map(|r| self.sk.user_addr(r))
            .ok_or_else(|| err(ENOTCONN))
    }

    /// `SO_ERROR`: takes the pending error.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut s = self.sk.lock();
        Ok(match std::mem::take(&mut s.err) {
            0 => None,
            e => Some(err(e)),
        })
    }

    /// `SO_BROADCAST`.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sk.lock().broadcast = on;
        Ok(())
    }

    /// `SO_BROADCAST`'s value.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn broadcast(&self) -> io::Result<bool> {
        Ok(self.sk.lock().broadcast)
    }

    /// `IP_TTL` (1..=255).
    ///
    /// # Errors
    /// `EINVAL` outside 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl)
            .ok()
            .filter(|t| *t >= 1)
            .ok_or_else(|| err(EINVAL))?;
        self.sk.lock().ttl = ttl;
        Ok(())
    }

    /// `IP_TTL`'s value (64 by default, `net.ipv4.ip_default_ttl`).
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(u32::from(self.sk.lock().ttl))
    }

    /// `IP_TOS` / `IPV6_TCLASS`.
    ///
    /// # Errors
    /// `EINVAL` past 255.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.sk.lock().tos = u8::try_from(tos).map_err(|_| err(EINVAL))?;
        Ok(())
    }

    /// `IP_TOS`'s value.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn tos(&self) -> io::Result<u32> {
        Ok(u32::from(self.sk.lock().tos))
    }

    /// `IP_MULTICAST_TTL` (0..=255, default 1).
    ///
    /// # Errors
    /// `EINVAL` past 255.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.sk.lock().mc_ttl = u8::try_from(ttl).map_err(|_| err(EINVAL))?;
        Ok(())
    }

    /// `IP_MULTICAST_TTL`'s value.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        Ok(u32::from(self.sk.lock().mc_ttl))
    }

    /// `IP_MULTICAST_LOOP` (default on).
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.sk.lock().mc_loop4 = on;
        Ok(())
    }

    /// `IP_MULTICAST_LOOP`'s value.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        Ok(self.sk.lock().mc_loop4)
    }

    /// `IPV6_MULTICAST_LOOP` (default on).
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.sk.lock().mc_loop6 = on;
        Ok(())
    }

    /// `IPV6_MULTICAST_LOOP`'s value.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        Ok(self.sk.lock().mc_loop6)
    }

    /// `IP_ADD_MEMBERSHIP` / `IPV6_ADD_MEMBERSHIP` on `lo` (the interface
    /// must be unspecified, a local address, or index 0 or 1).
    ///
    /// # Errors
    /// `EINVAL` for a group that is not multicast; `ENODEV` for another
    /// interface; `EADDRINUSE` if already joined.
    pub fn join_multicast(&self, group: IpAddr, iface_ok: bool) -> io::Result<()> {
        if !is_mcast(group) {
            return Err(err(EINVAL));
        }
        if !iface_ok {
            return Err(err(libc::ENODEV));
        }
        let mut s = self.sk.lock();
        if s.groups.contains(&group) {
            return Err(err(EADDRINUSE));
        }
        s.groups.push(group);
        self.sync_groups(&s);
        Ok(())
    }

    /// `IP_DROP_MEMBERSHIP` / `IPV6_DROP_MEMBERSHIP`.
    ///
    /// # Errors
    /// `EADDRNOTAVAIL` for a group not joined (`EINVAL` for one that is not
    /// multicast).
    pub fn leave_multicast(&self, group: IpAddr) -> io::Result<()> {
        if !is_mcast(group) {
            return Err(err(EINVAL));
        }
        let mut s = self.sk.lock();
        let Some(i) = s.groups.iter().position(|g| *g == group) else {
            return Err(err(EADDRNOTAVAIL));
        };
        s.groups.remove(i);
        self.sync_groups(&s);
        Ok(())
    }

    fn sync_groups(&self, s: &UdpInner) {
        if let Some(l) = s.local {
            let groups = s.groups.clone();
            write(&self.sk.ns.udp).update(self.sk.id, l.port(), |e| e.groups = groups);
        }
    }

    /// `SO_RCVBUF`: the buffer becomes twice `size` (capped by
    /// `net.core.rmem_max`), at least `SOCK_MIN_RCVBUF`.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        let max = self.sk.ns.sysctl().rmem_max;
        self.sk.lock().rcvbuf = ((size as usize).min(max) * 2).max(SOCK_MIN_RCVBUF);
        Ok(())
    }

    /// `SO_RCVBUF`'s value (`net.core.rmem_default` by default).
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        Ok(self.sk.lock().rcvbuf as u32)
    }

    /// `SO_SNDBUF`: twice `size` (capped by `net.core.wmem_max`), at least
    /// `SOCK_MIN_SNDBUF`.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        let max = self.sk.ns.sysctl().wmem_max;
        self.sk.lock().sndbuf = ((size as usize).min(max) * 2).max(SOCK_MIN_SNDBUF);
        Ok(())
    }

    /// `SO_SNDBUF`'s value (`net.core.wmem_default` by default).
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        Ok(self.sk.lock().sndbuf as u32)
    }

    /// `UDP_SEGMENT`: the segment size of every later send (0: none), as a
    /// `UDP_SEGMENT` control message gives it for one send.
    ///
    /// # Errors
    /// None in the model (the option takes any `u16`, as Linux's does);
    /// the `Result` is the API's.
    pub fn set_segment_size(&self, gso_size: u16) -> io::Result<()> {
        self.sk.lock().gso_size = gso_size;
        Ok(())
    }

    /// `UDP_SEGMENT`'s value.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn segment_size(&self) -> io::Result<u16> {
        Ok(self.sk.lock().gso_size)
    }

    /// `UDP_GRO`: a GSO datagram arrives whole, its segment size given by
    /// [`poll_recv_msg`](UdpSocket::poll_recv_msg); off (the default), it
    /// arrives as its segments.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn set_gro(&self, on: bool) -> io::Result<()> {
        self.sk.lock().gro = on;
        Ok(())
    }

    /// `UDP_GRO`'s value.
    ///
    /// # Errors
    /// None in the model; the `Result` is the API's.
    pub fn gro(&self) -> io::Result<bool> {
        Ok(self.sk.lock().gro)
    }

    /// The datagrams queued and their bytes (`ss`'s Recv-Q is the
    /// truesize charged, `sk_rmem_alloc`), and `sk_drops`.
    pub fn queued(&self) -> (usize, usize, u64) {
        let s = self.sk.lock();
        (s.rcvq.len(), s.rmem_alloc, s.drops)
    }

    /// The namespace the socket belongs to.
    pub fn netns(&self) -> Netns {
        Netns(self.sk.ns.clone())
    }

    /// Whether this is an `AF_INET6` socket.
    pub fn is_ipv6(&self) -> bool {
        self.sk.v6
    }
}

/// `udp_rcv` / `udpv6_rcv` (softirq): deliver to the socket the lookup
/// finds, to every matching one for broadcast and multicast, or count
/// `NoPorts` and answer with an ICMP port unreachable.
pub(crate) fn udp_rcv(ctx: &mut Ctx<'_>, skb: SkBuff) {
    let ns = ctx.ns;
    crate::trace::kevent_skb!("udp_rcv", ns, skb);
    let d = skb.daddr.ip();
    // The local table's broadcast routes are x.y.z.255 (127.255.255.255):
    // look only those up.
    let bcast = match d {
        IpAddr::V4(v) if v.octets()[3] == 255 => {
            is_limited_bcast(d)
                || matches!(ns.fib.fib_lookup(d), Some(r) if r.rtype == RouteType::Broadcast)
        }
        _ => false,
    };
    if is_mcast(d) || bcast {
        return udp_mcast_deliver(ns, skb);
    }
    let sk = read(&ns.udp).lookup(skb.saddr, skb.daddr);
    match sk {
        Some(sk) => udp_queue_rcv_skb(ns, &sk, skb.saddr, skb.payload, skb.mss),
        None => {
            inc(&ns.udp_mib.no_ports);
            crate::trace::kevent_skb!("kfree_skb", ns, skb, reason = "UDP_NO_SOCKET");
            icmp_send(ctx, skb);
        }
    }
}

/// `__udp4_lib_mcast_deliver`: a copy to every socket on the port whose
/// bound address takes the destination, connected to the source if at all,
/// and (multicast) member of the group, or of any group the namespace
/// joined (`IP_MULTICAST_ALL`, on by default).
fn udp_mcast_deliver(ns: &NsInner, skb: SkBuff) {
    let d = skb.daddr.ip();
    let targets: Vec<Arc<UdpSock>> = {
        let t = read(&ns.udp);
        let Some(list) = t.ports.get(&skb.daddr.port()) else {
            inc(&ns.udp_mib.ignored_multi);
            return;
        };
        if is_mcast(d) {
            let joined = t.ports.values().flatten().any(|e| e.groups.contains(&d));
            if !joined {
                // No member on lo: ip_check_mc_rcu drops it at IP input.
                return;
            }
        }
        list.iter()
            .filter(|e| {
                let addr_ok = e.local.ip().is_unspecified()
                    && (e.local.is_ipv4() == d.is_ipv4() || e.v6)
                    || e.local.ip() == d;
                addr_ok && e.remote.is_none_or(|r| r == skb.saddr)
            })
            .map(|e| e.sk.clone())
            .collect()
    };
    if targets.is_empty() {
        inc(&ns.udp_mib.ignored_multi);
        return;
    }
    for sk in targets {
        udp_queue_rcv_skb(ns, &sk, skb.saddr, skb.payload.clone(), skb.mss);
    }
}

/// `udp_queue_rcv_skb`: a datagram built with a `gso_size` (`UDP_SEGMENT`)
/// longer than one segment is a GSO skb; a socket with `UDP_GRO` takes it
/// whole, another (`udp_unexpected_gso`) gets it cut by `udp_rcv_segment`
/// (`__udp_gso_segment`) into datagrams of `gso_size` bytes, each queued on
/// its own (and each charged, and perhaps dropped, on its own).
fn udp_queue_rcv_skb(ns: &NsInner, sk: &UdpSock, from: SocketAddr, data: Bytes, gso_size: u16) {
    let seg = usize::from(gso_size);
    let mut s = sk.lock();
    let queued_before = s.rcvq.len();
    let dropped = if seg == 0 {
        let truesize = udp_truesize(data.len(), from.is_ipv6());
        u64::from(!udp_queue_rcv_one_skb(ns, &mut s, from, data, truesize, 0))
    } else if data.len() <= seg {
        // Built paged, though not GSO: one datagram.
        let truesize = paged_truesize(data.len());
        u64::from(!udp_queue_rcv_one_skb(ns, &mut s, from, data, truesize, 0))
    } else if s.gro {
        let truesize = paged_truesize(data.len());
        u64::from(!udp_queue_rcv_one_skb(
            ns, &mut s, from, data, truesize, gso_size,
        ))
    } else {
        let mut dropped = 0;
        let mut off = 0;
        while off < data.len() {
            let end = (off + seg).min(data.len());
            let part = data.slice(off..end);
            let truesize = paged_truesize(end - off);
            dropped += u64::from(!udp_queue_rcv_one_skb(ns, &mut s, from, part, truesize, 0));
            off = end;
        }
        dropped
    };
    if s.rcvq.len() > queued_before {
        // sk_data_ready
        s.rx_waiters.wake_all();
    }
    drop(s);
    if dropped > 0 {
        ns.udp_mib.rcvbuf_errors.fetch_add(dropped, Relaxed);
        ns.udp_mib.in_errors.fetch_add(dropped, Relaxed);
        crate::trace::kevent!(
            "kfree_skb",
            ns = ns.id,
            saddr = %from,
            reason = "SOCKET_RCVBUFF"
        );
    }
}

/// `udp_queue_rcv_one_skb` → `__udp_enqueue_schedule_skb`: accepted when the
/// queue is empty or the datagram's truesize still fits `sk_rcvbuf`;
/// otherwise dropped (false) and counted in `sk_drops` (once for a GSO
/// datagram kept whole); the caller counts `RcvbufErrors` and `InErrors`.
fn udp_queue_rcv_one_skb(
    ns: &NsInner,
    s: &mut UdpInner,
    from: SocketAddr,
    data: Bytes,
    truesize: usize,
    gso_size: u16,
) -> bool {
    if s.rmem_alloc != 0 && s.rmem_alloc + truesize > s.rcvbuf {
        s.drops += 1;
        return false;
    }
    // udp_rmem_schedule: whole pages for what sk_forward_alloc lacks.
    if truesize > s.fwd_alloc {
        let pages = (truesize - s.fwd_alloc).div_ceil(PAGE_SIZE);
        s.fwd_alloc += pages * PAGE_SIZE;
        ns.udp_mem.add(pages as i64);
    }
    s.fwd_alloc -= truesize;
    s.rmem_alloc += truesize;
    s.rcvq.push_back(Dgram {
        from,
        data,
        truesize,
        gso_size,
    });
    true
}

/// `icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH)` (`icmp6_send`
/// for IPv6): the reply quotes the datagram and goes back through `lo`.
///
/// Rate limits, as `__icmp_send` orders them since Linux 6.12 (and the
/// stable kernels the change went back to): the namespace's token bucket
/// (`icmp_global_allow`: `icmp_msgs_per_sec`, `icmp_msgs_burst`, for the
/// types in `icmp_ratemask`) is checked only when the offending packet did
/// not come in on a loopback device; when it is skipped, `apply_ratelimit`
/// stays false and `icmpv4_xrlim_allow` lets the error pass without the
/// per-peer limit (`icmp_ratelimit`), which itself exempts a route through
/// `lo` anyway. Every packet of the model came in on `lo`, so every port
/// unreachable is sent and `OutRateLimitGlobal` / `OutRateLimitHost` stay
/// 0, as on Linux's loopback (the same holds for ICMPv6: `icmp6_send`
/// skips `icmpv6_global_allow` for `IFF_LOOPBACK`).
fn icmp_send(ctx: &mut Ctx<'_>, skb: SkBuff) {
    let ns = ctx.ns;
    let v4 = skb.saddr.is_ipv4();
    let mut payload = skb.payload;
    payload.truncate(if v4 { ICMP_QUOTE4 } else { ICMP_QUOTE6 });
    let icmp = SkBuff {
        saddr: skb.daddr,
        daddr: skb.saddr,
        seq: 0,
        ack_seq: 0,
        protocol: proto::ICMP,
        flags: 0,
        window: 0,
        mss: 0,
        ttl: 64,
        // IPTOS_PREC_INTERNETCONTROL, as icmp_send sets for errors.
        tos: if v4 { 0xc0 } else { 0 },
        payload,
    };
    crate::trace::kevent_skb!("icmp_send", ns, icmp, kind = "port_unreachable");
    inc(&ns.udp_mib.icmp_out_msgs);
    inc(&ns.udp_mib.icmp_out_dest_unreachs);
    let mut dst = None;
    // Through lo like any packet; a failure (lo down) loses the reply.
    let _ = ip_queue_xmit(ctx, &mut dst, icmp);
}

/// `icmp_rcv` → `icmp_unreach` → `__udp4_lib_err` (`icmpv6_rcv` →
/// `__udp6_lib_err`): the socket that sent the quoted datagram, if it is
/// connected, gets `sk_err = ECONNREFUSED` (a port unreachable is a hard
/// error) and its waiters are woken; an unconnected one is told nothing
/// (no `IP_RECVERR`).
pub(crate) fn icmp_rcv(ctx: &mut Ctx<'_>, skb: SkBuff) {
    let ns = ctx.ns;
    crate::trace::kevent_skb!("icmp_rcv", ns, skb);
    inc(&ns.udp_mib.icmp_in_msgs);
    inc(&ns.udp_mib.icmp_in_dest_unreachs);
    // The quoted datagram went from skb.daddr to skb.saddr: its sender is
    // the socket bound to skb.daddr that would take a reply from skb.saddr.
    let Some(sk) = read(&ns.udp).lookup(skb.saddr, skb.daddr) else {
        return;
    };
    let mut s = sk.lock();
    if s.remote.is_some() {
        s.err = ECONNREFUSED;
        // sk_error_report
        s.rx_waiters.wake_all();
    }
}

/// `ss -uan`: the namespace's UDP sockets (Recv-Q: the receive memory
/// charged, `sk_rmem_alloc`, as ss shows it for UDP; Send-Q: 0, as the
/// send buffer is released on `lo` at once).
pub(crate) fn udp_sock_infos(ns: &NsInner) -> Vec<SockInfo> {
    let entries: Vec<UdpEntry> = read(&ns.udp).ports.values().flatten().cloned().collect();
    let mut rows: Vec<SockInfo> = entries
        .iter()
        .map(|e| {
            let s = e.sk.lock();
            let local = s.local.unwrap_or(e.local);
            let any = if e.v6 {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
            } else {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
            };
            SockInfo::udp(
                if s.remote.is_some() {
                    TcpState::Established
                } else {
                    TcpState::Close
                },
                s.rmem_alloc as u64,
                e.sk.user_addr(local),
                s.remote.map_or(any, |r| e.sk.user_addr(r)),
                e.sk.id,
            )
        })
        .collect();
    rows.sort_by_key(|r| (r.local, r.peer));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysctl::Sysctl;
    use std::task::Waker;

    fn ns() -> Netns {
        Netns::new()
    }

    fn recv(s: &UdpSocket) -> io::Result<(Vec<u8>, SocketAddr)> {
        s.try_recv_from(false, |d, a| (d.to_vec(), a))
    }

    #[test]
    fn truesize_matches_what_linux_charges() {
        for (len, v4, v6) in [
            (0, 832, 832),
            (64, 832, 832),
            (192, 832, 1280),
            (500, 1280, 1280),
            (700, 2304, 2304),
            (1200, 2304, 2304),
            (2000, 4352, 4352),
            (3800, 8448, 8448),
            (9000, 16640, 16640),
            (16000, 16640, 16832),
            (32000, 32832, 32832),
            (65000, 65832, 65832),
        ] {
            assert_eq!(udp_truesize(len, false), v4, "{len} B over IPv4");
            assert_eq!(udp_truesize(len, true), v6, "{len} B over IPv6");
        }
    }

    #[test]
    fn a_datagram_goes_through_lo_to_the_bound_socket() {
        let ns = ns();
        let a = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind(&ns, "127.0.0.1:5000".parse().unwrap()).unwrap();
        assert_eq!(
            a.send_to(b"ping", Some(b.local_addr().unwrap())).unwrap(),
            4
        );
        let (d, from) = recv(&b).unwrap();
        assert_eq!((&d[..], from), (&b"ping"[..], a.local_addr().unwrap()));
        let st = ns.udp_stats();
        assert_eq!((st.out_datagrams, st.in_datagrams), (1, 1));
        assert_eq!(ns.lo_stats().rx_packets, 1);
        assert_eq!(ns.lo_stats().rx_bytes, 20 + 8 + 4);
        assert_eq!(recv(&b).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn no_socket_means_icmp_and_econnrefused_for_a_connected_sender() {
        let ns = ns();
        let a = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        // Unconnected: nothing reported.
        a.send_to(b"x", Some("127.0.0.1:9".parse().unwrap()))
            .unwrap();
        assert!(a.take_error().unwrap().is_none());
        a.connect("127.0.0.1:9".parse().unwrap()).unwrap();
        a.send_to(b"x", None).unwrap();
        let e = a.send_to(b"x", None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(ECONNREFUSED));
        // Taken by that call; the next one sends (and is refused again).
        a.send_to(b"x", None).unwrap();
        assert_eq!(recv(&a).unwrap_err().raw_os_error(), Some(ECONNREFUSED));
        let st = ns.udp_stats();
        assert_eq!(st.no_ports, 3);
        assert_eq!((st.icmp_out_msgs, st.icmp_in_dest_unreachs), (3, 3));
    }

    #[test]
    fn connected_beats_bound_beats_wildcard_and_filters_sources() {
        let ns = ns();
        let any = UdpSocket::bind_with(&ns, "0.0.0.0:6000".parse().unwrap(), true, false).unwrap();
        let bound =
            UdpSocket::bind_with(&ns, "127.0.0.1:6000".parse().unwrap(), true, false).unwrap();
        let peer = UdpSocket::bind(&ns, "127.0.0.1:7000".parse().unwrap()).unwrap();
        let other = UdpSocket::bind(&ns, "127.0.0.1:7001".parse().unwrap()).unwrap();
        let conn =
            UdpSocket::bind_with(&ns, "127.0.0.1:6000".parse().unwrap(), true, false).unwrap();
        conn.connect(peer.local_addr().unwrap()).unwrap();
        let to = Some("127.0.0.1:6000".parse().unwrap());
        peer.send_to(b"p", to).unwrap();
        other.send_to(b"o", to).unwrap();
        peer.send_to(b"2", Some("127.0.0.2:6000".parse().unwrap()))
            .unwrap();
        assert_eq!(recv(&conn).unwrap().0, b"p");
        assert_eq!(recv(&bound).unwrap().0, b"o");
        assert_eq!(recv(&any).unwrap().0, b"2");
        assert!(recv(&conn).is_err() && recv(&bound).is_err() && recv(&any).is_err());
    }

    #[test]
    fn bind_conflicts_as_udp_lib_get_port() {
        let ns = ns();
        let _a = UdpSocket::bind(&ns, "127.0.0.1:6100".parse().unwrap()).unwrap();
        let e = UdpSocket::bind(&ns, "0.0.0.0:6100".parse().unwrap()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EADDRINUSE));
        let e = UdpSocket::bind(&ns, "[::]:6100".parse().unwrap()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EADDRINUSE));
        UdpSocket::bind(&ns, "127.0.0.2:6100".parse().unwrap()).unwrap();
        // TCP's ports are another table.
        let _t = crate::af_inet::Socket::listen(&ns, "127.0.0.1:6100".parse().unwrap(), 1).unwrap();
        let e = UdpSocket::bind(&ns, "10.0.0.1:0".parse().unwrap()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EADDRNOTAVAIL));
    }

    #[test]
    fn a_reuseport_group_spreads_by_source() {
        let ns = ns();
        let addr: SocketAddr = "127.0.0.1:6200".parse().unwrap();
        let g: Vec<_> = (0..4)
            .map(|_| UdpSocket::bind_with(&ns, addr, false, true).unwrap())
            .collect();
        let senders: Vec<_> = (0..32)
            .map(|_| UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap())
            .collect();
        for s in &senders {
            s.send_to(b"x", Some(addr)).unwrap();
            s.send_to(b"y", Some(addr)).unwrap();
        }
        let counts: Vec<usize> = g.iter().map(|s| s.queued().0).collect();
        assert_eq!(counts.iter().sum::<usize>(), 64);
        assert!(counts.iter().filter(|c| **c > 0).count() >= 2, "{counts:?}");
        assert!(counts.iter().all(|c| c % 2 == 0), "one source, one member");
    }

    #[test]
    fn the_receive_buffer_drops_past_rmem_and_counts() {
        let ns = ns();
        let r = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let s = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let to = Some(r.local_addr().unwrap());
        for _ in 0..300 {
            s.send_to(&[0; 64], to).unwrap();
        }
        // 212992 / 832 = 256, as Linux 6.x keeps.
        let (n, mem, drops) = r.queued();
        assert_eq!((n, mem, drops), (256, 256 * 832, 44));
        let st = ns.udp_stats();
        assert_eq!((st.rcvbuf_errors, st.in_errors), (44, 44));
        // A datagram larger than the buffer still fits an empty queue.
        r.set_recv_buffer_size(1).unwrap();
        assert_eq!(
            r.recv_buffer_size().unwrap(),
            2304,
            "SOCK_MIN_RCVBUF, as Linux"
        );
        s.set_send_buffer_size(1).unwrap();
        assert_eq!(
            s.send_buffer_size().unwrap(),
            4608,
            "SOCK_MIN_SNDBUF, as Linux"
        );
        while recv(&r).is_ok() {}
        s.send_to(&[0; 9000], to).unwrap();
        s.send_to(&[0; 1], to).unwrap();
        assert_eq!(r.queued().0, 1);
    }

    #[test]
    fn new_sockets_take_their_buffers_from_rmem_and_wmem_default() {
        let ns = ns();
        ns.set_sysctl(|s| {
            s.rmem_default = 4096;
            s.wmem_default = 8192;
        })
        .unwrap();
        let u = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(u.recv_buffer_size().unwrap(), 4096);
        assert_eq!(u.send_buffer_size().unwrap(), 8192);
        // The kernel's minimums: SOCK_MIN_RCVBUF and SOCK_MIN_SNDBUF.
        let e = ns.set_sysctl(|s| s.rmem_default = 2303).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = ns.set_sysctl(|s| s.wmem_default = 4607).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn emsgsize_broadcast_and_multicast() {
        let ns = ns();
        let s = UdpSocket::bind(&ns, "0.0.0.0:6300".parse().unwrap()).unwrap();
        let to = Some("127.0.0.1:6300".parse().unwrap());
        assert!(s.send_to(&vec![0; UDP4_MAX_PAYLOAD], to).is_ok());
        let e = s.send_to(&vec![0; UDP4_MAX_PAYLOAD + 1], to).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
        let bc = Some("127.255.255.255:6300".parse().unwrap());
        assert_eq!(
            s.send_to(b"b", bc).unwrap_err().raw_os_error(),
            Some(libc::EACCES)
        );
        s.set_broadcast(true).unwrap();
        s.send_to(b"b", bc).unwrap();
        let group: IpAddr = "239.1.2.3".parse().unwrap();
        s.join_multicast(group, true).unwrap();
        s.send_to(b"m", Some(SocketAddr::new(group, 6300))).unwrap();
        s.set_multicast_loop_v4(false).unwrap();
        s.send_to(b"n", Some(SocketAddr::new(group, 6300))).unwrap();
        let got: Vec<Vec<u8>> = std::iter::from_fn(|| recv(&s).ok().map(|d| d.0)).collect();
        assert_eq!(got.len(), 3);
        assert_eq!((&got[1][..], &got[2][..]), (&b"b"[..], &b"m"[..]));
    }

    fn recv_msg(s: &UdpSocket) -> io::Result<(Vec<u8>, u16)> {
        s.try_recv_msg(false, |d, _, gso| (d.to_vec(), gso))
    }

    #[test]
    fn a_gso_send_arrives_whole_with_udp_gro_and_cut_without() {
        let ns = ns();
        let gro = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        gro.set_gro(true).unwrap();
        let plain = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let s = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let n = s
            .send_msg(&data, Some(gro.local_addr().unwrap()), Some(1200))
            .unwrap();
        assert_eq!(n, 3000);
        s.send_msg(&data, Some(plain.local_addr().unwrap()), Some(1200))
            .unwrap();
        // One skb each through lo, headers once (NETIF_F_GSO_UDP_L4).
        let lo = ns.lo_stats();
        assert_eq!((lo.rx_packets, lo.rx_bytes), (2, 2 * (20 + 8 + 3000)));
        assert_eq!(ns.udp_stats().out_datagrams, 2);
        // The GRO socket: one datagram, charged as one paged skb.
        assert_eq!(gro.queued(), (1, 832 + 3000, 0));
        assert_eq!(recv_msg(&gro).unwrap(), (data.clone(), 1200));
        // The other: udp_rcv_segment's three, each charged on its own.
        assert_eq!(plain.queued(), (3, 3 * 832 + 3000, 0));
        let segs: Vec<(Vec<u8>, u16)> = std::iter::from_fn(|| recv_msg(&plain).ok()).collect();
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0], (data[..1200].to_vec(), 0));
        assert_eq!(segs[1], (data[1200..2400].to_vec(), 0));
        assert_eq!(segs[2], (data[2400..].to_vec(), 0));
        // InDatagrams: one per recvmsg.
        assert_eq!(ns.udp_stats().in_datagrams, 4);
        // No longer than one segment: a plain datagram (built paged).
        s.send_msg(&data[..1000], Some(gro.local_addr().unwrap()), Some(1200))
            .unwrap();
        assert_eq!(gro.queued(), (1, 832 + 1000, 0));
        assert_eq!(recv_msg(&gro).unwrap(), (data[..1000].to_vec(), 0));
    }

    #[test]
    fn udp_segment_limits_as_udp_send_skb() {
        let ns = ns();
        let r = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let s = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let to = Some(r.local_addr().unwrap());
        // UDP_MAX_SEGMENTS (128) segments at most.
        let e = s.send_msg(&[0; 12_801], to, Some(100)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EINVAL));
        s.send_msg(&[0; 12_800], to, Some(100)).unwrap();
        // Still one datagram of at most 65507 bytes.
        let e = s
            .send_msg(&vec![0; UDP4_MAX_PAYLOAD + 1], to, Some(1000))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
        // A segment with its headers must fit the MTU.
        ns.set_lo_mtu(1500).unwrap();
        let e = s.send_msg(&[0; 3000], to, Some(1473)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
        s.send_msg(&[0; 3000], to, Some(1472)).unwrap();
        // min(datalen, gso_size): a short datagram passes a large gso_size.
        s.send_msg(&[0; 1000], to, Some(2000)).unwrap();
        // The socket option, and a control message of 0 overriding it.
        s.set_segment_size(1000).unwrap();
        assert_eq!(s.segment_size().unwrap(), 1000);
        s.send_to(&[0; 2500], to).unwrap();
        s.send_msg(&[0; 1400], to, Some(0)).unwrap();
        let lens: Vec<usize> = std::iter::from_fn(|| recv(&r).ok().map(|d| d.0.len())).collect();
        let mut want = vec![100; 128];
        want.extend([1472, 1472, 56, 1000, 1000, 1000, 500, 1400]);
        assert_eq!(lens, want);
        assert_eq!(ns.udp_stats().out_datagrams, 5);
    }

    #[test]
    fn a_gso_datagram_is_charged_and_dropped_whole_or_by_segment() {
        let ns = ns();
        let gro = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        gro.set_gro(true).unwrap();
        let plain = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let s = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        for r in [&gro, &plain] {
            // SOCK_MIN_RCVBUF: 2304 bytes.
            r.set_recv_buffer_size(1).unwrap();
        }
        for _ in 0..2 {
            s.send_msg(&[1; 3600], Some(gro.local_addr().unwrap()), Some(1200))
                .unwrap();
        }
        // The first fits the empty queue; the second is dropped whole.
        assert_eq!(gro.queued(), (1, 832 + 3600, 1));
        let st = ns.udp_stats();
        assert_eq!((st.rcvbuf_errors, st.in_errors), (1, 1));
        // Cut first: 2032 bytes a segment, so one fits and two are dropped.
        s.send_msg(&[1; 3600], Some(plain.local_addr().unwrap()), Some(1200))
            .unwrap();
        assert_eq!(plain.queued(), (1, 832 + 1200, 2));
        let st = ns.udp_stats();
        assert_eq!((st.rcvbuf_errors, st.in_errors), (3, 3));
    }

    #[test]
    fn ss_tuan_lists_udp_then_tcp_with_a_netid_column() {
        use crate::stats::Netid;
        let ns = ns();
        let _l =
            crate::af_inet::Socket::listen(&ns, "127.0.0.1:8080".parse().unwrap(), 16).unwrap();
        let a = UdpSocket::bind(&ns, "127.0.0.1:5353".parse().unwrap()).unwrap();
        let b = UdpSocket::bind(&ns, "[::]:6000".parse().unwrap()).unwrap();
        b.connect("[::ffff:127.0.0.1]:5353".parse().unwrap())
            .unwrap();
        b.send_to(&[0; 100], None).unwrap();
        let t = ns.sockets();
        let netids: Vec<Netid> = t.iter().map(|r| r.netid).collect();
        assert_eq!(netids, [Netid::Udp, Netid::Udp, Netid::Tcp]);
        assert_eq!(
            t.to_string(),
            "\
Netid State  Recv-Q Send-Q      Local Address:Port       Peer Address:PortProcess
udp   UNCONN 832    0               127.0.0.1:5353            0.0.0.0:*
udp   ESTAB  0      0      [::ffff:127.0.0.1]:6000 [::ffff:127.0.0.1]:5353
tcp   LISTEN 0      16              127.0.0.1:8080            0.0.0.0:*",
            "\n{t}"
        );
        // ss -uan and ss -tan: one protocol, no Netid column.
        assert_eq!(t.only(Netid::Udp), ns.udp_sockets());
        assert_eq!(
            t.only(Netid::Tcp).to_string(),
            "\
State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
LISTEN 0      16         127.0.0.1:8080      0.0.0.0:*"
        );
        // find() looks for TCP connections only.
        let (l, p) = (t.sockets[1].local, t.sockets[1].peer);
        assert!(t.find(l, p).is_none());
        drop(a);
    }

    #[test]
    fn sockstat_counts_udp_sockets_and_pages_as_linux() {
        let ns = ns();
        let s = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let v6 = UdpSocket::bind(&ns, "[::1]:0".parse().unwrap()).unwrap();
        let rs: Vec<UdpSocket> = (0..5)
            .map(|_| UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap())
            .collect();
        let st = ns.sockstat();
        assert_eq!((st.udp_inuse, st.udp6_inuse, st.udp_mem), (6, 1, 0));
        drop(v6);
        // 256 datagrams of 832 bytes fill a default buffer: 52 pages each.
        // The first four sockets' 208 pages stay in this CPU's reserve.
        for r in &rs[..4] {
            for _ in 0..256 {
                s.send_to(&[0; 64], Some(r.local_addr().unwrap())).unwrap();
            }
        }
        assert_eq!(ns.sockstat().udp_mem, 0, "in the per-CPU reserve");
        // The fifth takes the reserve to 256 pages: the global count has them.
        for _ in 0..256 {
            s.send_to(&[0; 64], Some(rs[4].local_addr().unwrap()))
                .unwrap();
        }
        assert_eq!(
            ns.sockstat().to_string(),
            "TCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\nUDP: inuse 6 mem 256"
        );
        // Reading gives pages back (all but the last one the socket holds),
        // to the reserve first; closing gives back the rest.
        while recv(&rs[0]).is_ok() {}
        assert_eq!(rs[0].queued(), (0, 0, 0));
        assert_eq!(ns.sockstat().udp_mem, 256);
        drop(rs);
        let st = ns.sockstat();
        assert_eq!((st.udp_inuse, st.udp_mem), (1, 0));
    }

    #[test]
    fn port_unreachables_on_lo_are_not_rate_limited() {
        let ns = ns();
        let d = Sysctl::default();
        assert_eq!(
            (
                d.icmp_msgs_per_sec,
                d.icmp_msgs_burst,
                d.icmp_ratemask,
                d.icmp_ratelimit_ms
            ),
            (1000, 50, 0x1818, 1000)
        );
        // The tightest limits: one message a second, a bucket of one.
        ns.set_sysctl(|s| {
            s.icmp_msgs_per_sec = 1;
            s.icmp_msgs_burst = 1;
        })
        .unwrap();
        let e = ns
            .set_sysctl(|s| s.icmp_msgs_burst = i32::MAX as u32 + 1)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let a = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
        let v6 = UdpSocket::bind(&ns, "[::1]:0".parse().unwrap()).unwrap();
        for _ in 0..200 {
            a.send_to(b"x", Some("127.0.0.1:9".parse().unwrap()))
                .unwrap();
            v6.send_to(b"x", Some("[::1]:9".parse().unwrap())).unwrap();
        }
        // __icmp_send skips the global bucket for what came in on lo, and
        // with it the per-peer limit: every one is answered.
        let st = ns.udp_stats();
        assert_eq!((st.no_ports, st.icmp_out_dest_unreachs), (400, 400));
        assert_eq!(st.icmp_in_dest_unreachs, 400);
        assert_eq!(
            (st.icmp_out_rate_limit_global, st.icmp_out_rate_limit_host),
            (0, 0)
        );
        // A connected sender is refused on every other call, as on Linux's lo.
        a.connect("127.0.0.1:9".parse().unwrap()).unwrap();
        let refused = (0..100).filter(|_| a.send_to(b"x", None).is_err()).count();
        assert_eq!(refused, 50);
        assert!(st
            .to_string()
            .contains("    OutRateLimitGlobal: 0\n    OutRateLimitHost: 0\n"));
    }

    #[test]
    fn a_waiting_reader_is_woken() {
        let ns = ns();
        let r = UdpSocket::bind(&ns, "[::1]:0".parse().unwrap()).unwrap();
        let s = UdpSocket::bind(&ns, "[::1]:0".parse().unwrap()).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(r.poll_read_ready(&mut cx).is_pending());
        s.send_to(b"hi", Some(r.local_addr().unwrap())).unwrap();
        assert!(r.poll_read_ready(&mut cx).is_ready());
        let peeked = r.try_recv_from(true, |d, a| (d.len(), a)).unwrap();
        assert_eq!(peeked, (2, s.local_addr().unwrap()));
        let mut small = [0u8; 1];
        let n = r
            .try_recv_from(false, |d, _| {
                let n = d.len().min(small.len());
                small[..n].copy_from_slice(&d[..n]);
                n
            })
            .unwrap();
        assert_eq!((n, small), (1, *b"h"));
        assert!(
            r.readiness()
                == crate::af_inet::Readiness {
                    writable: true,
                    ..Default::default()
                }
        );
    }
}
