//! Run statistics, printed at exit under `KILN_STATS=1` (table) or `KILN_STATS=json`.

#[derive(Default, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub guest_insns_interp: u64,
    pub guest_insns_compiled: u64,
    pub blocks_decoded: u64,
    pub units_compiled: u64,
    pub units_loaded: u64,
    pub cache_hits: u64,
    /// Units the cache could not serve, the sum of the three reasons below.
    pub cache_misses: u64,
    /// Code of an identified module for which the cache holds no unit at that address.
    pub miss_not_in_cache: u64,
    /// A cached unit whose guest bytes differ from the ones it was compiled from (or are no
    /// longer all readable): the code changed since.
    pub miss_bytes_changed: u64,
    /// Code in anonymous memory or in a file Kiln could not identify (never cached).
    pub miss_unidentified: u64,
    /// Damaged entries: failed their checksum when loaded, never run.
    pub cache_rejected: u64,
    pub units_stored: u64,
    /// Cached units this run entered that their packs did not record as entered yet (handed
    /// to the compile service, which lays them out first).
    pub units_entered_new: u64,
    pub compile_us: u64,
    pub interp_us: u64,
    /// Units dropped because the guest changed their code.
    pub units_invalidated: u64,
    /// Units on pages written as often as run, which check their bytes at each entry.
    pub volatile_units: u64,
    /// Times control came back to the dispatcher (to run a unit, a system call or a fault).
    pub dispatcher_entries: u64,
    /// Returns from compiled code that only asked for the next unit: neither its exit nor the
    /// baseline tier's shim it went on into found the next one without the dispatcher.
    pub chain_misses: u64,
    /// Compiled code run again in the baseline tier from the last checkpoint: after a guest
    /// memory fault there (to fault with the exact state), or a float guard that failed.
    pub fault_replays: u64,
    /// Of those, the float guards' (`fault::REPLAY`): float operands or results compiled code
    /// cannot rely on.
    pub guard_replays: u64,
    /// Cached units chained before the dispatcher met them (on unchanged module pages).
    pub units_prefilled: u64,
    /// 1 when units from packs could not follow their links to the end of the run (a module's
    /// code changed, or some of its units lay where its file's bytes may not be); 0 when they
    /// could (or there were none).
    pub links_forbidden: u64,
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
        self.miss_not_in_cache += o.miss_not_in_cache;
        self.miss_bytes_changed += o.miss_bytes_changed;
        self.miss_unidentified += o.miss_unidentified;
        self.cache_rejected += o.cache_rejected;
        self.units_stored += o.units_stored;
        self.units_entered_new += o.units_entered_new;
        self.compile_us += o.compile_us;
        self.interp_us += o.interp_us;
        self.units_invalidated += o.units_invalidated;
        self.volatile_units += o.volatile_units;
        self.dispatcher_entries += o.dispatcher_entries;
        self.chain_misses += o.chain_misses;
        self.fault_replays += o.fault_replays;
        self.guard_replays += o.guard_replays;
        self.units_prefilled += o.units_prefilled;
        self.links_forbidden += o.links_forbidden;
    }
}

/// Why the cache could not serve a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    NotInCache,
    BytesChanged,
    Unidentified,
}

impl Stats {
    /// Counts a unit the cache could not serve, and why.
    pub fn count_miss(&mut self, why: Miss) {
        self.cache_misses += 1;
        match why {
            Miss::NotInCache => self.miss_not_in_cache += 1,
            Miss::BytesChanged => self.miss_bytes_changed += 1,
            Miss::Unidentified => self.miss_unidentified += 1,
        }
    }

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
        eprintln!(
            "  units loaded from cache            {:>14}  ({} chained at once; links {})",
            self.units_loaded,
            self.units_prefilled,
            if self.links_forbidden > 0 {
                "forbidden"
            } else {
                "allowed"
            }
        );
        eprintln!(
            "  cache hits / misses / rejected     {:>6} / {} / {}",
            self.cache_hits, self.cache_misses, self.cache_rejected
        );
        eprintln!(
            "  misses: not cached / bytes changed / unidentified memory  {} / {} / {}",
            self.miss_not_in_cache, self.miss_bytes_changed, self.miss_unidentified
        );
        eprintln!("  units stored at exit               {:>14}", self.units_stored);
        eprintln!("  units newly entered                {:>14}", self.units_entered_new);
        eprintln!(
            "  units invalidated / volatile       {:>6} / {}",
            self.units_invalidated, self.volatile_units
        );
        let per_million = |n: u64| n as f64 * 1e6 / total as f64;
        eprintln!(
            "  dispatcher entries / chain misses  {:>6} / {}  ({:.0} / {:.0} per million guest instructions)",
            self.dispatcher_entries,
            self.chain_misses,
            per_million(self.dispatcher_entries),
            per_million(self.chain_misses)
        );
        eprintln!("  replays from a checkpoint          {:>14}", self.fault_replays);
        eprintln!("  float guards replayed from a checkpoint {:>9}", self.guard_replays);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summing_adds_every_field() {
        let fields = serde_json::to_value(Stats::default()).expect("serialize");
        let ones: serde_json::Map<String, serde_json::Value> = fields
            .as_object()
            .expect("an object")
            .keys()
            .map(|k| (k.clone(), 1.into()))
            .collect();
        let one: Stats = serde_json::from_value(ones.into()).expect("deserialize");
        let mut sum = one.clone();
        sum += &one;
        let sum = serde_json::to_value(sum).expect("serialize");
        for (k, v) in sum.as_object().expect("an object") {
            assert_eq!(v, 2, "{k} is not summed");
        }
    }
}
