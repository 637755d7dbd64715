//! TCP over the modeled path (net/ipv4/tcp*.c), reduced to what loopback
//! exercises.
//!
//! * [`input`]: `tcp_v4_rcv` — demux, the listener's SYN handling, the state
//!   machine (`tcp_rcv_state_process`), ACK processing, data queueing and the
//!   decision when to ACK.
//! * [`output`]: `tcp_write_xmit` — MSS segmentation, the peer's window, Nagle;
//!   ACKs, SYN, SYN-ACK, FIN and RST.
//! * [`timer`]: retransmission (go-back-N), delayed ACK, zero-window probe.
//! * [`syscalls`]: the socket-call side (tcp.c) — `tcp_sendmsg` and its
//!   copy onto the send queue, `tcp_recvmsg`, `tcp_cleanup_rbuf`,
//!   `tcp_close`.
//! * [`minisocks`]: TIME_WAIT entries (`tcp_time_wait`,
//!   `tcp_timewait_state_process`), their reuse and expiry.
//!
//! Deliberate differences from Linux, each written where it happens: no SACK;
//! no congestion window (loopback never congests except at the backlog,
//! where TCP recovers by retransmitting; `snd_cwnd` is kept only to size the
//! send buffer); the receiver's RTT (for autotuning) is the time a window
//! takes to arrive, and a queued segment costs its payload plus one skb
//! head, nothing more; the
//! SYN queue and the accept queue are one; no timestamps (so no PAWS), and
//! TIME_WAIT entries expire lazily (`minisocks`); the socket lock is a mutex,
//! so the softirq waits for an owner instead of using `sk_backlog`.

pub(crate) mod input;
pub(crate) mod minisocks;
pub(crate) mod output;
pub(crate) mod syscalls;
pub(crate) mod timer;

use crate::ctx::Ctx;
use crate::fib::DstEntry;
use crate::ksoftirqd::{sk_reset_timer, sk_stop_timers, TimerReg};
use crate::netns::NsInner;
use crate::stats::{inc, Netid, SockInfo, SockTimer, TimerKind};
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{get_mut, lock, write};
use crate::sync::{Arc, Mutex, MutexGuard, Weak};
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::task::Waker;
use std::time::{Duration, Instant};

/// TCP states (`TCP_*` in include/net/tcp_states.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// `TCP_ESTABLISHED`
    Established,
    /// `TCP_SYN_SENT`
    SynSent,
    /// `TCP_SYN_RECV`
    SynRecv,
    /// `TCP_FIN_WAIT1`
    FinWait1,
    /// `TCP_FIN_WAIT2`
    FinWait2,
    /// `TCP_TIME_WAIT`
    TimeWait,
    /// `TCP_CLOSE`
    Close,
    /// `TCP_CLOSE_WAIT`
    CloseWait,
    /// `TCP_LAST_ACK`
    LastAck,
    /// `TCP_LISTEN`
    Listen,
    /// `TCP_CLOSING`
    Closing,
}

impl fmt::Display for TcpState {
    /// The names `ss` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpState::Established => "ESTAB",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv => "SYN-RECV",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "UNCONN",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        })
    }
}

/// `TCP_TIMEOUT_INIT`: the initial RTO of a SYN, 1 s.
pub(crate) const TCP_TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// `TCP_RTO_MAX`: 120 s.
pub(crate) const TCP_RTO_MAX: Duration = Duration::from_secs(120);
/// `TCP_DELACK_MIN` (include/net/tcp.h): 40 ms (HZ/25).
pub(crate) const TCP_DELACK_MIN: Duration = Duration::from_millis(40);
/// `TCP_ATO_MIN` (include/net/tcp.h): 40 ms (HZ/25).
pub(crate) const TCP_ATO_MIN: Duration = Duration::from_millis(40);
/// `TCP_DELACK_MAX` (include/net/tcp.h): 200 ms (HZ/5).
pub(crate) const TCP_DELACK_MAX: Duration = Duration::from_millis(200);
/// `TCP_MAX_QUICKACKS` (include/net/tcp.h): 16.
pub(crate) const TCP_MAX_QUICKACKS: u32 = 16;
/// `TCP_MSS_DEFAULT`: 536, the initial receive-MSS estimate.
pub(crate) const TCP_MSS_DEFAULT: u32 = 536;
/// `TCP_DEFAULT_SCALING_RATIO` (include/net/tcp.h): half of the receive
/// buffer is window until a segment's truesize is measured.
pub(crate) const TCP_DEFAULT_SCALING_RATIO: u32 = 1 << (8 - 1);
/// `TCP_MAX_WSCALE`.
pub(crate) const TCP_MAX_WSCALE: u32 = 14;

/// The window-scale shift `tcp_select_initial_window` picks for a receive
/// space of `space` bytes (the larger of `tcp_rmem[1]` and `tcp_rmem[2]`
/// here, as the capture's SYN options show it): `ilog2(space) - 15`, within
/// 0..=14.
pub(crate) fn rcv_wscale_for(space: usize) -> u8 {
    let log = (usize::BITS - 1).saturating_sub(space.max(1).leading_zeros()) as i64;
    (log - 15).clamp(0, i64::from(TCP_MAX_WSCALE)) as u8
}
/// `TCP_INIT_CWND` (include/net/tcp.h): 10 segments, the least
/// `tcp_sndbuf_expand` sizes the send buffer for.
pub(crate) const TCP_INIT_CWND: usize = 10;
/// `MAX_TCP_HEADER` (include/net/tcp.h): `L1_CACHE_ALIGN(128 + MAX_HEADER)`,
/// 192 on a kernel without tunnels or WLAN (`MAX_HEADER` 32); distribution
/// kernels have 320. It disappears in `tcp_sndbuf_expand`'s rounding to a
/// power of two on loopback either way.
pub(crate) const MAX_TCP_HEADER: usize = 192;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86_64 with
/// `MAX_SKB_FRAGS` 17 (include/linux/skbuff.h).
pub(crate) const SKB_SHINFO_SIZE: usize = 320;
/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))` on x86_64.
pub(crate) const SKB_STRUCT_SIZE: usize = 256;
/// `SKB_TRUESIZE(skb_end_offset(skb))` of a send skb's head
/// (`tcp_stream_alloc_skb`, net/ipv4/tcp.c): what each skb of the send queue
/// costs beyond its payload in `sk_wmem_queued` (832 with the
/// `MAX_TCP_HEADER` above, as `ss -m` shows on such a kernel).
pub(crate) const SKB_HEAD_TRUESIZE: usize = 832;
/// `SOCK_MIN_SNDBUF` (include/net/sock.h): `2 * TCP_SKB_MIN_TRUESIZE`.
pub(crate) const SOCK_MIN_SNDBUF: usize = 2 * (2048 + SKB_STRUCT_SIZE);
/// `SOCK_MIN_RCVBUF` (include/net/sock.h): `TCP_SKB_MIN_TRUESIZE`.
pub(crate) const SOCK_MIN_RCVBUF: usize = 2048 + SKB_STRUCT_SIZE;
/// Bytes of timestamp option in every segment (`TCPOLEN_TSTAMP_ALIGNED`).
pub(crate) const TCPOLEN_TSTAMP_ALIGNED: u32 = 12;

/// The tasks waiting on one direction of a socket (`sk->sk_wq`).
///
/// Rules: a task registers by polling with its waker (a waker that
/// `will_wake` the same task is not stored twice); every registered waker is
/// woken once by the next event and then forgotten; wakes may be spurious
/// (the polled condition can be false again by the time the task runs), so
/// pollers re-check. Several tasks may wait at once (`readable()` from two
/// tasks), as on a real socket; the usual single waiter costs no allocation.
#[derive(Default)]
pub(crate) struct WaitQueue {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl WaitQueue {
    /// Adds the waker unless it is already there.
    #[inline]
    pub(crate) fn register(&mut self, w: &Waker) {
        match &self.first {
            None => self.first = Some(w.clone()),
            Some(f) if f.will_wake(w) => {}
            Some(_) => {
                if !self.more.iter().any(|m| m.will_wake(w)) {
                    self.more.push(w.clone());
                }
            }
        }
    }

    /// Wakes and forgets every waiter. Inlined where a socket wakes its
    /// readers or writers (once per segment received); the rare further
    /// waiters are woken out of line.
    #[inline(always)]
    pub(crate) fn wake_all(&mut self) {
        if let Some(w) = self.first.take() {
            w.wake();
            if !self.more.is_empty() {
                self.wake_more();
            }
        }
    }

    /// The waiters beyond the first, for [`wake_all`](WaitQueue::wake_all).
    #[cold]
    #[inline(never)]
    fn wake_more(&mut self) {
        for w in self.more.drain(..) {
            w.wake();
        }
    }

    /// Forgets every waiter without waking it.
    pub(crate) fn clear(&mut self) {
        self.first = None;
        self.more.clear();
    }
}

/// A socket's queue: a `VecDeque` (reached through `Deref`) whose drop is
/// a capacity test, inline, when it never held anything. A socket has four
/// queues, mostly never used (a connection's accept queue, usually its
/// out-of-order queue), and the generic `VecDeque` drop walks its two
/// (empty) slices out of line: tens of instructions per queue, per socket
/// freed.
pub(crate) struct Queue<T>(std::mem::ManuallyDrop<VecDeque<T>>);

impl<T> Queue<T> {
    /// An empty queue (no allocation).
    #[inline]
    pub(crate) const fn new() -> Queue<T> {
        Queue(std::mem::ManuallyDrop::new(VecDeque::new()))
    }
}

impl<T> Default for Queue<T> {
    #[inline]
    fn default() -> Self {
        Queue::new()
    }
}

impl<T> std::ops::Deref for Queue<T> {
    type Target = VecDeque<T>;
    #[inline]
    fn deref(&self) -> &VecDeque<T> {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Queue<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut VecDeque<T> {
        &mut self.0
    }
}

impl<T> Drop for Queue<T> {
    #[inline]
    fn drop(&mut self) {
        // A queue that never allocated holds nothing: nothing to drop. Any
        // other is dropped whole (elements and buffer), leaving an empty,
        // unallocated deque behind in the `ManuallyDrop`.
        if self.0.capacity() != 0 {
            drop(std::mem::take(&mut *self.0));
        }
    }
}

/// A segment waiting in the out-of-order queue.
pub(crate) struct OfoSeg {
    pub(crate) seq: u32,
    pub(crate) payload: Bytes,
    pub(crate) fin: bool,
}

/// A TCP timer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Not armed.
    Off,
    /// Armed; the deadline is set when the socket's registration fires.
    Pending,
    /// Armed for this instant.
    At(Instant),
}

/// `seq1 < seq2` in sequence space (`before()`).
#[inline]
pub(crate) fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `seq1 > seq2` in sequence space (`after()`).
#[inline]
pub(crate) fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// `struct sock`: one TCP socket. The immutable identity sits outside the lock.
pub(crate) struct Sock {
    pub(crate) ns: Arc<NsInner>,
    pub(crate) id: u64,
    inner: Mutex<TcpSock>,
}

impl Sock {
    pub(crate) fn new(ns: &Arc<NsInner>, init: impl FnOnce(&mut TcpSock)) -> Arc<Sock> {
        let id = ns.next_sock_id();
        ns.socks.alloc.fetch_add(1, Relaxed);
        let defaults = ns.sock_defaults();
        Arc::new_cyclic(|me| {
            // Built where it stays and initialized there: the socket is
            // large, and each move would copy all of it.
            let mut sock = Sock {
                ns: ns.clone(),
                id,
                inner: Mutex::new(TcpSock::new(me.clone(), id, &defaults)),
            };
            init(get_mut(&mut sock.inner));
            sock
        })
    }

    /// `lock_sock`.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, TcpSock> {
        lock(&self.inner)
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        self.ns.socks.alloc.fetch_sub(1, Relaxed);
        let s = get_mut(&mut self.inner);
        // Whatever is still queued goes with the socket.
        self.ns
            .mem_sub(s.wmem_queued() + s.rcv.recvq_bytes + s.rcv.ofo_bytes);
    }
}

/// `struct tcp_sock`, reduced. The state is grouped by concern in
/// sub-structs held inline (no indirection on the hot path).
pub(crate) struct TcpSock {
    pub(crate) me: Weak<Sock>,
    pub(crate) id: u64,
    pub(crate) state: TcpState,
    /// Addresses as they travel on the wire (IPv4 for v4-mapped peers).
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    /// Show addresses to the user as `::ffff:a.b.c.d` (a dual-stack listener's
    /// child of an IPv4 connection).
    pub(crate) v6_mapped: bool,
    /// In `ehash` (connections) or `lhash` (listeners).
    pub(crate) hashed: bool,
    /// Holds a `bhash` entry on `local.port()`.
    pub(crate) bound: bool,
    /// `SOCK_BINDPORT_LOCK`: `bind()` was given this port (not 0), so the
    /// socket keeps it when the connection ends, until it is closed.
    pub(crate) bindport_lock: bool,
    /// `SO_REUSEADDR` (`sk_reuse`), from `bind()` or the listener.
    pub(crate) sk_reuse: bool,
    /// The cached route (`sk_dst_cache`).
    pub(crate) dst: Option<DstEntry>,
    /// `sk_err`, reported once.
    pub(crate) err: i32,
    /// The application has closed it (`SOCK_DEAD`).
    pub(crate) orphan: bool,
    pub(crate) listen: ListenState,
    pub(crate) snd: SendState,
    pub(crate) rcv: RecvState,
    pub(crate) shut: Shutdown,
    pub(crate) opt: SockOpts,
    pub(crate) timers: TimerState,
    // The tasks waiting to read (or accept) and to write (or connect).
    pub(crate) rx_waiters: WaitQueue,
    pub(crate) tx_waiters: WaitQueue,
}

/// The listener's side: its accept queue, and a passive child's link to
/// its listener.
pub(crate) struct ListenState {
    pub(crate) listener: bool,
    pub(crate) accept_queue: Queue<Arc<Sock>>,
    pub(crate) syn_recv_cnt: u32,
    pub(crate) max_ack_backlog: u32,
    /// A passive child's listener, until it is on the accept queue.
    pub(crate) parent: Option<Weak<Sock>>,
}

/// The send side. Sequence space: [snd_una, snd_nxt) in flight, [snd_nxt,
/// write_seq) unsent, FIN at write_seq when `fin_queued`.
pub(crate) struct SendState {
    pub(crate) iss: u32,
    pub(crate) snd_una: u32,
    pub(crate) snd_nxt: u32,
    /// Highest `snd_nxt` ever (sending below it is a retransmission).
    pub(crate) snd_max: u32,
    pub(crate) write_seq: u32,
    pub(crate) snd_wnd: u32,
    /// Sequence number of the segment that last updated `snd_wnd`.
    pub(crate) snd_wl1: u32,
    pub(crate) max_window: u32,
    /// End of the last sub-MSS segment sent (Minshall's Nagle).
    pub(crate) snd_sml: u32,
    /// Our MSS for this path (from the MTU, less timestamps).
    pub(crate) mss_cache: u32,
    /// The MSS the peer announced.
    pub(crate) peer_mss: u32,
    /// Half the peer's largest window when the handshake completed
    /// (`tcp_sync_mss` bounds `mss_cache` by it, `tcp_bound_to_half_wnd`,
    /// and runs again only when the path MTU changes): 0 before.
    pub(crate) mss_bound: u32,
    /// Bytes from `snd_una` to `write_seq`, chunked as written (small
    /// writes joined to an unsent tail chunk, as `tcp_sendmsg` fills the
    /// last skb), each with the skbs it stands for.
    pub(crate) sendq: Queue<SendChunk>,
    pub(crate) sendq_bytes: usize,
    /// The sum of the chunks' `skbs`: the skbs whose heads `sk_wmem_queued`
    /// charges.
    pub(crate) skbs: usize,
    pub(crate) sndbuf: usize,
    /// The congestion window as far as the model keeps one: only for
    /// `tcp_sndbuf_expand` (segments; grows by the segments acknowledged
    /// while data waits, as slow start does).
    pub(crate) snd_cwnd: usize,
    /// `SOCK_NOSPACE`: a writer found the send buffer full.
    pub(crate) nospace: bool,
    /// Buffer that small writes are copied into (see `syscalls::copy_in`).
    pub(crate) tx_arena: bytes::BytesMut,
    pub(crate) fin_queued: bool,
    pub(crate) dupacks: u32,
}

/// One written chunk of the send queue.
pub(crate) struct SendChunk {
    pub(crate) data: Bytes,
    /// How many skbs it stands for: its length in `size_goal` pieces when
    /// it was queued (one for a joined tail). Kept beside the bytes, so
    /// the ACK that frees the chunk pops one queue.
    pub(crate) skbs: u32,
}

/// The receive side: sequence state, the receive and out-of-order queues,
/// and the ACK decision's state.
pub(crate) struct RecvState {
    pub(crate) irs: u32,
    pub(crate) rcv_nxt: u32,
    /// `rcv_nxt` when the window was last advertised.
    pub(crate) rcv_wup: u32,
    /// The window last advertised, from `rcv_wup`.
    pub(crate) rcv_wnd: u32,
    pub(crate) rcvbuf: usize,
    /// Estimate of the peer's segment size (`icsk_ack.rcv_mss`).
    pub(crate) rcv_mss: u32,
    pub(crate) recvq: Queue<Bytes>,
    pub(crate) recvq_bytes: usize,
    /// `out_of_order_queue`: segments beyond `rcv_nxt`, sorted by sequence.
    pub(crate) ofo: Queue<OfoSeg>,
    pub(crate) ofo_bytes: usize,
    /// An ACK is owed (`ICSK_ACK_SCHED`, `inet_csk_ack_scheduled`).
    pub(crate) ack_pending: bool,
    /// `ICSK_ACK_PUSHED`: a small (or pushed full) segment arrived since the
    /// last ACK; a read that empties the queue ACKs it.
    pub(crate) pushed: bool,
    /// `ICSK_ACK_PUSHED2`: a second one did; ACKed on read even in pingpong.
    pub(crate) pushed2: bool,
    /// `icsk_ack.quick`: ACKs still to be sent at once (quick-ACK mode).
    pub(crate) quick: u32,
    /// `icsk_ack.pingpong`: replies sent within `ato` of received data; at
    /// `tcp_pingpong_thresh` the socket is interactive and delays its ACKs.
    pub(crate) pingpong: u8,
    /// `tcp_pingpong_thresh`.
    pub(crate) pingpong_thresh: u8,
    /// `icsk_ack.ato`: the delayed-ACK timeout estimate (zero until the
    /// first data segment).
    pub(crate) ato: Duration,
    /// `icsk_ack.lrcvtime`: when data last arrived.
    pub(crate) lrcvtime: Option<Instant>,
    /// `icsk_ack.last_seg_size`.
    pub(crate) last_seg_size: u32,
    /// `tp->rcv_ssthresh`: the window may open up to this (grown by
    /// `tcp_grow_window` as data arrives).
    pub(crate) rcv_ssthresh: u32,
    /// `tp->window_clamp`: the largest window to advertise.
    pub(crate) window_clamp: u32,
    /// `tp->scaling_ratio`: payload per 256 bytes of buffer charge
    /// (`TCP_DEFAULT_SCALING_RATIO` until a full segment is measured).
    pub(crate) scaling_ratio: u32,
    /// `rx_opt.rcv_wscale`: our window-scale shift.
    pub(crate) rcv_wscale: u8,
    /// `tcp_rmem[2]`, the autotuning cap (read at socket creation).
    pub(crate) rmem_cap: usize,
    /// Bytes the application has read (`copied_seq`, counted from 0).
    pub(crate) copied: u32,
    /// `rcvq_space`: bytes read in the last measured RTT, the read count at
    /// its start, and its start.
    pub(crate) rcvq_space: u32,
    pub(crate) rcvq_seq: u32,
    pub(crate) rcvq_time: Option<Instant>,
    /// `rcv_rtt_est`: the receiver's RTT estimate (the time a window takes
    /// to arrive, `tcp_rcv_rtt_measure`), the sequence that ends the current
    /// sample and when it started.
    pub(crate) rtt_est: Option<Duration>,
    pub(crate) rtt_seq: u32,
    pub(crate) rtt_time: Option<Instant>,
}

/// Which directions are shut, and how far the peer's FIN got.
pub(crate) struct Shutdown {
    pub(crate) rcv_shutdown: bool,
    /// The peer's FIN arrived (`SOCK_DONE`): reads give EOF even if an error
    /// is pending (it is kept for the next write).
    pub(crate) fin_rcvd: bool,
    /// A read reached the peer's FIN (`copied_seq` moved past it): `ss`
    /// stops counting it in Recv-Q.
    pub(crate) fin_copied: bool,
    pub(crate) snd_shutdown: bool,
}

/// Socket options (`setsockopt`).
pub(crate) struct SockOpts {
    pub(crate) nodelay: bool,
    pub(crate) ttl: u8,
    /// `IP_TOS` / `IPV6_TCLASS` (`inet->tos`).
    pub(crate) tos: u8,
    pub(crate) linger: Option<Duration>,
    /// `SOCK_SNDBUF_LOCK`: `SO_SNDBUF` was set; no autotuning.
    pub(crate) sndbuf_lock: bool,
    /// `SOCK_RCVBUF_LOCK`: `SO_RCVBUF` was set; no autotuning.
    pub(crate) rcvbuf_lock: bool,
    /// `SO_KEEPALIVE`.
    pub(crate) keepalive: bool,
}

/// The timers, their registration with the namespace's timer list
/// (ksoftirqd.rs) and their retry limits.
pub(crate) struct TimerState {
    pub(crate) rto_min: Duration,
    /// The most a delayed ACK waits: `TCP_DELACK_MIN` (the loopback bound
    /// of `max(srtt, TCP_DELACK_MIN)`) and `tcp_delack_max`, both fixed for
    /// the socket (`delack_bound`).
    pub(crate) delack_bound: Duration,
    pub(crate) backoff: u32,
    pub(crate) retransmits: u32,
    pub(crate) rto_timer: Timer,
    /// The RTO timer is the zero-window probe timer.
    pub(crate) probing: bool,
    pub(crate) delack_timer: Timer,
    /// When the namespace's timer thread will look at this socket next.
    pub(crate) timer_registered: TimerReg,
    /// How far ahead that registration was made: a timer with at least this
    /// period can wait for it (`Timer::Pending`) without reading the clock.
    pub(crate) registered_for: Duration,
    pub(crate) syn_retries: u32,
    pub(crate) synack_retries: u32,
    pub(crate) retries2: u32,
    pub(crate) fin_timeout: Duration,
    /// `tcp_syn_linear_timeouts`: SYN retransmissions that keep the 1 s RTO.
    pub(crate) syn_linear_timeouts: u32,
    /// `tp->total_rto`: RTO expiries of this connection (SYN_SENT's linear
    /// phase counts them).
    pub(crate) total_rto: u32,
    /// The keepalive timer (`sk_timer`, `tcp_keepalive_timer`).
    pub(crate) keepalive_timer: Timer,
    /// `icsk_probes_out` for keepalive probes.
    pub(crate) probes_out: u32,
    /// `tp->rcv_tstamp`: when an ACK was last received (kept only while
    /// `SO_KEEPALIVE` is on).
    pub(crate) rcv_tstamp: Option<Instant>,
}

/// The bound on a delayed ACK's timeout for a socket with `rto_min`:
/// `TCP_DELACK_MIN` (loopback's `max(srtt, TCP_DELACK_MIN)`, srtt being
/// microseconds) and `tcp_delack_max` (`min(TCP_DELACK_MAX, rto_min - 1
/// jiffy)`, at least 1 ms).
fn delack_bound(rto_min: Duration) -> Duration {
    let delack_max = TCP_DELACK_MAX.min(
        rto_min
            .saturating_sub(Duration::from_millis(4))
            .max(Duration::from_millis(1)),
    );
    TCP_DELACK_MIN.min(delack_max)
}

/// `secure_tcp_seq` stand-in: a well-mixed function of the socket id.
fn initial_seq(id: u64) -> u32 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

/// What a new socket takes from the sysctls, and the constants it derives
/// from them: computed when the sysctls change ([`Netns::set_sysctl`]),
/// not for every socket.
///
/// [`Netns::set_sysctl`]: crate::Netns::set_sysctl
#[derive(Debug, Clone, Copy)]
pub(crate) struct SockDefaults {
    /// `tcp_wmem[1]`.
    sndbuf: usize,
    /// `tcp_rmem[1]`.
    rcvbuf: usize,
    /// `tcp_rmem[2]`.
    rmem_cap: usize,
    pingpong_thresh: u8,
    rcv_wscale: u8,
    rto_min: Duration,
    delack_bound: Duration,
    syn_retries: u32,
    synack_retries: u32,
    retries2: u32,
    fin_timeout: Duration,
    syn_linear_timeouts: u32,
}

impl SockDefaults {
    /// The defaults under `sysctl`.
    pub(crate) fn new(sysctl: &crate::Sysctl) -> SockDefaults {
        let rto_min = Duration::from_micros(sysctl.tcp_rto_min_us.max(1));
        SockDefaults {
            sndbuf: sysctl.tcp_wmem[1],
            rcvbuf: sysctl.tcp_rmem[1],
            rmem_cap: sysctl.tcp_rmem[2],
            pingpong_thresh: sysctl.tcp_pingpong_thresh.max(1),
            rcv_wscale: rcv_wscale_for(sysctl.tcp_rmem[1].max(sysctl.tcp_rmem[2])),
            rto_min,
            delack_bound: delack_bound(rto_min),
            syn_retries: sysctl.tcp_syn_retries,
            synack_retries: sysctl.tcp_synack_retries,
            retries2: sysctl.tcp_retries2,
            fin_timeout: Duration::from_secs(sysctl.tcp_fin_timeout_secs),
            syn_linear_timeouts: sysctl.tcp_syn_linear_timeouts,
        }
    }
}

impl TcpSock {
    #[inline(always)]
    fn new(me: Weak<Sock>, id: u64, d: &SockDefaults) -> TcpSock {
        let unspec = SocketAddr::from(([0, 0, 0, 0], 0));
        let iss = initial_seq(id);
        TcpSock {
            me,
            id,
            state: TcpState::Close,
            local: unspec,
            remote: unspec,
            v6_mapped: false,
            hashed: false,
            bound: false,
            bindport_lock: false,
            sk_reuse: false,
            dst: None,
            err: 0,
            orphan: false,
            listen: ListenState {
                listener: false,
                accept_queue: Queue::new(),
                syn_recv_cnt: 0,
                max_ack_backlog: 0,
                parent: None,
            },
            snd: SendState {
                iss,
                snd_una: iss,
                snd_nxt: iss,
                snd_max: iss,
                write_seq: iss,
                snd_wnd: 0,
                snd_wl1: 0,
                max_window: 0,
                snd_sml: iss,
                mss_cache: TCP_MSS_DEFAULT,
                peer_mss: TCP_MSS_DEFAULT,
                mss_bound: 0,
                sendq: Queue::new(),
                sendq_bytes: 0,
                skbs: 0,
                sndbuf: d.sndbuf,
                snd_cwnd: TCP_INIT_CWND,
                nospace: false,
                tx_arena: bytes::BytesMut::new(),
                fin_queued: false,
                dupacks: 0,
            },
            rcv: RecvState {
                irs: 0,
                rcv_nxt: 0,
                rcv_wup: 0,
                rcv_wnd: 0,
                rcvbuf: d.rcvbuf,
                rcv_mss: TCP_MSS_DEFAULT,
                recvq: Queue::new(),
                recvq_bytes: 0,
                ofo: Queue::new(),
                ofo_bytes: 0,
                ack_pending: false,
                pushed: false,
                pushed2: false,
                quick: 0,
                pingpong: 0,
                pingpong_thresh: d.pingpong_thresh,
                ato: Duration::ZERO,
                lrcvtime: None,
                last_seg_size: 0,
                rcv_ssthresh: 0,
                window_clamp: 0,
                scaling_ratio: TCP_DEFAULT_SCALING_RATIO,
                rcv_wscale: d.rcv_wscale,
                rmem_cap: d.rmem_cap,
                copied: 0,
                rcvq_space: 0,
                rcvq_seq: 0,
                rcvq_time: None,
                rtt_est: None,
                rtt_seq: 0,
                rtt_time: None,
            },
            shut: Shutdown {
                rcv_shutdown: false,
                fin_rcvd: false,
                fin_copied: false,
                snd_shutdown: false,
            },
            opt: SockOpts {
                nodelay: false,
                ttl: 64,
                tos: 0,
                linger: None,
                sndbuf_lock: false,
                rcvbuf_lock: false,
                keepalive: false,
            },
            timers: TimerState {
                rto_min: d.rto_min,
                delack_bound: d.delack_bound,
                backoff: 0,
                retransmits: 0,
                rto_timer: Timer::Off,
                probing: false,
                delack_timer: Timer::Off,
                timer_registered: TimerReg::default(),
                registered_for: Duration::ZERO,
                syn_retries: d.syn_retries,
                synack_retries: d.synack_retries,
                retries2: d.retries2,
                fin_timeout: d.fin_timeout,
                syn_linear_timeouts: d.syn_linear_timeouts,
                total_rto: 0,
                keepalive_timer: Timer::Off,
                probes_out: 0,
                rcv_tstamp: None,
            },
            rx_waiters: WaitQueue::default(),
            tx_waiters: WaitQueue::default(),
        }
    }

    /// Takes the peer's side of the handshake from its SYN (or SYN-ACK):
    /// initial sequence number, window and MSS option.
    pub(crate) fn init_from_syn(&mut self, skb: &crate::skbuff::SkBuff) {
        self.rcv.irs = skb.seq;
        self.rcv.rcv_nxt = skb.seq.wrapping_add(1);
        self.rcv.rcv_wup = self.rcv.rcv_nxt;
        self.snd.snd_wnd = skb.window;
        self.snd.snd_wl1 = skb.seq;
        self.snd.max_window = skb.window;
        self.snd.peer_mss = u32::from(skb.mss.max(64));
    }

    /// Sets the initial sequence number (before the SYN is sent): a
    /// connection taking over a TIME_WAIT 4-tuple starts beyond the old one.
    pub(crate) fn set_iss(&mut self, isn: u32) {
        self.snd.iss = isn;
        self.snd.snd_una = isn;
        self.snd.snd_nxt = isn;
        self.snd.snd_max = isn;
        self.snd.write_seq = isn;
        self.snd.snd_sml = isn;
    }

    /// Our SYN takes sequence number `iss`: data starts after it.
    pub(crate) fn init_snd_after_syn(&mut self) {
        self.snd.snd_nxt = self.snd.iss.wrapping_add(1);
        self.snd.snd_max = self.snd.snd_nxt;
        self.snd.write_seq = self.snd.snd_nxt;
        self.snd.snd_sml = self.snd.snd_nxt;
    }

    /// The handshake is complete (`tcp_finish_connect` /
    /// `tcp_init_transfer`): ESTABLISHED, SYN timer off, send buffer sized.
    pub(crate) fn finish_handshake(&mut self, ctx: &mut Ctx<'_>) {
        let ns = ctx.ns;
        self.set_state(ns, TcpState::Established);
        self.timers.rto_timer = Timer::Off;
        self.timers.backoff = 0;
        self.timers.retransmits = 0;
        self.sndbuf_expand(&ns.sysctl_locked());
        self.init_buffer_space(ctx.now());
        // tcp_sync_mss at the end of the handshake: on lo half the SYN-ACK's
        // window (32741) for a client, of the third ACK's (32768) for a
        // server, kept while the windows grow.
        self.snd.mss_bound = Self::bound_to_half_wnd(self.snd.max_window, u32::MAX);
        if self.opt.keepalive {
            // tcp_finish_connect / tcp_create_openreq_child: SOCK_KEEPOPEN
            // arms the keepalive timer.
            self.timers.rcv_tstamp = Some(ctx.now());
            self.reset_keepalive_timer(ctx, None);
        }
    }

    /// Sets the MSS from the route's MTU (`tcp_sync_mss`): MTU less IP and TCP
    /// headers, less the timestamp option.
    pub(crate) fn init_mss(&mut self, mtu: u32) {
        let ip = if self.local.is_ipv4() { 20 } else { 40 };
        // The MSS option is capped so the IP packet fits 65535 bytes.
        let advmss = mtu.min(65535) - ip - 20;
        self.snd.mss_cache = advmss - TCPOLEN_TSTAMP_ALIGNED;
    }

    /// The MSS we advertise in SYN / SYN-ACK.
    pub(crate) fn advmss(&self) -> u16 {
        (self.snd.mss_cache + TCPOLEN_TSTAMP_ALIGNED).min(65535) as u16
    }

    /// `tcp_current_mss` bounded by half the peer's largest window
    /// (`tcp_bound_to_half_wnd`).
    #[inline]
    pub(crate) fn eff_mss(&self) -> u32 {
        let mss = self.snd.mss_cache.min(
            self.snd
                .peer_mss
                .saturating_sub(TCPOLEN_TSTAMP_ALIGNED)
                .max(1),
        );
        let mss = if self.snd.mss_bound != 0 {
            mss.min(self.snd.mss_bound)
        } else {
            mss
        };
        Self::bound_to_half_wnd(self.snd.max_window, mss)
    }

    /// `tcp_bound_to_half_wnd` (net/ipv4/tcp_output.c): `size` within half
    /// of `max_window` (all of it when that is at most 536), at least 36.
    #[inline]
    pub(crate) fn bound_to_half_wnd(max_window: u32, size: u32) -> u32 {
        let cutoff = if max_window > TCP_MSS_DEFAULT {
            max_window >> 1
        } else {
            max_window
        };
        if cutoff != 0 && size > cutoff {
            cutoff.max(68 - 32)
        } else {
            size
        }
    }

    /// The current RTO: `rto_min` doubled per backoff, capped at `TCP_RTO_MAX`.
    pub(crate) fn rto(&self) -> Duration {
        let base = match self.state {
            TcpState::SynSent | TcpState::SynRecv => TCP_TIMEOUT_INIT,
            _ => self.timers.rto_min,
        };
        if self.timers.backoff == 0 {
            // The usual case, without Duration arithmetic.
            return base.min(TCP_RTO_MAX);
        }
        base.saturating_mul(1u32 << self.timers.backoff.min(16))
            .min(TCP_RTO_MAX)
    }

    /// The user-visible address form.
    pub(crate) fn user_addr(&self, a: SocketAddr) -> SocketAddr {
        match (self.v6_mapped, a) {
            (true, SocketAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => a,
        }
    }

    /// `tcp_set_state`, keeping `CurrEstab` (ESTABLISHED + CLOSE_WAIT) and
    /// `EstabResets` (a direct move from one of those to CLOSE, whichever side
    /// aborts).
    pub(crate) fn set_state(&mut self, ns: &NsInner, new: TcpState) {
        if new == TcpState::Close
            && matches!(self.state, TcpState::Established | TcpState::CloseWait)
        {
            ns.mib.estab_resets.fetch_add(1, Relaxed);
        }
        let estab = |s: TcpState| matches!(s, TcpState::Established | TcpState::CloseWait);
        match (estab(self.state), estab(new)) {
            (false, true) => {
                ns.mib.curr_estab.fetch_add(1, Relaxed);
            }
            (true, false) => {
                ns.mib.curr_estab.fetch_sub(1, Relaxed);
            }
            _ => {}
        }
        crate::trace::kevent!(
            "inet_sock_set_state",
            ns = ns.id,
            local = %self.local,
            remote = %self.remote,
            oldstate = ?self.state,
            newstate = ?new
        );
        self.state = new;
    }

    /// `tcp_sndbuf_expand` (net/ipv4/tcp_input.c): room for
    /// `max(TCP_INIT_CWND, cwnd)` segments times the congestion control's
    /// `sndbuf_expand` factor (2; bbr's `bbr_sndbuf_expand` 3), each counted
    /// as the peer's MSS (`mss_clamp`) with `MAX_TCP_HEADER` and the
    /// `skb_shared_info` rounded up to a power of two, plus the `sk_buff`.
    /// Never shrinks; capped by `tcp_wmem[2]`; not at all once `SO_SNDBUF`
    /// locked the size. Run at establishment (`tcp_init_buffer_space`) and
    /// when ACKs free space for a blocked writer (`tcp_new_space`).
    pub(crate) fn sndbuf_expand(&mut self, sysctl: &crate::Sysctl) {
        if self.opt.sndbuf_lock {
            return;
        }
        let mss_clamp = self.snd.peer_mss.max(self.snd.mss_cache) as usize;
        let per_mss =
            (mss_clamp + MAX_TCP_HEADER + SKB_SHINFO_SIZE).next_power_of_two() + SKB_STRUCT_SIZE;
        // tp->reordering + 1 (tcp_reordering, 3) is below TCP_INIT_CWND.
        let nr_segs = self.snd.snd_cwnd.max(TCP_INIT_CWND);
        let factor = if sysctl.tcp_congestion_control == "bbr" {
            3
        } else {
            2
        };
        let sndmem = factor * nr_segs * per_mss;
        if self.snd.sndbuf < sndmem {
            self.snd.sndbuf = sndmem.min(sysctl.tcp_wmem[2]);
        }
    }

    /// `sk_wmem_queued`: each skb's truesize, its payload plus its head's
    /// (`tcp_stream_alloc_skb` charges the head, `skb_copy_to_page_nocache`
    /// each copy, net/ipv4/tcp.c). An skb is a queued chunk, or each
    /// `size_goal` piece of a large one; a partly acknowledged skb keeps its
    /// head until it is gone (`tcp_trim_head` returns only the payload).
    #[inline]
    pub(crate) fn wmem_queued(&self) -> usize {
        let q = self.snd.sendq_bytes;
        if q == 0 {
            return 0;
        }
        q + self.snd.skbs * SKB_HEAD_TRUESIZE
    }

    /// Unsent bytes.
    #[inline]
    pub(crate) fn unsent(&self) -> u32 {
        let u = self.snd.write_seq.wrapping_sub(self.snd.snd_nxt) as i32;
        u.max(0) as u32
    }

    /// `tcp_receive_window`: what is left of the window we advertised.
    #[inline]
    pub(crate) fn receive_window(&self) -> u32 {
        let w = self
            .rcv
            .rcv_wup
            .wrapping_add(self.rcv.rcv_wnd)
            .wrapping_sub(self.rcv.rcv_nxt) as i32;
        w.max(0) as u32
    }

    /// `tcp_win_from_space`: the window `space` bytes of buffer make, at
    /// the measured `scaling_ratio`.
    #[inline]
    pub(crate) fn win_from_space(&self, space: i64) -> i64 {
        (space * i64::from(self.rcv.scaling_ratio)) >> 8
    }

    /// `tcp_space_from_win`: the buffer a window of `win` bytes needs.
    #[inline]
    pub(crate) fn space_from_win(&self, win: u64) -> u64 {
        (win << 8) / u64::from(self.rcv.scaling_ratio.max(1))
    }

    /// `sk_rcvbuf` as the window sees it: at least `SOCK_MIN_RCVBUF`, so a
    /// `tcp_rmem` below what `SO_RCVBUF` may set (the sysctl accepts 1)
    /// still leaves a window that moves data.
    #[inline]
    pub(crate) fn rcvbuf_eff(&self) -> usize {
        self.rcv.rcvbuf.max(SOCK_MIN_RCVBUF)
    }

    /// `tcp_space`: the window the free receive buffer makes (negative when
    /// the queues hold more than `sk_rcvbuf`).
    #[inline]
    pub(crate) fn tcp_space(&self) -> i64 {
        self.win_from_space(self.rcvbuf_eff() as i64 - self.rmem_alloc() as i64)
    }

    /// `sk_rmem_alloc`: the truesize of the queued segments, each its
    /// payload plus the sender's skb head (on lo the receiver queues the
    /// sender's skb).
    #[inline]
    pub(crate) fn rmem_alloc(&self) -> usize {
        let r = &self.rcv;
        r.recvq_bytes + r.ofo_bytes + (r.recvq.len() + r.ofo.len()) * SKB_HEAD_TRUESIZE
    }

    /// `tcp_full_space`: the window the whole receive buffer makes.
    #[inline]
    pub(crate) fn full_space(&self) -> i64 {
        self.win_from_space(self.rcvbuf_eff() as i64)
    }

    /// `__tcp_select_window` (net/ipv4/tcp_output.c, `tcp_shrink_window`
    /// 0): the free space, bounded by `rcv_ssthresh`, rounded up to the
    /// window scale; zero (receiver silly-window avoidance) when less than
    /// half the buffer is free and the free space is under a sixteenth of
    /// it or under one segment. The second value says whether less than
    /// half is free (which ends quick-ACK mode).
    pub(crate) fn raw_select_window(&self) -> (u32, bool) {
        let mut mss = i64::from(self.rcv.rcv_mss);
        let mut free = self.tcp_space();
        let allowed = self.full_space();
        let full = i64::from(self.rcv.window_clamp).min(allowed);
        if mss > full {
            mss = full;
            if mss <= 0 {
                return (0, true);
            }
        }
        let unit = 1i64 << self.rcv.rcv_wscale;
        let low = free < full >> 1;
        if low {
            free &= !(unit - 1);
            if free < allowed >> 4 || free < mss {
                return (0, true);
            }
        }
        free = free.min(i64::from(self.rcv.rcv_ssthresh));
        let window = if self.rcv.rcv_wscale != 0 {
            (free + unit - 1) & !(unit - 1)
        } else {
            let cur = i64::from(self.rcv.rcv_wnd);
            if cur <= free - mss || cur > free {
                free - free % mss.max(1)
            } else if mss == full && free > cur + (full >> 1) {
                free
            } else {
                cur
            }
        };
        (window.clamp(0, i64::from(u32::MAX)) as u32, low)
    }

    /// The window `__tcp_select_window` would offer now (no side effect).
    #[inline]
    pub(crate) fn free_window(&self) -> u32 {
        self.raw_select_window().0
    }

    /// `tcp_select_window`: the window to put in an outgoing segment; never
    /// moves the right edge left (a smaller window re-offers what is left,
    /// rounded up to the scale), at most 65535 scaled. Records it as
    /// advertised; a buffer less than half free ends quick-ACK mode.
    #[inline]
    pub(crate) fn select_window(&mut self) -> u32 {
        let cur = self.receive_window();
        let (mut new, low) = self.raw_select_window();
        if low {
            self.rcv.quick = 0;
        }
        let unit = 1u32 << self.rcv.rcv_wscale;
        if new < cur {
            new = cur.div_ceil(unit).saturating_mul(unit);
        }
        self.rcv.rcv_wnd = new;
        self.rcv.rcv_wup = self.rcv.rcv_nxt;
        new.min(65535 << self.rcv.rcv_wscale)
    }

    /// `tcp_init_buffer_space` (net/ipv4/tcp_input.c), on entering
    /// ESTABLISHED: the window clamp to the buffer's window (less one
    /// segment when that is close, `tcp_app_win`), `rcv_ssthresh` within
    /// it, and the first autotuning measure (`rcvq_space`).
    pub(crate) fn init_buffer_space(&mut self, now: Instant) {
        let maxwin = self.full_space().clamp(0, i64::from(u32::MAX)) as u32;
        let advmss = u32::from(self.advmss());
        let r = &mut self.rcv;
        if r.window_clamp >= maxwin {
            r.window_clamp = maxwin;
            // tcp_app_win 31: maxwin - (maxwin >> 31) is maxwin.
            if maxwin > 4 * advmss {
                r.window_clamp = maxwin.max(4 * advmss);
            }
        }
        if r.window_clamp > 2 * advmss && r.window_clamp.saturating_add(advmss) > maxwin {
            r.window_clamp = (2 * advmss).max(maxwin.saturating_sub(advmss));
        }
        r.rcv_ssthresh = r.rcv_ssthresh.min(r.window_clamp);
        r.rcvq_space = r.rcv_ssthresh.min(r.rcv_wnd).min(10 * advmss);
        r.rcvq_seq = r.copied;
        r.rcvq_time = Some(now);
    }

    /// `tcp_set_window_clamp`: a new clamp; a smaller one pulls
    /// `rcv_ssthresh` down, a larger one lets it up to the window offered.
    pub(crate) fn set_window_clamp(&mut self, val: u32) {
        let new = val.max((SOCK_MIN_RCVBUF / 2) as u32);
        let r = &mut self.rcv;
        if new == r.window_clamp {
            return;
        }
        if new < r.window_clamp {
            r.rcv_ssthresh = r.rcv_ssthresh.min(new);
        } else {
            r.rcv_ssthresh = r.rcv_ssthresh.max(r.rcv_wnd.min(new));
        }
        r.window_clamp = new;
    }

    /// `tcp_grow_window` (net/ipv4/tcp_input.c), for an in-order segment of
    /// `len` bytes (at least 128): `rcv_ssthresh` opens by twice the MSS (or
    /// twice the segment) within the clamp and the free space, and the next
    /// ACK is quick. On loopback a segment's payload is all in page frags,
    /// so its truesize less the head (`truesize_adjust`) is its length, and
    /// the window always grows by `2 * advmss` (`__tcp_grow_window` is not
    /// reached).
    pub(crate) fn grow_window(&mut self, len: u32) {
        let room = i64::from(self.rcv.window_clamp).min(self.tcp_space())
            - i64::from(self.rcv.rcv_ssthresh);
        if room <= 0 {
            return;
        }
        let incr = (2 * u32::from(self.advmss())).max(2 * len);
        self.rcv.rcv_ssthresh += (room.min(i64::from(u32::MAX)) as u32).min(incr);
        self.rcv.quick |= 1;
    }

    /// `tcp_rcv_rtt_measure` (no timestamps): the time a window of data
    /// takes to arrive, the smallest seen (`win_dep`).
    pub(crate) fn rcv_rtt_measure(&mut self, now: Instant) {
        let r = &mut self.rcv;
        if let Some(t) = r.rtt_time {
            if before(r.rcv_nxt, r.rtt_seq) {
                return;
            }
            let m = now
                .saturating_duration_since(t)
                .max(Duration::from_micros(1));
            r.rtt_est = Some(r.rtt_est.map_or(m, |e| e.min(m)));
        }
        r.rtt_seq = r.rcv_nxt.wrapping_add(r.rcv_wnd);
        r.rtt_time = Some(now);
    }

    /// `tcp_rcv_space_adjust` with 6.16's `tcp_rcvbuf_grow`
    /// (net/ipv4/tcp_input.c), after a read: once per receiver RTT, the
    /// bytes read in it (less what is still queued); when more than last
    /// time, the receive buffer grows to carry twice that (plus the
    /// out-of-order span), up to `tcp_rmem[2]`, and the clamp with it;
    /// never with `SO_RCVBUF`. The model reads the clock only when the
    /// reads since the last measure exceed the last RTT's, and takes the
    /// average per RTT since then as the last RTT's reads.
    #[inline]
    pub(crate) fn rcv_space_adjust(&mut self, ns: &NsInner) {
        let r = &self.rcv;
        let since = r.copied.wrapping_sub(r.rcvq_seq);
        if since <= r.rcvq_space {
            return;
        }
        self.rcv_space_measure(ns, since);
    }

    /// The measure of [`rcv_space_adjust`](TcpSock::rcv_space_adjust), out
    /// of line: most reads stay within the last RTT's count and stop above.
    #[inline(never)]
    fn rcv_space_measure(&mut self, ns: &NsInner, since: u32) {
        let r = &self.rcv;
        let (Some(rtt), Some(t0)) = (r.rtt_est, r.rcvq_time) else {
            return;
        };
        let now = ns.clock_now();
        let time = now.saturating_duration_since(t0);
        if time < rtt {
            return;
        }
        let inq = self.rcv.recvq_bytes as u64;
        let per_rtt = (u128::from(since) * rtt.as_nanos() / time.as_nanos().max(1)) as u64;
        let copied = per_rtt.saturating_sub(inq).min(u64::from(u32::MAX)) as u32;
        if copied > self.rcv.rcvq_space {
            self.rcv.rcvq_space = copied;
            self.rcvbuf_grow();
        }
        self.rcv.rcvq_seq = self.rcv.copied;
        self.rcv.rcvq_time = Some(now);
    }

    /// `tcp_rcvbuf_grow` (6.16+): room for twice the last RTT's reads plus
    /// the out-of-order span, up to `tcp_rmem[2]`.
    fn rcvbuf_grow(&mut self) {
        if self.opt.rcvbuf_lock {
            return;
        }
        let mut rcvwin = u64::from(self.rcv.rcvq_space) << 1;
        if let Some(last) = self.rcv.ofo.back() {
            let end = last.seq.wrapping_add(last.payload.len() as u32);
            rcvwin += u64::from(end.wrapping_sub(self.rcv.rcv_nxt));
        }
        let rcvbuf = (self.space_from_win(rcvwin) as usize).min(self.rcv.rmem_cap);
        if rcvbuf > self.rcv.rcvbuf {
            self.rcv.rcvbuf = rcvbuf;
            let clamp = self
                .win_from_space(rcvbuf as i64)
                .clamp(0, i64::from(u32::MAX)) as u32;
            self.set_window_clamp(clamp);
        }
    }

    /// `tcp_try_rmem_schedule` with `tcp_prune_queue` (net/ipv4/tcp_input.c):
    /// whether a segment starting at `seq` may be queued. Queues already
    /// over `sk_rcvbuf` first let the buffer grow to what they hold
    /// (`tcp_clamp_window`: up to `tcp_rmem[2]`, never with `SO_RCVBUF`),
    /// then have the receive queue's small segments copied into fuller ones
    /// (`tcp_collapse`), then lose out-of-order segments after `seq`
    /// (`tcp_prune_ofo_queue`). `false`: still over (`RcvPruned`).
    #[inline(always)]
    pub(crate) fn try_rmem_schedule(&mut self, ns: &NsInner, seq: u32) -> bool {
        self.rmem_alloc() <= self.rcvbuf_eff() || self.prune_queue(ns, seq)
    }

    /// `tcp_prune_queue` and what precedes it in
    /// [`try_rmem_schedule`](TcpSock::try_rmem_schedule): the queues are
    /// over `sk_rcvbuf`. Out of line, as it is rarely reached.
    #[inline(never)]
    fn prune_queue(&mut self, ns: &NsInner, seq: u32) -> bool {
        inc(&ns.mib.prune_called);
        // tcp_clamp_window: quick-ACK mode ends; the buffer follows what the
        // queues hold when autotuning may grow it.
        self.rcv.quick = 0;
        if self.rcv.rcvbuf < self.rcv.rmem_cap && !self.opt.rcvbuf_lock {
            self.rcv.rcvbuf = self.rmem_alloc().min(self.rcv.rmem_cap);
        }
        if self.rmem_alloc() > self.rcvbuf_eff() {
            self.rcv.rcv_ssthresh = self.rcv.window_clamp.min(2 * u32::from(self.advmss()));
        }
        if self.rmem_alloc() <= self.rcvbuf_eff() {
            return true;
        }
        self.collapse_recvq(ns);
        if self.rmem_alloc() <= self.rcvbuf_eff() {
            return true;
        }
        self.prune_ofo_queue(ns, seq);
        if self.rmem_alloc() <= self.rcvbuf_eff() {
            return true;
        }
        inc(&ns.mib.rcv_pruned);
        false
    }

    /// `tcp_collapse` on the receive queue: each run of segments whose head
    /// costs more buffer than the window their data fills
    /// (`tcp_win_from_space(truesize) > len`) is copied into segments of up
    /// to `SKB_MAX_ORDER(0, 0)` bytes, one head each (`TCPRcvCollapsed`
    /// counts the segments copied).
    fn collapse_recvq(&mut self, ns: &NsInner) {
        /// `SKB_MAX_ORDER(0, 0)`: a page less the shared info.
        const COLLAPSE_MAX: usize = 4096 - SKB_SHINFO_SIZE;
        let wasteful =
            |s: &Self, len: usize| s.win_from_space((len + SKB_HEAD_TRUESIZE) as i64) > len as i64;
        let q = std::mem::take(&mut *self.rcv.recvq);
        let mut out = VecDeque::with_capacity(q.len());
        let mut run: Option<bytes::BytesMut> = None;
        let mut copied = 0u64;
        for seg in q {
            if !wasteful(self, seg.len()) {
                if let Some(r) = run.take() {
                    out.push_back(r.freeze());
                }
                out.push_back(seg);
                continue;
            }
            copied += 1;
            let mut rest = &seg[..];
            while !rest.is_empty() {
                let cur = run.get_or_insert_with(|| bytes::BytesMut::with_capacity(COLLAPSE_MAX));
                let take = rest.len().min(COLLAPSE_MAX - cur.len());
                cur.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if cur.len() == COLLAPSE_MAX {
                    if let Some(full) = run.take() {
                        out.push_back(full.freeze());
                    }
                }
            }
        }
        if let Some(r) = run.take() {
            out.push_back(r.freeze());
        }
        *self.rcv.recvq = out;
        ns.mib.tcp_rcv_collapsed.fetch_add(copied, Relaxed);
    }

    /// `tcp_prune_ofo_queue`: drops out-of-order segments from the last
    /// back to the first after `seq`, until the queues fit the buffer
    /// (`OfoPruned` counts the calls that dropped any).
    fn prune_ofo_queue(&mut self, ns: &NsInner, seq: u32) {
        let mut pruned = false;
        while self.rmem_alloc() > self.rcvbuf_eff() {
            match self.rcv.ofo.back() {
                Some(last) if !after(seq, last.seq) => {}
                _ => break,
            }
            let Some(seg) = self.rcv.ofo.pop_back() else {
                break;
            };
            self.rcv.ofo_bytes -= seg.payload.len();
            ns.mem_sub(seg.payload.len());
            pruned = true;
        }
        if pruned {
            inc(&ns.mib.ofo_pruned);
        }
    }

    /// How many bytes `sendmsg` may still queue: `sk_stream_memory_free`
    /// (include/net/sock.h) is `sk_wmem_queued < sk_sndbuf`, checked before a
    /// new skb is started, so the last write may overshoot a little, as on
    /// Linux. `queued` is [`wmem_queued`](Self::wmem_queued), which the
    /// caller keeps for its accounting.
    #[inline]
    pub(crate) fn send_space(&self, queued: usize) -> usize {
        self.snd.sndbuf.saturating_sub(queued)
    }

    /// `__sk_stream_is_writeable` (include/net/sock.h): free space at least
    /// half of what is queued, i.e. at most two thirds of `sk_sndbuf` queued.
    /// What `tcp_poll` reports as writable and when `sk_stream_write_space`
    /// wakes a writer.
    #[inline]
    pub(crate) fn stream_writeable(&self) -> bool {
        let queued = self.wmem_queued();
        self.snd.sndbuf.saturating_sub(queued) >= queued / 2 && queued < self.snd.sndbuf
    }

    /// Arms a timer of `period`: with a registration that fires within
    /// `period` from now, the timer is `Pending` (its deadline is fixed when
    /// the registration fires, so it expires between one and two periods
    /// from now, as a coarse timer wheel's would) and the clock is not read;
    /// otherwise it gets a deadline and a registration of its own.
    #[inline]
    fn arm(&mut self, ctx: &mut Ctx<'_>, period: Duration) -> Timer {
        if self.timers.timer_registered.when().is_some() && period >= self.timers.registered_for {
            return Timer::Pending;
        }
        self.arm_at(ctx, period)
    }

    /// [`arm`](Self::arm) without a registration that covers the timer: a
    /// deadline and a registration of its own (out of line, so that the
    /// usual case above is a comparison at the caller).
    #[inline(never)]
    fn arm_at(&mut self, ctx: &mut Ctx<'_>, period: Duration) -> Timer {
        let now = ctx.now();
        let when = now + period;
        self.register_timer(ctx.ns, when, now, period);
        Timer::At(when)
    }

    /// `sk_reset_timer` for this socket: makes sure it is looked at no later
    /// than `when`, `period` after `now` (a comparison when an earlier
    /// registration covers it), and notes how far ahead a registration made
    /// now reaches, so that timers at least that long can wait for it
    /// (`arm`).
    #[inline]
    pub(crate) fn register_timer(
        &mut self,
        ns: &NsInner,
        when: Instant,
        now: Instant,
        period: Duration,
    ) {
        sk_reset_timer(
            ns,
            &self.me,
            self.id,
            &mut self.timers.timer_registered,
            when,
            now,
        );
        if self.timers.timer_registered.when() == Some(when) {
            self.timers.registered_for = period;
        }
    }

    /// Arms a timer at exactly `now + period`, with a registration of its
    /// own if it is earlier than the socket's (for the long, rarely re-armed
    /// keepalive timer).
    pub(crate) fn arm_exact(&mut self, ctx: &mut Ctx<'_>, period: Duration) -> Timer {
        self.arm_at(ctx, period)
    }

    /// Arms the RTO if it is not armed (`inet_csk_reset_xmit_timer`).
    #[inline]
    pub(crate) fn arm_rto(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(self.timers.rto_timer, Timer::Off) {
            self.timers.rto_timer = self.arm(ctx, self.rto());
        }
    }

    /// `tcp_fin_time` (include/net/tcp.h): how long an orphan waits in
    /// FIN_WAIT2, `tcp_fin_timeout` but at least 3.5 RTO.
    pub(crate) fn fin_time(&self) -> Duration {
        let rto = self.rto();
        self.timers.fin_timeout.max(rto * 4 - rto / 2)
    }

    /// An orphan reached FIN_WAIT2 (`tcp_rcv_state_process`'s FIN_WAIT1 case,
    /// or `__tcp_close` on a socket already there): with `to_timewait`
    /// (nothing else in the segment) and a `tcp_fin_time` of at most
    /// `TCP_TIMEWAIT_LEN`, it becomes a timewait entry in substate FIN_WAIT2
    /// (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`) and the full socket goes;
    /// otherwise it waits as a full socket, on the RTO timer, which has
    /// nothing else to do once our FIN is acknowledged.
    pub(crate) fn arm_fin_wait2(&mut self, ctx: &mut Ctx<'_>, to_timewait: bool) {
        if self.orphan && self.state == TcpState::FinWait2 {
            let tmo = self.fin_time();
            if to_timewait && tmo <= minisocks::TCP_TIMEWAIT_LEN {
                self.fin_wait2_timewait(ctx, tmo);
                return;
            }
            self.timers.rto_timer = self.arm(ctx, tmo);
        }
    }

    /// `inet_csk_in_pingpong_mode` (include/net/inet_connection_sock.h).
    #[inline]
    pub(crate) fn in_pingpong(&self) -> bool {
        self.rcv.pingpong >= self.rcv.pingpong_thresh
    }

    /// `inet_csk_enter_pingpong_mode`.
    #[inline]
    pub(crate) fn enter_pingpong(&mut self) {
        self.rcv.pingpong = self.rcv.pingpong_thresh;
    }

    /// `tcp_in_quickack_mode` (net/ipv4/tcp_input.c): quick-ACK credits
    /// left and not interactive.
    #[inline]
    pub(crate) fn in_quickack_mode(&self) -> bool {
        self.rcv.quick != 0 && !self.in_pingpong()
    }

    /// `tcp_incr_quickack` (net/ipv4/tcp_input.c): up to `max` quick ACKs,
    /// as many as half the window holds segments of `rcv_mss` (2 if none).
    pub(crate) fn incr_quickack(&mut self, max: u32) {
        let mut q = self.rcv.rcv_wnd / (2 * self.rcv.rcv_mss.max(1));
        if q == 0 {
            q = 2;
        }
        q = q.min(max);
        if q > self.rcv.quick {
            self.rcv.quick = q;
        }
    }

    /// `tcp_enter_quickack_mode` (net/ipv4/tcp_input.c).
    pub(crate) fn enter_quickack_mode(&mut self, max: u32) {
        self.incr_quickack(max);
        self.rcv.pingpong = 0;
        self.rcv.ato = TCP_ATO_MIN;
    }

    /// `tcp_send_delayed_ack` (net/ipv4/tcp_output.c): arm the delayed-ACK
    /// timer for `ato`, bounded on loopback by `TCP_DELACK_MIN` (the bound
    /// `max(srtt, TCP_DELACK_MIN)`, srtt being microseconds) and by
    /// `tcp_delack_max` (`min(TCP_DELACK_MAX, rto_min - 1 jiffy)`); a timer
    /// already armed is never postponed, and one about to fire (within a
    /// quarter of `ato`) makes the ACK go now.
    pub(crate) fn send_delayed_ack(&mut self, ctx: &mut Ctx<'_>) {
        // max_ato: HZ/2, or TCP_DELACK_MAX in pingpong / PUSHED, then at
        // most max(srtt, TCP_DELACK_MIN) (TCP_DELACK_MIN on lo) and
        // tcp_delack_max: together, `delack_bound`.
        let ato = self.rcv.ato.min(self.timers.delack_bound);
        let now = ctx.now();
        let deadline = now + ato;
        if let Timer::At(t) = self.timers.delack_timer {
            if t <= now + ato / 4 {
                self.send_ack(ctx);
                return;
            }
            if t <= deadline {
                // Armed no later: it stays (never postponed).
                self.rcv.ack_pending = true;
                return;
            }
        }
        self.rcv.ack_pending = true;
        self.register_timer(ctx.ns, deadline, now, ato);
        self.timers.delack_timer = Timer::At(deadline);
    }

    /// Schedules an ACK for later without the delayed-ACK estimator (data
    /// discarded after `SHUT_RD`).
    #[inline]
    pub(crate) fn schedule_delack(&mut self, ctx: &mut Ctx<'_>) {
        self.rcv.ack_pending = true;
        if self.timers.delack_timer == Timer::Off {
            self.timers.delack_timer = self.arm(ctx, TCP_DELACK_MIN);
        }
    }

    /// Wakes the reader (`sk_data_ready`).
    #[inline]
    pub(crate) fn data_ready(&mut self) {
        self.rx_waiters.wake_all();
    }

    /// Wakes the writer (`sk_write_space`).
    #[inline]
    pub(crate) fn write_space(&mut self) {
        self.tx_waiters.wake_all();
    }

    /// Drops `n` acknowledged bytes from the front of the send queue, and
    /// their charge from the namespace's memory (`sk_wmem_free_skb`).
    pub(crate) fn sendq_consume(&mut self, ns: &NsInner, mut n: usize) {
        let before = self.wmem_queued();
        self.snd.sendq_bytes -= n;
        while n > 0 {
            let Some(front) = self.snd.sendq.front_mut() else {
                break;
            };
            if front.data.len() <= n {
                n -= front.data.len();
                let skbs = front.skbs as usize;
                self.snd.sendq.pop_front();
                self.snd.skbs = self.snd.skbs.saturating_sub(skbs);
            } else {
                front.data.advance(n);
                n = 0;
            }
        }
        ns.mem_sub(before - self.wmem_queued());
    }

    /// `tcp_done`: the connection is over. Unhash, release the port, purge
    /// what can no longer be sent, stop timers, wake everyone.
    pub(crate) fn tcp_done(&mut self, ns: &NsInner) {
        self.set_state(ns, TcpState::Close);
        self.unhash(ns);
        self.shut.rcv_shutdown = true;
        self.shut.snd_shutdown = true;
        // What is still queued goes, and its charge with it (nothing, on
        // a connection that ended cleanly).
        let n = self.snd.sendq_bytes;
        if n != 0 {
            self.sendq_consume(ns, n);
        }
        // Nothing to do for an empty queue (its byte count is then 0), whose
        // clear() would still walk its (empty) slices.
        if !self.rcv.ofo.is_empty() {
            ns.mem_sub(self.rcv.ofo_bytes);
            self.rcv.ofo_bytes = 0;
            self.rcv.ofo.clear();
        }
        if self.orphan {
            self.purge_recvq(ns);
            ns.socks.orphan.fetch_sub(1, Relaxed);
            // An orphan is counted once; make the decrement idempotent.
            self.orphan = false;
            self.rx_waiters.clear();
            self.tx_waiters.clear();
        }
        self.timers.rto_timer = Timer::Off;
        self.timers.delack_timer = Timer::Off;
        self.timers.keepalive_timer = Timer::Off;
        sk_stop_timers(ns, self.id, &mut self.timers.timer_registered);
        self.data_ready();
        self.write_space();
    }

    /// Removes the socket from the lookup tables, and from the bind table
    /// unless `bind()` gave it its port: as `tcp_set_state(TCP_CLOSE)` calls
    /// `inet_put_port` only without `SOCK_BINDPORT_LOCK`, such a port stays
    /// the socket's until `close()` (which clears the lock first).
    pub(crate) fn unhash(&mut self, ns: &NsInner) {
        let put_port = self.bound && !self.bindport_lock;
        if !self.hashed && !put_port {
            return;
        }
        let mut t = write(&ns.tables);
        if self.hashed {
            if self.listen.listener {
                if let Some(v) = t.lhash.get_mut(&self.local.port()) {
                    v.retain(|l| l.sk.id != self.id);
                    if v.is_empty() {
                        t.lhash.remove(&self.local.port());
                    }
                }
            } else {
                t.ehash.remove(&(self.local, self.remote));
            }
            self.hashed = false;
            ns.socks.inuse.fetch_sub(1, Relaxed);
        }
        if put_port {
            t.bhash_remove(self.local.port(), self.id);
            self.bound = false;
        }
    }

    /// The socket as `ss -tan` shows it (`tcp_diag_get_info`,
    /// `inet_sk_diag_fill`); `None` if it is in no table (closed, or only
    /// bound).
    pub(crate) fn sock_info(&self, now: Instant) -> Option<SockInfo> {
        if self.state == TcpState::Close || !self.hashed {
            return None;
        }
        let local = self.user_addr(self.local);
        let (recv_q, send_q, peer) = if self.state == TcpState::Listen {
            let any = match local.ip() {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            };
            (
                self.listen.accept_queue.len() as u64,
                u64::from(self.listen.max_ack_backlog),
                SocketAddr::new(any, 0),
            )
        } else if self.state == TcpState::SynRecv && self.listen.parent.is_some() {
            // A request sock: ss shows 0 and 0.
            (0, 0, self.user_addr(self.remote))
        } else {
            // rcv_nxt - copied_seq and write_seq - snd_una, with SYN and FIN
            // counted as Linux's sequence space counts them.
            let unread_fin = u64::from(self.shut.fin_rcvd && !self.shut.fin_copied);
            let unacked = self
                .snd
                .write_seq
                .wrapping_add(u32::from(self.snd.fin_queued))
                .wrapping_sub(self.snd.snd_una);
            (
                self.rcv.recvq_bytes as u64 + unread_fin,
                u64::from(unacked),
                self.user_addr(self.remote),
            )
        };
        let left = |t: Timer, period: Duration| match t {
            Timer::Off => None,
            Timer::At(d) => Some(d.saturating_duration_since(now)),
            // Due one period after the registration fires.
            Timer::Pending => Some(
                self.timers
                    .timer_registered
                    .when()
                    .map_or(Duration::ZERO, |r| r.saturating_duration_since(now))
                    + period,
            ),
        };
        let timer = if self.state == TcpState::FinWait2 && self.orphan {
            left(self.timers.rto_timer, self.timers.fin_timeout).map(|expires| SockTimer {
                kind: TimerKind::TimeWait,
                expires,
                retrans: 0,
            })
        } else if self.timers.probing {
            left(self.timers.rto_timer, self.rto()).map(|expires| SockTimer {
                kind: TimerKind::Persist,
                expires,
                retrans: self.timers.backoff,
            })
        } else {
            left(self.timers.rto_timer, self.rto()).map(|expires| SockTimer {
                kind: TimerKind::On,
                expires,
                retrans: self.timers.retransmits,
            })
        };
        Some(SockInfo {
            netid: Netid::Tcp,
            state: self.state,
            recv_q,
            send_q,
            local,
            peer,
            inode: self.id,
            timer,
        })
    }

    pub(crate) fn purge_recvq(&mut self, ns: &NsInner) {
        // As for the out-of-order queue in tcp_done.
        if !self.rcv.recvq.is_empty() {
            ns.mem_sub(self.rcv.recvq_bytes);
            self.rcv.recvq_bytes = 0;
            self.rcv.recvq.clear();
        }
    }
}
