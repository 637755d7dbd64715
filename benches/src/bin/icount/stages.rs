//! Where an operation's instructions go: lonet's path cut into the stages the
//! kernel names, from callgrind's profiles of two runs (N1 and N2
//! operations), per operation as `.ci/icount` counts the totals.
//!
//! Used by the `icount` binary (`icount stages`, run by `.ci/icount --stages`
//! and `--update`, which write `benches/icount-stages.txt`) and by `compare`
//! (which prints the committed file, or measures with `--icount`).
//!
//! # How a stage's share is found
//!
//! Every instruction is charged to the innermost *stage function* running it:
//! a function named in [`RULES`] (by its module path and name, so that a
//! function moving between files of a module, or being renamed into the
//! kernel's name, still matches). A stage's figure is then the inclusive
//! cost of its functions less the inclusive cost of the other stages'
//! functions they call, which is what callgrind's call graph gives:
//!
//! - a function's own instructions go to its stage; those of a helper that
//!   is no stage (the standard library, `bytes`, the allocator, a small
//!   helper of lonet's) go to the stage that called it: a helper called from
//!   several stages is split between them in proportion to the calls' costs
//!   (so the memory copies are the stages that make them, while a tokio
//!   waker woken from lonet's code is tokio's, tokio being a stage);
//! - a stage function the compiler inlined has no symbol, but its lines
//!   remain in the debug info: an instruction whose source line lies inside
//!   one of lonet's functions (read from the source file, which the build
//!   names) is charged to that function's stage. What the standard library
//!   inlines into an inlined stage function is charged to the stage of the
//!   function it was inlined into;
//! - a stage none of whose functions was seen at all (not run, or inlined
//!   beyond the line info) is reported as not seen, never as a silent zero:
//!   its work, if any, is in its caller's stage.
//!
//! The stages outside lonet (tokio, hyper, the bench's own code, and the
//! rest) are counted the same way, and for `duplex` too, so the two can be
//! held side by side: lonet's count less `duplex`'s is lonet's stages plus
//! the difference between the two in the stages outside lonet.

// Each binary uses part of this module: icount analyses and writes, compare
// reads and measures.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// One workload as `.ci/icount` runs it.
pub struct Workload {
    /// The icount binary's name for it.
    pub name: &'static str,
    /// Operations in the first run.
    pub n1: u64,
    /// Operations in the second run.
    pub n2: u64,
    /// What one operation is.
    pub what: &'static str,
}

/// The workloads and their N1, N2: the same as `.ci/icount`'s (a test
/// checks), for `compare --icount`, which runs them itself.
pub const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "pingpong",
        n1: 1000,
        n2: 5000,
        what: "64-byte round trip, client in block_on",
    },
    Workload {
        name: "bulk",
        n1: 20,
        n2: 220,
        what: "one 64 KiB write, read by another task",
    },
    Workload {
        name: "connect",
        n1: 200,
        n2: 1200,
        what: "connect + accept + close",
    },
    Workload {
        name: "http1",
        n1: 200,
        n2: 1200,
        what: "hyper HTTP/1.1 keep-alive request",
    },
];

/// A stage of the path: its key (in `benches/icount-stages.txt`) and what
/// the tables call it.
pub struct Stage {
    /// Short key, one word.
    pub key: &'static str,
    /// The kernel's names for it.
    pub name: &'static str,
}

/// The stages: first what runs outside lonet (the first of them collects
/// whatever no other stage holds), then lonet's, in the order of the path.
pub const STAGES: &[Stage] = &[
    Stage {
        key: "app",
        name: "other code outside these (std, allocator, libc)",
    },
    Stage {
        key: "tokio",
        name: "tokio: scheduler, wakeups, I/O driver (duplex: the pipe)",
    },
    Stage {
        key: "hyper",
        name: "hyper, hyper-util, http",
    },
    Stage {
        key: "bench",
        name: "the bench's own code (its futures, the echo task)",
    },
    Stage {
        key: "shell",
        name: "lonet-transport: TcpStream, readiness",
    },
    Stage {
        key: "socket",
        name: "socket calls, socket lock, wait queues",
    },
    Stage {
        key: "tcp_sendmsg",
        name: "tcp_sendmsg: copy in, autocork",
    },
    Stage {
        key: "tcp_write_xmit",
        name: "tcp_write_xmit, tcp_transmit_skb",
    },
    Stage {
        key: "route",
        name: "ip_queue_xmit, route (dst_check, fib_lookup)",
    },
    Stage {
        key: "dev_xmit",
        name: "dev_queue_xmit, loopback_xmit, netif_rx",
    },
    Stage {
        key: "softirq",
        name: "do_softirq, net_rx_action, process_backlog",
    },
    Stage {
        key: "ip_rcv",
        name: "ip_rcv, ip_local_deliver",
    },
    Stage {
        key: "tcp_v4_rcv",
        name: "tcp_v4_rcv: demux",
    },
    Stage {
        key: "tcp_data_queue",
        name: "tcp_rcv_state_process, tcp_data_queue, wakeup",
    },
    Stage {
        key: "tcp_ack",
        name: "tcp_ack: send queue freed, tcp_check_space",
    },
    Stage {
        key: "ack_timers",
        name: "ACKs, delayed ACK, timers, ksoftirqd",
    },
    Stage {
        key: "tcp_recvmsg",
        name: "tcp_recvmsg: copy out, window update",
    },
    Stage {
        key: "setup",
        name: "connect, accept, close, TIME_WAIT (setup, teardown)",
    },
];

/// How functions map to stages: `(stage key, module path, names)`. A
/// function matches when its module path starts with the rule's (whole
/// segments: `lonet_runtime::tcp` covers `lonet_runtime::tcp::input`) and
/// its name is one of the rule's (an empty list: any name). The first
/// matching rule wins, so names come before the modules they are in.
///
/// A function is known by its module path and name, the type and impl
/// blocks left out: `lonet_runtime::tcp::output::<impl TcpSock>::write_xmit`
/// and the inlined `fn write_xmit` of runtime/src/tcp/output.rs are both
/// `lonet_runtime::tcp::output::write_xmit`; `TcpSock::arm_rto` of
/// tcp/mod.rs is `lonet_runtime::tcp::TcpSock::arm_rto` as a symbol and
/// `lonet_runtime::tcp::arm_rto` inlined, both under `lonet_runtime::tcp`.
/// Names are the kernel's wherever lonet uses them, so a rule keeps
/// matching when a function moves to another file of the crate; update
/// this table when one is renamed.
#[rustfmt::skip]
pub const RULES: &[(&str, &str, &[&str])] = &[
    // Connection setup and teardown first: these names also live in
    // modules the per-segment stages match as a whole.
    ("setup", "lonet_runtime::af_inet", &["new", "connect", "start_connect", "poll_connect",
        "listen", "bind", "bind_reuseport", "start_listen", "poll_accept", "drop",
        "shutdown_write", "normalize_dst", "is_local"]),
    ("tcp_v4_rcv", "lonet_runtime", &["lookup_listener"]),
    ("setup", "lonet_runtime", &["inet_hash_connect", "try_connect_port", "inet_check_established",
        "tcp_conn_request", "inet_csk_complete_hashdance", "tcp_rcv_synsent_state_process",
        "tcp_reset", "send_syn", "send_synack", "send_active_reset", "tcp_v4_send_reset",
        "tcp_close", "tcp_done", "unhash", "init_from_syn", "set_iss", "init_snd_after_syn",
        "finish_handshake", "init_mss", "initial_seq", "init_buffer_space", "initial_window",
        "set_state", "purge_recvq"]),
    ("setup", "lonet_runtime::tcp", &["new"]),
    ("setup", "lonet_runtime::inet_hashtables", &[]),
    ("setup", "lonet_runtime::inet_connection_sock", &[]),
    ("setup", "lonet_runtime::tcp::minisocks", &[]),
    // The send side.
    ("tcp_sendmsg", "lonet_runtime", &["tcp_sendmsg", "copy_in", "take_unsent_tail",
        "sndbuf_expand", "wmem_queued", "stream_writeable", "send_space"]),
    ("ack_timers", "lonet_runtime", &["send_ack", "tcp_v4_timewait_ack", "send_delayed_ack", "arm_at",
        "schedule_delack", "event_ack_sent", "in_pingpong", "enter_pingpong", "in_quickack_mode",
        "incr_quickack", "enter_quickack_mode", "arm", "arm_exact", "arm_rto", "arm_fin_wait2",
        "fin_time", "rto"]),
    ("ack_timers", "lonet_runtime::ksoftirqd", &[]),
    ("ack_timers", "lonet_runtime::tcp::timer", &[]),
    ("tcp_write_xmit", "lonet_runtime", &["write_xmit", "xmit_data", "transmit", "make_skb",
        "segment_limit", "sendq_slice", "event_data_sent", "write_wakeup", "retransmit_head",
        "send_probe"]),
    ("tcp_write_xmit", "lonet_runtime::skbuff", &[]),
    ("route", "lonet_runtime", &["ip_queue_xmit", "ip_mc_output"]),
    ("route", "lonet_runtime::fib", &[]),
    ("dev_xmit", "lonet_runtime", &["dev_queue_xmit", "netif_rx", "enqueue_to_backlog"]),
    ("dev_xmit", "lonet_runtime::loopback", &[]),
    ("dev_xmit", "lonet_runtime::netem", &[]),
    ("dev_xmit", "lonet_runtime::pcap", &[]),
    // The receive side.
    ("softirq", "lonet_runtime::dev", &[]),
    ("softirq", "lonet_runtime::ctx", &[]),
    ("ip_rcv", "lonet_runtime", &["ip_rcv", "ip_local_deliver"]),
    ("tcp_v4_rcv", "lonet_runtime", &["tcp_v4_rcv"]),
    ("tcp_ack", "lonet_runtime", &["tcp_ack", "tcp_check_space", "sendq_consume", "write_space"]),
    ("tcp_data_queue", "lonet_runtime", &["tcp_rcv", "tcp_rcv_locked", "tcp_data_queue",
        "tcp_queue_in_order", "tcp_data_queue_ofo", "tcp_event_data_recv", "tcp_measure_rcv_mss",
        "try_rmem_schedule", "collapse_recvq", "prune_ofo_queue", "rcv_rtt_measure", "grow_window",
        "data_ready", "wake_all"]),
    ("tcp_recvmsg", "lonet_runtime", &["tcp_recvmsg", "tcp_cleanup_rbuf", "rcv_space_adjust",
        "rcvbuf_grow"]),
    // The socket calls' own work, and the shell above them.
    ("socket", "lonet_runtime::af_inet", &[]),
    ("socket", "lonet_runtime::tcp", &["lock", "register"]),
    ("shell", "lonet_transport", &[]),
    ("shell", "lonet", &[]),
    // Outside lonet. A waker woken from lonet's code is tokio's work.
    ("tokio", "tokio", &[]),
    ("hyper", "hyper", &[]),
    ("hyper", "hyper_util", &[]),
    ("hyper", "http", &[]),
    ("hyper", "http_body", &[]),
    ("hyper", "http_body_util", &[]),
    ("bench", "lonet_bench", &[]),
    ("bench", "icount", &[]),
];

/// A function's path for [`RULES`]: `<A as T>::f` is `A::f`, `<impl T>`
/// segments, generic arguments and `{{closure}}` segments are left out.
pub fn normalize(symbol: &str) -> Vec<String> {
    let mut out = Vec::new();
    for seg in split_top(symbol) {
        if seg.starts_with("{{") {
            continue;
        }
        if let Some(inner) = seg.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            if inner.starts_with("impl ") {
                continue;
            }
            // `<A as T>`: A's path.
            let a = match find_top(inner, " as ") {
                Some(i) => &inner[..i],
                None => inner,
            };
            out.extend(normalize(a));
            continue;
        }
        // `drop_in_place<T>`, `Scope<F>`: the name without its arguments.
        let name = match seg.find('<') {
            Some(i) => &seg[..i],
            None => seg,
        };
        if !name.is_empty() {
            out.push(name.to_string());
        }
    }
    out
}

/// `s` split at the `::` that are outside angle brackets.
fn split_top(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut depth, mut start, mut i, mut out) = (0i32, 0, 0, Vec::new());
    while i < b.len() {
        match b[i] {
            b'<' => depth += 1,
            b'>' if i > 0 && b[i - 1] != b'-' => depth -= 1,
            b':' if depth == 0 && b.get(i + 1) == Some(&b':') => {
                out.push(&s[start..i]);
                i += 2;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

/// Where `pat` first occurs in `s` outside angle brackets.
fn find_top(s: &str, pat: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            _ if depth == 0 && s[i..].starts_with(pat) => return Some(i),
            _ => {}
        }
    }
    None
}

/// The stage (index into [`STAGES`]) a function's path belongs to, if any.
pub fn stage_of(path: &[String]) -> Option<usize> {
    let name = path.last()?;
    for (key, module, names) in RULES {
        let prefix: Vec<&str> = module.split("::").collect();
        let module_ok = path.len() > prefix.len()
            && prefix
                .iter()
                .zip(path.iter())
                .all(|(p, s)| *p == s.as_str());
        if module_ok && (names.is_empty() || names.contains(&name.as_str())) {
            return STAGES.iter().position(|s| s.key == *key);
        }
    }
    None
}

/// The functions of one of lonet's (or the bench's) source files: `(first line, last line,
/// module path + name)`, from the file itself (rustfmt's layout: a `fn`
/// ends at the first `}` at its own indentation).
fn source_fns(file: &str) -> Vec<(u32, u32, Vec<String>)> {
    let Some(module) = module_of(file) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let mut rest = body;
        for kw in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ] {
            rest = rest.strip_prefix(kw).unwrap_or(rest);
        }
        let Some(after) = rest.strip_prefix("fn ") else {
            continue;
        };
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        let end = lines[i..]
            .iter()
            .position(|l| l.starts_with(&close) && l.trim_end().len() == indent + 1)
            .map_or(lines.len(), |k| i + k);
        let mut path = module.clone();
        path.push(name);
        out.push((i as u32 + 1, end as u32 + 1, path));
    }
    out
}

/// `.../runtime/src/tcp/input.rs` → `lonet_runtime::tcp::input`; `None`
/// for files that are not lonet's (or the bench's: its futures are often
/// inlined into the wrappers that poll them).
fn module_of(file: &str) -> Option<Vec<String>> {
    let (krate, rest) = [
        ("/runtime/src/", "lonet_runtime"),
        ("/transport/src/", "lonet_transport"),
        ("/benches/src/", "lonet_bench"),
    ]
    .iter()
    .find_map(|(dir, krate)| file.rfind(dir).map(|i| (*krate, &file[i + dir.len()..])))?;
    let rest = rest.strip_suffix(".rs")?;
    let mut path = vec![krate.to_string()];
    for seg in rest.split('/') {
        if seg != "mod" && seg != "lib" {
            path.push(seg.to_string());
        }
    }
    Some(path)
}

/// The innermost of lonet's functions holding `line` of `file`.
fn source_fn_at(fns: &[(u32, u32, Vec<String>)], line: u32) -> Option<&Vec<String>> {
    fns.iter()
        .filter(|(a, b, _)| *a <= line && line <= *b)
        .max_by_key(|(a, _, _)| *a)
        .map(|(_, _, p)| p)
}

/// One function of a profile: its own instructions and its calls, each
/// with the stage of the source line they are at (`None`: the function's
/// own stage, or its caller's).
#[derive(Default)]
struct Func {
    /// Its own instructions: (stage of the line, cost).
    own: Vec<(Option<usize>, u64)>,
    /// Its calls: (stage of the call's line, callee, inclusive cost).
    calls: Vec<(Option<usize>, usize, u64)>,
    /// Whether anything calls it.
    called: bool,
}

/// What one callgrind profile says, stage by stage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Breakdown {
    /// Instructions charged to each stage (index into [`STAGES`]).
    pub stages: Vec<f64>,
    /// The profile's total (`totals:`).
    pub total: u64,
    /// How each stage was seen: by a symbol of its own, only by inlined
    /// lines, or not at all.
    pub seen: Vec<Seen>,
}

/// How a stage's functions were found in a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seen {
    /// Not at all: not run, or inlined past the line info.
    No,
    /// Only through the source lines of inlined code.
    Inlined,
    /// As a function symbol of its own.
    Symbol,
}

impl Seen {
    /// The key in the stage file and the tables.
    pub fn key(self) -> &'static str {
        match self {
            Seen::No => "not-seen",
            Seen::Inlined => "inlined",
            Seen::Symbol => "symbol",
        }
    }

    fn from_key(s: &str) -> Seen {
        match s {
            "symbol" => Seen::Symbol,
            "inlined" => Seen::Inlined,
            _ => Seen::No,
        }
    }
}

/// The totals line of a callgrind output file.
pub fn total_of(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Reads a callgrind output file (`--dump-instr=no`, positions uncompressed
/// or compressed) and charges every instruction to a stage.
pub fn analyse(text: &str) -> Result<Breakdown, String> {
    let total = total_of(text).ok_or("no totals: line in the profile")?;
    // Compressed names: "(12) name" defines id 12, "(12)" uses it; files,
    // functions and objects number their ids apart. Plain names as they are.
    let mut names: [HashMap<String, String>; 3] = Default::default();
    let (files_ns, fns_ns, obs_ns) = (0, 1, 2);
    let mut resolve = |ns: usize, v: &str| -> String {
        if let Some(rest) = v.strip_prefix('(') {
            if let Some(close) = rest.find(')') {
                let id = &rest[..close];
                let name = rest[close + 1..].trim_start();
                if !name.is_empty() {
                    names[ns].insert(id.to_string(), name.to_string());
                    return name.to_string();
                }
                return names[ns].get(id).cloned().unwrap_or_default();
            }
        }
        v.to_string()
    };
    let mut funcs: Vec<Func> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut files: HashMap<String, Vec<(u32, u32, Vec<String>)>> = HashMap::new();
    let mut seen = vec![Seen::No; STAGES.len()];
    let mut id_of = |name: String, funcs: &mut Vec<Func>| -> usize {
        *ids.entry(name).or_insert_with(|| {
            funcs.push(Func::default());
            funcs.len() - 1
        })
    };
    let mut sym_stage: Vec<Option<usize>> = Vec::new();
    // A function is its file and name, as callgrind_annotate keys them
    // (two "(below main)" live in different files); `file` is the last
    // fl=, fi= or fe=, the file of the lines that follow.
    let mut file = String::new();
    let mut cfile: Option<String> = None;
    let mut cur: Option<usize> = None;
    let mut callee: Option<usize> = None;
    let mut in_call = false;
    let mut last_line: u32 = 0;
    let mut func =
        |key: String, name: &str, funcs: &mut Vec<Func>, sym: &mut Vec<Option<usize>>| {
            let stage = stage_of(&normalize(name));
            let id = id_of(key, funcs);
            if sym.len() < funcs.len() {
                sym.resize(funcs.len(), None);
            }
            sym[id] = stage;
            (id, stage)
        };
    for line in text.lines() {
        let Some(c) = line.chars().next() else {
            continue;
        };
        if c.is_ascii_digit() || c == '+' || c == '-' || c == '*' {
            let mut it = line.split_whitespace();
            let pos = it.next().unwrap_or("0");
            let cost: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            last_line = match pos.as_bytes()[0] {
                b'+' => last_line.saturating_add(pos[1..].parse().unwrap_or(0)),
                b'-' => last_line.saturating_sub(pos[1..].parse().unwrap_or(0)),
                b'*' => last_line,
                _ => pos.parse().unwrap_or(0),
            };
            let Some(f) = cur else {
                in_call = false;
                continue;
            };
            // The stage of this line: the lonet function it lies in.
            let fns = files
                .entry(file.clone())
                .or_insert_with(|| source_fns(&file));
            let line_stage = source_fn_at(fns, last_line).and_then(|p| stage_of(p));
            if let Some(s) = line_stage {
                if seen[s] == Seen::No {
                    seen[s] = Seen::Inlined;
                }
            }
            if in_call {
                if let Some(g) = callee {
                    funcs[f].calls.push((line_stage, g, cost));
                    funcs[g].called = true;
                }
                in_call = false;
            } else {
                funcs[f].own.push((line_stage, cost));
            }
            continue;
        }
        if let Some(v) = line
            .strip_prefix("fl=")
            .or_else(|| line.strip_prefix("fi="))
            .or_else(|| line.strip_prefix("fe="))
        {
            file = resolve(files_ns, v);
        } else if let Some(v) = line.strip_prefix("fn=") {
            let name = resolve(fns_ns, v);
            let (id, stage) = func(format!("{file}:{name}"), &name, &mut funcs, &mut sym_stage);
            if let Some(s) = stage {
                seen[s] = Seen::Symbol;
            }
            cur = Some(id);
        } else if let Some(v) = line.strip_prefix("cfn=") {
            let name = resolve(fns_ns, v);
            let in_file = cfile.take().unwrap_or_else(|| file.clone());
            let (id, _) = func(
                format!("{in_file}:{name}"),
                &name,
                &mut funcs,
                &mut sym_stage,
            );
            callee = Some(id);
        } else if line.starts_with("calls=") {
            in_call = true;
        } else if let Some(v) = line
            .strip_prefix("cfi=")
            .or_else(|| line.strip_prefix("cfl="))
        {
            // The callee's file, for the next cfn= only.
            cfile = Some(resolve(files_ns, v));
        } else if let Some(v) = line
            .strip_prefix("ob=")
            .or_else(|| line.strip_prefix("cob="))
        {
            resolve(obs_ns, v);
        }
    }
    sym_stage.resize(funcs.len(), None);
    let n = STAGES.len();
    // Each function's cost by stage; slot n is "its caller's stage".
    let mut memo: Vec<Option<Vec<f64>>> = vec![None; funcs.len()];
    let mut busy = vec![false; funcs.len()];
    let mut stages = vec![0.0; n];
    for root in 0..funcs.len() {
        if funcs[root].called {
            continue;
        }
        let b = breakdown(root, &funcs, &sym_stage, &mut memo, &mut busy);
        for (s, v) in b.iter().enumerate() {
            // Outside every stage function: the first stage.
            stages[if s == n { 0 } else { s }] += v;
        }
    }
    // A function reached only through a cycle has no root above it; what
    // the roots do not cover (recursion) is charged outside lonet.
    let covered: f64 = stages.iter().sum();
    stages[0] += total as f64 - covered;
    // Outside lonet is always there: it has no function of its own.
    seen[0] = Seen::Symbol;
    Ok(Breakdown {
        stages,
        total,
        seen,
    })
}

/// `f`'s inclusive cost by stage (slot `STAGES.len()`: not in a stage of
/// its own, its caller's). Iterative over the call graph's depth would be
/// tidier; the graph of one run is a few thousand functions, a few dozen
/// deep.
fn breakdown(
    f: usize,
    funcs: &[Func],
    sym_stage: &[Option<usize>],
    memo: &mut Vec<Option<Vec<f64>>>,
    busy: &mut Vec<bool>,
) -> Vec<f64> {
    if let Some(b) = &memo[f] {
        return b.clone();
    }
    let n = STAGES.len();
    let mut out = vec![0.0; n + 1];
    busy[f] = true;
    let label = |line_stage: Option<usize>| line_stage.or(sym_stage[f]).unwrap_or(n);
    for &(ls, cost) in &funcs[f].own {
        out[label(ls)] += cost as f64;
    }
    for &(ls, g, cost) in &funcs[f].calls {
        let here = label(ls);
        if busy[g] {
            // Recursion: the call's cost stays where it is called.
            out[here] += cost as f64;
            continue;
        }
        let b = breakdown(g, funcs, sym_stage, memo, busy);
        let incl: f64 = b.iter().sum();
        if incl <= 0.0 {
            continue;
        }
        for (s, v) in b.iter().enumerate() {
            let to = if s == n { here } else { s };
            out[to] += cost as f64 * v / incl;
        }
    }
    busy[f] = false;
    memo[f] = Some(out.clone());
    out
}

/// One workload's figures per operation.
#[derive(Clone, Debug, PartialEq)]
pub struct PerOp {
    /// The workload's name.
    pub workload: String,
    /// lonet's instructions per operation (as `.ci/icount` counts them).
    pub lonet: i64,
    /// duplex's.
    pub duplex: i64,
    /// lonet's, stage by stage.
    pub stages: Vec<i64>,
    /// duplex's, by the same stages (only those outside lonet have any).
    pub duplex_stages: Vec<i64>,
    /// How each of lonet's stages was seen (in the N2 run).
    pub seen: Vec<Seen>,
}

/// (b − a) / (n2 − n1), as `.ci/icount` divides.
fn per_op(a: u64, b: u64, n1: u64, n2: u64) -> i64 {
    (b as i64 - a as i64) / (n2 as i64 - n1 as i64).max(1)
}

/// One workload from its four profiles (lonet and duplex, N1 and N2).
pub fn per_op_from(
    w: &Workload,
    lonet1: &str,
    lonet2: &str,
    duplex1: &str,
    duplex2: &str,
) -> Result<PerOp, String> {
    let a = analyse(lonet1)?;
    let b = analyse(lonet2)?;
    let d1 = analyse(duplex1)?;
    let d2 = analyse(duplex2)?;
    let dn = (w.n2 - w.n1) as f64;
    let diff = |x: &Breakdown, y: &Breakdown| -> Vec<i64> {
        x.stages
            .iter()
            .zip(&y.stages)
            .map(|(x, y)| ((y - x) / dn).round() as i64)
            .collect()
    };
    Ok(PerOp {
        workload: w.name.to_string(),
        lonet: per_op(a.total, b.total, w.n1, w.n2),
        duplex: per_op(d1.total, d2.total, w.n1, w.n2),
        stages: diff(&a, &b),
        duplex_stages: diff(&d1, &d2),
        seen: b.seen,
    })
}

/// Reads `dir/cg.<workload>.<transport>.<n>` (the files `.ci/icount`
/// leaves) for every workload named.
pub fn from_dir(dir: &Path, workloads: &[&Workload]) -> Result<Vec<PerOp>, String> {
    let read = |w: &str, t: &str, n: u64| {
        let p = dir.join(format!("cg.{w}.{t}.{n}"));
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    workloads
        .iter()
        .map(|w| {
            per_op_from(
                w,
                &read(w.name, "lonet", w.n1)?,
                &read(w.name, "lonet", w.n2)?,
                &read(w.name, "duplex", w.n1)?,
                &read(w.name, "duplex", w.n2)?,
            )
        })
        .collect()
}

/// Runs every workload under callgrind with the `icount` binary `bin`,
/// into `dir`, as `.ci/icount` does, and analyses the profiles.
pub fn measure(bin: &Path, dir: &Path) -> Result<Vec<PerOp>, String> {
    for w in &WORKLOADS {
        for t in ["lonet", "duplex"] {
            for n in [w.n1, w.n2] {
                let out = dir.join(format!("cg.{}.{t}.{n}", w.name));
                let status = Command::new("valgrind")
                    .arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", out.display()))
                    .args([
                        "--dump-instr=no",
                        "--compress-strings=no",
                        "--compress-pos=no",
                        "-q",
                    ])
                    .arg(bin)
                    .args([w.name, t, &n.to_string()])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .map_err(|e| format!("valgrind: {e}"))?;
                if !status.success() {
                    return Err(format!(
                        "valgrind {} {} {t} {n}: {status}",
                        bin.display(),
                        w.name
                    ));
                }
            }
        }
    }
    from_dir(dir, &WORKLOADS.iter().collect::<Vec<_>>())
}

/// Where and with what the figures were measured: `(key, value)` lines
/// of the stage file (`commit`, `rustc`, `valgrind`, `date`).
pub type Meta = Vec<(String, String)>;

/// The commit, toolchain and valgrind of this checkout and machine, each
/// best effort ("unknown").
pub fn this_meta() -> Meta {
    let run = |cmd: &str, args: &[&str]| -> Option<String> {
        let o = Command::new(cmd).args(args).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run("git", &["rev-parse", "--short=12", "HEAD"]).map(|c| {
        let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty());
        if dirty {
            format!("{c} with uncommitted changes")
        } else {
            c
        }
    });
    let un = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    vec![
        ("commit".into(), un(commit)),
        ("rustc".into(), un(run("rustc", &["--version"]))),
        ("valgrind".into(), un(run("valgrind", &["--version"]))),
        ("date".into(), un(run("date", &["-u", "+%Y-%m-%d"]))),
    ]
}

/// The stage file: a comment, the meta lines, then one line per workload
/// and figure.
pub fn to_file(meta: &Meta, rows: &[PerOp]) -> String {
    let mut s = String::from(
        "# Instructions per operation of lonet's path, stage by stage (callgrind), written by\n\
         # .ci/icount --update with benches/icount.txt. compare prints these figures unless it\n\
         # measures them (--icount). The stages and how functions map to them: the RULES table\n\
         # of benches/src/bin/icount/stages.rs.\n\
         # meta <key> <value>: where the figures come from\n\
         # <workload> total|duplex <instructions>\n\
         # <workload> <stage> <lonet's instructions> <symbol|inlined|not-seen> <duplex's>\n",
    );
    for (k, v) in meta {
        let _ = writeln!(s, "meta {k} {v}");
    }
    for r in rows {
        let _ = writeln!(s, "{} total {}", r.workload, r.lonet);
        let _ = writeln!(s, "{} duplex {}", r.workload, r.duplex);
        for (i, st) in STAGES.iter().enumerate() {
            let _ = writeln!(
                s,
                "{} {} {} {} {}",
                r.workload,
                st.key,
                r.stages[i],
                r.seen[i].key(),
                r.duplex_stages[i]
            );
        }
    }
    s
}

/// Reads a stage file back; a stage it does not name (an older file) is
/// `not-seen`, a key this build does not know is left out.
pub fn from_file(text: &str) -> (Meta, Vec<PerOp>) {
    let mut meta = Vec::new();
    let mut rows: BTreeMap<usize, PerOp> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("meta ") {
            let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
            meta.push((k.to_string(), v.to_string()));
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(w), Some(key), Some(v)) = (f.first(), f.get(1), f.get(2)) else {
            continue;
        };
        let Ok(v) = v.parse::<i64>() else {
            continue;
        };
        let idx = match order.iter().position(|o| o == w) {
            Some(i) => i,
            None => {
                order.push(w.to_string());
                order.len() - 1
            }
        };
        let r = rows.entry(idx).or_insert_with(|| PerOp {
            workload: w.to_string(),
            lonet: 0,
            duplex: 0,
            stages: vec![0; STAGES.len()],
            duplex_stages: vec![0; STAGES.len()],
            seen: vec![Seen::No; STAGES.len()],
        });
        match *key {
            "total" => r.lonet = v,
            "duplex" => r.duplex = v,
            k => {
                if let Some(i) = STAGES.iter().position(|s| s.key == k) {
                    r.stages[i] = v;
                    r.seen[i] = Seen::from_key(f.get(3).copied().unwrap_or(""));
                    r.duplex_stages[i] = f.get(4).and_then(|d| d.parse().ok()).unwrap_or(0);
                }
            }
        }
    }
    (meta, rows.into_values().collect())
}

/// `1234567` → "1,234,567".
pub fn thousands(n: i64) -> String {
    let d = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many of [`STAGES`], from the first, run outside lonet.
pub const OUTSIDE: usize = 4;

/// One of lonet's cells: "1,234 (15.5%)", or "not seen" for a stage none of
/// whose functions ran.
fn cell(r: &PerOp, i: usize) -> String {
    if r.seen[i] == Seen::No && r.stages[i] == 0 {
        return "not seen".into();
    }
    let mark = if r.seen[i] == Seen::Inlined {
        "†"
    } else {
        ""
    };
    format!(
        "{}{mark} ({})",
        thousands(r.stages[i]),
        share(r.stages[i], r.lonet)
    )
}

/// `part` as a share of `whole`: "15.5%".
fn share(part: i64, whole: i64) -> String {
    if whole > 0 {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    } else {
        "–".into()
    }
}

/// A duplex cell: its figure, or "–" where it has none.
fn dcell(v: i64) -> String {
    if v == 0 {
        "–".into()
    } else {
        thousands(v)
    }
}

/// The table's rows: a head, then the stages outside lonet (tokio, hyper,
/// the bench, the rest) and their sum, lonet's stages and their sum, and
/// the whole operation; a lonet column and a duplex column per workload.
fn table_rows(rows: &[PerOp]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut head = vec!["stage: instructions per operation (share of lonet's)".to_string()];
    for r in rows {
        head.push(format!("{}: lonet", r.workload));
        head.push("duplex".to_string());
    }
    let mut body = Vec::new();
    let order: Vec<usize> = (1..OUTSIDE)
        .chain([0])
        .chain(OUTSIDE..STAGES.len())
        .collect();
    let sum = |r: &PerOp, range: std::ops::Range<usize>, v: &dyn Fn(&PerOp) -> &Vec<i64>| -> i64 {
        v(r)[range].iter().sum()
    };
    for (k, &i) in order.iter().enumerate() {
        let mut row = vec![STAGES[i].name.to_string()];
        for r in rows {
            row.push(cell(r, i));
            row.push(dcell(r.duplex_stages[i]));
        }
        body.push(row);
        if k + 1 == OUTSIDE {
            let mut row = vec!["outside lonet, together".to_string()];
            for r in rows {
                let l = sum(r, 0..OUTSIDE, &|r| &r.stages);
                row.push(format!("{} ({})", thousands(l), share(l, r.lonet)));
                row.push(thousands(sum(r, 0..OUTSIDE, &|r| &r.duplex_stages)));
            }
            body.push(row);
        }
    }
    let mut row = vec!["lonet's stages, together".to_string()];
    for r in rows {
        let l = sum(r, OUTSIDE..STAGES.len(), &|r| &r.stages);
        row.push(format!("{} ({})", thousands(l), share(l, r.lonet)));
        row.push(dcell(sum(r, OUTSIDE..STAGES.len(), &|r| &r.duplex_stages)));
    }
    body.push(row);
    let mut row = vec!["whole operation (.ci/icount's count)".to_string()];
    for r in rows {
        row.push(thousands(r.lonet));
        row.push(thousands(r.duplex));
    }
    body.push(row);
    let mut row = vec!["lonet − duplex".to_string()];
    for r in rows {
        row.push(thousands(r.lonet - r.duplex));
        row.push(String::new());
    }
    body.push(row);
    (head, body)
}

/// What the table's figures and marks mean, under it.
pub const LEGEND: &str = "\
One operation: pingpong, a 64-byte round trip (client in block_on); bulk, one 64 KiB write read \
by another task; connect, connect + accept + close (duplex: a new pair, dropped); http1, one \
hyper HTTP/1.1 keep-alive request. Each figure is callgrind's count for N2 operations less \
N1's, divided by N2 − N1, so setup and teardown cancel out. Every instruction is charged to the \
innermost stage function running it: a stage is the inclusive cost of its functions less the \
other stages' functions they call (benches/src/bin/icount/stages.rs says how), so a waker that \
lonet's softirq wakes is tokio's work, and the memory copies are the stages that make them. \
duplex runs the same workloads through the same rules: all its work is outside lonet. † found \
only through inlined code's source lines; \"not seen\": no function of the stage ran (or the \
compiler left no trace of it: its work is then in the stage that called it).";

/// `text` cut into lines of at most `width` characters, at spaces.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    for word in text.split_whitespace() {
        let n = word.chars().count();
        if len > 0 && len + 1 + n > width {
            out.push('\n');
            len = 0;
        } else if len > 0 {
            out.push(' ');
            len += 1;
        }
        out.push_str(word);
        len += n;
    }
    out
}

/// The stage table, aligned for a terminal.
pub fn text(rows: &[PerOp]) -> String {
    let (head, body) = table_rows(rows);
    aligned(&head, &body)
}

/// A table for a terminal: the first column left-aligned, the others
/// right-aligned, ` | ` between them, a rule under the head (compare's
/// timing table is laid out by this too).
pub fn aligned(head: &[String], body: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in body {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = " ".repeat(w[i] - c.chars().count());
            if i == 0 {
                let _ = write!(s, "{c}{pad}");
            } else {
                let _ = write!(s, " | {pad}{c}");
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(head) + "\n";
    out += &"-".repeat(w.iter().sum::<usize>() + 3 * (w.len() - 1));
    out += "\n";
    for r in body {
        out += &line(r);
        out += "\n";
    }
    out
}

/// The stage table in Markdown.
pub fn markdown(rows: &[PerOp]) -> String {
    let (head, body) = table_rows(rows);
    let mut out = format!("| {} |\n", head.join(" | "));
    out += "|---|";
    out += &"---:|".repeat(head.len() - 1);
    out += "\n";
    for r in &body {
        out += &format!("| {} |\n", r.join(" | "));
    }
    out
}

/// "commit abc (rustc 1.x, valgrind-3.19.0, 2026-12-01)".
pub fn describe(meta: &Meta) -> String {
    let get = |k: &str| {
        meta.iter()
            .find(|(m, _)| m == k)
            .map_or("unknown", |(_, v)| v.as_str())
    };
    format!(
        "commit {}, {}, {}, {}",
        get("commit"),
        get("rustc"),
        get("valgrind"),
        get("date")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Vec<String> {
        normalize(s)
    }

    #[test]
    fn symbols_normalize_to_module_and_name() {
        assert_eq!(
            path("lonet_runtime::tcp::output::<impl lonet_runtime::tcp::TcpSock>::write_xmit"),
            ["lonet_runtime", "tcp", "output", "write_xmit"]
        );
        assert_eq!(
            path("<lonet_runtime::ctx::Ctx as core::ops::drop::Drop>::drop"),
            ["lonet_runtime", "ctx", "Ctx", "drop"]
        );
        assert_eq!(
            path("core::ptr::drop_in_place<lonet_runtime::tcp::RecvState>"),
            ["core", "ptr", "drop_in_place"]
        );
        assert_eq!(
            path("lonet_runtime::tcp::syscalls::tcp_sendmsg::{{closure}}"),
            ["lonet_runtime", "tcp", "syscalls", "tcp_sendmsg"]
        );
        assert_eq!(
            path("<lonet_runtime::nsproxy::Scope<F> as core::future::future::Future>::poll"),
            ["lonet_runtime", "nsproxy", "Scope", "poll"]
        );
    }

    fn stage(s: &str) -> Option<&'static str> {
        stage_of(&path(s)).map(|i| STAGES[i].key)
    }

    #[test]
    fn rules_pick_the_kernel_stage() {
        assert_eq!(
            stage("lonet_runtime::tcp::output::<impl lonet_runtime::tcp::TcpSock>::write_xmit"),
            Some("tcp_write_xmit")
        );
        assert_eq!(
            stage("lonet_runtime::tcp::TcpSock::send_delayed_ack"),
            Some("ack_timers")
        );
        assert_eq!(
            stage("lonet_runtime::tcp::send_delayed_ack"),
            Some("ack_timers")
        );
        assert_eq!(stage("lonet_runtime::dev::net_rx_action"), Some("softirq"));
        assert_eq!(stage("lonet_runtime::dev::netif_rx"), Some("dev_xmit"));
        assert_eq!(
            stage("lonet_runtime::af_inet::Socket::poll_send"),
            Some("socket")
        );
        assert_eq!(
            stage("lonet_runtime::af_inet::Socket::poll_accept"),
            Some("setup")
        );
        assert_eq!(
            stage("lonet_runtime::inet_hashtables::Tables::lookup_listener"),
            Some("tcp_v4_rcv")
        );
        assert_eq!(
            stage("lonet_runtime::inet_hashtables::inet_hash_connect"),
            Some("setup")
        );
        assert_eq!(
            stage("<lonet_transport::net::stream::TcpStream as tokio::io::async_write::AsyncWrite>::poll_write"),
            Some("shell")
        );
        // Wrappers that poll the user's future are no stage.
        assert_eq!(
            stage("<lonet_runtime::nsproxy::Scope<F> as core::future::future::Future>::poll"),
            None
        );
        assert_eq!(stage("core::ops::function::FnOnce::call_once"), None);
        assert_eq!(stage("tokio::runtime::task::raw::poll"), Some("tokio"));
        assert_eq!(
            stage("lonet_bench::pingpong::PingPong<T>::run_in_place::{{closure}}"),
            Some("bench")
        );
        assert_eq!(
            stage("hyper::proto::h1::conn::Conn<I,B,T>::poll_read_head"),
            Some("hyper")
        );
        // Every rule names a stage.
        for (key, _, _) in RULES {
            assert!(STAGES.iter().any(|s| s.key == *key), "{key}");
        }
    }

    #[test]
    fn source_files_map_to_modules() {
        assert_eq!(
            module_of("/x/y/runtime/src/tcp/input.rs").unwrap(),
            ["lonet_runtime", "tcp", "input"]
        );
        assert_eq!(
            module_of("/x/runtime/src/tcp/mod.rs").unwrap(),
            ["lonet_runtime", "tcp"]
        );
        assert_eq!(module_of("/r/library/core/src/ptr/mod.rs"), None);
    }

    /// A profile by hand: main → tcp_sendmsg (own 100, calls memcpy 50 and
    /// write_xmit 300), write_xmit (own 200, memcpy 100); memcpy is no
    /// stage, so its 150 are split by its callers' calls.
    #[test]
    fn helpers_are_charged_to_their_callers_stages() {
        let text = "\
events: Ir
fl=app.rs
fn=main
1 10
cfi=s.rs
cfn=lonet_runtime::tcp::syscalls::tcp_sendmsg
calls=1 1
1 450
fl=s.rs
fn=lonet_runtime::tcp::syscalls::tcp_sendmsg
1 100
cfi=m.c
cfn=memcpy
calls=1 1
2 50
cfi=o.rs
cfn=lonet_runtime::tcp::output::<impl lonet_runtime::tcp::TcpSock>::write_xmit
calls=1 1
3 300
fl=o.rs
fn=lonet_runtime::tcp::output::<impl lonet_runtime::tcp::TcpSock>::write_xmit
1 200
cfi=m.c
cfn=memcpy
calls=1 1
2 100
fl=m.c
fn=memcpy
1 150
totals: 460
";
        let b = analyse(text).unwrap();
        let at = |k: &str| b.stages[STAGES.iter().position(|s| s.key == k).unwrap()];
        assert_eq!(b.total, 460);
        assert!((at("app") - 10.0).abs() < 1e-6);
        assert!((at("tcp_sendmsg") - 150.0).abs() < 1e-6);
        assert!((at("tcp_write_xmit") - 300.0).abs() < 1e-6);
        assert_eq!(
            b.seen[STAGES.iter().position(|s| s.key == "tcp_ack").unwrap()],
            Seen::No
        );
    }

    /// Two functions of one name in different files (glibc's and the
    /// binary's "(below main)") are two functions: merged, the call from one
    /// to the other would be a cycle and half the program would be lost.
    #[test]
    fn functions_are_told_apart_by_file() {
        let text = "\
events: Ir
fl=???
fn=(below main)
cfi=libc-start.c
cfn=(below main)
calls=1 1
1 100
fl=libc-start.c
fn=(below main)
cfi=t.rs
cfn=tokio::runtime::block_on
calls=1 1
1 100
fl=t.rs
fn=tokio::runtime::block_on
1 100
totals: 100
";
        let b = analyse(text).unwrap();
        let tokio = STAGES.iter().position(|s| s.key == "tokio").unwrap();
        assert!((b.stages[tokio] - 100.0).abs() < 1e-6, "{:?}", b.stages);
    }

    #[test]
    fn the_file_round_trips() {
        let mut r = PerOp {
            workload: "pingpong".into(),
            lonet: 7976,
            duplex: 2642,
            stages: (0..STAGES.len() as i64).collect(),
            duplex_stages: (0..STAGES.len() as i64).rev().collect(),
            seen: vec![Seen::Symbol; STAGES.len()],
        };
        r.seen[2] = Seen::Inlined;
        r.seen[3] = Seen::No;
        let meta = vec![(
            "commit".to_string(),
            "abc with uncommitted changes".to_string(),
        )];
        let (m, rows) = from_file(&to_file(&meta, &[r.clone()]));
        assert_eq!(m, meta);
        assert_eq!(rows, vec![r]);
    }

    /// `.ci/icount` and [`WORKLOADS`] run the same sizes.
    #[test]
    fn workloads_match_the_ci_script() {
        let script = include_str!("../../../../.ci/icount");
        for w in &WORKLOADS {
            let line = script
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("\"{} ", w.name)))
                .unwrap_or_else(|| panic!("{} not in .ci/icount", w.name));
            let f: Vec<&str> = line.trim_start()[1..].split_whitespace().collect();
            assert_eq!(f[1].parse::<u64>().unwrap(), w.n1, "{}", w.name);
            assert_eq!(f[2].parse::<u64>().unwrap(), w.n2, "{}", w.name);
        }
    }

    /// The committed figures parse, and name every workload.
    #[test]
    fn the_committed_file_reads() {
        let (meta, rows) = from_file(include_str!("../../../icount-stages.txt"));
        assert!(meta.iter().any(|(k, _)| k == "commit"));
        for w in &WORKLOADS {
            assert!(rows.iter().any(|r| r.workload == w.name), "{}", w.name);
        }
    }
}
