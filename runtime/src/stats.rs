//! Counters with the kernel's names and meaning, and their tool-like output.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `ip -s link show lo`: the loopback device's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
        write!(
            f,
            "    {} connections reset due to early user close",
            self.tcp_abort_on_close
        )
    }
}

/// `/proc/net/sockstat`, the `TCP:` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sockstat {
    /// `inuse`: sockets in the lookup tables (listening, connecting,
    /// established, closing).
    pub inuse: u64,
    /// `orphan`: sockets the application closed that are still finishing
    /// (FIN_WAIT, LAST_ACK, ...).
    pub orphan: u64,
    /// `alloc`: TCP sockets allocated.
    pub alloc: u64,
    /// `mem`: bytes held in socket send and receive queues (the kernel counts
    /// pages; the model counts payload bytes).
    pub mem: u64,
}

impl fmt::Display for Sockstat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TCP: inuse {} orphan {} tw 0 alloc {} mem {}",
            self.inuse, self.orphan, self.alloc, self.mem
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
    pub(crate) in_segs: AtomicU64,
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
            in_segs: g(&self.in_segs),
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
        }
    }
}
