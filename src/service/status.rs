//! What a service reports (`kiln serve --status`): its work queue, what it compiled and
//! merged, the CPU time it used and how long it has run. The service keeps it current in
//! `service.json` too, so `kiln cache stats` can show the last service's after it has ended.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceStatus {
    pub pid: u32,
    /// False in `service.json` once the service has ended.
    pub running: bool,
    /// What it is doing: `waiting`, `compiling`, `compiling regions` or `writing` (packs).
    pub state: String,
    /// Seconds since the Unix epoch when it started.
    pub started: u64,
    pub uptime_s: u64,
    /// Blocks waiting to be compiled, and being compiled.
    pub queue: u64,
    /// Journals taken in and not yet fully merged.
    pub journals_open: u64,
    pub journals_merged: u64,
    /// Units runs compiled themselves, merged into packs.
    pub units_merged: u64,
    pub compiles_done: u64,
    pub compiles_failed: u64,
    /// Submitted blocks that were already in the packs (another run's work): not compiled
    /// again.
    pub already_cached: u64,
    /// Pack writes (each folds in everything compiled since the last).
    pub writes: u64,
    pub cpu_ms: u64,
    /// Regions planned and not compiled yet, plus modules whose regions are still to plan.
    pub regions_queued: u64,
    pub regions_done: u64,
    pub regions_failed: u64,
    /// Compile jobs the last batch ran at once (at most one per core, fewer while the
    /// machine is busy).
    pub jobs: u64,
    /// The most compile jobs run at once while runs were handing work in (one: a burst of
    /// runs gets one core of background work).
    #[serde(default)]
    pub burst_jobs_most: u64,
}

impl ServiceStatus {
    /// No work in hand: nothing queued, every journal taken in merged, every region formed.
    pub fn idle(&self) -> bool {
        self.queue == 0 && self.journals_open == 0 && self.regions_queued == 0
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// As text, one line per figure.
    pub fn to_text(&self) -> String {
        let state = if self.running { self.state.as_str() } else { "ended" };
        format!(
            "service: pid {} ({state}), up {} s\n\
             queue: {} blocks, {} journals open\n\
             merged: {} journals, {} units from runs, {} pack writes\n\
             compiled: {} done, {} failed, {} already cached\n\
             regions: {} compiled, {} failed, {} to do\n\
             cpu: {} ms; jobs at once: {} ({} at most while runs handed work in)\n",
            self.pid,
            self.uptime_s,
            self.queue,
            self.journals_open,
            self.journals_merged,
            self.units_merged,
            self.writes,
            self.compiles_done,
            self.compiles_failed,
            self.already_cached,
            self.regions_done,
            self.regions_failed,
            self.regions_queued,
            self.cpu_ms,
            self.jobs,
            self.burst_jobs_most,
        )
    }

    /// The status the directory's last service left (None if none ever ran).
    pub fn last(dir: &Path) -> Option<ServiceStatus> {
        let text = std::fs::read_to_string(super::endpoint::status_path(dir)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records the status in the directory (whole or not at all; never creating the directory,
    /// which may have been removed under the service).
    pub fn save(&self, dir: &Path) {
        let path = super::endpoint::status_path(dir);
        let tmp = dir.join(format!(".service.json-{}", std::process::id()));
        if std::fs::write(&tmp, self.to_json()).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
