//! Diagnostics selected with `KILN_LOG=topic,topic` (topics: syscall, cache, jit, clif, code, decode,
//! signal). Kiln's
//! stderr is the guest's stderr, so nothing is printed unless asked for.

use std::sync::OnceLock;

fn topics() -> &'static Vec<String> {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        std::env::var("KILN_LOG")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    })
}

/// Whether `topic` (or "all") is enabled.
pub fn on(topic: &str) -> bool {
    topics().iter().any(|t| t == topic || t == "all")
}

/// Prints a diagnostic line for `topic` when it is enabled.
#[macro_export]
macro_rules! klog {
    ($topic:expr, $($arg:tt)*) => {
        if $crate::log::on($topic) {
            eprintln!("kiln[{}]: {}", $topic, format!($($arg)*));
        }
    };
}
