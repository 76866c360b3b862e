//! Faults raised by Kiln's own execution of an instruction (`Cpu::fault`: a divide error, a
//! bad guest memory access, ud2, #GP, #XM...) turned into the signal the kernel would send:
//! signal number, `si_code`, `si_addr`, and the sigcontext's error code, trap number and cr2.

use crate::cpu::{fault, fault_info, Cpu};
use crate::mem::Memory;

/// The signal for a fault, as the kernel would deliver it.
pub struct FaultSignal {
    pub sig: i32,
    pub code: i32,
    pub addr: u64,
    /// sigcontext err, trapno and cr2.
    pub trap: [u64; 3],
}

const SI_KERNEL: i32 = 0x80;

/// The signal for the fault the CPU records, with `rip` moved to where the kernel's saved
/// context would have it (the faulting instruction; after it for int3, a trap). None for a
/// form Kiln does not implement.
pub fn fault_signal(cpu: &mut Cpu, mem: &Memory) -> Option<FaultSignal> {
    let at = cpu.fault_addr;
    let signal = |sig, code, addr, trap| Some(FaultSignal { sig, code, addr, trap });
    match cpu.fault {
        fault::DIVIDE => signal(libc::SIGFPE, 1, at, [0, 0, 0]), // FPE_INTDIV, #DE
        fault::INT3 => {
            cpu.rip = at + 1;
            signal(libc::SIGTRAP, SI_KERNEL, 0, [0, 3, 0]) // #BP
        }
        fault::HALT | fault::GP => signal(libc::SIGSEGV, SI_KERNEL, 0, [0, 13, 0]), // #GP
        fault::UD => signal(libc::SIGILL, 2, at, [0, 6, 0]),                        // ILL_ILLOPN, #UD
        fault::SIMD => signal(libc::SIGFPE, simd_code(cpu.mxcsr as u64), at, [0, 19, 0]), // #XM
        fault::MEMORY => Some(memory_fault(cpu, mem)),
        _ => None,
    }
}

/// #XM: the code names the first unmasked flag set, in the kernel's order.
fn simd_code(mxcsr: u64) -> i32 {
    let e = mxcsr & !(mxcsr >> 7) & 0x3f;
    const ORDER: [(u64, i32); 5] = [
        (1, 7),    // invalid: FPE_FLTINV
        (4, 3),    // divide by zero: FPE_FLTDIV
        (8, 4),    // overflow: FPE_FLTOVF
        (0x12, 5), // underflow or denormal: FPE_FLTUND
        (0x20, 6), // precision: FPE_FLTRES
    ];
    ORDER
        .iter()
        .find(|(bits, _)| e & bits != 0)
        .map_or(0, |&(_, code)| code)
}

/// A guest memory access that faulted on the host: SIGSEGV (SEGV_MAPERR or SEGV_ACCERR), or
/// SIGBUS beyond the end of a mapped file. The unit (or block) stopped before the faulting
/// instruction: execution resumes there.
fn memory_fault(cpu: &mut Cpu, mem: &Memory) -> FaultSignal {
    let at = cpu.fault_addr;
    cpu.rip = cpu.rip.wrapping_add(cpu.insn_off);
    let write = cpu.fault_info & fault_info::WRITE != 0;
    let fetch = cpu.fault_info & fault_info::FETCH != 0;
    let mapped = mem.mapped(at);
    crate::klog!(
        "signal",
        "guest {} of {at:#x} at {:#x} faulted",
        if fetch {
            "fetch"
        } else if write {
            "write"
        } else {
            "read"
        },
        cpu.rip
    );
    if cpu.fault_info & fault_info::BUS != 0 {
        let err = 4 | (write as u64) << 1;
        return FaultSignal {
            sig: libc::SIGBUS,
            code: 2, // BUS_ADRERR
            addr: at,
            trap: [err, 14, at],
        };
    }
    // Error code: user, write, protection, instruction fetch.
    let err = 4 | (write as u64) << 1 | mapped as u64 | (fetch as u64) << 4;
    FaultSignal {
        sig: libc::SIGSEGV,
        code: if mapped { 2 } else { 1 },
        addr: at,
        trap: [err, 14, at],
    }
}

#[cfg(test)]
mod tests {
    use super::simd_code;

    #[test]
    fn simd_code_names_the_first_unmasked_flag_in_the_kernels_order() {
        // Everything masked: no code.
        assert_eq!(simd_code(0x1f80 | 0x3f), 0);
        // Divide by zero unmasked and raised, with invalid raised but masked.
        assert_eq!(simd_code((0x1f80 & !0x200) | 0x5), 3);
        // Invalid wins over overflow when both are unmasked.
        assert_eq!(simd_code(0x9), 7);
        // Denormal reports as underflow.
        assert_eq!(simd_code(0x2), 5);
        assert_eq!(simd_code(0x20), 6);
    }
}
