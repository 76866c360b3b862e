//! The process-wide way into guest code, wired once: the JIT's trampoline and baseline shim,
//! the helper table compiled code calls through (its functions live in the semantics and the
//! baseline tier, which the JIT does not import), the host fault handlers that resume at the
//! trampoline's return point, and the baseline tier's registered entry.

use crate::jit::{self, Helper, Runtime};
use crate::{interp, linux, semantics};
use std::sync::OnceLock;

/// The helper table compiled code calls through (`Cpu::helpers`), indexed by the JIT's helper
/// numbers.
pub static HELPERS: [Helper; 4] = {
    let mut t: [Helper; 4] = [semantics::slow::helper_slow; 4];
    t[jit::H_SLOW as usize] = semantics::slow::helper_slow;
    t[jit::H_COND as usize] = semantics::concrete::helper_cond;
    t[jit::H_RFLAGS as usize] = semantics::concrete::helper_rflags;
    t[jit::H_INTERP as usize] = interp::helper_run_block;
    t
};

/// The runtime, compiled on first use; None when the host has no Cranelift backend (the
/// baseline tier then runs blocks directly, and guest memory faults end the process).
pub fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| match Runtime::build() {
            Ok(r) => {
                linux::signals::install_fault_handlers(r.landing());
                crate::mem::watch::enable(linux::wake::wake_all);
                interp::register_trampoline(r.enter(), r.interp());
                Some(r)
            }
            Err(e) => {
                crate::klog!("jit", "no trampoline: {e}");
                None
            }
        })
        .as_ref()
}
