//! The run's side of the service: waking (or starting) the directory's service once its work
//! journal is on disk, never waiting for it beyond a bounded time; and the questions
//! `kiln serve --status` and `--wait` ask.

use super::endpoint;
use super::status::ServiceStatus;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest a run waits for the service at exit: while a service is ending it still holds
/// the lock but no longer answers, for a moment.
const HAND_OVER_LIMIT: Duration = Duration::from_secs(1);

/// Tells the directory's service that work is waiting in `journals/`, starting one if none
/// runs. Returns within `HAND_OVER_LIMIT` whatever the service does: a journal it did not
/// take is merged by the next one.
pub fn hand_over(dir: &Path) {
    let deadline = Instant::now() + HAND_OVER_LIMIT;
    loop {
        if tell(dir, "work") {
            return;
        }
        if start(dir) {
            return;
        }
        if Instant::now() >= deadline {
            crate::klog!(
                "cache",
                "the compile service does not answer; its journal waits for the next one"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends one line to the service; false when none answers.
fn tell(dir: &Path, line: &str) -> bool {
    endpoint::connect(dir, Duration::from_millis(100))
        .is_some_and(|mut s| s.write_all(format!("{line}\n").as_bytes()).is_ok())
}

/// Starts a service for the directory if none holds its lock: the lock is taken here and
/// handed to the service, so two runs never start two. False when one already holds it.
fn start(dir: &Path) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;
    let Some(lock) = endpoint::try_lock(dir) else {
        return false;
    };
    let c = crate::linux::host::c_string;
    // The daemon runs in `/`.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let args = [
        c(b"kiln"),
        c(b"serve"),
        c(b"--cache-dir"),
        c(dir.as_os_str().as_bytes()),
        c(b"--lock-fd"),
        c(b"3"),
    ];
    if !crate::linux::host::spawn_daemon(&args, lock.as_fd()) {
        crate::klog!(
            "cache",
            "cannot start the compile service; its journal waits for the next one"
        );
    }
    true
}

/// Asks the service a question and reads its one-line answer, waiting up to `timeout`.
fn ask(dir: &Path, question: &str, timeout: Duration) -> Option<String> {
    let mut s = endpoint::connect(dir, timeout)?;
    s.write_all(format!("{question}\n").as_bytes()).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).ok()?;
    (!line.is_empty()).then_some(line)
}

/// The running service's status, else the last one's (not running), else None.
pub fn status(dir: &Path) -> Option<ServiceStatus> {
    ask(dir, "status", Duration::from_secs(5))
        .and_then(|l| serde_json::from_str(&l).ok())
        .or_else(|| ServiceStatus::last(dir).map(|s| ServiceStatus { running: false, ..s }))
}

/// Waits until every journal in the directory is merged (starting a service if journals wait
/// and none runs), those of runs still handing their work over included, up to `timeout`;
/// the service's status then, or None on time-out. A directory that does not exist (no run
/// used it, or it was removed meanwhile) holds nothing to wait for.
pub fn wait_idle(dir: &Path, timeout: Duration) -> Option<ServiceStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !dir.is_dir() {
            return Some(ServiceStatus::default());
        }
        // A run that ended may still be writing its journal.
        if endpoint::handover_pending(dir) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(s) = ask(dir, "wait", left).and_then(|l| serde_json::from_str::<ServiceStatus>(&l).ok()) {
            if s.idle() {
                return Some(s);
            }
        }
        if crate::cache::journal::pending_journals(dir).is_empty() && endpoint::try_lock(dir).is_some() {
            // No service, nothing waiting.
            return Some(ServiceStatus::last(dir).unwrap_or_default());
        }
        start(dir);
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
