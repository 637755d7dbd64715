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
        pub mod accept_queue {
            use super::*;
            include!("../scenarios/accept_queue.rs");
        }
        pub mod destinations {
            use super::*;
            include!("../scenarios/destinations.rs");
        }
        pub mod shutdown {
            use super::*;
            include!("../scenarios/shutdown.rs");
        }
        pub mod options {
            use super::*;
            include!("../scenarios/options.rs");
        }
        pub mod closed_readiness {
            use super::*;
            include!("../scenarios/closed_readiness.rs");
        }
        pub mod listener_binds {
            use super::*;
            include!("../scenarios/listener_binds.rs");
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

// ---------------------------------------------------------------------------------------------
// The accept queue

#[tokio::test]
async fn a_connection_reset_in_the_accept_queue_is_still_accepted_and_reads_the_reset_once() {
    // Linux: the RST moves the queued child to CLOSE with ECONNRESET pending; accept() takes it
    // from the queue all the same (inet_csk_accept does not look at its state), the first read
    // reports the reset, later reads return 0 and writes EPIPE.
    differential!(accept_queue::reset_while_queued() => vec![
        ("accepted peer is the client", ok(true)),
        ("read", err(ConnectionReset, ECONNRESET)),
        ("read again", ok(0usize)),
        ("write", err(BrokenPipe, EPIPE)),
    ]);
}

#[tokio::test]
async fn data_and_fin_sent_before_accept_are_read_after_it() {
    // Linux: a queued child receives data and FIN like any established socket.
    differential!(accept_queue::fin_while_queued() => vec![
        ("read_to_end", ok(18usize)),
        ("got", ok("sent before accept")),
    ]);
}

#[tokio::test]
async fn dropping_a_listener_resets_its_unaccepted_connections() {
    // Linux: closing a listener disconnects every child still in its accept queue
    // (inet_csk_listen_stop → inet_child_forget → tcp_disconnect sends RST): the client's
    // read gets ECONNRESET once, then 0; writes then fail with EPIPE; getpeername ENOTCONN.
    differential!(accept_queue::listener_dropped_read() => vec![
        ("read", err(ConnectionReset, ECONNRESET)),
        ("read again", ok(0usize)),
        ("write", err(BrokenPipe, EPIPE)),
        ("peer_addr", err(NotConnected, ENOTCONN)),
    ]);
}

#[tokio::test]
async fn dropping_a_listener_resets_unaccepted_connections_that_sent_data() {
    // Linux: as above, the data the client sent is discarded with the child; the pending
    // ECONNRESET goes to the first call, here a write.
    differential!(accept_queue::listener_dropped_write() => vec![
        ("write", err(ConnectionReset, ECONNRESET)),
        ("write again", err(BrokenPipe, EPIPE)),
        ("read", ok(0usize)),
    ]);
}

#[tokio::test]
async fn connections_are_accepted_in_the_order_they_completed() {
    // Linux: the accept queue is a FIFO (reqsk_queue_add appends, accept takes the head).
    differential!(accept_queue::accept_order() => vec![("accepted in connect order", ok(true))]);
}

// ---------------------------------------------------------------------------------------------
// shutdown() in every state, empty reads and writes

#[tokio::test]
async fn a_second_shutdown_is_accepted() {
    // Linux: shutdown(SHUT_WR) in FIN_WAIT1/FIN_WAIT2 only sets the flag again (tcp_shutdown
    // sends a FIN only from ESTABLISHED, SYN_RECV and CLOSE_WAIT).
    differential!(shutdown::shutdown_twice() => vec![
        ("shutdown", ok_done()),
        ("shutdown again", ok_done()),
        ("peer read", ok(0usize)),
    ]);
}

#[tokio::test]
async fn after_a_reported_reset_reads_are_eof_writes_epipe_and_shutdown_is_accepted() {
    // Linux: the error is reported once (sock_error clears sk_err); the socket is in CLOSE:
    // read returns 0, send EPIPE; shutdown() gives ENOTCONN, which tokio's poll_shutdown turns
    // into Ok; getsockname still answers.
    differential!(shutdown::calls_after_reset_reported() => vec![
        ("read", err(ConnectionReset, ECONNRESET)),
        ("take_error", ok(None::<Option<i32>>)),
        ("read again", ok(0usize)),
        ("shutdown", ok_done()),
        ("write", err(BrokenPipe, EPIPE)),
        ("local_addr ip", ok(LOCALHOST)),
    ]);
}

#[tokio::test]
async fn take_error_returns_a_pending_reset_once_and_the_calls_then_see_none() {
    // Linux: SO_ERROR returns and clears sk_err; with the error taken, read returns 0 (the
    // socket is closed) and send fails with EPIPE.
    differential!(shutdown::take_error_consumes_the_reset() => vec![
        ("take_error before", ok(None::<Option<i32>>)),
        ("take_error", ok(Some(Some(ECONNRESET)))),
        ("take_error again", ok(None::<Option<i32>>)),
        ("read", ok(0usize)),
        ("write", err(BrokenPipe, EPIPE)),
    ]);
}

#[tokio::test]
async fn shutdown_does_not_consume_a_pending_reset() {
    // Linux: inet_shutdown on a closed socket returns ENOTCONN (tokio: Ok) and leaves sk_err
    // for the next read.
    differential!(shutdown::shutdown_after_reset_unreported() => vec![
        ("shutdown", ok_done()),
        ("read", err(ConnectionReset, ECONNRESET)),
    ]);
}

#[tokio::test]
async fn after_both_fins_the_first_closer_is_closed() {
    // Linux: the side that sent the first FIN goes to TIME_WAIT on the peer's FIN, and its
    // socket to CLOSE (tcp_time_wait → tcp_done): getpeername is ENOTCONN, send EPIPE,
    // read 0, shutdown ENOTCONN (tokio: Ok).
    differential!(shutdown::calls_after_both_closed() => vec![
        ("b read", ok(0usize)),
        ("a read", ok(0usize)),
        ("a shutdown again", ok_done()),
        ("a peer_addr", err(NotConnected, ENOTCONN)),
        ("a write", err(BrokenPipe, EPIPE)),
        ("a read again", ok(0usize)),
    ]);
}

#[tokio::test]
async fn empty_writes_return_0_until_shutdown_then_epipe() {
    // Linux: tcp_sendmsg checks sk_err and SEND_SHUTDOWN before copying anything, so a
    // zero-length send succeeds with 0 on an open connection and fails with EPIPE after
    // shutdown(SHUT_WR).
    differential!(shutdown::empty_writes() => vec![
        ("write 0 bytes", ok(0usize)),
        ("try_write 0 bytes", ok(0usize)),
        ("write 0 bytes after shutdown", err(BrokenPipe, EPIPE)),
        ("peer read_to_end", ok(3usize)),
        ("peer got", ok("end")),
    ]);
}

#[tokio::test]
async fn a_read_into_an_empty_buffer_returns_0_and_leaves_the_data() {
    // Linux: recv with len 0 copies nothing and returns 0.
    differential!(shutdown::empty_read_with_data_queued() => vec![
        ("read into []", ok(0usize)),
        ("try_read into []", ok(0usize)),
        ("read", ok(6usize)),
        ("got", ok("queued")),
    ]);
}

#[tokio::test]
async fn after_our_own_shutdown_we_still_read_everything_the_peer_sends() {
    // Linux: SHUT_WR closes one direction; FIN_WAIT2 keeps receiving.
    differential!(shutdown::read_after_own_shutdown() => vec![
        ("peer read", ok(0usize)),
        ("peer write_all", ok_done()),
        ("peer shutdown", ok_done()),
        ("read_to_end", ok(50_000usize)),
        ("intact", ok(true)),
    ]);
}

#[tokio::test]
async fn peek_at_eof_returns_0_and_after_a_reset_reports_it_once() {
    // Linux: MSG_PEEK goes through tcp_recvmsg: 0 at EOF, the pending error once.
    differential!(shutdown::peek_at_eof_and_after_reset() => vec![
        ("peek at EOF", ok(0usize)),
        ("peek at EOF again", ok(0usize)),
        ("read at EOF", ok(0usize)),
        ("peek after reset", err(ConnectionReset, ECONNRESET)),
        ("peek again", ok(0usize)),
    ]);
}

#[tokio::test]
async fn what_try_write_accepted_before_would_block_is_all_read_by_the_peer() {
    // Linux: every byte a non-blocking send accepted is delivered; the send buffer fills
    // while the peer does not read.
    differential!(shutdown::fill_then_drain() => vec![
        ("try_write blocked", ok(true)),
        ("bytes read equal bytes accepted", ok(true)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Destinations: port 0, the unspecified address, 127/8, IPv4-mapped IPv6

/// `::ffff:127.0.0.1`.
const MAPPED_LOCALHOST: IpAddr = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1));

#[tokio::test]
async fn connect_to_port_0_is_refused() {
    // Linux: tcp_v4_connect and tcp_v6_connect accept port 0; the SYN to it finds no listener
    // and is answered with RST: ECONNREFUSED.
    differential!(destinations::connect_to_port_0() => vec![
        ("127.0.0.1:0", err(ConnectionRefused, ECONNREFUSED)),
        ("[::1]:0", err(ConnectionRefused, ECONNREFUSED)),
    ]);
}

#[tokio::test]
async fn connect_to_the_unspecified_address_reaches_the_loopback_address() {
    // Linux: ip_route_output_key_hash_rcu turns daddr 0.0.0.0 into 127.0.0.1, and
    // tcp_v6_connect turns :: into ::1 ("connect() to INADDR_ANY means loopback").
    differential!(destinations::connect_to_unspecified() => vec![
        ("v4 client peer", ok(LOCALHOST)),
        ("v4 client local ip", ok(LOCALHOST)),
        ("v4 accepted local ip", ok(LOCALHOST)),
        ("v6 client peer", ok(V6_LOCALHOST)),
        ("v6 client local ip", ok(V6_LOCALHOST)),
        ("v6 accepted local ip", ok(V6_LOCALHOST)),
    ]);
}

#[tokio::test]
async fn connect_to_the_unspecified_address_with_no_listener_is_refused() {
    // Linux: as a connect to 127.0.0.1 on that port.
    differential!(destinations::connect_to_unspecified_without_listener() =>
        vec![("connect 0.0.0.0", err(ConnectionRefused, ECONNREFUSED))]);
}

#[tokio::test]
async fn a_wildcard_listener_takes_any_127_address() {
    // Linux: all of 127.0.0.0/8 is local (the local table's route via lo); the accepted socket
    // is bound to the address dialled, the client to the route's source 127.0.0.1.
    let dialled = IpAddr::V4(Ipv4Addr::new(127, 1, 2, 3));
    differential!(destinations::wildcard_listener_takes_127_1_2_3() => vec![
        ("client local ip", ok(LOCALHOST)),
        ("client peer ip", ok(dialled)),
        ("accepted local ip", ok(dialled)),
        ("accepted peer is the client", ok(true)),
        ("server got", ok("to 127.1.2.3")),
    ]);
}

#[tokio::test]
async fn a_dual_stack_listener_shows_ipv4_peers_v4_mapped_and_clients_keep_their_form() {
    // Linux: a [::] listener (IPV6_V6ONLY off) accepts IPv4 connections as AF_INET6 sockets
    // with v4-mapped addresses; an IPv6 client dialling ::ffff:127.0.0.1 is itself an AF_INET6
    // socket (tcp_v6_connect hands the mapped address to tcp_v4_connect) and reads back
    // v4-mapped names.
    differential!(destinations::dual_stack_listener() => vec![
        ("v4 client local ip", ok(LOCALHOST)),
        ("v4 client peer ip", ok(LOCALHOST)),
        ("v4 accepted peer ip", ok(MAPPED_LOCALHOST)),
        ("v4 accepted peer port is the client's", ok(true)),
        ("v4 accepted local", ok((MAPPED_LOCALHOST, true))),
        ("v4 accepted peer_addr", ok(MAPPED_LOCALHOST)),
        ("mapped client local ip", ok(MAPPED_LOCALHOST)),
        ("mapped client peer", ok((MAPPED_LOCALHOST, true))),
        ("mapped accepted peer ip", ok(MAPPED_LOCALHOST)),
        ("mapped accepted local", ok((MAPPED_LOCALHOST, true))),
        ("v6 client local ip", ok(V6_LOCALHOST)),
        ("v6 accepted peer ip", ok(V6_LOCALHOST)),
        ("v6 accepted local ip", ok(V6_LOCALHOST)),
    ]);
}

#[tokio::test]
async fn an_ipv6_client_reaches_an_ipv4_listener_through_the_mapped_address() {
    // Linux: the IPv6 socket's names read back v4-mapped; the IPv4 listener sees an IPv4 peer.
    differential!(destinations::mapped_client_to_v4_listener() => vec![
        ("client local ip", ok(MAPPED_LOCALHOST)),
        ("client peer", ok((MAPPED_LOCALHOST, true))),
        ("accepted peer ip", ok(LOCALHOST)),
        ("accepted peer port is the client's", ok(true)),
        ("server got", ok("mapped")),
    ]);
}

#[tokio::test]
async fn listeners_of_one_family_are_not_reached_from_the_other() {
    // Linux: a listener on ::1 is IPv6-only by its address, one on 127.0.0.1 IPv4-only.
    differential!(destinations::families_do_not_cross() => vec![
        ("127.0.0.1 to the ::1 listener's port", err(ConnectionRefused, ECONNREFUSED)),
        ("::1 to the 127.0.0.1 listener's port", err(ConnectionRefused, ECONNREFUSED)),
    ]);
}

#[tokio::test]
async fn connect_with_several_addresses_takes_the_first_that_answers() {
    // tokio: each address in turn, the last error if none connects (Linux: ECONNREFUSED).
    differential!(destinations::connect_tries_each_address() => vec![
        ("connected to the second", ok(true)),
        ("all refused", err(ConnectionRefused, ECONNREFUSED)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// TcpSocket options and binds

/// Linux's `EAFNOSUPPORT`, with the `io::ErrorKind` std gives it.
fn eafnosupport() -> crate::common::Res {
    const EAFNOSUPPORT: i32 = 97;
    err(
        std::io::Error::from_raw_os_error(EAFNOSUPPORT).kind(),
        EAFNOSUPPORT,
    )
}

#[tokio::test]
async fn buffer_sizes_read_back_doubled_with_linux_minimums() {
    // Linux: SO_SNDBUF/SO_RCVBUF default to tcp_wmem[1] and tcp_rmem[1]; a set stores twice the
    // value (sk_setsockopt), at least SOCK_MIN_SNDBUF (4608) and SOCK_MIN_RCVBUF (2304).
    differential!(options::buffer_sizes() => vec![
        ("send_buffer_size", ok(16_384u32)),
        ("recv_buffer_size", ok(131_072u32)),
        ("set_send_buffer_size(4096)", ok(())),
        ("send_buffer_size", ok(8192u32)),
        ("set_recv_buffer_size(4096)", ok(())),
        ("recv_buffer_size", ok(8192u32)),
        ("set_send_buffer_size(1)", ok(())),
        ("send_buffer_size", ok(4608u32)),
        ("set_recv_buffer_size(1)", ok(())),
        ("recv_buffer_size", ok(2304u32)),
        ("set_send_buffer_size(0)", ok(())),
        ("send_buffer_size", ok(4608u32)),
        ("set_recv_buffer_size(100000)", ok(())),
        ("recv_buffer_size", ok(200_000u32)),
        ("recv_buffer_size after bind", ok(200_000u32)),
    ]);
}

#[tokio::test]
async fn socket_flags_default_off_and_read_back_what_was_set() {
    // Linux: SO_REUSEADDR, SO_REUSEPORT, TCP_NODELAY and SO_KEEPALIVE start off; SO_ERROR of a
    // socket that never connected is 0.
    differential!(options::flags_read_back() => vec![
        ("reuseaddr", ok(false)),
        ("reuseport", ok(false)),
        ("nodelay", ok(false)),
        ("keepalive", ok(false)),
        ("set_reuseaddr(true)", ok(())),
        ("reuseaddr", ok(true)),
        ("set_reuseport(true)", ok(())),
        ("reuseport", ok(true)),
        ("set_keepalive(true)", ok(())),
        ("keepalive", ok(true)),
        ("set_reuseaddr(false)", ok(())),
        ("reuseaddr", ok(false)),
        ("take_error", ok(false)),
        ("bind", ok(())),
        ("take_error once bound", ok(false)),
    ]);
}

#[tokio::test]
async fn an_unbound_socket_is_named_by_the_unspecified_address_and_port_0() {
    // Linux: getsockname on an unbound socket gives its family's any address and port 0.
    differential!(options::local_addr_before_and_after_bind() => vec![
        ("unbound local_addr", ok(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))),
        ("bound local_addr", ok((LOCALHOST, true))),
        ("unbound v6 local_addr", ok(std::net::SocketAddr::from(([0u16; 8], 0)))),
    ]);
}

#[tokio::test]
async fn so_reuseaddr_shares_a_port_until_the_second_listen() {
    // Linux: inet_csk_bind_conflict lets two SO_REUSEADDR sockets share a port while neither
    // listens; listen() checks again (inet_csk_listen_start → get_port) and fails with
    // EADDRINUSE once the other listens. Without the option the second bind fails.
    differential!(options::two_binds_one_port() => vec![
        ("bind the same port", err(AddrInUse, EADDRINUSE)),
        ("with SO_REUSEADDR: bind the same port", ok_done()),
        ("first listen", ok(true)),
        ("second listen", err(AddrInUse, EADDRINUSE)),
    ]);
}

#[tokio::test]
async fn so_reuseaddr_does_not_share_a_listening_port() {
    // Linux: a listener's port conflicts even when both sockets set SO_REUSEADDR.
    differential!(options::bind_a_listeners_port_with_reuseaddr() =>
        vec![("bind", err(AddrInUse, EADDRINUSE))]);
}

#[tokio::test]
async fn two_sockets_on_one_fixed_port_cannot_connect_to_the_same_destination() {
    // Linux: __inet_hash_connect with a port shared by several sockets checks the 4-tuple
    // (__inet_check_established): a second connection on it fails with EADDRNOTAVAIL.
    // A third socket without SO_REUSEADDR cannot even bind the port.
    differential!(options::same_fixed_port_same_destination() => vec![
        ("first connect", ok(true)),
        ("second bind (SO_REUSEADDR)", ok_done()),
        ("second connect", err(AddrNotAvailable, EADDRNOTAVAIL)),
        ("third bind (no SO_REUSEADDR)", err(AddrInUse, EADDRINUSE)),
    ]);
}

#[tokio::test]
async fn two_sockets_on_one_fixed_port_connect_to_different_destinations() {
    // Linux: distinct 4-tuples, both connections established.
    differential!(options::same_fixed_port_two_destinations() => vec![
        ("second bind (SO_REUSEADDR)", ok_done()),
        ("first connect", ok_done()),
        ("second connect", ok_done()),
        ("first accepted from the port", ok(true)),
        ("second accepted from the port", ok(true)),
    ]);
}

#[tokio::test]
async fn ttl_accepts_1_to_255_only() {
    // Linux: IP_TTL outside 1..=255 (and not -1) is EINVAL (do_ip_setsockopt).
    differential!(options::ttl_bounds() => vec![
        ("set_ttl(0)", err(InvalidInput, EINVAL)),
        ("set_ttl(1)", ok(())),
        ("ttl", ok(1u32)),
        ("set_ttl(255)", ok(())),
        ("ttl", ok(255u32)),
        ("set_ttl(256)", err(InvalidInput, EINVAL)),
        ("ttl", ok(255u32)),
    ]);
}

#[tokio::test]
async fn accepted_connections_inherit_the_listeners_nodelay() {
    // Linux: the child is a clone of the listener (sk_clone_lock), TCP_NODELAY included.
    differential!(options::accepted_inherits_listener_options() => vec![
        ("accepted nodelay", ok(true)),
        ("client nodelay", ok(false)),
        ("accepted ttl", ok(64u32)),
    ]);
}

#[tokio::test]
async fn a_socket_bound_to_its_own_port_connects_to_itself() {
    // Linux: a SYN to its own address and port is a simultaneous open (SYN_SENT receiving a
    // SYN: tcp_rcv_synsent_state_process), and the socket ends up connected to itself.
    differential!(options::self_connect() => vec![
        ("connect", ok_done()),
        ("peer is itself", ok(true)),
        ("write", ok(4usize)),
        ("read_exact", ok_done()),
        ("got", ok("echo")),
    ]);
}

#[tokio::test]
async fn wildcard_and_specific_listeners_conflict_across_families_as_on_linux() {
    // Linux: [::] (not IPV6_V6ONLY) and 0.0.0.0 overlap 127.0.0.1 (EADDRINUSE).
    differential!(options::wildcard_conflicts() => vec![
        ("[::]:p after 127.0.0.1:p", err(AddrInUse, EADDRINUSE)),
        ("0.0.0.0:p after 127.0.0.1:p", err(AddrInUse, EADDRINUSE)),
    ]);
}

#[tokio::test]
async fn an_address_of_the_other_family_is_refused_by_bind_and_connect() {
    // Linux: an AF_INET socket refuses an AF_INET6 address with EAFNOSUPPORT (__inet_bind,
    // tcp_v4_connect check sin_family); an AF_INET6 socket refuses an AF_INET one with EINVAL
    // (inet6_bind, tcp_v6_connect: shorter than a sockaddr_in6).
    differential!(options::family_mismatch() => vec![
        ("v4 socket bind [::1]", eafnosupport()),
        ("v6 socket bind 127.0.0.1", err(InvalidInput, EINVAL)),
        ("v4 socket connect [::1]", eafnosupport()),
        ("v6 socket connect 127.0.0.1", err(InvalidInput, EINVAL)),
    ]);
}

#[tokio::test]
async fn binding_a_bound_socket_again_is_invalid() {
    // Linux: __inet_bind and __inet6_bind refuse a socket with a port (EINVAL); the family
    // check comes first but an IPv6 socket's gives EINVAL too.
    differential!(options::bind_twice() => vec![
        ("bind again", err(InvalidInput, EINVAL)),
        ("bound v6 socket bind 127.0.0.1", err(InvalidInput, EINVAL)),
    ]);
}

#[tokio::test]
async fn listen_on_an_unbound_socket_binds_the_wildcard_address_of_its_family() {
    // Linux: inet_autobind takes a free port on the socket's unspecified address: 0.0.0.0 for
    // IPv4, [::] (dual stack) for IPv6.
    differential!(options::listen_unbound() => vec![
        ("v4 ip", ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
        ("v4 port picked", ok(true)),
        ("v6 ip", ok(IpAddr::V6(Ipv6Addr::UNSPECIFIED))),
        ("v6 port picked", ok(true)),
        ("connect [::1] to the v6 one", ok_done()),
        ("accepted local ip", ok(V6_LOCALHOST)),
        ("connect 127.0.0.1 to the v6 one", ok_done()),
        ("accepted local ip", ok(MAPPED_LOCALHOST)),
    ]);
}

#[tokio::test]
async fn a_reset_after_the_peers_fin_is_epipe_and_reads_stay_at_eof() {
    // Linux: the peer's shutdown sends FIN, its SO_LINGER 0 close then RST; an RST in
    // CLOSE_WAIT sets EPIPE (tcp_reset), not ECONNRESET; read returns 0 (SOCK_DONE is checked
    // before sk_err), SO_ERROR takes the EPIPE.
    differential!(shutdown::linger_zero_after_shutdown() => vec![
        ("read", ok(0usize)),
        ("ready(ERROR)", ok(true)),
        ("take_error", ok(Some(Some(EPIPE)))),
        ("write", err(BrokenPipe, EPIPE)),
        ("read again", ok(0usize)),
    ]);
}

#[tokio::test]
async fn data_received_before_a_reset_is_still_read_then_the_reset_is_reported() {
    // Linux: tcp_reset purges the write queue, not the receive queue; tcp_recvmsg copies
    // queued data before it looks at sk_err.
    differential!(shutdown::reset_with_data_unread_on_our_side() => vec![
        ("ready(ERROR)", ok(true)),
        ("read", ok(21usize)),
        ("got", ok("data before the reset")),
        ("read again", err(ConnectionReset, ECONNRESET)),
        ("read a third time", ok(0usize)),
    ]);
}

#[tokio::test]
async fn the_second_closer_is_closed_once_its_fin_is_acknowledged() {
    // Linux: CLOSE_WAIT still has a peer; after its own FIN is acknowledged (LAST_ACK → CLOSE)
    // getpeername is ENOTCONN, send EPIPE, read 0.
    differential!(shutdown::calls_on_the_second_closer() => vec![
        ("b read", ok(0usize)),
        ("b peer_addr in CLOSE_WAIT", ok_done()),
        ("a read", ok(0usize)),
        ("b peer_addr", err(NotConnected, ENOTCONN)),
        ("b write", err(BrokenPipe, EPIPE)),
        ("b read again", ok(0usize)),
    ]);
}

#[tokio::test]
async fn a_port_in_time_wait_is_bound_again_only_with_so_reuseaddr() {
    // Linux: the server's side of a connection it closed first waits in TIME_WAIT on the
    // listener's port; inet_csk_bind_conflict lets a SO_REUSEADDR socket (tokio's listeners
    // set it) bind over it, and refuses one without.
    differential!(options::rebind_over_time_wait() => vec![
        ("client read", ok(0usize)),
        ("bind without SO_REUSEADDR", err(AddrInUse, EADDRINUSE)),
        ("bind with SO_REUSEADDR", ok_done()),
        ("TcpListener::bind", ok_done()),
    ]);
}

#[tokio::test]
async fn so_reuseport_shares_a_port_only_among_sockets_that_all_set_it() {
    // Linux: inet_csk_bind_conflict lets sockets share a port with SO_REUSEPORT only when
    // every one sets it.
    differential!(options::reuseport_mixing() => vec![
        ("bind without SO_REUSEPORT", err(AddrInUse, EADDRINUSE)),
        ("bind with SO_REUSEPORT", ok_done()),
        ("listen with SO_REUSEPORT", ok_done()),
    ]);
}

#[tokio::test]
async fn accepted_connections_inherit_the_listeners_ttl_and_linger() {
    // Linux: sk_clone_lock copies the listener's socket, IP_TTL (uc_ttl), SOCK_LINGER and
    // sk_lingertime included.
    differential!(options::accepted_inherits_ttl_and_linger() => vec![
        ("accepted ttl", ok(42u32)),
        ("accepted linger", ok(Some(std::time::Duration::from_secs(3)))),
    ]);
}

#[tokio::test]
async fn a_port_given_to_bind_stays_held_after_a_reset_until_close() {
    // Linux: when a connection ends (tcp_set_state(TCP_CLOSE)) its port is released at once
    // (inet_put_port), unless bind() was given that port (SOCK_BINDPORT_LOCK, set by
    // __inet_bind for a port other than 0): the socket keeps it until close().
    differential!(options::port_after_reset() => vec![
        ("autobound: read", err(ConnectionReset, ECONNRESET)),
        ("autobound: local_addr unchanged", ok(true)),
        ("bound to port 0: read", err(ConnectionReset, ECONNRESET)),
        ("bound to port 0: bind its port", ok_done()),
        ("bound: read", err(ConnectionReset, ECONNRESET)),
        ("bound: bind its port", err(AddrInUse, EADDRINUSE)),
        ("bound, closed: bind its port", ok_done()),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Readiness of closed directions

#[tokio::test]
async fn after_the_peers_fin_ready_shows_read_closed_only() {
    // Linux: tcp_poll adds EPOLLIN | EPOLLRDHUP once RCV_SHUTDOWN is set; EPOLLHUP only when
    // both directions are shut; the write side stays EPOLLOUT.
    differential!(closed_readiness::after_peer_fin() => vec![
        ("(readable, writable, read_closed, write_closed)", ok((true, true, true, false))),
    ]);
}

#[tokio::test]
async fn after_our_own_shutdown_ready_shows_neither_direction_closed() {
    // Linux: SEND_SHUTDOWN alone adds EPOLLOUT (a write fails at once), no EPOLLHUP.
    differential!(closed_readiness::after_own_shutdown() => vec![
        ("peer read", ok(0usize)),
        ("(readable, writable, read_closed, write_closed)", ok((true, true, false, false))),
    ]);
}

#[tokio::test]
async fn after_a_reset_ready_shows_both_directions_closed() {
    // Linux: tcp_reset → tcp_done sets SHUTDOWN_MASK and CLOSE: EPOLLIN | EPOLLOUT |
    // EPOLLRDHUP | EPOLLHUP, with EPOLLERR for the pending error.
    differential!(closed_readiness::after_reset() => vec![
        ("ready(ERROR)", ok(true)),
        ("(readable, writable, read_closed, write_closed)", ok((true, true, true, true))),
    ]);
}

#[tokio::test]
async fn after_both_fins_ready_shows_both_directions_closed() {
    // Linux: both directions shut (SHUTDOWN_MASK) is EPOLLHUP.
    differential!(closed_readiness::after_both_fins() => vec![
        ("b read", ok(0usize)),
        ("a read", ok(0usize)),
        ("a (readable, writable, read_closed, write_closed)", ok((true, true, true, true))),
    ]);
}

#[tokio::test]
async fn so_linger_keeps_whole_seconds_and_under_a_second_is_an_abort() {
    // Linux: SO_LINGER's struct linger holds whole seconds (socket2 passes as_secs(), dropping
    // the fraction); sk_setsockopt stores l_linger * HZ and getsockopt gives it back in
    // seconds. A linger under a second is therefore {on, 0}: close() sends RST.
    let secs = |s| Some(std::time::Duration::from_secs(s));
    differential!(options::linger_whole_seconds() => vec![
        ("set_linger(1.5s)", ok(())),
        ("linger", ok(secs(1))),
        ("set_linger(500ms)", ok(())),
        ("linger", ok(secs(0))),
        ("TcpSocket set_linger(2.9s)", ok(())),
        ("TcpSocket linger", ok(secs(2))),
        ("peer read after the 500ms-linger close", err(ConnectionReset, ECONNRESET)),
    ]);
}

#[tokio::test]
async fn quickack_reads_true_on_a_fresh_connection_and_back_what_was_set() {
    // Linux: getsockopt(TCP_QUICKACK) is !inet_csk_in_pingpong_mode; setting it off enters
    // pingpong mode, on leaves it.
    differential!(options::quickack_read_back() => vec![
        ("quickack", ok(true)),
        ("set_quickack(false)", ok(())),
        ("quickack", ok(false)),
        ("set_quickack(true)", ok(())),
        ("quickack", ok(true)),
    ]);
}

#[tokio::test]
async fn a_listener_on_the_v4_mapped_address_accepts_v4_mapped_connections() {
    // Linux: an AF_INET6 socket bound to ::ffff:127.0.0.1 listens for IPv4 only (not ::1);
    // tcp_v6_syn_recv_sock makes each child of an IPv4 SYN an AF_INET6 socket with v4-mapped
    // names, whatever the client's family.
    differential!(destinations::mapped_listener() => vec![
        ("listener ip", ok(MAPPED_LOCALHOST)),
        ("v4 client peer ip", ok(LOCALHOST)),
        ("v4 accepted peer ip", ok(MAPPED_LOCALHOST)),
        ("v4 accepted local ip", ok(MAPPED_LOCALHOST)),
        ("mapped client local ip", ok(MAPPED_LOCALHOST)),
        ("mapped accepted peer ip", ok(MAPPED_LOCALHOST)),
        ("connect [::1]", err(ConnectionRefused, ECONNREFUSED)),
    ]);
}

#[tokio::test]
async fn a_socket_bound_to_one_family_cannot_connect_to_the_other() {
    // Linux: inet6_bind to a specific IPv6 address sets sk_ipv6only, so tcp_v6_connect refuses
    // a v4-mapped destination with ENETUNREACH; a socket bound to a v4-mapped address cannot
    // connect to an IPv6 one (EAFNOSUPPORT).
    differential!(destinations::bound_family_mismatch() => vec![
        ("bound to ::1, connect ::ffff:127.0.0.1", err(NetworkUnreachable, ENETUNREACH)),
        ("bound to ::ffff:127.0.0.1, connect ::1", eafnosupport()),
    ]);
}

#[tokio::test]
async fn a_writer_blocked_on_a_full_buffer_gets_the_reset_then_epipe() {
    // Linux: tcp_reset wakes the writer waiting in sk_stream_wait_memory; tcp_sendmsg returns
    // the pending ECONNRESET, then EPIPE; reads return 0.
    differential!(shutdown::blocked_writer_sees_the_reset() => vec![
        ("try_write blocked", ok(true)),
        ("blocked write", err(ConnectionReset, ECONNRESET)),
        ("next write", err(BrokenPipe, EPIPE)),
        ("read", ok(0usize)),
    ]);
}

#[tokio::test]
async fn an_ipv6_connect_s_flow_label_and_scope_id_are_not_reported_back() {
    // Linux: without IPV6_FLOWINFO_SEND the flow label given to connect is not kept, and the
    // scope id of a non-link-local address is 0 (inet6_getname).
    differential!(destinations::v6_flowinfo_and_scope_id() => vec![
        ("client peer (flowinfo, scope_id)", ok(Some((0u32, 0u32)))),
        ("client local (flowinfo, scope_id)", ok(Some((0u32, 0u32)))),
        ("accepted peer (flowinfo, scope_id)", ok(Some((0u32, 0u32)))),
    ]);
}

#[tokio::test]
async fn options_still_read_and_set_on_a_reset_connection() {
    // Linux: setsockopt/getsockopt of TCP_NODELAY, IP_TTL and SO_LINGER do not look at the
    // connection's state; getsockname still answers in CLOSE.
    differential!(shutdown::options_after_reset() => vec![
        ("read", err(ConnectionReset, ECONNRESET)),
        ("set_nodelay(true)", ok(())),
        ("nodelay", ok(true)),
        ("set_ttl(9)", ok(())),
        ("ttl", ok(9u32)),
        ("set_linger(2s)", ok(())),
        ("linger", ok(Some(std::time::Duration::from_secs(2)))),
        ("local_addr ip", ok(LOCALHOST)),
    ]);
}

#[tokio::test]
async fn a_closed_write_side_is_writable_and_try_write_reports_why() {
    // Linux: tcp_poll sets EPOLLOUT once SEND_SHUTDOWN is set or the connection is closed, so
    // the error is found at once: EPIPE after our shutdown; ECONNRESET once, then EPIPE, after
    // a reset; a non-blocking read then returns 0.
    differential!(shutdown::writable_after_close() => vec![
        ("writable after shutdown", ok_done()),
        ("try_write after shutdown", err(BrokenPipe, EPIPE)),
        ("writable after reset", ok_done()),
        ("try_write after reset", err(ConnectionReset, ECONNRESET)),
        ("try_write again", err(BrokenPipe, EPIPE)),
        ("try_read", ok(0usize)),
    ]);
}

#[tokio::test]
async fn ipv6_tclass_is_refused_on_an_ipv4_socket_and_ip_tos_taken_by_both() {
    // Linux: an AF_INET socket's IPPROTO_IPV6 options go to ip_setsockopt, which refuses the
    // level with ENOPROTOOPT (ip_getsockopt with EOPNOTSUPP); an AF_INET6 socket takes IP_TOS
    // (ipv6_setsockopt passes SOL_IP to ip_setsockopt) and IPV6_TCLASS (EINVAL above 255).
    let enoprotoopt = {
        const ENOPROTOOPT: i32 = 92;
        err(
            std::io::Error::from_raw_os_error(ENOPROTOOPT).kind(),
            ENOPROTOOPT,
        )
    };
    const EOPNOTSUPP: i32 = 95;
    differential!(options::tos_and_tclass_across_families() => vec![
        ("v4 set_tclass_v6(0x20)", enoprotoopt),
        ("v4 tclass_v6", err(Unsupported, EOPNOTSUPP)),
        ("v4 set_tos_v4(0x20)", ok(())),
        ("v4 tos_v4", ok(0x20u32)),
        ("v6 set_tos_v4(0x40)", ok(())),
        ("v6 tos_v4", ok(0x40u32)),
        ("v6 set_tclass_v6(0x48)", ok(())),
        ("v6 tclass_v6", ok(0x48u32)),
        ("v6 set_tclass_v6(256)", err(InvalidInput, EINVAL)),
        ("v4 set_tos_v4(256)", ok(())),
    ]);
}

#[tokio::test]
async fn v4_mapped_and_ipv4_sockets_share_one_port_space() {
    // Linux: a v4-mapped bind is an IPv4 bind for the port tables (EADDRINUSE against an IPv4
    // listener, and the other way round); a connect to ::ffff:0.0.0.0 goes to 127.0.0.1.
    differential!(destinations::mapped_port_space() => vec![
        ("bind ::ffff:127.0.0.1 on the IPv4 listener's port", err(AddrInUse, EADDRINUSE)),
        ("bind 127.0.0.1 on the mapped listener's port", err(AddrInUse, EADDRINUSE)),
        ("::ffff:0.0.0.0 client peer ip", ok(MAPPED_LOCALHOST)),
        ("::ffff:0.0.0.0 client local ip", ok(MAPPED_LOCALHOST)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Listener binds: one port, two addresses; SO_REUSEADDR and listen()

/// An address from its text (the second listener's, in the tests below).
fn v(ip: &str) -> IpAddr {
    ip.parse().expect("address")
}

#[tokio::test]
async fn a_wildcard_listener_and_a_specific_one_share_no_port_in_either_order() {
    // Linux (inet_csk_bind_conflict): SO_REUSEADDR does not let a second listener take a port
    // whose addresses overlap a listener's: 0.0.0.0 covers 127.0.0.1, [::] (dual-stack) covers
    // both families, in both orders.
    for (first, second) in [
        ("127.0.0.1:0", "0.0.0.0"),
        ("0.0.0.0:0", "127.0.0.1"),
        ("[::]:0", "127.0.0.1"),
        ("127.0.0.1:0", "::"),
        ("[::]:0", "::1"),
        ("[::1]:0", "::"),
        ("0.0.0.0:0", "::"),
        ("[::]:0", "0.0.0.0"),
    ] {
        differential!(listener_binds::second_listener(first, v(second)) =>
            vec![("second bind", err(AddrInUse, EADDRINUSE))]);
    }
}

#[tokio::test]
async fn listeners_on_distinct_addresses_share_a_port() {
    // Linux: 127.0.0.1 and 127.0.0.2 do not overlap, nor do an IPv4 address and ::1.
    for (first, second) in [
        ("127.0.0.1:0", "127.0.0.2"),
        ("127.0.0.2:0", "127.0.0.1"),
        ("127.0.0.1:0", "::1"),
        ("[::1]:0", "127.0.0.1"),
        ("0.0.0.0:0", "::1"),
    ] {
        differential!(listener_binds::second_listener(first, v(second)) =>
            vec![("second bind", ok_done())]);
    }
}

#[tokio::test]
async fn a_bound_socket_cannot_take_a_listeners_port() {
    // Linux: a listener's port conflicts with any bind on its address, with SO_REUSEADDR too.
    differential!(listener_binds::socket_on_listener_port() => vec![
        ("without SO_REUSEADDR", err(AddrInUse, EADDRINUSE)),
        ("with SO_REUSEADDR", err(AddrInUse, EADDRINUSE)),
    ]);
}

#[tokio::test]
async fn two_reuseaddr_sockets_share_a_port_until_one_listens() {
    // Linux: two sockets with SO_REUSEADDR bind one port; one without cannot; the first listen
    // takes it and the second's listen fails (inet_csk_listen_start checks the port again), as
    // does a later bind even with SO_REUSEADDR.
    differential!(listener_binds::two_reuseaddr_sockets_then_listen() => vec![
        ("bind b", ok_done()),
        ("bind c without SO_REUSEADDR", err(AddrInUse, EADDRINUSE)),
        ("listen a", ok_done()),
        ("listen b", err(AddrInUse, EADDRINUSE)),
        ("bind d while a listens", err(AddrInUse, EADDRINUSE)),
    ]);
}

#[tokio::test]
async fn a_live_accepted_connection_lets_a_new_listener_take_its_port() {
    // Linux: the accepted socket holds the port (inet_inherit_port) with the listener's
    // SO_REUSEADDR and is not listening, so a new listener with SO_REUSEADDR on 127.0.0.1
    // binds; one on 0.0.0.0 then conflicts with that listener; the connection is unaffected.
    differential!(listener_binds::port_of_a_live_accepted_connection() => vec![
        ("TcpListener again", ok_done()),
        ("0.0.0.0 listener", err(AddrInUse, EADDRINUSE)),
        ("connection", ok(b"still".to_vec())),
    ]);
}
