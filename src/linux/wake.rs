//! Wake words: one per guest thread, non-zero when that thread's compiled code should return to
//! its dispatcher at the next check. A signal, a request to stop, or a change of code that other
//! threads may hold translations of wakes every thread; each thread clears only its own word, so
//! no thread can consume another's wake.
//!
//! Each word is the `Cpu::interrupt` of its thread's context, so that compiled code checks it
//! with one load from the context pointer. A fixed table holds their addresses, so that a host
//! signal handler can set them (atomic loads and stores only); a context whose word was in the
//! table is never freed (`dispatch::threads` keeps a finished thread's for the next one), since
//! a handler may still store to the word after its thread gave its slot back: a spurious wake,
//! which costs the thread a visit to its dispatcher.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

const SLOTS: usize = 4096;

static WORDS: [AtomicPtr<AtomicU64>; SLOTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
static CLAIMED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// One more than the highest slot ever claimed.
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// A thread's wake word, and its slot in the table.
#[derive(Clone, Copy)]
pub struct Wake {
    word: &'static AtomicU64,
    slot: usize,
}

impl Wake {
    /// Registers `word` as a new thread's, cleared; None when every slot is taken (the thread
    /// is then not created, as the kernel refuses one beyond its limits).
    pub fn claim(word: &'static AtomicU64) -> Option<Wake> {
        word.store(0, Ordering::SeqCst);
        let slot = CLAIMED.iter().position(|c| {
            c.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        WORDS[slot].store(word as *const AtomicU64 as *mut AtomicU64, Ordering::Release);
        HIGH.fetch_max(slot + 1, Ordering::AcqRel);
        Some(Wake { word, slot })
    }

    /// Gives the slot back when its thread ends.
    pub fn release(self) {
        WORDS[self.slot].store(std::ptr::null_mut(), Ordering::Release);
        CLAIMED[self.slot].store(false, Ordering::Release);
    }

    /// Whether the thread was woken since it last took its wake; clears the word.
    pub fn take(self) -> bool {
        self.word.load(Ordering::Relaxed) != 0 && self.word.swap(0, Ordering::SeqCst) != 0
    }
}

/// Wakes every guest thread (safe in a signal handler).
pub fn wake_all() {
    let high = HIGH.load(Ordering::Acquire).min(SLOTS);
    for w in &WORDS[..high] {
        let word = w.load(Ordering::Acquire);
        if !word.is_null() {
            // SAFETY: a word in the table lies in a context that is never freed (module doc).
            unsafe { (*word).store(1, Ordering::SeqCst) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word() -> &'static AtomicU64 {
        Box::leak(Box::new(AtomicU64::new(7)))
    }

    #[test]
    fn every_registered_word_is_woken_and_each_thread_takes_only_its_own() {
        let (a, b) = (Wake::claim(word()).unwrap(), Wake::claim(word()).unwrap());
        assert!(!a.take() && !b.take(), "a claimed word starts clear");
        wake_all();
        assert!(a.take());
        assert!(!a.take(), "taking clears the word");
        assert!(b.take());
        a.release();
        wake_all();
        assert!(!a.take(), "a released word is no longer in the table");
        assert!(b.take());
        b.release();
    }
}
