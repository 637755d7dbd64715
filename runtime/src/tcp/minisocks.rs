//! TIME_WAIT (net/ipv4/tcp_minisocks.c, inet_timewait_sock.c).
//!
//! When the connection of the side that closed first reaches TIME_WAIT
//! (`tcp_time_wait`: FIN_WAIT2 gets the peer's FIN, or CLOSING gets the ACK
//! of our FIN), the full socket is released as `tcp_done` releases it (queues
//! purged, timers stopped, the application's handle sees CLOSE) and a small
//! [`TwSock`] (`struct tcp_timewait_sock`: the sequence numbers, the window,
//! the expiry) takes its place in the lookup for [`TCP_TIMEWAIT_LEN`], 60 s
//! ([`TwTables`], consulted when `ehash` has no socket for a 4-tuple). It
//! keeps the port, re-ACKs a retransmitted FIN (`tcp_timewait_state_process`),
//! lets a new SYN reopen the 4-tuple, and is counted by sockstat's `tw`, not
//! by `inuse` or `alloc`. At most `tcp_max_tw_buckets` exist; past that a
//! connection closes without TIME_WAIT (`TCPTimeWaitOverflow`).
//!
//! A `connect()` may take a TIME_WAIT 4-tuple over: the ephemeral port search
//! when `tcp_tw_reuse` allows (2, the default: loopback addresses only), a
//! socket bound to an explicit port always (Linux's `__inet_check_established`
//! without a `twp`, given timestamps, which loopback always negotiates). A
//! `bind()` to a port held by TIME_WAIT entries conflicts unless both the new
//! socket and the one that left the entry set `SO_REUSEADDR`.
//!
//! Deliberate differences from Linux:
//! - Expiry is lazy, so that entries cost no timer and never keep `ksoftirqd`
//!   alive: a lookup that finds an expired entry treats it as gone, and
//!   expired entries are swept (one pass over the entries, at most once a
//!   second) when a connection enters TIME_WAIT, connects or binds, when
//!   `ksoftirqd` runs, and when the tables are read (`sockstat`, `sockets`).
//!   Until then an expired entry still holds its memory (it is invisible
//!   otherwise).
//! - The model has no TCP timestamps, so no PAWS: a SYN (without ACK) for a
//!   TIME_WAIT 4-tuple always reopens it (with timestamps Linux accepts all
//!   but old duplicates), and `tcp_tw_reuse` takes effect at once, without
//!   Linux's `tcp_tw_reuse_delay` (1 s since the entry was created).
//! - Out-of-window segments are ACKed without `tcp_invalid_ratelimit`.
//!
//! An orphan (a closed socket) whose FIN was acknowledged becomes an entry
//! too, in substate FIN_WAIT2, for `tcp_fin_time` (`tcp_fin_timeout`, 60 s):
//! the peer's FIN turns it into TIME_WAIT proper, new data or a SYN is
//! answered with RST, as Linux's `tcp_timewait_state_process` does.

use super::output::tcp_v4_timewait_ack;
use super::TcpSock;
use crate::ctx::Ctx;
use crate::inet_hashtables::{addr_overlap, BindKind, FxBuild, Tables};
use crate::netns::NsInner;
use crate::skbuff::{flags, SkBuff};
use crate::stats::inc;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{read, write};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// `TCP_TIMEWAIT_LEN`: how long an entry stays, 60 s (a constant in
/// include/net/tcp.h, not a sysctl).
pub(crate) const TCP_TIMEWAIT_LEN: Duration = Duration::from_secs(60);
const TCP_TIMEWAIT_LEN_MS: u64 = TCP_TIMEWAIT_LEN.as_secs() * 1000;
/// Expired entries are swept at most this often (ms); lookups see expiry
/// exactly in between.
const TW_SWEEP_MS: u64 = 1000;

/// A 4-tuple as `ehash` keys it: (local, remote), wire addresses.
pub(crate) type Key = (SocketAddr, SocketAddr);

/// `struct tcp_timewait_sock`, reduced to what TIME_WAIT needs (24 bytes; the
/// addresses are the key).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TwSock {
    /// When the entry expires, in ms of the namespace's clock
    /// ([`NsInner::ms`]).
    pub(crate) expires: u64,
    /// `tw_snd_nxt`: our FIN's sequence number + 1.
    pub(crate) snd_nxt: u32,
    /// `tw_rcv_nxt`: the peer's FIN's sequence number + 1.
    pub(crate) rcv_nxt: u32,
    /// `tw_rcv_wnd`: the window the ACKs carry.
    pub(crate) rcv_wnd: u32,
    /// Show the addresses as `::ffff:a.b.c.d` (`ss`).
    pub(crate) v6_mapped: bool,
    /// `tw_substate == TCP_FIN_WAIT2`: our FIN is acknowledged, the peer's
    /// has not come (an orphan's FIN_WAIT2).
    pub(crate) fin_wait2: bool,
    /// `tw_reuse`: the socket had `SO_REUSEADDR`.
    pub(crate) reuse: bool,
    /// The port was the socket's by `bind()` or its listener's, not picked
    /// by `connect()` (the kernel's bind bucket then has `fastreuse >= 0`,
    /// and `connect()`'s port search skips the port).
    pub(crate) from_bind: bool,
}

/// The ports TIME_WAIT entries hold (their share of the bind buckets): a
/// count per port in a flat array, allocated with the first entry (256 KiB
/// of zero pages; the port search walks ports in order, so the counts it
/// touches stay in cache), and apart, the few ports held for a `bind()`.
#[derive(Default)]
struct TwPorts {
    count: Vec<u32>,
    bound: HashMap<u16, u32, FxBuild>,
}

impl TwPorts {
    fn add(&mut self, port: u16, tw: &TwSock) {
        if self.count.is_empty() {
            self.count = vec![0; 1 << 16];
        }
        self.count[usize::from(port)] += 1;
        if tw.from_bind {
            *self.bound.entry(port).or_default() += 1;
        }
    }

    fn del(&mut self, port: u16, tw: &TwSock) {
        if let Some(c) = self.count.get_mut(usize::from(port)) {
            *c -= 1;
        }
        if tw.from_bind {
            if let Entry::Occupied(mut e) = self.bound.entry(port) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
    }

    fn used(&self, port: u16) -> bool {
        self.count.get(usize::from(port)).is_some_and(|&c| c > 0)
    }

    fn bound(&self, port: u16) -> bool {
        !self.bound.is_empty() && self.bound.contains_key(&port)
    }
}

/// A hasher for the (local port, peer port) pairs of one address pair: one
/// well-mixed word (splitmix64), since hashbrown takes bucket positions from
/// the low bits and tags from the top ones.
#[derive(Default, Clone, Copy)]
pub(crate) struct PairHasher(u64);

impl std::hash::Hasher for PairHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0 << 8 | u64::from(b);
        }
    }
    #[inline]
    fn write_u32(&mut self, x: u32) {
        let mut z = u64::from(x).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = z ^ (z >> 31);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// TIME_WAIT entries of one (local address, peer address), by (local port
/// << 16 | peer port).
type PortsMap = HashMap<u32, TwSock, std::hash::BuildHasherDefault<PairHasher>>;

/// (local address, peer address), hashed as one word for IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpPair(IpAddr, IpAddr);

impl std::hash::Hash for IpPair {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match (self.0, self.1) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                h.write_u64(u64::from(u32::from(a)) << 32 | u64::from(u32::from(b)))
            }
            (a, b) => {
                let bits = |ip: IpAddr| match ip {
                    IpAddr::V4(v) => u128::from(u32::from(v)),
                    IpAddr::V6(v) => u128::from(v),
                };
                h.write_u128(bits(a));
                h.write_u128(bits(b));
                h.write_u8(u8::from(a.is_ipv6()) << 1 | u8::from(b.is_ipv6()));
            }
        }
    }
}

#[inline]
fn split(key: &Key) -> (IpPair, u32) {
    (
        IpPair(key.0.ip(), key.1.ip()),
        u32::from(key.0.port()) << 16 | u32::from(key.1.port()),
    )
}

/// The namespace's TIME_WAIT entries (`tcp_death_row`), in [`Tables`].
///
/// Linux keeps them in `ehash` with the sockets; the model keeps them apart,
/// looked up when `ehash` has no socket for a 4-tuple, so the per-segment
/// lookup stays in a small table of live connections. They are filed by
/// address pair (a handful), then by port pair: 32-byte slots instead of
/// 88-byte ones keyed by the whole 4-tuple, so tens of thousands of entries
/// stay in a few hundred KiB (less memory, fewer cache misses when
/// `connect()` takes one over).
#[derive(Default)]
pub(crate) struct TwTables {
    /// The entries (`inet_ehash_bucket`'s timewait chains). An emptied map
    /// stays until the next sweep, so an address pair whose one entry is
    /// taken over and made again does not allocate each time.
    pairs: HashMap<IpPair, PortsMap, FxBuild>,
    /// The ports the entries hold.
    ports: TwPorts,
    /// The number of entries (`tw_refcount`, sockstat's `tw`).
    pub(crate) count: usize,
    /// No entry expires before this (a lower bound).
    next_expiry: u64,
    /// When the last sweep ran.
    last_sweep: u64,
    /// The sweep time last published to `NsInner::tw_sweep_at`.
    published: u64,
}

impl TwTables {
    /// The entry of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &Key) -> Option<&TwSock> {
        // No entry holds the local port: no entry has the 4-tuple (an
        // index read, where the maps would hash both pairs).
        if self.count == 0 || !self.ports.used(key.0.port()) {
            return None;
        }
        let (ips, ports) = split(key);
        self.pairs.get(&ips)?.get(&ports)
    }

    fn get_mut(&mut self, key: &Key) -> Option<&mut TwSock> {
        let (ips, ports) = split(key);
        self.pairs.get_mut(&ips)?.get_mut(&ports)
    }

    fn insert(&mut self, key: Key, tw: TwSock) -> Option<TwSock> {
        let (ips, ports) = split(&key);
        let old = match self.pairs.get_mut(&ips) {
            Some(m) => m.insert(ports, tw),
            None => self.pairs.entry(ips).or_default().insert(ports, tw),
        };
        if old.is_none() {
            self.count += 1;
        }
        old
    }

    fn remove(&mut self, key: &Key) -> Option<TwSock> {
        if self.count == 0 || !self.ports.used(key.0.port()) {
            return None;
        }
        let (ips, ports) = split(key);
        let tw = self.pairs.get_mut(&ips)?.remove(&ports)?;
        self.count -= 1;
        Some(tw)
    }

    /// Every entry, with its 4-tuple.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &TwSock)> + '_ {
        self.pairs.iter().flat_map(|(&IpPair(lip, pip), m)| {
            m.iter().map(move |(&ports, tw)| {
                let l = SocketAddr::new(lip, (ports >> 16) as u16);
                ((l, SocketAddr::new(pip, ports as u16)), tw)
            })
        })
    }
}

impl Tables {
    /// `inet_twsk_hashdance`: `tw` takes the place of the socket at `key`
    /// (which the caller removes from `ehash`).
    fn tw_hash(&mut self, key: Key, tw: TwSock) {
        let tws = &mut self.tw;
        tws.ports.add(key.0.port(), &tw);
        if tws.count == 0 || tw.expires < tws.next_expiry {
            tws.next_expiry = tw.expires;
        }
        if let Some(old) = tws.insert(key, tw) {
            tws.ports.del(key.0.port(), &old);
        }
    }

    /// `inet_twsk_kill`: removes the TIME_WAIT entry at `key`, if any.
    pub(crate) fn tw_kill(&mut self, key: &Key) -> Option<TwSock> {
        let tws = &mut self.tw;
        let tw = tws.remove(key)?;
        tws.ports.del(key.0.port(), &tw);
        Some(tw)
    }

    /// Removes every expired entry: one pass over the entries.
    fn tw_sweep(&mut self, now: u64) {
        let mut next = u64::MAX;
        let mut removed = 0;
        let tws = &mut self.tw;
        let ports = &mut tws.ports;
        tws.pairs.retain(|_, m| {
            m.retain(|&pp, tw| {
                if tw.expires <= now {
                    ports.del((pp >> 16) as u16, tw);
                    removed += 1;
                    false
                } else {
                    next = next.min(tw.expires);
                    true
                }
            });
            !m.is_empty()
        });
        tws.count -= removed;
        tws.next_expiry = next;
        tws.last_sweep = now;
    }

    /// Sweeps if an entry may have expired, at most once per `TW_SWEEP_MS`
    /// unless `force`.
    pub(crate) fn tw_sweep_if_due(&mut self, now: u64, force: bool) {
        if self.tw_expired(now) && (force || now >= self.tw.last_sweep + TW_SWEEP_MS) {
            self.tw_sweep(now);
        }
    }

    /// Whether an entry may have expired by `now`.
    pub(crate) fn tw_expired(&self, now: u64) -> bool {
        self.tw.count > 0 && now >= self.tw.next_expiry
    }

    /// Whether a TIME_WAIT entry of `port` keeps `bind(ip:port)` from
    /// succeeding (`inet_bind_conflict` with a timewait `sk2`): it overlaps
    /// and not both set `SO_REUSEADDR`. Rare enough to search the entries.
    pub(crate) fn tw_bind_conflict(
        &self,
        port: u16,
        ip: std::net::IpAddr,
        reuse: bool,
        now: u64,
    ) -> bool {
        if !self.tw.ports.used(port) {
            return false;
        }
        self.tw.iter().any(|(k, tw)| {
            k.0.port() == port
                && tw.expires > now
                && addr_overlap(k.0.ip(), ip)
                && !(reuse && tw.reuse)
        })
    }

    /// Whether TIME_WAIT entries hold `port` at all (`bind(0)` skips it).
    pub(crate) fn tw_port_used(&self, port: u16) -> bool {
        self.tw.ports.used(port)
    }

    /// Whether a TIME_WAIT entry holds `port` for a `bind()` (`connect()`'s
    /// port search skips it, as it skips a bucket with `fastreuse >= 0`).
    pub(crate) fn tw_port_bound(&self, port: u16) -> bool {
        self.tw.ports.bound(port)
    }
}

/// Tells `ksoftirqd` when the next sweep may find something.
pub(crate) fn tw_publish(ns: &NsInner, t: &mut Tables) {
    let at = if t.tw.count == 0 {
        u64::MAX
    } else {
        t.tw.next_expiry.max(t.tw.last_sweep + TW_SWEEP_MS)
    };
    if at != t.tw.published {
        t.tw.published = at;
        ns.tw_sweep_at.store(at, Relaxed);
    }
}

/// Sweeps every expired entry now, under the write lock only if there
/// may be one (for `sockstat` and `sockets`).
pub(crate) fn tw_purge(ns: &NsInner, now: u64) {
    let due = read(&ns.tables).tw_expired(now);
    if due {
        let mut t = write(&ns.tables);
        t.tw_sweep_if_due(now, true);
        tw_publish(ns, &mut t);
    }
}

/// The periodic sweep, from `ksoftirqd`: a load and a compare unless an
/// entry has expired.
pub(crate) fn tw_tick(ns: &NsInner, now: u64) {
    if now < ns.tw_sweep_at.load(Relaxed) {
        return;
    }
    let mut t = write(&ns.tables);
    t.tw_sweep_if_due(now, false);
    tw_publish(ns, &mut t);
}

/// `tcp_tw_reuse` allows `connect()`'s port search to take over this
/// TIME_WAIT 4-tuple (`tcp_twsk_unique` with a `twp`).
pub(crate) fn tw_reuse_allowed(sysctl: u8, key: &Key) -> bool {
    match sysctl {
        1 => true,
        // "enable for loopback traffic only": a loopback source or
        // destination (SO_BINDTODEVICE to lo is not modeled).
        2 => key.0.ip().is_loopback() || key.1.ip().is_loopback(),
        _ => false,
    }
}

/// The first sequence number of a connection that takes a TIME_WAIT
/// 4-tuple over: beyond anything the old one sent (`tw_snd_nxt + 65535 + 2`).
pub(crate) fn tw_isn(tw: &TwSock) -> u32 {
    match tw.snd_nxt.wrapping_add(65535 + 2) {
        0 => 1,
        isn => isn,
    }
}

impl TwSock {
    /// The state `ss` shows: the substate.
    pub(crate) fn state(&self) -> super::TcpState {
        if self.fin_wait2 {
            super::TcpState::FinWait2
        } else {
            super::TcpState::TimeWait
        }
    }
}

impl TcpSock {
    /// `tcp_time_wait(sk, TCP_TIME_WAIT, 0)`: the connection is over on our
    /// side; leave a TIME_WAIT entry in its place (unless
    /// `tcp_max_tw_buckets` are in use) and release the socket.
    pub(crate) fn time_wait(&mut self, ctx: &mut Ctx<'_>) {
        self.tcp_time_wait(ctx, false, TCP_TIMEWAIT_LEN);
    }

    /// `tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`: an orphan waiting for the
    /// peer's FIN leaves an entry in substate FIN_WAIT2 for `tmo`.
    pub(crate) fn fin_wait2_timewait(&mut self, ctx: &mut Ctx<'_>, tmo: Duration) {
        self.tcp_time_wait(ctx, true, tmo);
    }

    fn tcp_time_wait(&mut self, ctx: &mut Ctx<'_>, fin_wait2: bool, tmo: Duration) {
        let ns = ctx.ns;
        if self.hashed && !self.listen.listener {
            let now = ns.ms(ctx.now());
            let key = (self.local, self.remote);
            let port = self.local.port();
            let max = ns.hot.tcp_max_tw_buckets.load(Relaxed);
            let mut t = write(&ns.tables);
            let full = t.tw.count >= max;
            t.tw_sweep_if_due(now, full);
            let full = t.tw.count >= max;
            let id = self.id;
            if !full {
                // The entry takes the socket's place in the lookup (a hashed
                // socket owns its 4-tuple there) and its port.
                t.ehash.remove(&key);
                // The port goes to the entry: the socket's hold on it is
                // released here (under the same lock), and how it held it
                // says whether `bind()` made it.
                // A port given to bind() (SOCK_BINDPORT_LOCK) is also kept
                // by the socket until it is closed, as tcp_done leaves it.
                let from_bind = !self.bound
                    || self.bindport_lock
                    || t.bhash_remove(port, id)
                        .is_none_or(|k| k != BindKind::Connect);
                if !self.bindport_lock {
                    self.bound = false;
                }
                let tw = TwSock {
                    expires: now + tmo.as_millis() as u64,
                    fin_wait2,
                    snd_nxt: self.snd.snd_nxt,
                    rcv_nxt: self.rcv.rcv_nxt,
                    rcv_wnd: self.receive_window(),
                    v6_mapped: self.v6_mapped,
                    reuse: self.sk_reuse,
                    from_bind,
                };
                t.tw_hash(key, tw);
                self.hashed = false;
                ns.socks.inuse.fetch_sub(1, Relaxed);
                tw_publish(ns, &mut t);
                drop(t);
                inc(&ns.mib.tw);
            } else {
                drop(t);
                inc(&ns.mib.tcp_time_wait_overflow);
            }
        }
        self.tcp_done(ns);
    }
}

/// What a segment does to a TIME_WAIT entry (`enum tcp_tw_status`).
#[derive(Debug, PartialEq, Eq)]
enum TwStatus {
    /// Nothing to answer (`TCP_TW_SUCCESS`).
    Success,
    /// An in-window bare ACK: restart the 60 s, answer nothing.
    Reschedule,
    /// An in-window RST: the entry goes (TIME_WAIT assassination, RFC 1337,
    /// which Linux allows with `tcp_rfc1337 = 0`).
    Kill,
    /// Answer with an ACK (`TCP_TW_ACK`), restarting the 60 s if the
    /// segment had ACK set.
    Ack { reschedule: bool },
    /// A new SYN: a listener may take it, with this initial sequence number
    /// (`TCP_TW_SYN`).
    Syn(u32),
    /// Answer with RST and drop the entry (`TCP_TW_RST`).
    Rst,
    /// FIN_WAIT2 got the peer's FIN: TIME_WAIT proper, for 60 s, and ACK.
    Fin,
}

/// `tcp_in_window` (net/ipv4/tcp_minisocks.c).
fn tcp_in_window(seq: u32, end_seq: u32, s_win: u32, e_win: u32) -> bool {
    use super::{after, before};
    if seq == s_win {
        return true;
    }
    if after(end_seq, s_win) && before(seq, e_win) {
        return true;
    }
    seq == e_win && seq == end_seq
}

/// `tcp_timewait_state_process` (no PAWS): substate FIN_WAIT2 repeats
/// `tcp_rcv_state_process`'s checks; TIME_WAIT proper below.
fn tcp_timewait_state_process(tw: &TwSock, skb: &SkBuff) -> TwStatus {
    if tw.fin_wait2 {
        let end_seq = skb.seq.wrapping_add(skb.seq_len());
        if !tcp_in_window(
            skb.seq,
            end_seq,
            tw.rcv_nxt,
            tw.rcv_nxt.wrapping_add(tw.rcv_wnd),
        ) {
            return TwStatus::Ack { reschedule: false };
        }
        if skb.has(flags::RST) {
            return TwStatus::Kill;
        }
        if skb.has(flags::SYN) && !super::before(skb.seq, tw.rcv_nxt) {
            return TwStatus::Rst;
        }
        // A duplicate ACK.
        if !skb.has(flags::ACK) || !super::after(end_seq, tw.rcv_nxt) || end_seq == skb.seq {
            return TwStatus::Success;
        }
        // New data after the half-duplex close, or a FIN not at rcv_nxt: reset.
        if !skb.has(flags::FIN) || end_seq != tw.rcv_nxt.wrapping_add(1) {
            return TwStatus::Rst;
        }
        return TwStatus::Fin;
    }
    let (rst, syn, ack) = (
        skb.has(flags::RST),
        skb.has(flags::SYN),
        skb.has(flags::ACK),
    );
    let end_seq = skb.seq.wrapping_add(skb.seq_len());
    if skb.seq == tw.rcv_nxt && (skb.seq == end_seq || rst) {
        // In window: it may only be a reset or a bare ACK.
        return if rst {
            TwStatus::Kill
        } else {
            TwStatus::Reschedule
        };
    }
    // Out of window (a retransmitted FIN, data, an old ACK) is ACKed; the
    // exception is a new SYN, which Linux accepts when its sequence number
    // or timestamp is newer: with timestamps, any new connection's.
    if syn && !rst && !ack {
        return TwStatus::Syn(tw_isn(tw));
    }
    if !rst {
        return TwStatus::Ack { reschedule: ack };
    }
    TwStatus::Success
}

/// `tcp_v4_rcv`'s `do_time_wait`: a segment for the TIME_WAIT entry `tw`.
pub(crate) fn tcp_timewait_rcv(ctx: &mut Ctx<'_>, tw: TwSock, skb: SkBuff) {
    let ns = ctx.ns;
    let key = (skb.daddr, skb.saddr);
    let now = ns.ms(ctx.now());
    let reschedule = |key: &Key| {
        let mut t = write(&ns.tables);
        if let Some(e) = t.tw.get_mut(key) {
            e.expires = now + TCP_TIMEWAIT_LEN_MS;
        }
    };
    if tw.expires <= now {
        // Its timer would have fired: the entry is gone; look again.
        write(&ns.tables).tw_kill(&key);
        super::input::tcp_v4_rcv(ctx, skb);
        return;
    }
    match tcp_timewait_state_process(&tw, &skb) {
        TwStatus::Success => {}
        TwStatus::Reschedule => reschedule(&key),
        TwStatus::Kill => {
            write(&ns.tables).tw_kill(&key);
        }
        TwStatus::Ack { reschedule: r } => {
            if r {
                reschedule(&key);
            }
            tcp_v4_timewait_ack(ctx, key, &tw);
        }
        TwStatus::Rst => {
            write(&ns.tables).tw_kill(&key);
            super::output::tcp_v4_send_reset(ctx, &skb);
        }
        TwStatus::Fin => {
            let mut tw = tw;
            tw.fin_wait2 = false;
            tw.rcv_nxt = tw.rcv_nxt.wrapping_add(1);
            tw.expires = now + TCP_TIMEWAIT_LEN_MS;
            {
                let mut t = write(&ns.tables);
                if let Some(e) = t.tw.get_mut(&key) {
                    *e = tw;
                }
            }
            tcp_v4_timewait_ack(ctx, key, &tw);
        }
        TwStatus::Syn(isn) => {
            let listener = {
                let mut t = write(&ns.tables);
                let l = t.lookup_listener(Some(skb.saddr), skb.daddr);
                if l.is_some() {
                    t.tw_kill(&key);
                }
                l
            };
            match listener {
                Some(l) => super::input::tcp_conn_request(ctx, &l, skb, Some(isn)),
                None => tcp_v4_timewait_ack(ctx, key, &tw),
            }
        }
    }
}

#[cfg(test)]
impl Tables {
    /// Makes every entry expire now, as if 60 s had passed.
    pub(crate) fn tw_expire_all_for_test(&mut self) {
        for m in self.tw.pairs.values_mut() {
            for tw in m.values_mut() {
                tw.expires = 0;
            }
        }
        self.tw.next_expiry = 0;
        self.tw.last_sweep = 0;
    }
}
