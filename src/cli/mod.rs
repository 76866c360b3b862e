//! Kiln's command line: `kiln run` emulates a program (`run.rs`); `kiln cache` inspects and
//! manages the cache (`cache.rs`); `kiln serve` runs or asks the compile service (`serve.rs`);
//! `kiln fuzz` runs the differential fuzzer (`crate::fuzz`).

mod bake;
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
/// subcommand's arguments first (a warm static hello world spent about 9% of its CPU there).
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

#[derive(clap::Args, Debug, PartialEq)]
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
    /// The program to run, then its arguments: everything from the program on is the
    /// guest's, options included (`kiln run gcc --version`).
    #[arg(
        value_name = "PROGRAM",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<std::ffi::OsString>,
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
    /// Compile programs and the shared libraries they need into the cache ahead of time,
    /// from what their files say (and what earlier runs recorded), so that their first run
    /// starts warm.
    Bake(bake::BakeArgs),
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
    /// Write the packs of this Kiln's configuration to one bundle file: those of the named
    /// programs (and of the libraries and interpreter their runs used, as the usage log
    /// records them), or the whole cache's.
    Export {
        /// The bundle file to write.
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// Sign the bundle with the ed25519 key in this file (`kiln cache keygen`).
        #[arg(long)]
        sign: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Programs whose packs to export (default: every pack).
        programs: Vec<PathBuf>,
    },
    /// Merge a bundle into the cache, once its checksum, signature, configuration and every
    /// pack were checked; units the cache holds are never replaced.
    Import {
        /// The bundle file.
        file: PathBuf,
        /// Take only bundles signed by this public key (64 hex digits, or a file holding
        /// them); may be given more than once.
        #[arg(long)]
        trust: Vec<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make an ed25519 key pair for signing bundles: the secret in FILE, the public key in
    /// FILE.pub (and printed).
    Keygen {
        /// Where the secret key goes (it must not exist).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Merge journals written by a detached compile into the index (used by Kiln itself).
    #[command(hide = true)]
    Merge { journals: Vec<PathBuf> },
}

/// The arguments of `kiln run` (those after `run`) read without clap, as clap would read them
/// (`RunArgs`), for the common shapes: each option once, as `--name value` or `--name=value`,
/// then the program and its arguments. None for anything else (help, an unknown or repeated
/// option, `--`, a missing program, a bad value), which clap then parses and reports. Clap's
/// first use cost a warm static hello world about 3% of its CPU, mostly its own code running
/// for the first time.
fn quick_run_args(args: &[std::ffi::OsString]) -> Option<RunArgs> {
    use clap::ValueEnum;
    let (mut tier, mut no_cache, mut cache_dir, mut argv0, mut signals) = (None, false, None, None, None);
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_str();
        let Some(option) = arg.and_then(|a| a.strip_prefix("--")) else {
            // The program: it and everything after it as they are.
            return arg.is_none_or(|a| !a.starts_with('-')).then(|| RunArgs {
                tier: tier.unwrap_or(Tier::Auto),
                no_cache,
                cache_dir,
                argv0,
                signals,
                command: args[i..].to_vec(),
            });
        };
        let (name, inline) = match option.split_once('=') {
            Some((n, v)) => (n, Some(std::ffi::OsString::from(v))),
            None => (option, None),
        };
        i += 1;
        if name == "no-cache" {
            if no_cache || inline.is_some() {
                return None;
            }
            no_cache = true;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                // What looks like an option is one to clap, not a value.
                let v = args.get(i).filter(|v| !v.as_encoded_bytes().starts_with(b"-"))?;
                i += 1;
                v.clone()
            }
        };
        match name {
            "tier" => set_once(&mut tier, Tier::from_str(value.to_str()?, false).ok()?)?,
            "cache-dir" => set_once(&mut cache_dir, PathBuf::from(value))?,
            "argv0" => set_once(&mut argv0, value)?,
            "signals" => set_once(&mut signals, value.into_string().ok()?)?,
            _ => return None,
        }
    }
    None
}

/// Runs `kiln run`'s program.
fn run_command(a: RunArgs) -> anyhow::Result<i32> {
    let Some((program, args)) = a.command.split_first() else {
        anyhow::bail!("no program to run");
    };
    let signals = a.signals.and_then(|s| {
        let (i, b) = s.split_once(':')?;
        Some((u64::from_str_radix(i, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
    });
    let options = run::RunOptions {
        tier: a.tier,
        no_cache: a.no_cache,
        cache_dir: a.cache_dir,
        argv0: a.argv0,
        signals,
    };
    run::run(options, PathBuf::from(program), args.to_vec())
}

/// Sets an option given once; None when it was given before.
fn set_once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    slot.replace(v).is_none().then_some(())
}

/// Parses the command line `argv` (the program's name first), runs the command and returns the
/// process's exit status.
pub fn main(argv: Vec<std::ffi::OsString>) -> i32 {
    let cli = match argv.get(1) {
        Some(a) if a == "run" => match quick_run_args(&argv[2..]) {
            Some(a) => Cli { cmd: Cmd::Run(a) },
            None => match RunCli::parse_from(&argv).cmd {
                RunCmd::Run(a) => Cli { cmd: Cmd::Run(a) },
            },
        },
        _ => Cli::parse_from(&argv),
    };
    let report = match &cli.cmd {
        Cmd::Fuzz { .. } => true,
        Cmd::Cache { op } => !matches!(op, CacheOp::Merge { .. }),
        Cmd::Serve(a) => a.status || a.wait,
        Cmd::Bake(_) => true,
        _ => false,
    };
    if report {
        // Kiln's own reports end quietly when their reader goes away (`kiln fuzz | head`),
        // as other tools do; `run` keeps the disposition its guest must see, and a journal
        // merger its errors.
        crate::linux::host::default_sigpipe();
    }
    let r = match cli.cmd {
        Cmd::Run(a) => run_command(a),
        Cmd::Cache { op } => cache::cache_cmd(op),
        Cmd::Serve(a) => serve::serve_cmd(a),
        Cmd::Bake(a) => bake::bake_cmd(a),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever `quick_run_args` reads, it reads as clap does; what it leaves to clap includes
    /// every line clap refuses.
    #[test]
    fn run_arguments_read_without_clap_are_read_as_clap_reads_them() {
        let lines: &[&[&str]] = &[
            &["p"],
            &["p", "--help"],
            &["p", "--no-cache", "--version"],
            &["p", "a", "--tier", "-x"],
            &["--tier", "jit", "p", "--no-cache"],
            &["--tier=interp", "--no-cache", "--cache-dir", "/c", "p"],
            &["--argv0", "zz", "--signals=1:2", "--cache-dir=/d", "p", "--", "q"],
            &["--tier", "bogus", "p"],
            &["--tier"],
            &["--no-cache", "--no-cache", "p"],
            &["--no-cache=1", "p"],
            &["--tier", "jit", "--tier", "auto", "p"],
            &["--help"],
            &["--bogus", "p"],
            &["--cache-dir", "-x", "p"],
            &["--cache-dir=-x", "p"],
            &["--argv0", "--", "p"],
            &["--", "p"],
            &["-x", "p"],
            &[],
        ];
        for line in lines {
            let args: Vec<std::ffi::OsString> = line.iter().map(Into::into).collect();
            let quick = quick_run_args(&args);
            let clap = RunCli::try_parse_from(["kiln", "run"].iter().chain(line.iter()))
                .ok()
                .map(|c| match c.cmd {
                    RunCmd::Run(a) => a,
                });
            match (quick, clap) {
                (Some(q), Some(c)) => assert_eq!(q, c, "{line:?}"),
                (Some(q), None) => panic!("{line:?}: read as {q:?}, which clap refuses"),
                (None, _) => {}
            }
        }
    }
}
