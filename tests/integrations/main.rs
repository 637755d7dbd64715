//! lonet under the HTTP and gRPC stacks: hyper-util's client and server, `axum::serve`, tonic.
//! One binary, so that CI links hyper, axum and tonic into a test once. Each module runs its
//! servers in namespaces of their own.

#[path = "../common/mod.rs"]
mod common;

/// hyper-util's client through `lonet::hyper::Connector`, hyper-util's server over lonet.
#[cfg(feature = "hyper")]
mod hyper_connector;

/// `axum::serve` over a `lonet::net::TcpListener`.
#[cfg(feature = "axum")]
mod axum_serve;

/// tonic's server on `serve_with_incoming` and its channel through `lonet::hyper::Connector`.
#[cfg(feature = "tonic")]
mod tonic_grpc;
