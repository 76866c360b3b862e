//! What the slow helper remembers per guest address, in each thread: instructions it decoded,
//! so that a slow instruction in a loop is not decoded again at every pass.

use crate::mem::AddrMap;

/// At most this many entries per memo and thread: all are forgotten at once when it is full,
/// so that code generated at ever new addresses (a guest's own JIT) cannot grow it forever.
const REMEMBERED: usize = 1 << 16;

/// A value per guest address, bounded (`REMEMBERED`).
pub struct Memo<V>(AddrMap<V>);

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo(AddrMap::default())
    }
}

impl<V: Copy> Memo<V> {
    /// The value remembered at `rip`, if `still` holds of it (the code there is unchanged).
    pub fn get(&self, rip: u64, still: impl FnOnce(&V) -> bool) -> Option<V> {
        self.0.get(&rip).filter(|v| still(v)).copied()
    }

    /// Remembers `v` at `rip`, forgetting everything else first when the memo is full.
    pub fn remember(&mut self, rip: u64, v: V) {
        if self.0.len() >= REMEMBERED {
            self.0.clear();
        }
        self.0.insert(rip, v);
    }

    pub fn forget(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memo_forgets_everything_before_it_grows() {
        let mut m = Memo::default();
        for rip in 0..REMEMBERED as u64 {
            m.remember(rip, rip);
        }
        assert_eq!(m.get(5, |_| true), Some(5));
        assert_eq!(m.get(5, |&v| v != 5), None);
        m.remember(u64::MAX, 1);
        assert_eq!(
            (m.0.len(), m.get(5, |_| true), m.get(u64::MAX, |_| true)),
            (1, None, Some(1))
        );
    }
}
