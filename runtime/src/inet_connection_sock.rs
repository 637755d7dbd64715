//! The connection-oriented socket's port and listen calls
//! (net/ipv4/inet_connection_sock.c): `inet_csk_get_port` (what `bind()`
//! does to the bind table, with the `bind(0)` search
//! `inet_csk_find_open_port`) and `inet_csk_listen_start` (the port
//! re-checked as a listener's, then hashed in `lhash`).
//!
//! Called from af_inet.rs with the namespace's `tables` lock held.
//!
//! [`AcceptqFull`] is the accept queue's fault hook: the listener's SYN
//! handling (tcp/input.rs) asks it whether a queue must look full; the
//! fault code (netem.rs's `fill_accept_queue`) only adds and removes
//! entries, so TCP input does not reach into the qdisc.

use crate::errno::{err, EADDRINUSE};
use crate::inet_hashtables::{BindEntry, BindKind, Listening, Tables};
use crate::sync::atomic::{AtomicBool, Ordering::Relaxed};
use crate::sync::lock;
use crate::sync::{Arc, Mutex};
use crate::tcp::Sock;
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Listeners whose accept queue is made to look full, by address (an
/// unspecified address covers every listener on the port), each entry under
/// the id of the fault that added it.
#[derive(Default)]
pub(crate) struct AcceptqFull {
    /// Whether there is any entry: the usual SYN reads this flag only.
    on: AtomicBool,
    entries: Mutex<Vec<(u64, SocketAddr)>>,
}

impl AcceptqFull {
    /// Makes the queue of the listener on `addr` look full, under `id`.
    pub(crate) fn add(&self, id: u64, addr: SocketAddr) {
        let mut e = lock(&self.entries);
        e.push((id, addr));
        self.on.store(true, Relaxed);
    }

    /// Removes the entry added under `id`, if any.
    pub(crate) fn remove(&self, id: u64) {
        let mut e = lock(&self.entries);
        e.retain(|(i, _)| *i != id);
        self.on.store(!e.is_empty(), Relaxed);
    }

    /// Whether a SYN to `daddr` must find the listener's accept queue full
    /// (`sk_acceptq_is_full`'s fault half).
    pub(crate) fn covers(&self, daddr: SocketAddr) -> bool {
        if !self.on.load(Relaxed) {
            return false;
        }
        lock(&self.entries).iter().any(|(_, a)| {
            a.port() == daddr.port() && (a.ip().is_unspecified() || a.ip() == daddr.ip())
        })
    }
}

/// `inet_csk_get_port`: takes `port` on `ip` for socket `sock_id` (`reuse`:
/// `SO_REUSEADDR`, `reuseport`: `SO_REUSEPORT`), or with port 0 a free one
/// from `range` (`inet_csk_find_open_port`); enters it in `bhash` and
/// returns it. `now`: the namespace's ms clock, for TIME_WAIT entries.
///
/// # Errors
/// `EADDRINUSE` when the port is taken on an overlapping address (by a
/// socket or a TIME_WAIT entry), or no port of the range is free.
pub(crate) fn inet_csk_get_port(
    t: &mut Tables,
    ip: IpAddr,
    port: u16,
    (reuse, reuseport): (bool, bool),
    sock_id: u64,
    range: (u16, u16),
    now: u64,
) -> io::Result<u16> {
    let port = if port != 0 {
        if t.bind_conflict(port, ip, (reuse, reuseport), sock_id)
            || t.tw_bind_conflict(port, ip, reuse, now)
        {
            return Err(err(EADDRINUSE));
        }
        port
    } else {
        inet_csk_find_open_port(t, ip, reuse, range).ok_or_else(|| err(EADDRINUSE))?
    };
    t.bhash.entry(port).or_default().push(BindEntry {
        addr: ip,
        sock_id,
        kind: BindKind::Bound,
        reuse,
        reuseport,
    });
    Ok(port)
}

/// `inet_csk_find_open_port`: a port of `range` that no socket on an
/// overlapping address and no TIME_WAIT entry holds.
///
/// As the kernel: with `SO_REUSEADDR` (`reuse`) the lower half of the range
/// is tried first, then the upper half; within a (half) range the walk
/// starts at a random offset made odd, so ports of the parity opposite to
/// `low`'s come first (`__inet_hash_connect` favours `low`'s parity), step
/// 2, wrapping, then the other parity. (`ip_autobind_reuse` is 0, so there
/// is no relaxed third pass.)
fn inet_csk_find_open_port(
    t: &mut Tables,
    ip: IpAddr,
    reuse: bool,
    (lo, hi): (u16, u16),
) -> Option<u16> {
    let mut attempt_half = u8::from(reuse);
    loop {
        let mut low = u32::from(lo);
        let mut high = u32::from(hi) + 1;
        if high.saturating_sub(low) < 4 {
            attempt_half = 0;
        }
        if attempt_half != 0 {
            let half = low + (((high - low) >> 2) << 1);
            if attempt_half == 1 {
                high = half;
            } else {
                low = half;
            }
        }
        let mut remaining = high.saturating_sub(low);
        if remaining == 0 {
            return None;
        }
        if remaining > 1 {
            remaining &= !1;
        }
        let mut offset = t.secret.random_below(remaining) | 1;
        loop {
            let mut port = low + offset;
            let mut i = 0;
            while i < remaining {
                if port >= high {
                    port -= remaining;
                }
                let p = port as u16;
                if !t.bind_conflict_strict(p, ip) && !t.tw_port_used(p) {
                    return Some(p);
                }
                i += 2;
                port += 2;
            }
            offset = offset.wrapping_sub(1);
            if offset & 1 == 1 {
                break;
            }
        }
        if attempt_half == 1 {
            attempt_half = 2;
            continue;
        }
        return None;
    }
}

/// `inet_csk_listen_start`: re-checks `sk`'s port (bound at `local`) now as
/// a listener's (a listener conflicts even with `SO_REUSEADDR` sockets),
/// marks its bind entry a listener's and hashes it in `lhash`.
///
/// # Errors
/// `EADDRINUSE` if another socket or a TIME_WAIT entry holds the port on an
/// overlapping address.
pub(crate) fn inet_csk_listen_start(
    t: &mut Tables,
    sk: &Arc<Sock>,
    local: SocketAddr,
    now: u64,
) -> io::Result<()> {
    let (port, ip, id) = (local.port(), local.ip(), sk.id);
    let opts = t
        .bhash
        .get(&port)
        .and_then(|v| v.iter().find(|e| e.sock_id == id))
        .map_or((false, false), |e| (e.reuse, e.reuseport));
    if t.bind_conflict(port, ip, opts, id) || t.tw_bind_conflict(port, ip, opts.0, now) {
        return Err(err(EADDRINUSE));
    }
    if let Some(e) = t
        .bhash
        .get_mut(&port)
        .and_then(|v| v.iter_mut().find(|e| e.sock_id == id))
    {
        e.kind = BindKind::Listener;
    }
    t.lhash.entry(port).or_default().push(Listening {
        ip,
        reuseport: opts.1,
        sk: sk.clone(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::af_inet::Socket;
    use crate::netns::Netns;
    use crate::tests::addr;

    #[test]
    fn test_bind_0_takes_odd_ports_first_lower_half_first_with_reuseaddr() {
        let ip = addr("127.0.0.1:0").ip();
        let mut t = Tables::default();
        let range = (40000, 40999);
        let mut lower = 0;
        for id in 1..=200 {
            let reuse = id % 2 == 0;
            let p = inet_csk_get_port(&mut t, ip, 0, (reuse, false), id, range, 0).unwrap();
            assert_eq!(p % 2, 1, "bind(0) prefers the parity connect avoids");
            assert_eq!(t.bhash[&p][0].kind, BindKind::Bound);
            if reuse {
                // half = 40000 + ((1000 >> 2) << 1) = 40500
                assert!(p < 40500, "SO_REUSEADDR: the lower half first");
                lower += 1;
            }
        }
        assert_eq!(lower, 100);
        // Every port of a two-port range, then EADDRINUSE.
        let mut t = Tables::default();
        let a = inet_csk_get_port(&mut t, ip, 0, (false, false), 1, (40000, 40001), 0).unwrap();
        let b = inet_csk_get_port(&mut t, ip, 0, (false, false), 2, (40000, 40001), 0).unwrap();
        assert_eq!((a, b), (40001, 40000));
        let e = inet_csk_get_port(&mut t, ip, 0, (false, false), 3, (40000, 40001), 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
        // A port held on another address is free for this one.
        let other = addr("127.0.0.2:0").ip();
        let c = inet_csk_get_port(&mut t, other, 0, (false, false), 4, (40000, 40001), 0).unwrap();
        assert!(c == 40000 || c == 40001);
    }

    #[test]
    fn test_so_reuseport_sockets_share_a_port_even_listening() {
        let mut t = Tables::default();
        let ip = addr("127.0.0.1:0").ip();
        let range = (40000, 40009);
        inet_csk_get_port(&mut t, ip, 5000, (false, true), 1, range, 0).unwrap();
        inet_csk_get_port(&mut t, ip, 5000, (false, true), 2, range, 0).expect("both reuseport");
        let e = inet_csk_get_port(&mut t, ip, 5000, (true, false), 3, range, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
        let ns = Netns::new();
        let (sk1, sk2) = (
            crate::tcp::Sock::new(&ns.0, |_| {}),
            crate::tcp::Sock::new(&ns.0, |_| {}),
        );
        let local = SocketAddr::new(ip, 5000);
        inet_csk_listen_start(&mut t, &sk1, local, 0).unwrap();
        inet_csk_listen_start(&mut t, &sk2, local, 0).expect("a reuseport group");
        // The group: each member gets some of the 4-tuples.
        let mut seen = [0; 2];
        for sport in 1..=64u16 {
            let s = SocketAddr::new(ip, 30000 + sport);
            let l = t.lookup_listener(Some(s), local).unwrap();
            seen[usize::from(Arc::ptr_eq(&l, &sk2))] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
        t.lhash.clear();
    }

    #[test]
    fn test_so_reuseaddr_shares_a_port_until_one_listens() {
        let mut t = Tables::default();
        let ip = addr("127.0.0.1:0").ip();
        let range = (40000, 40009);
        inet_csk_get_port(&mut t, ip, 5000, (true, false), 1, range, 0).unwrap();
        inet_csk_get_port(&mut t, ip, 5000, (true, false), 2, range, 0).expect("both SO_REUSEADDR");
        let e = inet_csk_get_port(&mut t, ip, 5000, (false, false), 3, range, 0).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EADDRINUSE),
            "the third did not set it"
        );
        // One of them may listen (ids 1 and 2 are the namespace's first
        // sockets); then the other conflicts.
        let ns = Netns::new();
        let (sk1, sk2) = (
            crate::tcp::Sock::new(&ns.0, |_| {}),
            crate::tcp::Sock::new(&ns.0, |_| {}),
        );
        assert_eq!((sk1.id, sk2.id), (1, 2));
        let local = SocketAddr::new(ip, 5000);
        inet_csk_listen_start(&mut t, &sk1, local, 0).expect("the other only bound");
        assert_eq!(t.bhash[&5000][0].kind, BindKind::Listener);
        let e = inet_csk_listen_start(&mut t, &sk2, local, 0).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EADDRINUSE),
            "a listener holds it"
        );
        t.lhash.clear(); // the table holds sk1: let it go before the namespace
    }

    #[test]
    fn test_bind_rules_in_use_and_not_available() {
        let ns = Netns::new();
        let _a = Socket::listen(&ns, addr("127.0.0.1:8080"), 1).unwrap();
        let e = Socket::listen(&ns, addr("127.0.0.1:8080"), 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
        let e = Socket::listen(&ns, addr("0.0.0.0:8080"), 1).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EADDRINUSE),
            "wildcard overlaps"
        );
        let e = Socket::listen(&ns, addr("[::]:8080"), 1).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EADDRINUSE),
            "[::] is dual-stack"
        );
        Socket::listen(&ns, addr("127.0.0.2:8080"), 1).expect("another 127/8 address is free");
        Socket::listen(&ns, addr("[::1]:8080"), 1).expect("::1 does not overlap 127.0.0.1");
        let e = Socket::listen(&ns, addr("192.0.2.1:8080"), 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
        // Other namespaces have their own ports.
        Socket::listen(&Netns::new(), addr("127.0.0.1:8080"), 1).unwrap();
    }
}
