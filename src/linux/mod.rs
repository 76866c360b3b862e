//! The Linux personality: system calls forwarded to the host after guest pointers are checked
//! and translated; memory syscalls emulated on the guest reservation.

pub mod faults;
pub mod host;
pub mod process;
pub mod signals;
pub mod syscalls;

pub use process::{CloneArgs, ExecRequest};
pub use syscalls::{Process, SysResult};
