//! Baseline tier: runs decoded blocks through the semantics over concrete values.

use crate::cpu::{exit, Cpu};
use crate::decode::Block;
use crate::semantics::{self, concrete::Live};

/// Runs one block; returns the exit code and leaves the next rip in `cpu.rip`.
pub fn run_block(cpu: &mut Cpu, block: &Block) -> u64 {
    let mut e = Live::new(cpu);
    for ((ins, &live), &route) in block.insns.iter().zip(&block.flags_live).zip(&block.routes) {
        e.flags_live = live;
        semantics::exec_routed(&mut e, ins, route);
        if let Some(t) = e.jumped {
            let code = e.exit;
            e.cpu.rip = t;
            return code;
        }
    }
    cpu.rip = block.start + block.len;
    exit::NEXT
}
