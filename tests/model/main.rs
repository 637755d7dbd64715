//! Traffic through `lonet::net`: sockets, namespaces and the modeled kernel path, one concern
//! per module. Each module was an integration test binary of its own; they share one binary so
//! that CI links it once. Every test runs its lonet sockets in a namespace of its own
//! (`Netns::new()`) and its real sockets on ports the kernel picks, so the tests do not see
//! each other when libtest runs them on parallel threads of this process.
//!
//! Run one module with `cargo test --test model -- pcap::` (a filter on the test path).

#[path = "../common/mod.rs"]
mod common;

/// The same scenarios over the kernel's loopback, over lonet and over lonet's kernel switch.
mod differential;

/// Which path a socket takes: the model, the OS, both (wildcard), the kernel switch.
mod routing;

/// Ephemeral ports and the accept queue.
mod ephemeral;

/// Ephemeral port choice, SO_REUSEPORT, SO_BINDTODEVICE, TOS, zero linger, Ready::ERROR and
/// sysctl bounds: the same over the kernel, the model and the kernel switch.
mod ports;

/// `ip -s link`, `softnet_stat`, `netstat -s` and `sockstat` after known exchanges.
mod counters;

/// `ss -tan` and TIME_WAIT.
mod ss;

/// Drops at the softnet backlog, retransmitted by TCP.
mod backlog_overflow;

/// Backpressure: a slow reader, bounded memory.
mod slow_reader;

/// A thousand connections at once.
mod many_connections;

/// tokio's runtimes: current-thread, multi-thread, several, one shutting down.
mod runtimes;

/// Several tasks waiting on one socket.
mod waiters;

/// Faults (netem) observed end to end, under tokio's paused clock.
mod faults;

/// Packet capture, decoded with etherparse and read back by tshark.
mod pcap;

/// Readiness with tokio's rules: the same over the kernel, the model and the kernel switch.
mod tokio_readiness;

/// Linux's TCP on loopback as a user observes it, kernel and lonet in the same run: the send
/// buffer, delayed ACKs, segments per connection, the handshake's windows, keepalive, SYN
/// retransmissions.
mod fidelity;

/// UDP over the kernel, the model and the kernel switch (ICMP refusals, truncation, EMSGSIZE,
/// broadcast, the connected-socket filter, the receive buffer), then its counters, `ss -uan`,
/// captures and faults.
mod udp;
