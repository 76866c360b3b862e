//! Kiln's command line: `kiln run` emulates a program; `kiln cache` inspects the cache.

mod cache;
mod cpu;
mod decode;
mod dispatch;
mod fuzz;
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
    },
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
    },
    /// Inspect or manage the translation cache.
    Cache {
        #[command(subcommand)]
        op: CacheOp,
    },
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

fn main() {
    let cli = Cli::parse();
    let report = match &cli.cmd {
        Cmd::Fuzz { .. } => true,
        Cmd::Cache { op } => !matches!(op, CacheOp::Merge { .. }),
        _ => false,
    };
    if report {
        // Kiln's own reports end quietly when their reader goes away (`kiln fuzz | head`),
        // as other tools do; `run` keeps the disposition its guest must see, and a journal
        // merger its errors.
        // SAFETY: restoring a signal's default disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let r = match cli.cmd {
        Cmd::Run {
            tier,
            no_cache,
            cache_dir,
            argv0,
            signals,
            program,
            args,
        } => run(
            RunOptions {
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
        Cmd::Cache { op } => cache_cmd(op),
        Cmd::Fuzz {
            cases,
            seed,
            case,
            batch,
            feature,
            coverage,
        } => {
            if coverage {
                fuzz::coverage();
                Ok(0)
            } else {
                fuzz::run(cases, seed, case, batch, feature.as_deref()).map(|m| if m == 0 { 0 } else { 1 })
            }
        }
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
    if let CacheOp::Merge { journals } = &op {
        for j in journals {
            Engine::merge_journal(j)?;
        }
        // Journals left by mergers that died (merging is idempotent, so racing another merger
        // for the same journal is harmless).
        if let Some(jdir) = journals.first().and_then(|j| j.parent()) {
            let mut left: Vec<PathBuf> = std::fs::read_dir(jdir)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            left.retain(|p| p.extension().is_some_and(|x| x == "journal"));
            left.sort();
            for j in left {
                if let Err(e) = Engine::merge_journal(&j) {
                    crate::klog!("cache", "{e}");
                }
            }
        }
        return Ok(0);
    }
    let dir = cache::default_dir().context("no cache directory: set KILN_CACHE_DIR or HOME")?;
    let c = cache::Cache::open(&dir)?;
    let d = dir.display().to_string();
    match op {
        CacheOp::Stats { json } => {
            let s = c.summary();
            let u = cache::usage::summarise(&cache::usage::read(&dir));
            let bytes = cache::gc::disk_usage(&dir);
            if json {
                let mut v = serde_json::to_value(&s)?;
                v["dir"] = d.into();
                v["disk_bytes"] = bytes.into();
                v["max_bytes"] = cache::gc::max_bytes().into();
                v["usage"] = serde_json::to_value(&u)?;
                println!("{v}");
            } else {
                print_stats(&d, &s, &u, bytes);
            }
        }
        CacheOp::Gc { json, max } => {
            let max = match max {
                Some(m) => cache::gc::parse_size(&m).with_context(|| format!("--max {m}: not a size"))?,
                None => cache::gc::max_bytes(),
            };
            let r = cache::gc::collect(&c, max);
            if json {
                let mut v = serde_json::to_value(&r)?;
                v["dir"] = d.into();
                println!("{v}");
            } else {
                println!(
                    "{d}: {} -> {} bytes (cap {}); removed {} invalid files and {} modules",
                    r.bytes_before, r.bytes_after, r.max_bytes, r.invalid_removed, r.modules_removed
                );
            }
        }
        CacheOp::Verify { json } => {
            let (ok, bad) = c.verify();
            if json {
                println!("{}", serde_json::json!({"dir": d, "valid": ok, "damaged": bad}));
            } else {
                println!("{d}: {ok} valid units, {bad} damaged");
            }
            return Ok(if bad == 0 { 0 } else { 1 });
        }
        CacheOp::Clear { json } => {
            c.clear()?;
            let _ = std::fs::remove_dir_all(dir.join("packs"));
            if json {
                println!("{}", serde_json::json!({"dir": d, "cleared": true}));
            } else {
                println!("{d}: cleared");
            }
        }
        CacheOp::Merge { .. } => {}
    }
    Ok(0)
}

/// `kiln cache stats` as text.
fn print_stats(d: &str, s: &cache::Summary, u: &cache::usage::UsageSummary, bytes: u64) {
    println!(
        "{d}: {bytes} bytes on disk (cap {}); {} modules, {} configurations, {} units ({} guest \
         instructions, {} bytes of code, {} not yet packed); {} packs ({} bytes); {} journals to merge",
        cache::gc::max_bytes(),
        s.modules,
        s.configs,
        s.units,
        s.guest_insns,
        s.code_bytes,
        s.unpacked,
        s.packs,
        s.pack_bytes,
        s.journals
    );
    println!(
        "{} runs recorded: {} cache hits, {} misses (hit rate {:.2}%); {:.0} us of Cranelift per unit compiled",
        u.runs,
        u.hits,
        u.misses,
        u.hit_rate * 100.0,
        u.compile_us_per_unit
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let ago = |t: u64| {
        let a = now.saturating_sub(t) / 1000;
        match a {
            0..=119 => format!("{a} s ago"),
            120..=7199 => format!("{} min ago", a / 60),
            7200..=172_799 => format!("{} h ago", a / 3600),
            _ => format!("{} days ago", a / 86400),
        }
    };
    if !u.programs.is_empty() {
        println!(
            "{:<20} {:>5} {:>9} {:>11} {:>10} {:>10} {:>15}  last use",
            "program", "runs", "hit rate", "warm cached", "first ms", "last ms", "compile saved"
        );
        for p in &u.programs {
            println!(
                "{:<20} {:>5} {:>8.2}% {:>10.2}% {:>10.1} {:>10.1} {:>12.0} ms  {}",
                p.name,
                p.runs,
                p.hit_rate * 100.0,
                p.warm_compiled_share * 100.0,
                p.first_wall_ms,
                p.last_wall_ms,
                p.compile_ms_saved,
                ago(p.last_use)
            );
        }
    }
    for m in u.modules.iter().filter(|m| m.programs.len() > 1) {
        println!(
            "module {} ({}...): {} hits from {} programs ({}), last used {}",
            m.name,
            &m.hash[..12],
            m.hits,
            m.programs.len(),
            m.programs.join(", "),
            ago(m.last_use)
        );
    }
}

/// Replaces this process with Kiln running the program a guest execve asked for, with the same
/// tier and cache settings.
fn exec_under_kiln(opts: &RunOptions, req: linux::ExecRequest) -> ! {
    use std::ffi::CString;
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let cs = |b: &[u8]| CString::new(b.to_vec()).unwrap_or_default();
    let tier = match opts.tier {
        Tier::Interp => "interp",
        Tier::Jit => "jit",
        Tier::Auto => "auto",
    };
    let mut args = vec![
        cs(me.as_os_str().as_bytes()),
        cs(b"run"),
        cs(b"--tier"),
        cs(tier.as_bytes()),
    ];
    if opts.no_cache {
        args.push(cs(b"--no-cache"));
    } else if let Some(d) = opts.cache_dir.clone().or_else(cache::default_dir) {
        args.push(cs(b"--cache-dir"));
        args.push(cs(d.as_os_str().as_bytes()));
    }
    let argv0 = req.argv.first().cloned().unwrap_or_else(|| req.path.clone());
    args.push(cs(b"--argv0"));
    args.push(argv0);
    args.push(cs(b"--signals"));
    args.push(cs(format!("{:x}:{:x}", req.ignored, req.blocked).as_bytes()));
    args.push(cs(b"--"));
    args.push(req.path.clone());
    args.extend(req.argv.iter().skip(1).cloned());
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = req.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // The running binary itself, even if its file was replaced or deleted since it started.
    let exe = cs(b"/proc/self/exe");
    // SAFETY: argv and envp are NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(exe.as_ptr(), argp.as_ptr(), envp.as_ptr()) };
    eprintln!(
        "kiln: cannot re-execute {} for the guest's execve: {}",
        me.display(),
        std::io::Error::last_os_error()
    );
    std::process::exit(127)
}

/// Resolves `#!` scripts the way the kernel does: returns the program to load and its argv.
fn resolve_script(program: PathBuf, argv: Vec<Vec<u8>>) -> anyhow::Result<(PathBuf, Vec<Vec<u8>>, Vec<u8>)> {
    let (mut program, mut argv) = (program, argv);
    for _ in 0..4 {
        let name = program.display().to_string();
        let mut head = [0u8; 256];
        let n = {
            use std::io::Read;
            let mut f = std::fs::File::open(&program).map_err(|e| loader::LoadError::Io(name.clone(), e))?;
            f.read(&mut head).map_err(|e| loader::LoadError::Io(name.clone(), e))?
        };
        if n < 2 || &head[..2] != b"#!" {
            let data = std::fs::read(&program).map_err(|e| loader::LoadError::Io(name.clone(), e))?;
            return Ok((program, argv, data));
        }
        let line = head[2..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = String::from_utf8_lossy(line).trim().to_string();
        let mut parts = line.splitn(2, [' ', '\t']);
        let interp = parts.next().unwrap_or("").to_string();
        if interp.is_empty() {
            anyhow::bail!("{name}: empty #! line");
        }
        let mut new_argv = vec![interp.clone().into_bytes()];
        if let Some(arg) = parts.next().map(str::trim).filter(|a| !a.is_empty()) {
            new_argv.push(arg.as_bytes().to_vec());
        }
        new_argv.push(program.as_os_str().as_bytes().to_vec());
        new_argv.extend(argv.into_iter().skip(1));
        program = PathBuf::from(interp);
        argv = new_argv;
    }
    anyhow::bail!("{}: too many levels of #! interpreters", program.display())
}

struct RunOptions {
    tier: Tier,
    no_cache: bool,
    cache_dir: Option<PathBuf>,
    argv0: Option<std::ffi::OsString>,
    signals: Option<(u64, u64)>,
}

fn run(opts: RunOptions, program: PathBuf, args: Vec<std::ffi::OsString>) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    let RunOptions { tier, no_cache, .. } = opts;
    let execfn = program.as_os_str().as_bytes().to_vec();
    let argv0 = opts
        .argv0
        .as_ref()
        .map(|a| a.as_bytes().to_vec())
        .unwrap_or_else(|| execfn.clone());
    let mut argv: Vec<Vec<u8>> = vec![argv0];
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let (program, argv, data) = resolve_script(program, argv)?;
    let name = program.display().to_string();
    let mut mem = mem::Memory::reserve()?;
    let img = loader::load_elf(&name, &data, &mut mem, mem::layout::PIE_BASE)?;
    mem.set_brk_start(img.hi);
    let cache = if tier == Tier::Auto && !no_cache {
        match opts.cache_dir.clone().or_else(cache::default_dir) {
            Some(dir) => match cache::prepare_dir(&dir) {
                Ok(()) => Some(dir),
                Err(e) => {
                    eprintln!("kiln: warning: {e}; running without the cache");
                    None
                }
            },
            None => None,
        }
    } else {
        None
    };
    // Module identity matters only to the cache; it is memoised by file identity there.
    let module_hash = |path: &std::path::Path, data: &[u8]| -> cache_format::Hash {
        cache
            .as_ref()
            .and_then(|dir| {
                let f = std::fs::File::open(path).ok()?;
                cache::memo::file_hash(dir, &f, Some(data))
            })
            .unwrap_or_default()
    };
    let hash = module_hash(&program, &data);
    drop(data);
    let mut entry = img.entry;
    let mut interp_base = 0;
    let mut extra_modules = Vec::new();
    if let Some(interp) = &img.interp {
        let idata = std::fs::read(interp).map_err(|e| loader::LoadError::Io(interp.clone(), e))?;
        let ii = loader::load_elf(interp, &idata, &mut mem, mem::layout::INTERP_BASE)?;
        entry = ii.entry;
        interp_base = ii.load_bias;
        extra_modules.push(Module {
            hash: module_hash(std::path::Path::new(interp), &idata),
            load_bias: ii.load_bias,
            lo: ii.lo,
            hi: ii.hi,
        });
    }
    let exe = std::fs::canonicalize(&program)
        .unwrap_or_else(|_| program.clone())
        .display()
        .to_string();
    let envp: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut e = k.as_bytes().to_vec();
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e
        })
        .collect();
    let info = loader::StackInfo {
        execfn: &execfn,
        hwcap: semantics::slow::hwcap(),
        interp_base,
    };
    let (sp, auxv) = loader::build_stack(&mut mem, &img, &argv, &envp, &info)?;
    let mut cpu = cpu::Cpu::new(mem.base());
    cpu.rip = entry;
    cpu.gpr[4] = sp;
    let mut proc = linux::Process::new(mem, exe);
    proc.auxv = auxv;
    proc.inherit_signals(opts.signals);
    let proc = std::sync::Arc::new(proc);
    let module = Module {
        hash,
        load_bias: img.load_bias,
        lo: img.lo,
        hi: img.hi,
    };
    let names: Vec<_> = extra_modules.iter().map(|m| m.hash).zip(img.interp.clone()).collect();
    let mut engine = Engine::new(cpu, proc, tier, module, extra_modules, cache)?;
    engine.name_module(hash, &program);
    for (h, n) in names {
        engine.name_module(h, std::path::Path::new(&n));
    }
    let outcome = engine.run();
    engine.persist();
    engine.finish_stats();
    engine.record_usage(&program, started.elapsed());
    if let Ok(mode) = std::env::var("KILN_STATS") {
        engine.stats.report(&mode);
    }
    match outcome {
        Outcome::Exit(c) | Outcome::ExitGroup(c) => Ok(c & 0xff),
        Outcome::Signal(s) => linux::signals::die_of(s),
        Outcome::Exec(req) => exec_under_kiln(&opts, req),
    }
}
