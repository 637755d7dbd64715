//! The socket lookup tables of a namespace (net/ipv4/inet_hashtables.c,
//! `struct inet_hashinfo`): `ehash` (connections by 4-tuple), `lhash`
//! (listeners by port), `bhash` (who holds a port), with the bind-conflict
//! rules and the TIME_WAIT entries (tcp/minisocks.rs) beside them.
//!
//! Everything here runs under the namespace's `tables` lock; nothing else is
//! locked while it is held but the ksoftirqd timer list (lock order in
//! ARCHITECTURE.md).

use crate::tcp::minisocks::TwTables;
use crate::tcp::Sock;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A small multiplicative hasher for the socket tables: the keys are
/// addresses we build ourselves, so SipHash's DoS resistance buys nothing on
/// the per-segment lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i))
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i))
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i))
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

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
