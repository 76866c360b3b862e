//! `kiln serve`: run a cache directory's compile service in the foreground, show its status,
//! or wait until it has merged everything runs handed it.

use crate::cache;
use crate::service::{self, client};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

/// Seconds a service waits with nothing to do before it exits, unless told otherwise.
const DEFAULT_IDLE_S: u64 = 120;

#[derive(clap::Args)]
pub(super) struct ServeArgs {
    /// The cache directory (default: KILN_CACHE_DIR, XDG_CACHE_HOME/kiln or ~/.cache/kiln).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Exit after this many seconds with nothing to do (default: KILN_SERVE_IDLE, else 120).
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Show the running service's status (or the last one's) and exit.
    #[arg(long)]
    pub status: bool,
    /// Wait until every journal runs left is merged (starting the service if needed), then
    /// show the status; for scripts that save the cache afterwards.
    #[arg(long, conflicts_with = "status")]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit status 1).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The service lock, taken by the run that started this service (used by Kiln itself).
    #[arg(long, hide = true)]
    lock_fd: Option<i32>,
}

pub(super) fn serve_cmd(a: ServeArgs) -> anyhow::Result<i32> {
    let dir = match a.cache_dir {
        Some(d) => d,
        None => cache::default_dir().context("no cache directory: set KILN_CACHE_DIR or HOME")?,
    };
    let show = |s: &service::status::ServiceStatus| {
        if a.json {
            println!("{}", s.to_json());
        } else {
            print!("{}: {}", dir.display(), s.to_text());
        }
    };
    if a.status {
        return Ok(match client::status(&dir) {
            Some(s) => {
                show(&s);
                0
            }
            None => {
                eprintln!("kiln: no compile service has run for {}", dir.display());
                1
            }
        });
    }
    if a.wait {
        return Ok(match client::wait_idle(&dir, Duration::from_secs(a.timeout)) {
            Some(s) => {
                show(&s);
                0
            }
            None => {
                eprintln!("kiln: {}: journals still unmerged after {} s", dir.display(), a.timeout);
                1
            }
        });
    }
    let idle = a
        .idle_timeout
        .or_else(|| std::env::var("KILN_SERVE_IDLE").ok()?.parse().ok())
        .unwrap_or(DEFAULT_IDLE_S);
    service::serve(service::ServeOptions {
        dir,
        idle: Duration::from_secs(idle),
        lock_fd: a.lock_fd,
    })?;
    Ok(0)
}
