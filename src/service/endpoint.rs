//! Where runs find a cache directory's service: the lock whose holder is the service
//! (`serve.lock`), its Unix socket (`serve.sock`, mode 0600, peers checked to be the same user)
//! and the status it leaves (`service.json`); and the slots of the runs still handing work
//! over after they ended (`handover-N.lock`).

use rustix::fs::{flock, FlockOperation};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest socket path the kernel takes (`sun_path` less its terminating zero).
const MAX_SOCKET_PATH: usize = 107;

pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("serve.sock")
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("serve.lock")
}

pub fn status_path(dir: &Path) -> PathBuf {
    dir.join("service.json")
}

/// Takes the directory's service lock if no one holds it: whoever holds it is the service
/// (at most one per directory). The lock lives as long as the descriptor, in this process or
/// a child that inherits it.
pub fn try_lock(dir: &Path) -> Option<OwnedFd> {
    let f = open_lock(dir)?;
    flock(&f, FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(f)
}

/// Waits for the directory's service lock (a service started by socket activation while an
/// on-demand one still runs).
pub fn wait_lock(dir: &Path) -> Option<OwnedFd> {
    let f = open_lock(dir)?;
    flock(&f, FlockOperation::LockExclusive).ok()?;
    Some(f)
}

/// Whether `fd` is this directory's service lock and is held through it (a lock handed over by
/// the run that started this service).
pub fn holds_lock(dir: &Path, fd: &OwnedFd) -> bool {
    // flock on the description that holds the lock succeeds; on any other it would not.
    lock_identity(fd).is_some_and(|held| lock_file_is(dir, held))
        && flock(fd, FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// The lock file `fd` holds, as (device, inode): while the descriptor is open its inode is not
/// freed, so no file made later has the same pair.
pub fn lock_identity(fd: &OwnedFd) -> Option<(u64, u64)> {
    let st = rustix::fs::fstat(fd).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// Whether the directory's lock file is still the one of `identity` (`lock_identity`): false
/// once the directory was removed, also when a run has made it again since.
pub fn lock_file_is(dir: &Path, identity: (u64, u64)) -> bool {
    rustix::fs::stat(lock_path(dir)).is_ok_and(|st| (st.st_dev, st.st_ino) == identity)
}

fn open_lock(dir: &Path) -> Option<OwnedFd> {
    open_lock_file(&lock_path(dir))
}

fn open_lock_file(path: &Path) -> Option<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .ok()?;
    Some(f.into())
}

/// How many runs of a directory may hand their work over after they ended at once
/// (`try_handover_slot`): with the service, at most two processes of Kiln's own stay behind
/// the runs.
const HANDOVER_SLOTS: usize = 1;

fn handover_slot_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("handover-{k}.lock"))
}

/// Takes a free slot for handing a run's work over after the run ended: a lock that the child
/// writing the journal holds till it ends (`handover_pending`). At most `HANDOVER_SLOTS` such
/// children at once, so that a burst of short runs leaves no crowd behind (a run that finds
/// no slot free hands its work over before it ends).
pub fn try_handover_slot(dir: &Path) -> Option<OwnedFd> {
    (0..HANDOVER_SLOTS).find_map(|k| {
        let f = open_lock_file(&handover_slot_path(dir, k))?;
        flock(&f, FlockOperation::NonBlockingLockExclusive).ok()?;
        Some(f)
    })
}

/// Whether a run's child is still handing work over (holds a slot).
pub fn handover_pending(dir: &Path) -> bool {
    (0..HANDOVER_SLOTS).any(|k| {
        let Ok(f) = std::fs::File::open(handover_slot_path(dir, k)) else {
            return false;
        };
        flock(&f, FlockOperation::NonBlockingLockShared).is_err()
    })
}

/// The socket's address as the kernel takes it: its path, or, for a directory whose path is
/// too long, the path through an open descriptor of the directory (kept with it).
fn address(dir: &Path) -> Option<(PathBuf, Option<std::fs::File>)> {
    let path = socket_path(dir);
    if path.as_os_str().len() <= MAX_SOCKET_PATH {
        return Some((path, None));
    }
    let d = std::fs::File::open(dir).ok()?;
    use std::os::fd::AsRawFd;
    let short = PathBuf::from(format!("/proc/self/fd/{}/serve.sock", d.as_raw_fd()));
    Some((short, Some(d)))
}

/// Binds the directory's socket (replacing a dead service's; the caller holds the lock),
/// readable and writable by its owner only.
pub fn listen(dir: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let (addr, _keep) = address(dir).ok_or_else(|| std::io::Error::other("cannot open the cache directory"))?;
    let _ = std::fs::remove_file(&addr);
    let l = UnixListener::bind(&addr)?;
    std::fs::set_permissions(&addr, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Connects to the directory's service without ever blocking: None when no service listens,
/// or its backlog is full (a service that does not accept).
pub fn connect(dir: &Path, timeout: Duration) -> Option<UnixStream> {
    use rustix::net::{socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let (addr, _keep) = address(dir)?;
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .ok()?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(&addr).ok()?).ok()?;
    let s = UnixStream::from(fd);
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    Some(s)
}

/// Whether the peer of a connection runs as this process's user.
pub fn same_user(s: &UnixStream) -> bool {
    rustix::net::sockopt::socket_peercred(s).is_ok_and(|c| c.uid == rustix::process::getuid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_of_the_service_lock_at_a_time() {
        let t = tempfile::tempdir().unwrap();
        let held = try_lock(t.path()).expect("a free lock");
        assert!(try_lock(t.path()).is_none(), "a second holder");
        drop(held);
        assert!(try_lock(t.path()).is_some(), "the lock outlived its holder");
    }

    #[test]
    fn sockets_in_deep_directories_are_reached_through_the_directory() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let l = listen(&deep).expect("bind");
        let c = connect(&deep, Duration::from_secs(1)).expect("connect");
        let (s, _) = l.accept().unwrap();
        assert!(same_user(&s) && same_user(&c));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(socket_path(&deep)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(l);
        std::fs::remove_file(socket_path(&deep)).unwrap();
        assert!(connect(&deep, Duration::from_secs(1)).is_none());
    }
}
