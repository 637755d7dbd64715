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
use crate::sync::Arc;
use crate::tcp::minisocks::{tw_reuse_allowed, TwSock, TwTables};
use crate::tcp::Sock;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};

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
    /// `SO_REUSEPORT`: listeners that all set it share the port as one
    /// group (`sock_reuseport`).
    pub(crate) reuseport: bool,
}

/// The holders of one port in `bhash` (an `inet_bind_bucket`'s owners): most
/// ports have one (a `connect()`'s ephemeral port), kept inline, so taking
/// a port and giving it back allocates nothing; a shared port's owners are
/// in a `Vec`. Read as a slice.
#[derive(Debug)]
pub(crate) enum Owners {
    /// A single owner.
    One(BindEntry),
    /// None, or more than one (in the order they took the port).
    Many(Vec<BindEntry>),
}

impl Default for Owners {
    fn default() -> Self {
        Owners::Many(Vec::new())
    }
}

impl std::ops::Deref for Owners {
    type Target = [BindEntry];

    #[inline]
    fn deref(&self) -> &[BindEntry] {
        match self {
            Owners::One(e) => std::slice::from_ref(e),
            Owners::Many(v) => v,
        }
    }
}

impl std::ops::DerefMut for Owners {
    #[inline]
    fn deref_mut(&mut self) -> &mut [BindEntry] {
        match self {
            Owners::One(e) => std::slice::from_mut(e),
            Owners::Many(v) => v,
        }
    }
}

impl Owners {
    /// Adds an owner, after the others.
    #[inline]
    pub(crate) fn push(&mut self, e: BindEntry) {
        match self {
            Owners::Many(v) if v.is_empty() => *self = Owners::One(e),
            Owners::Many(v) => v.push(e),
            Owners::One(first) => *self = Owners::Many(vec![*first, e]),
        }
    }

    /// Keeps the owners for which `keep` holds, in order.
    #[inline]
    fn retain(&mut self, mut keep: impl FnMut(&BindEntry) -> bool) {
        match self {
            Owners::One(e) => {
                if !keep(e) {
                    *self = Owners::default();
                }
            }
            Owners::Many(v) => v.retain(keep),
        }
    }
}

/// A listener in `lhash`: its address, whether its bind entry set
/// `SO_REUSEPORT` (fixed once it listens; kept here so a SYN's lookup
/// needs no `bhash` search), and the socket.
pub(crate) struct Listening {
    pub(crate) ip: IpAddr,
    pub(crate) reuseport: bool,
    pub(crate) sk: Arc<Sock>,
}

/// The socket lookup tables: `ehash` (by 4-tuple), `lhash` (listeners by
/// port), `bhash` (port owners), and the TIME_WAIT entries (`tw`, by
/// 4-tuple, holding their ports).
pub(crate) struct Tables {
    pub(crate) ehash: Ehash,
    /// Listeners by port, with their bound address (read without the
    /// socket lock).
    pub(crate) lhash: HashMap<u16, Vec<Listening>, FxBuild>,
    pub(crate) bhash: HashMap<u16, Owners, FxBuild>,
    /// `net_secret`, `table_perturb` and the port searches' random draws.
    pub(crate) secret: PortSecret,
    /// TIME_WAIT bookkeeping (tcp/minisocks.rs).
    pub(crate) tw: TwTables,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            ehash: Ehash::default(),
            lhash: HashMap::default(),
            bhash: HashMap::default(),
            secret: PortSecret::random(),
            tw: TwTables::default(),
        }
    }
}

/// A 4-tuple as `ehash` keys it: (local, remote).
pub(crate) type EhashKey = (SocketAddr, SocketAddr);

/// An entry of `ehash`: a socket under its 4-tuple.
type EhashEntry = (EhashKey, Arc<Sock>);

/// Slots of [`Ehash`]'s direct-mapped array (a power of two).
const EHASH_SLOTS: usize = 64;

/// `ehash`, the established table: the sockets by 4-tuple.
///
/// Two places hold its entries, each 4-tuple in one of them: a small
/// direct-mapped array of slots, chosen by the two ports alone, and a map
/// for the 4-tuples whose slot was taken when they were inserted. A lookup
/// (`tcp_v4_rcv`'s, for every segment) looks at the slot, then, only when
/// the map holds anything, in the map; with few connections the map stays
/// empty and neither a lookup nor an insertion or removal hashes the
/// addresses or probes a table. What a lookup finds is the same either
/// way: the socket inserted under that 4-tuple and not yet removed.
pub(crate) struct Ehash {
    slots: Box<[Option<EhashEntry>]>,
    map: HashMap<EhashKey, Arc<Sock>, FxBuild>,
}

impl Default for Ehash {
    fn default() -> Self {
        Ehash {
            slots: (0..EHASH_SLOTS).map(|_| None).collect(),
            map: HashMap::default(),
        }
    }
}

impl Ehash {
    /// The slot of a 4-tuple: its two ports, mixed.
    #[inline]
    fn slot(key: &EhashKey) -> usize {
        Self::slot_of(key.0.port(), key.1.port())
    }

    /// The slot of a 4-tuple with these local and remote ports.
    #[inline]
    fn slot_of(l: u16, r: u16) -> usize {
        (usize::from(l) ^ usize::from(r).rotate_left(3) ^ usize::from(r >> 6)) & (EHASH_SLOTS - 1)
    }

    /// `__inet_lookup_established`'s socket half.
    #[inline]
    pub(crate) fn get(&self, key: &EhashKey) -> Option<&Arc<Sock>> {
        self.lookup(&key.0, &key.1)
    }

    /// [`get`](Ehash::get) for a segment's addresses, without copying them
    /// into a key unless the map must be searched.
    #[inline]
    pub(crate) fn lookup(&self, local: &SocketAddr, remote: &SocketAddr) -> Option<&Arc<Sock>> {
        let i = Self::slot_of(local.port(), remote.port());
        if let Some(Some((k, sk))) = self.slots.get(i) {
            if k.0 == *local && k.1 == *remote {
                return Some(sk);
            }
        }
        if self.map.is_empty() {
            return None;
        }
        self.map.get(&(*local, *remote))
    }

    /// Whether a socket has the 4-tuple.
    #[inline]
    pub(crate) fn contains_key(&self, key: &EhashKey) -> bool {
        self.get(key).is_some()
    }

    /// Every socket in the table, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<Sock>> {
        self.slots
            .iter()
            .flatten()
            .map(|(_, sk)| sk)
            .chain(self.map.values())
    }

    /// Inserts (or replaces) the socket of a 4-tuple; returns the one it
    /// replaced.
    pub(crate) fn insert(&mut self, key: EhashKey, sk: Arc<Sock>) -> Option<Arc<Sock>> {
        let i = Self::slot(&key);
        if let Some(Some((k, old))) = self.slots.get_mut(i) {
            if *k == key {
                return Some(std::mem::replace(old, sk));
            }
        }
        if !self.map.is_empty() {
            if let Some(old) = self.map.get_mut(&key) {
                return Some(std::mem::replace(old, sk));
            }
        }
        match self.slots.get_mut(i) {
            Some(slot @ None) => *slot = Some((key, sk)),
            _ => {
                self.map.insert(key, sk);
            }
        }
        None
    }

    /// `inet_ehash_insert`: inserts the socket only if the 4-tuple is free;
    /// returns whether it did.
    pub(crate) fn try_insert(&mut self, key: EhashKey, sk: &Arc<Sock>) -> bool {
        // The usual case, decided at the slot: with the map empty, the
        // 4-tuple can only be in its slot; an empty slot takes it.
        if self.map.is_empty() {
            if let Some(slot) = self.slots.get_mut(Self::slot(&key)) {
                match slot {
                    Some((k, _)) if *k == key => return false,
                    Some(_) => {}
                    None => {
                        *slot = Some((key, sk.clone()));
                        return true;
                    }
                }
            }
        }
        if self.contains_key(&key) {
            return false;
        }
        self.insert(key, sk.clone());
        true
    }

    /// Removes the socket of a 4-tuple; returns it.
    pub(crate) fn remove(&mut self, key: &EhashKey) -> Option<Arc<Sock>> {
        if let Some(slot) = self.slots.get_mut(Self::slot(key)) {
            if slot.as_ref().is_some_and(|(k, _)| k == key) {
                return slot.take().map(|(_, sk)| sk);
            }
        }
        if self.map.is_empty() {
            return None;
        }
        self.map.remove(key)
    }
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
    /// `__inet_lookup_listener`: exact address first, then a wildcard. When
    /// the listener found is in a `SO_REUSEPORT` group (listeners on the same
    /// address and port that all set it), `reuseport_select_sock` picks one
    /// member by the 4-tuple's hash (`reciprocal_scale(inet_ehashfn(..), n)`)
    /// from the segment's source `saddr` (`None`: the group's first member).
    pub(crate) fn lookup_listener(
        &self,
        saddr: Option<SocketAddr>,
        daddr: SocketAddr,
    ) -> Option<Arc<Sock>> {
        let list = self.lhash.get(&daddr.port())?;
        let exact = list.iter().position(|l| l.ip == daddr.ip());
        let found = exact.or_else(|| {
            list.iter()
                .position(|l| l.ip.is_unspecified() && addr_overlap(l.ip, daddr.ip()))
        })?;
        let first = &list[found];
        if !first.reuseport {
            return Some(first.sk.clone());
        }
        // The group: every reuseport listener on this address, in listen
        // order.
        let group: Vec<&Arc<Sock>> = list
            .iter()
            .filter(|l| l.ip == first.ip && l.reuseport)
            .map(|l| &l.sk)
            .collect();
        let pick = match saddr {
            Some(s) if group.len() > 1 => {
                let hash = self.secret.ehashfn(s, daddr);
                ((u64::from(hash) * group.len() as u64) >> 32) as usize
            }
            _ => 0,
        };
        group.get(pick).map(|l| (*l).clone())
    }

    /// `inet_csk_bind_conflict` (with `relax` and `reuseport_ok`, as an
    /// explicit `bind()` and `listen()` check): another socket on `port`
    /// with an overlapping address, unless both set `SO_REUSEADDR` and the
    /// other is not listening, or both set `SO_REUSEPORT`.
    pub(crate) fn bind_conflict(
        &self,
        port: u16,
        ip: IpAddr,
        (reuse, reuseport): (bool, bool),
        sock_id: u64,
    ) -> bool {
        self.bhash.get(&port).is_some_and(|v| {
            v.iter().any(|e| {
                e.sock_id != sock_id
                    && addr_overlap(e.addr, ip)
                    && !(reuse && e.reuse && e.kind != BindKind::Listener)
                    && !(reuseport && e.reuseport)
            })
        })
    }

    /// `inet_csk_bind_conflict` without `relax` (the `bind(0)` search): any
    /// other socket on `port` with an overlapping address.
    pub(crate) fn bind_conflict_strict(&self, port: u16, ip: IpAddr) -> bool {
        self.bhash
            .get(&port)
            .is_some_and(|v| v.iter().any(|e| addr_overlap(e.addr, ip)))
    }

    /// Releases `sock_id`'s hold on `port` (`inet_put_port`), dropping the
    /// bucket when it empties: one probe of the table. Returns how the
    /// socket held the port, if it did.
    pub(crate) fn bhash_remove(&mut self, port: u16, sock_id: u64) -> Option<BindKind> {
        let std::collections::hash_map::Entry::Occupied(mut e) = self.bhash.entry(port) else {
            return None;
        };
        let mut kind = None;
        e.get_mut().retain(|b| {
            if b.sock_id == sock_id {
                kind.get_or_insert(b.kind);
                false
            } else {
                true
            }
        });
        if e.get().is_empty() {
            e.remove();
        }
        kind
    }
}

/// `INET_TABLE_PERTURB_SIZE` (net/ipv4/inet_hashtables.c): the slots of
/// `table_perturb`, indexed by the low 16 bits of the port offset hash.
const INET_TABLE_PERTURB_SIZE: u64 = 1 << 16;

/// `EPHEMERAL_PORT_SHUFFLE_PERIOD` (net/core/secure_seq.c, 10 * HZ) in ms:
/// the port offset hash changes once per period.
const EPHEMERAL_PORT_SHUFFLE_PERIOD_MS: u64 = 10_000;

/// SipHash-2-4 (the kernel's `siphash`, lib/siphash.c) of `words` under the
/// 128-bit key `k`, as `siphash_4u32` and friends compute it on words.
pub(crate) fn siphash(k: (u64, u64), words: &[u64]) -> u64 {
    let mut v = [
        k.0 ^ 0x736f_6d65_7073_6575,
        k.1 ^ 0x646f_7261_6e64_6f6d,
        k.0 ^ 0x6c79_6765_6e65_7261,
        k.1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    for &m in words {
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let b = (words.len() as u64 * 8) << 56;
    v[3] ^= b;
    round(&mut v);
    round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Up to six hash words, on the stack (two addresses, a port or two and the
/// epoch): the hashes of one connection allocate nothing.
struct Words {
    w: [u64; 6],
    n: usize,
}

impl Words {
    fn new() -> Words {
        Words { w: [0; 6], n: 0 }
    }

    fn push(&mut self, x: u64) {
        if let Some(slot) = self.w.get_mut(self.n) {
            *slot = x;
            self.n += 1;
        }
    }

    /// An address as hash words (IPv4 in one word, IPv6 in two).
    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v) => self.push(u64::from(u32::from(v))),
            IpAddr::V6(v) => {
                let x = u128::from(v);
                self.push((x >> 64) as u64);
                self.push(x as u64);
            }
        }
    }

    fn as_slice(&self) -> &[u64] {
        &self.w[..self.n]
    }
}

/// The namespace's `net_secret` and what is drawn from it: the key of the
/// port offset hash (`secure_ipv4_port_ephemeral`), the `table_perturb`
/// slots, and the generator standing in for `get_random_u32_below`. The
/// kernel draws all three at random once per boot; here they follow from
/// one 128-bit seed, so a run can be repeated port for port
/// ([`Netns::set_net_secret`](crate::Netns::set_net_secret)).
pub(crate) struct PortSecret {
    seed: u128,
    key: (u64, u64),
    /// `table_perturb`, sparse: a slot not in the map still has its
    /// initial (seeded) value.
    perturb: HashMap<u16, u32, FxBuild>,
    rng: u64,
    /// The last `port_offset` computed, with what it was computed from
    /// (saddr, daddr, epoch): the hash depends on nothing else, so the
    /// connections to one destination within an epoch hash once.
    last_offset: Option<(IpAddr, SocketAddr, u64, u64)>,
}

impl PortSecret {
    /// The state for `seed`.
    pub(crate) fn new(seed: u128) -> PortSecret {
        let key = ((seed >> 64) as u64, seed as u64);
        PortSecret {
            seed,
            key,
            perturb: HashMap::default(),
            rng: siphash(key, &[u64::MAX]),
            last_offset: None,
        }
    }

    /// A seed of its own for a new namespace, as the kernel's boot-time
    /// random secret (std's per-process random SipHash keys, mixed with a
    /// counter so two namespaces differ).
    pub(crate) fn random() -> PortSecret {
        use crate::sync::atomic::Ordering::Relaxed;
        use std::hash::{BuildHasher, Hasher};
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, Relaxed);
        let mut a = std::collections::hash_map::RandomState::new().build_hasher();
        a.write_u64(n);
        let mut b = std::collections::hash_map::RandomState::new().build_hasher();
        b.write_u64(!n);
        PortSecret::new((u128::from(a.finish()) << 64) | u128::from(b.finish()))
    }

    /// The seed this state was made from.
    pub(crate) fn seed(&self) -> u128 {
        self.seed
    }

    /// `get_random_u32_below(n)` (0 for `n == 0`), from the seeded generator
    /// (splitmix64).
    pub(crate) fn random_below(&mut self, n: u32) -> u32 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((u64::from(z as u32) * u64::from(n)) >> 32) as u32
    }

    fn perturb(&self, index: u16) -> u32 {
        match self.perturb.get(&index) {
            Some(v) => *v,
            None => siphash(self.key, &[u64::from(index), 0x7065_7274]) as u32,
        }
    }

    /// `secure_ipv4_port_ephemeral` / `secure_ipv6_port_ephemeral`:
    /// `siphash(saddr, daddr, dport, jiffies / EPHEMERAL_PORT_SHUFFLE_PERIOD)`
    /// under `net_secret`.
    pub(crate) fn port_offset(&mut self, saddr: IpAddr, daddr: SocketAddr, now_ms: u64) -> u64 {
        let epoch = now_ms / EPHEMERAL_PORT_SHUFFLE_PERIOD_MS;
        if let Some((s, d, e, h)) = self.last_offset {
            if s == saddr && d == daddr && e == epoch {
                return h;
            }
        }
        let mut w = Words::new();
        w.ip(saddr);
        w.ip(daddr.ip());
        w.push(u64::from(daddr.port()));
        w.push(epoch);
        let h = siphash(self.key, w.as_slice());
        self.last_offset = Some((saddr, daddr, epoch, h));
        h
    }

    /// `inet_ehashfn`: the hash of a 4-tuple that `reuseport_select_sock`
    /// spreads connections over a reuseport group with.
    pub(crate) fn ehashfn(&self, saddr: SocketAddr, daddr: SocketAddr) -> u32 {
        let mut w = Words::new();
        w.ip(daddr.ip());
        w.push(u64::from(daddr.port()));
        w.ip(saddr.ip());
        w.push(u64::from(saddr.port()));
        siphash(self.key, w.as_slice()) as u32
    }
}

/// `__inet_hash_connect`'s search: an ephemeral port for a connection from
/// `saddr` to `daddr` whose 4-tuple is unused (or in TIME_WAIT that
/// `tcp_tw_reuse` lets us take over, or expired) and that no `bind()` owns.
///
/// As the kernel: `port_offset` (the keyed hash of saddr, daddr, dport and
/// the 10 s epoch) picks a `table_perturb` slot; the walk starts at
/// `(slot + hash >> 32) % remaining`, made even, so ports of `low`'s parity
/// come first, step 2, wrapping, then the other parity. On success the slot
/// moves on by `max(i, 2 * random(8)) + 2`, so consecutive connections to one
/// destination walk forward. The port found is entered in `bhash` for
/// `sock_id`; returned with the TIME_WAIT entry taken over, if any. `None`:
/// no port is left (`EADDRNOTAVAIL`).
pub(crate) fn inet_hash_connect(
    t: &mut Tables,
    saddr: IpAddr,
    daddr: SocketAddr,
    sock_id: u64,
    (low, high): (u16, u16),
    tcp_tw_reuse: u8,
    now: u64,
) -> Option<(u16, Option<TwSock>)> {
    let step = 2u32;
    let low = u32::from(low);
    let high = u32::from(high) + 1;
    let mut remaining = high.saturating_sub(low);
    if remaining == 0 {
        return None;
    }
    if remaining > 1 {
        remaining &= !1;
    }
    let h = t.secret.port_offset(saddr, daddr, now);
    let index = (h & (INET_TABLE_PERTURB_SIZE - 1)) as u16;
    let perturb = t.secret.perturb(index);
    let mut offset = perturb.wrapping_add((h >> 32) as u32) % remaining;
    offset &= !1;
    let mut recycle = None;
    let mut chosen = None;
    'scan: loop {
        let mut port = low + offset;
        let mut i = 0;
        while i < remaining {
            if port >= high {
                port -= remaining;
            }
            if let Some(p) = try_connect_port(t, saddr, daddr, port as u16, tcp_tw_reuse, now) {
                recycle = p;
                chosen = Some((port as u16, i));
                break 'scan;
            }
            i += step;
            port += step;
        }
        offset += 1;
        if offset & 1 == 1 && remaining > 1 {
            continue;
        }
        break;
    }
    let (port, i) = chosen?;
    let i = i.max(t.secret.random_below(8) * step);
    // The search changed no slot: `perturb` is still this slot's value.
    let slot = perturb.wrapping_add(i + step);
    t.secret.perturb.insert(index, slot);
    t.bhash.entry(port).or_default().push(BindEntry {
        addr: saddr,
        sock_id,
        kind: BindKind::Connect,
        reuse: false,
        reuseport: false,
    });
    Some((port, recycle))
}

/// One candidate port of `__inet_hash_connect`: `None` to go on (bound by
/// `bind()`, or the 4-tuple is in use), `Some(tw)` to take it (with the
/// TIME_WAIT entry taken over, if any).
fn try_connect_port(
    t: &mut Tables,
    saddr: IpAddr,
    daddr: SocketAddr,
    port: u16,
    tcp_tw_reuse: u8,
    now: u64,
) -> Option<Option<TwSock>> {
    if let Some(owners) = t.bhash.get(&port) {
        // `tb->fastreuse >= 0 || tb->fastreuseport >= 0`: bind() made it.
        if owners.iter().any(|e| e.kind != BindKind::Connect) {
            return None;
        }
    }
    if t.tw_port_bound(port) {
        return None;
    }
    let key = (SocketAddr::new(saddr, port), daddr);
    if t.ehash.contains_key(&key) {
        return None;
    }
    // The kernel would also wait tcp_tw_reuse_delay (1 s) after the
    // entry was made; the model reuses at once (it has no timestamps to
    // order the two incarnations by anyway).
    if tw_reuse_allowed(tcp_tw_reuse, &key) {
        return Some(t.tw_kill(&key));
    }
    if let Some(tw) = t.tw.get(&key) {
        if tw.expires > now {
            return None;
        }
        return Some(t.tw_kill(&key));
    }
    Some(None)
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
    fn test_ehash_slots_and_map_find_what_was_inserted() {
        // Many 4-tuples for 64 slots: most end in the map, some share a
        // slot with an earlier one; every lookup, replacement and removal
        // must match a plain map's.
        let ns = Netns::new();
        let mut e = Ehash::default();
        let mut reference: HashMap<EhashKey, Arc<Sock>> = HashMap::new();
        let key = |i: u16| {
            let ip = if i % 3 == 0 { "127.0.0.2" } else { "127.0.0.1" };
            (
                addr(&format!("{ip}:{}", 5000 + i % 7)),
                addr(&format!("127.0.0.1:{}", 40000 + i)),
            )
        };
        for i in 0..300u16 {
            let sk = crate::tcp::Sock::new(&ns.0, |_| {});
            assert!(e.try_insert(key(i), &sk));
            assert!(!e.try_insert(key(i), &sk));
            reference.insert(key(i), sk);
        }
        // Replace some, remove others (slot and map entries alike).
        for i in (0..300u16).step_by(5) {
            let sk = crate::tcp::Sock::new(&ns.0, |_| {});
            let old = e.insert(key(i), sk.clone());
            assert!(old.is_some_and(|o| Arc::ptr_eq(&o, &reference[&key(i)])));
            reference.insert(key(i), sk);
        }
        for i in (0..300u16).step_by(3) {
            let got = e.remove(&key(i));
            let want = reference.remove(&key(i));
            assert!(got.is_some_and(|g| want.is_some_and(|w| Arc::ptr_eq(&g, &w))));
            assert!(e.remove(&key(i)).is_none());
        }
        // Reinsert a few into freed slots: a 4-tuple is never in two places.
        for i in (0..300u16).step_by(9) {
            let sk = crate::tcp::Sock::new(&ns.0, |_| {});
            assert!(e.insert(key(i), sk.clone()).is_none());
            reference.insert(key(i), sk);
        }
        for i in 0..400u16 {
            let got = e.get(&key(i));
            let want = reference.get(&key(i));
            assert_eq!(got.is_some(), want.is_some(), "{i}");
            if let (Some(g), Some(w)) = (got, want) {
                assert!(Arc::ptr_eq(g, w));
            }
            assert_eq!(e.contains_key(&key(i)), want.is_some());
        }
        assert_eq!(e.values().count(), reference.len());
    }

    #[test]
    fn test_siphash_matches_the_reference_vector() {
        // SipHash-2-4 of the 8 bytes 00..07 under the key 00..0f (the
        // reference implementation's vectors: 64-bit output for length 8).
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let m = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(siphash((k0, k1), &[m]), 0x93f5_f579_9a93_2462);
    }

    fn bind_entry(addr: IpAddr, sock_id: u64, kind: BindKind) -> BindEntry {
        BindEntry {
            addr,
            sock_id,
            kind,
            reuse: false,
            reuseport: false,
        }
    }

    #[test]
    fn test_inet_hash_connect_takes_even_ports_first_and_walks_forward() {
        let mut t = Tables {
            secret: PortSecret::new(42),
            ..Tables::default()
        };
        let (s, d) = (addr("127.0.0.1:0").ip(), addr("127.0.0.1:80"));
        let range = (40000, 40999);
        let mut last = None;
        for id in 1..=20 {
            let (p, tw) = inet_hash_connect(&mut t, s, d, id, range, 2, 0).unwrap();
            assert!(tw.is_none());
            assert_eq!(p % 2, 0, "connect prefers low's parity");
            assert_eq!(t.bhash[&p].last().unwrap().kind, BindKind::Connect);
            if let Some(l) = last {
                // table_perturb moved on by max(i, 2 * rand(8)) + 2, i = 0.
                let d = (u32::from(p) + 1000 - u32::from(l)) % 1000;
                assert!((2..=16).contains(&d), "{l} -> {p}");
            }
            last = Some(p);
        }
        // Another secret, another sequence; the same secret, the same one.
        let run = |secret| {
            let mut t = Tables {
                secret: PortSecret::new(secret),
                ..Tables::default()
            };
            (1..=5)
                .map(|id| inet_hash_connect(&mut t, s, d, id, range, 2, 0).unwrap().0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        // The next 10 s epoch hashes elsewhere.
        let mut t = Tables {
            secret: PortSecret::new(1),
            ..Tables::default()
        };
        let later = inet_hash_connect(&mut t, s, d, 1, range, 2, 10_000)
            .unwrap()
            .0;
        assert_ne!(later, run(1)[0]);
    }

    #[test]
    fn test_inet_hash_connect_takes_odd_ports_once_the_even_ones_are_bound() {
        let mut t = Tables::default();
        let (s, d) = (addr("127.0.0.1:0").ip(), addr("127.0.0.1:80"));
        for p in (40000..40010).step_by(2) {
            t.bhash
                .entry(p)
                .or_default()
                .push(bind_entry(s, 9, BindKind::Bound));
        }
        let (p, _) = inet_hash_connect(&mut t, s, d, 1, (40000, 40009), 2, 0).unwrap();
        assert_eq!(p % 2, 1);
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
