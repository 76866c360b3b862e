//! Guest threads and forks: a thread (clone with CLONE_VM|CLONE_THREAD) is a host thread with
//! its own dispatcher, sharing the process, the JIT and the compile workers; a forked child
//! rebuilds what did not survive the fork.

use super::{compile, Engine, Outcome};
use crate::cpu::Cpu;
use crate::linux::CloneArgs;
use std::sync::{mpsc, Arc, Mutex};

/// The contexts of finished threads, for new ones: a context whose wake word was registered is
/// never freed (`linux::wake`).
static RETIRED: Mutex<Vec<Box<Cpu>>> = Mutex::new(Vec::new());

/// A context for a new thread, a copy of `cpu`: a finished thread's where there is one.
fn context_like(cpu: &Cpu) -> Box<Cpu> {
    // try_lock: in a forked child the lock may be held by a thread that did not survive.
    match RETIRED.try_lock().ok().and_then(|mut r| r.pop()) {
        Some(mut c) => {
            *c = cpu.clone();
            c
        }
        None => Box::new(cpu.clone()),
    }
}

/// Keeps a finished thread's context (leaked where the pool cannot be reached).
fn retire(cpu: Box<Cpu>) {
    match RETIRED.try_lock() {
        Ok(mut r) => r.push(cpu),
        Err(_) => {
            Box::leak(cpu);
        }
    }
}

impl Drop for Engine {
    /// Gives the thread's wake word back and keeps its context for another thread.
    fn drop(&mut self) {
        self.wake.release();
        retire(std::mem::replace(&mut self.cpu, Cpu::new()));
    }
}

const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
const CLONE_CHILD_SETTID: u64 = 0x0100_0000;

impl Engine {
    /// Starts a guest thread; returns its tid (or -EAGAIN).
    pub(super) fn spawn_thread(&mut self, c: CloneArgs) -> i64 {
        let mut cpu = context_like(&self.cpu);
        cpu.gpr[0] = 0;
        cpu.gpr[1] = cpu.rip;
        if c.stack != 0 {
            cpu.gpr[4] = c.stack;
        }
        if c.flags & CLONE_SETTLS != 0 {
            cpu.fs_base = c.tls;
        }
        cpu.insns_compiled = 0;
        let (proc, shared, cache) = (self.proc.clone(), self.shared.clone(), self.cache.clone());
        let clear_tid = (c.flags & CLONE_CHILD_CLEARTID != 0 && c.ctid != 0).then_some(c.ctid);
        let set_tid = (c.flags & CLONE_CHILD_SETTID != 0 && c.ctid != 0).then_some(c.ctid);
        let parent_tid = (c.flags & CLONE_PARENT_SETTID != 0 && c.ptid != 0).then_some(c.ptid);
        // As the kernel refuses a thread beyond its limits.
        let Some(wake) = super::claim_wake(&cpu) else {
            retire(cpu);
            return -(libc::EAGAIN as i64);
        };
        // Handed over through a slot the parent keeps, so that a thread that never starts
        // leaves the context to retire rather than to free.
        let handed = Arc::new(Mutex::new(Some(cpu)));
        let slot = handed.clone();
        let (tx, rx) = mpsc::channel::<i64>();
        let spawned = std::thread::Builder::new().name("kiln-guest".into()).spawn(move || {
            let Some(cpu) = slot.lock().ok().and_then(|mut c| c.take()) else {
                return;
            };
            let tid = rustix::thread::gettid().as_raw_pid() as i64;
            // Both tid words are written before the new thread runs guest code, as the
            // kernel does (libc reads its own tid from the parent's word at once).
            for a in [set_tid, parent_tid].into_iter().flatten() {
                let _ = proc.mem.write_bytes(a, &(tid as u32).to_le_bytes());
            }
            let mut e = Engine::assemble(cpu, wake, proc, shared, cache);
            e.clear_tid = clear_tid;
            let _ = tx.send(tid);
            e.run_thread();
        });
        match spawned {
            Ok(_) => rx.recv().unwrap_or(-(libc::EAGAIN as i64)),
            Err(_) => {
                wake.release();
                if let Some(cpu) = handed.lock().ok().and_then(|mut c| c.take()) {
                    retire(cpu);
                }
                -(libc::EAGAIN as i64)
            }
        }
    }

    /// The body of a guest thread: runs until the thread exits; the process ends only through
    /// exit_group, a fatal signal or execve.
    fn run_thread(&mut self) {
        match self.run() {
            Outcome::Exit(_) => {}
            Outcome::ExitGroup(c) => {
                self.finish_process();
                std::process::exit(c & 0xff)
            }
            Outcome::Signal(sig) => {
                self.finish_process();
                crate::linux::signals::die_of(sig)
            }
            Outcome::Exec(_) => {
                eprintln!("kiln: execve from a secondary thread is not supported yet");
                std::process::exit(127);
            }
        }
        self.end_thread();
        crate::linux::syscalls::exit_thread(&self.proc.mem, self.clear_tid);
    }

    /// In a forked child: the compile workers and the background results did not survive the
    /// fork; start them afresh. Units that were waiting for a compile may be queued again.
    pub fn after_fork_child(&mut self) {
        std::mem::forget(std::mem::replace(&mut self.shared.pool, compile::Workers::on_demand()));
        self.compiles.after_fork();
        self.shared.registry = Arc::new(self.shared.registry.for_forked_child());
        self.compiles.seen = 0;
        // Libraries with global worker threads (the cache index among them) may hold locks
        // that no thread of the child will release: a forked child does not write the cache
        // (it usually execs at once, and the new program writes its own).
        self.cache = None;
        for i in 0..self.units.list.len() {
            let u = &self.units.list[i];
            if u.code.is_none() && u.block.is_some() {
                self.units.set_queued(i, false);
            }
        }
    }
}
