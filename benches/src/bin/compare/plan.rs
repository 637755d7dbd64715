//! How much each workload runs: the sizes of a full run and of `--quick`,
//! and how they read in a row's name.

/// How a figure is measured: `runs` timed runs of `per_run` iterations
/// each, after one untimed run of the same size; the figure is the median
/// run. Short runs and a median keep a figure from being one preemption by
/// another process on a busy machine.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Timed runs.
    pub runs: u64,
    /// Iterations in each run.
    pub per_run: u64,
}

impl Plan {
    /// Iterations in all the timed runs.
    pub fn total(self) -> u64 {
        self.runs * self.per_run
    }

    /// "20,000 round trips, median of 10 runs".
    pub fn describe(self, what: &str) -> String {
        format!(
            "{} {what}, median of {} runs",
            thousands(self.total()),
            self.runs
        )
    }
}

/// The sizes of every workload in one run.
pub struct Sizes {
    /// Ping-pong round trips.
    pub pings: Plan,
    /// Bulk: 64 KiB chunks.
    pub bulk_chunks: Plan,
    /// Connections opened and closed.
    pub connects: Plan,
    /// HTTP/1.1 requests.
    pub http1: Plan,
    /// HTTP/2 requests.
    pub http2: Plan,
    /// Connections moving data at once.
    pub many_conns: usize,
    /// Chunks per connection.
    pub many_chunks: Plan,
    /// Idle connections held.
    pub idle: usize,
    /// UDP ping-pong round trips.
    pub udp_pings: Plan,
    /// 1,200-byte datagrams.
    pub udp_dgrams: Plan,
    /// QUIC bulk: 64 KiB chunks.
    pub quic_chunks: Plan,
}

impl Sizes {
    /// The default sizes.
    pub fn full() -> Sizes {
        let p = |runs, per_run| Plan { runs, per_run };
        Sizes {
            pings: p(10, 2_000),
            bulk_chunks: p(16, 1_024), // 1 GiB in runs of 64 MiB
            connects: p(10, 2_000),
            http1: p(10, 2_000),
            http2: p(10, 2_000),
            many_conns: 1_000,
            many_chunks: p(3, 16), // 1 MiB a connection, 1,000 MiB a run
            idle: 10_000,
            udp_pings: p(10, 2_000),
            udp_dgrams: p(10, 20_000), // 24 MB a run
            quic_chunks: p(5, 256),    // 16 MiB a run
        }
    }

    /// `--quick`: about a tenth of the default sizes.
    pub fn quick() -> Sizes {
        let p = |runs, per_run| Plan { runs, per_run };
        Sizes {
            pings: p(5, 400),
            bulk_chunks: p(8, 128),
            connects: p(5, 400),
            http1: p(5, 400),
            http2: p(5, 400),
            many_conns: 1_000,
            many_chunks: p(3, 2),
            idle: 10_000,
            udp_pings: p(5, 400),
            udp_dgrams: p(5, 2_000),
            quic_chunks: p(3, 32),
        }
    }
}

/// 20000 → "20,000".
pub fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
/// A size for a row's name: "1 GiB", "102.4 MiB", "128 KiB".
pub fn size(bytes: u64) -> String {
    let (v, unit) = match bytes {
        b if b >= 1 << 30 => (b as f64 / (1u64 << 30) as f64, "GiB"),
        b if b >= 1 << 20 => (b as f64 / (1u64 << 20) as f64, "MiB"),
        b => (b as f64 / 1024.0, "KiB"),
    };
    if v.fract() == 0.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(125 << 20), "125 MiB");
        assert_eq!(size(128 << 10), "128 KiB");
        assert_eq!(size(3 << 29), "1.5 GiB");
        let p = Plan {
            runs: 10,
            per_run: 2_000,
        };
        assert_eq!(
            p.describe("round trips"),
            "20,000 round trips, median of 10 runs"
        );
    }
}
