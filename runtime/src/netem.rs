//! Faults on the modeled `lo`: the `netem` qdisc (`tc qdisc add dev lo root
//! netem delay 20ms loss 5%`), per namespace, with rules that pick the
//! packets they apply to, plus the two faults that are not about packets in
//! flight: a listener whose accept queue is full, and an RST injected into a
//! live connection. The accept-queue fault is an entry in the accept
//! queue's own hook (`AcceptqFull`, inet_connection_sock.rs), which the
//! listener's SYN handling asks; this module only adds and removes it.
//!
//! # Where it sits
//! `lo` has the `noqueue` qdisc; a fault installs a root qdisc in its place.
//! `dev_queue_xmit` (loopback.rs) reads one flag, `lo.netem_on`, and when a
//! rule is installed hands the packet to [`netem_enqueue`] instead of
//! transmitting it at once. As with Linux's netem, the qdisc comes before
//! the driver and its packet taps: a packet netem drops never reaches a
//! capture, a delayed one is captured when it leaves the qdisc.
//!
//! # What a rule does to a packet it matches (`netem_enqueue`)
//! The newest rule whose [`Match`] covers the packet decides (so a partition
//! added on top of a lossy link cuts it, and lifting it brings the lossy link
//! back), in netem's order:
//! 1. partition: the packet is dropped;
//! 2. loss: dropped with the rule's probability;
//! 3. the time to send: now + delay ± jitter (uniform; jitter can reorder,
//!    as netem's does); with the reorder probability the packet is sent at
//!    once instead (it jumps the queue, netem's `reorder`); with a rate, it
//!    also waits for the packets before it to be serialised at that rate
//!    (headers included), netem's `rate`;
//! 4. due now and nothing queued before it: transmitted at once; else it
//!    waits in the time-sorted queue (`tfifo`), at most `limit` packets
//!    (netem's default 1000; past it the packet is dropped).
//!
//! Queued packets leave when the namespace's netem timer fires (ksoftirqd.rs,
//! or the namespace's [`Clock`](crate::Clock) driver, so under a paused tokio
//! clock a 20 ms delay takes no real time).
//!
//! Randomness is a per-rule xorshift generator with a seed (settable), so a
//! test sees the same losses on every run with the same traffic.
//!
//! # Invalid parameters
//! The builders take any value; [`Netns::add_fault`](crate::Netns::add_fault)
//! checks the fault ([`Fault::validate`]) and refuses one that `tc` would
//! refuse, with `InvalidInput`: a probability that is NaN or outside
//! 0.0..=1.0, a delay or jitter over an hour ([`Fault::MAX_DELAY`]). Nothing
//! is clamped: a mistyped `loss(5.0)` (meant as 5 %) is an error the test
//! sees, not a silent 100 % loss.

use crate::ctx::Ctx;
use crate::ksoftirqd::netem_timer;
use crate::netns::NsInner;
use crate::skbuff::{proto, SkBuff};
use crate::stats::{NetemQdisc, Qdisc};
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::sync::{lock, read};
use crate::sync::{Mutex, MutexGuard, Weak};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// netem's default queue limit, in packets.
pub const NETEM_LIMIT: usize = 1000;

/// Which packets a fault applies to: the `tc filter` (a u32 match on
/// addresses and ports) that sends them to the netem qdisc.
///
/// A packet matches when its addresses and ports satisfy every part given.
/// [`Match::between`] and [`Match::port`] match both directions, so a
/// connection is affected whole (data and ACKs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Match {
    ips: Option<(IpAddr, IpAddr)>,
    port: Option<u16>,
}

impl Match {
    /// Every packet of the namespace.
    pub fn all() -> Match {
        Match::default()
    }

    /// Packets between two addresses, either way (`a` to `b` and `b` to `a`).
    pub fn between(a: IpAddr, b: IpAddr) -> Match {
        Match {
            ips: Some((a, b)),
            port: None,
        }
    }

    /// Packets to or from `port` (a server's port: its connections, both
    /// ways).
    pub fn port(port: u16) -> Match {
        Match {
            ips: None,
            port: Some(port),
        }
    }

    /// Narrows the match to packets to or from `port` as well.
    pub fn and_port(mut self, port: u16) -> Match {
        self.port = Some(port);
        self
    }

    /// Whether a packet from `src` to `dst` matches.
    pub fn matches(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        if let Some((a, b)) = self.ips {
            let (s, d) = (src.ip(), dst.ip());
            if !((s == a && d == b) || (s == b && d == a)) {
                return false;
            }
        }
        if let Some(p) = self.port {
            if src.port() != p && dst.port() != p {
                return false;
            }
        }
        true
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ips, self.port) {
            (None, None) => f.write_str("all"),
            (Some((a, b)), None) => write!(f, "{a} <-> {b}"),
            (None, Some(p)) => write!(f, "port {p}"),
            (Some((a, b)), Some(p)) => write!(f, "{a} <-> {b} port {p}"),
        }
    }
}

/// What happens to the packets a rule matches: netem's parameters.
///
/// ```
/// use lonet_runtime::fault::Fault;
/// use std::time::Duration;
/// // tc qdisc add dev lo root netem delay 20ms 5ms loss 5% rate 8mbit
/// let f = Fault::new()
///     .delay(Duration::from_millis(20))
///     .jitter(Duration::from_millis(5))
///     .loss(0.05)
///     .rate(1_000_000);
/// assert_eq!(f.to_string(), "delay 20ms 5ms loss 5% rate 1000000Bps limit 1000");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    delay: Duration,
    jitter: Duration,
    loss: f64,
    reorder: f64,
    rate: Option<u64>,
    partition: bool,
    limit: usize,
    seed: u64,
}

impl Default for Fault {
    fn default() -> Self {
        Fault::new()
    }
}

impl Fault {
    /// A fault that does nothing yet: add its parts with the builders.
    pub fn new() -> Fault {
        Fault {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            rate: None,
            partition: false,
            limit: NETEM_LIMIT,
            seed: 0x5eed_1057_u64,
        }
    }

    /// A partition: every matched packet vanishes (SYNs, data, ACKs, FINs),
    /// so connects time out and established connections stall until the
    /// fault is lifted, then recover by retransmission.
    pub fn partition() -> Fault {
        Fault {
            partition: true,
            ..Fault::new()
        }
    }

    /// Adds a fixed one-way delay to each matched packet (netem `delay`), at
    /// most [`Fault::MAX_DELAY`].
    pub fn delay(mut self, d: Duration) -> Fault {
        self.delay = d;
        self
    }

    /// Varies the delay uniformly by up to `j` either way (netem's jitter).
    /// As with netem, jitter can reorder packets. Delay and jitter together
    /// are at most [`Fault::MAX_DELAY`].
    pub fn jitter(mut self, j: Duration) -> Fault {
        self.jitter = j;
        self
    }

    /// Drops each matched packet with probability `p` (0.0 to 1.0; netem
    /// `loss`). TCP retransmits: the application still gets every byte.
    /// Another value (NaN, negative, above 1) makes
    /// [`Netns::add_fault`](crate::Netns::add_fault) refuse the fault.
    pub fn loss(mut self, p: f64) -> Fault {
        self.loss = p;
        self
    }

    /// Sends each matched packet at once with probability `p`, ahead of
    /// the delayed ones (netem `reorder`; needs a delay to have an effect).
    /// Another value than 0.0 to 1.0 makes
    /// [`Netns::add_fault`](crate::Netns::add_fault) refuse the fault.
    pub fn reorder(mut self, p: f64) -> Fault {
        self.reorder = p;
        self
    }

    /// Limits the matched traffic to `bytes_per_sec` (netem `rate`): each
    /// packet takes its length (IP headers included) over the rate to leave.
    /// Zero means no limit.
    pub fn rate(mut self, bytes_per_sec: u64) -> Fault {
        self.rate = (bytes_per_sec > 0).then_some(bytes_per_sec);
        self
    }

    /// The most packets held in the queue at once (netem `limit`, default
    /// 1000); past it a packet is dropped.
    pub fn limit(mut self, packets: usize) -> Fault {
        self.limit = packets.max(1);
        self
    }

    /// The seed of the rule's random generator (loss, jitter, reorder), for
    /// a different but repeatable sequence.
    pub fn seed(mut self, seed: u64) -> Fault {
        self.seed = seed;
        self
    }
}

impl Fault {
    /// The longest delay plus jitter a fault may add: one hour (`tc`'s own
    /// limit is about 71 minutes, 2³² µs).
    pub const MAX_DELAY: Duration = Duration::from_secs(3600);

    /// Checks the parameters as `tc` would: probabilities within 0.0..=1.0
    /// (not NaN), delay plus jitter at most [`Fault::MAX_DELAY`].
    /// [`Netns::add_fault`](crate::Netns::add_fault) calls it and installs
    /// nothing on an error.
    ///
    /// ```
    /// use lonet_runtime::fault::Fault;
    /// assert!(Fault::new().loss(0.05).validate().is_ok());
    /// let e = Fault::new().loss(5.0).validate().unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    /// assert!(Fault::new().reorder(f64::NAN).validate().is_err());
    /// ```
    pub fn validate(&self) -> io::Result<()> {
        let bad = |m: String| Err(io::Error::new(io::ErrorKind::InvalidInput, m));
        for (name, p) in [("loss", self.loss), ("reorder", self.reorder)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!(
                    "fault: {name} probability must be within 0.0..=1.0, got {p}"
                ));
            }
        }
        let total = self.delay.checked_add(self.jitter);
        if total.is_none_or(|t| t > Fault::MAX_DELAY) {
            return bad(format!(
                "fault: delay {:?} plus jitter {:?} is over the maximum of {:?}",
                self.delay,
                self.jitter,
                Fault::MAX_DELAY
            ));
        }
        Ok(())
    }
}

fn fmt_dur(d: Duration) -> String {
    if d.subsec_micros() % 1000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

impl fmt::Display for Fault {
    /// In `tc qdisc ... netem` words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.partition {
            parts.push("loss 100% (partition)".to_string());
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            let mut s = format!("delay {}", fmt_dur(self.delay));
            if !self.jitter.is_zero() {
                s.push_str(&format!(" {}", fmt_dur(self.jitter)));
            }
            parts.push(s);
        }
        if self.loss > 0.0 {
            parts.push(format!("loss {}%", self.loss * 100.0));
        }
        if self.reorder > 0.0 {
            parts.push(format!("reorder {}%", self.reorder * 100.0));
        }
        if let Some(r) = self.rate {
            parts.push(format!("rate {r}Bps"));
        }
        parts.push(format!("limit {}", self.limit));
        f.write_str(&parts.join(" "))
    }
}

/// Counters of a rule, as `tc -s qdisc` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Packets the rule matched.
    pub matched: u64,
    /// Packets sent on (at once or after their delay).
    pub sent_packets: u64,
    /// Bytes sent on (IP packet lengths).
    pub sent_bytes: u64,
    /// Packets dropped (loss, partition, queue limit).
    pub dropped: u64,
    /// Packets dropped because the queue was at its limit.
    pub overlimits: u64,
    /// Packets sent ahead of the queue by `reorder`.
    pub reordered: u64,
    /// Packets waiting in the queue now.
    pub backlog_packets: u64,
    /// Bytes waiting in the queue now.
    pub backlog_bytes: u64,
}

/// One installed rule: `tc qdisc ... netem` with a filter.
struct Rule {
    id: u64,
    matcher: Match,
    fault: Fault,
    rng: u64,
    /// With a rate: when the link is free again (netem's `last` packet's
    /// time to send).
    link_free: Option<Instant>,
    stats: FaultStats,
}

impl Rule {
    /// xorshift64*: a uniform value in [0, 1).
    fn uniform(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A queued packet: which rule holds it (for the backlog counters).
struct Held {
    rule: u64,
    skb: SkBuff,
}

/// The qdisc state of one namespace.
#[derive(Default)]
pub(crate) struct NetemState {
    rules: Vec<Rule>,
    /// `tfifo`: packets by (time to send, arrival order).
    queue: BTreeMap<(Instant, u64), Held>,
    seq: u64,
    /// The deadline the namespace timer was last asked for.
    armed: Option<Instant>,
}

/// The netem part of a namespace (its `netem` field).
#[derive(Default)]
pub(crate) struct Netem {
    state: Mutex<NetemState>,
    ids: AtomicU64,
}

impl Netem {
    fn lock(&self) -> MutexGuard<'_, NetemState> {
        lock(&self.state)
    }
}

/// What `netem_enqueue` did with a packet.
pub(crate) enum Verdict {
    /// Send it now (it is given back).
    Xmit(SkBuff),
    /// Dropped or queued: nothing to send now.
    Consumed,
}

/// `netem_enqueue`: decide the fate of a packet leaving on `lo`.
pub(crate) fn netem_enqueue(ctx: &mut Ctx<'_>, skb: SkBuff) -> Verdict {
    let ns = ctx.ns;
    let mut st = ns.netem.lock();
    // Packets no rule matches pass at once (the filter sends them to a
    // class without netem).
    let Some(idx) = st
        .rules
        .iter()
        .rposition(|r| r.matcher.matches(skb.saddr, skb.daddr))
    else {
        return Verdict::Xmit(skb);
    };
    let len = skb.ip_len() as u64;
    let now = ctx.now();
    let queued = st.queue.len();
    let rule = &mut st.rules[idx];
    rule.stats.matched += 1;
    let f = rule.fault;
    if f.partition || (f.loss > 0.0 && rule.uniform() < f.loss) {
        rule.stats.dropped += 1;
        crate::trace::kevent_skb!(
            "kfree_skb",
            ns,
            skb,
            reason = if f.partition {
                "netem_partition"
            } else {
                "netem_loss"
            }
        );
        return Verdict::Consumed;
    }
    if queued >= f.limit {
        rule.stats.dropped += 1;
        rule.stats.overlimits += 1;
        crate::trace::kevent_skb!("kfree_skb", ns, skb, reason = "netem_limit");
        return Verdict::Consumed;
    }
    // `validate` bounds delay and jitter; saturate anyway, the datapath
    // must not panic on a clock near its end.
    let later = |t: Instant, d: Duration| t.checked_add(d).unwrap_or(t);
    let mut when = later(now, f.delay);
    if !f.jitter.is_zero() {
        let j = f.jitter.as_nanos() as f64 * (2.0 * rule.uniform() - 1.0);
        when = if j >= 0.0 {
            later(when, Duration::from_nanos(j as u64))
        } else {
            when.checked_sub(Duration::from_nanos((-j) as u64))
                .unwrap_or(now)
                .max(now)
        };
    }
    if f.reorder > 0.0 && !f.delay.is_zero() && rule.uniform() < f.reorder {
        rule.stats.reordered += 1;
        when = now;
    } else if let Some(rate) = f.rate {
        // netem's rate: serialised after the packets before it.
        let start = rule.link_free.map_or(when, |free| free.max(when));
        let tx = len as u128 * 1_000_000_000 / rate as u128;
        when = later(
            start,
            Duration::from_nanos(u64::try_from(tx).unwrap_or(u64::MAX)),
        );
        rule.link_free = Some(when);
    }
    let id = rule.id;
    if when <= now && st.queue.is_empty() {
        let rule = &mut st.rules[idx];
        rule.stats.sent_packets += 1;
        rule.stats.sent_bytes += len;
        return Verdict::Xmit(skb);
    }
    crate::trace::kevent_skb!(
        "netem_enqueue",
        ns,
        skb,
        delay_us = when.saturating_duration_since(now).as_micros() as u64
    );
    let rule = &mut st.rules[idx];
    rule.stats.backlog_packets += 1;
    rule.stats.backlog_bytes += len;
    st.seq += 1;
    let seq = st.seq;
    st.queue.insert((when, seq), Held { rule: id, skb });
    let first = st.queue.keys().next().map(|k| k.0);
    if let Some(first) = first {
        if st.armed.is_none_or(|a| first < a) {
            st.armed = Some(first);
            drop(st);
            netem_timer(ns, first);
        }
    }
    Verdict::Consumed
}

/// `netem_dequeue` on the namespace's netem timer: send every packet whose
/// time has come, and ask for the timer again for the next one. Returns the
/// next deadline.
pub(crate) fn netem_dequeue(ns: &NsInner, now: Instant) -> Option<Instant> {
    let mut due = Vec::new();
    let next = {
        let mut st = ns.netem.lock();
        while let Some(e) = st.queue.first_entry() {
            if e.key().0 > now {
                break;
            }
            due.push(e.remove());
        }
        for h in &due {
            let len = h.skb.ip_len() as u64;
            if let Some(r) = st.rules.iter_mut().find(|r| r.id == h.rule) {
                r.stats.backlog_packets -= 1;
                r.stats.backlog_bytes -= len;
                r.stats.sent_packets += 1;
                r.stats.sent_bytes += len;
            }
        }
        let next = st.queue.keys().next().map(|k| k.0);
        st.armed = next;
        refresh_flag(ns, &st);
        next
    };
    if !due.is_empty() {
        let mut ctx = Ctx::softirq(ns, 0);
        for h in due {
            crate::loopback::xmit_one(&mut ctx, h.skb);
        }
        ctx.local_bh_enable();
    }
    next
}

fn refresh_flag(ns: &NsInner, st: &NetemState) {
    let on = !st.rules.is_empty() || !st.queue.is_empty();
    ns.lo.netem_on.store(on, Relaxed);
}

/// Lifts the fault it was returned for when dropped (`tc qdisc del`).
/// Packets the fault already holds are still delivered at their time.
#[must_use = "the fault is lifted when the guard is dropped"]
pub struct FaultGuard {
    ns: Weak<NsInner>,
    id: u64,
}

impl FaultGuard {
    /// The rule's counters so far (all zero for an accept-queue fault).
    pub fn stats(&self) -> FaultStats {
        let Some(ns) = self.ns.upgrade() else {
            return FaultStats::default();
        };
        let st = ns.netem.lock();
        st.rules
            .iter()
            .find(|r| r.id == self.id)
            .map(|r| r.stats)
            .unwrap_or_default()
    }

    /// Lifts the fault now (the same as dropping the guard).
    pub fn lift(self) {}
}

impl fmt::Debug for FaultGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultGuard").field("id", &self.id).finish()
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        let Some(ns) = self.ns.upgrade() else { return };
        ns.acceptq_full.remove(self.id);
        let mut st = ns.netem.lock();
        st.rules.retain(|r| r.id != self.id);
        refresh_flag(&ns, &st);
    }
}

/// [`Netns::add_fault`](crate::Netns::add_fault).
pub(crate) fn add_fault(ns: &NsInner, on: Match, fault: Fault) -> io::Result<FaultGuard> {
    fault.validate()?;
    let id = ns.netem.ids.fetch_add(1, Relaxed) + 1;
    let mut st = ns.netem.lock();
    st.rules.push(Rule {
        id,
        matcher: on,
        fault,
        rng: fault.seed.max(1),
        link_free: None,
        stats: FaultStats::default(),
    });
    refresh_flag(ns, &st);
    Ok(FaultGuard {
        ns: ns.me.clone(),
        id,
    })
}

/// [`Netns::fill_accept_queue`](crate::Netns::fill_accept_queue).
pub(crate) fn fill_accept_queue(ns: &NsInner, addr: SocketAddr) -> FaultGuard {
    let id = ns.netem.ids.fetch_add(1, Relaxed) + 1;
    ns.acceptq_full.add(id, addr);
    FaultGuard {
        ns: ns.me.clone(),
        id,
    }
}

/// [`Netns::inject_rst`](crate::Netns::inject_rst).
pub(crate) fn inject_rst(ns: &NsInner, from: SocketAddr, to: SocketAddr) -> std::io::Result<()> {
    let sk = read(&ns.tables)
        .ehash
        .get(&(to, from))
        .cloned()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("inject_rst: no connection {to} <- {from}"),
            )
        })?;
    let seq = sk.lock().rcv.rcv_nxt;
    let rst = SkBuff {
        protocol: proto::TCP,
        saddr: from,
        daddr: to,
        seq,
        ack_seq: 0,
        flags: crate::skbuff::flags::RST,
        window: 0,
        mss: 0,
        ttl: 64,
        tos: 0,
        payload: bytes::Bytes::new(),
    };
    let mut ctx = Ctx::process(ns);
    crate::ip::ip_queue_xmit(&mut ctx, &mut None, rst)
}

/// [`Netns::qdisc`](crate::Netns::qdisc).
pub(crate) fn qdisc(ns: &NsInner) -> Qdisc {
    let st = ns.netem.lock();
    Qdisc {
        netem: st
            .rules
            .iter()
            .map(|r| NetemQdisc {
                matcher: r.matcher,
                fault: r.fault,
                stats: r.stats,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;

    #[test]
    fn test_qdisc_prints_what_tc_s_qdisc_prints() {
        let ns = Netns::new();
        let q = ns.qdisc();
        assert!(q.is_noqueue());
        assert_eq!(
            q.to_string(),
            "qdisc noqueue 0: root refcnt 2\n Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)\n backlog 0b 0p requeues 0\n"
        );
        let _a = ns
            .add_fault(
                Match::port(80),
                Fault::new().delay(Duration::from_millis(20)),
            )
            .unwrap();
        let _b = ns.add_fault(Match::all(), Fault::partition()).unwrap();
        let q = ns.qdisc();
        assert_eq!(q.netem.len(), 2);
        assert_eq!(q.netem[0].matcher, Match::port(80));
        assert_eq!(
            q.to_string(),
            "qdisc netem 8001: root refcnt 2 delay 20ms limit 1000 match port 80\n Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)\n backlog 0b 0p requeues 0\n\
             qdisc netem 8002: parent 1: refcnt 2 loss 100% (partition) limit 1000 match all\n Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)\n backlog 0b 0p requeues 0\n"
        );
    }
}
