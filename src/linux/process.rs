//! The state Kiln keeps per guest process: its memory, its executable's identity, the auxiliary
//! vector, the executable file mappings, and the guest's signal state. Everything else in
//! `linux` builds on this module; it imports nothing from its siblings.

use crate::mem::Memory;

/// The guest's signal state, shared by its threads.
pub struct SignalState {
    /// Per signal number: the guest's sigaction (handler, flags, restorer, mask).
    pub actions: Vec<[u64; 4]>,
    /// The blocked-signal mask.
    pub blocked: u64,
    /// The alternate signal stack (base, size).
    pub alt_stack: [u64; 2],
    /// The mask to restore when the handler interrupting an rt_sigsuspend returns.
    pub suspended_mask: Option<u64>,
}

impl Default for SignalState {
    fn default() -> Self {
        SignalState {
            actions: vec![[0; 4]; 65],
            blocked: 0,
            alt_stack: [0; 2],
            suspended_mask: None,
        }
    }
}

/// An executable mapping of a file: guest [start, end) from `offset` in the file at `path`,
/// which was the file with this (device, inode) when it was mapped.
#[derive(Clone, Debug)]
pub struct ExecMap {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: std::path::PathBuf,
    pub file_id: (u64, u64),
}

/// Per-process state the syscall layer keeps.
pub struct Process {
    pub mem: Memory,
    /// Absolute path of the guest executable (for /proc/self/exe).
    pub exe: String,
    /// The auxiliary vector given to the program (for /proc/self/auxv).
    pub auxv: Vec<u8>,
    /// Executable file mappings: the modules whose translations the cache can keep.
    pub exec_maps: std::sync::Mutex<Vec<ExecMap>>,
    /// The guest's signal actions, mask and alternate stack.
    pub(super) signals: std::sync::Mutex<SignalState>,
}

impl Process {
    pub fn new(mem: Memory, exe: String) -> Process {
        Process {
            mem,
            exe,
            auxv: Vec::new(),
            exec_maps: Default::default(),
            signals: Default::default(),
        }
    }
}
