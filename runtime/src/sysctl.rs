//! Sysctls of a network namespace, with the kernel's defaults.
//!
//! Each field names the sysctl it mirrors (`/proc/sys/net/...`) and its Linux
//! default. They are read by the datapath when it needs them; changing one with
//! [`Netns::set_sysctl`](crate::Netns::set_sysctl) takes effect for the next
//! segment, connection or softirq run, as writing to `/proc/sys` does.

/// The namespace's tunables (`sysctl net.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sysctl {
    /// `net.core.netdev_max_backlog` (default 1000): the per-CPU
    /// `input_pkt_queue` accepts a packet while its length is `<=` this value,
    /// so 1001 fit; past it `enqueue_to_backlog` drops and counts.
    pub netdev_max_backlog: usize,
    /// `net.core.netdev_budget` (default 300): packets one `net_rx_action` run
    /// may process before it stops and counts a `time_squeeze`.
    pub netdev_budget: usize,
    /// `net.core.netdev_budget_usecs` (default `2 * USEC_PER_SEC / HZ`: 8000
    /// on a HZ=250 kernel such as the 6.18 one the defaults here are checked
    /// against): the time limit of one `net_rx_action` run, in microseconds.
    pub netdev_budget_usecs: u64,
    /// `net.core.dev_weight` (default 64): packets `process_backlog` handles
    /// per poll before `net_rx_action` moves on.
    pub dev_weight: usize,
    /// `net.core.somaxconn` (default 4096 since Linux 5.4): cap on a
    /// listener's backlog.
    pub somaxconn: u32,
    /// `net.ipv4.tcp_rmem` (default `4096 131072 33554432`, the 32 MiB
    /// maximum of Linux 6.16 and later): min, default, max receive buffer.
    /// The default is a new socket's receive buffer; autotuning
    /// (`tcp_rcv_space_adjust`) grows it for a fast reader up to the maximum,
    /// which also sets the window scale. Each value must be
    /// within `1..=i32::MAX`, in any order, as the kernel accepts them.
    pub tcp_rmem: [usize; 3],
    /// `net.ipv4.tcp_wmem` (default `4096 16384 4194304`): min, default, max
    /// send buffer. At establishment the send buffer grows as
    /// `tcp_sndbuf_expand` does (10 segments or more, times 2, or 3 with
    /// bbr; see `tcp_congestion_control`), capped by max.
    /// Each value must be within `1..=i32::MAX`, in any order.
    pub tcp_wmem: [usize; 3],
    /// `net.ipv4.ip_local_port_range` (default `32768 60999`): ephemeral ports
    /// for `connect` and for `bind` to port 0. The kernel refuses a range whose
    /// high end is below its low end, or whose low end is below
    /// `ip_unprivileged_port_start` (1024).
    pub ip_local_port_range: (u16, u16),
    /// `net.ipv4.tcp_rto_min_us` (Linux 6.11+, default 200000): the minimum
    /// retransmission timeout, in microseconds.
    pub tcp_rto_min_us: u64,
    /// `net.ipv4.tcp_syn_retries` (default 6, `1..=127`): SYN
    /// retransmissions before `connect` fails with `ETIMEDOUT`.
    pub tcp_syn_retries: u32,
    /// `net.ipv4.tcp_synack_retries` (default 5, `0..=255`): SYN-ACK
    /// retransmissions before a half-open child is dropped.
    pub tcp_synack_retries: u32,
    /// `net.ipv4.tcp_fin_timeout` (default 60 s): how long an orphaned
    /// socket waits in FIN_WAIT2 for the peer's FIN before it is freed.
    pub tcp_fin_timeout_secs: u64,
    /// `net.ipv4.tcp_retries2` (default 15): retransmissions of data before the
    /// connection is aborted with `ETIMEDOUT`.
    pub tcp_retries2: u32,
    /// `net.ipv4.tcp_tw_reuse` (default 2): whether `connect()`'s ephemeral
    /// port search may take over a 4-tuple that is in TIME_WAIT. 0: never
    /// (the port is skipped); 1: always; 2: only when one end is a loopback
    /// address (127/8, `::1`). (A socket bound to an explicit port reuses a
    /// TIME_WAIT 4-tuple whatever this says, as Linux does with timestamps
    /// on.) Linux also waits `tcp_tw_reuse_delay` (1 s) after the entry was
    /// created; the model reuses at once.
    pub tcp_tw_reuse: u8,
    /// `net.ipv4.tcp_max_tw_buckets`: how many TIME_WAIT entries the
    /// namespace keeps; past it a closing connection skips TIME_WAIT
    /// (`TCPTimeWaitOverflow`). Linux sets it to half the established hash
    /// size, which depends on the machine's memory: 131072 with the
    /// 262144-bucket hash of a machine with a few GiB (the value used here).
    pub tcp_max_tw_buckets: usize,
    /// `net.ipv4.tcp_congestion_control` (Linux's default `"cubic"`; `"reno"`
    /// and `"bbr"` are also accepted). The model has no congestion window; the
    /// name decides the factor `tcp_sndbuf_expand` sizes the send buffer with
    /// (the module's `sndbuf_expand`: 3 for bbr, 2 otherwise).
    pub tcp_congestion_control: &'static str,
    /// `net.ipv4.tcp_syn_linear_timeouts` (Linux 6.5+, default 4): the first
    /// this many SYN retransmissions keep the initial 1 s RTO instead of
    /// doubling it, and add to `tcp_syn_retries` (0..=127).
    pub tcp_syn_linear_timeouts: u32,
    /// `net.ipv4.tcp_pingpong_thresh` (default 1): replies sent within the ACK
    /// timeout of received data before the socket counts as interactive and
    /// delays its ACKs (1..=255).
    pub tcp_pingpong_thresh: u8,
    /// `net.ipv4.tcp_orphan_retries` (default 0, meaning 8): retransmissions
    /// of a closed (orphaned) socket's data or FIN before it is given up.
    pub tcp_orphan_retries: u8,
    /// `net.core.wmem_max` (default 212992): the most `SO_SNDBUF` may ask for
    /// (the socket gets twice the value asked).
    pub wmem_max: usize,
    /// `net.core.rmem_max` (default 212992): the most `SO_RCVBUF` may ask for.
    pub rmem_max: usize,
    /// `net.core.rmem_default` (default 212992): a new UDP socket's receive
    /// buffer (`sk_rcvbuf`; TCP's comes from `tcp_rmem[1]`). At least 2304
    /// (`SOCK_MIN_RCVBUF`), as the kernel requires.
    pub rmem_default: usize,
    /// `net.core.wmem_default` (default 212992): a new UDP socket's send
    /// buffer (`sk_sndbuf`; TCP's comes from `tcp_wmem[1]`). At least 4608
    /// (`SOCK_MIN_SNDBUF`).
    pub wmem_default: usize,
    /// `net.ipv4.tcp_keepalive_time` (default 7200 s): idle time before the
    /// first keepalive probe of a socket with `SO_KEEPALIVE`.
    pub tcp_keepalive_time_secs: u64,
    /// `net.ipv4.tcp_keepalive_intvl` (default 75 s): time between
    /// unanswered keepalive probes.
    pub tcp_keepalive_intvl_secs: u64,
    /// `net.ipv4.tcp_keepalive_probes` (default 9): unanswered probes before
    /// the connection is reset with `ETIMEDOUT`.
    pub tcp_keepalive_probes: u32,
    /// `net.ipv4.icmp_msgs_per_sec` (default 1000): the rate of the
    /// namespace's token bucket for ICMP errors (`icmp_global_allow`).
    /// Linux skips that bucket for an error answering a packet that came in
    /// on `lo`, and so does the model, where every packet does: a port
    /// unreachable on `lo` is never rate-limited, whatever this says.
    pub icmp_msgs_per_sec: u32,
    /// `net.ipv4.icmp_msgs_burst` (default 50): the bucket's depth. Not
    /// applied on `lo`, as [`icmp_msgs_per_sec`](Sysctl::icmp_msgs_per_sec).
    pub icmp_msgs_burst: u32,
    /// `net.ipv4.icmp_ratemask` (default 6168, `0x1818`: destination
    /// unreachable, source quench, time exceeded, parameter problem): the
    /// ICMP types the global bucket limits. Not applied on `lo`.
    pub icmp_ratemask: u32,
    /// `net.ipv4.icmp_ratelimit` (default 1000 ms): the per-peer limit
    /// (`inet_peer_xrlim_allow`), which Linux waives for `lo` ("no rate
    /// limit on loopback").
    pub icmp_ratelimit_ms: u32,
}

impl Default for Sysctl {
    fn default() -> Self {
        Sysctl {
            netdev_max_backlog: 1000,
            netdev_budget: 300,
            netdev_budget_usecs: 8000,
            dev_weight: 64,
            somaxconn: 4096,
            tcp_rmem: [4096, 131_072, 33_554_432],
            tcp_wmem: [4096, 16_384, 4_194_304],
            ip_local_port_range: (32768, 60999),
            tcp_rto_min_us: 200_000,
            tcp_syn_retries: 6,
            tcp_synack_retries: 5,
            tcp_fin_timeout_secs: 60,
            tcp_retries2: 15,
            tcp_tw_reuse: 2,
            tcp_max_tw_buckets: 131_072,
            tcp_congestion_control: "cubic",
            tcp_syn_linear_timeouts: 4,
            tcp_pingpong_thresh: 1,
            tcp_orphan_retries: 0,
            wmem_max: 212_992,
            rmem_max: 212_992,
            rmem_default: 212_992,
            wmem_default: 212_992,
            tcp_keepalive_time_secs: 7200,
            tcp_keepalive_intvl_secs: 75,
            tcp_keepalive_probes: 9,
            icmp_msgs_per_sec: 1000,
            icmp_msgs_burst: 50,
            icmp_ratemask: 0x1818,
            icmp_ratelimit_ms: 1000,
        }
    }
}

impl Sysctl {
    /// Checks the values the way the kernel's `proc_handler`s would, so a bad
    /// setting is refused instead of wedging the datapath.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.netdev_budget == 0 {
            return Err("netdev_budget must be at least 1");
        }
        if self.dev_weight == 0 {
            return Err("dev_weight must be at least 1");
        }
        // The `int` sysctls (`proc_dointvec*`) hold at most INT_MAX.
        const INT_MAX: u64 = i32::MAX as u64;
        if self.netdev_budget_usecs > INT_MAX {
            return Err("netdev_budget_usecs must be at most INT_MAX");
        }
        if self.netdev_max_backlog as u64 > INT_MAX
            || self.netdev_budget as u64 > INT_MAX
            || self.dev_weight as u64 > INT_MAX
            || u64::from(self.somaxconn) > INT_MAX
            || u64::from(self.tcp_retries2) > INT_MAX
            || self.tcp_max_tw_buckets as u64 > INT_MAX
        {
            return Err("an int sysctl must be at most INT_MAX");
        }
        // tcp_rto_min_us: proc_dointvec_minmax, extra1 = SYSCTL_ONE.
        if self.tcp_rto_min_us == 0 || self.tcp_rto_min_us > INT_MAX {
            return Err("tcp_rto_min_us must be within 1..=INT_MAX");
        }
        // proc_dointvec_jiffies: seconds * HZ must fit an int (HZ = 250).
        if self.tcp_fin_timeout_secs > INT_MAX / 250 {
            return Err("tcp_fin_timeout_secs must be at most INT_MAX / HZ");
        }
        if self.tcp_tw_reuse > 2 {
            return Err("tcp_tw_reuse must be 0, 1 or 2");
        }
        if !matches!(self.tcp_congestion_control, "cubic" | "reno" | "bbr") {
            return Err("tcp_congestion_control must be \"cubic\", \"reno\" or \"bbr\"");
        }
        if self.tcp_syn_linear_timeouts > 127 {
            return Err("tcp_syn_linear_timeouts must be within 0..=127 (MAX_TCP_SYNCNT)");
        }
        if self.tcp_pingpong_thresh == 0 {
            return Err("tcp_pingpong_thresh must be within 1..=255");
        }
        if self.tcp_keepalive_time_secs == 0 || self.tcp_keepalive_intvl_secs == 0 {
            return Err("tcp_keepalive_time/intvl must be at least 1 s");
        }
        if self.tcp_keepalive_probes == 0 || self.tcp_keepalive_probes > 127 {
            return Err("tcp_keepalive_probes must be within 1..=127 (MAX_TCP_KEEPCNT)");
        }
        if self.wmem_max == 0 || self.rmem_max == 0 {
            return Err("wmem_max/rmem_max must be at least 1");
        }
        // sysctl_net_core.c: min_rcvbuf / min_sndbuf, and an int.
        if !(2304..=INT_MAX as usize).contains(&self.rmem_default) {
            return Err("rmem_default must be within 2304..=INT_MAX");
        }
        if !(4608..=INT_MAX as usize).contains(&self.wmem_default) {
            return Err("wmem_default must be within 4608..=INT_MAX");
        }
        // proc_dou8vec_minmax: 1..=MAX_TCP_SYNCNT, and a u8.
        if !(1..=127).contains(&self.tcp_syn_retries) {
            return Err("tcp_syn_retries must be within 1..=127");
        }
        if self.tcp_synack_retries > 255 {
            return Err("tcp_synack_retries must be within 0..=255");
        }
        // proc_dointvec_minmax with extra1 = SYSCTL_ZERO; icmp_ratelimit is
        // proc_dointvec_ms_jiffies, an int of milliseconds.
        for v in [
            self.icmp_msgs_per_sec,
            self.icmp_msgs_burst,
            self.icmp_ratelimit_ms,
        ] {
            if u64::from(v) > INT_MAX {
                return Err(
                    "icmp_msgs_per_sec/icmp_msgs_burst/icmp_ratelimit must be within 0..=INT_MAX",
                );
            }
        }
        // ipv4_local_port_range: high >= low >= ip_unprivileged_port_start.
        let (lo, hi) = self.ip_local_port_range;
        if lo < 1024 || lo > hi {
            return Err("ip_local_port_range must be 1024 <= low <= high");
        }
        // proc_dointvec_minmax with extra1 = SYSCTL_ONE on each element (6.18
        // accepts "1 1 1" for both, and no order is enforced).
        for r in [self.tcp_rmem, self.tcp_wmem] {
            if r.iter().any(|&v| v == 0 || v as u64 > INT_MAX) {
                return Err("tcp_rmem/tcp_wmem values must be within 1..=INT_MAX");
            }
        }
        Ok(())
    }
}
