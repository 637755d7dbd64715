//! Errors as the kernel returns them: an errno, so `kind()`, `raw_os_error()`
//! and the message match a real socket's.

use std::io;

pub(crate) use libc::{
    EADDRINUSE, EADDRNOTAVAIL, ECONNREFUSED, ECONNRESET, EINVAL, ENETUNREACH, ENOTCONN, EPIPE,
    ETIMEDOUT,
};

/// `io::Error` for an errno value.
#[inline]
pub(crate) fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}
