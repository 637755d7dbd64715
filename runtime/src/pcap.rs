//! Packet capture on the modeled `lo`, as `tcpdump -i lo -w FILE` does it:
//! every packet that passes `dev_queue_xmit` is written to a classic libpcap
//! file.
//!
//! # Where the tap sits
//! In `dev_queue_xmit` (loopback.rs), after the `IFF_UP` check and before
//! `loopback_xmit`, where the kernel's `dev_queue_xmit_nit` hands a copy to
//! the packet sockets. So a packet later dropped at the backlog
//! (`netdev_max_backlog`) is still in the capture, as with tcpdump, and a
//! packet refused because `lo` is down is not. With no capture running the
//! datapath pays one relaxed atomic load per packet.
//!
//! # What is written
//! libpcap 2.4 with microsecond timestamps (magic `0xa1b2c3d4`, written
//! little-endian), link type 1 (Ethernet), as Linux's `lo` shows it: a 14-byte
//! Ethernet header with all-zero MACs, then a real IPv4 header (DF set, an
//! incrementing id, TTL from the skb, header checksum) or IPv6 header (hop
//! limit from the skb), then a real TCP header with a correct checksum and
//! the options Linux sends on loopback, whose lengths match the lengths the
//! model counts (`TCP_HDR_LEN`, `TCP_SYN_HDR_LEN`):
//!
//! - SYN and SYN-ACK (40 bytes): MSS (from the skb), SACK-permitted,
//!   timestamps, NOP, window scale;
//! - every other segment (32 bytes): NOP, NOP, timestamps.
//!
//! The model carries windows in bytes, with scaling implicit. The capture
//! announces a window-scale shift in the SYN options, chosen the way Linux's
//! `tcp_select_initial_window` does from the largest receive buffer a socket
//! may get (`tcp_rmem[1]` or `tcp_rmem[2]`, whichever is larger; 32 MiB by
//! default: shift 10, as Linux 6.16 and later use on loopback; the model's
//! window is at most `tcp_rmem[1]`). Non-SYN headers carry `window >> shift` (clamped to 65535), SYN
//! headers the window itself (at most 65535, never scaled), so Wireshark's
//! "calculated window size" is the model's window rounded down to a multiple
//! of `1 << shift` (Linux rounds its own window the same way). The shift is
//! fixed when the first capture of the namespace starts and kept while any
//! capture runs.
//!
//! Timestamps: `TSval` is the namespace's millisecond clock (milliseconds
//! since the namespace was created; the model has no per-connection random
//! offset). `TSecr` is 0 on a SYN; otherwise it echoes the `TSval` of the
//! last segment captured in the other direction of the same connection (0
//! if none was), which is what Linux's `ts_recent` holds on loopback, where
//! every segment arrives in order within the same millisecond. The pcap
//! record time is the wall clock (`SystemTime`) when the capture started plus
//! the namespace's time since then: the wall clock, or with a clock of the
//! namespace's own (`Netns::set_clock`, tokio's paused time) modeled time.
//!
//! Several captures may run at once on one namespace; each gets every packet.
//! The frame header is built once per packet and written with the payload
//! to each capture (truncated to its snap length), with no allocation beyond
//! what the writer does.

use crate::loopback::LoopbackDev;
use crate::netns::Netns;
use crate::skbuff::{flags, proto, SkBuff, TCP_HDR_LEN, TCP_SYN_HDR_LEN};
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::sync::lock;
use crate::sync::Arc;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The pcap magic number for microsecond timestamps.
const PCAP_MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// `LINKTYPE_ETHERNET`.
const LINKTYPE_ETHERNET: u32 = 1;
const ETH_HDR_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
/// The largest frame header: Ethernet + IPv6 + ICMPv6 quoting an IPv6 and
/// a UDP header (a SYN's, Ethernet + IPv6 + 40, is smaller).
const MAX_HDR: usize = ETH_HDR_LEN + 40 + 8 + 40 + 8;
/// Connections whose last `TSval` is remembered for `TSecr`; past this the
/// memory is forgotten (later segments echo 0 until the peer speaks again).
const TS_RECENT_MAX: usize = 65_536;

/// Options of a capture (`tcpdump`'s flags).
///
/// # Examples
/// ```
/// use lonet_runtime::capture::CaptureOptions;
/// let opts = CaptureOptions::new().snaplen(96); // tcpdump -s 96
/// assert_eq!(opts.get_snaplen(), 96);
/// assert_eq!(CaptureOptions::default().get_snaplen(), CaptureOptions::DEFAULT_SNAPLEN);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureOptions {
    snaplen: u32,
}

impl CaptureOptions {
    /// tcpdump's default snap length (`-s 0` means this too): 262144 bytes.
    pub const DEFAULT_SNAPLEN: u32 = 262_144;

    /// The defaults: snap length [`DEFAULT_SNAPLEN`](Self::DEFAULT_SNAPLEN).
    pub fn new() -> Self {
        CaptureOptions {
            snaplen: Self::DEFAULT_SNAPLEN,
        }
    }

    /// `tcpdump -s LEN`: keep at most `len` bytes of each frame (the record
    /// still tells the frame's full length). 0 means the default, as with
    /// tcpdump.
    pub fn snaplen(mut self, len: u32) -> Self {
        self.snaplen = if len == 0 { Self::DEFAULT_SNAPLEN } else { len };
        self
    }

    /// The snap length set.
    pub fn get_snaplen(&self) -> u32 {
        self.snaplen
    }
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions::new()
    }
}

/// A running capture of the namespace's `lo`, writing to a `W`. Returned by
/// [`Netns::capture`], [`Netns::capture_to_file`] and
/// [`Netns::capture_to_memory`].
///
/// Dropping it stops the capture (and flushes the writer, ignoring errors);
/// [`stop`](Capture::stop) stops it, flushes and reports the first write
/// error, if any.
///
/// The writer is called from the datapath, with the namespace's capture lock
/// held, on whichever thread sends the packet: it must not block for long and
/// must not use sockets of the same namespace. The guard holds a handle to
/// the namespace, so the namespace lives at least as long as the capture.
#[must_use = "the capture stops when the guard is dropped"]
pub struct Capture<W: Write + Send + 'static = BufWriter<File>> {
    ns: Netns,
    id: u64,
    snaplen: u32,
    packets: Arc<AtomicU64>,
    _writer: PhantomData<fn() -> W>,
}

impl<W: Write + Send + 'static> fmt::Debug for Capture<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("ns", &self.ns)
            .field("id", &self.id)
            .field("snaplen", &self.snaplen)
            .field("packets", &self.packets())
            .finish()
    }
}

/// [`Netns::capture`]: writes the file header and adds a tap to `lo`.
pub(crate) fn start<W: Write + Send + 'static>(
    ns: &Netns,
    mut writer: W,
    opts: CaptureOptions,
) -> io::Result<Capture<W>> {
    let snaplen = opts.snaplen;
    let mut hdr = [0u8; 24];
    hdr[0..4].copy_from_slice(&PCAP_MAGIC_USEC.to_le_bytes());
    hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
    hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone, sigfigs: 0.
    hdr[16..20].copy_from_slice(&snaplen.to_le_bytes());
    hdr[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    writer.write_all(&hdr)?;

    let packets = Arc::new(AtomicU64::new(0));
    let rmem = ns.0.sysctl().tcp_rmem;
    let dev = &ns.0.lo;
    // A leaf lock: the datapath takes it under a socket lock, nothing is
    // locked while it is held (but the writers' own calls).
    let mut taps = lock(&dev.taps);
    if taps.list.is_empty() {
        taps.wscale = wscale_for(rmem[1].max(rmem[2]));
        taps.ts_recent.clear();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        taps.base = Some((unix, ns.0.clock_now()));
    }
    taps.next_id += 1;
    let id = taps.next_id;
    taps.list.push(Box::new(Tap {
        id,
        snaplen,
        writer,
        error: None,
        packets: packets.clone(),
    }));
    dev.capturing.store(true, Relaxed);
    drop(taps);
    Ok(Capture {
        ns: ns.clone(),
        id,
        snaplen,
        packets,
        _writer: PhantomData,
    })
}

impl<W: Write + Send + 'static> Capture<W> {
    /// Stops the capture, flushes the writer and returns it (for
    /// [`capture_to_memory`](Netns::capture_to_memory), the pcap bytes).
    ///
    /// # Errors
    /// The first error the writer returned while capturing (from then on
    /// that capture recorded nothing more; the datapath was not affected), or
    /// the error of the final flush.
    pub fn stop(mut self) -> io::Result<W> {
        let tap = self
            .detach()
            .ok_or_else(|| io::Error::other("capture already stopped"))?;
        let Tap {
            mut writer, error, ..
        } = tap;
        if let Some(e) = error {
            return Err(e);
        }
        writer.flush()?;
        Ok(writer)
    }

    /// Packets recorded so far.
    pub fn packets(&self) -> u64 {
        self.packets.load(Relaxed)
    }

    /// The snap length of this capture.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// The namespace captured.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Takes this capture's tap off `lo`.
    fn detach(&mut self) -> Option<Tap<W>> {
        let dev = &self.ns.0.lo;
        let mut taps = lock(&dev.taps);
        let pos = taps.list.iter().position(|t| t.id() == self.id)?;
        let tap = taps.list.remove(pos);
        if taps.list.is_empty() {
            dev.capturing.store(false, Relaxed);
            taps.ts_recent = HashMap::new();
        }
        drop(taps);
        tap.into_any().downcast::<Tap<W>>().ok().map(|b| *b)
    }
}

impl<W: Write + Send + 'static> Drop for Capture<W> {
    fn drop(&mut self) {
        if let Some(mut tap) = self.detach() {
            let _ = tap.writer.flush();
        }
    }
}

/// The capture state of one `lo`, kept in [`LoopbackDev`] under its mutex.
#[derive(Default)]
pub(crate) struct Taps {
    list: Vec<Box<dyn Sink>>,
    next_id: u64,
    /// The window-scale shift announced in SYNs.
    wscale: u8,
    /// IPv4 identification counter.
    ip_id: u16,
    /// The last `TSval` captured per direction `(saddr, daddr)`.
    ts_recent: HashMap<(SocketAddr, SocketAddr), u32>,
    /// The wall clock (since the Unix epoch) and the namespace's clock read
    /// together when the first running capture started: record times are the
    /// first plus the namespace's time since the second, so under a clock of
    /// its own (tokio's, paused) the capture shows modeled time.
    base: Option<(std::time::Duration, Instant)>,
}

impl fmt::Debug for Taps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Taps")
            .field("captures", &self.list.len())
            .field("wscale", &self.wscale)
            .finish()
    }
}

/// Linux's `tcp_select_initial_window`: the shift that makes `space` fit in
/// 16 bits, at most 14.
fn wscale_for(space: usize) -> u8 {
    let mut space = space;
    let mut shift = 0;
    while space > 65_535 && shift < 14 {
        space >>= 1;
        shift += 1;
    }
    shift
}

/// One packet, ready for the writers: its frame header and payload.
struct Frame<'a> {
    ts_sec: u32,
    ts_usec: u32,
    hdr: &'a [u8],
    payload: &'a [u8],
    orig_len: u32,
}

/// A capture's writer, type-erased for the list on `lo`.
trait Sink: Send {
    fn id(&self) -> u64;
    fn record(&mut self, frame: &Frame<'_>);
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

struct Tap<W> {
    id: u64,
    snaplen: u32,
    writer: W,
    /// The first write error; nothing is written after it.
    error: Option<io::Error>,
    packets: Arc<AtomicU64>,
}

impl<W: Write + Send + 'static> Sink for Tap<W> {
    fn id(&self) -> u64 {
        self.id
    }

    fn record(&mut self, frame: &Frame<'_>) {
        if self.error.is_some() {
            return;
        }
        let caplen = frame.orig_len.min(self.snaplen) as usize;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&frame.ts_sec.to_le_bytes());
        rec[4..8].copy_from_slice(&frame.ts_usec.to_le_bytes());
        rec[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&frame.orig_len.to_le_bytes());
        let hdr = &frame.hdr[..caplen.min(frame.hdr.len())];
        let body = &frame.payload[..caplen.saturating_sub(frame.hdr.len())];
        let res = self
            .writer
            .write_all(&rec)
            .and_then(|()| self.writer.write_all(hdr))
            .and_then(|()| self.writer.write_all(body));
        match res {
            Ok(()) => {
                self.packets.fetch_add(1, Relaxed);
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// `dev_queue_xmit_nit`: hands a copy of `skb` to every capture on `lo`.
/// Called only when `dev.capturing` is set.
#[cold]
#[inline(never)]
pub(crate) fn dev_queue_xmit_nit(dev: &LoopbackDev, skb: &SkBuff, at: Instant) {
    let mut taps = lock(&dev.taps);
    if taps.list.is_empty() {
        return;
    }
    // `at` is the namespace's time (its clock's, else the wall clock's).
    let tsval = at.saturating_duration_since(dev.epoch).as_millis() as u32;
    let now = match taps.base {
        Some((unix0, at0)) => unix0 + at.saturating_duration_since(at0),
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    };
    let mut hdr = [0u8; MAX_HDR];
    let hdr_len = taps.build_header(skb, tsval, &mut hdr);
    let frame = Frame {
        ts_sec: now.as_secs() as u32,
        ts_usec: now.subsec_micros(),
        hdr: &hdr[..hdr_len],
        payload: &skb.payload,
        orig_len: (hdr_len + skb.payload.len()) as u32,
    };
    for tap in taps.list.iter_mut() {
        tap.record(&frame);
    }
}

impl Taps {
    /// Writes the Ethernet, IP and TCP headers of `skb` into `out`; returns
    /// their length.
    fn build_header(&mut self, skb: &SkBuff, tsval: u32, out: &mut [u8; MAX_HDR]) -> usize {
        if skb.protocol != proto::TCP {
            return self.build_dgram_header(skb, out);
        }
        let syn = skb.has(flags::SYN);
        let tcp_len = if syn { TCP_SYN_HDR_LEN } else { TCP_HDR_LEN };
        let seg_len = tcp_len + skb.payload.len();

        // TSecr: what the peer last sent on this connection.
        let key = (skb.saddr, skb.daddr);
        let tsecr = if syn && !skb.has(flags::ACK) {
            // A new connection: forget an earlier one on the same 4-tuple.
            self.ts_recent.remove(&(skb.daddr, skb.saddr));
            0
        } else {
            self.ts_recent
                .get(&(skb.daddr, skb.saddr))
                .copied()
                .unwrap_or(0)
        };
        if skb.has(flags::RST) {
            self.ts_recent.remove(&key);
            self.ts_recent.remove(&(skb.daddr, skb.saddr));
        } else {
            if self.ts_recent.len() >= TS_RECENT_MAX && !self.ts_recent.contains_key(&key) {
                self.ts_recent.clear();
            }
            self.ts_recent.insert(key, tsval);
        }

        // Ethernet: zero MACs, as on Linux's lo.
        let (src, dst) = (skb.saddr.ip(), skb.daddr.ip());
        let v4 = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some((s, d)),
            _ => None,
        };
        let ethertype = if v4.is_some() { ETH_P_IP } else { ETH_P_IPV6 };
        out[12..14].copy_from_slice(&ethertype.to_be_bytes());

        // IP header and the TCP pseudo-header's sum.
        let ip = ETH_HDR_LEN;
        let (tcp, pseudo) = match v4 {
            Some((s, d)) => {
                let h = &mut out[ip..ip + 20];
                h[0] = 0x45;
                h[1] = skb.tos;
                let total = (20 + seg_len).min(65_535) as u16;
                h[2..4].copy_from_slice(&total.to_be_bytes());
                self.ip_id = self.ip_id.wrapping_add(1);
                h[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
                h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
                h[8] = skb.ttl;
                h[9] = IPPROTO_TCP;
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                let csum = checksum(sum(h, 0));
                h[10..12].copy_from_slice(&csum.to_be_bytes());
                let mut p = [0u8; 12];
                p[0..4].copy_from_slice(&s.octets());
                p[4..8].copy_from_slice(&d.octets());
                p[9] = IPPROTO_TCP;
                p[10..12].copy_from_slice(&(seg_len as u16).to_be_bytes());
                (ip + 20, sum(&p, 0))
            }
            None => {
                let (s, d) = (v6(src), v6(dst));
                let h = &mut out[ip..ip + 40];
                let tclass = skb.tos;
                h[0] = 0x60 | (tclass >> 4);
                h[1] = (tclass & 0x0f) << 4;
                let plen = seg_len.min(65_535) as u16;
                h[4..6].copy_from_slice(&plen.to_be_bytes());
                h[6] = IPPROTO_TCP;
                h[7] = skb.ttl;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                let mut p = [0u8; 40];
                p[0..16].copy_from_slice(&s.octets());
                p[16..32].copy_from_slice(&d.octets());
                p[32..36].copy_from_slice(&(seg_len as u32).to_be_bytes());
                p[39] = IPPROTO_TCP;
                (ip + 40, sum(&p, 0))
            }
        };

        // TCP header and options.
        let h = &mut out[tcp..tcp + tcp_len];
        h[0..2].copy_from_slice(&skb.saddr.port().to_be_bytes());
        h[2..4].copy_from_slice(&skb.daddr.port().to_be_bytes());
        h[4..8].copy_from_slice(&skb.seq.to_be_bytes());
        h[8..12].copy_from_slice(&skb.ack_seq.to_be_bytes());
        h[12] = ((tcp_len / 4) as u8) << 4;
        h[13] = skb.flags;
        let window = if syn {
            skb.window.min(65_535)
        } else {
            (skb.window >> self.wscale).min(65_535)
        };
        h[14..16].copy_from_slice(&(window as u16).to_be_bytes());
        // Checksum (16..18) and urgent pointer (18..20) start at zero.
        let o = &mut h[20..];
        if syn {
            // MSS, SACK-permitted, timestamps, NOP, window scale: Linux's order.
            o[0] = 2;
            o[1] = 4;
            o[2..4].copy_from_slice(&skb.mss.to_be_bytes());
            o[4] = 4;
            o[5] = 2;
            o[6] = 8;
            o[7] = 10;
            o[8..12].copy_from_slice(&tsval.to_be_bytes());
            o[12..16].copy_from_slice(&tsecr.to_be_bytes());
            o[16] = 1;
            o[17] = 3;
            o[18] = 3;
            o[19] = self.wscale;
        } else {
            o[0] = 1;
            o[1] = 1;
            o[2] = 8;
            o[3] = 10;
            o[4..8].copy_from_slice(&tsval.to_be_bytes());
            o[8..12].copy_from_slice(&tsecr.to_be_bytes());
        }
        let csum = checksum(sum(&skb.payload, sum(h, pseudo)));
        h[16..18].copy_from_slice(&csum.to_be_bytes());
        tcp + tcp_len
    }
}

impl Taps {
    /// Writes the Ethernet, IP and UDP headers of a datagram, or the
    /// Ethernet, IP and ICMP headers of a port unreachable followed by the
    /// quoted datagram's IP and UDP headers (its payload follows as the
    /// skb's payload); returns their length.
    fn build_dgram_header(&mut self, skb: &SkBuff, out: &mut [u8; MAX_HDR]) -> usize {
        let v4 = skb.saddr.is_ipv4() && skb.daddr.is_ipv4();
        let protocol = skb.ip_protocol();
        let iph = if v4 { 20 } else { 40 };
        let ethertype = if v4 { ETH_P_IP } else { ETH_P_IPV6 };
        out[12..14].copy_from_slice(&ethertype.to_be_bytes());
        let ip = ETH_HDR_LEN;
        let l4 = ip + iph;
        let plen = skb.payload.len();
        // The transport part: UDP (8 + payload), or ICMP (8 + the quote).
        let (l4_len, hdr_end) = if protocol == proto::UDP {
            (8 + plen, l4 + 8)
        } else {
            (8 + iph + 8 + plen, l4 + 8 + iph + 8)
        };
        self.ip_header(
            &mut out[ip..l4],
            skb.saddr.ip(),
            skb.daddr.ip(),
            protocol,
            l4_len,
            skb.tos,
            skb.ttl,
        );
        if protocol == proto::UDP {
            udp_header(&mut out[l4..l4 + 8], skb.saddr, skb.daddr, &skb.payload);
        } else {
            // The quoted datagram went the other way.
            let q = l4 + 8;
            self.ip_header(
                &mut out[q..q + iph],
                skb.daddr.ip(),
                skb.saddr.ip(),
                proto::UDP,
                8 + plen,
                0,
                64,
            );
            udp_header(
                &mut out[q + iph..q + iph + 8],
                skb.daddr,
                skb.saddr,
                &skb.payload,
            );
            // Type 3 code 3 (ICMPv6: type 1 code 4); checksum; unused.
            out[l4..l4 + 4].copy_from_slice(&if v4 { [3, 3, 0, 0] } else { [1, 4, 0, 0] });
            out[l4 + 4..l4 + 8].copy_from_slice(&[0; 4]);
            let start = if v4 {
                0
            } else {
                pseudo6(skb.saddr.ip(), skb.daddr.ip(), proto::ICMPV6, l4_len)
            };
            // Over the ICMP header, the quoted headers, then the payload.
            let csum = checksum(sum(&skb.payload, sum(&out[l4..hdr_end], start)));
            out[l4 + 2..l4 + 4].copy_from_slice(&csum.to_be_bytes());
        }
        hdr_end
    }

    /// An IPv4 (DF set, checksummed) or IPv6 header for `len` bytes of
    /// `protocol`.
    #[allow(clippy::too_many_arguments)]
    fn ip_header(
        &mut self,
        h: &mut [u8],
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        len: usize,
        tos: u8,
        ttl: u8,
    ) {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                h[0] = 0x45;
                h[1] = tos;
                h[2..4].copy_from_slice(&((20 + len).min(65_535) as u16).to_be_bytes());
                self.ip_id = self.ip_id.wrapping_add(1);
                h[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
                h[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
                h[8] = ttl;
                h[9] = protocol;
                h[10..12].copy_from_slice(&[0, 0]);
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                let csum = checksum(sum(&h[..20], 0));
                h[10..12].copy_from_slice(&csum.to_be_bytes());
            }
            _ => {
                h[0] = 0x60 | (tos >> 4);
                h[1] = (tos & 0x0f) << 4;
                h[2..4].copy_from_slice(&[0, 0]);
                h[4..6].copy_from_slice(&(len.min(65_535) as u16).to_be_bytes());
                h[6] = protocol;
                h[7] = ttl;
                h[8..24].copy_from_slice(&v6(src).octets());
                h[24..40].copy_from_slice(&v6(dst).octets());
            }
        }
    }
}

/// The IPv6 pseudo-header's sum.
fn pseudo6(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> u64 {
    let mut p = [0u8; 40];
    p[0..16].copy_from_slice(&v6(src).octets());
    p[16..32].copy_from_slice(&v6(dst).octets());
    p[32..36].copy_from_slice(&(len as u32).to_be_bytes());
    p[39] = protocol;
    sum(&p, 0)
}

/// A UDP header from `src` to `dst` over `payload`, with its checksum
/// (0 computed is sent as 0xffff, RFC 768).
fn udp_header(h: &mut [u8], src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
    let len = 8 + payload.len();
    h[0..2].copy_from_slice(&src.port().to_be_bytes());
    h[2..4].copy_from_slice(&dst.port().to_be_bytes());
    h[4..6].copy_from_slice(&(len.min(65_535) as u16).to_be_bytes());
    h[6..8].copy_from_slice(&[0, 0]);
    let pseudo = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = [0u8; 12];
            p[0..4].copy_from_slice(&s.octets());
            p[4..8].copy_from_slice(&d.octets());
            p[9] = proto::UDP;
            p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
            sum(&p, 0)
        }
        (s, d) => pseudo6(s, d, proto::UDP, len),
    };
    let csum = match checksum(sum(payload, sum(&h[..8], pseudo))) {
        0 => 0xffff,
        c => c,
    };
    h[6..8].copy_from_slice(&csum.to_be_bytes());
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Adds `data`, as big-endian 16-bit words (a last odd byte padded with
/// zero), to the one's-complement accumulator `acc`. Summing 32-bit words
/// gives the same result modulo 0xffff; `data` must start at an even offset
/// of the checksummed bytes.
fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut last = [0u8; 4];
    last[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(last))
}

/// Folds the accumulator and complements it: the Internet checksum.
fn checksum(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::af_inet::Socket;
    use bytes::Bytes;
    use std::io::IoSlice;
    use std::task::{Context, Poll, Waker};

    /// A straightforward RFC 1071 sum over 16-bit words.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            acc += u32::from(w);
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn checksum_matches_rfc1071() {
        for len in 0..70 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(checksum(sum(&data, 0)), reference(&data), "len {len}");
        }
        let ff = vec![0xffu8; 65_536];
        assert_eq!(checksum(sum(&ff, 0)), reference(&ff));
    }

    #[test]
    fn wscale_is_linuxs_for_the_default_rmem() {
        assert_eq!(wscale_for(6_291_456), 7);
        assert_eq!(wscale_for(33_554_432), 10, "Linux 6.18 on lo: wscale 10");
        assert_eq!(wscale_for(65_535), 0);
        assert_eq!(wscale_for(131_072), 2);
        assert_eq!(wscale_for(usize::MAX), 14);
    }

    fn skb(fl: u8, payload: &'static [u8]) -> SkBuff {
        SkBuff {
            protocol: proto::TCP,
            saddr: "127.0.0.1:40000".parse().unwrap(),
            daddr: "127.0.0.1:80".parse().unwrap(),
            seq: 1000,
            ack_seq: if fl & flags::ACK != 0 { 2000 } else { 0 },
            flags: fl,
            window: 131_072,
            mss: 65_495,
            ttl: 64,
            tos: 0,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn headers_are_as_long_as_the_model_counts_and_checksum_to_zero() {
        let mut taps = Taps {
            wscale: 7,
            ..Taps::default()
        };
        for (fl, payload) in [
            (flags::SYN, &b""[..]),
            (flags::SYN | flags::ACK, &b""[..]),
            (flags::ACK | flags::PSH, &b"hello"[..]),
        ] {
            let s = skb(fl, payload);
            let mut out = [0u8; MAX_HDR];
            let n = taps.build_header(&s, 5, &mut out);
            assert_eq!(n, ETH_HDR_LEN + s.ip_len() - s.payload.len());
            let ip = &out[ETH_HDR_LEN..ETH_HDR_LEN + 20];
            assert_eq!(checksum(sum(ip, 0)), 0, "IPv4 header checksum");
            let mut seg = out[ETH_HDR_LEN + 20..n].to_vec();
            seg.extend_from_slice(payload);
            let mut p = Vec::new();
            p.extend_from_slice(&ip[12..20]);
            p.extend_from_slice(&[0, 6]);
            p.extend_from_slice(&(seg.len() as u16).to_be_bytes());
            assert_eq!(checksum(sum(&seg, sum(&p, 0))), 0, "TCP checksum");
            let win = u16::from_be_bytes([seg[14], seg[15]]);
            if fl & flags::SYN != 0 {
                assert_eq!(win, 65_535);
            } else {
                assert_eq!(win, 1024);
            }
        }
    }

    #[test]
    fn a_handshake_is_captured_by_every_capture_and_none_after_stop() {
        let ns = Netns::new();
        let a = ns.capture_to_memory(CaptureOptions::new());
        let b = ns.capture_to_memory(CaptureOptions::new().snaplen(60));
        assert!(ns.0.lo.capturing.load(Relaxed));
        let _l = Socket::listen(&ns, "127.0.0.1:80".parse().unwrap(), 8).unwrap();
        let c = Socket::connect(&ns, "127.0.0.1:80".parse().unwrap()).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        // The handshake completes in connect's own softirq, or on ksoftirqd.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while c.poll_connect(&mut cx).is_pending() {
            assert!(std::time::Instant::now() < deadline, "handshake");
            std::thread::yield_now();
        }
        assert_eq!(a.packets(), 3);
        assert_eq!(b.packets(), 3);
        let pa = a.stop().unwrap();
        assert!(ns.0.lo.capturing.load(Relaxed), "b still runs");
        drop(b);
        assert!(!ns.0.lo.capturing.load(Relaxed));
        // 24 + 2 SYNs (16 + 74) + 1 ACK (16 + 66).
        assert_eq!(pa.len(), 24 + 2 * (16 + 74) + (16 + 66));
        let n = match c.poll_send(None, &[IoSlice::new(b"x")]) {
            Poll::Ready(Ok(n)) => n,
            other => panic!("send: {other:?}"),
        };
        assert_eq!(n, 1);
    }
}
