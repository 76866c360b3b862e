//! `kiln run`: loads a program (and its interpreter) into a new guest address space, runs it
//! under the dispatcher, and ends the way the guest ended (exit status, death by signal, or
//! an execve re-executing Kiln on the new program).

use crate::dispatch::{Engine, Module, Outcome, Tier};
use crate::{cache, cpu, linux, loader, mem, semantics};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub(super) struct RunOptions {
    pub tier: Tier,
    pub no_cache: bool,
    pub cache_dir: Option<PathBuf>,
    pub argv0: Option<std::ffi::OsString>,
    pub signals: Option<(u64, u64)>,
}

pub(super) fn run(opts: RunOptions, program: PathBuf, args: Vec<std::ffi::OsString>) -> anyhow::Result<i32> {
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
    let (program, argv, data) = loader::script::resolve_script(program, argv)?;
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
