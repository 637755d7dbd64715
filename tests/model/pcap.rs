//! pcap capture of the modeled `lo` (`tcpdump -i lo -w FILE`): the frames are real Ethernet /
//! IPv4 / IPv6 / TCP with correct checksums, checked by two readers that share nothing with
//! lonet's writer: etherparse, a packet-parsing crate (headers and TCP options decoded, both
//! checksums recomputed), and tshark.

use crate::common::*;
use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, TcpHeader, TcpOptionElement,
};
use lonet::capture::CaptureOptions;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

// ---------------------------------------------------------------------------------------------
// The pcap file framing

/// One pcap record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    ts_sec: u32,
    ts_usec: u32,
    orig_len: u32,
    data: Vec<u8>,
}

/// A parsed pcap file.
#[derive(Debug)]
struct Pcap {
    snaplen: u32,
    records: Vec<Record>,
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Splits a classic libpcap file into its records: a 24-byte file header (magic, version,
/// thiszone, sigfigs, snaplen, link type), then per record a 16-byte header (seconds,
/// microseconds, captured length, original length) and the captured bytes. Two fixed layouts,
/// read here by hand: the `pcap-file` crate was the candidate, but its last stable release is
/// from 2022 (3.0 exists only as release candidates). What is inside each record is decoded by
/// etherparse ([`parse_frame`]).
fn parse_pcap(bytes: &[u8]) -> Pcap {
    assert!(bytes.len() >= 24, "pcap shorter than its file header");
    assert_eq!(le32(&bytes[0..4]), 0xa1b2_c3d4, "magic (microseconds)");
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 2, "version major");
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 4, "version minor");
    assert_eq!(le32(&bytes[20..24]), 1, "LINKTYPE_ETHERNET");
    let snaplen = le32(&bytes[16..20]);
    let mut records = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        assert!(at + 16 <= bytes.len(), "truncated record header at {at}");
        let r = &bytes[at..at + 16];
        let caplen = le32(&r[8..12]) as usize;
        let orig_len = le32(&r[12..16]);
        assert!(
            caplen as u32 <= snaplen,
            "caplen {caplen} above snaplen {snaplen}"
        );
        assert!(
            caplen as u32 <= orig_len,
            "caplen {caplen} above orig_len {orig_len}"
        );
        assert!(
            le32(&r[4..8]) < 1_000_000,
            "microseconds field out of range"
        );
        assert!(
            at + 16 + caplen <= bytes.len(),
            "record at {at} runs past the end of the file"
        );
        let data = bytes[at + 16..at + 16 + caplen].to_vec();
        records.push(Record {
            ts_sec: le32(&r[0..4]),
            ts_usec: le32(&r[4..8]),
            orig_len,
            data,
        });
        at += 16 + caplen;
    }
    assert_eq!(at, bytes.len(), "trailing bytes");
    Pcap { snaplen, records }
}

// ---------------------------------------------------------------------------------------------
// The frames, decoded with etherparse

/// One TCP segment as decoded from a full frame, checksums verified.
#[derive(Debug, Clone)]
struct Seg {
    src: SocketAddr,
    dst: SocketAddr,
    ttl: u8,
    seq: u32,
    ack: u32,
    /// The flags byte of the header (CWR ECE URG ACK PSH RST SYN FIN).
    flags: u8,
    window: u16,
    /// Every option but NOP, in order.
    options: Vec<TcpOptionElement>,
    payload: Vec<u8>,
}

impl Seg {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// The MSS option's value.
    fn mss(&self) -> Option<u16> {
        self.options.iter().find_map(|o| match o {
            TcpOptionElement::MaximumSegmentSize(mss) => Some(*mss),
            _ => None,
        })
    }

    /// The window-scale option's shift.
    fn wscale(&self) -> Option<u8> {
        self.options.iter().find_map(|o| match o {
            TcpOptionElement::WindowScale(shift) => Some(*shift),
            _ => None,
        })
    }

    fn sack_permitted(&self) -> bool {
        self.options
            .contains(&TcpOptionElement::SelectiveAcknowledgementPermitted)
    }

    /// `(TSval, TSecr)`.
    fn timestamps(&self) -> (u32, u32) {
        self.options
            .iter()
            .find_map(|o| match o {
                TcpOptionElement::Timestamp(val, ecr) => Some((*val, *ecr)),
                _ => None,
            })
            .expect("timestamp option")
    }

    fn seq_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.has(SYN)) + u32::from(self.has(FIN))
    }
}

/// The flags byte of a TCP header (byte 13), from etherparse's fields.
fn flags_byte(tcp: &TcpHeader) -> u8 {
    [
        tcp.fin, tcp.syn, tcp.rst, tcp.psh, tcp.ack, tcp.urg, tcp.ece, tcp.cwr,
    ]
    .iter()
    .enumerate()
    .fold(0, |byte, (bit, &set)| byte | (u8::from(set) << bit))
}

/// Decodes a whole (untruncated) frame with etherparse, asserting that every length is right
/// and that both checksums are the ones etherparse computes.
fn parse_frame(f: &[u8]) -> Seg {
    let (eth, ip) = Ethernet2Header::from_slice(f).expect("an Ethernet II header");
    assert_eq!(
        (eth.source, eth.destination),
        ([0u8; 6], [0u8; 6]),
        "lo's MACs are all zero"
    );
    let (src, dst, ttl, tcp, payload) = match eth.ether_type {
        EtherType::IPV4 => {
            let (ip4, rest) = Ipv4Header::from_slice(ip).expect("an IPv4 header");
            assert_eq!(ip4.header_len(), 20, "IPv4, IHL 5");
            assert_eq!(usize::from(ip4.total_len), ip.len(), "IPv4 total length");
            assert!(
                ip4.dont_fragment && !ip4.more_fragments && ip4.fragment_offset.value() == 0,
                "DF, no fragment: {ip4:?}"
            );
            assert_eq!(ip4.protocol, IpNumber::TCP, "protocol TCP");
            assert_eq!(
                ip4.header_checksum,
                ip4.calc_header_checksum(),
                "IPv4 header checksum"
            );
            let (tcp, payload) = TcpHeader::from_slice(rest).expect("a TCP header");
            let sum = tcp
                .calc_checksum_ipv4(&ip4, payload)
                .expect("TCP length fits");
            assert_eq!(tcp.checksum, sum, "TCP checksum");
            (
                IpAddr::V4(Ipv4Addr::from(ip4.source)),
                IpAddr::V4(Ipv4Addr::from(ip4.destination)),
                ip4.time_to_live,
                tcp,
                payload,
            )
        }
        EtherType::IPV6 => {
            let (ip6, rest) = Ipv6Header::from_slice(ip).expect("an IPv6 header");
            assert_eq!(
                usize::from(ip6.payload_length) + Ipv6Header::LEN,
                ip.len(),
                "IPv6 payload length"
            );
            assert_eq!(ip6.next_header, IpNumber::TCP, "next header TCP");
            let (tcp, payload) = TcpHeader::from_slice(rest).expect("a TCP header");
            let sum = tcp
                .calc_checksum_ipv6(&ip6, payload)
                .expect("TCP length fits");
            assert_eq!(tcp.checksum, sum, "TCP checksum");
            (
                IpAddr::V6(Ipv6Addr::from(ip6.source)),
                IpAddr::V6(Ipv6Addr::from(ip6.destination)),
                ip6.hop_limit,
                tcp,
                payload,
            )
        }
        other => panic!("ethertype {other:?}"),
    };
    assert_eq!(tcp.urgent_pointer, 0, "urgent pointer");
    let options = tcp
        .options_iterator()
        .map(|o| o.unwrap_or_else(|e| panic!("TCP option: {e}")))
        .filter(|o| *o != TcpOptionElement::Noop)
        .collect();
    let seg = Seg {
        src: SocketAddr::new(src, tcp.source_port),
        dst: SocketAddr::new(dst, tcp.destination_port),
        ttl,
        seq: tcp.sequence_number,
        ack: tcp.acknowledgment_number,
        flags: flags_byte(&tcp),
        window: tcp.window_size,
        options,
        payload: payload.to_vec(),
    };
    let want_len = if seg.has(SYN) { 40 } else { 32 };
    assert_eq!(
        tcp.header_len(),
        want_len,
        "TCP header length as lonet counts it"
    );
    seg
}

/// Every record of a capture with the default snap length, decoded.
fn segments(pcap: &Pcap) -> Vec<Seg> {
    pcap.records
        .iter()
        .map(|r| {
            assert_eq!(r.data.len() as u32, r.orig_len, "whole frame captured");
            parse_frame(&r.data)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks of one connection's segments

/// What a connection's segments showed.
#[derive(Debug, Default)]
struct Flow {
    client_data: Vec<u8>,
    server_data: Vec<u8>,
    flags: Vec<(bool, u8)>,
}

/// Checks a connection's segments (in capture order; `client` sent the SYN): the handshake, that
/// each direction's sequence numbers are contiguous from its ISN + 1, that every ACK is
/// monotonic and acknowledges only what the peer sent, and the TCP options.
fn check_flow(segs: &[&Seg], wscale_expected: u8) -> Flow {
    assert!(segs.len() >= 3, "a handshake at least: {segs:#?}");
    let syn = segs[0];
    assert_eq!(syn.flags, SYN, "first segment is a bare SYN");
    let (client, server) = (syn.src, syn.dst);
    let synack = segs[1];
    assert_eq!(synack.flags, SYN | ACK, "second is the SYN-ACK");
    assert_eq!((synack.src, synack.dst), (server, client));
    assert_eq!(synack.ack, syn.seq.wrapping_add(1), "SYN-ACK acks the SYN");
    let third = segs[2];
    assert!(third.has(ACK) && !third.has(SYN), "third is an ACK");
    assert_eq!(third.seq, syn.seq.wrapping_add(1));
    assert_eq!(third.ack, synack.seq.wrapping_add(1));

    for s in [syn, synack] {
        let mss = s.mss().expect("MSS option");
        let want = if s.src.is_ipv4() { 65_495 } else { 65_475 };
        assert_eq!(mss, want, "MSS from lo's MTU");
        assert!(s.sack_permitted(), "SACK-permitted");
        assert_eq!(s.wscale(), Some(wscale_expected), "window scale");
        // tcp_select_initial_window: half the receive buffer (131072 / 2)
        // rounded down to the MSS, less the timestamp option in the SYN-ACK
        // (Linux on lo: 65495 and 65483); never scaled.
        let window = if s.has(ACK) { want - 12 } else { want };
        assert_eq!(
            u32::from(s.window),
            u32::from(window),
            "SYN window, unscaled"
        );
    }
    assert_eq!(syn.timestamps().1, 0, "TSecr of the SYN");
    assert_eq!(
        synack.timestamps().1,
        syn.timestamps().0,
        "the SYN-ACK echoes the SYN's TSval"
    );

    let mut flow = Flow::default();
    // Per direction: next sequence number expected, highest ack, last TSval.
    let mut next: HashMap<SocketAddr, u32> = HashMap::new();
    let mut acked: HashMap<SocketAddr, u32> = HashMap::new();
    let mut tsval: HashMap<SocketAddr, u32> = HashMap::new();
    for s in segs {
        let from_client = s.src == client;
        assert!(
            (s.src, s.dst) == (client, server) || (s.src, s.dst) == (server, client),
            "segment of another connection: {s:?}"
        );
        assert_eq!(s.ttl, 64, "default TTL");
        flow.flags.push((from_client, s.flags));
        if let Some(&want) = next.get(&s.src) {
            assert_eq!(s.seq, want, "contiguous sequence numbers: {s:?}");
        }
        next.insert(s.src, s.seq.wrapping_add(s.seq_len()));
        if s.has(ACK) {
            let peer_next = *next.get(&s.dst).expect("ack before the peer sent");
            assert!(
                (peer_next.wrapping_sub(s.ack) as i32) >= 0,
                "acks only what was sent: {s:?}"
            );
            if let Some(&prev) = acked.get(&s.src) {
                assert!(
                    (s.ack.wrapping_sub(prev) as i32) >= 0,
                    "ack went back: {s:?}"
                );
            }
            acked.insert(s.src, s.ack);
        }
        if !s.has(RST) {
            let (val, ecr) = s.timestamps();
            if let Some(&prev) = tsval.get(&s.src) {
                assert!(val >= prev, "TSval went back");
            }
            if !s.has(SYN) || s.has(ACK) {
                assert_eq!(
                    Some(&ecr),
                    tsval.get(&s.dst),
                    "TSecr echoes the peer's last TSval"
                );
            }
            tsval.insert(s.src, val);
        }
        if !s.has(SYN) && !s.has(RST) {
            // The scaled window: the model's window (at most rcvbuf = tcp_rmem[1]) >> wscale.
            let bytes = u32::from(s.window) << wscale_expected;
            assert!(bytes <= 131_072, "window {bytes} above rcvbuf");
        }
        if from_client {
            flow.client_data.extend_from_slice(&s.payload);
        } else {
            flow.server_data.extend_from_slice(&s.payload);
        }
    }
    flow
}

// ---------------------------------------------------------------------------------------------
// Exchanges

/// Listener on `addr`, a connected `(client, accepted)` pair; the listener is dropped.
async fn pair_on(addr: &str) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.expect("connect"), accepted.expect("accept").0)
}

/// Handshake, "hello" →, ← "world!", client FIN, server FIN; waits until both sockets are freed
/// (so the last ACK went out).
async fn hello_world(ns: &Netns, addr: &str) {
    let (mut c, mut a) = pair_on(addr).await;
    c.write_all(b"hello").await.expect("write hello");
    let mut buf = [0u8; 6];
    a.read_exact(&mut buf[..5]).await.expect("read hello");
    a.write_all(b"world!").await.expect("write world");
    c.read_exact(&mut buf).await.expect("read world");
    assert_eq!(&buf, b"world!");
    c.shutdown().await.expect("shutdown");
    assert_eq!(a.read(&mut buf).await.expect("read EOF"), 0);
    drop(a);
    assert_eq!(c.read(&mut buf).await.expect("read EOF"), 0);
    drop(c);
    wait_all_freed(ns).await;
}

/// Reads until `pat` was seen, returning everything read.
async fn read_until(s: &mut TcpStream, pat: &[u8], extra: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(i) = got.windows(pat.len()).position(|w| w == pat) {
            if got.len() >= i + pat.len() + extra {
                return got;
            }
        }
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "EOF before {:?}", String::from_utf8_lossy(pat));
        got.extend_from_slice(&buf[..n]);
    }
}

const REQ1: &[u8] = b"GET /hello HTTP/1.1\r\n";
const REQ2: &[u8] = b"Host: localhost\r\n\r\n";
const RESP: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";

/// An HTTP/1.1 request in two writes (two segments: TCP_NODELAY) and its response, then FIN
/// from both sides.
async fn http_exchange(ns: &Netns, addr: &str) {
    let (mut c, mut a) = pair_on(addr).await;
    c.set_nodelay(true).expect("nodelay");
    c.write_all(REQ1).await.expect("write request line");
    c.write_all(REQ2).await.expect("write headers");
    let req = read_until(&mut a, b"\r\n\r\n", 0).await;
    assert_eq!(req, [REQ1, REQ2].concat());
    a.write_all(RESP).await.expect("write response");
    let resp = read_until(&mut c, b"\r\n\r\n", 5).await;
    assert_eq!(resp, RESP);
    c.shutdown().await.expect("shutdown");
    assert_eq!(a.read(&mut [0u8; 8]).await.expect("read EOF"), 0);
    drop(a);
    assert_eq!(c.read(&mut [0u8; 8]).await.expect("read EOF"), 0);
    drop(c);
    wait_all_freed(ns).await;
}

/// "ping" →, then the server sets SO_LINGER 0 and drops: RST; the client reads ECONNRESET.
async fn reset_exchange(ns: &Netns, addr: &str) {
    let (mut c, mut a) = pair_on(addr).await;
    c.write_all(b"ping").await.expect("write ping");
    let mut buf = [0u8; 4];
    a.read_exact(&mut buf).await.expect("read ping");
    a.set_zero_linger().expect("set_zero_linger");
    drop(a);
    let e = c.read(&mut buf).await.expect_err("read after RST");
    assert_eq!(e.raw_os_error(), Some(errno::ECONNRESET), "{e}");
    drop(c);
    wait_all_freed(ns).await;
}

/// A larger one-way transfer (more than one segment's worth of ACKs), then FIN both ways.
async fn bulk_exchange(ns: &Netns, addr: &str, len: usize) {
    let (mut c, mut a) = pair_on(addr).await;
    let data = pattern_vec(7, len);
    let writer = async {
        c.write_all(&data).await.expect("write bulk");
        c.shutdown().await.expect("shutdown");
        c
    };
    let reader = async {
        let mut got = Vec::new();
        a.read_to_end(&mut got).await.expect("read bulk");
        a
    };
    let (mut c, a) = tokio::join!(writer, reader);
    drop(a);
    assert_eq!(c.read(&mut [0u8; 8]).await.expect("read EOF"), 0);
    drop(c);
    wait_all_freed(ns).await;
}

// ---------------------------------------------------------------------------------------------
// (a) decoded with etherparse

#[tokio::test]
async fn a_captured_exchange_parses_with_correct_headers_checksums_and_sequence_numbers() {
    // tcpdump -i lo -w: SYN, SYN-ACK, ACK, data both ways, FIN both ways, each frame a real
    // Ethernet/IP/TCP frame with correct checksums, over IPv4 and IPv6.
    let ns = Netns::new();
    bounded(
        "capture of hello/world over 127.0.0.1 and ::1",
        ns.clone().scope(async {
            for addr in ["127.0.0.1:7000", "[::1]:7001"] {
                let cap = ns.capture_to_memory(CaptureOptions::new());
                hello_world(&ns, addr).await;
                let packets = cap.packets();
                let bytes = cap.stop().expect("stop");
                let pcap = parse_pcap(&bytes);
                assert_eq!(pcap.snaplen, 262_144, "tcpdump's default snap length");
                assert_eq!(pcap.records.len() as u64, packets);
                let segs = segments(&pcap);
                let refs: Vec<&Seg> = segs.iter().collect();
                let flow = check_flow(&refs, 10);
                assert_eq!(flow.client_data, b"hello", "{addr}");
                assert_eq!(flow.server_data, b"world!", "{addr}");
                // Each side sends exactly one FIN, and the last segment acks the server's FIN.
                let fins = |client: bool| {
                    flow.flags
                        .iter()
                        .filter(|(c, f)| *c == client && f & FIN != 0)
                        .count()
                };
                assert_eq!((fins(true), fins(false)), (1, 1), "{:?}", flow.flags);
                let last = segs.last().unwrap();
                let server_fin = segs
                    .iter()
                    .find(|s| s.has(FIN) && s.src.port() == 7000 + u16::from(addr.contains("::")))
                    .expect("server FIN");
                assert_eq!(
                    last.flags, ACK,
                    "the last segment is the ACK of the last FIN"
                );
                assert_eq!(last.ack, server_fin.seq.wrapping_add(1));
                assert!(segs.iter().all(|s| s.flags & RST == 0), "no RST");
                assert!(segs
                    .iter()
                    .filter(|s| !s.payload.is_empty())
                    .all(|s| s.has(PSH) && s.has(ACK)));
                // Record times: wall clock, in order.
                let t: Vec<u64> = pcap
                    .records
                    .iter()
                    .map(|r| u64::from(r.ts_sec) * 1_000_000 + u64::from(r.ts_usec))
                    .collect();
                assert!(t.windows(2).all(|w| w[0] <= w[1]), "record times in order");
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                assert!(now.abs_diff(u64::from(pcap.records[0].ts_sec)) < 60);
            }
        }),
    )
    .await;
}

#[tokio::test]
async fn a_corrupted_byte_fails_the_checksum_that_covers_it() {
    // The checks above are worth something only if a wrong checksum fails them: flip one bit of
    // a captured frame and the sum etherparse computes no longer matches the one in the header.
    let ns = Netns::new();
    let bytes = bounded(
        "capture of hello/world",
        ns.clone().scope(async {
            let cap = ns.capture_to_memory(CaptureOptions::new());
            hello_world(&ns, "127.0.0.1:7400").await;
            cap.stop().expect("stop")
        }),
    )
    .await;
    let pcap = parse_pcap(&bytes);
    let frame = &pcap
        .records
        .iter()
        .find(|r| r.orig_len as usize == 14 + 20 + 32 + 5)
        .expect("the frame carrying \"hello\"")
        .data;
    assert_eq!(
        parse_frame(frame).payload,
        b"hello",
        "the intact frame decodes"
    );
    // The TTL is covered by the IPv4 header checksum only; the last payload byte by the TCP
    // checksum only.
    for (at, checksum) in [
        (14 + 8, "IPv4 header checksum"),
        (frame.len() - 1, "TCP checksum"),
    ] {
        let mut bad = frame.clone();
        bad[at] ^= 0x01;
        let panic = std::panic::catch_unwind(|| parse_frame(&bad))
            .expect_err("a corrupted frame passed the decoder");
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains(checksum),
            "byte {at} flipped: expected a failed {checksum}, got {msg:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (b) tshark

/// A temporary file removed on drop (kept, and named, if the test failed).
struct TempFile(PathBuf);

impl TempFile {
    fn new(what: &str) -> TempFile {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        TempFile(
            std::env::temp_dir().join(format!("lonet-{what}-{}-{nanos}.pcap", std::process::id())),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("capture kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Runs tshark with `args` (bounded in time); its stdout. `None` if tshark is not installed.
async fn tshark(args: &[&str]) -> Option<String> {
    let child = tokio::process::Command::new("tshark")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = match bounded_for("tshark", Duration::from_secs(120), child).await {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running tshark: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tshark {args:?} failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    Some(stdout)
}

/// tshark over `file` with checksum validation on, relative sequence numbers and HTTP on
/// port 8080.
async fn tshark_read(file: &Path, extra: &[&str]) -> Option<String> {
    let path = file.to_str().expect("utf-8 temp path");
    let mut args = vec![
        "-n",
        "-r",
        path,
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.relative_sequence_numbers:TRUE",
        "-o",
        "tcp.desegment_tcp_streams:TRUE",
        "-d",
        "tcp.port==8080,http",
    ];
    args.extend_from_slice(extra);
    tshark(&args).await
}

/// tshark is missing: fails where the reader is required (`.ci/run` installs
/// tshark and sets `LONET_REQUIRE_TSHARK=1`), else says loudly that the check
/// was skipped, so `cargo test` works on a machine without Wireshark.
fn tshark_missing() {
    if std::env::var("LONET_REQUIRE_TSHARK").as_deref() == Ok("1") {
        panic!(
            "tshark not found on PATH, and LONET_REQUIRE_TSHARK=1: this test verifies lonet's \
             pcap output with a real reader. Install it (Debian/Ubuntu: apt-get install -y tshark)"
        );
    }
    eprintln!(
        "SKIPPED: tshark not found on PATH, so the capture was not checked with a real reader \
         (apt-get install -y tshark; .ci/run installs it and sets LONET_REQUIRE_TSHARK=1)"
    );
}

/// One line of `tshark -T fields` for the packet list.
#[derive(Debug)]
struct Row {
    stream: u32,
    src_port: u16,
    flags: String,
    seq: u32,
    ack: u32,
    len: u32,
    win: u32,
    ip_csum: String,
    tcp_csum: String,
    experts: String,
}

fn parse_rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 10, "tshark fields: {l:?}");
            let num = |s: &str| {
                s.parse::<u32>()
                    .unwrap_or_else(|_| panic!("{s:?} in {l:?}"))
            };
            // tcp.flags.str: "··········S·", letters for the set flags.
            let flags: String = f[2].chars().filter(|c| c.is_ascii_alphabetic()).collect();
            Row {
                stream: num(f[0]),
                src_port: num(f[1]) as u16,
                flags,
                seq: num(f[3]),
                ack: num(f[4]),
                len: num(f[5]),
                win: num(f[6]),
                ip_csum: f[7].to_string(),
                tcp_csum: f[8].to_string(),
                experts: f[9..].join(" "),
            }
        })
        .collect()
}

/// The payload of each direction of a TCP stream, from `-z follow,tcp,raw,N` (node 1's lines
/// are indented with a tab).
fn parse_follow(text: &str) -> (Vec<u8>, Vec<u8>) {
    let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
    let mut in_body = false;
    for line in text.lines() {
        if line.starts_with("Node 1:") {
            in_body = true;
            continue;
        }
        if !in_body || line.starts_with("====") || line.trim().is_empty() {
            continue;
        }
        let (dst, hex) = match line.strip_prefix('\t') {
            Some(h) => (&mut to_client, h),
            None => (&mut to_server, line),
        };
        let hex = hex.trim();
        assert!(hex.len() % 2 == 0, "hex line {line:?}");
        for i in (0..hex.len()).step_by(2) {
            dst.push(u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"));
        }
    }
    (to_server, to_client)
}

#[tokio::test]
async fn tshark_decodes_the_capture_handshake_http_fin_and_rst_with_good_checksums() {
    // A real reader: tshark decodes the frames lonet writes as Linux's lo would show them.
    if tshark(&["-v"]).await.is_none() {
        return tshark_missing();
    }
    let ns = Netns::new();
    let file = TempFile::new("tshark");
    let bulk = 50_000;
    bounded(
        "capture for tshark",
        ns.clone().scope(async {
            let cap = ns
                .capture_to_file(&file.0, CaptureOptions::new())
                .expect("capture_to_file");
            http_exchange(&ns, "127.0.0.1:8080").await; // tcp.stream 0
            reset_exchange(&ns, "127.0.0.1:9000").await; // tcp.stream 1
            bulk_exchange(&ns, "[::1]:9001", bulk).await; // tcp.stream 2
            cap.stop().expect("stop");
        }),
    )
    .await;

    let fields = [
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=;",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.flags.str",
        "-e",
        "tcp.seq",
        "-e",
        "tcp.ack",
        "-e",
        "tcp.len",
        "-e",
        "tcp.window_size",
        "-e",
        "ip.checksum.status",
        "-e",
        "tcp.checksum.status",
        "-e",
        "_ws.expert.message",
    ];
    let list = tshark_read(&file.0, &fields).await.expect("tshark");
    eprintln!("tshark packet list:\n{list}");
    let rows = parse_rows(&list);
    let stream = |n: u32| rows.iter().filter(move |r| r.stream == n);

    // Every packet: checksums good (status 1 = "Good"), nothing malformed, no warning but the
    // RST's "Connection reset".
    for r in &rows {
        assert_eq!(r.tcp_csum, "1", "TCP checksum status: {r:?}");
        if r.stream != 2 {
            assert_eq!(r.ip_csum, "1", "IPv4 header checksum status: {r:?}");
        }
        let bad = [
            "Malformed",
            "checksum",
            "not captured",
            "unseen",
            "Retransmission",
        ];
        for b in bad {
            assert!(!r.experts.contains(b), "tshark expert info {b:?}: {r:?}");
        }
    }

    // Stream 0: handshake, the request in two segments, the response, FIN both ways.
    let s0: Vec<&Row> = stream(0).collect();
    let server = 8080;
    assert_eq!(
        (&s0[0].flags[..], s0[0].seq, s0[0].ack, s0[0].len),
        ("S", 0, 0, 0)
    );
    assert_eq!((&s0[1].flags[..], s0[1].seq, s0[1].ack), ("AS", 0, 1));
    assert_eq!((&s0[2].flags[..], s0[2].seq, s0[2].ack), ("A", 1, 1));
    let client_data: Vec<&&Row> = s0
        .iter()
        .filter(|r| r.src_port != server && r.len > 0)
        .collect();
    assert_eq!(
        client_data
            .iter()
            .map(|r| (r.seq, r.len))
            .collect::<Vec<_>>(),
        vec![
            (1, REQ1.len() as u32),
            (1 + REQ1.len() as u32, REQ2.len() as u32)
        ],
        "the request in two segments, contiguous"
    );
    let req_end = 1 + (REQ1.len() + REQ2.len()) as u32;
    let resp = s0
        .iter()
        .find(|r| r.src_port == server && r.len > 0)
        .expect("response segment");
    assert_eq!(
        (resp.seq, resp.ack, resp.len),
        (1, req_end, RESP.len() as u32)
    );
    let fin_c = s0
        .iter()
        .find(|r| r.src_port != server && r.flags.contains('F'))
        .expect("client FIN");
    assert_eq!(fin_c.seq, req_end);
    let fin_s = s0
        .iter()
        .find(|r| r.src_port == server && r.flags.contains('F'))
        .expect("server FIN");
    assert_eq!((fin_s.seq, fin_s.ack), (1 + RESP.len() as u32, req_end + 1));
    let last = s0.last().unwrap();
    assert_eq!(
        (&last.flags[..], last.seq, last.ack),
        ("A", req_end + 1, RESP.len() as u32 + 2)
    );
    // Window scaling understood: the calculated window is bytes (rcvbuf 131072, shift 10).
    assert!(
        s0[2].win > 65_535 && s0[2].win <= 131_072,
        "calculated window {}",
        s0[2].win
    );

    // Stream 1: data, then the server's RST.
    let s1: Vec<&Row> = stream(1).collect();
    assert_eq!(&s1[0].flags, "S");
    let ping = s1.iter().find(|r| r.len > 0).expect("ping");
    assert_eq!((ping.seq, ping.len), (1, 4));
    let rst = s1.last().unwrap();
    assert!(
        rst.flags.contains('R'),
        "the last segment is the RST: {rst:?}"
    );
    assert_eq!(rst.src_port, 9000, "sent by the server");
    assert_eq!((rst.seq, rst.ack), (1, 5));
    assert!(rst.experts.contains("Connection reset"), "{rst:?}");

    // Stream 2 (IPv6): the bulk bytes, acked in full.
    let s2: Vec<&Row> = stream(2).collect();
    let sent: u32 = s2
        .iter()
        .filter(|r| r.src_port != 9001)
        .map(|r| r.len)
        .sum();
    assert_eq!(sent, bulk as u32);
    assert!(s2
        .iter()
        .any(|r| r.src_port == 9001 && r.ack == bulk as u32 + 2));

    // The HTTP request, reassembled from its two segments.
    let http = tshark_read(
        &file.0,
        &[
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
            "-e",
            "http.host",
            "-e",
            "tcp.segment.count",
        ],
    )
    .await
    .expect("tshark");
    eprintln!("tshark http.request:\n{http}");
    assert_eq!(http.trim(), "GET\t/hello\tlocalhost\t2");
    let http = tshark_read(
        &file.0,
        &[
            "-Y",
            "http.response",
            "-T",
            "fields",
            "-e",
            "http.response.code",
            "-e",
            "http.file_data",
        ],
    )
    .await
    .expect("tshark");
    assert!(http.trim().starts_with("200\t"), "{http}");

    // The payload bytes of stream 0, as tshark reassembles them.
    let follow = tshark_read(&file.0, &["-q", "-z", "follow,tcp,raw,0"])
        .await
        .expect("tshark");
    let (to_server, to_client) = parse_follow(&follow);
    assert_eq!(to_server, [REQ1, REQ2].concat(), "{follow}");
    assert_eq!(to_client, RESP, "{follow}");

    // The expert summary: no errors, and the only warning is the RST.
    let expert = tshark_read(&file.0, &["-q", "-z", "expert,warn"])
        .await
        .expect("tshark");
    eprintln!("tshark -z expert,warn:\n{expert}");
    assert!(!expert.contains("Errors ("), "{expert}");
    for line in expert.lines().filter(|l| l.contains("Warning")) {
        assert!(line.contains("Connection reset"), "{expert}");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) snap length

#[tokio::test]
async fn the_snap_length_truncates_frames_but_keeps_their_original_length() {
    // tcpdump -s 80: each record holds at most 80 bytes, orig_len is the whole frame.
    let ns = Netns::new();
    bounded(
        "snaplen 80",
        ns.clone().scope(async {
            let short = ns.capture_to_memory(CaptureOptions::new().snaplen(80));
            let full = ns.capture_to_memory(CaptureOptions::new());
            assert_eq!(short.snaplen(), 80);
            let (mut c, mut a) = pair_on("127.0.0.1:7100").await;
            let data = pattern_vec(3, 1000);
            c.write_all(&data).await.expect("write");
            let mut got = vec![0u8; 1000];
            a.read_exact(&mut got).await.expect("read");
            drop((c, a));
            wait_all_freed(&ns).await;
            let short = parse_pcap(&short.stop().expect("stop"));
            let full = parse_pcap(&full.stop().expect("stop"));
            assert_eq!(short.snaplen, 80);
            assert_eq!(short.records.len(), full.records.len());
            for (s, f) in short.records.iter().zip(&full.records) {
                assert_eq!(s.orig_len, f.orig_len);
                assert_eq!(s.data.len(), (f.orig_len as usize).min(80));
                assert_eq!(s.data[..], f.data[..s.data.len()], "a prefix of the frame");
                assert_eq!((s.ts_sec, s.ts_usec), (f.ts_sec, f.ts_usec));
            }
            let data_rec = full
                .records
                .iter()
                .find(|r| r.orig_len as usize == 14 + 20 + 32 + 1000)
                .expect("the data frame: Ethernet + IPv4 + TCP with timestamps + 1000");
            assert_eq!(parse_frame(&data_rec.data).payload, data);
            // A SYN (74 bytes) fits whole; the 1066-byte data frame does not.
            assert!(short
                .records
                .iter()
                .any(|r| r.orig_len == 74 && r.data.len() == 74));
            assert!(short
                .records
                .iter()
                .any(|r| r.orig_len == 1066 && r.data.len() == 80));
        }),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// (d) stopping by drop; several captures at once

#[tokio::test]
async fn dropping_the_guard_stops_the_capture_while_another_one_goes_on() {
    // Two captures at once each get every packet; dropping one guard stops it (its file is
    // flushed and complete) and the other keeps recording.
    let ns = Netns::new();
    let file = TempFile::new("drop");
    bounded(
        "capture dropped mid-way",
        ns.clone().scope(async {
            let first = ns
                .capture_to_file(&file.0, CaptureOptions::new())
                .expect("capture_to_file");
            let second = ns.capture_to_memory(CaptureOptions::new());
            hello_world(&ns, "127.0.0.1:7200").await;
            drop(first);
            hello_world(&ns, "127.0.0.1:7201").await;
            let a = parse_pcap(&std::fs::read(&file.0).expect("read capture"));
            let b = parse_pcap(&second.stop().expect("stop"));
            let ports = |p: &Pcap| -> Vec<u16> {
                segments(p)
                    .iter()
                    .map(|s| s.src.port().min(s.dst.port()))
                    .collect()
            };
            let (pa, pb) = (ports(&a), ports(&b));
            assert!(pa.contains(&7200));
            assert!(
                !pa.contains(&7201),
                "a packet recorded after the guard was dropped"
            );
            assert!(pb.contains(&7200) && pb.contains(&7201));
            // The same packets, the same bytes: the first capture is a prefix of the second.
            assert!(a.records.len() < b.records.len());
            assert_eq!(a.records[..], b.records[..a.records.len()]);
        }),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// (e) a failing writer

/// Accepts `room` bytes, then fails every write.
#[derive(Debug)]
struct Failing {
    room: usize,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_write_error_is_reported_by_stop_and_does_not_disturb_the_connection() {
    let ns = Netns::new();
    bounded(
        "capture into a failing writer",
        ns.clone().scope(async {
            let cap = ns
                .capture(Failing { room: 200 }, CaptureOptions::new())
                .expect("the header fits");
            hello_world(&ns, "127.0.0.1:7300").await;
            assert!(cap.packets() >= 1, "some packets fit before the error");
            let e = cap.stop().expect_err("the write error");
            assert_eq!(e.to_string(), "disk full");
            // The header itself failing is reported at once.
            let e = ns
                .capture(Failing { room: 10 }, CaptureOptions::new())
                .expect_err("header");
            assert_eq!(e.to_string(), "disk full");
        }),
    )
    .await;
}
