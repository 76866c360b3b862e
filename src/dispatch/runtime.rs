//! The process-wide way into guest code, wired once: the JIT's trampoline and baseline shim
//! (their code kept in the cache directory, so that a warm run compiles nothing at all), the
//! helper table compiled code calls through (its functions live in the semantics and the
//! baseline tier, which the JIT does not import), the host fault handlers that resume at the
//! trampoline's return point, and the baseline tier's registered entry.

use crate::jit::{self, Helper, Jit, Runtime, RuntimeCode};
use crate::{interp, linux, semantics};
use cache_format::ConfigId;
use std::path::Path;
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
    runtime_from(None)
}

/// `runtime`, its code read from the cache directory `dir` for configuration `config` (and
/// written there when it is missing or damaged) when the first call names one.
pub fn runtime_from(cache: Option<(&Path, &ConfigId)>) -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| match code(cache).map(|c| Runtime::install(&c)) {
            Some(Ok(r)) => {
                linux::signals::install_fault_handlers(r.landing());
                crate::mem::watch::enable(linux::wake::wake_all);
                interp::register_trampoline(r.enter(), r.interp());
                Some(r)
            }
            Some(Err(e)) => {
                crate::klog!("jit", "no trampoline: {e}");
                None
            }
            None => None,
        })
        .as_ref()
}

/// Where the cache directory `dir` keeps the runtime's code for configuration `config`.
fn code_path(dir: &Path, config: &ConfigId) -> std::path::PathBuf {
    dir.join(format!("{CODE_FILE_PREFIX}{}.bin", crate::cache::hex(&config.0)))
}

const CODE_FILE_PREFIX: &str = "runtime-";

/// Removes the runtime code of every configuration from the cache directory `dir`.
pub fn forget_code(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(CODE_FILE_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The runtime's code: from the cache when it holds it intact, else compiled (and kept).
fn code(cache: Option<(&Path, &ConfigId)>) -> Option<RuntimeCode> {
    let path = cache.map(|(dir, config)| code_path(dir, config));
    if let Some(c) = path.as_ref().and_then(|p| RuntimeCode::decode(&std::fs::read(p).ok()?)) {
        return Some(c);
    }
    let compiled = Jit::new().and_then(|j| RuntimeCode::compile(&j));
    let code = match compiled {
        Ok(c) => c,
        Err(e) => {
            crate::klog!("jit", "no trampoline: {e}");
            return None;
        }
    };
    // Never into a cache directory removed meanwhile (which this would create again).
    if let (Some(p), Some((dir, _))) = (&path, cache.filter(|(dir, _)| dir.is_dir())) {
        let _ = crate::cache::write_atomic(dir, p, &code.encode());
    }
    Some(code)
}
