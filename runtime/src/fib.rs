//! The forwarding information base: the kernel's local routing table (ID 255).
//!
//! With no policy rules the kernel's `fib_lookup` consults the local table
//! first. On a fresh namespace it holds (`ip route show table local`):
//!
//! ```text
//! local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1
//! local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1
//! broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1
//! local ::1 dev lo proto kernel metric 0 pref medium
//! ```
//!
//! A prefix is local only on a loopback device, so every 127.x.y.z is this
//! host. A hit of type `RTN_LOCAL` sends the packet out through `lo` with the
//! route's preferred source; anything else is not reachable through the model.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{read, write};
use std::net::IpAddr;

/// Route types, as `rtm_type` (`RTN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteType {
    /// `RTN_LOCAL`: the destination is this host; delivered through `lo`.
    Local,
    /// `RTN_BROADCAST`: TCP refuses it (`ENETUNREACH`).
    Broadcast,
}

/// One entry of the local table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FibEntry {
    /// Destination prefix.
    pub dst: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Route type.
    pub rtype: RouteType,
    /// Preferred source address (`src`), used for unbound sockets.
    pub prefsrc: IpAddr,
    /// Output device index (`lo` is 1).
    pub ifindex: u32,
}

/// The result of `fib_lookup`: what `ip route get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FibResult {
    /// Route type.
    pub(crate) rtype: RouteType,
    /// Preferred source address.
    pub(crate) prefsrc: IpAddr,
    /// Output device index.
    pub(crate) ifindex: u32,
}

/// A route cached on a socket (`sk_dst_cache`), valid while the table's
/// generation is unchanged (the kernel's `__sk_dst_check`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DstEntry {
    pub(crate) genid: u32,
    pub(crate) ifindex: u32,
}

/// The local table of one namespace.
#[derive(Debug)]
pub(crate) struct Fib {
    table: crate::sync::RwLock<Table>,
    genid: AtomicU32,
}

/// The entries as `ip route` lists them, and beside them their lookup
/// keys, computed once when the table changes (as the kernel's trie keeps
/// its keys), so a lookup compares words instead of decoding addresses.
/// The keys are kept per family, longest prefix first (of equally long
/// prefixes, the one listed last first): the first key that matches is
/// the longest-prefix match.
#[derive(Debug)]
struct Table {
    entries: Vec<FibEntry>,
    keys4: Vec<Key<u32>>,
    keys6: Vec<Key<u128>>,
}

/// One entry's prefix as a masked word of its family, and what a hit
/// returns.
#[derive(Debug, Clone, Copy)]
struct Key<W> {
    net: W,
    mask: W,
    result: FibResult,
}

impl Table {
    fn new(entries: Vec<FibEntry>) -> Table {
        let mut t = Table {
            entries,
            keys4: Vec::new(),
            keys6: Vec::new(),
        };
        t.rekey();
        t
    }

    /// Recomputes the keys after the entries changed.
    fn rekey(&mut self) {
        // Last listed first, then (a stable sort) longest prefix first.
        let mut order: Vec<&FibEntry> = self.entries.iter().rev().collect();
        order.sort_by_key(|e| std::cmp::Reverse(e.prefix_len));
        let result = |e: &FibEntry| FibResult {
            rtype: e.rtype,
            prefsrc: e.prefsrc,
            ifindex: e.ifindex,
        };
        self.keys4.clear();
        self.keys6.clear();
        for e in order {
            match e.dst {
                IpAddr::V4(a) => {
                    let len = u32::from(e.prefix_len.min(32));
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    self.keys4.push(Key {
                        net: u32::from(a) & mask,
                        mask,
                        result: result(e),
                    });
                }
                IpAddr::V6(a) => {
                    let len = u32::from(e.prefix_len.min(128));
                    let mask = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - len)
                    };
                    self.keys6.push(Key {
                        net: u128::from(a) & mask,
                        mask,
                        result: result(e),
                    });
                }
            }
        }
    }
}

/// The loopback device's index.
pub(crate) const LOOPBACK_IFINDEX: u32 = 1;

impl Fib {
    pub(crate) fn new() -> Fib {
        use std::net::{Ipv4Addr, Ipv6Addr};
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let entries = vec![
            FibEntry {
                dst: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix_len: 8,
                rtype: RouteType::Local,
                prefsrc: lo4,
                ifindex: LOOPBACK_IFINDEX,
            },
            FibEntry {
                dst: lo4,
                prefix_len: 32,
                rtype: RouteType::Local,
                prefsrc: lo4,
                ifindex: LOOPBACK_IFINDEX,
            },
            FibEntry {
                dst: IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255)),
                prefix_len: 32,
                rtype: RouteType::Broadcast,
                prefsrc: lo4,
                ifindex: LOOPBACK_IFINDEX,
            },
            FibEntry {
                dst: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix_len: 128,
                rtype: RouteType::Local,
                prefsrc: IpAddr::V6(Ipv6Addr::LOCALHOST),
                ifindex: LOOPBACK_IFINDEX,
            },
        ];
        Fib {
            table: crate::sync::RwLock::new(Table::new(entries)),
            genid: AtomicU32::new(0),
        }
    }

    /// `fib_lookup`: longest-prefix match in the local table.
    /// Of equally long prefixes, the one listed last wins.
    pub(crate) fn fib_lookup(&self, daddr: IpAddr) -> Option<FibResult> {
        let t = read(&self.table);
        match daddr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                t.keys4
                    .iter()
                    .find(|k| bits & k.mask == k.net)
                    .map(|k| k.result)
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                t.keys6
                    .iter()
                    .find(|k| bits & k.mask == k.net)
                    .map(|k| k.result)
            }
        }
    }

    /// Adds `local ADDR dev lo src ADDR` (a /32 or /128), as `ip addr add`
    /// does, and invalidates cached routes.
    pub(crate) fn add_local(&self, addr: IpAddr) {
        let mut t = write(&self.table);
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        if !t
            .entries
            .iter()
            .any(|e| e.dst == addr && e.prefix_len == prefix_len)
        {
            t.entries.push(FibEntry {
                dst: addr,
                prefix_len,
                rtype: RouteType::Local,
                prefsrc: addr,
                ifindex: LOOPBACK_IFINDEX,
            });
            t.rekey();
        }
        self.genid.fetch_add(1, Ordering::AcqRel);
    }

    /// Removes an address added by [`add_local`](Fib::add_local).
    pub(crate) fn del_local(&self, addr: IpAddr) {
        let mut t = write(&self.table);
        let is_builtin = |e: &FibEntry| {
            matches!(e.dst, IpAddr::V4(v) if v.octets()[0] == 127)
                || e.dst == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        };
        t.entries
            .retain(|e| !(e.dst == addr && e.prefix_len >= 32 && !is_builtin(e)));
        t.rekey();
        self.genid.fetch_add(1, Ordering::AcqRel);
    }

    /// The table's entries, as `ip route show table local` lists them.
    pub(crate) fn entries(&self) -> Vec<FibEntry> {
        read(&self.table).entries.clone()
    }

    /// The table generation; a cached [`DstEntry`] is valid while it matches.
    #[inline]
    pub(crate) fn genid(&self) -> u32 {
        self.genid.load(Ordering::Acquire)
    }

    /// `__sk_dst_check` + `ip_route_output_ports`: the cached route if still
    /// valid, else a fresh lookup (of the address `daddr` gives, asked only
    /// then) stored back into the cache.
    #[inline]
    pub(crate) fn dst_check(
        &self,
        cache: &mut Option<DstEntry>,
        daddr: impl FnOnce() -> IpAddr,
    ) -> Option<DstEntry> {
        let genid = self.genid();
        match cache {
            Some(d) if d.genid == genid => Some(*d),
            _ => {
                let r = self.fib_lookup(daddr())?;
                if r.rtype != RouteType::Local {
                    return None;
                }
                let d = DstEntry {
                    genid,
                    ifindex: r.ifindex,
                };
                *cache = Some(d);
                Some(d)
            }
        }
    }
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`; the model routes v4-mapped traffic as
/// IPv4, as a dual-stack socket's packets are.
#[inline]
pub(crate) fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_127_address_is_local_with_source_127_0_0_1() {
        let fib = Fib::new();
        let r = fib.fib_lookup("127.0.0.2".parse().unwrap()).unwrap();
        assert_eq!(r.rtype, RouteType::Local);
        assert_eq!(r.prefsrc, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.ifindex, LOOPBACK_IFINDEX);
    }

    #[test]
    fn broadcast_and_foreign_addresses_are_not_local() {
        let fib = Fib::new();
        let b = fib.fib_lookup("127.255.255.255".parse().unwrap()).unwrap();
        assert_eq!(b.rtype, RouteType::Broadcast);
        assert!(fib.fib_lookup("10.0.0.1".parse().unwrap()).is_none());
        assert!(fib.fib_lookup("::2".parse().unwrap()).is_none());
        assert_eq!(
            fib.fib_lookup("::1".parse().unwrap()).unwrap().prefsrc,
            "::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn cached_route_is_reused_while_the_generation_holds() {
        let fib = Fib::new();
        let mut cache = None;
        let d = fib
            .dst_check(&mut cache, || "127.0.0.1".parse().unwrap())
            .unwrap();
        assert_eq!(d.genid, 0);
        assert!(cache.is_some());
        assert!(fib
            .dst_check(&mut None, || "192.0.2.1".parse().unwrap())
            .is_none());
    }
}
