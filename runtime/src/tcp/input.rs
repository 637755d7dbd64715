//! TCP input (net/ipv4/tcp_ipv4.c, tcp_input.c, tcp_minisocks.c).
//!
//! `tcp_v4_rcv` looks the segment up by 4-tuple in `ehash`, else finds a
//! listener (exact address, then wildcard), else answers with RST. A
//! listener's SYN creates a child in SYN_RECV (in `ehash`, counted against the
//! accept queue); the final ACK moves it to ESTABLISHED and onto the accept
//! queue, waking `accept`.

use super::minisocks::{tcp_timewait_rcv, TwSock};
use super::output::tcp_v4_send_reset;
use super::{after, before, OfoSeg, Sock, TcpSock, TcpState, Timer};
use crate::ctx::Ctx;
use crate::errno::{ECONNREFUSED, ECONNRESET, EPIPE};
use crate::skbuff::{flags, SkBuff};
use crate::stats::inc;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::Arc;
use crate::sync::{read, write};

/// `tcp_v4_rcv` (and `tcp_v6_rcv`: the model's demux is the same).
pub(crate) fn tcp_v4_rcv(ctx: &mut Ctx<'_>, mut skb: SkBuff) {
    let ns = ctx.ns;
    crate::trace::kevent_skb!("tcp_v4_rcv", ns, skb);
    // TCP_MIB_INSEGS, counted per CPU (`Ctx::in_segs`, see dev.rs).
    ctx.in_segs += 1;
    if skb.has(flags::RST) {
        inc(&ns.mib.in_rsts);
    }
    let found = {
        let t = read(&ns.tables);
        match t.ehash.lookup(&skb.daddr, &skb.saddr) {
            Some(sk) => Found::Sk(sk.clone()),
            // __inet_lookup_established's TIME_WAIT half, then listeners.
            None => match t.tw.get(&(skb.daddr, skb.saddr)) {
                Some(tw) => Found::Tw(*tw),
                None => Found::Listener(t.lookup_listener(Some(skb.saddr), skb.daddr)),
            },
        }
    };
    match found {
        Found::Sk(sk) => tcp_rcv(ctx, &sk, &mut skb),
        Found::Tw(tw) => tcp_timewait_rcv(ctx, tw, skb),
        Found::Listener(Some(l)) => tcp_conn_request(ctx, &l, skb, None),
        Found::Listener(None) => tcp_v4_send_reset(ctx, &skb),
    }
}

/// What `tcp_v4_rcv`'s lookup found.
enum Found {
    Sk(Arc<Sock>),
    Tw(TwSock),
    Listener(Option<Arc<Sock>>),
}

/// The listener's side of `tcp_v4_do_rcv`: a SYN makes a child
/// (`tcp_conn_request`); anything else with ACK is answered by RST.
///
/// Linux separates the SYN queue from the accept queue; the model collapses
/// them: a child counts against `min(backlog, somaxconn)` from its SYN on.
/// When the queue is full the SYN is dropped silently (`ListenOverflows`,
/// `ListenDrops`) and the client's SYN retransmission tries again.
///
/// `isn`: the SYN reopens a TIME_WAIT 4-tuple, and the child's sequence
/// numbers start there (`tcp_tw_isn`).
pub(crate) fn tcp_conn_request(ctx: &mut Ctx<'_>, l: &Arc<Sock>, skb: SkBuff, isn: Option<u32>) {
    let ns = ctx.ns;
    if skb.has(flags::RST) {
        return;
    }
    if skb.has(flags::ACK) {
        tcp_v4_send_reset(ctx, &skb);
        return;
    }
    if !skb.has(flags::SYN) {
        return;
    }
    let (nodelay, ttl, tos, v6_mapped, reuse, keepalive, linger, bufs) = {
        let mut lk = l.lock();
        if lk.state != TcpState::Listen {
            return;
        }
        // sk_acceptq_is_full: ack_backlog > max_ack_backlog, so backlog + 1 fit.
        // (A fault may make it look full: `Netns::fill_accept_queue`, through
        // inet_connection_sock.rs's `AcceptqFull`.)
        if lk.listen.accept_queue.len() as u32 + lk.listen.syn_recv_cnt > lk.listen.max_ack_backlog
            || ns.acceptq_full.covers(skb.daddr)
        {
            inc(&ns.mib.listen_overflows);
            inc(&ns.mib.listen_drops);
            return;
        }
        lk.listen.syn_recv_cnt += 1;
        (
            lk.opt.nodelay,
            lk.opt.ttl,
            lk.opt.tos,
            // An AF_INET6 listener's children are AF_INET6 (tcp_v6_syn_recv_sock
            // makes a v4-mapped child of an IPv4 SYN): a dual-stack one's, and
            // one bound to a v4-mapped address.
            lk.v6_mapped || (lk.local.is_ipv6() && skb.daddr.is_ipv4()),
            lk.sk_reuse,
            lk.opt.keepalive,
            lk.opt.linger,
            (
                lk.opt.sndbuf_lock.then_some(lk.snd.sndbuf),
                lk.opt.rcvbuf_lock.then_some(lk.rcv.rcvbuf),
            ),
        )
    };
    let Some(ns_arc) = ns.arc() else { return };
    let mtu = ns.lo.mtu.load(Relaxed);
    let child = Sock::new(&ns_arc, |c| {
        c.local = skb.daddr;
        c.remote = skb.saddr;
        c.v6_mapped = v6_mapped;
        c.listen.parent = Some(Arc::downgrade(l));
        c.opt.nodelay = nodelay;
        c.opt.ttl = ttl;
        // inet_csk_clone_lock copies inet->tos: the SYN-ACK and the
        // connection carry the listener's value.
        c.opt.tos = tos;
        c.opt.keepalive = keepalive;
        // sk_clone_lock copies SOCK_LINGER and sk_lingertime.
        c.opt.linger = linger;
        // sk_clone_lock: the listener's SO_SNDBUF/SO_RCVBUF and their locks.
        if let Some(b) = bufs.0 {
            c.opt.sndbuf_lock = true;
            c.snd.sndbuf = b;
        }
        if let Some(b) = bufs.1 {
            c.opt.rcvbuf_lock = true;
            c.rcv.rcvbuf = b;
        }
        c.sk_reuse = reuse;
        if let Some(isn) = isn {
            c.set_iss(isn);
        }
        c.init_from_syn(&skb);
        c.init_snd_after_syn();
        c.init_mss(mtu);
    });
    let mut c = child.lock();
    {
        // inet_ehash_nolisten → inet_ehash_insert: the child goes in only if
        // its 4-tuple is still free (another CPU may have made a socket for
        // the same SYN meanwhile); otherwise it is destroyed unseen.
        let mut t = write(&ns.tables);
        if !t.ehash.try_insert((c.local, c.remote), &child) {
            drop(t);
            drop(c);
            let mut lk = l.lock();
            lk.listen.syn_recv_cnt = lk.listen.syn_recv_cnt.saturating_sub(1);
            return;
        }
    }
    c.hashed = true;
    ns.socks.inuse.fetch_add(1, Relaxed);
    c.set_state(ns, TcpState::SynRecv);
    c.send_synack(ctx, false);
}

/// What must happen after the socket lock is released.
enum After {
    Nothing,
    /// The child reached ESTABLISHED: move it to the listener's accept queue.
    JoinParent,
    /// A half-open child died: give its slot back to the listener.
    LeaveParent,
}

/// `tcp_v4_do_rcv` → `tcp_rcv_state_process` for a socket found in `ehash`.
/// The skb stays where `tcp_v4_rcv` holds it (only its payload is taken,
/// by the receive queue), so no stage copies the header.
fn tcp_rcv(ctx: &mut Ctx<'_>, sk: &Arc<Sock>, skb: &mut SkBuff) {
    let mut g = sk.lock();
    let after = tcp_rcv_locked(ctx, &mut g, skb);
    let parent = g.listen.parent.clone();
    match after {
        After::Nothing => {}
        After::JoinParent => {
            g.listen.parent = None;
            drop(g);
            inet_csk_complete_hashdance(ctx, sk, parent.and_then(|p| p.upgrade()));
        }
        After::LeaveParent => {
            g.listen.parent = None;
            drop(g);
            if let Some(p) = parent.and_then(|p| p.upgrade()) {
                let mut pl = p.lock();
                pl.listen.syn_recv_cnt = pl.listen.syn_recv_cnt.saturating_sub(1);
            }
        }
    }
}

/// Puts an established child on its listener's accept queue and wakes
/// `accept`. If the listener is gone, the child is reset, as
/// `inet_csk_listen_stop` does for children it finds.
fn inet_csk_complete_hashdance(ctx: &mut Ctx<'_>, child: &Arc<Sock>, parent: Option<Arc<Sock>>) {
    if let Some(p) = parent {
        let mut pl = p.lock();
        pl.listen.syn_recv_cnt = pl.listen.syn_recv_cnt.saturating_sub(1);
        if pl.state == TcpState::Listen {
            pl.listen.accept_queue.push_back(child.clone());
            pl.data_ready();
            return;
        }
    }
    let mut c = child.lock();
    if c.state != TcpState::Close {
        c.orphan = true;
        ctx.ns.socks.orphan.fetch_add(1, Relaxed);
        c.send_active_reset(ctx);
        c.tcp_done(ctx.ns);
    }
}

fn tcp_rcv_locked(ctx: &mut Ctx<'_>, s: &mut TcpSock, skb: &mut SkBuff) -> After {
    let ns = ctx.ns;
    match s.state {
        TcpState::Close | TcpState::Listen | TcpState::TimeWait => {
            tcp_v4_send_reset(ctx, skb);
            return After::Nothing;
        }
        TcpState::SynSent => {
            tcp_rcv_synsent_state_process(ctx, s, skb);
            return After::Nothing;
        }
        _ => {}
    }

    // tcp_validate_incoming: RST inside the window resets the connection.
    if skb.has(flags::RST) {
        let in_window = skb.seq == s.rcv.rcv_nxt
            || (!before(skb.seq, s.rcv.rcv_nxt)
                && before(skb.seq, s.rcv.rcv_nxt.wrapping_add(s.rcv.rcv_wnd.max(1))));
        if !in_window {
            return After::Nothing;
        }
        if s.state == TcpState::SynRecv && s.listen.parent.is_none() {
            // The active side of a simultaneous open: connect() fails.
            s.set_state(ns, TcpState::SynSent);
            tcp_reset(ns, s);
            return After::Nothing;
        }
        if s.state == TcpState::SynRecv {
            // A reset request sock just goes away.
            inc(&ns.mib.attempt_fails);
            s.orphan = true;
            ns.socks.orphan.fetch_add(1, Relaxed);
            s.tcp_done(ns);
            return After::LeaveParent;
        }
        tcp_reset(ns, s);
        return After::Nothing;
    }
    let simultaneous_synack = s.state == TcpState::SynRecv
        && s.listen.parent.is_none()
        && skb.has(flags::SYN)
        && skb.has(flags::ACK)
        && skb.seq == s.rcv.irs
        && skb.ack_seq == s.snd.snd_nxt;
    if skb.has(flags::SYN) && !simultaneous_synack {
        if s.state == TcpState::SynRecv && skb.seq == s.rcv.irs {
            // The client retransmitted its SYN: answer again.
            s.send_synack(ctx, true);
        } else {
            // tcp_send_challenge_ack
            s.send_ack(ctx);
        }
        return After::Nothing;
    }
    if !skb.has(flags::ACK) {
        return After::Nothing;
    }

    let mut result = After::Nothing;
    if s.state == TcpState::SynRecv {
        if skb.ack_seq != s.snd.snd_nxt {
            tcp_v4_send_reset(ctx, skb);
            return After::Nothing;
        }
        // tcp_rcv_state_process, TCP_SYN_RECV: the handshake is complete.
        if s.listen.parent.is_some() {
            // tcp_create_openreq_child: the child exists from the third
            // ACK on, and is counted then.
            inc(&ns.mib.passive_opens);
        }
        s.snd.snd_una = skb.ack_seq;
        s.snd.snd_wnd = skb.window;
        s.snd.snd_wl1 = skb.seq;
        s.snd.max_window = s.snd.max_window.max(skb.window);
        s.finish_handshake(ctx);
        if s.listen.parent.is_some() {
            result = After::JoinParent;
        } else {
            // The active side of a simultaneous open: connect() completes.
            if simultaneous_synack {
                s.send_ack(ctx);
            }
            s.write_space();
        }
    }

    if !tcp_ack(ctx, s, skb) {
        return result;
    }
    if s.state == TcpState::Close {
        return result;
    }
    tcp_data_queue(ctx, s, skb);
    // tcp_data_snd_check: the ACK may have opened the window; only when
    // something waits to go out (`tcp_send_head`: unsent data, or the FIN).
    if s.state != TcpState::Close && (s.unsent() != 0 || s.snd.fin_queued) {
        s.write_xmit(ctx, false);
    }
    result
}

/// `tcp_rcv_synsent_state_process`: the client's side of the handshake.
fn tcp_rcv_synsent_state_process(ctx: &mut Ctx<'_>, s: &mut TcpSock, skb: &SkBuff) {
    let ns = ctx.ns;
    if skb.has(flags::ACK) && skb.ack_seq != s.snd.snd_nxt {
        if !skb.has(flags::RST) {
            tcp_v4_send_reset(ctx, skb);
        }
        return;
    }
    if skb.has(flags::RST) {
        if skb.has(flags::ACK) {
            // tcp_reset in SYN_SENT: ECONNREFUSED.
            tcp_reset(ns, s);
        }
        return;
    }
    if !skb.has(flags::SYN) {
        return;
    }
    if !skb.has(flags::ACK) {
        // Simultaneous open (RFC 793 §3.4; also how a socket connected to
        // its own address and port meets its own SYN): go to SYN_RECV and
        // answer with SYN-ACK; the peer's SYN-ACK completes it.
        s.init_from_syn(skb);
        s.set_state(ns, TcpState::SynRecv);
        s.send_synack(ctx, false);
        return;
    }
    s.init_from_syn(skb);
    s.snd.snd_una = skb.ack_seq;
    s.finish_handshake(ctx);
    s.send_ack(ctx);
    // connect() completes.
    s.write_space();
}

/// `tcp_reset`: a valid RST arrived. The error depends on the state, and is
/// reported once by the next call.
pub(crate) fn tcp_reset(ns: &crate::netns::NsInner, s: &mut TcpSock) {
    crate::trace::kevent!("tcp_receive_reset", ns = ns.id, local = %s.local, remote = %s.remote, state = ?s.state);
    s.err = match s.state {
        TcpState::SynSent => {
            inc(&ns.mib.attempt_fails);
            ECONNREFUSED
        }
        TcpState::CloseWait => EPIPE,
        TcpState::Close => return,
        _ => ECONNRESET,
    };
    s.tcp_done(ns);
}

/// `tcp_ack`: advance `snd_una`, take the window, free acknowledged bytes,
/// move the closing states on when our FIN is acknowledged, count duplicate
/// ACKs. Returns `false` when the segment must be dropped.
#[inline(always)]
fn tcp_ack(ctx: &mut Ctx<'_>, s: &mut TcpSock, skb: &SkBuff) -> bool {
    let ns = ctx.ns;
    let ack = skb.ack_seq;
    if after(ack, s.snd.snd_max) {
        // It acknowledges something never sent: answer and drop.
        s.send_ack(ctx);
        return false;
    }
    if before(ack, s.snd.snd_una) {
        // An old ACK: ignore it, the data may still be good.
        return true;
    }
    if s.opt.keepalive {
        // tp->rcv_tstamp; any ACK answers the keepalive probes.
        s.timers.rcv_tstamp = Some(ctx.now());
        s.timers.probes_out = 0;
    }
    if after(ack, s.snd.snd_nxt) {
        // After a go-back-N rewind, the peer had data we are resending.
        s.snd.snd_nxt = ack;
    }
    let old_wnd = s.snd.snd_wnd;
    // tcp_may_update_window: only a newer segment moves the window, so a
    // stale ACK (from another CPU's backlog) cannot close it.
    if after(ack, s.snd.snd_una)
        || after(skb.seq, s.snd.snd_wl1)
        || (skb.seq == s.snd.snd_wl1 && (skb.window > s.snd.snd_wnd || skb.window == 0))
    {
        s.snd.snd_wl1 = skb.seq;
        s.snd.snd_wnd = skb.window;
        s.snd.max_window = s.snd.max_window.max(skb.window);
    }
    let acked = ack.wrapping_sub(s.snd.snd_una);
    if acked > 0 {
        let data_end = if after(ack, s.snd.write_seq) {
            s.snd.write_seq
        } else {
            ack
        };
        let data_acked = data_end.wrapping_sub(s.snd.snd_una) as usize;
        s.sendq_consume(ns, data_acked.min(s.snd.sendq_bytes));
        s.snd.snd_una = ack;
        s.snd.dupacks = 0;
        s.timers.backoff = 0;
        s.timers.retransmits = 0;
        if s.snd.snd_una == s.snd.snd_nxt {
            s.timers.rto_timer = Timer::Off;
        } else {
            // tcp_rearm_rto: progress restarts the timer.
            s.timers.rto_timer = Timer::Off;
            s.arm_rto(ctx);
        }
        if s.unsent() > 0 {
            // tcp_cong_avoid in slow start (tcp_slow_start): the window grows
            // by the segments acknowledged while data waits. The model keeps
            // it only for sizing the send buffer.
            let segs = (data_acked as u32).div_ceil(s.eff_mss().max(1)) as usize;
            s.snd.snd_cwnd = s.snd.snd_cwnd.saturating_add(segs).min(1 << 16);
        }
        tcp_check_space(ns, s);
        let fin_acked = s.snd.fin_queued && ack == s.snd.write_seq.wrapping_add(1);
        if fin_acked {
            match s.state {
                TcpState::FinWait1 => {
                    s.set_state(ns, TcpState::FinWait2);
                    s.timers.rto_timer = Timer::Off;
                    // A FIN in the same segment takes it to TIME_WAIT (tcp_fin);
                    // data after close aborts it (tcp_data_queue).
                    s.arm_fin_wait2(ctx, !skb.has(flags::FIN) && skb.payload.is_empty());
                }
                TcpState::Closing => s.time_wait(ctx),
                TcpState::LastAck => s.tcp_done(ns),
                _ => {}
            }
            if s.state == TcpState::Close {
                return false;
            }
        }
    } else if skb.payload.is_empty()
        && !skb.has(flags::FIN)
        && skb.window == old_wnd
        && s.snd.snd_nxt != s.snd.snd_una
    {
        s.snd.dupacks += 1;
        if s.snd.dupacks == 3 {
            // Fast retransmit (NewReno without SACK): resend the first
            // unacknowledged segment; the receiver holds what followed it.
            s.retransmit_head(ctx);
        }
    }
    if s.timers.probing && s.snd.snd_wnd > 0 {
        s.timers.probing = false;
        s.timers.rto_timer = Timer::Off;
        s.timers.backoff = 0;
    }
    true
}

/// `tcp_check_space` → `tcp_new_space` (net/ipv4/tcp_input.c): when a writer
/// found the buffer full (`SOCK_NOSPACE`), grow the send buffer
/// (`tcp_should_expand_sndbuf`: not locked; the model has no memory
/// pressure) and wake the writer if the queue is down to two thirds
/// (`sk_stream_write_space`). The flag's test is inline; the rest, out of
/// line.
#[inline(always)]
fn tcp_check_space(ns: &crate::netns::NsInner, s: &mut TcpSock) {
    if s.snd.nospace {
        tcp_new_space(ns, s);
    }
}

/// [`tcp_check_space`] for a writer that found the buffer full.
#[inline(never)]
fn tcp_new_space(ns: &crate::netns::NsInner, s: &mut TcpSock) {
    s.sndbuf_expand(&ns.sysctl());
    if s.stream_writeable() {
        s.snd.nospace = false;
        s.write_space();
    }
}

/// `tcp_data_queue` + `tcp_fin` + `__tcp_ack_snd_check`.
///
/// In-order data goes to the receive queue; a segment beyond `rcv_nxt` waits
/// in the out-of-order queue (`tcp_data_queue_ofo`) and is answered with a
/// duplicate ACK; when the gap fills, what became contiguous follows it.
fn tcp_data_queue(ctx: &mut Ctx<'_>, s: &mut TcpSock, skb: &mut SkBuff) {
    let ns = ctx.ns;
    let fin = skb.has(flags::FIN);
    let payload = std::mem::take(&mut skb.payload);
    if payload.is_empty() && !fin {
        if before(skb.seq, s.rcv.rcv_nxt) {
            // A zero-window probe (tcp_xmit_probe_skb sends snd_una - 1):
            // answer with the current window.
            s.send_ack(ctx);
        }
        return;
    }
    let seq = skb.seq;
    let end = seq
        .wrapping_add(payload.len() as u32)
        .wrapping_add(u32::from(fin));
    if !after(end, s.rcv.rcv_nxt) {
        // Old (a retransmission): "force an immediate ACK"
        // (tcp_enter_quickack_mode, then the ACK).
        s.enter_quickack_mode(super::TCP_MAX_QUICKACKS);
        s.send_ack(ctx);
        return;
    }
    if after(seq, s.rcv.rcv_nxt) {
        tcp_data_queue_ofo(ctx, s, seq, payload, fin);
        s.send_ack(ctx);
        return;
    }
    let len = payload.len() as u32;
    let data = len > 0 && !s.orphan && !s.shut.rcv_shutdown;
    if data {
        tcp_event_data_recv(ctx, s, len, skb.flags);
    }
    if !tcp_queue_in_order(ctx, s, seq, payload, fin) {
        return;
    }
    if data && len >= 128 {
        // tcp_event_data_recv's tcp_grow_window, on the queue with the
        // segment in it.
        s.grow_window(len);
    }
    let mut filled_hole = false;
    while let Some(front) = s.rcv.ofo.front() {
        if after(front.seq, s.rcv.rcv_nxt) {
            break;
        }
        let Some(seg) = s.rcv.ofo.pop_front() else {
            break;
        };
        s.rcv.ofo_bytes -= seg.payload.len();
        ns.mem_sub(seg.payload.len());
        filled_hole = true;
        let end = seg
            .seq
            .wrapping_add(seg.payload.len() as u32)
            .wrapping_add(u32::from(seg.fin));
        if after(end, s.rcv.rcv_nxt) && !tcp_queue_in_order(ctx, s, seg.seq, seg.payload, seg.fin) {
            return;
        }
    }
    if s.state == TcpState::Close || !s.rcv.ack_pending {
        // Closed, or tcp_fin sent its ACK already.
        return;
    }
    // __tcp_ack_snd_check: ACK at once when more than one full segment is
    // unacknowledged and the window would not shrink
    // (`__tcp_select_window() >= rcv_wnd`; on lo it would while data is
    // queued, so the reader's tcp_cleanup_rbuf or the timer ACKs), in
    // quick-ACK mode, when a hole was just filled (ICSK_ACK_NOW) or
    // out-of-order data waits (the duplicate ACK); else delay it, also
    // when the window closed, as Linux does (an ACK per tiny segment into a
    // full buffer would let the window's right edge, rounded up to the
    // scale at every ACK, creep on without bound).
    if filled_hole
        || !s.rcv.ofo.is_empty()
        || (s.rcv.rcv_nxt.wrapping_sub(s.rcv.rcv_wup) > s.rcv.rcv_mss
            && s.free_window() >= s.rcv.rcv_wnd)
        || s.in_quickack_mode()
    {
        s.send_ack(ctx);
    } else {
        s.send_delayed_ack(ctx);
    }
}

/// `tcp_event_data_recv` (net/ipv4/tcp_input.c), for an in-order segment
/// with `len` bytes of data: an ACK is owed; the peer's segment size is
/// measured (`tcp_measure_rcv_mss`); the first data segment starts the
/// delayed-ACK engine with `TCP_MAX_QUICKACKS` quick ACKs; later ones move
/// the ACK timeout estimate `ato` (arrivals within `TCP_ATO_MIN / 2` pull it
/// towards 40 ms, slower ones up to the gap, within `rto` and
/// `TCP_DELACK_MAX`); after a gap longer than the RTO quick ACKs start
/// again.
fn tcp_event_data_recv(ctx: &mut Ctx<'_>, s: &mut TcpSock, len: u32, fl: u8) {
    s.rcv.ack_pending = true;
    tcp_measure_rcv_mss(s, len, fl);
    let now = ctx.now();
    s.rcv_rtt_measure(now);
    let half = super::TCP_ATO_MIN / 2;
    match s.rcv.lrcvtime {
        Some(last) if !s.rcv.ato.is_zero() => {
            // m = now - last, compared as `now` against `last + bound` (an
            // addition costs less than the difference of two `Instant`s).
            if now <= last + half {
                s.rcv.ato = s.rcv.ato / 2 + half;
            } else if now < last + s.rcv.ato {
                let m = now.saturating_duration_since(last);
                s.rcv.ato = (s.rcv.ato / 2 + m).min(s.rto()).min(super::TCP_DELACK_MAX);
            } else if now > last + s.rto() {
                s.incr_quickack(super::TCP_MAX_QUICKACKS);
            }
        }
        _ => {
            // The first data segment: initialize the delayed-ACK engine.
            s.incr_quickack(super::TCP_MAX_QUICKACKS);
            s.rcv.ato = super::TCP_ATO_MIN;
        }
    }
    s.rcv.lrcvtime = Some(now);
}

/// `tcp_measure_rcv_mss` (net/ipv4/tcp_input.c): a segment at least
/// `rcv_mss` long raises the estimate (up to `advmss`) and, pushed, asks for
/// an ACK on read (`ICSK_ACK_PUSHED`); a shorter one asks for it too
/// (`PUSHED2` for the second), unless it is the second of two equal-size,
/// unpushed segments, which then become the estimate.
fn tcp_measure_rcv_mss(s: &mut TcpSock, len: u32, fl: u8) {
    /// `tcp_header_len` with timestamps: 20 + `TCPOLEN_TSTAMP_ALIGNED`.
    const HDR: u32 = 20 + super::TCPOLEN_TSTAMP_ALIGNED;
    let lss = s.rcv.last_seg_size;
    s.rcv.last_seg_size = 0;
    if len >= s.rcv.rcv_mss {
        if len != s.rcv.rcv_mss {
            // The scaling ratio from this segment's truesize (on lo the
            // sender's skb: its payload plus the head).
            let truesize = u64::from(len) + super::SKB_HEAD_TRUESIZE as u64;
            let ratio = ((u64::from(len) << 8) / truesize).max(1) as u32;
            if ratio != s.rcv.scaling_ratio {
                s.rcv.scaling_ratio = ratio;
                let clamp = s
                    .win_from_space(s.rcv.rcvbuf as i64)
                    .clamp(0, i64::from(u32::MAX)) as u32;
                s.set_window_clamp(clamp);
                s.rcv.rcvq_space = s.rcv.rcvq_space.min(s.rcv.window_clamp);
            }
        }
        s.rcv.rcv_mss = len.min(u32::from(s.advmss()));
        if fl & flags::PSH != 0 {
            s.rcv.pushed = true;
        }
        return;
    }
    let with_hdr = len + HDR;
    // TCP_REMNANT: FIN, URG, SYN, PSH.
    let remnant = fl & (flags::FIN | flags::SYN | flags::PSH) != 0;
    if with_hdr >= super::TCP_MSS_DEFAULT + 20 || (with_hdr >= 88 + 20 && !remnant) {
        s.rcv.last_seg_size = len;
        if len == lss {
            s.rcv.rcv_mss = len;
            return;
        }
    }
    if s.rcv.pushed {
        s.rcv.pushed2 = true;
    }
    s.rcv.pushed = true;
}

/// Appends an in-order segment (`seq` at or before `rcv_nxt`) to the receive
/// queue and handles its FIN. Returns `false` when the connection ended.
#[inline(always)]
fn tcp_queue_in_order(
    ctx: &mut Ctx<'_>,
    s: &mut TcpSock,
    seq: u32,
    mut payload: bytes::Bytes,
    mut fin: bool,
) -> bool {
    let ns = ctx.ns;
    if before(seq, s.rcv.rcv_nxt) {
        let off = s.rcv.rcv_nxt.wrapping_sub(seq) as usize;
        let n = off.min(payload.len());
        bytes::Buf::advance(&mut payload, n);
    }
    if !payload.is_empty() && s.orphan {
        // Data after close(): TCPAbortOnData, reset the peer.
        inc(&ns.mib.tcp_abort_on_data);
        s.send_active_reset(ctx);
        s.tcp_done(ns);
        return false;
    }
    if !payload.is_empty() && s.shut.rcv_shutdown {
        // Data after the peer's FIN cannot happen; after our SHUT_RD it is
        // accepted and dropped, as Linux does.
        s.rcv.rcv_nxt = s.rcv.rcv_nxt.wrapping_add(payload.len() as u32);
        s.schedule_delack(ctx);
        return true;
    }
    // Accept no more than the window we offered.
    let allowed = s.receive_window() as usize;
    if payload.len() > allowed {
        payload.truncate(allowed);
        fin = false;
    }
    // tcp_data_queue's queue_and_out: the queues may already hold more
    // than sk_rcvbuf (the window offered counts payload at the measured
    // ratio; a short segment's head costs more). Pruning makes room, or the
    // reader is woken and an ACK goes now; the segment is dropped, FIN
    // included (TCPRcvQDrop; the sender retransmits), unless the receive
    // queue is empty, which takes it anyway (sk_forced_mem_schedule).
    let mut ack_now = false;
    if !payload.is_empty() && !s.try_rmem_schedule(ns, seq) {
        s.data_ready();
        if !s.rcv.recvq.is_empty() {
            inc(&ns.mib.tcp_rcvq_drop);
            s.send_ack(ctx);
            return true;
        }
        ack_now = true;
    }
    if !payload.is_empty() {
        let len = payload.len();
        s.rcv.rcv_nxt = s.rcv.rcv_nxt.wrapping_add(len as u32);
        s.rcv.recvq_bytes += len;
        ns.mem_add(len);
        s.rcv.recvq.push_back(payload);
        s.data_ready();
    }
    if fin {
        s.rcv.rcv_nxt = s.rcv.rcv_nxt.wrapping_add(1);
        s.shut.rcv_shutdown = true;
        s.shut.fin_rcvd = true;
        // tcp_fin (net/ipv4/tcp_input.c): an ACK is owed.
        s.rcv.ack_pending = true;
        match s.state {
            TcpState::Established | TcpState::SynRecv => {
                // The peer closes first: interactive mode, so the ACK is
                // delayed and usually rides on our own FIN.
                s.set_state(ns, TcpState::CloseWait);
                s.enter_pingpong();
            }
            TcpState::FinWait1 => {
                // Simultaneous close: ACK at once.
                s.send_ack(ctx);
                s.set_state(ns, TcpState::Closing);
            }
            TcpState::FinWait2 => {
                // tcp_fin: ACK the FIN, then TIME_WAIT (the socket itself
                // is released; an entry keeps the 4-tuple).
                s.send_ack(ctx);
                s.time_wait(ctx);
                return false;
            }
            _ => {}
        }
        s.data_ready();
    }
    if ack_now {
        s.send_ack(ctx);
    }
    true
}

/// `tcp_data_queue_ofo`: keep a segment that arrived ahead of a gap, within
/// the window offered, sorted by sequence number; an exact duplicate is
/// dropped. Overlaps are trimmed when the segment is delivered.
fn tcp_data_queue_ofo(
    ctx: &mut Ctx<'_>,
    s: &mut TcpSock,
    seq: u32,
    payload: bytes::Bytes,
    fin: bool,
) {
    let end = seq.wrapping_add(payload.len() as u32);
    let wnd_end = s.rcv.rcv_nxt.wrapping_add(s.receive_window());
    if after(end, wnd_end) || s.shut.rcv_shutdown {
        return;
    }
    if !s.try_rmem_schedule(ctx.ns, seq) {
        inc(&ctx.ns.mib.tcp_ofo_drop);
        s.data_ready();
        return;
    }
    let pos = s
        .rcv
        .ofo
        .iter()
        .position(|e| !before(e.seq, seq))
        .unwrap_or(s.rcv.ofo.len());
    if s.rcv.ofo.get(pos).is_some_and(|e| e.seq == seq) {
        return;
    }
    s.rcv.ofo_bytes += payload.len();
    ctx.ns.mem_add(payload.len());
    s.rcv.ofo.insert(pos, OfoSeg { seq, payload, fin });
}
