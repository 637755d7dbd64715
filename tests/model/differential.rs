//! The same scenario over the kernel's loopback and over lonet.
//!
//! Every file in `tests/scenarios/` is compiled twice: once in module `os`, where
//! `TcpListener`/`TcpStream` are `tokio::net`'s (real sockets on 127.0.0.1 / ::1 only), and
//! once in module `lo`, where they are `lonet::net`'s and the scenario runs in a fresh
//! namespace. A scenario returns what it observed (bytes, `io::ErrorKind`, errno); each test
//! checks the kernel's observation against the expected Linux value (so the expectation itself
//! is verified on this machine) and then lonet's against the same value.

use crate::common::errno::*;
use crate::common::*;
use std::io::ErrorKind::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The scenario modules, instantiated once per stack.
macro_rules! scenarios {
    () => {
        pub mod echo {
            use super::*;
            include!("../scenarios/echo.rs");
        }
        pub mod errors {
            use super::*;
            include!("../scenarios/errors.rs");
        }
        pub mod half_close {
            use super::*;
            include!("../scenarios/half_close.rs");
        }
        pub mod reset {
            use super::*;
            include!("../scenarios/reset.rs");
        }
        pub mod readiness {
            use super::*;
            include!("../scenarios/readiness.rs");
        }
        pub mod split {
            use super::*;
            include!("../scenarios/split.rs");
        }
        pub mod addresses {
            use super::*;
            include!("../scenarios/addresses.rs");
        }
    };
}

three_stacks! {
    pub use std::io;
    pub use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};

    include!("../scenarios/helpers.rs");
    scenarios!();
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6_LOCALHOST: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

// ---------------------------------------------------------------------------------------------
// Data

#[tokio::test]
async fn echo_returns_every_byte_intact_and_in_order_for_sizes_up_to_200_kib() {
    // Linux: TCP delivers the byte stream exactly, whatever the write sizes and segment boundaries.
    let sizes = || {
        vec![
            0,
            1,
            7,
            100,
            1460,
            4096,
            16_384,
            65_483,
            65_536,
            65_537,
            100_000,
            200 * 1024,
        ]
    };
    differential!(echo::one_connection_per_size(sizes()) =>
        sizes().into_iter().map(Echoed::intact).collect::<Vec<_>>());
}

#[tokio::test]
async fn many_request_response_round_trips_on_one_connection_come_back_exactly() {
    // Linux: each read_exact gets exactly the bytes echoed, message after message.
    differential!(echo::round_trips(200) => 200);
}

// ---------------------------------------------------------------------------------------------
// connect and bind errors

#[tokio::test]
async fn connect_with_no_listener_is_refused() {
    // Linux: the SYN to a closed port is answered with RST; connect() fails with ECONNREFUSED.
    differential!(errors::connect_without_listener() =>
        vec![("connect", err(ConnectionRefused, ECONNREFUSED))]);
}

#[tokio::test]
async fn binding_an_address_in_use_fails_with_addr_in_use() {
    // Linux: bind() to a port with a listener fails with EADDRINUSE, even with SO_REUSEADDR.
    differential!(errors::bind_in_use() =>
        vec![("bind the same address again", err(AddrInUse, EADDRINUSE))]);
}

#[tokio::test]
async fn binding_a_non_local_address_fails_with_addr_not_available() {
    // Linux: bind() to an address no interface has fails with EADDRNOTAVAIL.
    differential!(errors::bind_non_local() =>
        vec![("bind 192.0.2.1:0", err(AddrNotAvailable, EADDRNOTAVAIL))]);
}

// ---------------------------------------------------------------------------------------------
// Closing: FIN, RST

#[tokio::test]
async fn after_shutdown_the_peer_reads_everything_then_eof_and_can_still_write_back() {
    // Linux: shutdown(SHUT_WR) sends FIN after the queued data; the peer's reads drain the data,
    // then return 0; the other direction stays open.
    differential!(half_close::shutdown_then_peer_replies() => vec![
        ("client shutdown", ok_done()),
        ("server read_to_end", ok(100_000usize)),
        ("server got the bytes intact", ok(true)),
        ("server read after EOF", ok(0usize)),
        ("server writes back", ok(5usize)),
        ("client read_to_end", ok(5usize)),
        ("client got", ok("reply")),
    ]);
}

#[tokio::test]
async fn write_after_own_shutdown_is_a_broken_pipe() {
    // Linux: send() after shutdown(SHUT_WR) fails with EPIPE; the peer reads EOF.
    differential!(half_close::write_after_own_shutdown() => vec![
        ("shutdown", ok_done()),
        ("write", err(BrokenPipe, EPIPE)),
        ("peer read", ok(0usize)),
    ]);
}

#[tokio::test]
async fn drop_with_unread_data_resets_and_the_first_read_reports_it_once() {
    // Linux: close() with unread data sends RST; the peer's next call gets ECONNRESET once,
    // then reads return 0 and writes EPIPE.
    differential!(reset::read_after_peer_dropped_unread() => vec![
        ("read", err(ConnectionReset, ECONNRESET)),
        ("read again", ok(0usize)),
        ("write", err(BrokenPipe, EPIPE)),
    ]);
}

#[tokio::test]
async fn drop_with_unread_data_resets_and_the_first_write_reports_it_once() {
    // Linux: the pending ECONNRESET is returned by whichever call comes first, here send();
    // the next send gets EPIPE and reads return 0.
    differential!(reset::write_after_peer_dropped_unread() => vec![
        ("write", err(ConnectionReset, ECONNRESET)),
        ("write again", err(BrokenPipe, EPIPE)),
        ("read", ok(0usize)),
    ]);
}

#[tokio::test]
async fn peer_addr_after_a_reset_is_not_connected() {
    // Linux: getpeername() on a reset (closed) socket fails with ENOTCONN.
    differential!(reset::peer_addr_after_reset() => vec![
        ("read", err(ConnectionReset, ECONNRESET)),
        ("peer_addr", err(NotConnected, ENOTCONN)),
    ]);
}

#[tokio::test]
async fn closing_with_linger_zero_resets_the_connection() {
    // Linux: close() with SO_LINGER {on, 0} aborts the connection with RST even with nothing unread.
    differential!(reset::linger_zero_close() => vec![
        ("set_linger(0)", ok(())),
        ("linger", ok(Some(std::time::Duration::ZERO))),
        ("read", err(ConnectionReset, ECONNRESET)),
        ("read again", ok(0usize)),
    ]);
}

#[tokio::test]
async fn writing_after_the_peer_closed_cleanly_succeeds_once_then_is_a_broken_pipe() {
    // Linux: after FIN, read returns 0 and a write is still accepted; the closed peer answers
    // it with RST, which sets EPIPE (CLOSE_WAIT), so a later write fails with EPIPE.
    differential!(reset::write_after_peer_closed_cleanly() => vec![
        ("read", ok(0usize)),
        ("write", ok(13usize)),
        ("a later write", err(BrokenPipe, EPIPE)),
        ("read after the RST", ok(0usize)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Readiness, try_*, peek

#[tokio::test]
async fn try_read_with_nothing_queued_would_block() {
    // Linux: a non-blocking recv() on an empty receive queue fails with EAGAIN.
    differential!(readiness::try_read_nothing_queued() =>
        vec![("try_read", err_kind(WouldBlock))]);
}

#[tokio::test]
async fn readiness_and_try_calls_move_bytes_and_report_would_block_and_eof() {
    // Linux: epoll reports EPOLLOUT on a connected socket and EPOLLIN once data or FIN is queued;
    // non-blocking recv returns what is queued, EAGAIN when empty, 0 after FIN.
    differential!(readiness::ready_and_try_calls() => vec![
        ("a writable", ok_done()),
        ("a try_write", ok(4usize)),
        ("b try_read", ok(4usize)),
        ("b got", ok("ping")),
        ("b try_read when drained", err_kind(WouldBlock)),
        ("a try_write_vectored", ok(6usize)),
        ("b try_read_vectored", ok(6usize)),
        ("b got", ok(("ab", "cdef"))),
        ("b try_read_buf", ok(8usize)),
        ("b got", ok("buffered")),
        ("a ready: writable", ok(true)),
        ("a ready: readable", ok(false)),
        ("a shutdown", ok_done()),
        ("b try_read at EOF", ok(0usize)),
    ]);
}

#[tokio::test]
async fn peek_shows_queued_bytes_without_consuming_them() {
    // Linux: recv(MSG_PEEK) copies queued bytes and leaves them for the next read.
    differential!(readiness::peek_then_read() => vec![
        ("peek", ok(11usize)),
        ("peeked", ok("hello world")),
        ("peek into 5 bytes", ok(5usize)),
        ("peeked", ok("hello")),
        ("read", ok(11usize)),
        ("read got", ok("hello world")),
        ("peek the next write", ok(1usize)),
        ("peeked", ok("!")),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Split halves

#[tokio::test]
async fn owned_halves_read_and_write_concurrently_and_reunite() {
    // Linux: one socket can be read and written at the same time from two threads; the halves
    // are tokio's, the socket is one.
    differential!(split::into_split_concurrent_then_reunite() => vec![
        ("write_all", ok_done()),
        ("read_exact", ok_done()),
        ("first mismatch", ok(None::<u64>)),
        ("reunite own halves", ok_done()),
        ("read to EOF after reunite", ok(0usize)),
        ("reunite halves of different streams fails", ok(true)),
    ]);
}

#[tokio::test]
async fn dropping_the_owned_write_half_sends_fin_and_the_read_half_keeps_reading() {
    // Linux: shutdown(SHUT_WR) (what dropping OwnedWriteHalf does) closes one direction only.
    differential!(split::dropping_owned_write_half_sends_fin() => vec![
        ("peer read", ok(0usize)),
        ("read_exact", ok_done()),
        ("got", ok("still open")),
    ]);
}

#[tokio::test]
async fn borrowed_halves_read_and_write_concurrently() {
    // Linux: reads and writes on one socket proceed independently.
    differential!(split::borrowed_split_concurrent() => vec![
        ("server copied", ok(300_000u64)),
        ("client write_all + shutdown", ok_done()),
        ("client read_to_end", ok(300_000usize)),
        ("first mismatch", ok(None::<u64>)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Addresses and options

#[tokio::test]
async fn ipv6_loopback_connects_and_reports_colon_colon_1_on_both_ends() {
    // Linux: ::1 is lo's IPv6 address; both ends see ::1 and the data arrives.
    differential!(addresses::ipv6_loopback() => vec![
        ("listener ip", ok(V6_LOCALHOST)),
        ("client local ip", ok(V6_LOCALHOST)),
        ("client peer is the listener", ok(true)),
        ("accepted peer ip", ok(V6_LOCALHOST)),
        ("accepted peer is the client", ok(true)),
        ("accepted local is the listener", ok(true)),
        ("server got", ok("hello over v6")),
    ]);
}

#[tokio::test]
async fn ipv6_connect_with_no_listener_is_refused() {
    // Linux: as over IPv4, the SYN is answered with RST: ECONNREFUSED.
    differential!(addresses::ipv6_connect_without_listener() =>
        vec![("connect", err(ConnectionRefused, ECONNREFUSED))]);
}

#[tokio::test]
async fn connecting_to_127_0_0_2_uses_source_address_127_0_0_1() {
    // Linux: the route to 127.0.0.0/8 via lo has preferred source 127.0.0.1, so an unbound
    // socket connecting to 127.0.0.2 gets local address 127.0.0.1.
    differential!(addresses::connect_to_127_0_0_2() => vec![
        ("client local ip", ok(LOCALHOST)),
        ("client peer is the listener", ok(true)),
        ("accepted local ip", ok(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))),
        ("accepted peer ip", ok(LOCALHOST)),
        ("accepted peer is the client", ok(true)),
    ]);
}

#[tokio::test]
async fn nodelay_ttl_and_linger_read_back_what_was_set() {
    // Linux: TCP_NODELAY defaults off, IP_TTL to 64 (net.ipv4.ip_default_ttl) and accepts 1..=255
    // (EINVAL otherwise), SO_LINGER defaults off and reads back whole seconds.
    let secs = |s| Some(std::time::Duration::from_secs(s));
    differential!(addresses::socket_options() => vec![
        ("nodelay", ok(false)),
        ("set_nodelay(true)", ok(())),
        ("nodelay", ok(true)),
        ("set_nodelay(false)", ok(())),
        ("nodelay", ok(false)),
        ("ttl", ok(64u32)),
        ("set_ttl(100)", ok(())),
        ("ttl", ok(100u32)),
        ("set_ttl(256)", err(InvalidInput, EINVAL)),
        ("ttl", ok(100u32)),
        ("linger", ok(None::<std::time::Duration>)),
        ("set_linger(5s)", ok(())),
        ("linger", ok(secs(5))),
        ("set_linger(None)", ok(())),
        ("linger", ok(None::<std::time::Duration>)),
        ("listener ttl", ok(64u32)),
        ("listener set_ttl(42)", ok(())),
        ("listener ttl", ok(42u32)),
    ]);
}
