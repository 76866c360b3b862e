//! The service's work queue: blocks runs executed only in the baseline tier, each once however
//! many runs sent it, ordered so that what most runs executed (and, among equals, what they
//! executed most, then what arrived last) is compiled first. A burst of runs that each bring
//! their own cold code cannot starve the code they all share.

use cache_format::{Hash, WorkBlock};
use std::collections::{BinaryHeap, HashMap};

/// A block's identity: where it lies in its module and what its bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    pub module: Hash,
    pub offset: u64,
    pub guest_hash: Hash,
}

impl BlockKey {
    pub fn of(b: &WorkBlock) -> BlockKey {
        BlockKey {
            module: b.module,
            offset: b.offset.0,
            guest_hash: *blake3::hash(&b.bytes).as_bytes(),
        }
    }
}

/// Compiled first: more runs, then more executions, then later arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Priority {
    runs: u32,
    executions: u64,
    arrival: u64,
}

struct Item {
    block: WorkBlock,
    priority: Priority,
    /// Taken for compiling: not handed out again.
    taken: bool,
    /// The journals (by the caller's numbers) that sent it.
    journals: Vec<usize>,
}

#[derive(Default)]
pub struct WorkQueue {
    items: HashMap<BlockKey, Item>,
    /// Every priority an item has had; entries that no longer match their item are skipped.
    heap: BinaryHeap<(Priority, BlockKey)>,
    arrivals: u64,
    waiting: usize,
}

impl WorkQueue {
    /// Adds a block sent by `journal`; a block already queued (or being compiled) gains the
    /// run instead.
    pub fn add(&mut self, key: BlockKey, block: WorkBlock, journal: usize) {
        self.arrivals += 1;
        let arrival = self.arrivals;
        let executions = block.executions;
        let item = self.items.entry(key).or_insert_with(|| {
            self.waiting += 1;
            Item {
                block,
                priority: Priority {
                    runs: 0,
                    executions: 0,
                    arrival,
                },
                taken: false,
                journals: Vec::new(),
            }
        });
        item.journals.push(journal);
        item.priority.runs += 1;
        item.priority.executions = item.priority.executions.saturating_add(executions);
        item.priority.arrival = arrival;
        if !item.taken {
            self.heap.push((item.priority, key));
        }
    }

    /// Takes up to `n` blocks, most wanted first, for compiling.
    pub fn take(&mut self, n: usize) -> Vec<(BlockKey, WorkBlock)> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some((p, key)) = self.heap.pop() else { break };
            let Some(item) = self.items.get_mut(&key) else { continue };
            if item.taken || item.priority != p {
                continue; // a stale entry: the block gained runs since, or is taken
            }
            item.taken = true;
            self.waiting -= 1;
            out.push((key, item.block.clone()));
        }
        out
    }

    /// Forgets a block (compiled and written, or failed); the journals that sent it.
    pub fn finish(&mut self, key: &BlockKey) -> Vec<usize> {
        match self.items.remove(key) {
            Some(item) => {
                if !item.taken {
                    self.waiting -= 1;
                }
                item.journals
            }
            None => Vec::new(),
        }
    }

    /// Blocks queued or being compiled.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Blocks waiting to be taken.
    pub fn waiting(&self) -> usize {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_format::ModuleOffset;

    fn block(offset: u64, executions: u64) -> WorkBlock {
        WorkBlock {
            module: [1; 32],
            offset: ModuleOffset(offset),
            load_base: 0,
            bytes: vec![0xc3, offset as u8],
            executions,
        }
    }

    #[test]
    fn what_more_runs_executed_is_compiled_first_and_only_once() {
        let mut q = WorkQueue::default();
        // Run 0 brings its own cold code (executed often) and shared code; runs 1-3 the
        // shared code again.
        for off in 0..5 {
            let b = block(0x100 + off, 1000);
            q.add(BlockKey::of(&b), b, 0);
        }
        for run in 0..4 {
            let b = block(0x10, 1);
            q.add(BlockKey::of(&b), b, run);
        }
        assert_eq!((q.len(), q.waiting()), (6, 6));
        let first = q.take(1);
        assert_eq!(first[0].1.offset.0, 0x10, "the block four runs shared comes first");
        // Sent again while being compiled: not handed out twice, one more journal to settle.
        let b = block(0x10, 1);
        q.add(BlockKey::of(&b), b, 7);
        let rest = q.take(10);
        assert_eq!(rest.len(), 5);
        assert!(rest.iter().all(|(_, b)| b.offset.0 != 0x10));
        assert_eq!(q.finish(&first[0].0), vec![0, 1, 2, 3, 7]);
        for (k, _) in &rest {
            assert_eq!(q.finish(k), vec![0]);
        }
        assert_eq!((q.len(), q.waiting()), (0, 0));
    }

    #[test]
    fn among_equals_executions_then_arrival_decide() {
        let mut q = WorkQueue::default();
        for (off, ex) in [(1, 5), (2, 50), (3, 5)] {
            let b = block(off, ex);
            q.add(BlockKey::of(&b), b, 0);
        }
        let order: Vec<u64> = q.take(3).iter().map(|(_, b)| b.offset.0).collect();
        assert_eq!(order, vec![2, 3, 1]);
    }
}
