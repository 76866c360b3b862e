//! Kiln: an x86-64 Linux user-mode emulator whose translations outlive the process. The
//! binary (`src/main.rs`) is a thin shell over `cli`; every other module is usable (and unit
//! tested) as a library. The layering is drawn in `docs/ARCHITECTURE.md`.

pub mod allocator;
pub mod bake;
pub mod cache;
pub mod cli;
pub mod cpu;
pub mod decode;
pub mod dispatch;
pub mod fuzz;
pub mod interp;
pub mod jit;
pub mod linux;
pub mod loader;
pub mod log;
pub mod mem;
pub mod semantics;
pub mod service;
pub mod stats;
