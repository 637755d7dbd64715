//! The bridges between a namespace's model and the machine's loopback (`lonet::bridge`):
//! `expose` (a service of the model reached by clients of the machine), `forward` (a real
//! server on the machine's 127.0.0.1 reached through the model) and fallthrough (a refused
//! loopback connect of the model tried on the machine). Every real socket here is on the
//! machine's 127.0.0.1.

#[path = "../common/mod.rs"]
mod common;

/// Servers and connection pairs on the machine's side, and the relay checks both bridges share.
mod helpers;

/// `expose`: std and tokio clients of the machine reach listeners of the model.
mod expose;

/// reqwest and a blocking `std::net` client reach an axum service of the model.
#[cfg(feature = "axum")]
mod expose_http;

/// Fallthrough: a lonet client reaches a `std::net` server on the machine's 127.0.0.1.
mod fallthrough;

/// `forward`: lonet clients reach a real server through a listener of the model.
mod forward;

/// A real redis-server on the machine's 127.0.0.1, reached through `forward` and fallthrough.
mod redis;
