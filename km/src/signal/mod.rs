//! The payload's signals, kept by km as Linux keeps them for a process:
//! one disposition table, a process-wide pending set, and per thread a
//! mask and a pending set. Real-time signals queue, standard ones
//! coalesce. Whoever posts a signal picks a thread that can take it and
//! kicks it; the thread delivers at its next return to the payload.

pub mod forward;
pub mod frame;
mod info;
pub mod sigfd;
pub mod tty;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

pub use info::{code, SigInfo};

use crate::kick::{self, Attention};

pub const NSIG: usize = 64;
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// SIGKILL and SIGSTOP can be neither caught nor blocked.
pub const UNBLOCKABLE: u64 = bit(libc::SIGKILL) | bit(libc::SIGSTOP);
/// Signals the CPU raises, delivered before any other pending one.
const SYNCHRONOUS: u64 = bit(libc::SIGSEGV)
    | bit(libc::SIGBUS)
    | bit(libc::SIGILL)
    | bit(libc::SIGTRAP)
    | bit(libc::SIGFPE)
    | bit(libc::SIGSYS);

pub type Tid = i32;

/// The kernel's first real-time signal (libc's SIGRTMIN is higher: each
/// libc keeps a few for itself, and the payload's libc is not km's).
const KERNEL_SIGRTMIN: i32 = 32;

pub const fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// The kernel's `struct sigaction` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

// SAFETY: four u64s, any bit pattern is valid.
unsafe impl crate::mem::copy::Pod for KSigaction {}

/// What a signal does when it is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Ignore,
    Terminate,
    Stop,
    Handler(KSigaction),
}

/// Linux's default action for each signal.
pub fn default_action(sig: i32) -> Action {
    match sig {
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT => Action::Ignore,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => Action::Stop,
        _ => Action::Terminate,
    }
}

fn action_of(act: &KSigaction, sig: i32) -> Action {
    match act.handler {
        SIG_DFL => default_action(sig),
        SIG_IGN => Action::Ignore,
        _ => Action::Handler(*act),
    }
}

/// Signals waiting for delivery, each with its siginfo.
#[derive(Debug, Default)]
pub struct Pending {
    set: u64,
    queue: VecDeque<SigInfo>,
}

impl Pending {
    /// Queues `info`; a standard signal already pending is not queued twice.
    fn add(&mut self, info: SigInfo) {
        let sig = info.signo();
        if sig < KERNEL_SIGRTMIN && self.set & bit(sig) != 0 {
            return;
        }
        self.set |= bit(sig);
        self.queue.push_back(info);
    }

    /// Removes the oldest instance of `sig`.
    fn take(&mut self, sig: i32) -> Option<SigInfo> {
        let i = self.queue.iter().position(|i| i.signo() == sig)?;
        let info = self.queue.remove(i);
        if !self.queue.iter().any(|i| i.signo() == sig) {
            self.set &= !bit(sig);
        }
        info
    }

    /// The signal to take next among `allowed`: synchronous ones first,
    /// then the lowest number, as Linux picks.
    fn next(&self, allowed: u64) -> Option<i32> {
        let ready = self.set & allowed;
        let pick = if ready & SYNCHRONOUS != 0 { ready & SYNCHRONOUS } else { ready };
        (pick != 0).then(|| pick.trailing_zeros() as i32 + 1)
    }

    fn remove_all(&mut self, sig: i32) {
        self.set &= !bit(sig);
        self.queue.retain(|i| i.signo() != sig);
    }
}

/// How another thread reaches a vCPU thread.
#[derive(Debug)]
pub struct ThreadHandle {
    pub tid: Tid,
    pub attention: Attention,
}

impl ThreadHandle {
    pub fn kick(&self) {
        kick::kick(self.tid, &self.attention);
    }
}

#[derive(Debug)]
pub struct ThreadSignals {
    pub mask: u64,
    pub pending: Pending,
    /// Signals an rt_sigtimedwait in this thread waits for: they wake it
    /// even while blocked.
    pub waiting: u64,
    pub handle: Arc<ThreadHandle>,
}

impl ThreadSignals {
    fn wants(&self, sig: i32) -> bool {
        self.mask & bit(sig) == 0 || self.waiting & bit(sig) != 0
    }
}

/// The whole process's signal state, under one lock (as Linux's siglock).
#[derive(Debug)]
pub struct Signals {
    actions: [KSigaction; NSIG],
    shared: Pending,
    pub threads: BTreeMap<Tid, ThreadSignals>,
    pid: Tid,
    /// The process's signalfds, readable while one of their signals is
    /// pending.
    pub sigfds: sigfd::Registry,
}

/// What the caller must do after posting a signal.
#[derive(Debug, PartialEq, Eq)]
pub enum Posted {
    /// Queued (or discarded as ignored); the chosen thread was kicked.
    Done,
    /// SIGKILL: the process ends now.
    Kill,
}

impl Signals {
    pub fn new(pid: Tid) -> Signals {
        Signals {
            actions: [KSigaction::default(); NSIG],
            shared: Pending::default(),
            threads: BTreeMap::new(),
            pid,
            sigfds: sigfd::Registry::default(),
        }
    }

    /// A forked child's: the same dispositions and signalfds, nothing
    /// pending, no thread yet.
    pub fn forked(&self, pid: Tid) -> Signals {
        Signals { actions: self.actions, sigfds: self.sigfds.clone_weak(), ..Signals::new(pid) }
    }

    /// Makes each signalfd readable exactly while a signal of its mask is
    /// pending, for any thread or the process. Called after every change
    /// of what is pending; a no-op while there is no signalfd.
    pub fn sync_sigfds(&mut self) {
        if self.sigfds.is_empty() {
            return;
        }
        let pending = self.threads.values().fold(self.shared.set, |p, t| p | t.pending.set);
        self.sigfds.sync(pending);
    }

    pub fn action(&self, sig: i32) -> KSigaction {
        self.actions[sig as usize - 1]
    }

    /// Replaces a disposition. Setting SIG_IGN (or SIG_DFL for a signal
    /// ignored by default) discards what is pending of it, as on Linux.
    pub fn set_action(&mut self, sig: i32, act: KSigaction) {
        self.actions[sig as usize - 1] = act;
        if action_of(&act, sig) == Action::Ignore {
            self.shared.remove_all(sig);
            for t in self.threads.values_mut() {
                t.pending.remove_all(sig);
            }
            self.sync_sigfds();
        }
    }

    /// What /proc/<pid>/status shows of thread `tid` (0s if it is gone):
    /// its pending set, the process's, its mask, the signals ignored and
    /// those with a handler, bit n-1 for signal n.
    pub fn summary(&self, tid: Tid) -> [u64; 5] {
        let (pending, mask) = self.threads.get(&tid).map_or((0, 0), |t| (t.pending.set, t.mask));
        let (mut ignored, mut caught) = (0, 0);
        for (i, a) in self.actions.iter().enumerate() {
            match a.handler {
                SIG_DFL => {}
                SIG_IGN => ignored |= 1 << i,
                _ => caught |= 1 << i,
            }
        }
        [pending, self.shared.set, mask, ignored, caught]
    }

    pub fn thread(&mut self, tid: Tid) -> &mut ThreadSignals {
        self.threads.get_mut(&tid).expect("a live thread has signal state")
    }

    /// True if a signal ignored now is discarded at once; a blocked one
    /// stays pending because its disposition may change before unblocking.
    fn discard(&self, sig: i32, mask: u64) -> bool {
        mask & bit(sig) == 0 && action_of(&self.action(sig), sig) == Action::Ignore
    }

    /// True if queueing `info`, sent by the payload itself, would pass
    /// RLIMIT_SIGPENDING `limit`: Linux then refuses a real-time signal
    /// sent with a negative si_code (sigqueue, tkill) with EAGAIN; kill's
    /// SI_USER and the kernel's own signals always get their entry. Linux
    /// counts per user; km counts this process's queue.
    pub fn over_queue_limit(&self, info: &SigInfo, limit: u64) -> bool {
        if info.code() >= 0 || info.signo() < KERNEL_SIGRTMIN {
            return false;
        }
        let queued = self.shared.queue.len() + self.threads.values().map(|t| t.pending.queue.len()).sum::<usize>();
        queued as u64 >= limit
    }

    /// A signal for the whole process (kill, a host signal, a timer).
    pub fn post_process(&mut self, info: SigInfo) -> Posted {
        let sig = info.signo();
        if sig == libc::SIGKILL {
            return Posted::Kill;
        }
        let leader_mask = self.threads.get(&self.pid).or_else(|| self.threads.values().next()).map_or(0, |t| t.mask);
        if self.discard(sig, leader_mask) {
            return Posted::Done;
        }
        self.shared.add(info);
        self.sync_sigfds();
        // Like Linux: the main thread if it can take it, else any that can.
        let target = self
            .threads
            .get(&self.pid)
            .filter(|t| t.wants(sig))
            .or_else(|| self.threads.values().find(|t| t.wants(sig)));
        if let Some(t) = target {
            t.handle.kick();
        }
        Posted::Done
    }

    /// A signal for one thread (tgkill, a fault, a thread-directed timer).
    /// None if there is no such thread.
    pub fn post_thread(&mut self, tid: Tid, info: SigInfo) -> Option<Posted> {
        let sig = info.signo();
        if sig == libc::SIGKILL {
            return Some(Posted::Kill);
        }
        let mask = self.threads.get(&tid)?.mask;
        if self.discard(sig, mask) {
            return Some(Posted::Done);
        }
        let t = self.thread(tid);
        t.pending.add(info);
        if t.wants(sig) {
            t.handle.kick();
        }
        self.sync_sigfds();
        Some(Posted::Done)
    }

    /// A CPU fault's signal, which cannot be blocked or ignored away: if
    /// it is, its disposition goes back to the default (Linux's force_sig).
    pub fn force(&mut self, tid: Tid, info: SigInfo) {
        let sig = info.signo();
        let act = self.action(sig);
        let t = self.thread(tid);
        if t.mask & bit(sig) != 0 || act.handler == SIG_IGN {
            t.mask &= !bit(sig);
            self.actions[sig as usize - 1] = KSigaction::default();
        }
        self.thread(tid).pending.add(info);
        self.sync_sigfds();
    }

    /// The next signal thread `tid` must act on, with what to do; ignored
    /// ones are consumed on the way.
    pub fn dequeue(&mut self, tid: Tid) -> Option<(SigInfo, Action)> {
        // Ignored signals taken on the way count too.
        let r = self.dequeue_unsynced(tid);
        self.sync_sigfds();
        r
    }

    fn dequeue_unsynced(&mut self, tid: Tid) -> Option<(SigInfo, Action)> {
        loop {
            let t = self.threads.get_mut(&tid)?;
            let allowed = !t.mask;
            let info = match t.pending.next(allowed) {
                Some(sig) => t.pending.take(sig),
                None => {
                    let sig = self.shared.next(allowed)?;
                    self.shared.take(sig)
                }
            }?;
            let sig = info.signo();
            match action_of(&self.action(sig), sig) {
                Action::Ignore => continue,
                Action::Handler(act) => {
                    if act.flags & SA_RESETHAND != 0 {
                        self.actions[sig as usize - 1] = KSigaction::default();
                    }
                    return Some((info, Action::Handler(act)));
                }
                other => return Some((info, other)),
            }
        }
    }

    /// True if thread `tid` has a signal it can take now.
    pub fn deliverable(&self, tid: Tid) -> bool {
        self.threads.get(&tid).is_some_and(|t| (t.pending.set | self.shared.set) & !t.mask != 0)
    }

    /// The action the next deliverable signal of `tid` would get, without
    /// taking it (decides whether an interrupted call restarts).
    pub fn peek(&self, tid: Tid) -> Option<Action> {
        let t = self.threads.get(&tid)?;
        let allowed = !t.mask;
        let sig = t.pending.next(allowed).or_else(|| self.shared.next(allowed))?;
        Some(action_of(&self.action(sig), sig))
    }

    /// Takes the first pending signal of `tid` in `set` (rt_sigtimedwait),
    /// blocked or not.
    pub fn take_from(&mut self, tid: Tid, set: u64) -> Option<SigInfo> {
        let r = self.take_unsynced(tid, set);
        if r.is_some() {
            self.sync_sigfds();
        }
        r
    }

    fn take_unsynced(&mut self, tid: Tid, set: u64) -> Option<SigInfo> {
        let t = self.threads.get_mut(&tid)?;
        if let Some(sig) = t.pending.next(set) {
            return t.pending.take(sig);
        }
        let sig = self.shared.next(set)?;
        self.shared.take(sig)
    }

    /// Pending signals of `tid`, its own and the process's.
    pub fn pending(&self, tid: Tid) -> u64 {
        self.threads.get(&tid).map_or(0, |t| t.pending.set) | self.shared.set
    }

    /// What exec keeps pending: the process's signals, then thread
    /// `tid`'s (true), oldest first. POSIX timers' go, as their timers do.
    pub fn pending_for_exec(&self, tid: Tid) -> Vec<(bool, SigInfo)> {
        let own = self.threads.get(&tid).map(|t| &t.pending.queue);
        let keep = |i: &&SigInfo| i.code() != libc::SI_TIMER;
        let shared = self.shared.queue.iter().filter(keep).map(|i| (false, *i));
        shared.chain(own.into_iter().flatten().filter(keep).map(|i| (true, *i))).collect()
    }

    /// Queues again, after exec, what `pending_for_exec` kept.
    pub fn restore_pending(&mut self, tid: Tid, pending: &[(bool, SigInfo)]) {
        for &(own, info) in pending {
            match self.threads.get_mut(&tid) {
                Some(t) if own => t.pending.add(info),
                _ => self.shared.add(info),
            }
        }
        self.sync_sigfds();
    }

    /// Sets `tid`'s mask; signals it now blocks that are pending for the
    /// process go to another thread that can take them.
    pub fn set_mask(&mut self, tid: Tid, mask: u64) {
        let mask = mask & !UNBLOCKABLE;
        let old = std::mem::replace(&mut self.thread(tid).mask, mask);
        let newly_blocked = mask & !old & self.shared.set;
        for sig in (1..=NSIG as i32).filter(|s| newly_blocked & bit(*s) != 0) {
            if let Some(t) = self.threads.values().find(|t| t.wants(sig)) {
                t.handle.kick();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Signals {
        let mut s = Signals::new(10);
        for tid in [10, 11] {
            let handle = Arc::new(ThreadHandle { tid, attention: Attention::default() });
            s.threads.insert(tid, ThreadSignals { mask: 0, pending: Pending::default(), waiting: 0, handle });
        }
        s
    }

    fn handler() -> KSigaction {
        KSigaction { handler: 0x1000, ..Default::default() }
    }

    #[test]
    fn standard_signals_coalesce_realtime_queue() {
        let mut p = Pending::default();
        let rt = KERNEL_SIGRTMIN; // musl's SIGTIMER: queues like any RT signal
        for v in 0..3 {
            p.add(SigInfo::user(libc::SIGUSR1, 1, 0));
            p.add(SigInfo::queued(rt, libc::SI_QUEUE, 1, 0, v));
        }
        assert_eq!(p.queue.len(), 4);
        assert_eq!(p.take(libc::SIGUSR1).map(|i| i.signo()), Some(libc::SIGUSR1));
        assert_eq!(p.take(libc::SIGUSR1), None);
        let values: Vec<u64> = (0..3).map(|_| p.take(rt).unwrap().value()).collect();
        assert_eq!(values, [0, 1, 2]);
        assert_eq!(p.set, 0);
    }

    #[test]
    fn synchronous_signals_go_first() {
        let mut p = Pending::default();
        p.add(SigInfo::user(libc::SIGHUP, 1, 0));
        p.add(SigInfo::fault(libc::SIGSEGV, 1, 0));
        assert_eq!(p.next(!0), Some(libc::SIGSEGV));
        assert_eq!(p.next(!bit(libc::SIGSEGV)), Some(libc::SIGHUP));
    }

    #[test]
    fn ignored_signals_are_discarded_unless_blocked() {
        let mut s = state();
        s.post_process(SigInfo::user(libc::SIGCHLD, 1, 0));
        assert_eq!(s.pending(10), 0);
        s.thread(10).mask = bit(libc::SIGCHLD);
        s.post_process(SigInfo::user(libc::SIGCHLD, 1, 0));
        assert_eq!(s.pending(10), bit(libc::SIGCHLD));
        // Unblocked while still ignored: consumed, never delivered.
        s.set_mask(10, 0);
        assert_eq!(s.dequeue(10), None);
    }

    #[test]
    fn process_signal_waits_for_a_thread_that_takes_it() {
        let mut s = state();
        s.set_action(libc::SIGUSR1, handler());
        s.thread(10).mask = bit(libc::SIGUSR1);
        s.thread(11).mask = bit(libc::SIGUSR1);
        s.post_process(SigInfo::user(libc::SIGUSR1, 1, 0));
        assert!(!s.deliverable(10) && !s.deliverable(11));
        s.set_mask(11, 0);
        assert!(s.deliverable(11));
        let (info, action) = s.dequeue(11).unwrap();
        assert_eq!(info.signo(), libc::SIGUSR1);
        assert_eq!(action, Action::Handler(handler()));
        assert_eq!(s.pending(10), 0);
    }

    #[test]
    fn resethand_restores_the_default() {
        let mut s = state();
        s.set_action(libc::SIGUSR2, KSigaction { flags: SA_RESETHAND, ..handler() });
        s.post_thread(11, SigInfo::user(libc::SIGUSR2, 1, 0));
        assert!(matches!(s.dequeue(11), Some((_, Action::Handler(_)))));
        assert_eq!(s.action(libc::SIGUSR2), KSigaction::default());
    }

    #[test]
    fn forced_faults_unblock_and_reset() {
        let mut s = state();
        s.set_action(libc::SIGSEGV, KSigaction { handler: SIG_IGN, ..Default::default() });
        s.thread(11).mask = bit(libc::SIGSEGV);
        s.force(11, SigInfo::fault(libc::SIGSEGV, 1, 0x10));
        assert_eq!(s.dequeue(11).map(|(_, a)| a), Some(Action::Terminate));
    }

    #[test]
    fn sigkill_is_never_queued() {
        let mut s = state();
        assert_eq!(s.post_process(SigInfo::user(libc::SIGKILL, 1, 0)), Posted::Kill);
        assert_eq!(s.post_thread(12, SigInfo::user(libc::SIGUSR1, 1, 0)), None);
    }
}
