//! `kiln serve`: taking the directory's service lock, listening on its socket (or on the one
//! systemd's socket activation passes), answering runs and status questions, and running the
//! worker until it has been idle for the time-out.

use super::endpoint;
use super::status::ServiceStatus;
use super::worker::Worker;
use crate::linux::host;
use anyhow::Context;
use std::io::{BufRead, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub struct ServeOptions {
    pub dir: PathBuf,
    /// Exit after this long with nothing to do.
    pub idle: Duration,
    /// The service lock, already taken by the run that started this service.
    pub lock_fd: Option<i32>,
}

/// What the listener and the worker share.
#[derive(Default)]
pub(super) struct Shared {
    pub status: Mutex<ServiceStatus>,
    /// Looks the worker has taken at `journals/`, and whether a run asked for another.
    pub scans: Mutex<(u64, bool)>,
    pub wake: Condvar,
}

impl Shared {
    /// Asks the worker to look at `journals/`; the number of looks before this one.
    fn wake(&self) -> u64 {
        let mut s = self.scans.lock().unwrap_or_else(|e| e.into_inner());
        s.1 = true;
        self.wake.notify_all();
        s.0
    }

    fn status(&self) -> ServiceStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Runs the service for a cache directory until it has been idle for `idle`.
pub fn serve(o: ServeOptions) -> anyhow::Result<()> {
    let handed = o.lock_fd.and_then(host::inherited_fd);
    if handed.is_some() && !o.dir.is_dir() {
        return Ok(()); // removed since the run started this service: never created again
    }
    crate::cache::prepare_dir(&o.dir)?;
    // Low priority, set before any thread starts so the compile threads inherit it.
    let _ = rustix::process::setpriority_process(None, 19);
    let activated = activation_listener();
    let handed = handed.filter(|fd| endpoint::holds_lock(&o.dir, fd));
    let lock = match (handed, &activated) {
        (Some(fd), _) => fd,
        (None, Some(_)) => endpoint::wait_lock(&o.dir).context("cannot lock the service")?,
        (None, None) => endpoint::try_lock(&o.dir)
            .with_context(|| format!("a compile service already runs for {}", o.dir.display()))?,
    };
    let bound = activated.is_none();
    let listener = match activated {
        Some(l) => l,
        None => endpoint::listen(&o.dir).with_context(|| format!("cannot listen in {}", o.dir.display()))?,
    };
    let shared = Arc::new(Shared::default());
    let identity = endpoint::lock_identity(&lock).context("cannot read the service lock")?;
    let mut worker = Worker::new(&o.dir, shared.clone(), identity)?;
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("kiln-serve-listen".into())
            .spawn(move || listen(listener, shared))?;
    }
    if !worker.run(o.idle) {
        return Ok(()); // the directory is gone: nothing to write, nowhere to write it
    }
    if bound {
        // Runs that come now find no service and, once the lock is free, start the next.
        let _ = std::fs::remove_file(endpoint::socket_path(&o.dir));
    }
    if !worker.drain() {
        return Ok(());
    }
    if worker.retired() {
        crate::klog!(
            "cache",
            "a run of another Kiln build handed in work: this service steps aside"
        );
    }
    worker.finish();
    Ok(())
}

/// The listening socket systemd passed (socket activation), if it did.
fn activation_listener() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    host::inherited_fd(3).map(UnixListener::from)
}

fn listen(listener: UnixListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        let Ok(s) = conn else {
            // Out of descriptors, say: try again shortly rather than spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if !endpoint::same_user(&s) {
            continue;
        }
        let shared = shared.clone();
        // Questions are answered on their own thread: a `wait` may take long, and a peer
        // that never writes must not hold up the others.
        let _ = std::thread::Builder::new()
            .name("kiln-serve-answer".into())
            .spawn(move || answer(s, &shared));
    }
}

/// Reads one line and answers it: `work` (a journal is waiting), `status`, or `wait` (answer
/// with the status once everything sent so far is merged).
fn answer(s: UnixStream, shared: &Shared) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(&s);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let reply = match line.trim() {
        "work" => {
            shared.wake();
            return;
        }
        "status" => shared.status(),
        "wait" => {
            let asked_at = shared.wake();
            let t = Instant::now();
            loop {
                // A look that had begun before the question may have missed what came with it:
                // the one after it has not.
                let looked = shared.scans.lock().unwrap_or_else(|e| e.into_inner()).0 >= asked_at + 2;
                let status = shared.status();
                if (looked && status.idle()) || t.elapsed() > Duration::from_secs(3600) {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        _ => return,
    };
    let _ = (&s).write_all(format!("{}\n", reply.to_json()).as_bytes());
}
