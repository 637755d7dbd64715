//! The socket-call side of TCP (the kernel's net/ipv4/tcp.c): what
//! `sendmsg`, `recvmsg` and `close` do to a TCP socket once af_inet.rs has
//! dispatched them.
//!
//! * [`tcp_sendmsg`]: report a pending error, wait for send-buffer room,
//!   copy the caller's bytes onto the send queue ([`copy_in`]: small writes
//!   into the socket's arena, large ones into pooled buffers, page_frag.rs),
//!   then `tcp_write_xmit` (output.rs).
//! * [`tcp_recvmsg`]: copy out of the receive queue (or peek), EOF and
//!   errors in the kernel's order, then [`tcp_cleanup_rbuf`]: the ACK or
//!   window update a read may owe.
//! * [`tcp_close`]: `close()`: FIN after the queued data, RST when data was
//!   left unread or `SO_LINGER` is 0, the listener's children reset
//!   (`inet_csk_listen_stop`).
//!
//! Each call runs the softirq it raised before it returns, after the socket
//! lock is released (`release_sock` + `local_bh_enable`).

use super::{SendChunk, Sock, TcpSock, TcpState};
use crate::ctx::Ctx;
use crate::errno::{err, ENOTCONN, EPIPE};
use crate::page_frag::{BufPool, PooledBuf, POOL_BUF};
use crate::stats::inc;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::Arc;
use bytes::{Buf, Bytes, BytesMut};
use std::io::{self, IoSlice};
use std::task::{Context, Poll};
use std::time::Duration;

/// `tcp_sendmsg` of `bufs`: copies as much as the send buffer has room for,
/// then pushes segments out (`Socket::poll_send`).
pub(crate) fn tcp_sendmsg(
    sk: &Sock,
    cx: Option<&mut Context<'_>>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let total: usize = match bufs {
        // The usual write: one buffer, no iteration.
        [one] => one.len(),
        _ => bufs.iter().map(|b| b.len()).sum(),
    };
    let ns = &*sk.ns;
    let mut ctx = Ctx::process(ns);
    let mut s = sk.lock();
    if s.err != 0 {
        let e = std::mem::take(&mut s.err);
        return Poll::Ready(Err(err(e)));
    }
    if s.shut.snd_shutdown || !matches!(s.state, TcpState::Established | TcpState::CloseWait) {
        if matches!(s.state, TcpState::SynSent | TcpState::SynRecv) {
            return Poll::Ready(Err(err(ENOTCONN)));
        }
        return Poll::Ready(Err(err(EPIPE)));
    }
    if total == 0 {
        return Poll::Ready(Ok(0));
    }
    let before = s.wmem_queued();
    let space = s.send_space(before);
    if space == 0 {
        // wait_for_space: SOCK_NOSPACE, then EAGAIN or sleep.
        s.snd.nospace = true;
        return match cx {
            Some(cx) => {
                s.tx_waiters.register(cx.waker());
                Poll::Pending
            }
            None => Poll::Ready(Err(io::ErrorKind::WouldBlock.into())),
        };
    }
    let n = total.min(space);
    // tcp_send_mss: on loopback size_goal is one MSS (tcp_xmit_size_goal).
    let mss = s.eff_mss();
    copy_in(&mut s, &ns.buf_pool, bufs, n, mss.max(1) as usize);
    s.snd.sendq_bytes += n;
    s.snd.write_seq = s.snd.write_seq.wrapping_add(n as u32);
    ns.mem_add(s.wmem_queued() - before);
    s.write_xmit_mss(&mut ctx, false, mss);
    drop(s);
    ctx.local_bh_enable();
    Poll::Ready(Ok(n))
}

/// `tcp_recvmsg`: at most `len` bytes handed to `put` in order
/// (`Socket::poll_recv_with`).
pub(crate) fn tcp_recvmsg(
    sk: &Sock,
    cx: Option<&mut Context<'_>>,
    len: usize,
    peek: bool,
    mut put: impl FnMut(&[u8]),
) -> Poll<io::Result<usize>> {
    if len == 0 {
        return Poll::Ready(Ok(0));
    }
    let ns = &*sk.ns;
    let mut s = sk.lock();
    if s.rcv.recvq_bytes > 0 {
        let mut copied = 0;
        if peek {
            for chunk in s.rcv.recvq.iter() {
                let n = chunk.len().min(len - copied);
                put(&chunk[..n]);
                copied += n;
                if copied == len {
                    break;
                }
            }
            return Poll::Ready(Ok(copied));
        }
        while copied < len {
            let Some(front) = s.rcv.recvq.front_mut() else {
                break;
            };
            let n = front.len().min(len - copied);
            put(&front[..n]);
            copied += n;
            if n == front.len() {
                s.rcv.recvq.pop_front();
            } else {
                front.advance(n);
            }
        }
        s.rcv.recvq_bytes -= copied;
        ns.mem_sub(copied);
        s.rcv.copied = s.rcv.copied.wrapping_add(copied as u32);
        if !s.opt.rcvbuf_lock {
            s.rcv_space_adjust(ns);
        }
        if s.rcv.recvq_bytes == 0 && s.shut.fin_rcvd && copied < len {
            // The read went on to the FIN (tcp_recvmsg's found_fin_ok).
            s.shut.fin_copied = true;
        }
        if tcp_cleanup_rbuf(&s, copied) {
            // The process context only when something is sent: most
            // reads owe no ACK (delayed, or piggybacked on the reply).
            let mut ctx = Ctx::process(ns);
            s.send_ack(&mut ctx);
            drop(s);
            ctx.local_bh_enable();
        }
        return Poll::Ready(Ok(copied));
    }
    // tcp_recvmsg: after the peer's FIN (SOCK_DONE) a read is EOF and a
    // pending error waits for the next write.
    if s.shut.fin_rcvd {
        if !peek {
            s.shut.fin_copied = true;
        }
        return Poll::Ready(Ok(0));
    }
    if s.err != 0 {
        let e = std::mem::take(&mut s.err);
        return Poll::Ready(Err(err(e)));
    }
    if s.shut.rcv_shutdown || s.state == TcpState::Close {
        return Poll::Ready(Ok(0));
    }
    match cx {
        Some(cx) => {
            s.rx_waiters.register(cx.waker());
            Poll::Pending
        }
        None => Poll::Ready(Err(io::ErrorKind::WouldBlock.into())),
    }
}

/// Writes up to this size are copied into the socket's small arena.
const SMALL_WRITE: usize = 512;
/// The arena's size: small enough that an idle connection holds little, big
/// enough that an interactive exchange reuses one buffer (reclaimed in place
/// once every earlier chunk was acknowledged and read).
const ARENA: usize = 2048;

/// Writes up to this size join the send queue's unsent tail chunk.
const JOIN_MAX: usize = 2048;

/// `tcp_sendmsg`'s copy from user memory: `n` bytes of `bufs` onto the send
/// queue, as refcounted chunks. A small write joins the queue's last chunk
/// while that is unsent and stays within `goal` (`size_goal`), as
/// `tcp_sendmsg` fills the tail skb before it allocates another, so a
/// writer of many tiny writes holds about one byte per byte queued. Other
/// small writes share the socket's arena (no allocation in steady state);
/// large ones are cut into buffers of at most [`POOL_BUF`] from the
/// namespace's pool, so a bulk writer reuses the same memory instead of
/// having the allocator return it to the OS and fault it back in on every
/// write. Each new chunk is counted as the skbs of at most `goal` bytes it
/// stands for (`SendChunk::skbs`).
pub(crate) fn copy_in(
    s: &mut TcpSock,
    pool: &Arc<BufPool>,
    bufs: &[IoSlice<'_>],
    n: usize,
    goal: usize,
) {
    let goal = goal.max(1);
    if let [one] = bufs {
        if n <= SMALL_WRITE {
            // The usual small write, one buffer: the same steps as below,
            // without the general gather over `bufs`.
            copy_in_small(s, &one[..n], goal);
            return;
        }
    }
    let mut src = bufs.iter().flat_map(|b| b.chunks(POOL_BUF)).peekable();
    let mut fill = |dst: &mut dyn FnMut(&[u8]), mut want: usize| {
        while want > 0 {
            let Some(piece) = src.peek_mut() else { break };
            let k = want.min(piece.len());
            dst(&piece[..k]);
            *piece = &piece[k..];
            if piece.is_empty() {
                src.next();
            }
            want -= k;
        }
    };
    if n <= JOIN_MAX {
        if let Some(mut tail) = take_unsent_tail(s, n, goal) {
            gather(&mut tail, bufs, n);
            // Still one skb.
            s.snd.sendq.push_back(SendChunk {
                data: tail.freeze(),
                skbs: 1,
            });
            s.snd.skbs += 1;
            return;
        }
    }
    let push = |s: &mut TcpSock, chunk: Bytes| {
        let skbs = chunk.len().div_ceil(goal).max(1);
        s.snd.sendq.push_back(SendChunk {
            data: chunk,
            skbs: skbs.min(u32::MAX as usize) as u32,
        });
        s.snd.skbs += skbs;
    };
    if n <= SMALL_WRITE {
        let arena = &mut s.snd.tx_arena;
        if arena.capacity() < n {
            arena.reserve(ARENA);
        }
        gather(arena, bufs, n);
        let chunk = arena.split().freeze();
        push(s, chunk);
        return;
    }
    let mut left = n;
    while left > 0 {
        let k = left.min(POOL_BUF);
        if k < POOL_BUF / 2 {
            // A remainder: a buffer of its own size, so a slow reader's queue
            // of medium writes does not pin 64 KiB each.
            let mut buf = Vec::with_capacity(k);
            fill(&mut |p| buf.extend_from_slice(p), k);
            push(s, Bytes::from(buf));
        } else {
            let mut buf = pool.get();
            fill(&mut |p| buf.extend_from_slice(p), k);
            push(s, Bytes::from_owner(PooledBuf::new(buf, pool.clone())));
        }
        left -= k;
    }
}

/// `n` bytes of `bufs` into `dst`, in order (what `copy_in`'s `fill` does
/// for one destination, without its cursor over the pieces).
#[inline]
fn gather(dst: &mut BytesMut, bufs: &[IoSlice<'_>], n: usize) {
    let mut left = n;
    for b in bufs {
        if left == 0 {
            break;
        }
        let k = left.min(b.len());
        dst.extend_from_slice(&b[..k]);
        left -= k;
    }
}

/// [`copy_in`] of one small buffer (`src.len() <= SMALL_WRITE`): it joins
/// the unsent tail chunk when it may, else it is copied into the socket's
/// arena as a chunk of its own (one skb).
fn copy_in_small(s: &mut TcpSock, src: &[u8], goal: usize) {
    let n = src.len();
    // (An empty queue has no tail: no call.)
    let tail = if s.snd.sendq.is_empty() {
        None
    } else {
        take_unsent_tail(s, n, goal)
    };
    if let Some(mut tail) = tail {
        tail.extend_from_slice(src);
        s.snd.sendq.push_back(SendChunk {
            data: tail.freeze(),
            skbs: 1,
        });
        s.snd.skbs += 1;
        return;
    }
    let arena = &mut s.snd.tx_arena;
    if arena.capacity() < n {
        arena.reserve(ARENA);
    }
    arena.extend_from_slice(src);
    let chunk = arena.split().freeze();
    // The skbs of at most `goal` bytes it stands for, as `copy_in` counts.
    let skbs = n.div_ceil(goal).max(1);
    s.snd.sendq.push_back(SendChunk {
        data: chunk,
        skbs: skbs as u32,
    });
    s.snd.skbs += skbs;
}

/// The send queue's last chunk, taken off the queue as a growable buffer,
/// when `n` more bytes may join it: nothing of it was sent (so no segment
/// refers to it) and it stays within `goal`. Its skb count leaves with it.
/// The buffer is the chunk's own when nothing else holds it (a tail that
/// already took joins); else the chunk is copied once into a buffer with
/// room to grow.
fn take_unsent_tail(s: &mut TcpSock, n: usize, goal: usize) -> Option<BytesMut> {
    let last = &s.snd.sendq.back()?.data;
    let in_flight = s.snd.snd_nxt.wrapping_sub(s.snd.snd_una) as usize;
    if last.len() + n > goal || s.snd.sendq_bytes.saturating_sub(last.len()) < in_flight {
        return None;
    }
    let SendChunk { data: last, skbs } = s.snd.sendq.pop_back()?;
    let skbs = skbs as usize;
    s.snd.skbs = s.snd.skbs.saturating_sub(skbs);
    Some(match last.try_into_mut() {
        Ok(m) => m,
        Err(b) => {
            let mut m = BytesMut::with_capacity((2 * (b.len() + n)).clamp(64, goal.max(64)));
            m.extend_from_slice(&b);
            m
        }
    })
}

/// `__tcp_cleanup_rbuf` (net/ipv4/tcp.c): after the application read
/// `copied` bytes, whether to send the ACK that is owed: more than one
/// segment unacknowledged, or the read emptied the queue after small or
/// pushed segments (`ICSK_ACK_PUSHED` outside interactive mode,
/// `ICSK_ACK_PUSHED2` in any mode); or a window update when the window
/// doubled. The caller sends it.
pub(crate) fn tcp_cleanup_rbuf(s: &TcpSock, copied: usize) -> bool {
    if copied == 0 || s.state == TcpState::Close {
        return false;
    }
    let mut time_to_ack = false;
    if s.rcv.ack_pending
        && (s.rcv.rcv_nxt.wrapping_sub(s.rcv.rcv_wup) > s.rcv.rcv_mss
            || (s.rcv.recvq_bytes == 0 && (s.rcv.pushed2 || (s.rcv.pushed && !s.in_pingpong()))))
    {
        time_to_ack = true;
    }
    if !time_to_ack && !s.shut.rcv_shutdown {
        let now = s.receive_window();
        if 2 * u64::from(now) <= u64::from(s.rcv.window_clamp) {
            let new = s.free_window();
            if new != 0 && u64::from(new) >= 2 * u64::from(now) {
                time_to_ack = true;
            }
        }
    }
    time_to_ack
}

/// `tcp_close`: what dropping the last [`Socket`](crate::af_inet::Socket)
/// does.
pub(crate) fn tcp_close(sk: &Arc<Sock>) {
    let ns = &*sk.ns;
    let mut ctx = Ctx::process(ns);
    let mut s = sk.lock();
    s.rx_waiters.clear();
    s.tx_waiters.clear();
    // The socket is the user's no more: whatever ends the connection from
    // here on releases the port, even one given to bind().
    s.bindport_lock = false;
    match s.state {
        TcpState::Close => {
            s.purge_recvq(ns);
            s.unhash(ns);
        }
        TcpState::Listen => {
            // inet_csk_listen_stop: reset every child waiting to be accepted.
            let children = std::mem::take(&mut *s.listen.accept_queue);
            s.tcp_done(ns);
            drop(s);
            for child in children {
                let mut c = child.lock();
                if c.state != TcpState::Close {
                    c.orphan = true;
                    ns.socks.orphan.fetch_add(1, Relaxed);
                    c.send_active_reset(&mut ctx);
                    c.tcp_done(ns);
                }
            }
            ctx.local_bh_enable();
            return;
        }
        TcpState::SynSent | TcpState::SynRecv => {
            s.tcp_done(ns);
        }
        _ => {
            s.orphan = true;
            ns.socks.orphan.fetch_add(1, Relaxed);
            let unread = s.rcv.recvq_bytes > 0;
            s.purge_recvq(ns);
            if unread {
                inc(&ns.mib.tcp_abort_on_close);
                s.send_active_reset(&mut ctx);
                s.tcp_done(ns);
            } else if s.opt.linger == Some(Duration::ZERO) {
                // tcp_close → tcp_disconnect; Linux counts this as
                // TCPAbortOnData.
                inc(&ns.mib.tcp_abort_on_data);
                s.send_active_reset(&mut ctx);
                s.tcp_done(ns);
            } else {
                s.shut.rcv_shutdown = true;
                match s.state {
                    TcpState::Established => s.set_state(ns, TcpState::FinWait1),
                    TcpState::CloseWait => s.set_state(ns, TcpState::LastAck),
                    _ => {}
                }
                if !s.shut.snd_shutdown {
                    s.shut.snd_shutdown = true;
                    s.snd.fin_queued = true;
                }
                s.write_xmit(&mut ctx, true);
                s.arm_fin_wait2(&mut ctx, true);
            }
        }
    }
    drop(s);
    ctx.local_bh_enable();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::af_inet::Socket;
    use crate::netns::Netns;
    use crate::tests::{addr, pair, recv, send};

    fn chunks(s: &TcpSock) -> Vec<usize> {
        s.snd.sendq.iter().map(|c| c.data.len()).collect()
    }

    /// The loopback MSS of a client (half the SYN-ACK's window).
    const GOAL: usize = 32741;

    #[test]
    fn test_copy_in_joins_small_writes_to_the_tail_and_puts_large_ones_in_pooled_buffers() {
        let ns = Netns::new();
        let sk = Sock::new(&ns.0, |_| {});
        let pool = Arc::new(BufPool::default());
        let mut s = sk.lock();
        // A small write goes into the arena; the next small one, from
        // several slices, joins it (the tail is unsent): one chunk, one skb.
        copy_in(&mut s, &pool, &[IoSlice::new(b"hello")], 5, GOAL);
        assert!(
            s.snd.tx_arena.capacity() >= ARENA - 8,
            "the arena was reserved once"
        );
        copy_in(
            &mut s,
            &pool,
            &[IoSlice::new(b"ab"), IoSlice::new(b"cd")],
            3,
            GOAL,
        );
        assert_eq!(chunks(&s), [8]);
        assert_eq!(&s.snd.sendq[0].data[..], b"helloabc");
        assert_eq!(s.snd.skbs, 1);
        // A large write: full 64 KiB buffers (two skbs each at this goal),
        // then a remainder of its own size.
        let big = vec![7u8; 2 * POOL_BUF + 1000];
        copy_in(&mut s, &pool, &[IoSlice::new(&big)], big.len(), GOAL);
        assert_eq!(chunks(&s)[1..], [POOL_BUF, POOL_BUF, 1000]);
        assert_eq!(s.snd.skbs, 1 + 3 + 3 + 1);
        assert!(s
            .snd
            .sendq
            .iter()
            .skip(1)
            .all(|c| c.data.iter().all(|&b| b == 7)));
        // A small write joins the remainder.
        copy_in(&mut s, &pool, &[IoSlice::new(&big)], 600, GOAL);
        assert_eq!(chunks(&s).last(), Some(&1600));
        assert_eq!(s.snd.skbs, 8);
        // Not beyond the goal: a new chunk then.
        copy_in(&mut s, &pool, &[IoSlice::new(&big)], 600, 2000);
        assert_eq!(chunks(&s)[3..], [1600, 600]);
        assert_eq!(s.snd.skbs, 9);
        // The pooled buffers go back to the pool when their chunks drop.
        s.snd.sendq.clear();
        s.snd.skbs = 0;
        drop(s);
        let again = pool.get();
        assert_eq!(again.capacity(), POOL_BUF, "a recycled buffer");
    }

    #[test]
    fn test_tiny_writes_fill_skbs_up_to_the_goal() {
        let ns = Netns::new();
        let sk = Sock::new(&ns.0, |_| {});
        let pool = Arc::new(BufPool::default());
        let mut s = sk.lock();
        for i in 0..10_000u32 {
            copy_in(&mut s, &pool, &[IoSlice::new(&[i as u8])], 1, 4096);
            s.snd.sendq_bytes += 1;
        }
        assert_eq!(chunks(&s), [4096, 4096, 1808]);
        assert_eq!(s.snd.skbs, 3);
        assert_eq!(
            s.wmem_queued(),
            10_000 + 3 * super::super::SKB_HEAD_TRUESIZE
        );
        let all: Vec<u8> = s
            .snd
            .sendq
            .iter()
            .flat_map(|c| c.data.iter().copied())
            .collect();
        assert!(all.iter().enumerate().all(|(i, &b)| b == i as u8));
        // Each joined chunk holds at most twice its bytes.
        let held: usize = std::mem::take(&mut *s.snd.sendq)
            .into_iter()
            .map(|c| c.data.try_into_mut().map_or(1 << 20, |m| m.capacity()))
            .sum();
        assert!(held <= 2 * 10_000, "held {held}");
        s.snd.sendq_bytes = 0;
        s.snd.skbs = 0;
    }

    #[test]
    fn test_sendmsg_refuses_before_the_handshake_and_after_shutdown() {
        let ns = Netns::new();
        let c = Socket::new(&ns);
        let r = c.poll_send(None, &[IoSlice::new(b"x")]);
        assert!(matches!(r, Poll::Ready(Err(ref e)) if e.raw_os_error() == Some(EPIPE)));
        let (_l, c, _s) = pair(&ns);
        c.shutdown_write().unwrap();
        let r = c.poll_send(None, &[IoSlice::new(b"x")]);
        assert!(matches!(r, Poll::Ready(Err(ref e)) if e.raw_os_error() == Some(EPIPE)));
    }

    #[test]
    fn test_close_with_nothing_unread_sends_fin_and_the_peer_reads_eof() {
        let ns = Netns::new();
        let (_l, c, s) = pair(&ns);
        send(&c, b"last words");
        drop(c);
        let mut buf = [0; 16];
        assert!(matches!(recv(&s, &mut buf), Poll::Ready(Ok(10))));
        assert!(
            matches!(recv(&s, &mut buf), Poll::Ready(Ok(0))),
            "EOF after the data"
        );
        let t = ns.tcp_stats();
        assert_eq!((t.out_rsts, t.tcp_abort_on_close), (0, 0));
        assert_eq!(s.state(), TcpState::CloseWait);
    }

    #[test]
    fn test_close_with_linger_zero_resets_and_counts_abort_on_data() {
        let ns = Netns::new();
        let (_l, c, s) = pair(&ns);
        c.set_linger(Some(Duration::ZERO)).unwrap();
        drop(c);
        let t = ns.tcp_stats();
        assert_eq!((t.tcp_abort_on_data, t.out_rsts), (1, 1));
        let mut buf = [0; 4];
        match recv(&s, &mut buf) {
            Poll::Ready(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_closing_a_listener_resets_the_children_not_yet_accepted() {
        let ns = Netns::new();
        let l = Socket::listen(&ns, addr("127.0.0.1:0"), 4).unwrap();
        let c = Socket::connect(&ns, l.local_addr().unwrap()).unwrap();
        assert_eq!(c.state(), TcpState::Established);
        drop(l);
        let mut buf = [0; 4];
        match recv(&c, &mut buf) {
            Poll::Ready(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET)),
            other => panic!("{other:?}"),
        }
        assert_eq!(ns.sockstat().orphan, 0);
    }

    #[test]
    fn test_close_with_unread_data_sends_rst_reported_once() {
        let ns = Netns::new();
        let (_l, c, s) = pair(&ns);
        send(&c, b"unread");
        drop(s);
        let t = ns.tcp_stats();
        assert_eq!((t.tcp_abort_on_close, t.out_rsts), (1, 1));
        let mut buf = [0; 8];
        match recv(&c, &mut buf) {
            Poll::Ready(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(recv(&c, &mut buf), Poll::Ready(Ok(0))));
        let e = c.poll_send(None, &[IoSlice::new(b"x")]);
        assert!(matches!(e, Poll::Ready(Err(ref e)) if e.raw_os_error() == Some(libc::EPIPE)));
        assert_eq!(
            c.peer_addr().unwrap_err().raw_os_error(),
            Some(libc::ENOTCONN)
        );
    }
}
