//! Wake words: one per guest thread, non-zero when that thread's compiled code should return to
//! its dispatcher at the next unit entry (`Cpu::interrupt` points at it). A signal, a request to
//! stop, or a change of code that other threads may hold translations of wakes every thread;
//! each thread clears only its own word, so no thread can consume another's wake.
//!
//! The words are a fixed table so that a host signal handler can set them (atomic stores only).
//! Threads beyond the table share one overflow word (they may then take each other's wakes and
//! notice a request only at their next return to the dispatcher).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

const SLOTS: usize = 4096;

static WORDS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static CLAIMED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// One more than the highest slot ever claimed.
static HIGH: AtomicUsize = AtomicUsize::new(0);
static OVERFLOW: AtomicU64 = AtomicU64::new(0);

/// A thread's wake word.
#[derive(Clone, Copy)]
pub struct Wake(&'static AtomicU64);

impl Wake {
    /// Claims a word for a new thread.
    pub fn claim() -> Wake {
        for (i, c) in CLAIMED.iter().enumerate() {
            if c.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                HIGH.fetch_max(i + 1, Ordering::AcqRel);
                WORDS[i].store(0, Ordering::SeqCst);
                return Wake(&WORDS[i]);
            }
        }
        Wake(&OVERFLOW)
    }

    /// Gives the word back when its thread ends.
    pub fn release(self) {
        let base = WORDS.as_ptr() as usize;
        let at = (self.0 as *const AtomicU64 as usize).wrapping_sub(base) / std::mem::size_of::<AtomicU64>();
        if let Some(c) = CLAIMED.get(at) {
            c.store(false, Ordering::Release);
        }
    }

    /// The address compiled code loads (`Cpu::interrupt`).
    pub fn addr(self) -> u64 {
        self.0 as *const AtomicU64 as u64
    }

    /// Whether the thread was woken since it last took its wake; clears the word.
    pub fn take(self) -> bool {
        self.0.load(Ordering::Relaxed) != 0 && self.0.swap(0, Ordering::SeqCst) != 0
    }

    /// Wakes this thread only.
    pub fn wake(self) {
        self.0.store(1, Ordering::SeqCst);
    }
}

/// Wakes every guest thread (safe in a signal handler).
pub fn wake_all() {
    let high = HIGH.load(Ordering::Acquire).min(SLOTS);
    for w in &WORDS[..high] {
        w.store(1, Ordering::SeqCst);
    }
    OVERFLOW.store(1, Ordering::SeqCst);
}
