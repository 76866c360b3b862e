//! The Linux personality: system calls forwarded to the host after guest pointers are checked
//! and translated; memory syscalls emulated on the guest reservation.
//!
//! Layers, each importing only from those before it: `process` (the per-process state) <-
//! `signals` (delivery and the guest's signal frames) <- `syscalls` (the table and handlers).

pub mod faults;
pub mod host;
pub mod process;
pub mod signals;
pub mod syscalls;
pub mod wake;

pub use process::Process;
pub use syscalls::{CloneArgs, ExecRequest, SysResult};
