//! The state Kiln keeps per guest process: its memory, its executable's identity, the auxiliary
//! vector, the executable file mappings, and the guest's signal state. Everything else in
//! `linux` builds on this module; it imports nothing from its siblings.

use crate::mem::Memory;

/// Guest signal actions, the mask, the alternate stack (base, size), and the mask to restore
/// after an rt_sigsuspend.
pub type SignalState = (Vec<[u64; 4]>, u64, [u64; 2], Option<u64>);

/// Per-process state the syscall layer keeps.
pub struct Process {
    pub mem: Memory,
    /// Absolute path of the guest executable (for /proc/self/exe).
    pub exe: String,
    /// The auxiliary vector given to the program (for /proc/self/auxv).
    pub auxv: Vec<u8>,
    /// Executable file mappings (start, end, file offset, path): the modules whose
    /// translations the cache can keep.
    pub exec_maps: std::sync::Mutex<Vec<(u64, u64, u64, std::path::PathBuf)>>,
    /// Guest signal actions (handler, flags, restorer, mask), the signal mask, and the
    /// alternate stack (base, size), and the mask to restore after an rt_sigsuspend.
    pub(super) signals: std::sync::Mutex<SignalState>,
}

impl Process {
    pub fn new(mem: Memory, exe: String) -> Process {
        Process {
            mem,
            exe,
            auxv: Vec::new(),
            exec_maps: Default::default(),
            signals: std::sync::Mutex::new((vec![[0; 4]; 65], 0, [0; 2], None)),
        }
    }
}
