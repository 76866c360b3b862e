//! Run statistics, printed at exit under `KILN_STATS=1` (table) or `KILN_STATS=json`.

#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub guest_insns_interp: u64,
    pub guest_insns_compiled: u64,
    pub blocks_decoded: u64,
    pub units_compiled: u64,
    pub units_loaded: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_rejected: u64,
    pub units_stored: u64,
    pub compile_us: u64,
    pub interp_us: u64,
    /// Units dropped because the guest changed their code.
    pub units_invalidated: u64,
    /// Units on pages written as often as run, which check their bytes at each entry.
    pub volatile_units: u64,
}

/// Sums the statistics of several threads.
impl std::ops::AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, o: &Stats) {
        self.guest_insns_interp += o.guest_insns_interp;
        self.guest_insns_compiled += o.guest_insns_compiled;
        self.blocks_decoded += o.blocks_decoded;
        self.units_compiled += o.units_compiled;
        self.units_loaded += o.units_loaded;
        self.cache_hits += o.cache_hits;
        self.cache_misses += o.cache_misses;
        self.cache_rejected += o.cache_rejected;
        self.units_stored += o.units_stored;
        self.compile_us += o.compile_us;
        self.interp_us += o.interp_us;
        self.units_invalidated += o.units_invalidated;
        self.volatile_units += o.volatile_units;
    }
}

impl Stats {
    pub fn report(&self, mode: &str) {
        if mode == "json" {
            // One write, so that the lines of processes sharing stderr never interleave.
            use std::io::Write;
            let s = format!("kiln-stats {}\n", serde_json::to_string(self).unwrap_or_default());
            let _ = std::io::stderr().write_all(s.as_bytes());
            return;
        }
        let total = (self.guest_insns_interp + self.guest_insns_compiled).max(1);
        let pct = 100.0 * self.guest_insns_compiled as f64 / total as f64;
        eprintln!("kiln stats");
        eprintln!("  guest instructions, baseline tier  {:>14}", self.guest_insns_interp);
        eprintln!(
            "  guest instructions, compiled code  {:>14}  ({pct:.2}% compiled)",
            self.guest_insns_compiled
        );
        eprintln!("  blocks decoded                     {:>14}", self.blocks_decoded);
        eprintln!(
            "  units compiled                     {:>14}  ({} us in Cranelift)",
            self.units_compiled, self.compile_us
        );
        eprintln!("  units loaded from cache            {:>14}", self.units_loaded);
        eprintln!(
            "  cache hits / misses / rejected     {:>6} / {} / {}",
            self.cache_hits, self.cache_misses, self.cache_rejected
        );
        eprintln!("  units stored at exit               {:>14}", self.units_stored);
        eprintln!(
            "  units invalidated / volatile       {:>6} / {}",
            self.units_invalidated, self.volatile_units
        );
    }
}
