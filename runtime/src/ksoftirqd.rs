//! `ksoftirqd` and the TCP timers of one namespace.
//!
//! The kernel runs NET_RX in the sender's context and hands it to the per-CPU
//! `ksoftirqd` thread only when a run is cut short. The model does the same
//! with one helper thread per namespace, which also plays the timer softirq
//! for TCP's retransmission, delayed-ACK and zero-window-probe timers. It is
//! a plain OS thread, not a task of some tokio runtime, so a runtime shutting
//! down never strands another runtime's connections.
//!
//! The thread is started when work is handed to it and exits when its
//! namespace is freed, or by itself once it has had no backlog and no timer
//! armed for 20 ms (`LINGER`: under a
//! stream of short connections, each of which arms and clears a timer, it
//! would otherwise exit and be started again every few connections). While
//! it runs it also sweeps expired TIME_WAIT entries (which arm no timer of
//! their own).
//!
//! Waking the thread is the expensive part (a futex call from the socket
//! call, and a second core taking the timer lock), so a waiting thread is
//! woken only by a backlog handed over or by a deadline it would otherwise
//! miss by more than a tick, as Linux's timer wheel allows:
//!
//! - **A tick of slack.** The thread records when it will look again
//!   (`wake_at`). A new deadline needs a wakeup only if that is later than
//!   both the deadline and one `TICK` (4 ms, a jiffy at HZ=250) from now. So
//!   a timer never fires early, a timer of a tick or more fires at its exact
//!   time, and a shorter one (the FIN's delayed ACK on a connection that
//!   received no data has `ato` 0, as on Linux) fires within a tick, as
//!   `jiffies + ato` fires on Linux at the next tick.
//! - **Ticking while busy.** A deadline added while the thread waits
//!   (`armed`) keeps it on a periodic tick: until a whole tick passes without
//!   one, it looks at least once a tick, so the deadlines that a stream of
//!   connections arms (and mostly cancels within microseconds) never wake it.
//!   Idle, it sleeps towards its first deadline or
//!   lingers, and the first deadline armed then may wake it once.
//!
//! With a [`Clock`](crate::Clock) installed (clock.rs) the timers are the
//! clock's driver's to run (`run_timers`): the thread then only takes
//! handed-over backlog, and a new earliest deadline is passed to
//! `Clock::schedule` instead of waking the thread. netem's queue (netem.rs)
//! has one more deadline beside the sockets', `netem_at`.
//!
//! Timers are lazy, as `sk_reset_timer` with a coarse wheel would be: a socket
//! keeps its own deadlines and registers with the thread only when it has no
//! registration that fires earlier. When a registration fires, the socket's
//! real deadlines are checked and it registers again for the next one. So
//! re-arming a timer on every segment costs a field write, not a lock.
//!
//! The calls other modules make are free functions, imported by name:
//! [`sk_reset_timer`] and [`sk_stop_timers`] (tcp/), [`netem_timer`]
//! (netem.rs), [`wakeup_ksoftirqd`] (dev.rs) and [`run_timers`]
//! (`Netns::run_timers`).

use crate::netns::NsInner;
use crate::sync::lock;
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use crate::tcp::minisocks::tw_tick;
use crate::tcp::Sock;
use std::time::{Duration, Instant};

/// The helper thread's shared state.
#[derive(Default)]
pub(crate) struct Kthread {
    state: Mutex<KState>,
    cv: Condvar,
}

#[derive(Default)]
struct KState {
    running: bool,
    /// The namespace is gone (its last holder dropped it): the thread exits.
    gone: bool,
    /// CPUs whose backlog was handed over (bit per CPU).
    pending: u64,
    /// The sockets' registrations, earliest first.
    timers: TimerList,
    /// When the thread, waiting, will look again (`None` while it runs or
    /// once notified): a new timer due earlier (by more than the slack,
    /// `timer_added`) wakes it, a later one does not need to.
    wake_at: Option<Instant>,
    /// A deadline was added while the thread waited: timers are being armed,
    /// so its next wait is at most a `TICK`.
    armed: bool,
    /// When netem's queue has a packet to send (netem.rs).
    netem_at: Option<Instant>,
}

/// A socket's registration with the namespace's timer list: when it fires,
/// and which slot of the list holds it (`TcpSock::timers.timer_registered`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimerReg(Option<(Instant, u32)>);

impl TimerReg {
    /// When the registration fires, if there is one.
    #[inline]
    pub(crate) fn when(&self) -> Option<Instant> {
        self.0.map(|(w, _)| w)
    }
}

/// One registration in the timer list's slab: free while `sk` is `None`.
struct TimerSlot {
    when: Instant,
    id: u64,
    sk: Option<Weak<Sock>>,
    /// Its index in `heap`.
    pos: u32,
}

/// The sockets' registrations, earliest first: a binary min-heap of slab
/// indices ordered by `(deadline, socket id)`, the order the timers fire in.
/// Each socket keeps the index of its slot (`TimerReg`), so moving a
/// registration and removing one take no search and no allocation (the
/// slab's slots are reused), where a sorted tree allocated and freed nodes
/// on every connection.
#[derive(Default)]
struct TimerList {
    slots: Vec<TimerSlot>,
    free: Vec<u32>,
    heap: Vec<u32>,
}

impl TimerList {
    #[inline]
    fn key(&self, slot: u32) -> (Instant, u64) {
        let s = &self.slots[slot as usize];
        (s.when, s.id)
    }

    /// The earliest deadline.
    #[inline]
    fn first(&self) -> Option<Instant> {
        self.heap.first().map(|&i| self.slots[i as usize].when)
    }

    /// The slot of `reg` if it is still `id`'s registration (it may have
    /// fired, and the slot gone to another socket, since it was made).
    #[inline]
    fn live(&self, reg: TimerReg, id: u64) -> Option<u32> {
        let (when, slot) = reg.0?;
        let s = self.slots.get(slot as usize)?;
        (s.sk.is_some() && s.id == id && s.when == when).then_some(slot)
    }

    fn insert(&mut self, when: Instant, id: u64, sk: Weak<Sock>) -> u32 {
        let pos = self.heap.len() as u32;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = TimerSlot {
                    when,
                    id,
                    sk: Some(sk),
                    pos,
                };
                i
            }
            None => {
                self.slots.push(TimerSlot {
                    when,
                    id,
                    sk: Some(sk),
                    pos,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(slot);
        self.sift_up(pos as usize);
        slot
    }

    /// Moves a live slot to an earlier deadline.
    fn move_earlier(&mut self, slot: u32, when: Instant) {
        self.slots[slot as usize].when = when;
        self.sift_up(self.slots[slot as usize].pos as usize);
    }

    /// Takes a live slot out of the list.
    fn remove(&mut self, slot: u32) -> Option<Weak<Sock>> {
        let pos = self.slots[slot as usize].pos as usize;
        let last = self.heap.len() - 1;
        self.swap(pos, last);
        self.heap.pop();
        if pos < last {
            self.sift_down(pos);
            self.sift_up(pos);
        }
        self.free.push(slot);
        self.slots[slot as usize].sk.take()
    }

    /// Takes the earliest registration if it is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(Instant, Weak<Sock>)> {
        let &slot = self.heap.first()?;
        let when = self.slots[slot as usize].when;
        if when > now {
            return None;
        }
        self.remove(slot).map(|w| (when, w))
    }

    #[inline]
    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        let (sa, sb) = (self.heap[a], self.heap[b]);
        self.slots[sa as usize].pos = a as u32;
        self.slots[sb as usize].pos = b as u32;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.key(self.heap[pos]) >= self.key(self.heap[parent]) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * pos + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let mut c = l;
            if r < n && self.key(self.heap[r]) < self.key(self.heap[l]) {
                c = r;
            }
            if self.key(self.heap[c]) >= self.key(self.heap[pos]) {
                break;
            }
            self.swap(pos, c);
            pos = c;
        }
    }
}

impl KState {
    /// The earliest deadline: a socket's or netem's.
    fn first_deadline(&self) -> Option<Instant> {
        let t = self.timers.first();
        match (t, self.netem_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Kthread {
    fn lock(&self) -> MutexGuard<'_, KState> {
        lock(&self.state)
    }

    /// The namespace is being freed: wake the thread so that it exits now
    /// instead of at its next deadline.
    pub(crate) fn namespace_gone(&self) {
        self.lock().gone = true;
        self.cv.notify_all();
    }

    pub(crate) fn running(&self) -> bool {
        self.lock().running
    }
}

/// `wakeup_softirqd`: hand the rest of `cpu`'s backlog to the thread.
pub(crate) fn wakeup_ksoftirqd(ns: &NsInner, cpu: usize) {
    let mut st = ns.kthread.lock();
    st.pending |= 1u64 << (cpu % 64);
    ensure_thread(ns, &mut st);
    ns.kthread.cv.notify_one();
    st.wake_at = None;
}

/// Registers `sk` to be looked at no later than `when`. `registered` is the
/// socket's current registration, updated here. `now` is the caller's time
/// (`Ctx::now`, from which it computed `when`), for the slack.
///
/// A registration that fires no later than `when` already covers it: as
/// Linux's `mod_timer` returns at once for a pending timer that need not
/// move, this is then a comparison, without the lock (inlined at the
/// caller; the rest is out of line).
#[inline]
pub(crate) fn sk_reset_timer(
    ns: &NsInner,
    sk: &Weak<Sock>,
    id: u64,
    registered: &mut TimerReg,
    when: Instant,
    now: Instant,
) {
    if let Some(r) = registered.when() {
        if r <= when {
            return;
        }
    }
    sk_add_timer(ns, sk, id, registered, when, now);
}

/// The part of [`sk_reset_timer`] that takes the timer list's lock.
#[inline(never)]
fn sk_add_timer(
    ns: &NsInner,
    sk: &Weak<Sock>,
    id: u64,
    registered: &mut TimerReg,
    when: Instant,
    now: Instant,
) {
    let mut st = ns.kthread.lock();
    // A registration moved earlier keeps its slot and its `Weak` (no
    // reference count touched: two atomic operations fewer on every
    // connection's FIN).
    let slot = match st.timers.live(*registered, id) {
        Some(slot) => {
            st.timers.move_earlier(slot, when);
            slot
        }
        None => st.timers.insert(when, id, sk.clone()),
    };
    *registered = TimerReg(Some((when, slot)));
    timer_added(ns, &mut st, when, now);
}

/// netem's queue has a packet due at `when` (netem.rs).
pub(crate) fn netem_timer(ns: &NsInner, when: Instant) {
    let mut st = ns.kthread.lock();
    if st.netem_at.is_none_or(|a| when < a) {
        st.netem_at = Some(when);
    }
    timer_added(ns, &mut st, when, Instant::now());
}

/// A deadline `when` was added at `now`: make sure someone looks then, or
/// within a `TICK` from now if that is later (the slack: see the module's
/// doc).
#[inline]
fn timer_added(ns: &NsInner, st: &mut KState, when: Instant, now: Instant) {
    if let Some(clock) = ns.clock.get() {
        if st.first_deadline() == Some(when) {
            clock.schedule(when);
        }
        return;
    }
    if ensure_thread(ns, st) {
        // A new thread looks at its timers first.
        return;
    }
    // Running (`None`), the thread looks at the list before it waits again.
    let Some(w) = st.wake_at else { return };
    st.armed = true;
    if needs_wakeup(w, when, now) {
        ns.kthread.cv.notify_one();
        // Woken, it looks at the whole list before it waits again: the
        // deadlines armed until it runs (on a busy machine, maybe
        // milliseconds later) need no notify of their own.
        st.wake_at = None;
    }
}

/// Whether a thread that will look again at `wake_at` must be woken for a
/// deadline `when` armed at `now`: only if it would look later than both the
/// deadline and one `TICK` after the arming. (`now` may be a little old, read
/// once per context: the thread is then woken a little more eagerly, never
/// later.)
fn needs_wakeup(wake_at: Instant, when: Instant, now: Instant) -> bool {
    when < wake_at && wake_at > now + TICK
}

/// Runs every timer due at `now` (the sockets' and netem's) and returns
/// the next deadline: the work of a [`Clock`](crate::Clock)'s driver.
pub(crate) fn run_timers(ns: &NsInner, now: Instant) -> Option<Instant> {
    tw_tick(ns, ns.ms(now));
    loop {
        let mut due: Vec<(Instant, Weak<Sock>)> = Vec::new();
        let netem_due;
        {
            let mut st = ns.kthread.lock();
            while let Some(e) = st.timers.pop_due(now) {
                due.push(e);
            }
            netem_due = st.netem_at.is_some_and(|a| a <= now);
            if netem_due {
                st.netem_at = None;
            }
            if due.is_empty() && !netem_due {
                return st.first_deadline();
            }
        }
        for (fired, w) in due {
            if let Some(sk) = w.upgrade() {
                crate::tcp::timer::tcp_timer_handler(ns, &sk, fired, now);
            }
        }
        if netem_due {
            netem_run(ns, now);
        }
    }
}

/// netem's deadline came (and was cleared): send what is due, and keep
/// the next deadline.
fn netem_run(ns: &NsInner, now: Instant) {
    if let Some(next) = crate::netem::netem_dequeue(ns, now) {
        let mut st = ns.kthread.lock();
        if st.netem_at.is_none_or(|a| next < a) {
            st.netem_at = Some(next);
        }
    }
}

/// `sk_stop_timer` for every timer of a socket going away.
pub(crate) fn sk_stop_timers(ns: &NsInner, id: u64, registered: &mut TimerReg) {
    let reg = std::mem::take(registered);
    if reg.when().is_some() {
        // No wakeup: the thread finds out when it next looks (at the
        // removed deadline, or when it has lingered idle long enough).
        let mut st = ns.kthread.lock();
        let w = st
            .timers
            .live(reg, id)
            .and_then(|slot| st.timers.remove(slot));
        drop(st);
        drop(w);
    }
}

/// Starts the thread if it is not running; returns whether it started it.
#[inline]
fn ensure_thread(ns: &NsInner, st: &mut KState) -> bool {
    if st.running {
        return false;
    }
    start_thread(ns, st)
}

#[cold]
fn start_thread(ns: &NsInner, st: &mut KState) -> bool {
    let Some(ns) = ns.arc() else { return false };
    let weak = Arc::downgrade(&ns);
    let k = ns.kthread.clone();
    let spawned = crate::sync::thread::Builder::new()
        .name(format!("lonet-ksoftirqd/{}", ns.id))
        .spawn(move || ksoftirqd(weak, k));
    st.running = spawned.is_ok();
    st.running
}

/// How long the thread stays, idle, before it exits.
const LINGER: Duration = Duration::from_millis(20);

/// The timers' slack, and the thread's period while timers are being armed:
/// one jiffy at HZ=250. A deadline closer than this to the moment it is
/// armed may fire up to this much after the arming, never before its time.
const TICK: Duration = Duration::from_millis(4);

/// Runs one piece of the thread's work. A panic in it (a user's waker,
/// woken from `tcp_v4_rcv` or a timer) is the user's bug, reported by the
/// panic hook as usual; it must not end the thread, or the namespace would
/// be left with backlog and timers nobody runs. The locks it poisoned are
/// taken as they are (sync.rs).
fn guarded(work: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
}

/// The thread. It holds the namespace only while it works: asleep, it
/// holds its own state (`k`) and a weak handle, so the namespace is freed
/// when its last user leaves, and `NsInner`'s drop wakes the thread to exit
/// (`namespace_gone`), as Linux frees a namespace once nothing holds it
/// (every socket, orphans included, holds it until freed). A `WeakNetns`
/// cannot bring it back then.
fn ksoftirqd(weak: Weak<NsInner>, k: Arc<Kthread>) {
    let mut due: Vec<(Instant, Weak<Sock>)> = Vec::new();
    let mut idle_since: Option<Instant> = None;
    loop {
        let Some(ns) = weak.upgrade() else { return };
        let now = Instant::now();
        // The periodic sweep of expired TIME_WAIT entries rides on the
        // thread while it runs for other work; the entries never keep it
        // alive (they are also swept lazily: tcp/minisocks.rs).
        tw_tick(&ns, ns.ms(now));
        let mut st = k.lock();
        st.wake_at = None;
        if st.pending != 0 {
            let pending = std::mem::take(&mut st.pending);
            drop(st);
            for cpu in 0..ns.softnet.len().min(64) {
                if pending & (1 << cpu) == 0 {
                    continue;
                }
                let mut complete = false;
                guarded(|| complete = crate::dev::net_rx_action(&ns, cpu));
                if !complete {
                    // Still more: run again (the kernel's ksoftirqd loop).
                    k.lock().pending |= 1 << cpu;
                }
            }
            idle_since = None;
            continue;
        }
        let clocked = ns.clock.get().is_some();
        if !clocked {
            while let Some(e) = st.timers.pop_due(now) {
                due.push(e);
            }
        }
        if !clocked && st.netem_at.is_some_and(|a| a <= now) {
            st.netem_at = None;
            idle_since = None;
            drop(st);
            let mut ran = false;
            guarded(|| {
                netem_run(&ns, now);
                ran = true;
            });
            if !ran {
                // Look at the queue again for its next deadline.
                k.lock().netem_at = Some(now);
            }
            continue;
        }
        if !due.is_empty() {
            idle_since = None;
            drop(st);
            for (fired, w) in due.drain(..) {
                if let Some(sk) = w.upgrade() {
                    guarded(|| crate::tcp::timer::tcp_timer_handler(&ns, &sk, fired, now));
                }
            }
            continue;
        }
        // Timers were armed while we waited: keep ticking (module doc).
        let busy = std::mem::take(&mut st.armed);
        if busy {
            idle_since = None;
        }
        // With a clock, the timers are its driver's: only backlog wakes us.
        let next = if clocked { None } else { st.first_deadline() };
        let mut wait = match next {
            None => {
                // Idle: linger a little before exiting, since the next
                // connection usually arms a timer within microseconds and
                // starting a thread costs tens of them.
                let idle = *idle_since.get_or_insert(now);
                let left = LINGER.saturating_sub(now.saturating_duration_since(idle));
                if left.is_zero() {
                    st.running = false;
                    return;
                }
                left
            }
            Some(when) => {
                idle_since = None;
                when.saturating_duration_since(now)
            }
        };
        if busy {
            wait = wait.min(TICK);
        }
        // What `timer_added` compares a new deadline with: when we will
        // really look (the capped wait, not the deadline).
        st.wake_at = Some(now + wait);
        // Let go of the namespace before sleeping (its drop, should this be
        // the last hold, takes this lock), then look again: a notify meanwhile
        // (backlog handed over, a deadline that needs us) cleared `wake_at`,
        // the namespace's drop set `gone`.
        drop(st);
        drop(ns);
        let st = k.lock();
        if !st.gone && st.wake_at.is_some() {
            drop(k.cv.wait_timeout(st, wait));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{needs_wakeup, TimerList, TimerReg, TICK};
    use crate::netns::Netns;
    use crate::sync::Weak;
    use crate::tcp::TcpState;
    use crate::tests::pair;
    use std::time::{Duration, Instant};

    #[test]
    fn test_the_timer_list_fires_by_deadline_then_socket_id() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut l = TimerList::default();
        let reg =
            |l: &mut TimerList, when, id| TimerReg(Some((when, l.insert(when, id, Weak::new()))));
        let a = reg(&mut l, ms(30), 1);
        let b = reg(&mut l, ms(10), 2);
        let c = reg(&mut l, ms(10), 1);
        let d = reg(&mut l, ms(20), 3);
        assert_eq!(l.first(), Some(ms(10)));
        // Moved earlier, removed, and a registration that is not (or no
        // longer) the socket's.
        let sa = l.live(a, 1).unwrap();
        l.move_earlier(sa, ms(5));
        let sd = l.live(d, 3).unwrap();
        assert!(l.remove(sd).is_some());
        assert_eq!(l.live(d, 3), None);
        assert_eq!(l.live(b, 1), None);
        // The freed slot is reused; the old registration stays dead.
        let e = reg(&mut l, ms(15), 4);
        assert_eq!(l.live(d, 3), None);
        assert!(l.live(e, 4).is_some());
        let mut fired = Vec::new();
        while let Some((when, _)) = l.pop_due(ms(12)) {
            fired.push(when);
        }
        assert_eq!(fired, [ms(5), ms(10), ms(10)]);
        assert_eq!(l.live(c, 1), None);
        assert_eq!(l.first(), Some(ms(15)));
    }

    #[test]
    fn test_the_timer_list_fires_as_a_sorted_map_would() {
        // Random arms, moves, removals and firings against a BTreeMap keyed
        // (deadline, socket id), the list this one replaced.
        use std::collections::BTreeMap;
        let t0 = Instant::now();
        let mut l = TimerList::default();
        let mut reference: BTreeMap<(Instant, u64), ()> = BTreeMap::new();
        let mut regs: Vec<TimerReg> = vec![TimerReg::default(); 16];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut now = t0;
        for _ in 0..20_000 {
            let id = rand(16);
            let reg = regs[id as usize];
            match rand(4) {
                0 | 1 => {
                    let when = now + Duration::from_micros(rand(1000));
                    match (reg.when(), l.live(reg, id)) {
                        (Some(r), Some(slot)) if when < r => {
                            reference.remove(&(r, id));
                            l.move_earlier(slot, when);
                            regs[id as usize] = TimerReg(Some((when, slot)));
                            reference.insert((when, id), ());
                        }
                        (_, Some(_)) => {}
                        (_, None) => {
                            let slot = l.insert(when, id, Weak::new());
                            regs[id as usize] = TimerReg(Some((when, slot)));
                            reference.insert((when, id), ());
                        }
                    }
                }
                2 => {
                    if let (Some(r), Some(slot)) = (reg.when(), l.live(reg, id)) {
                        assert!(l.remove(slot).is_some());
                        reference.remove(&(r, id));
                    }
                    regs[id as usize] = TimerReg::default();
                }
                _ => {
                    now += Duration::from_micros(rand(300));
                    loop {
                        let head = l.heap.first().map(|&i| l.slots[i as usize].id);
                        let Some((when, _)) = l.pop_due(now) else {
                            break;
                        };
                        let first = reference.pop_first().map(|(k, _)| k);
                        assert_eq!(Some((when, head.unwrap_or(u64::MAX))), first);
                    }
                    assert!(reference.first_key_value().is_none_or(|(k, _)| k.0 > now));
                }
            }
            assert_eq!(l.first(), reference.keys().next().map(|k| k.0));
            assert_eq!(l.heap.len(), reference.len());
        }
    }

    #[test]
    fn test_a_deadline_wakes_the_thread_only_if_it_would_look_over_a_tick_late() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Asleep towards 100 ms: a 40 ms delayed ACK or a timer due at once wakes it.
        assert!(needs_wakeup(now + ms(100), now + ms(40), now));
        assert!(needs_wakeup(now + ms(100), now, now));
        // A deadline at or after its wake-up never does.
        assert!(!needs_wakeup(now + ms(100), now + ms(100), now));
        assert!(!needs_wakeup(now + ms(100), now + ms(200), now));
        // Ticking (it looks within a tick): a deadline due at once waits for the
        // tick, as `jiffies + 0` waits for the next jiffy on Linux.
        assert!(!needs_wakeup(now + TICK, now, now));
        assert!(!needs_wakeup(now + ms(1), now, now));
        // A timer of a tick or more is never late: earlier than the wake-up
        // means a wakeup, whatever the wake-up is.
        for wake in [TICK + ms(1), ms(10), ms(100)] {
            for period in [TICK, ms(5), ms(40)] {
                assert_eq!(
                    needs_wakeup(now + wake, now + period, now),
                    period < wake,
                    "wake-up in {wake:?}, period {period:?}"
                );
            }
        }
    }

    #[test]
    fn test_the_delayed_ack_of_a_fin_on_a_connection_without_data_is_sent_by_the_thread() {
        // tcp_fin with ato 0 (no data was received): the delayed ACK is due at
        // once, and the thread sends it (no one else runs a timer here).
        let ns = Netns::new();
        let (_l, c, s) = pair(&ns);
        c.shutdown_write().unwrap();
        assert_eq!(s.state(), TcpState::CloseWait);
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.state() != TcpState::FinWait2 {
            assert!(
                Instant::now() < deadline,
                "the FIN's delayed ACK never came"
            );
            std::thread::yield_now();
        }
        assert_eq!(ns.tcp_stats().delayed_acks, 1);
    }
}
