//! `struct net`: a network namespace, and the public calls on it.
//!
//! [`Netns`] is the handle users see; every public call on a namespace is
//! here, in one `impl Netns` (the ones that belong to a stage call into
//! that stage's module: faults to netem.rs, captures to pcap.rs, the clock
//! to clock.rs, the timers to ksoftirqd.rs). [`Netns::init`] is the
//! namespace code gets when it never asks for one (`init_net`);
//! [`Netns::new`] makes a fresh one with its own ports, sysctls and
//! counters, and [`Netns::scope`] makes it current for a future
//! (nsproxy.rs).
//!
//! `NsInner` is the namespace's state, grouped by who reads it: the sysctls
//! and their hot copies for the per-packet path ([`HotSysctl`]), the devices
//! and queues (FIB, `lo`, per-CPU softnet, netem), the socket tables
//! (inet_hashtables.rs), the helper thread (ksoftirqd.rs), and the counters
//! (`TcpMib`, [`SockCounters`]).

use crate::clock::{Clock, WeakNetns};
use crate::dev::SoftnetData;
use crate::fib::{Fib, FibEntry};
use crate::inet_connection_sock::AcceptqFull;
use crate::inet_hashtables::Tables;
use crate::ksoftirqd::Kthread;
use crate::loopback::LoopbackDev;
use crate::netem::{Fault, FaultGuard, Match};
use crate::nsproxy::{EnterGuard, Scope};
use crate::pcap::{Capture, CaptureOptions};
use crate::stats::{
    LinkStats, Netid, Qdisc, SockInfo, SockTimer, SocketTable, Sockstat, SoftnetStat, SoftnetStats,
    TcpMib, TcpStats, TimerKind,
};
use crate::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::sync::{lock, read, write};
use crate::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use crate::sysctl::Sysctl;
use crate::tcp::minisocks::tw_purge;
use crate::tcp::{Sock, SockDefaults, TcpState};
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
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

    // Configuration.
    sysctl: Mutex<Sysctl>,
    /// Held by [`Netns::set_sysctl`] while its closure runs on a copy of the
    /// sysctls: one change at a time, without holding `sysctl` meanwhile.
    sysctl_writer: Mutex<()>,
    /// What a new socket takes from the sysctls, kept in step by
    /// [`Netns::set_sysctl`].
    sock_defaults: Mutex<SockDefaults>,
    /// Copies of the sysctls the per-packet path reads, kept in step by
    /// [`Netns::set_sysctl`].
    pub(crate) hot: HotSysctl,
    /// The kernel switch: sockets of this namespace are real OS sockets.
    kernel_loopback: AtomicBool,
    /// Fallthrough: a refused connect to a loopback address tries the
    /// machine's kernel too ([`Netns::set_fallthrough`]).
    fallthrough: AtomicBool,

    // Time.
    /// The origin of the namespace's millisecond clock ([`NsInner::ms`]).
    epoch: Instant,
    /// The time source and timer driver, when not the wall clock and
    /// ksoftirqd (clock.rs).
    pub(crate) clock: OnceLock<Arc<dyn Clock>>,
    /// When `ksoftirqd` should next sweep expired TIME_WAIT entries (ms of
    /// [`NsInner::ms`]; `u64::MAX`: none).
    pub(crate) tw_sweep_at: AtomicU64,

    // Devices and queues.
    pub(crate) fib: Fib,
    pub(crate) lo: LoopbackDev,
    pub(crate) softnet: Box<[SoftnetData]>,
    /// Faults on `lo` (netem.rs).
    pub(crate) netem: crate::netem::Netem,
    /// The helper thread and the timer list (ksoftirqd.rs).
    pub(crate) kthread: Arc<Kthread>,

    // Sockets.
    pub(crate) tables: RwLock<Tables>,
    /// Accept queues a fault makes look full (inet_connection_sock.rs).
    pub(crate) acceptq_full: AcceptqFull,
    /// Payload buffers of large writes, recycled.
    pub(crate) buf_pool: Arc<crate::page_frag::BufPool>,
    next_sock_id: AtomicU64,

    /// UDP sockets by local port (udp.rs).
    pub(crate) udp: RwLock<crate::udp::UdpTable>,

    // Counters.
    pub(crate) mib: TcpMib,
    /// UDP and ICMP counters.
    pub(crate) udp_mib: crate::stats::UdpMib,
    /// `udp_memory_allocated` and its per-CPU reserves (udp.rs).
    pub(crate) udp_mem: crate::udp::UdpMem,
    pub(crate) socks: SockCounters,
}

impl Drop for NsInner {
    /// The last holder let go: the helper thread, asleep without a hold of
    /// its own, exits now.
    fn drop(&mut self) {
        self.kthread.namespace_gone();
    }
}

/// Hot copies of the sysctls read per packet or per connection, so the
/// datapath does a relaxed load instead of taking the sysctl lock.
pub(crate) struct HotSysctl {
    pub(crate) netdev_max_backlog: AtomicUsize,
    pub(crate) netdev_budget: AtomicUsize,
    pub(crate) netdev_budget_usecs: AtomicU64,
    pub(crate) dev_weight: AtomicUsize,
    /// Read when a connection closes.
    pub(crate) tcp_max_tw_buckets: AtomicUsize,
}

impl HotSysctl {
    fn new(s: &Sysctl) -> HotSysctl {
        HotSysctl {
            netdev_max_backlog: AtomicUsize::new(s.netdev_max_backlog),
            netdev_budget: AtomicUsize::new(s.netdev_budget),
            netdev_budget_usecs: AtomicU64::new(s.netdev_budget_usecs),
            dev_weight: AtomicUsize::new(s.dev_weight),
            tcp_max_tw_buckets: AtomicUsize::new(s.tcp_max_tw_buckets),
        }
    }

    fn store(&self, s: &Sysctl) {
        self.netdev_max_backlog.store(s.netdev_max_backlog, Relaxed);
        self.netdev_budget.store(s.netdev_budget, Relaxed);
        self.netdev_budget_usecs
            .store(s.netdev_budget_usecs, Relaxed);
        self.dev_weight.store(s.dev_weight, Relaxed);
        self.tcp_max_tw_buckets.store(s.tcp_max_tw_buckets, Relaxed);
    }
}

/// The socket counters of `/proc/net/sockstat`'s TCP line (`sockets_allocated`,
/// `inuse`, `orphan_count`, `memory_allocated`, in bytes here).
#[derive(Default)]
pub(crate) struct SockCounters {
    pub(crate) alloc: AtomicI64,
    pub(crate) inuse: AtomicI64,
    pub(crate) orphan: AtomicI64,
    pub(crate) mem: AtomicI64,
}

static NEXT_NS_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
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
            hot: HotSysctl::new(&sysctl),
            tw_sweep_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            sock_defaults: Mutex::new(SockDefaults::new(&sysctl)),
            sysctl: Mutex::new(sysctl),
            sysctl_writer: Mutex::new(()),
            fib: Fib::new(),
            lo: LoopbackDev::new(),
            softnet: (0..ncpu).map(|_| SoftnetData::default()).collect(),
            tables: RwLock::new(Tables::default()),
            acceptq_full: AcceptqFull::default(),
            mib: TcpMib::default(),
            udp: RwLock::default(),
            udp_mib: Default::default(),
            udp_mem: crate::udp::UdpMem::new(ncpu),
            kthread: Arc::default(),
            kernel_loopback: AtomicBool::new(false),
            fallthrough: AtomicBool::new(true),
            socks: SockCounters::default(),
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
        crate::nsproxy::current().unwrap_or_else(Netns::init)
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
        Scope::new(self, fut)
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
        EnterGuard::enter(self)
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

    /// Fallthrough to the machine's loopback (on by default).
    ///
    /// With it on, a connect to a loopback address (127.0.0.0/8 or `::1`,
    /// never an address added with [`add_local_addr`](Netns::add_local_addr))
    /// that the model refuses, because nothing in this namespace listens on
    /// that port, is tried once more on the machine's kernel, so a client of
    /// the model reaches a real server on the machine's 127.0.0.1. Only when
    /// the kernel refuses too does the connect fail with `ConnectionRefused`.
    /// The model has answered the SYN with a RST by then, so its counters
    /// show the refused attempt (`AttemptFails`, `OutRsts`) even when the
    /// kernel then accepts. `false` gives strict isolation: nothing of this
    /// namespace's loopback leaves the process. The socket calls of
    /// lonet-transport read this flag; the model itself does not.
    pub fn set_fallthrough(&self, on: bool) {
        self.0.fallthrough.store(on, Relaxed);
    }

    /// Whether a refused loopback connect falls through to the machine's
    /// kernel ([`set_fallthrough`](Netns::set_fallthrough)).
    pub fn fallthrough(&self) -> bool {
        self.0.fallthrough.load(Relaxed)
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
        *lock(&self.0.sysctl)
    }

    /// Changes sysctls (`sysctl -w`). Values the kernel would refuse (a zero
    /// budget, an empty port range, buffers out of order) give `InvalidInput`
    /// and change nothing.
    ///
    /// `f` works on a copy, and no lock of the namespace is held while it
    /// runs, so it may read the namespace (`ns.sysctl()`, its sockets);
    /// changes are made one at a time. Calling `set_sysctl` again from
    /// inside `f` gives `InvalidInput` (the inner change would be lost when
    /// the outer one is stored).
    ///
    /// # Examples
    /// ```
    /// let ns = lonet_runtime::Netns::new();
    /// ns.set_sysctl(|s| s.netdev_max_backlog = 4).unwrap();
    /// assert_eq!(ns.sysctl().netdev_max_backlog, 4);
    /// ```
    pub fn set_sysctl(&self, f: impl FnOnce(&mut Sysctl)) -> io::Result<()> {
        crate::sync::thread_local! {
            static IN_SET_SYSCTL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        if IN_SET_SYSCTL.with(|c| c.replace(true)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "set_sysctl called from inside its own closure",
            ));
        }
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                IN_SET_SYSCTL.with(|c| c.set(false));
            }
        }
        let _leave = Leave;
        let _writer = lock(&self.0.sysctl_writer);
        let mut s = self.sysctl();
        f(&mut s);
        s.validate()
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let mut g = lock(&self.0.sysctl);
        *g = s;
        self.0.hot.store(&s);
        *lock(&self.0.sock_defaults) = SockDefaults::new(&s);
        Ok(())
    }

    /// Sets the namespace's `net_secret`: the key of the ephemeral port
    /// hash (`secure_ipv4_port_ephemeral`) and the seed of the port
    /// searches' random draws (`table_perturb`, `bind(0)`'s start). The
    /// kernel draws it at random once per boot, and so does each new
    /// namespace; setting the same secret on a fresh namespace (before its
    /// first `connect` or `bind`) repeats a run's ports exactly, given the
    /// same calls in the same order and the same 10 s epochs of its clock.
    ///
    /// Ports are chosen as Linux chooses them: `connect()` starts at a
    /// hashed, perturbed offset per destination and prefers ports of the
    /// range's low parity (even by default); `bind(0)` starts at a random
    /// offset and prefers the other parity (with `SO_REUSEADDR`, the lower
    /// half of the range first). No port is "the first".
    ///
    /// # Examples
    /// ```
    /// let ports = |secret| {
    ///     let ns = lonet_runtime::Netns::new();
    ///     ns.set_net_secret(secret);
    ///     let l = lonet_runtime::unstable::Socket::new(&ns);
    ///     l.bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    ///     l.local_addr().unwrap().port()
    /// };
    /// assert_eq!(ports(7), ports(7));
    /// ```
    pub fn set_net_secret(&self, secret: u128) {
        write(&self.0.tables).secret = crate::inet_hashtables::PortSecret::new(secret);
    }

    /// The namespace's `net_secret` (see
    /// [`set_net_secret`](Netns::set_net_secret)): log it to repeat a run.
    pub fn net_secret(&self) -> u128 {
        read(&self.0.tables).secret.seed()
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
            let q = lock(&sd.q);
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
                        let q = lock(&sd.q);
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
            .map(|sd| lock(&sd.q).in_segs)
            .sum::<u64>();
        stats
    }

    /// `netstat -s`, the `Icmp:` and `Udp:` sections.
    ///
    /// # Examples
    /// ```
    /// use lonet_runtime::{unstable::UdpSocket, Netns};
    /// let ns = Netns::new();
    /// let s = UdpSocket::bind(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
    /// s.send_to(b"dns?", Some("127.0.0.1:53".parse().unwrap())).unwrap();
    /// let st = ns.udp_stats();
    /// assert_eq!((st.out_datagrams, st.no_ports, st.icmp_out_dest_unreachs), (1, 1, 1));
    /// ```
    pub fn udp_stats(&self) -> crate::stats::UdpStats {
        self.0.udp_mib.snapshot()
    }

    /// `ss -uan`: every UDP socket of the namespace that is bound, ordered
    /// by local then peer address: `UNCONN` (shown as the state
    /// [`TcpState::Close`]) or `ESTAB` once connected; Recv-Q is the memory
    /// the queued datagrams are charged (`sk_rmem_alloc`), as ss shows it
    /// for UDP. The UDP rows of [`sockets`](Netns::sockets)
    /// (`sockets().only(Netid::Udp)`), without locking the TCP tables.
    ///
    /// # Examples
    /// ```
    /// let ns = lonet_runtime::Netns::new();
    /// let _s = lonet_runtime::unstable::UdpSocket::bind(&ns, "127.0.0.1:5353".parse().unwrap()).unwrap();
    /// assert_eq!(
    ///     ns.udp_sockets().to_string(),
    ///     "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n\
    ///      UNCONN 0      0          127.0.0.1:5353      0.0.0.0:*"
    /// );
    /// ```
    pub fn udp_sockets(&self) -> SocketTable {
        SocketTable {
            sockets: crate::udp::udp_sock_infos(&self.0),
            netid_column: false,
        }
    }

    /// `/proc/net/sockstat`, the TCP and UDP lines (and `/proc/net/sockstat6`'s
    /// UDP6 `inuse`). (Removes expired TIME_WAIT entries first, so `tw`
    /// counts the live ones.)
    ///
    /// # Examples
    /// ```
    /// let ns = lonet_runtime::Netns::new();
    /// let _s = lonet_runtime::unstable::UdpSocket::bind(&ns, "127.0.0.1:5353".parse().unwrap()).unwrap();
    /// assert_eq!(
    ///     ns.sockstat().to_string(),
    ///     "TCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\nUDP: inuse 1 mem 0"
    /// );
    /// ```
    pub fn sockstat(&self) -> Sockstat {
        let g = |c: &AtomicI64| c.load(Relaxed).max(0) as u64;
        let ns = &*self.0;
        tw_purge(ns, ns.ms(ns.clock_now()));
        let tw = read(&ns.tables).tw.count as u64;
        let (udp_inuse, udp6_inuse) = crate::udp::udp_inuse(ns);
        Sockstat {
            inuse: g(&ns.socks.inuse),
            orphan: g(&ns.socks.orphan),
            tw,
            alloc: g(&ns.socks.alloc),
            mem: g(&ns.socks.mem),
            udp_inuse,
            udp6_inuse,
            udp_mem: ns.udp_mem.pages(),
        }
    }

    /// `ss -tuan`: every socket of the namespace, each row with its
    /// protocol ([`SockInfo::netid`](crate::stats::SockInfo::netid)). First
    /// the UDP sockets, as [`udp_sockets`](Netns::udp_sockets) lists them
    /// (`UNCONN`, or `ESTAB` once connected); then the TCP ones, listeners
    /// first (Recv-Q: connections waiting to be accepted, Send-Q: the
    /// backlog limit), then connections in any state and TIME_WAIT entries
    /// (Recv-Q: bytes unread, Send-Q: bytes not yet acknowledged), each
    /// ordered by local then peer address. `Display` the result for ss's
    /// text (`{:#}` adds timers, as `ss -tuano`);
    /// [`only(Netid::Tcp)`](crate::stats::SocketTable::only) is `ss -tan`.
    ///
    /// The tables are locked once to collect the sockets, then each socket
    /// briefly, one at a time; a socket that closes meanwhile is left out.
    ///
    /// # Examples
    /// ```
    /// use lonet_runtime::stats::Netid;
    /// let ns = lonet_runtime::Netns::new();
    /// let _l = lonet_runtime::unstable::Socket::listen(&ns, "127.0.0.1:8080".parse().unwrap(), 128).unwrap();
    /// let _u = lonet_runtime::unstable::UdpSocket::bind(&ns, "127.0.0.1:5353".parse().unwrap()).unwrap();
    /// let table = ns.sockets();
    /// assert_eq!(table.len(), 2);
    /// assert_eq!((table.sockets[1].netid, table.sockets[1].send_q), (Netid::Tcp, 128));
    /// assert_eq!(
    ///     table.to_string(),
    ///     "Netid State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n\
    ///      udp   UNCONN 0      0          127.0.0.1:5353      0.0.0.0:*\n\
    ///      tcp   LISTEN 0      128        127.0.0.1:8080      0.0.0.0:*"
    /// );
    /// assert_eq!(
    ///     table.only(Netid::Tcp).to_string(),
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
            tw_purge(ns, now_ms);
            let t = read(&ns.tables);
            socks.extend(t.lhash.values().flatten().map(|l| l.sk.clone()));
            socks.extend(t.ehash.values().cloned());
            for (k, tw) in t.tw.iter().filter(|(_, tw)| tw.expires > now_ms) {
                let user = |a: SocketAddr| match (tw.v6_mapped, a) {
                    (true, SocketAddr::V4(v4)) => {
                        SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
                    }
                    _ => a,
                };
                rows.push(SockInfo {
                    netid: Netid::Tcp,
                    state: tw.state(),
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
        let mut sockets = crate::udp::udp_sock_infos(ns);
        sockets.append(&mut rows);
        SocketTable {
            sockets,
            netid_column: true,
        }
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

    /// A handle that does not keep the namespace alive (for tasks that should
    /// end with it).
    pub fn downgrade(&self) -> WeakNetns {
        WeakNetns::new(self)
    }

    /// Installs `clock` as the namespace's time source and timer driver.
    /// It can be set once, before the namespace has sockets; a second call,
    /// or a call once a socket exists, gives `AlreadyExists`/`InvalidInput`
    /// and changes nothing.
    pub fn set_clock(&self, clock: Arc<dyn Clock>) -> io::Result<()> {
        crate::clock::set_clock(&self.0, clock)
    }

    /// Whether a [`Clock`] drives this namespace (else the wall clock and
    /// the `ksoftirqd` thread do).
    pub fn has_clock(&self) -> bool {
        self.0.clock.get().is_some()
    }

    /// The namespace's time: its [`Clock`]'s, else the wall clock.
    pub fn now(&self) -> Instant {
        self.0.clock_now()
    }

    /// Runs every timer of the namespace that is due on its clock (TCP
    /// timers, netem's queue), and returns the next deadline, if any. A
    /// [`Clock`]'s driver calls it at the deadlines it was given; calling it
    /// early or often is harmless.
    pub fn run_timers(&self) -> Option<Instant> {
        crate::ksoftirqd::run_timers(&self.0, self.0.clock_now())
    }

    /// `tcpdump -i lo -w -`: starts capturing every packet this namespace's
    /// `lo` transmits into `writer`, as a libpcap stream (the file header is
    /// written at once). Runs until the returned guard is stopped or dropped.
    ///
    /// # Errors
    /// The error of writing the pcap file header.
    ///
    /// # Examples
    /// ```
    /// use lonet_runtime::capture::CaptureOptions;
    /// use lonet_runtime::unstable::Socket;
    /// use lonet_runtime::Netns;
    /// # fn main() -> std::io::Result<()> {
    /// let ns = Netns::new();
    /// let cap = ns.capture(Vec::new(), CaptureOptions::new())?;
    /// let _listener = Socket::listen(&ns, "127.0.0.1:80".parse().unwrap(), 16)?;
    /// let _client = Socket::connect(&ns, "127.0.0.1:80".parse().unwrap())?; // sends the SYN
    /// assert!(cap.packets() >= 1);
    /// let pcap: Vec<u8> = cap.stop()?;
    /// assert_eq!(pcap[..4], 0xa1b2c3d4u32.to_le_bytes()); // pcap, microseconds
    /// assert_eq!(pcap[20..24], 1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    /// # Ok(())
    /// # }
    /// ```
    pub fn capture<W: Write + Send + 'static>(
        &self,
        writer: W,
        opts: CaptureOptions,
    ) -> io::Result<Capture<W>> {
        crate::pcap::start(self, writer, opts)
    }

    /// `tcpdump -i lo -w PATH`: creates (or truncates) the file at `path` and
    /// captures into it through a buffer. [`Capture::stop`] flushes it and
    /// reports the first write error; dropping the guard flushes it too.
    ///
    /// # Errors
    /// Creating the file or writing its header.
    ///
    /// # Examples
    /// ```
    /// use lonet_runtime::capture::CaptureOptions;
    /// use lonet_runtime::Netns;
    /// # fn main() -> std::io::Result<()> {
    /// let path = std::env::temp_dir().join(format!("lonet-doc-{}.pcap", std::process::id()));
    /// let ns = Netns::new();
    /// let cap = ns.capture_to_file(&path, CaptureOptions::new().snaplen(128))?;
    /// // ... run connections in `ns` ...
    /// cap.stop()?;
    /// assert_eq!(std::fs::read(&path)?.len(), 24); // just the file header
    /// std::fs::remove_file(&path)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn capture_to_file(
        &self,
        path: impl AsRef<Path>,
        opts: CaptureOptions,
    ) -> io::Result<Capture<BufWriter<File>>> {
        let file = File::create(path)?;
        self.capture(BufWriter::with_capacity(64 * 1024, file), opts)
    }

    /// Captures into memory; [`Capture::stop`] returns the pcap file's bytes.
    ///
    /// # Examples
    /// ```
    /// use lonet_runtime::capture::CaptureOptions;
    /// use lonet_runtime::Netns;
    /// let ns = Netns::new();
    /// let cap = ns.capture_to_memory(CaptureOptions::new());
    /// let pcap = cap.stop().unwrap();
    /// assert_eq!(pcap.len(), 24);
    /// ```
    pub fn capture_to_memory(&self, opts: CaptureOptions) -> Capture<Vec<u8>> {
        match self.capture(Vec::new(), opts) {
            Ok(c) => c,
            // Writing to a Vec cannot fail.
            Err(e) => unreachable!("pcap header into a Vec: {e}"),
        }
    }

    /// Installs a fault on the packets `on` matches (`tc qdisc add dev lo
    /// root netem ...` with a filter), until the returned guard is dropped.
    /// The newest rule that matches a packet decides: a fault added on top
    /// of another (a partition over a slow link) replaces it for the packets
    /// both match, until its guard is dropped.
    ///
    /// Delays and retransmissions run on the namespace's clock: with
    /// `lonet::time::use_tokio_time` they follow `tokio::time` (and
    /// `tokio::time::pause`), else the wall clock.
    ///
    /// ```
    /// use lonet_runtime::fault::{Fault, Match};
    /// use lonet_runtime::Netns;
    /// use std::time::Duration;
    /// let ns = Netns::new();
    /// let slow = ns.add_fault(Match::port(8080), Fault::new().delay(Duration::from_millis(20)).loss(0.05))?;
    /// assert!(ns.qdisc().to_string().contains("delay 20ms loss 5%"));
    /// drop(slow); // lifted
    /// assert!(ns.qdisc().is_noqueue());
    /// // A probability outside 0..=1 is refused, not clamped.
    /// assert!(ns.add_fault(Match::all(), Fault::new().loss(5.0)).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for a fault [`Fault::validate`] refuses (a
    /// probability that is NaN or outside 0.0..=1.0, a delay over
    /// [`Fault::MAX_DELAY`]); nothing is installed then.
    pub fn add_fault(&self, on: Match, fault: Fault) -> io::Result<FaultGuard> {
        crate::netem::add_fault(&self.0, on, fault)
    }

    /// Makes the accept queue of the listener on `addr` look full until the
    /// guard is dropped: SYNs to it are dropped and counted as Linux counts
    /// them (`ListenOverflows`, `ListenDrops`), so clients retransmit their
    /// SYN and connect only once the guard is gone (or time out). An
    /// unspecified address covers every listener on the port.
    pub fn fill_accept_queue(&self, addr: SocketAddr) -> FaultGuard {
        crate::netem::fill_accept_queue(&self.0, addr)
    }

    /// Injects an RST into a live connection, as if `from` had sent it to
    /// `to` (a middlebox's `tcp-reset`): the segment carries the sequence
    /// number `to` expects, so it is accepted, and the socket at `to` is
    /// reset (its reader and writer get `ConnectionReset`). The other end
    /// finds out when its next segment is answered with an RST. The segment
    /// takes the path every packet does (faults and captures included).
    ///
    /// # Errors
    /// `NotFound` when `to` has no connection with `from`.
    pub fn inject_rst(&self, from: SocketAddr, to: SocketAddr) -> std::io::Result<()> {
        crate::netem::inject_rst(&self.0, from, to)
    }

    /// The qdisc of `lo` with its counters, as `tc -s qdisc show dev lo`
    /// prints it: `noqueue` when no fault is installed.
    pub fn qdisc(&self) -> Qdisc {
        crate::netem::qdisc(&self.0)
    }
}

impl Default for Netns {
    /// A fresh namespace, as [`Netns::new`]. (The namespace code runs in
    /// is [`Netns::current`].)
    fn default() -> Self {
        Netns::new()
    }
}

impl NsInner {
    pub(crate) fn sysctl(&self) -> Sysctl {
        *lock(&self.sysctl)
    }

    /// What a new socket takes from the sysctls.
    #[inline]
    pub(crate) fn sock_defaults(&self) -> SockDefaults {
        *lock(&self.sock_defaults)
    }

    /// The sysctls read in place, under their lock (no copy of the whole
    /// set): hold it only while reading, and take no other lock while
    /// holding it.
    #[inline]
    pub(crate) fn sysctl_locked(&self) -> crate::sync::MutexGuard<'_, Sysctl> {
        lock(&self.sysctl)
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
        self.socks.mem.fetch_add(n as i64, Relaxed);
    }

    #[inline]
    pub(crate) fn mem_sub(&self, n: usize) {
        self.socks.mem.fetch_sub(n as i64, Relaxed);
    }
}
