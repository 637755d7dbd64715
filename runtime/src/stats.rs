//! What a namespace shows, with the kernel's names and meaning, and the
//! tools' output as `Display`: `ip -s link` ([`LinkStats`]),
//! `/proc/net/softnet_stat` ([`SoftnetStats`]), `netstat -s` ([`TcpStats`],
//! [`UdpStats`]),
//! `/proc/net/sockstat` ([`Sockstat`]), `ss -tan` ([`SocketTable`]),
//! `ip route show table local` ([`FibEntry`]) and `tc -s qdisc` ([`Qdisc`]).
//!
//! Every view is `#[non_exhaustive]`: a later version may add a counter
//! without breaking code that reads the ones it knows.

pub use crate::fib::{FibEntry, RouteType};
use crate::netem::{Fault, FaultStats, Match};
pub use crate::tcp::TcpState;

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// `ip -s link show lo`: the loopback device's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Packets received (equal to `tx_packets` on `lo`).
    pub rx_packets: u64,
    /// Bytes received: IP packet lengths.
    pub rx_bytes: u64,
    /// Packets dropped at the backlog (`netdev_max_backlog`).
    pub rx_dropped: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets dropped on transmit (device down).
    pub tx_dropped: u64,
    /// The device MTU.
    pub mtu: u32,
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu {} qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000",
            self.mtu
        )?;
        writeln!(
            f,
            "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00"
        )?;
        writeln!(f, "    RX:  bytes packets errors dropped  missed   mcast")?;
        writeln!(
            f,
            "    {:>10} {:>7} {:>6} {:>7} {:>7} {:>7}",
            self.rx_bytes, self.rx_packets, 0, self.rx_dropped, 0, 0
        )?;
        writeln!(f, "    TX:  bytes packets errors dropped carrier collsns")?;
        write!(
            f,
            "    {:>10} {:>7} {:>6} {:>7} {:>7} {:>7}",
            self.tx_bytes, self.tx_packets, 0, self.tx_dropped, 0, 0
        )
    }
}

/// One row of `/proc/net/softnet_stat`: a CPU's backlog counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SoftnetStat {
    /// The CPU index (column 13).
    pub cpu: usize,
    /// Packets taken off the backlog by `__netif_receive_skb` (column 1).
    pub processed: u64,
    /// Packets dropped because `input_pkt_queue` was full (column 2).
    pub dropped: u64,
    /// `net_rx_action` runs cut short by budget or time with work left
    /// (column 3).
    pub time_squeeze: u64,
    /// Packets waiting in `input_pkt_queue` (column 14).
    pub input_qlen: usize,
    /// Packets waiting in `process_queue` (column 15).
    pub process_qlen: usize,
}

/// `/proc/net/softnet_stat`: one row per CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SoftnetStats {
    /// The rows, by CPU index.
    pub cpus: Vec<SoftnetStat>,
}

impl SoftnetStats {
    /// All CPUs added up (`cpu` is 0).
    pub fn total(&self) -> SoftnetStat {
        self.cpus
            .iter()
            .fold(SoftnetStat::default(), |a, s| SoftnetStat {
                cpu: 0,
                processed: a.processed + s.processed,
                dropped: a.dropped + s.dropped,
                time_squeeze: a.time_squeeze + s.time_squeeze,
                input_qlen: a.input_qlen + s.input_qlen,
                process_qlen: a.process_qlen + s.process_qlen,
            })
    }
}

impl fmt::Display for SoftnetStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 1 processed, 2 dropped, 3 time_squeeze, 4-9 zero, 10 received_rps,
        // 11 flow_limit_count, 12 backlog length, 13 cpu, 14 input, 15 process.
        write!(
            f,
            "{:08x} {:08x} {:08x} 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 {:08x} {:08x} {:08x} {:08x}",
            self.processed,
            self.dropped,
            self.time_squeeze,
            self.input_qlen + self.process_qlen,
            self.cpu,
            self.input_qlen,
            self.process_qlen
        )
    }
}

impl fmt::Display for SoftnetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, row) in self.cpus.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{row}")?;
        }
        Ok(())
    }
}

/// TCP counters, as `netstat -s` (`/proc/net/snmp` `Tcp:` and
/// `/proc/net/netstat` `TcpExt:`) names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpStats {
    /// `ActiveOpens`: connects that sent a SYN.
    pub active_opens: u64,
    /// `PassiveOpens`: SYNs a listener answered.
    pub passive_opens: u64,
    /// `AttemptFails`: connects that failed (refused, timed out, reset).
    pub attempt_fails: u64,
    /// `EstabResets`: direct moves from ESTABLISHED or CLOSE_WAIT to CLOSE
    /// (a reset sent or received).
    pub estab_resets: u64,
    /// `CurrEstab`: connections now in ESTABLISHED or CLOSE_WAIT.
    pub curr_estab: u64,
    /// `InSegs`: segments received.
    pub in_segs: u64,
    /// `OutSegs`: segments sent, excluding retransmissions.
    pub out_segs: u64,
    /// `RetransSegs`: segments retransmitted.
    pub retrans_segs: u64,
    /// `OutRsts`: segments sent with RST.
    pub out_rsts: u64,
    /// Segments received with RST (not a kernel MIB; `InErrs` is different).
    pub in_rsts: u64,
    /// `TcpExt.ListenOverflows`: SYNs dropped because the accept queue was full.
    pub listen_overflows: u64,
    /// `TcpExt.ListenDrops`: SYNs a listener dropped, for any reason.
    pub listen_drops: u64,
    /// `TcpExt.TCPAbortOnClose`: connections reset because the application
    /// closed with unread data.
    pub tcp_abort_on_close: u64,
    /// `TcpExt.TCPAbortOnData`: connections reset because data arrived after
    /// the application closed, or closed with `SO_LINGER` 0 (Linux counts
    /// both here).
    pub tcp_abort_on_data: u64,
    /// `TcpExt.TCPTimeouts`: retransmission timer expiries.
    pub tcp_timeouts: u64,
    /// `TcpExt.DelayedACKs`: delayed ACKs sent by the timer.
    pub delayed_acks: u64,
    /// `TcpExt.TCPBacklogDrop`: always 0 in the model: a segment for a socket
    /// held by its owner waits for the socket lock instead of queueing on
    /// `sk_backlog`.
    pub tcp_backlog_drop: u64,
    /// `TcpExt.TW`: connections that entered TIME_WAIT (Linux counts one
    /// when it schedules the entry's 60 s timer; `netstat -s`: "TCP sockets
    /// finished time wait in fast timer").
    pub tw: u64,
    /// `TcpExt.TWRecycled`: TIME_WAIT entries taken over by a `connect()`
    /// (`tcp_tw_reuse`, or a socket bound to the port); `netstat -s`: "time
    /// wait sockets recycled by time stamp".
    pub tw_recycled: u64,
    /// `TcpExt.TCPTimeWaitOverflow`: connections closed without TIME_WAIT
    /// because `tcp_max_tw_buckets` entries existed.
    pub tcp_time_wait_overflow: u64,
    /// `TcpExt.PruneCalled`: a segment found its socket's receive queues
    /// over `sk_rcvbuf` (`tcp_prune_queue`); usually the buffer then grows
    /// to what they hold (`tcp_clamp_window`).
    pub prune_called: u64,
    /// `TcpExt.RcvPruned`: pruning freed too little, so the segment was
    /// not queued.
    pub rcv_pruned: u64,
    /// `TcpExt.OfoPruned`: times the out-of-order queue was dropped to make
    /// room.
    pub ofo_pruned: u64,
    /// `TcpExt.TCPRcvCollapsed`: segments of the receive queue copied into
    /// fewer, fuller ones to make room (`tcp_collapse`).
    pub tcp_rcv_collapsed: u64,
    /// `TcpExt.TCPRcvQDrop`: in-order segments dropped for want of receive
    /// buffer (the sender retransmits them).
    pub tcp_rcvq_drop: u64,
    /// `TcpExt.TCPOFODrop`: out-of-order segments dropped for want of
    /// receive buffer.
    pub tcp_ofo_drop: u64,
}

impl fmt::Display for TcpStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Tcp:")?;
        writeln!(f, "    {} active connection openings", self.active_opens)?;
        writeln!(f, "    {} passive connection openings", self.passive_opens)?;
        writeln!(f, "    {} failed connection attempts", self.attempt_fails)?;
        writeln!(f, "    {} connection resets received", self.estab_resets)?;
        writeln!(f, "    {} connections established", self.curr_estab)?;
        writeln!(f, "    {} segments received", self.in_segs)?;
        writeln!(f, "    {} segments sent out", self.out_segs)?;
        writeln!(f, "    {} segments retransmitted", self.retrans_segs)?;
        writeln!(f, "    {} resets sent", self.out_rsts)?;
        writeln!(f, "TcpExt:")?;
        writeln!(
            f,
            "    {} TCP sockets finished time wait in fast timer",
            self.tw
        )?;
        writeln!(
            f,
            "    {} time wait sockets recycled by time stamp",
            self.tw_recycled
        )?;
        writeln!(
            f,
            "    {} times the listen queue of a socket overflowed",
            self.listen_overflows
        )?;
        writeln!(
            f,
            "    {} SYNs to LISTEN sockets dropped",
            self.listen_drops
        )?;
        writeln!(f, "    {} delayed acks sent", self.delayed_acks)?;
        writeln!(f, "    {} other TCP timeouts", self.tcp_timeouts)?;
        writeln!(
            f,
            "    {} connections reset due to unexpected data",
            self.tcp_abort_on_data
        )?;
        writeln!(
            f,
            "    {} connections reset due to early user close",
            self.tcp_abort_on_close
        )?;
        writeln!(
            f,
            "    {} packets pruned from receive queue because of socket buffer overrun",
            self.rcv_pruned
        )?;
        writeln!(
            f,
            "    {} packets collapsed in receive queue due to low socket buffer",
            self.tcp_rcv_collapsed
        )?;
        writeln!(
            f,
            "    TCPTimeWaitOverflow: {}",
            self.tcp_time_wait_overflow
        )?;
        writeln!(f, "    PruneCalled: {}", self.prune_called)?;
        writeln!(f, "    OfoPruned: {}", self.ofo_pruned)?;
        writeln!(f, "    TCPOFODrop: {}", self.tcp_ofo_drop)?;
        write!(f, "    TCPRcvQDrop: {}", self.tcp_rcvq_drop)
    }
}

/// `/proc/net/sockstat`: the `TCP:` and `UDP:` lines (`Display` prints
/// them as the file does), and the `UDP6:` line's `inuse` of
/// `/proc/net/sockstat6`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sockstat {
    /// `inuse`: sockets in the lookup tables (listening, connecting,
    /// established, closing).
    pub inuse: u64,
    /// `orphan`: sockets the application closed that are still finishing
    /// (FIN_WAIT, LAST_ACK, ...).
    pub orphan: u64,
    /// `tw`: TIME_WAIT entries (not sockets: the socket itself was freed
    /// when the connection entered TIME_WAIT).
    pub tw: u64,
    /// `alloc`: TCP sockets allocated.
    pub alloc: u64,
    /// `mem`: bytes held in socket send and receive queues (the kernel counts
    /// pages; the model counts bytes: each send queue as `sk_wmem_queued`
    /// charges it, payload plus one 832-byte head per skb, and the receive
    /// queues' payload).
    pub mem: u64,
    /// `UDP: inuse`: IPv4 UDP sockets bound (hashed in the `udp_table`).
    pub udp_inuse: u64,
    /// `UDP6: inuse` (`/proc/net/sockstat6`): IPv6 UDP sockets bound.
    pub udp6_inuse: u64,
    /// `UDP: mem`: `udp_memory_allocated`, in 4 KiB pages, as the kernel
    /// counts it (IPv4 and IPv6 together): each socket schedules whole
    /// pages for the truesize it queues (`sk_forward_alloc`) and gives them
    /// back as datagrams are read, and a CPU takes up to 1 MiB (256 pages,
    /// `net.core.mem_pcpu_rsv`) in a reserve of its own before the global
    /// count sees it, so a few queued datagrams show 0, as on Linux 6.x.
    pub udp_mem: u64,
}

impl fmt::Display for Sockstat {
    /// The `TCP:` and `UDP:` lines of `/proc/net/sockstat`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TCP: inuse {} orphan {} tw {} alloc {} mem {}\nUDP: inuse {} mem {}",
            self.inuse, self.orphan, self.tw, self.alloc, self.mem, self.udp_inuse, self.udp_mem
        )
    }
}

/// The namespace's TCP MIB, updated with relaxed atomics on the hot path.
#[derive(Debug, Default)]
pub(crate) struct TcpMib {
    pub(crate) active_opens: AtomicU64,
    pub(crate) passive_opens: AtomicU64,
    pub(crate) attempt_fails: AtomicU64,
    pub(crate) estab_resets: AtomicU64,
    pub(crate) curr_estab: AtomicU64,
    pub(crate) out_segs: AtomicU64,
    pub(crate) retrans_segs: AtomicU64,
    pub(crate) out_rsts: AtomicU64,
    pub(crate) in_rsts: AtomicU64,
    pub(crate) listen_overflows: AtomicU64,
    pub(crate) listen_drops: AtomicU64,
    pub(crate) tcp_abort_on_close: AtomicU64,
    pub(crate) tcp_abort_on_data: AtomicU64,
    pub(crate) tcp_timeouts: AtomicU64,
    pub(crate) delayed_acks: AtomicU64,
    pub(crate) tw: AtomicU64,
    pub(crate) tw_recycled: AtomicU64,
    pub(crate) tcp_time_wait_overflow: AtomicU64,
    pub(crate) prune_called: AtomicU64,
    pub(crate) rcv_pruned: AtomicU64,
    pub(crate) ofo_pruned: AtomicU64,
    pub(crate) tcp_rcv_collapsed: AtomicU64,
    pub(crate) tcp_rcvq_drop: AtomicU64,
    pub(crate) tcp_ofo_drop: AtomicU64,
}

/// `NET_INC_STATS`.
#[inline]
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl TcpMib {
    pub(crate) fn snapshot(&self) -> TcpStats {
        let g = |c: &AtomicU64| c.load(Relaxed);
        TcpStats {
            active_opens: g(&self.active_opens),
            passive_opens: g(&self.passive_opens),
            attempt_fails: g(&self.attempt_fails),
            estab_resets: g(&self.estab_resets),
            curr_estab: g(&self.curr_estab),
            // Per CPU, under the softnet queue locks: added by
            // `Netns::tcp_stats`.
            in_segs: 0,
            out_segs: g(&self.out_segs),
            retrans_segs: g(&self.retrans_segs),
            out_rsts: g(&self.out_rsts),
            in_rsts: g(&self.in_rsts),
            listen_overflows: g(&self.listen_overflows),
            listen_drops: g(&self.listen_drops),
            tcp_abort_on_close: g(&self.tcp_abort_on_close),
            tcp_abort_on_data: g(&self.tcp_abort_on_data),
            tcp_timeouts: g(&self.tcp_timeouts),
            delayed_acks: g(&self.delayed_acks),
            tcp_backlog_drop: 0,
            tw: g(&self.tw),
            tw_recycled: g(&self.tw_recycled),
            tcp_time_wait_overflow: g(&self.tcp_time_wait_overflow),
            prune_called: g(&self.prune_called),
            rcv_pruned: g(&self.rcv_pruned),
            ofo_pruned: g(&self.ofo_pruned),
            tcp_rcv_collapsed: g(&self.tcp_rcv_collapsed),
            tcp_rcvq_drop: g(&self.tcp_rcvq_drop),
            tcp_ofo_drop: g(&self.tcp_ofo_drop),
        }
    }
}

/// Which timer of a socket `ss -o` shows (`idiag_timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimerKind {
    /// `on`: the retransmission timer (SYN, SYN-ACK, data or FIN in flight).
    On,
    /// `persist`: the zero-window probe timer.
    Persist,
    /// `timewait`: a TIME_WAIT entry's expiry, or an orphan's FIN_WAIT2
    /// timeout (Linux keeps such an orphan as a timewait socket too).
    TimeWait,
}

impl fmt::Display for TimerKind {
    /// The names `ss -o` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimerKind::On => "on",
            TimerKind::Persist => "persist",
            TimerKind::TimeWait => "timewait",
        })
    }
}

/// A socket's pending timer, as `ss -o` shows it: `timer:(on,200ms,0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SockTimer {
    /// Which timer.
    pub kind: TimerKind,
    /// Time left until it fires (zero if it is due).
    pub expires: Duration,
    /// Retransmissions (or probes) made so far.
    pub retrans: u32,
}

/// `print_ms_timer` of iproute2's ss: `59sec`, `1.500ms` (sic), `200ms`,
/// `1min30sec`.
fn ss_ms(ms: u128) -> String {
    let mut secs = ms / 1000;
    let minutes = secs / 60;
    secs %= 60;
    let mut msecs = ms % 1000;
    let mut out = String::new();
    if minutes > 0 {
        msecs = 0;
        out.push_str(&format!("{minutes}min"));
        if minutes > 9 {
            secs = 0;
        }
    }
    if secs > 0 {
        if secs > 9 {
            msecs = 0;
        }
        out.push_str(&format!("{secs}{}", if msecs > 0 { "." } else { "sec" }));
    }
    if msecs > 0 {
        out.push_str(&format!("{msecs:03}ms"));
    }
    out
}

impl fmt::Display for SockTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timer:({},{},{})",
            self.kind,
            ss_ms(self.expires.as_millis()),
            self.retrans
        )
    }
}

/// A socket's protocol: ss's `Netid` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Netid {
    /// `udp`.
    Udp,
    /// `tcp`.
    Tcp,
}

impl fmt::Display for Netid {
    /// ss's names: `udp`, `tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Netid::Udp => "udp",
            Netid::Tcp => "tcp",
        })
    }
}

/// One socket of a namespace, as a row of `ss -tuan` (`inet_diag`): a TCP
/// socket (or TIME_WAIT entry), or a UDP one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SockInfo {
    /// The protocol (ss's `Netid`).
    pub netid: Netid,
    /// The state ([`TcpState::TimeWait`] for a TIME_WAIT entry). A UDP
    /// socket is [`TcpState::Close`] (`UNCONN`), or
    /// [`TcpState::Established`] (`ESTAB`) once connected, as ss shows it.
    pub state: TcpState,
    /// Recv-Q. A listener: connections waiting in its accept queue. A
    /// connection: bytes received and not yet read, plus one for a FIN the
    /// application has not read yet (`rcv_nxt - copied_seq`, as Linux
    /// reports it, so a CLOSE-WAIT socket whose EOF was not read shows 1).
    /// A UDP socket: the memory its queued datagrams are charged
    /// (`sk_rmem_alloc`).
    pub recv_q: u64,
    /// Send-Q. A listener: its backlog limit (`min(backlog, somaxconn)`).
    /// A connection: bytes written and not yet acknowledged, unsent ones
    /// included, plus one for a SYN or FIN not yet acknowledged
    /// (`write_seq - snd_una`). A UDP socket: 0 (`lo` frees a datagram's
    /// send memory as it takes it).
    pub send_q: u64,
    /// Local address and port, as `getsockname` gives them.
    pub local: SocketAddr,
    /// Peer address and port; for a listener the unspecified address of its
    /// family and port 0 (`ss` prints `0.0.0.0:*`).
    pub peer: SocketAddr,
    /// A number unique to the socket within its namespace, standing in for
    /// the inode `ss -e` shows; 0 for a TIME_WAIT entry, which has no socket
    /// (`ss -e` shows `ino:0`).
    pub inode: u64,
    /// The pending timer `ss -o` would show, if any.
    pub timer: Option<SockTimer>,
}

impl SockInfo {
    /// A UDP socket's row (`ss -uan`): `UNCONN` ([`TcpState::Close`]) or
    /// `ESTAB` when connected, no timer.
    pub(crate) fn udp(
        state: TcpState,
        recv_q: u64,
        local: SocketAddr,
        peer: SocketAddr,
        inode: u64,
    ) -> SockInfo {
        SockInfo {
            netid: Netid::Udp,
            state,
            recv_q,
            send_q: 0,
            local,
            peer,
            inode,
            timer: None,
        }
    }
}

/// The sockets of a namespace as ss lists them.
/// [`Netns::sockets`](crate::Netns::sockets) is `ss -tuan`: the UDP
/// sockets first (ordered by local then peer address), then the TCP ones:
/// listeners first, then connections and TIME_WAIT entries, each ordered by
/// local then peer address. [`only`](SocketTable::only) narrows it to one
/// protocol (`ss -tan`, `ss -uan`);
/// [`Netns::udp_sockets`](crate::Netns::udp_sockets) is `ss -uan` too.
///
/// `Display` prints it as ss does (the same columns, widths and state
/// names, and the `Netid` column when the table holds more than one
/// protocol's view, as `ss -tuan` prints it); the alternate form (`{:#}`)
/// adds the timers, as `ss -tuano`. Trailing blanks are trimmed from each
/// line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketTable {
    /// The rows.
    pub sockets: Vec<SockInfo>,
    /// Whether ss would print the `Netid` column (a view of several
    /// protocols, as `ss -tuan`).
    pub(crate) netid_column: bool,
}

impl SocketTable {
    /// The rows, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, SockInfo> {
        self.sockets.iter()
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether there are no sockets.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The rows in `state` (`ss -tan state time-wait`).
    pub fn in_state(&self, state: TcpState) -> impl Iterator<Item = &SockInfo> + '_ {
        self.sockets.iter().filter(move |s| s.state == state)
    }

    /// The row of the TCP connection (or TIME_WAIT entry) from `local` to
    /// `peer`, if there is one.
    pub fn find(&self, local: SocketAddr, peer: SocketAddr) -> Option<&SockInfo> {
        self.sockets.iter().find(|s| {
            s.netid == Netid::Tcp
                && s.local == local
                && s.peer == peer
                && s.state != TcpState::Listen
        })
    }

    /// The rows of one protocol, as ss shows them when asked for that one
    /// only (`ss -tan` for [`Netid::Tcp`], `ss -uan` for [`Netid::Udp`]:
    /// no `Netid` column).
    pub fn only(&self, netid: Netid) -> SocketTable {
        SocketTable {
            sockets: self
                .sockets
                .iter()
                .filter(|s| s.netid == netid)
                .copied()
                .collect(),
            netid_column: false,
        }
    }
}

impl<'a> IntoIterator for &'a SocketTable {
    type Item = &'a SockInfo;
    type IntoIter = std::slice::Iter<'a, SockInfo>;
    fn into_iter(self) -> Self::IntoIter {
        self.sockets.iter()
    }
}

impl IntoIterator for SocketTable {
    type Item = SockInfo;
    type IntoIter = std::vec::IntoIter<SockInfo>;
    fn into_iter(self) -> Self::IntoIter {
        self.sockets.into_iter()
    }
}

/// An address as ss prints it: IPv6 in brackets, and `*` for the IPv6
/// wildcard of a dual-stack socket (`dual_any`); `*` for port 0.
fn ss_addr(a: SocketAddr, dual_any: bool) -> (String, String) {
    let host = match a.ip() {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) if v.is_unspecified() && dual_any => "*".to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    };
    let port = match a.port() {
        0 => "*".to_string(),
        p => p.to_string(),
    };
    (host + ":", port)
}

impl fmt::Display for SocketTable {
    /// `ss -tuan` (`{:#}`: `ss -tuano`), or `ss -tan` / `ss -uan` for a
    /// table of one protocol. Columns are as wide as their widest cell, as
    /// ss lays them out: Netid, state, Recv-Q and Send-Q left-aligned,
    /// `Local Address:` and `Peer Address:` right-aligned, each followed by
    /// its port.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEADER: [&str; 9] = [
            "Netid",
            "State",
            "Recv-Q",
            "Send-Q",
            "Local Address:",
            "Port",
            "Peer Address:",
            "Port",
            "Process",
        ];
        // ss's column table: left delimiter and alignment (true: right).
        // The first column shown has no delimiter.
        const DELIM: [&str; 9] = ["", " ", " ", " ", " ", "", " ", "", ""];
        const RIGHT: [bool; 9] = [false, false, false, false, true, false, true, false, false];
        use std::fmt::Write as _;
        let timers = f.alternate();
        let first = if self.netid_column { 0 } else { 1 };
        let mut rows: Vec<[String; 9]> = Vec::with_capacity(self.sockets.len() + 1);
        rows.push(HEADER.map(str::to_string));
        for s in &self.sockets {
            let dual_any = matches!(s.local.ip(), IpAddr::V6(v) if v.is_unspecified());
            let (lh, lp) = ss_addr(s.local, dual_any);
            let (ph, pp) = ss_addr(s.peer, dual_any);
            let process = match (timers, s.timer) {
                (true, Some(t)) => format!(" {t}"),
                _ => String::new(),
            };
            rows.push([
                s.netid.to_string(),
                s.state.to_string(),
                s.recv_q.to_string(),
                s.send_q.to_string(),
                lh,
                lp,
                ph,
                pp,
                process,
            ]);
        }
        let mut width = [0usize; 9];
        for row in &rows {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let mut line = String::new();
        for (i, row) in rows.iter().enumerate() {
            line.clear();
            for c in first..9 {
                if c > first {
                    line.push_str(DELIM[c]);
                }
                let (cell, w) = (&row[c], width[c]);
                let _ = if RIGHT[c] {
                    write!(line, "{cell:>w$}")
                } else {
                    write!(line, "{cell:<w$}")
                };
            }
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(line.trim_end())?;
        }
        Ok(())
    }
}

/// `tc -s qdisc show dev lo`: the root qdisc of the namespace's `lo` and its
/// counters ([`Netns::qdisc`](crate::Netns::qdisc)). `noqueue` (lo's
/// default) while no fault is installed, else one netem qdisc per fault
/// ([`Netns::add_fault`](crate::Netns::add_fault)), oldest first. `Display`
/// prints tc's text.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Qdisc {
    /// The netem qdiscs, oldest first; empty for `noqueue`.
    pub netem: Vec<NetemQdisc>,
}

/// One fault as `tc -s qdisc` shows it: a netem qdisc with its filter
/// ([`Match`]), parameters ([`Fault`]) and counters ([`FaultStats`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NetemQdisc {
    /// The packets it applies to.
    pub matcher: Match,
    /// Its netem parameters.
    pub fault: Fault,
    /// Its counters (`Sent`, `dropped`, `overlimits`, `backlog`).
    pub stats: FaultStats,
}

impl Qdisc {
    /// Whether `lo` has its default `noqueue` qdisc (no fault installed).
    pub fn is_noqueue(&self) -> bool {
        self.netem.is_empty()
    }
}

impl fmt::Display for Qdisc {
    /// `tc -s qdisc show dev lo`'s text: handles from 8001, the first netem
    /// qdisc at the root, the others under it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.netem.is_empty() {
            return f.write_str("qdisc noqueue 0: root refcnt 2\n Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)\n backlog 0b 0p requeues 0\n");
        }
        for (i, q) in self.netem.iter().enumerate() {
            let s = q.stats;
            write!(
                f,
                "qdisc netem {:x}: {} refcnt 2 {} match {}\n Sent {} bytes {} pkt (dropped {}, overlimits {} requeues 0)\n backlog {}b {}p requeues 0\n",
                0x8001 + i,
                if i == 0 { "root" } else { "parent 1:" },
                q.fault,
                q.matcher,
                s.sent_bytes,
                s.sent_packets,
                s.dropped,
                s.overlimits,
                s.backlog_bytes,
                s.backlog_packets,
            )?;
        }
        Ok(())
    }
}

/// UDP and ICMP counters, as `netstat -s` prints its `Udp:` and `Icmp:`
/// sections (`/proc/net/snmp`), from
/// [`Netns::udp_stats`](crate::Netns::udp_stats). The model counts IPv4 and
/// IPv6 together (Linux keeps the IPv6 ones apart, in `/proc/net/snmp6`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpStats {
    /// `InDatagrams`: datagrams delivered to the application (counted when
    /// `recvmsg` takes one, as Linux counts it; a peek does not count).
    pub in_datagrams: u64,
    /// `NoPorts`: datagrams to a port no socket holds (each answered with
    /// an ICMP port unreachable).
    pub no_ports: u64,
    /// `InErrors`: datagrams received and dropped (a full receive buffer
    /// among them).
    pub in_errors: u64,
    /// `OutDatagrams`: datagrams sent.
    pub out_datagrams: u64,
    /// `RcvbufErrors`: datagrams dropped because the socket's receive
    /// buffer (`SO_RCVBUF`, default `net.core.rmem_default`) was full.
    pub rcvbuf_errors: u64,
    /// `SndbufErrors`: sends refused for want of send buffer. On `lo` the
    /// buffer is released as the datagram is handed on, so this stays 0.
    pub sndbuf_errors: u64,
    /// `IgnoredMulti`: broadcast or multicast datagrams no socket took.
    pub ignored_multi: u64,
    /// `Icmp: InMsgs`: ICMP messages received.
    pub icmp_in_msgs: u64,
    /// `Icmp: InDestUnreachs`: destination unreachable messages received.
    pub icmp_in_dest_unreachs: u64,
    /// `Icmp: OutMsgs`: ICMP messages sent.
    pub icmp_out_msgs: u64,
    /// `Icmp: OutDestUnreachs`: destination unreachable messages sent.
    pub icmp_out_dest_unreachs: u64,
    /// `Icmp: OutRateLimitGlobal`: ICMP errors the namespace's bucket
    /// (`net.ipv4.icmp_msgs_per_sec`, `icmp_msgs_burst`) held back. 0 on
    /// `lo`, which Linux exempts: every error in the model answers a packet
    /// that came in on it.
    pub icmp_out_rate_limit_global: u64,
    /// `Icmp: OutRateLimitHost`: ICMP errors the per-peer limit
    /// (`net.ipv4.icmp_ratelimit`) held back. 0 on `lo`, as above.
    pub icmp_out_rate_limit_host: u64,
}

impl fmt::Display for UdpStats {
    /// The `Icmp:` and `Udp:` sections of `netstat -s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Icmp:")?;
        writeln!(f, "    {} ICMP messages received", self.icmp_in_msgs)?;
        writeln!(f, "    0 input ICMP message failed")?;
        writeln!(f, "    ICMP input histogram:")?;
        writeln!(
            f,
            "        destination unreachable: {}",
            self.icmp_in_dest_unreachs
        )?;
        writeln!(f, "    {} ICMP messages sent", self.icmp_out_msgs)?;
        writeln!(f, "    0 ICMP messages failed")?;
        writeln!(f, "    ICMP output histogram:")?;
        writeln!(
            f,
            "        destination unreachable: {}",
            self.icmp_out_dest_unreachs
        )?;
        writeln!(
            f,
            "    OutRateLimitGlobal: {}",
            self.icmp_out_rate_limit_global
        )?;
        writeln!(f, "    OutRateLimitHost: {}", self.icmp_out_rate_limit_host)?;
        writeln!(f, "Udp:")?;
        writeln!(f, "    {} packets received", self.in_datagrams)?;
        writeln!(f, "    {} packets to unknown port received", self.no_ports)?;
        writeln!(f, "    {} packet receive errors", self.in_errors)?;
        writeln!(f, "    {} packets sent", self.out_datagrams)?;
        writeln!(f, "    {} receive buffer errors", self.rcvbuf_errors)?;
        writeln!(f, "    {} send buffer errors", self.sndbuf_errors)?;
        write!(f, "    IgnoredMulti: {}", self.ignored_multi)
    }
}

/// The namespace's UDP and ICMP MIBs, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct UdpMib {
    pub(crate) in_datagrams: AtomicU64,
    pub(crate) no_ports: AtomicU64,
    pub(crate) in_errors: AtomicU64,
    pub(crate) out_datagrams: AtomicU64,
    pub(crate) rcvbuf_errors: AtomicU64,
    pub(crate) ignored_multi: AtomicU64,
    pub(crate) icmp_in_msgs: AtomicU64,
    pub(crate) icmp_in_dest_unreachs: AtomicU64,
    pub(crate) icmp_out_msgs: AtomicU64,
    pub(crate) icmp_out_dest_unreachs: AtomicU64,
}

impl UdpMib {
    pub(crate) fn snapshot(&self) -> UdpStats {
        let g = |c: &AtomicU64| c.load(Relaxed);
        UdpStats {
            in_datagrams: g(&self.in_datagrams),
            no_ports: g(&self.no_ports),
            in_errors: g(&self.in_errors),
            out_datagrams: g(&self.out_datagrams),
            rcvbuf_errors: g(&self.rcvbuf_errors),
            sndbuf_errors: 0,
            ignored_multi: g(&self.ignored_multi),
            icmp_in_msgs: g(&self.icmp_in_msgs),
            icmp_in_dest_unreachs: g(&self.icmp_in_dest_unreachs),
            icmp_out_msgs: g(&self.icmp_out_msgs),
            icmp_out_dest_unreachs: g(&self.icmp_out_dest_unreachs),
            // __icmp_send skips both limits for an skb that came in on lo
            // (see icmp_send in udp.rs).
            icmp_out_rate_limit_global: 0,
            icmp_out_rate_limit_host: 0,
        }
    }
}
