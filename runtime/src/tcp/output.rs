//! TCP output (net/ipv4/tcp_output.c): `tcp_write_xmit` cuts the send queue
//! into segments at the MSS and tests each against the peer's window
//! (`tcp_snd_wnd_test`) and Nagle (`tcp_nagle_test`, Minshall's variant: a
//! small segment ending the queue waits while an earlier small segment is
//! unacknowledged, unless `TCP_NODELAY`); every segment carries the current
//! ACK and window. Also the control segments: SYN, SYN-ACK, pure ACK, FIN, RST.

use super::{after, before, TcpSock, TcpState, Timer};
use crate::ctx::Ctx;
use crate::ip::ip_queue_xmit;
use crate::skbuff::{flags, proto, SkBuff};
use crate::stats::inc;
use bytes::{Bytes, BytesMut};

/// Written chunks up to this size may be gathered (copied) into one segment;
/// larger ones are only ever sliced.
const GATHER_MAX: usize = 2048;

impl TcpSock {
    /// A segment from this socket, with the current ACK and window
    /// (`tcp_transmit_skb` fills the header).
    #[inline(always)]
    fn make_skb(&mut self, seq: u32, fl: u8, payload: Bytes) -> SkBuff {
        let window = self.transmit_prep(fl);
        self.build_skb(seq, fl, window, payload)
    }

    /// What `tcp_transmit_skb` does to the socket before it fills the
    /// header of a segment with flags `fl`: choose the window to offer
    /// (returned), and `tcp_event_ack_sent` for an ACK.
    #[inline(always)]
    fn transmit_prep(&mut self, fl: u8) -> u32 {
        let window = if fl & flags::SYN != 0 {
            // tcp_connect_init / tcp_openreq_init_rwin: the clamp from the
            // scale (or the locked buffer), the initial window, and
            // rcv_ssthresh = rcv_wnd.
            self.rcv.window_clamp = if self.opt.rcvbuf_lock {
                self.full_space().clamp(0, i64::from(u32::MAX)) as u32
            } else {
                65535 << self.rcv.rcv_wscale
            };
            let w = self.initial_window(fl & flags::ACK != 0);
            self.rcv.rcv_wnd = w;
            self.rcv.rcv_wup = self.rcv.rcv_nxt;
            self.rcv.rcv_ssthresh = w;
            w
        } else {
            self.select_window()
        };
        if fl & flags::ACK != 0 {
            self.event_ack_sent();
        }
        window
    }

    /// The segment [`transmit_prep`](Self::transmit_prep) prepared, with
    /// the current ACK. Nothing it reads (the ACK number, the MSS option,
    /// the addresses, TTL and TOS) changes between the two, so a caller
    /// may build it right where it hands it on, instead of carrying a
    /// finished skb across other work (a copy of the whole struct).
    #[inline(always)]
    fn build_skb(&self, seq: u32, fl: u8, window: u32, payload: Bytes) -> SkBuff {
        SkBuff {
            protocol: proto::TCP,
            saddr: self.local,
            daddr: self.remote,
            seq,
            ack_seq: if fl & flags::ACK != 0 {
                self.rcv.rcv_nxt
            } else {
                0
            },
            flags: fl,
            window,
            mss: if fl & flags::SYN != 0 {
                self.advmss()
            } else {
                0
            },
            ttl: self.opt.ttl,
            tos: self.opt.tos,
            payload,
        }
    }

    /// The window of a SYN or SYN-ACK (`tcp_select_initial_window`,
    /// net/ipv4/tcp_output.c, from `tcp_connect_init` /
    /// `tcp_openreq_init_rwin`): the receive buffer's window
    /// (`tcp_full_space`: half of `sk_rcvbuf` at the default scaling ratio)
    /// within the clamp, rounded down to a multiple of the MSS (`advmss` in
    /// a SYN, less the timestamp option in a SYN-ACK), never scaled, so at
    /// most 65535: on lo 65495 and 65483.
    fn initial_window(&self, synack: bool) -> u32 {
        let space =
            (self.full_space().clamp(0, i64::from(u32::MAX)) as u32).min(self.rcv.window_clamp);
        let advmss = u32::from(self.advmss());
        let mss = if synack {
            advmss - super::TCPOLEN_TSTAMP_ALIGNED
        } else {
            advmss
        };
        let w = if space > mss {
            space - space % mss
        } else {
            space
        };
        w.min(65535)
    }

    /// `tcp_event_ack_sent` (net/ipv4/tcp_output.c): an ACK went out, so
    /// nothing is owed any more (`inet_csk_clear_xmit_timer(ICSK_TIME_DACK)`
    /// clears every pending bit), and a quick-ACK credit is spent
    /// (`tcp_dec_quickack_mode`; the last one resets `ato`).
    #[inline]
    fn event_ack_sent(&mut self) {
        if self.rcv.quick != 0 && self.rcv.ack_pending {
            if self.rcv.quick <= 1 {
                self.rcv.quick = 0;
                self.rcv.ato = super::TCP_ATO_MIN;
            } else {
                self.rcv.quick -= 1;
            }
        }
        self.rcv.ack_pending = false;
        self.rcv.pushed = false;
        self.rcv.pushed2 = false;
        self.timers.delack_timer = Timer::Off;
    }

    /// `tcp_event_data_sent` (net/ipv4/tcp_output.c): data sent within `ato`
    /// of the last data received is a reply, and counts towards pingpong
    /// (interactive) mode.
    #[inline]
    fn event_data_sent(&mut self, ctx: &mut Ctx<'_>) {
        if self.in_pingpong() {
            // Already interactive: counting further changes nothing (the
            // mode is left by resetting the count), so skip the clock.
            return;
        }
        // `now - lrcvtime < ato`, by addition (as tcp_event_data_recv
        // compares): no Instant subtraction. A clock behind `lrcvtime`
        // counts as a gap of zero, under any non-zero `ato`.
        if let Some(lrcv) = self.rcv.lrcvtime {
            let ato = self.rcv.ato;
            if !ato.is_zero() && lrcv.checked_add(ato).is_none_or(|end| ctx.now() < end) {
                self.rcv.pingpong = self.rcv.pingpong.saturating_add(1);
            }
        }
    }

    /// `tcp_transmit_skb` → `ip_queue_xmit`. Loopback never fails once the
    /// route is cached; a failure (route gone) is left to the RTO.
    #[inline]
    fn transmit(&mut self, ctx: &mut Ctx<'_>, skb: SkBuff, retrans: bool) {
        if retrans {
            inc(&ctx.ns.mib.retrans_segs);
            crate::trace::kevent_skb!("tcp_retransmit_skb", ctx.ns, skb);
        } else {
            inc(&ctx.ns.mib.out_segs);
        }
        if skb.has(flags::RST) {
            inc(&ctx.ns.mib.out_rsts);
            crate::trace::kevent_skb!("tcp_send_reset", ctx.ns, skb);
        }
        let _ = ip_queue_xmit(ctx, &mut self.dst, skb);
    }

    /// `tcp_send_syn` / `tcp_connect`: the SYN, and its retransmissions.
    pub(crate) fn send_syn(&mut self, ctx: &mut Ctx<'_>, retrans: bool) {
        let skb = self.make_skb(self.snd.iss, flags::SYN, Bytes::new());
        self.transmit(ctx, skb, retrans);
        self.arm_rto(ctx);
    }

    /// `tcp_make_synack`: the listener's child answers a SYN.
    pub(crate) fn send_synack(&mut self, ctx: &mut Ctx<'_>, retrans: bool) {
        let skb = self.make_skb(self.snd.iss, flags::SYN | flags::ACK, Bytes::new());
        self.transmit(ctx, skb, retrans);
        self.arm_rto(ctx);
    }

    /// `tcp_send_ack`: a pure ACK carrying the current window.
    pub(crate) fn send_ack(&mut self, ctx: &mut Ctx<'_>) {
        let skb = self.make_skb(self.snd.snd_nxt, flags::ACK, Bytes::new());
        self.transmit(ctx, skb, false);
    }

    /// `tcp_send_active_reset`: RST (with ACK) from this socket.
    pub(crate) fn send_active_reset(&mut self, ctx: &mut Ctx<'_>) {
        let skb = self.make_skb(self.snd.snd_nxt, flags::RST | flags::ACK, Bytes::new());
        self.transmit(ctx, skb, false);
    }

    /// `tcp_xmit_probe_skb`: a zero-window probe, an ACK with an old sequence
    /// number that makes the peer answer with its current window.
    pub(crate) fn send_probe(&mut self, ctx: &mut Ctx<'_>) {
        let skb = self.make_skb(self.snd.snd_una.wrapping_sub(1), flags::ACK, Bytes::new());
        self.transmit(ctx, skb, false);
    }

    /// How much of `len` bytes from offset `off` past `snd_una` one segment
    /// takes, so that no large written chunk is ever copied: a segment within
    /// one chunk is a zero-copy slice; a run of small chunks (Nagle's
    /// coalesced writes) is gathered; a large chunk is never joined to
    /// another, the segment ends at its boundary instead. (The kernel fills
    /// skbs at `sendmsg` time; the model keeps each write as it came.)
    #[inline]
    fn segment_limit(&self, mut off: usize, len: usize) -> usize {
        // The usual case first: the segment starts in the queue's first
        // chunk and that chunk alone decides (the loop's first step).
        if let Some(first) = self.snd.sendq.front() {
            let l = first.data.len();
            if off < l && (l - off >= len || l > GATHER_MAX) {
                return (l - off).min(len);
            }
        }
        let mut total = 0;
        for chunk in self.snd.sendq.iter().map(|c| &c.data) {
            if off >= chunk.len() {
                off -= chunk.len();
                continue;
            }
            let avail = chunk.len() - off;
            off = 0;
            let large = chunk.len() > GATHER_MAX;
            if total == 0 {
                if avail >= len || large {
                    return avail.min(len);
                }
            } else if large {
                return total;
            }
            total += avail.min(len - total);
            if total == len {
                return len;
            }
        }
        total
    }

    /// The payload `[off, off + len)` bytes past `snd_una`: a slice of one
    /// written chunk when it fits (no copy), else gathered into a new buffer.
    #[inline(always)]
    fn sendq_slice(&self, off: usize, len: usize) -> Bytes {
        // The usual case first: within the first chunk, or all of it.
        if let Some(first) = self.snd.sendq.front() {
            let chunk = &first.data;
            if off < chunk.len() && off + len <= chunk.len() {
                return if off == 0 && len == chunk.len() {
                    chunk.clone()
                } else {
                    chunk.slice(off..off + len)
                };
            }
        }
        self.sendq_gather(off, len)
    }

    /// [`sendq_slice`](Self::sendq_slice) past the first chunk, or across
    /// chunks (out of line: the usual segment never gets here).
    #[inline(never)]
    fn sendq_gather(&self, off: usize, len: usize) -> Bytes {
        let mut skip = off;
        let mut iter = self.snd.sendq.iter().map(|c| &c.data);
        for chunk in iter.by_ref() {
            if skip < chunk.len() {
                if skip + len <= chunk.len() {
                    return chunk.slice(skip..skip + len);
                }
                let mut buf = BytesMut::with_capacity(len);
                buf.extend_from_slice(&chunk[skip..]);
                for c in iter {
                    let want = len - buf.len();
                    if want == 0 {
                        break;
                    }
                    buf.extend_from_slice(&c[..want.min(c.len())]);
                }
                return buf.freeze();
            }
            skip -= chunk.len();
        }
        Bytes::new()
    }

    /// `tcp_retransmit_skb` for the head of the queue: the first
    /// unacknowledged segment again (or the FIN, if only it is out).
    pub(crate) fn retransmit_head(&mut self, ctx: &mut Ctx<'_>) {
        let data_end = if after(self.snd.snd_nxt, self.snd.write_seq) {
            self.snd.write_seq
        } else {
            self.snd.snd_nxt
        };
        let in_flight = data_end.wrapping_sub(self.snd.snd_una) as usize;
        if in_flight == 0 {
            if self.snd.fin_queued && self.snd.snd_nxt == self.snd.write_seq.wrapping_add(1) {
                let skb = self.make_skb(self.snd.write_seq, flags::FIN | flags::ACK, Bytes::new());
                self.transmit(ctx, skb, true);
            }
            return;
        }
        let len = self.segment_limit(0, in_flight.min(self.eff_mss() as usize));
        let payload = self.sendq_slice(0, len);
        let skb = self.make_skb(self.snd.snd_una, flags::ACK | flags::PSH, payload);
        self.transmit(ctx, skb, true);
    }

    /// `tcp_write_xmit`: send what the window and Nagle allow; then the FIN
    /// once all data is out. `push` forces out a held small tail
    /// (`TCP_NAGLE_PUSH`: shutdown, `TCP_NODELAY`, retransmission).
    pub(crate) fn write_xmit(&mut self, ctx: &mut Ctx<'_>, push: bool) {
        // With nothing unsent only the FIN can go, which needs no MSS.
        let mss = if self.unsent() == 0 {
            0
        } else {
            self.eff_mss()
        };
        self.write_xmit_mss(ctx, push, mss);
    }

    /// [`write_xmit`](Self::write_xmit) with the current MSS (`eff_mss`)
    /// already known: `tcp_sendmsg` computed it for its size goal, and
    /// nothing it depends on (the MSS cache, the peer's MSS and largest
    /// window, `TCP_MAXSEG`) changes while the socket lock is held, so one
    /// value serves every segment of the call. (`mss` is only read when
    /// there is data to send.)
    pub(crate) fn write_xmit_mss(&mut self, ctx: &mut Ctx<'_>, push: bool, mss: u32) {
        debug_assert!(self.unsent() == 0 || mss == self.eff_mss());
        if !matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::Closing
                | TcpState::LastAck
        ) {
            return;
        }
        loop {
            let unsent = self.unsent();
            if unsent == 0 {
                if self.snd.fin_queued && self.snd.snd_nxt == self.snd.write_seq {
                    // tcp_send_fin: FIN takes one sequence number.
                    let retrans = before(self.snd.snd_nxt, self.snd.snd_max);
                    let skb =
                        self.make_skb(self.snd.snd_nxt, flags::FIN | flags::ACK, Bytes::new());
                    self.snd.snd_nxt = self.snd.snd_nxt.wrapping_add(1);
                    if after(self.snd.snd_nxt, self.snd.snd_max) {
                        self.snd.snd_max = self.snd.snd_nxt;
                    }
                    self.transmit(ctx, skb, retrans);
                    self.arm_rto(ctx);
                }
                return;
            }
            let wnd_end = self.snd.snd_una.wrapping_add(self.snd.snd_wnd);
            let usable = (wnd_end.wrapping_sub(self.snd.snd_nxt) as i32).max(0) as u32;
            // The next segment ("skb"): at most one MSS, ending where its
            // chunk ends when that chunk is large. A window that is open as
            // wide as the peer ever offered but narrower than a segment (a
            // receive buffer of a few bytes) can only carry what fits: send
            // that (Linux bounds its MSS by half the largest window,
            // tcp_bound_to_half_wnd, for the same end).
            let want = unsent.min(mss).min(if usable >= self.snd.max_window {
                usable.max(1)
            } else {
                u32::MAX
            });
            let off = self.snd.snd_nxt.wrapping_sub(self.snd.snd_una) as usize;
            let len = self.segment_limit(off, want as usize) as u32;
            if len == 0 {
                return;
            }
            // tcp_snd_wnd_test, for every segment: this one (its first MSS)
            // must fit in the window. No segment is cut to fill a partly
            // open window (the persist timer's tcp_write_wakeup does that).
            if usable < len {
                if self.snd.snd_nxt == self.snd.snd_una
                    && !(self.timers.probing && self.timers.rto_timer != Timer::Off)
                {
                    // tcp_check_probe_timer: nothing in flight to bring an
                    // ACK and no probe pending; probe the window. (An ACK
                    // of the last segment in flight stops the timer, as
                    // tcp_rearm_rto clears icsk_pending, even when a
                    // go-back-N rewind had already made it the probe timer:
                    // the push that follows arms it again.)
                    self.timers.probing = true;
                    self.timers.rto_timer = Timer::Off;
                    self.arm_rto(ctx);
                }
                return;
            }
            // tcp_nagle_test, for every segment: tcp_write_xmit passes the
            // socket's nonagle for the last skb of the queue and
            // TCP_NAGLE_PUSH for every earlier one, so only a partial
            // (sub-MSS) segment that ends the queue is held: while a small
            // segment is out unacknowledged (tcp_minshall_check: snd_una <
            // snd_sml <= snd_nxt), unless TCP_NODELAY, a push, or a FIN.
            let tail = len == unsent;
            if len < mss
                && tail
                && !push
                && !self.opt.nodelay
                && !self.snd.fin_queued
                && self.snd.snd_nxt != self.snd.snd_una
                && after(self.snd.snd_sml, self.snd.snd_una)
                && !after(self.snd.snd_sml, self.snd.snd_nxt)
            {
                return;
            }
            if self.xmit_data(ctx, len, tail, mss) {
                return;
            }
        }
    }

    /// Sends `len` bytes at `snd_nxt` (`tcp_transmit_skb` +
    /// `tcp_event_new_data_sent`), with PSH and, once all data is out, FIN
    /// when `tail`. Returns whether the FIN went.
    fn xmit_data(&mut self, ctx: &mut Ctx<'_>, len: u32, tail: bool, mss: u32) -> bool {
        let seq = self.snd.snd_nxt;
        let retrans = before(seq, self.snd.snd_max);
        let payload = self.sendq_slice(seq.wrapping_sub(self.snd.snd_una) as usize, len as usize);
        let mut fl = flags::ACK;
        if tail {
            fl |= flags::PSH;
        }
        let fin = tail && self.snd.fin_queued;
        if fin {
            fl |= flags::FIN;
        }
        // __tcp_transmit_skb: tcp_event_ack_sent (in transmit_prep), then
        // tcp_event_data_sent; the skb is built where it is handed on.
        let window = self.transmit_prep(fl);
        self.event_data_sent(ctx);
        self.snd.snd_nxt = seq.wrapping_add(len + u32::from(fin));
        if after(self.snd.snd_nxt, self.snd.snd_max) {
            self.snd.snd_max = self.snd.snd_nxt;
        }
        if len < mss {
            // tcp_minshall_update
            self.snd.snd_sml = self.snd.snd_nxt;
        }
        self.timers.probing = false;
        let skb = self.build_skb(seq, fl, window, payload);
        self.transmit(ctx, skb, retrans);
        self.arm_rto(ctx);
        fin
    }

    /// `tcp_write_wakeup` (net/ipv4/tcp_output.c), from the persist timer:
    /// if the window is partly open, send what fits of the next segment
    /// (even less than an MSS) and return `true`; else send a zero-window
    /// probe (`tcp_xmit_probe_skb`) and return `false`.
    pub(crate) fn write_wakeup(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let wnd_end = self.snd.snd_una.wrapping_add(self.snd.snd_wnd);
        let usable = (wnd_end.wrapping_sub(self.snd.snd_nxt) as i32).max(0) as u32;
        let unsent = self.unsent();
        if unsent > 0 && usable > 0 {
            let mss = self.eff_mss();
            let off = self.snd.snd_nxt.wrapping_sub(self.snd.snd_una) as usize;
            let len = self.segment_limit(off, unsent.min(mss).min(usable) as usize) as u32;
            if len > 0 {
                // The slice carries PSH (tcp_write_wakeup marks it).
                let tail = len == unsent;
                let seq = self.snd.snd_nxt;
                let payload =
                    self.sendq_slice(seq.wrapping_sub(self.snd.snd_una) as usize, len as usize);
                let fin = tail && self.snd.fin_queued;
                let fl = flags::ACK | flags::PSH | if fin { flags::FIN } else { 0 };
                let retrans = before(seq, self.snd.snd_max);
                let skb = self.make_skb(seq, fl, payload);
                self.event_data_sent(ctx);
                self.snd.snd_nxt = seq.wrapping_add(len + u32::from(fin));
                if after(self.snd.snd_nxt, self.snd.snd_max) {
                    self.snd.snd_max = self.snd.snd_nxt;
                }
                if len < mss {
                    self.snd.snd_sml = self.snd.snd_nxt;
                }
                self.transmit(ctx, skb, retrans);
                return true;
            }
        }
        self.send_probe(ctx);
        false
    }
}

/// `tcp_v4_send_reset`: the RST answering a segment no socket wants.
pub(crate) fn tcp_v4_send_reset(ctx: &mut Ctx<'_>, skb: &SkBuff) {
    if skb.has(flags::RST) {
        return;
    }
    let (seq, ack_seq, fl) = if skb.has(flags::ACK) {
        (skb.ack_seq, 0, flags::RST)
    } else {
        (
            0,
            skb.seq.wrapping_add(skb.seq_len()),
            flags::RST | flags::ACK,
        )
    };
    let rst = SkBuff {
        protocol: proto::TCP,
        saddr: skb.daddr,
        daddr: skb.saddr,
        seq,
        ack_seq,
        flags: fl,
        window: 0,
        mss: 0,
        ttl: 64,
        // tcp_v4_send_reset: the reply carries the segment's TOS, less ECN.
        tos: skb.tos & !0x3,
        payload: Bytes::new(),
    };
    inc(&ctx.ns.mib.out_rsts);
    inc(&ctx.ns.mib.out_segs);
    let _ = ip_queue_xmit(ctx, &mut None, rst);
}

/// `tcp_v4_timewait_ack`: a TIME_WAIT entry's ACK (for a retransmitted FIN,
/// data or an old segment), from the entry's sequence numbers and window.
pub(crate) fn tcp_v4_timewait_ack(
    ctx: &mut Ctx<'_>,
    key: super::minisocks::Key,
    tw: &super::minisocks::TwSock,
) {
    let ack = SkBuff {
        protocol: proto::TCP,
        saddr: key.0,
        daddr: key.1,
        seq: tw.snd_nxt,
        ack_seq: tw.rcv_nxt,
        flags: flags::ACK,
        window: tw.rcv_wnd,
        mss: 0,
        ttl: 64,
        // Linux keeps the socket's TOS in the entry (tw_tos); the model's
        // 24-byte entry does not, so a TIME_WAIT ACK carries 0.
        tos: 0,
        payload: Bytes::new(),
    };
    inc(&ctx.ns.mib.out_segs);
    let _ = ip_queue_xmit(ctx, &mut None, ack);
}
