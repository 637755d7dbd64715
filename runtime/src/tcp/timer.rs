//! TCP timers (net/ipv4/tcp_timer.c): retransmission
//! (`tcp_retransmit_timer`), zero-window probe (`tcp_probe_timer`), delayed
//! ACK (`tcp_delack_timer`), keepalive (`tcp_keepalive_timer`) and an
//! orphan's FIN_WAIT2 timeout. They run on
//! the namespace's `ksoftirqd` thread, or, with a [`Clock`](crate::Clock)
//! installed, when its driver calls `Netns::run_timers`; they are armed
//! through `sk_reset_timer` (ksoftirqd.rs).

use super::{Sock, TcpState, Timer, TCP_ATO_MIN, TCP_DELACK_MAX, TCP_DELACK_MIN};
use crate::ctx::Ctx;
use crate::errno::ETIMEDOUT;
use crate::ksoftirqd::TimerReg;
use crate::netns::NsInner;
use crate::stats::inc;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::Arc;
use std::time::{Duration, Instant};

/// Called when a registration of `sk` fires at `fired`: run whichever of its
/// timers are due, then register for the next one.
pub(crate) fn tcp_timer_handler(ns: &NsInner, sk: &Arc<Sock>, fired: Instant, now: Instant) {
    let mut ctx = Ctx::softirq(ns, 0);
    let mut leave_parent = None;
    {
        let mut g = sk.lock();
        let s = &mut *g;
        if s.timers.timer_registered.when() == Some(fired) {
            s.timers.timer_registered = TimerReg::default();
        }
        if s.state == TcpState::Close {
            return;
        }
        match s.timers.delack_timer {
            Timer::At(d) if d <= now => {
                s.timers.delack_timer = Timer::Off;
                if s.rcv.ack_pending {
                    // tcp_delack_timer_handler: a missed delayed ACK
                    // inflates ato, or, in pingpong mode, leaves it.
                    if s.in_pingpong() {
                        s.rcv.pingpong = 0;
                        s.rcv.ato = TCP_ATO_MIN;
                    } else {
                        s.rcv.ato = (s.rcv.ato * 2).min(s.rto()).min(TCP_DELACK_MAX);
                    }
                    inc(&ns.mib.delayed_acks);
                    s.send_ack(&mut ctx);
                }
            }
            Timer::Pending => s.timers.delack_timer = Timer::At(now + TCP_DELACK_MIN),
            _ => {}
        }
        match s.timers.rto_timer {
            Timer::At(d) if d <= now => {
                s.timers.rto_timer = Timer::Off;
                if s.state == TcpState::FinWait2 {
                    // tcp_fin_timeout ran out: free the orphan silently.
                    if s.orphan {
                        s.tcp_done(ns);
                    }
                } else if s.timers.probing {
                    tcp_probe_timer(&mut ctx, s);
                } else if tcp_retransmit_timer(&mut ctx, s) {
                    leave_parent = s.listen.parent.take();
                }
            }
            Timer::Pending if s.state == TcpState::FinWait2 => {
                s.timers.rto_timer = Timer::At(now + s.fin_time())
            }
            Timer::Pending => s.timers.rto_timer = Timer::At(now + s.rto()),
            _ => {}
        }
        if let Timer::At(d) = s.timers.keepalive_timer {
            if d <= now && s.state != TcpState::Close {
                s.timers.keepalive_timer = Timer::Off;
                tcp_keepalive_timer(&mut ctx, s, now);
            }
        }
        let at = |t: Timer| match t {
            Timer::At(d) => Some(d),
            _ => None,
        };
        let next = [
            at(s.timers.rto_timer),
            at(s.timers.delack_timer),
            at(s.timers.keepalive_timer),
        ]
        .into_iter()
        .flatten()
        .min();
        if let (Some(when), false) = (next, s.state == TcpState::Close) {
            s.register_timer(ns, when, now, when.saturating_duration_since(now));
        }
    }
    if let Some(p) = leave_parent.and_then(|p| p.upgrade()) {
        let mut pl = p.lock();
        pl.listen.syn_recv_cnt = pl.listen.syn_recv_cnt.saturating_sub(1);
    }
    ctx.local_bh_enable();
}

/// `tcp_retransmit_timer`. Returns `true` when a half-open child was dropped.
fn tcp_retransmit_timer(ctx: &mut Ctx<'_>, s: &mut super::TcpSock) -> bool {
    let ns = ctx.ns;
    inc(&ns.mib.tcp_timeouts);
    crate::trace::kevent!(
        "tcp_retransmit_timer",
        ns = ns.id,
        local = %s.local,
        remote = %s.remote,
        state = ?s.state,
        backoff = s.timers.backoff
    );
    match s.state {
        TcpState::SynSent => {
            // tcp_write_timeout: SYN_SENT may retransmit tcp_syn_retries +
            // tcp_syn_linear_timeouts times (Linux 6.5+)...
            if s.timers.retransmits >= s.timers.syn_retries + s.timers.syn_linear_timeouts {
                inc(&ns.mib.attempt_fails);
                s.err = ETIMEDOUT;
                s.tcp_done(ns);
                return false;
            }
            s.timers.retransmits += 1;
            s.timers.total_rto += 1;
            // ... and tcp_retransmit_timer keeps the RTO at 1 s for the first
            // tcp_syn_linear_timeouts of them: SYNs at 1, 2, 3, 4, 5, 7, 11 s.
            if s.timers.total_rto > s.timers.syn_linear_timeouts {
                s.timers.backoff += 1;
            }
            s.send_syn(ctx, true);
            false
        }
        TcpState::SynRecv => {
            if s.timers.retransmits >= s.timers.synack_retries {
                inc(&ns.mib.attempt_fails);
                if !s.orphan {
                    s.orphan = true;
                    ns.socks.orphan.fetch_add(1, Relaxed);
                }
                s.tcp_done(ns);
                return true;
            }
            s.timers.retransmits += 1;
            s.timers.backoff += 1;
            s.send_synack(ctx, true);
            false
        }
        _ => {
            let fin_out = s.snd.fin_queued && s.snd.snd_nxt == s.snd.write_seq.wrapping_add(1);
            if s.snd.snd_una == s.snd.snd_nxt && !fin_out {
                return false;
            }
            // tcp_write_timeout: a closed (orphaned) socket gives up after
            // tcp_orphan_retries (tcp_orphan_retries(): 0 means 8).
            let limit = if s.orphan {
                match ns.sysctl().tcp_orphan_retries {
                    0 => 8,
                    n => u32::from(n),
                }
            } else {
                s.timers.retries2
            };
            if s.timers.retransmits >= limit {
                // tcp_write_err
                s.tcp_done(ns);
                s.err = ETIMEDOUT;
                return false;
            }
            s.timers.retransmits += 1;
            s.timers.backoff += 1;
            // Go back N: resend everything from snd_una.
            s.snd.snd_nxt = s.snd.snd_una;
            s.write_xmit(ctx, true);
            false
        }
    }
}

/// `tcp_probe_timer` → `tcp_send_probe0`: data waits, nothing is in flight
/// and the peer's window cannot take the next segment. `tcp_write_wakeup`
/// sends what fits of it, or a zero-window probe; in the first case the
/// retransmission timer takes over, in the second the probe timer backs
/// off. (Linux gives up after `tcp_retries2` unanswered probes; an answered
/// probe resets that count, and on loopback every probe is answered, so the
/// model never gives up.)
fn tcp_probe_timer(ctx: &mut Ctx<'_>, s: &mut super::TcpSock) {
    if s.unsent() == 0 || s.snd.snd_una != s.snd.snd_nxt {
        s.timers.probing = false;
        s.write_xmit(ctx, false);
        return;
    }
    if s.write_wakeup(ctx) {
        s.timers.probing = false;
        s.timers.backoff = 0;
        s.arm_rto(ctx);
        return;
    }
    s.timers.backoff = (s.timers.backoff + 1).min(16);
    s.arm_rto(ctx);
}

impl super::TcpSock {
    /// `tcp_set_keepalive` (net/ipv4/tcp_timer.c via `sock_set_keepalive`):
    /// turning `SO_KEEPALIVE` on in an open connection arms the keepalive
    /// timer for `tcp_keepalive_time`; off stops it.
    pub(crate) fn set_keepalive(&mut self, ctx: &mut Ctx<'_>, on: bool) {
        self.opt.keepalive = on;
        if !on {
            self.timers.keepalive_timer = Timer::Off;
            return;
        }
        if matches!(
            self.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::FinWait2
        ) && self.timers.keepalive_timer == Timer::Off
        {
            self.timers.rcv_tstamp = Some(ctx.now());
            self.reset_keepalive_timer(ctx, None);
        }
    }

    /// `inet_csk_reset_keepalive_timer`: fire after `period`, by default
    /// `tcp_keepalive_time` (`keepalive_time_when`).
    pub(crate) fn reset_keepalive_timer(&mut self, ctx: &mut Ctx<'_>, period: Option<Duration>) {
        let period =
            period.unwrap_or_else(|| Duration::from_secs(ctx.ns.sysctl().tcp_keepalive_time_secs));
        self.timers.keepalive_timer = self.arm_exact(ctx, period);
    }
}

/// `tcp_keepalive_timer` (net/ipv4/tcp_timer.c), for an open connection: with
/// data in flight or queued the regular timers are in charge, look again
/// after `tcp_keepalive_intvl`; idle (nothing received) for
/// `tcp_keepalive_time`, send a probe (`tcp_write_wakeup`: an ACK one byte
/// behind `snd_una`, which the peer answers) every `tcp_keepalive_intvl`;
/// after `tcp_keepalive_probes` unanswered ones, reset the connection
/// (`tcp_send_active_reset` + `tcp_write_err`: `ETIMEDOUT`).
fn tcp_keepalive_timer(ctx: &mut Ctx<'_>, s: &mut super::TcpSock, now: Instant) {
    if !s.opt.keepalive
        || !matches!(
            s.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::FinWait2
        )
    {
        return;
    }
    let sysctl = ctx.ns.sysctl();
    let time = Duration::from_secs(sysctl.tcp_keepalive_time_secs);
    let intvl = Duration::from_secs(sysctl.tcp_keepalive_intvl_secs);
    let fin_out = s.snd.fin_queued && s.snd.snd_nxt == s.snd.write_seq.wrapping_add(1);
    if s.snd.snd_una != s.snd.snd_nxt || fin_out || s.unsent() > 0 {
        s.reset_keepalive_timer(ctx, Some(intvl));
        return;
    }
    // keepalive_time_elapsed: since the last ACK received.
    let elapsed = s
        .timers
        .rcv_tstamp
        .map_or(time, |t| now.saturating_duration_since(t));
    if elapsed >= time {
        if s.timers.probes_out >= sysctl.tcp_keepalive_probes {
            s.send_active_reset(ctx);
            s.err = ETIMEDOUT;
            s.tcp_done(ctx.ns);
            return;
        }
        s.send_probe(ctx);
        s.timers.probes_out += 1;
        s.reset_keepalive_timer(ctx, Some(intvl));
    } else {
        s.reset_keepalive_timer(ctx, Some(time - elapsed));
    }
}
