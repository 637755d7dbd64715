//! Reliability: lonet holds under load, faults, odd arguments and teardown.
//!
//! - `fuzz`: random sequences of socket operations over the kernel's loopback and over lonet,
//!   compared observation by observation (proptest shrinks a difference to a short sequence).
//! - `soak`: many connections moving data while faults change; every byte checked, nothing
//!   left in the namespace afterwards.
//! - `stress`: 8 runtime worker threads on whatever cores there are, many connections.
//! - `lifetimes`: namespaces and runtimes dropped with traffic in flight; memory stays flat.
//! - `no_panic`: bad arguments to the public API give errors, never panics.
//!
//! The long variants are `#[ignore]`d: `cargo test --release --test reliability -- --ignored`.

#[path = "../common/mod.rs"]
mod common;

/// Differential fuzzing against the kernel's loopback.
mod fuzz;

/// Traffic under changing faults.
mod soak;

/// 8 worker threads, many connections.
mod stress;

/// Namespaces and runtimes dropped with traffic in flight.
mod lifetimes;

/// Bad arguments and panicking user code.
mod no_panic;
