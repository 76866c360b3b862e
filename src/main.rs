//! Kiln's command line: `kiln run` emulates a program; `kiln cache` inspects the cache.

mod cache;
mod cpu;
mod decode;
mod dispatch;
mod interp;
mod jit;
mod linux;
mod loader;
mod log;
mod mem;
mod semantics;
mod stats;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dispatch::{Engine, Module, Outcome, Tier};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "x86-64 Linux user-mode emulator with a persistent translation cache"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an x86-64 Linux program under Kiln.
    Run {
        /// Execution tier.
        #[arg(long, value_enum, default_value = "auto")]
        tier: Tier,
        /// Neither read nor write the persistent cache.
        #[arg(long)]
        no_cache: bool,
        /// The program to run.
        program: PathBuf,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Inspect or manage the translation cache.
    Cache {
        #[command(subcommand)]
        op: CacheOp,
    },
}

#[derive(Subcommand)]
enum CacheOp {
    /// Entries in the cache.
    Stats,
    /// Check every entry's checksum and format.
    Verify,
    /// Remove every entry.
    Clear,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run {
            tier,
            no_cache,
            program,
            args,
        } => run(tier, no_cache, program, args),
        Cmd::Cache { op } => cache_cmd(op),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("kiln: {e:#}");
            std::process::exit(127);
        }
    }
}

fn cache_cmd(op: CacheOp) -> anyhow::Result<i32> {
    let dir = cache::default_dir().context("no cache directory: set KILN_CACHE_DIR or HOME")?;
    let c = cache::Cache::open(&dir)?;
    match op {
        CacheOp::Stats => println!("{}: {} units", dir.display(), c.len()),
        CacheOp::Verify => {
            let (ok, bad) = c.verify();
            println!("{}: {ok} valid units, {bad} damaged", dir.display());
            return Ok(if bad == 0 { 0 } else { 1 });
        }
        CacheOp::Clear => {
            c.clear()?;
            println!("{}: cleared", dir.display());
        }
    }
    Ok(0)
}

/// Ends this process the way the guest would have ended: killed by `sig`.
fn die_of(sig: i32) -> ! {
    // SAFETY: resetting a signal to its default and raising it; no Rust state is involved.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig);
}

fn run(tier: Tier, no_cache: bool, program: PathBuf, args: Vec<std::ffi::OsString>) -> anyhow::Result<i32> {
    let name = program.display().to_string();
    let data = std::fs::read(&program).map_err(|e| loader::LoadError::Io(name.clone(), e))?;
    let mut mem = mem::Memory::reserve()?;
    let img = loader::load_elf(&name, &data, &mut mem)?;
    let hash = *blake3::hash(&data).as_bytes();
    drop(data);
    let exe = std::fs::canonicalize(&program)
        .unwrap_or_else(|_| program.clone())
        .display()
        .to_string();
    let mut argv: Vec<Vec<u8>> = vec![program.as_os_str().as_bytes().to_vec()];
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let envp: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut e = k.as_bytes().to_vec();
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e
        })
        .collect();
    let sp = loader::build_stack(
        &mut mem,
        &img,
        &argv,
        &envp,
        program.as_os_str().as_bytes(),
        semantics::slow::hwcap(),
    )?;
    let mut cpu = cpu::Cpu::new(mem.base());
    cpu.rip = img.entry;
    cpu.gpr[4] = sp;
    let proc = linux::Process::new(mem, exe);
    let cache = if tier == Tier::Auto && !no_cache {
        match cache::default_dir() {
            Some(dir) => match cache::Cache::open(&dir) {
                Ok(c) => Some(c),
                Err(e @ cache::CacheError::Dir(..)) => {
                    eprintln!("kiln: warning: {e}; running without the cache");
                    None
                }
                Err(e) => {
                    klog!("cache", "{e}; running without the cache");
                    None
                }
            },
            None => None,
        }
    } else {
        None
    };
    let module = Module {
        hash,
        load_bias: img.load_bias,
        lo: img.lo,
        hi: img.hi,
    };
    let mut engine = Engine::new(cpu, proc, tier, module, cache)?;
    let outcome = engine.run();
    engine.persist();
    engine.finish_stats();
    if let Ok(mode) = std::env::var("KILN_STATS") {
        engine.stats.report(&mode);
    }
    match outcome {
        Outcome::Exit(c) => Ok(c & 0xff),
        Outcome::Signal(s) => die_of(s),
    }
}
