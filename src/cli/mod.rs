//! Kiln's command line: `kiln run` emulates a program (`run.rs`); `kiln cache` inspects and
//! manages the cache (`cache.rs`); `kiln serve` runs or asks the compile service (`serve.rs`);
//! `kiln fuzz` runs the differential fuzzer (`crate::fuzz`).

mod cache;
mod run;
mod serve;

use crate::dispatch::Tier;
use crate::fuzz;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// What `kiln --help` says Kiln is.
const ABOUT: &str = "x86-64 Linux user-mode emulator with a persistent translation cache";

#[derive(Parser)]
#[command(name = "kiln", version, about = ABOUT)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The command line of `kiln run`, the command every guest process starts with: parsed by a
/// command that holds only that subcommand, so that a short run does not build every other
/// subcommand's arguments first (a warm static hello world spent about 5% of its CPU there).
#[derive(Parser)]
#[command(name = "kiln", version, about = ABOUT)]
struct RunCli {
    #[command(subcommand)]
    cmd: RunCmd,
}

#[derive(Subcommand)]
enum RunCmd {
    /// Run an x86-64 Linux program under Kiln.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Execution tier.
    #[arg(long, value_enum, default_value = "auto")]
    tier: Tier,
    /// Neither read nor write the persistent cache.
    #[arg(long)]
    no_cache: bool,
    /// The cache directory (default: KILN_CACHE_DIR, XDG_CACHE_HOME/kiln or ~/.cache/kiln).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The guest's argv[0] (default: PROGRAM as given).
    #[arg(long)]
    argv0: Option<std::ffi::OsString>,
    /// Signals ignored and blocked by the guest that exec'd this one, as IGNORED:BLOCKED
    /// hex masks (used by Kiln itself).
    #[arg(long, hide = true)]
    signals: Option<String>,
    /// The program to run.
    program: PathBuf,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<std::ffi::OsString>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an x86-64 Linux program under Kiln.
    Run(RunArgs),
    /// Differential instruction fuzzer: random instructions of every implemented form, run
    /// natively and in both tiers, compared (see tools/README.md).
    Fuzz {
        /// Number of cases.
        #[arg(long, default_value_t = 10000)]
        cases: u64,
        /// Seed of the case generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run only this case (a reproducer).
        #[arg(long)]
        case: Option<u64>,
        /// Cases per native child process.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Only forms of this CPUID feature (as the summary names them: FPU, MMX, SSE4_2, ...).
        #[arg(long)]
        feature: Option<String>,
        /// List, per CPUID feature, how many forms are fuzzed and which are not (and why).
        #[arg(long)]
        coverage: bool,
        /// Fuzz sequences of instructions with a branch and a loop instead, natively and in the
        /// baseline tier, block by block compiled and as compiled regions.
        #[arg(long)]
        sequences: bool,
    },
    /// Inspect or manage the translation cache.
    Cache {
        #[command(subcommand)]
        op: CacheOp,
    },
    /// The compile service of a cache directory: compiles and merges what runs leave at exit.
    /// Runs start it on demand; it exits after an idle time-out.
    Serve(serve::ServeArgs),
}

#[derive(Subcommand)]
enum CacheOp {
    /// What the cache holds: modules, configurations, units, code and pack bytes.
    Stats {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every entry's and every pack's checksum and format.
    Verify {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove invalid files, then least recently used modules until the cache is at 80% of
    /// its cap (KILN_CACHE_MAX, default 2G).
    Gc {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The cap for this collection (bytes, or with a K, M, G suffix).
        #[arg(long)]
        max: Option<String>,
    },
    /// Remove every entry.
    Clear {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Merge journals written by a detached compile into the index (used by Kiln itself).
    #[command(hide = true)]
    Merge { journals: Vec<PathBuf> },
}

/// Parses the command line, runs the command and returns the process's exit status.
pub fn main() -> i32 {
    let cli = match std::env::args_os().nth(1) {
        Some(a) if a == "run" => match RunCli::parse().cmd {
            RunCmd::Run(a) => Cli { cmd: Cmd::Run(a) },
        },
        _ => Cli::parse(),
    };
    let report = match &cli.cmd {
        Cmd::Fuzz { .. } => true,
        Cmd::Cache { op } => !matches!(op, CacheOp::Merge { .. }),
        Cmd::Serve(a) => a.status || a.wait,
        _ => false,
    };
    if report {
        // Kiln's own reports end quietly when their reader goes away (`kiln fuzz | head`),
        // as other tools do; `run` keeps the disposition its guest must see, and a journal
        // merger its errors.
        crate::linux::host::default_sigpipe();
    }
    let r = match cli.cmd {
        Cmd::Run(RunArgs {
            tier,
            no_cache,
            cache_dir,
            argv0,
            signals,
            program,
            args,
        }) => run::run(
            run::RunOptions {
                tier,
                no_cache,
                cache_dir,
                argv0,
                signals: signals.and_then(|s| {
                    let (i, b) = s.split_once(':')?;
                    Some((u64::from_str_radix(i, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
                }),
            },
            program,
            args,
        ),
        Cmd::Cache { op } => cache::cache_cmd(op),
        Cmd::Serve(a) => serve::serve_cmd(a),
        Cmd::Fuzz {
            cases,
            seed,
            case,
            batch,
            feature,
            coverage,
            sequences,
        } => {
            let run = if sequences { fuzz::run_sequences } else { fuzz::run };
            if coverage {
                fuzz::coverage();
                Ok(0)
            } else {
                run(cases, seed, case, batch, feature.as_deref()).map(|m| if m == 0 { 0 } else { 1 })
            }
        }
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln: {e:#}");
            127
        }
    }
}
