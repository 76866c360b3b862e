//! The `kiln` command; everything it does is in the library (`kiln::cli`).
//!
//! The C runtime calls `main` directly (`no_main`): the Rust runtime's start-up would read
//! the whole of /proc/self/maps to place a guard below the main thread's stack, about 4% of a
//! short warm run, for a stack overflow message. `linux::host::prepare_process` does the rest
//! of what that start-up did and Kiln relies on; a panic still ends the process with status 101.
//! The command line is read from `main`'s own arguments: without the Rust runtime's start-up,
//! only glibc hands it to the standard library (`std::env::args` is empty with musl).
#![cfg_attr(not(test), no_main)]

#[global_allocator]
static ALLOCATOR: kiln::allocator::HostAllocator = kiln::allocator::HostAllocator;

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    kiln::linux::host::prepare_process();
    // SAFETY: the C runtime passes `argc` valid, NUL-terminated strings in `argv`.
    let args = unsafe { kiln::linux::host::command_line(argc, argv) };
    let code = std::panic::catch_unwind(|| kiln::cli::main(args)).unwrap_or(101);
    std::process::exit(code)
}
