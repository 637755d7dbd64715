//! The socket lookup tables of a namespace (net/ipv4/inet_hashtables.c,
//! `struct inet_hashinfo`): `ehash` (connections by 4-tuple), `lhash`
//! (listeners by port), `bhash` (who holds a port), with the bind-conflict
//! rules and the TIME_WAIT entries (tcp/minisocks.rs) beside them.
//!
//! The port searches live where the kernel has them: `connect()`'s
//! ephemeral port (`__inet_hash_connect`) here, `bind(0)`'s
//! (`inet_csk_get_port`) in inet_connection_sock.rs; both walk the range
//! with [`port_offset`].
//!
//! Everything here runs under the namespace's `tables` lock; nothing else is
//! locked while it is held but the ksoftirqd timer list (lock order in
//! ARCHITECTURE.md).

use crate::errno::{err, EADDRNOTAVAIL};
use crate::tcp::minisocks::{tw_reuse_allowed, TwSock, TwTables};
use crate::tcp::Sock;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The hasher of the socket tables: FxHash (rustc-hash). The keys are
/// addresses the model builds itself, so SipHash's DoS resistance buys
/// nothing on the per-segment lookup.
pub(crate) type FxBuild = rustc_hash::FxBuildHasher;

/// Who holds a port in the bind table (`inet_bind_bucket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindKind {
    /// A listening socket.
    Listener,
    /// `bind()` without `listen()` yet.
    Bound,
    /// Autobound by `connect()` (`inet_hash_connect`).
    Connect,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct BindEntry {
    pub(crate) addr: IpAddr,
    pub(crate) sock_id: u64,
    pub(crate) kind: BindKind,
    /// `SO_REUSEADDR`.
    pub(crate) reuse: bool,
}

/// The socket lookup tables: `ehash` (by 4-tuple), `lhash` (listeners by
/// port), `bhash` (port owners), and the TIME_WAIT entries (`tw`, by
/// 4-tuple, holding their ports).
#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) ehash: HashMap<(SocketAddr, SocketAddr), Arc<Sock>, FxBuild>,
    /// Listeners by port, with their bound address (read without the
    /// socket lock).
    pub(crate) lhash: HashMap<u16, Vec<(IpAddr, Arc<Sock>)>, FxBuild>,
    pub(crate) bhash: HashMap<u16, Vec<BindEntry>, FxBuild>,
    pub(crate) connect_rover: u32,
    pub(crate) bind_rover: u32,
    /// TIME_WAIT bookkeeping (tcp/minisocks.rs).
    pub(crate) tw: TwTables,
}

/// Whether two bound addresses overlap: equal, or one is a wildcard that
/// covers the other (`[::]` is dual-stack, as tokio leaves `IPV6_V6ONLY` off).
pub(crate) fn addr_overlap(a: IpAddr, b: IpAddr) -> bool {
    fn covers(w: IpAddr, x: IpAddr) -> bool {
        match w {
            IpAddr::V6(v) if v.is_unspecified() => true,
            IpAddr::V4(v) if v.is_unspecified() => x.is_ipv4(),
            _ => false,
        }
    }
    a == b || covers(a, b) || covers(b, a)
}

impl Tables {
    /// `__inet_lookup_listener`: exact address first, then a wildcard.
    pub(crate) fn lookup_listener(&self, daddr: SocketAddr) -> Option<Arc<Sock>> {
        let list = self.lhash.get(&daddr.port())?;
        let mut wildcard = None;
        for (ip, l) in list {
            let ip = *ip;
            if ip == daddr.ip() {
                return Some(l.clone());
            }
            if wildcard.is_none() && ip.is_unspecified() && addr_overlap(ip, daddr.ip()) {
                wildcard = Some(l.clone());
            }
        }
        wildcard
    }

    /// `inet_csk_bind_conflict`: another socket on `port` with an
    /// overlapping address, unless both set `SO_REUSEADDR` and the other is
    /// not listening.
    pub(crate) fn bind_conflict(&self, port: u16, ip: IpAddr, reuse: bool, sock_id: u64) -> bool {
        self.bhash.get(&port).is_some_and(|v| {
            v.iter().any(|e| {
                e.sock_id != sock_id
                    && addr_overlap(e.addr, ip)
                    && !(reuse && e.reuse && e.kind != BindKind::Listener)
            })
        })
    }

    pub(crate) fn bhash_remove(&mut self, port: u16, sock_id: u64) {
        if let Some(v) = self.bhash.get_mut(&port) {
            v.retain(|e| e.sock_id != sock_id);
            if v.is_empty() {
                self.bhash.remove(&port);
            }
        }
    }
}

/// The `i`-th candidate offset into a port range of `range` ports, starting
/// at `start`: first every offset of parity `parity`, then the others. Linux
/// (since 4.6) has `connect` prefer even offsets and `bind(0)` odd ones, so
/// the two rarely collide, and a client never lands on a port a test just
/// freed with `bind(0)`.
pub(crate) fn port_offset(start: u32, i: u32, range: u32, parity: u32) -> u32 {
    let same = range.div_ceil(2) - (range % 2) * parity;
    let (k, p) = if i < same {
        (i, parity)
    } else {
        (i - same, parity ^ 1)
    };
    let count = if p == 0 { range.div_ceil(2) } else { range / 2 };
    let base = (start / 2) % count.max(1);
    2 * ((base + k) % count.max(1)) + p
}

/// `__inet_hash_connect`'s search: an ephemeral port for a connection from
/// `saddr` to `daddr` whose 4-tuple is unused (or in TIME_WAIT that
/// `tcp_tw_reuse` lets us take over, or expired) and that no `bind()` owns.
/// Even offsets first, from the rover on. The port found is entered in
/// `bhash` for `sock_id`; returned with the TIME_WAIT entry taken over, if
/// any. `None`: every port of `range` is taken (`EADDRNOTAVAIL`).
pub(crate) fn inet_hash_connect(
    t: &mut Tables,
    saddr: IpAddr,
    daddr: SocketAddr,
    sock_id: u64,
    (lo, hi): (u16, u16),
    tcp_tw_reuse: u8,
    now: u64,
) -> Option<(u16, Option<TwSock>)> {
    let range = u32::from(hi) - u32::from(lo) + 1;
    let start = t.connect_rover;
    let mut recycle = None;
    let mut chosen = None;
    for i in 0..range {
        let off = port_offset(start, i, range, 0);
        let port = (u32::from(lo) + off) as u16;
        if let Some(owners) = t.bhash.get(&port) {
            if owners.iter().any(|e| e.kind != BindKind::Connect) {
                continue;
            }
        }
        if t.tw_port_bound(port) {
            continue;
        }
        let key = (SocketAddr::new(saddr, port), daddr);
        if t.ehash.contains_key(&key) {
            continue;
        }
        // The kernel would also wait tcp_tw_reuse_delay (1 s) after the
        // entry was made; the model reuses at once (it has no timestamps to
        // order the two incarnations by anyway).
        if tw_reuse_allowed(tcp_tw_reuse, &key) {
            recycle = t.tw_kill(&key);
        } else if let Some(tw) = t.tw.get(&key) {
            if tw.expires > now {
                continue;
            }
            recycle = t.tw_kill(&key);
        }
        chosen = Some((port, off));
        break;
    }
    let (port, off) = chosen?;
    t.connect_rover = off + 2;
    t.bhash.entry(port).or_default().push(BindEntry {
        addr: saddr,
        sock_id,
        kind: BindKind::Connect,
        reuse: false,
    });
    Some((port, recycle))
}

/// `__inet_check_established` without a `twp`, for `connect()` on a bound
/// port: `EADDRNOTAVAIL` if the 4-tuple `key` has a connection; a TIME_WAIT
/// entry on it is taken over (returned) whatever `tcp_tw_reuse` says
/// (Linux requires timestamps, which loopback always has).
pub(crate) fn inet_check_established(
    t: &mut Tables,
    key: &(SocketAddr, SocketAddr),
) -> io::Result<Option<TwSock>> {
    if t.ehash.contains_key(key) {
        return Err(err(EADDRNOTAVAIL));
    }
    Ok(t.tw_kill(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::af_inet::Socket;
    use crate::netns::Netns;
    use crate::tests::addr;

    #[test]
    fn test_port_offset_visits_every_offset_once_preferred_parity_first() {
        for range in [1u32, 2, 3, 10, 11] {
            for parity in [0, 1] {
                for start in [0u32, 3, 7, 100] {
                    let offs: Vec<u32> = (0..range)
                        .map(|i| port_offset(start, i, range, parity))
                        .collect();
                    let mut sorted = offs.clone();
                    sorted.sort();
                    assert_eq!(
                        sorted,
                        (0..range).collect::<Vec<_>>(),
                        "{range} {parity} {start}"
                    );
                    // Every offset of the preferred parity comes before any other.
                    let first_other = offs.iter().position(|o| o % 2 != parity);
                    if let Some(k) = first_other {
                        assert!(offs[k..].iter().all(|o| o % 2 != parity), "{offs:?}");
                    }
                }
            }
        }
    }

    fn bind_entry(addr: IpAddr, sock_id: u64, kind: BindKind) -> BindEntry {
        BindEntry {
            addr,
            sock_id,
            kind,
            reuse: false,
        }
    }

    #[test]
    fn test_inet_hash_connect_takes_even_offsets_first_and_moves_the_rover() {
        let mut t = Tables::default();
        let (s, d) = (addr("127.0.0.1:0").ip(), addr("127.0.0.1:80"));
        let range = (40000, 40009);
        let (p1, tw) = inet_hash_connect(&mut t, s, d, 1, range, 2, 0).unwrap();
        assert!(tw.is_none());
        assert_eq!((p1 - 40000) % 2, 0, "connect prefers even offsets");
        assert_eq!(t.connect_rover, u32::from(p1 - 40000) + 2);
        assert_eq!(t.bhash[&p1][0].kind, BindKind::Connect);
        // The port is not taken for the same destination until its entry is
        // in ehash; the search only looks at ehash, bhash and TIME_WAIT.
        let (p2, _) = inet_hash_connect(&mut t, s, d, 2, range, 2, 0).unwrap();
        assert_ne!(p1, p2, "the rover moved on");
    }

    #[test]
    fn test_inet_hash_connect_skips_ports_bound_by_bind_and_runs_out() {
        let mut t = Tables::default();
        let (s, d) = (addr("127.0.0.1:0").ip(), addr("127.0.0.1:80"));
        t.bhash
            .entry(40000)
            .or_default()
            .push(bind_entry(s, 9, BindKind::Bound));
        t.bhash
            .entry(40001)
            .or_default()
            .push(bind_entry(s, 8, BindKind::Listener));
        assert!(inet_hash_connect(&mut t, s, d, 1, (40000, 40001), 2, 0).is_none());
        // A port another connection autobound is shared, for another 4-tuple.
        t.bhash.clear();
        t.bhash
            .entry(40000)
            .or_default()
            .push(bind_entry(s, 9, BindKind::Connect));
        let (p, _) = inet_hash_connect(&mut t, s, d, 1, (40000, 40000), 2, 0).unwrap();
        assert_eq!(p, 40000);
        assert_eq!(t.bhash[&40000].len(), 2);
    }

    #[test]
    fn test_inet_check_established_refuses_a_used_4_tuple() {
        let ns = Netns::new();
        let l = Socket::listen(&ns, addr("127.0.0.1:7000"), 4).unwrap();
        let c = Socket::connect(&ns, addr("127.0.0.1:7000")).unwrap();
        let key = (c.local_addr().unwrap(), addr("127.0.0.1:7000"));
        let mut t = crate::sync::write(&ns.0.tables);
        let e = inet_check_established(&mut t, &key).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
        let free = (addr("127.0.0.1:1"), addr("127.0.0.1:7000"));
        assert!(inet_check_established(&mut t, &free).unwrap().is_none());
        drop(t);
        drop((c, l));
    }

    #[test]
    fn test_ephemeral_ports_come_from_the_range_and_run_out() {
        let ns = Netns::new();
        ns.set_sysctl(|s| s.ip_local_port_range = (40000, 40001))
            .unwrap();
        let l = Socket::listen(&ns, addr("127.0.0.1:5000"), 16).unwrap();
        let a = Socket::connect(&ns, addr("127.0.0.1:5000")).unwrap();
        let b = Socket::connect(&ns, addr("127.0.0.1:5000")).unwrap();
        let mut ports = [
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        ];
        ports.sort();
        assert_eq!(ports, [40000, 40001]);
        let e = Socket::connect(&ns, addr("127.0.0.1:5000")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
        drop(l);
    }
}
