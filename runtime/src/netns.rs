//! `struct net`: a network namespace, with its sysctls, FIB, `lo`, per-CPU
//! softnet data, socket tables and counters.
//!
//! [`Netns`] is the handle users see. [`Netns::init`] is the namespace code
//! gets when it never asks for one (`init_net`); [`Netns::new`] makes a fresh
//! one with its own ports, sysctls and counters, and [`Netns::scope`] makes it
//! current for a future.

use crate::dev::SoftnetData;
use crate::fib::{Fib, FibEntry};
use crate::ksoftirqd::Kthread;
use crate::loopback::LoopbackDev;
use crate::stats::{
    LinkStats, SockInfo, SockTimer, SocketTable, Sockstat, SoftnetStat, SoftnetStats, TcpMib,
    TcpStats, TimerKind,
};
use crate::sysctl::Sysctl;
use crate::tcp::minisocks::TwTables;
use crate::tcp::{Sock, TcpState};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A handle to a network namespace. Cheap to clone; the namespace lives while
/// a handle or a socket in it does.
#[derive(Clone)]
pub struct Netns(pub(crate) Arc<NsInner>);

impl fmt::Debug for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netns").field("id", &self.0.id).finish()
    }
}

impl PartialEq for Netns {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Netns {}

/// The namespace's state (`struct net`).
pub(crate) struct NsInner {
    pub(crate) id: u64,
    pub(crate) me: Weak<NsInner>,
    sysctl: Mutex<Sysctl>,
    // Hot copies of the sysctls the per-packet path reads.
    pub(crate) netdev_max_backlog: AtomicUsize,
    pub(crate) netdev_budget: AtomicUsize,
    pub(crate) netdev_budget_usecs: AtomicU64,
    pub(crate) dev_weight: AtomicUsize,
    /// Hot copy of `tcp_max_tw_buckets`, read when a connection closes.
    pub(crate) tcp_max_tw_buckets: AtomicUsize,
    /// When `ksoftirqd` should next sweep expired TIME_WAIT entries (ms of
    /// [`NsInner::ms`]; `u64::MAX`: none).
    pub(crate) tw_sweep_at: AtomicU64,
    /// The origin of the namespace's millisecond clock ([`NsInner::ms`]).
    epoch: Instant,
    pub(crate) fib: Fib,
    pub(crate) lo: LoopbackDev,
    pub(crate) softnet: Box<[SoftnetData]>,
    pub(crate) tables: RwLock<Tables>,
    pub(crate) mib: TcpMib,
    pub(crate) kthread: Kthread,
    /// The kernel switch: sockets of this namespace are real OS sockets.
    kernel_loopback: AtomicBool,
    pub(crate) sock_alloc: AtomicI64,
    pub(crate) sock_inuse: AtomicI64,
    pub(crate) sock_orphan: AtomicI64,
    pub(crate) mem: AtomicI64,
    /// Payload buffers of large writes, recycled.
    pub(crate) buf_pool: Arc<crate::socket::BufPool>,
    /// The time source and timer driver, when not the wall clock and
    /// ksoftirqd (clock.rs).
    pub(crate) clock: OnceLock<Arc<dyn crate::clock::Clock>>,
    /// Faults on `lo` (netem.rs).
    pub(crate) netem: crate::netem::Netem,
    next_sock_id: AtomicU64,
}

/// A small multiplicative hasher for the socket tables: the keys are
/// addresses we build ourselves, so SipHash's DoS resistance buys nothing on
/// the per-segment lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i))
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i))
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i))
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

/// Who holds a port in the bind table (`inet_bind_bucket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindKind {
    /// A listening socket.
    Listener,
    /// `bind()` without `listen()` yet.
    Bound,
    /// Autobound by `connect()` (`inet_hash_connect`).
    Connect,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct BindEntry {
    pub(crate) addr: IpAddr,
    pub(crate) sock_id: u64,
    pub(crate) kind: BindKind,
    /// `SO_REUSEADDR`.
    pub(crate) reuse: bool,
}

/// The socket lookup tables: `ehash` (by 4-tuple), `lhash` (listeners by
/// port), `bhash` (port owners), and the TIME_WAIT entries (`tw`, by
/// 4-tuple, holding their ports).
#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) ehash: HashMap<(SocketAddr, SocketAddr), Arc<Sock>, FxBuild>,
    /// Listeners by port, with their bound address (read without the
    /// socket lock).
    pub(crate) lhash: HashMap<u16, Vec<(IpAddr, Arc<Sock>)>, FxBuild>,
    pub(crate) bhash: HashMap<u16, Vec<BindEntry>, FxBuild>,
    pub(crate) connect_rover: u32,
    pub(crate) bind_rover: u32,
    /// TIME_WAIT bookkeeping (tcp/minisocks.rs).
    pub(crate) tw: TwTables,
}

/// Whether two bound addresses overlap: equal, or one is a wildcard that
/// covers the other (`[::]` is dual-stack, as tokio leaves `IPV6_V6ONLY` off).
pub(crate) fn addr_overlap(a: IpAddr, b: IpAddr) -> bool {
    fn covers(w: IpAddr, x: IpAddr) -> bool {
        match w {
            IpAddr::V6(v) if v.is_unspecified() => true,
            IpAddr::V4(v) if v.is_unspecified() => x.is_ipv4(),
            _ => false,
        }
    }
    a == b || covers(a, b) || covers(b, a)
}

impl Tables {
    /// `__inet_lookup_listener`: exact address first, then a wildcard.
    pub(crate) fn lookup_listener(&self, daddr: SocketAddr) -> Option<Arc<Sock>> {
        let list = self.lhash.get(&daddr.port())?;
        let mut wildcard = None;
        for (ip, l) in list {
            let ip = *ip;
            if ip == daddr.ip() {
                return Some(l.clone());
            }
            if wildcard.is_none() && ip.is_unspecified() && addr_overlap(ip, daddr.ip()) {
                wildcard = Some(l.clone());
            }
        }
        wildcard
    }

    /// `inet_csk_bind_conflict`: another socket on `port` with an
    /// overlapping address, unless both set `SO_REUSEADDR` and the other is
    /// not listening.
    pub(crate) fn bind_conflict(&self, port: u16, ip: IpAddr, reuse: bool, sock_id: u64) -> bool {
        self.bhash.get(&port).is_some_and(|v| {
            v.iter().any(|e| {
                e.sock_id != sock_id
                    && addr_overlap(e.addr, ip)
                    && !(reuse && e.reuse && e.kind != BindKind::Listener)
            })
        })
    }

    pub(crate) fn bhash_remove(&mut self, port: u16, sock_id: u64) {
        if let Some(v) = self.bhash.get_mut(&port) {
            v.retain(|e| e.sock_id != sock_id);
            if v.is_empty() {
                self.bhash.remove(&port);
            }
        }
    }
}

/// The execution context of the datapath: which namespace and modeled CPU,
/// whether NET_RX was raised (so the caller must run the softirq when it
/// leaves the socket call), and a lazily read clock.
pub(crate) struct Ctx<'a> {
    pub(crate) ns: &'a NsInner,
    pub(crate) cpu: usize,
    pub(crate) raised: bool,
    /// Segments `tcp_v4_rcv` took in this context and not yet added to the
    /// CPU's share of `InSegs` (done by `process_backlog` under the queue
    /// lock, or when the context ends).
    pub(crate) in_segs: u64,
    now: Option<Instant>,
}

impl<'a> Ctx<'a> {
    /// Process context: a socket call made by the application on this thread.
    #[inline]
    pub(crate) fn process(ns: &'a NsInner) -> Self {
        Ctx {
            cpu: this_cpu(ns.softnet.len()),
            ns,
            raised: false,
            in_segs: 0,
            now: None,
        }
    }

    /// Softirq context on `cpu` (replies enqueue on the CPU being drained).
    #[inline]
    pub(crate) fn softirq(ns: &'a NsInner, cpu: usize) -> Self {
        Ctx {
            ns,
            cpu,
            raised: false,
            in_segs: 0,
            now: None,
        }
    }

    /// The time, read at most once per context (`tcp_jiffies32`).
    #[inline]
    pub(crate) fn now(&mut self) -> Instant {
        match self.now {
            Some(t) => t,
            None => {
                let t = self.ns.clock_now();
                self.now = Some(t);
                t
            }
        }
    }

    /// `local_bh_enable`: run the softirq raised (and claimed) during the
    /// call, here. Call it after releasing the socket lock.
    #[inline]
    pub(crate) fn local_bh_enable(&mut self) {
        if std::mem::take(&mut self.raised) {
            crate::dev::do_softirq_claimed(self.ns, self.cpu);
        }
    }
}

impl Drop for Ctx<'_> {
    /// A claimed softirq must run: a path that returns early still drains.
    #[inline]
    fn drop(&mut self) {
        self.local_bh_enable();
        if self.in_segs != 0 {
            let mut q = self.ns.softnet[self.cpu]
                .q
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            q.in_segs += std::mem::take(&mut self.in_segs);
        }
    }
}

thread_local! {
    static THREAD_CPU: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Set while a `Scope` polls its future.
    static CURRENT: Cell<Option<Netns>> = const { Cell::new(None) };
    /// Set by `Netns::enter` for the thread.
    static THREAD_DEFAULT: RefCell<Option<Netns>> = const { RefCell::new(None) };
}
static NEXT_THREAD_CPU: AtomicUsize = AtomicUsize::new(0);

/// The modeled CPU of this thread: threads are numbered as they first touch
/// the datapath and folded onto the namespace's CPUs (without RPS a packet is
/// queued on the sender's CPU; "the CPU" here is the current worker thread).
#[inline]
fn this_cpu(ncpu: usize) -> usize {
    let id = THREAD_CPU.with(|c| {
        let v = c.get();
        if v != usize::MAX {
            v
        } else {
            let v = NEXT_THREAD_CPU.fetch_add(1, Relaxed);
            c.set(v);
            v
        }
    });
    // Threads are few: no division in the usual case.
    if id < ncpu {
        id
    } else {
        id % ncpu
    }
}

static NEXT_NS_ID: AtomicU64 = AtomicU64::new(1);
static INIT_NET: OnceLock<Netns> = OnceLock::new();

impl Netns {
    /// A fresh namespace with the kernel's defaults: its own `lo`, ports,
    /// sysctls and counters (`ip netns add`, `unshare -n`).
    pub fn new() -> Netns {
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 64);
        let sysctl = Sysctl::default();
        let inner = Arc::new_cyclic(|me| NsInner {
            id: NEXT_NS_ID.fetch_add(1, Relaxed),
            me: me.clone(),
            netdev_max_backlog: AtomicUsize::new(sysctl.netdev_max_backlog),
            netdev_budget: AtomicUsize::new(sysctl.netdev_budget),
            netdev_budget_usecs: AtomicU64::new(sysctl.netdev_budget_usecs),
            dev_weight: AtomicUsize::new(sysctl.dev_weight),
            tcp_max_tw_buckets: AtomicUsize::new(sysctl.tcp_max_tw_buckets),
            tw_sweep_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            sysctl: Mutex::new(sysctl),
            fib: Fib::new(),
            lo: LoopbackDev::new(),
            softnet: (0..ncpu).map(|_| SoftnetData::default()).collect(),
            tables: RwLock::new(Tables::default()),
            mib: TcpMib::default(),
            kthread: Kthread::default(),
            kernel_loopback: AtomicBool::new(false),
            sock_alloc: AtomicI64::new(0),
            sock_inuse: AtomicI64::new(0),
            sock_orphan: AtomicI64::new(0),
            mem: AtomicI64::new(0),
            buf_pool: Arc::default(),
            clock: OnceLock::new(),
            netem: Default::default(),
            next_sock_id: AtomicU64::new(1),
        });
        Netns(inner)
    }

    /// The initial namespace (`init_net`): what code that never asks for a
    /// namespace uses.
    pub fn init() -> Netns {
        INIT_NET.get_or_init(Netns::new).clone()
    }

    /// The namespace sockets are created in here and now: that of the
    /// innermost [`scope`](Netns::scope) being polled, else the one this
    /// thread [`enter`](Netns::enter)ed, else [`init`](Netns::init).
    pub fn current() -> Netns {
        CURRENT
            .with(|c| {
                let cur = c.take();
                let ns = cur.clone();
                c.set(cur);
                ns
            })
            .or_else(|| THREAD_DEFAULT.with(|c| c.borrow().clone()))
            .unwrap_or_else(Netns::init)
    }

    /// Runs `fut` with this namespace current: sockets it creates while it is
    /// polled (binds, connects) live in this namespace.
    ///
    /// Tasks spawned inside with `tokio::spawn` do not inherit the namespace
    /// in this version; wrap them in a scope of their own.
    ///
    /// # Examples
    /// ```
    /// # async fn demo() {
    /// let ns = lonet_runtime::Netns::new();
    /// ns.scope(async {
    ///     assert_eq!(lonet_runtime::Netns::current(), lonet_runtime::Netns::current());
    /// })
    /// .await;
    /// # }
    /// ```
    pub fn scope<F: Future>(self, fut: F) -> Scope<F> {
        Scope {
            ns: Some(self),
            fut,
        }
    }

    /// Makes this namespace the current thread's default until the guard is
    /// dropped: everything that runs on this thread and does not sit in a
    /// [`scope`](Netns::scope) of its own uses it — under `#[tokio::test]`'s
    /// current-thread runtime, the test and every task it spawns.
    ///
    /// The one way it is lost: a task that runs on *another thread* (a
    /// multi-thread runtime's workers, `spawn_blocking`, another runtime)
    /// does not see this thread's default. Wrap such tasks in
    /// [`scope`](Netns::scope), or enter the namespace on those threads
    /// (`runtime::Builder::on_thread_start`).
    ///
    /// # Examples
    /// ```
    /// let ns = lonet_runtime::Netns::new();
    /// let guard = ns.enter();
    /// assert_eq!(lonet_runtime::Netns::current(), ns);
    /// drop(guard);
    /// assert_eq!(lonet_runtime::Netns::current(), lonet_runtime::Netns::init());
    /// ```
    pub fn enter(&self) -> EnterGuard {
        EnterGuard {
            prev: THREAD_DEFAULT.with(|c| c.replace(Some(self.clone()))),
            _not_send: std::marker::PhantomData,
        }
    }

    /// The kernel switch (`true`: every socket of this namespace is a real
    /// OS socket, loopback included), so one program and one test suite run
    /// over the model and over the kernel alike.
    pub fn set_kernel_loopback(&self, on: bool) {
        self.0.kernel_loopback.store(on, Relaxed);
    }

    /// Whether the kernel switch is on.
    pub fn kernel_loopback(&self) -> bool {
        self.0.kernel_loopback.load(Relaxed)
    }

    /// `ip addr add ADDR dev lo`: makes `addr` local to this namespace, so
    /// listeners can bind it and connections to it take the model (its local
    /// route has `addr` itself as preferred source, as the kernel's has).
    ///
    /// # Errors
    /// `InvalidInput` for an unspecified, multicast or broadcast address.
    pub fn add_local_addr(&self, addr: std::net::IpAddr) -> io::Result<()> {
        let addr = crate::fib::unmap(addr);
        if addr.is_unspecified() || addr.is_multicast() || addr == std::net::Ipv4Addr::BROADCAST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a unicast address",
            ));
        }
        self.0.fib.add_local(addr);
        Ok(())
    }

    /// `ip addr del ADDR dev lo`. Existing connections keep their cached
    /// route until the table changes under them (then new segments find no
    /// route and are retransmitted until the address comes back).
    pub fn del_local_addr(&self, addr: std::net::IpAddr) {
        self.0.fib.del_local(crate::fib::unmap(addr));
    }

    /// A copy of the namespace's sysctls (`sysctl -a | grep net.`).
    pub fn sysctl(&self) -> Sysctl {
        *self.0.sysctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes sysctls (`sysctl -w`). Values the kernel would refuse (a zero
    /// budget, an empty port range, buffers out of order) give `InvalidInput`
    /// and change nothing.
    ///
    /// # Examples
    /// ```
    /// let ns = lonet_runtime::Netns::new();
    /// ns.set_sysctl(|s| s.netdev_max_backlog = 4).unwrap();
    /// assert_eq!(ns.sysctl().netdev_max_backlog, 4);
    /// ```
    pub fn set_sysctl(&self, f: impl FnOnce(&mut Sysctl)) -> io::Result<()> {
        let mut g = self.0.sysctl.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = *g;
        f(&mut s);
        s.validate()
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        *g = s;
        self.0
            .netdev_max_backlog
            .store(s.netdev_max_backlog, Relaxed);
        self.0.netdev_budget.store(s.netdev_budget, Relaxed);
        self.0
            .netdev_budget_usecs
            .store(s.netdev_budget_usecs, Relaxed);
        self.0.dev_weight.store(s.dev_weight, Relaxed);
        self.0
            .tcp_max_tw_buckets
            .store(s.tcp_max_tw_buckets, Relaxed);
        Ok(())
    }

    /// `ip link set lo mtu N`: new connections derive their MSS from it
    /// (MTU − 40 bytes of IPv4+TCP headers − 12 of timestamps). Below 1280
    /// (IPv6's minimum) or above 65536 gives `InvalidInput`.
    pub fn set_lo_mtu(&self, mtu: u32) -> io::Result<()> {
        if !(1280..=65536).contains(&mtu) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "lo mtu must be within 1280..=65536",
            ));
        }
        self.0.lo.mtu.store(mtu, Relaxed);
        Ok(())
    }

    /// `ip -s link show lo`.
    pub fn lo_stats(&self) -> LinkStats {
        let (packets, bytes) = self.0.softnet.iter().fold((0, 0), |(p, b), sd| {
            let q = sd.q.lock().unwrap_or_else(|e| e.into_inner());
            (p + q.lstats_packets, b + q.lstats_bytes)
        });
        LinkStats {
            rx_packets: packets,
            rx_bytes: bytes,
            rx_dropped: self.0.lo.rx_dropped.load(Relaxed),
            tx_packets: packets,
            tx_bytes: bytes,
            tx_dropped: self.0.lo.tx_dropped.load(Relaxed),
            mtu: self.0.lo.mtu.load(Relaxed),
        }
    }

    /// `/proc/net/softnet_stat`.
    pub fn softnet_stat(&self) -> SoftnetStats {
        SoftnetStats {
            cpus: self
                .0
                .softnet
                .iter()
                .enumerate()
                .map(|(cpu, sd)| {
                    let (input_qlen, process_qlen, processed) = {
                        let q = sd.q.lock().unwrap_or_else(|e| e.into_inner());
                        (q.input_pkt_queue.len(), q.process_queue.len(), q.processed)
                    };
                    SoftnetStat {
                        cpu,
                        processed,
                        dropped: sd.dropped.load(Relaxed),
                        time_squeeze: sd.time_squeeze.load(Relaxed),
                        input_qlen,
                        process_qlen,
                    }
                })
                .collect(),
        }
    }

    /// `netstat -s`, the TCP sections.
    pub fn tcp_stats(&self) -> TcpStats {
        let mut stats = self.0.mib.snapshot();
        // The per-CPU share of InSegs, summed as the kernel sums its MIBs.
        stats.in_segs += self
            .0
            .softnet
            .iter()
            .map(|sd| sd.q.lock().unwrap_or_else(|e| e.into_inner()).in_segs)
            .sum::<u64>();
        stats
    }

    /// `/proc/net/sockstat`, the TCP line. (Removes expired TIME_WAIT
    /// entries first, so `tw` counts the live ones.)
    pub fn sockstat(&self) -> Sockstat {
        let g = |c: &AtomicI64| c.load(Relaxed).max(0) as u64;
        let ns = &*self.0;
        ns.tw_purge(ns.ms(ns.clock_now()));
        let tw = ns.tables.read().unwrap_or_else(|e| e.into_inner()).tw.count as u64;
        Sockstat {
            inuse: g(&self.0.sock_inuse),
            orphan: g(&self.0.sock_orphan),
            tw,
            alloc: g(&self.0.sock_alloc),
            mem: g(&self.0.mem),
        }
    }

    /// `ss -tan`: every TCP socket of the namespace, listeners first (Recv-Q:
    /// connections waiting to be accepted, Send-Q: the backlog limit), then
    /// connections in any state and TIME_WAIT entries (Recv-Q: bytes unread,
    /// Send-Q: bytes not yet acknowledged), each ordered by local then peer
    /// address. `Display` the result for ss's text (`{:#}` adds timers, as
    /// `ss -tano`).
    ///
    /// The tables are locked once to collect the sockets, then each socket
    /// briefly, one at a time; a socket that closes meanwhile is left out.
    ///
    /// # Examples
    /// ```
    /// let ns = lonet_runtime::Netns::new();
    /// let _l = lonet_runtime::Socket::listen(&ns, "127.0.0.1:8080".parse().unwrap(), 128).unwrap();
    /// let table = ns.sockets();
    /// assert_eq!(table.len(), 1);
    /// assert_eq!(table.sockets[0].send_q, 128);
    /// assert_eq!(
    ///     table.to_string(),
    ///     "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n\
    ///      LISTEN 0      128        127.0.0.1:8080      0.0.0.0:*"
    /// );
    /// ```
    pub fn sockets(&self) -> SocketTable {
        let ns = &*self.0;
        let now = ns.clock_now();
        let now_ms = ns.ms(now);
        let mut socks: Vec<Arc<Sock>> = Vec::new();
        let mut rows = Vec::new();
        {
            ns.tw_purge(now_ms);
            let t = ns.tables.read().unwrap_or_else(|e| e.into_inner());
            socks.extend(t.lhash.values().flatten().map(|(_, l)| l.clone()));
            socks.extend(t.ehash.values().cloned());
            for (k, tw) in t.tw.iter().filter(|(_, tw)| tw.expires > now_ms) {
                let user = |a: SocketAddr| match (tw.v6_mapped, a) {
                    (true, SocketAddr::V4(v4)) => {
                        SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
                    }
                    _ => a,
                };
                rows.push(SockInfo {
                    state: TcpState::TimeWait,
                    recv_q: 0,
                    send_q: 0,
                    local: user(k.0),
                    peer: user(k.1),
                    inode: 0,
                    timer: Some(SockTimer {
                        kind: TimerKind::TimeWait,
                        expires: Duration::from_millis(tw.expires - now_ms),
                        retrans: 0,
                    }),
                });
            }
        }
        rows.extend(socks.iter().filter_map(|sk| sk.lock().sock_info(now)));
        drop(socks);
        rows.sort_by_key(|r| (r.state != TcpState::Listen, r.local, r.peer));
        SocketTable { sockets: rows }
    }

    /// `ip route show table local`.
    pub fn routes(&self) -> Vec<FibEntry> {
        self.0.fib.entries()
    }

    /// Whether the namespace's `ksoftirqd` thread (softirq overflow and TCP
    /// timers) is alive. It starts when work is handed to it and exits by
    /// itself once it has had no timer armed and no backlog for 20 ms.
    pub fn ksoftirqd_running(&self) -> bool {
        self.0.kthread.running()
    }

    /// The number of modeled CPUs (rows of `softnet_stat`).
    pub fn num_cpus(&self) -> usize {
        self.0.softnet.len()
    }
}

impl Default for Netns {
    /// The current namespace ([`Netns::current`]).
    fn default() -> Self {
        Netns::current()
    }
}

impl NsInner {
    pub(crate) fn sysctl(&self) -> Sysctl {
        *self.sysctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The namespace's time: its clock's (clock.rs), else the wall clock.
    #[inline]
    pub(crate) fn clock_now(&self) -> Instant {
        match self.clock.get() {
            None => Instant::now(),
            Some(c) => c.now(),
        }
    }

    /// The namespace's millisecond clock (`tcp_clock_ms`): ms since it was
    /// created.
    #[inline]
    pub(crate) fn ms(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.epoch);
        d.as_secs() * 1000 + u64::from(d.subsec_millis())
    }

    pub(crate) fn next_sock_id(&self) -> u64 {
        self.next_sock_id.fetch_add(1, Relaxed)
    }

    pub(crate) fn arc(&self) -> Option<Arc<NsInner>> {
        self.me.upgrade()
    }

    #[inline]
    pub(crate) fn mem_add(&self, n: usize) {
        self.mem.fetch_add(n as i64, Relaxed);
    }

    #[inline]
    pub(crate) fn mem_sub(&self, n: usize) {
        self.mem.fetch_sub(n as i64, Relaxed);
    }
}

/// Returned by [`Netns::enter`]; restores the thread's previous default
/// namespace when dropped. Not `Send`: it belongs to the thread.
#[derive(Debug)]
#[must_use = "the namespace stays entered only while the guard lives"]
pub struct EnterGuard {
    prev: Option<Netns>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        THREAD_DEFAULT.with(|c| *c.borrow_mut() = prev);
    }
}

/// While a `Scope` polls: its namespace, moved (not cloned, so no
/// reference-count traffic per poll) into `CURRENT`, and moved back when the
/// poll ends, also when it panics.
struct CurrentGuard<'a> {
    slot: &'a mut Option<Netns>,
    prev: Option<Netns>,
}

impl<'a> CurrentGuard<'a> {
    #[inline]
    fn set(slot: &'a mut Option<Netns>) -> CurrentGuard<'a> {
        let prev = CURRENT.with(|c| c.replace(slot.take()));
        CurrentGuard { slot, prev }
    }
}

impl Drop for CurrentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Nested scopes put back what they replaced, so `CURRENT` holds this
        // scope's namespace again.
        let prev = self.prev.take();
        *self.slot = CURRENT.with(|c| c.replace(prev));
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`Netns::scope`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Scope<F> {
        // `None` only while its future is polled (moved into `CURRENT`).
        ns: Option<Netns>,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Scope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = CurrentGuard::set(this.ns);
        this.fut.poll(cx)
    }
}
