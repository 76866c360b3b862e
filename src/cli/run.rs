//! `kiln run`: loads a program (and its interpreter) into a new guest address space, runs it
//! under the dispatcher, and ends the way the guest ended (exit status, death by signal, or
//! an execve re-executing Kiln on the new program).

use crate::dispatch::{Engine, Module, Outcome, Tier};
use crate::{cache, cpu, linux, loader, mem, semantics};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(super) struct RunOptions {
    pub tier: Tier,
    pub no_cache: bool,
    pub cache_dir: Option<PathBuf>,
    pub argv0: Option<std::ffi::OsString>,
    pub signals: Option<(u64, u64)>,
}

pub(super) fn run(opts: RunOptions, program: PathBuf, args: Vec<std::ffi::OsString>) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    let execfn = program.as_os_str().as_bytes().to_vec();
    let argv0 = opts
        .argv0
        .as_ref()
        .map(|a| a.as_bytes().to_vec())
        .unwrap_or_else(|| execfn.clone());
    let mut argv: Vec<Vec<u8>> = vec![argv0];
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let (program, argv) = loader::script::resolve_script(program, argv)?;
    let cache = cache_dir(&opts);
    let mut engine = start(&opts, &program, &argv, &execfn, cache)?;
    engine.set_program(&program, started);
    let outcome = engine.run();
    engine.finish_process();
    if !matches!(outcome, Outcome::Exec(_)) {
        // The process ends now: the kernel takes back its mappings in one go, where dropping
        // the engine would unmap its table, packs and heap blocks one by one first.
        std::mem::forget(engine);
    }
    match outcome {
        Outcome::Exit(c) | Outcome::ExitGroup(c) => Ok(c & 0xff),
        Outcome::Signal(s) => linux::signals::die_of(s),
        Outcome::Exec(req) => exec_under_kiln(&opts, req),
    }
}

/// The cache directory this run uses (auto tier only), prepared; None without the cache.
fn cache_dir(opts: &RunOptions) -> Option<PathBuf> {
    if opts.tier != Tier::Auto || opts.no_cache {
        return None;
    }
    let dir = opts.cache_dir.clone().or_else(cache::default_dir)?;
    // Absolute: the guest may change directory before the run writes to the cache.
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    match cache::prepare_dir(&dir) {
        Ok(()) => Some(dir),
        Err(e) => {
            eprintln!("kiln: warning: {e}; running without the cache");
            None
        }
    }
}

/// A module's identity for the cache (memoised by file identity there); zero without it.
fn module_hash(cache: Option<&PathBuf>, path: &Path, data: &[u8]) -> cache_format::Hash {
    cache
        .and_then(|dir| {
            let f = std::fs::File::open(path).ok()?;
            cache::memo::file_hash(dir, &f, Some(data))
        })
        .unwrap_or_default()
}

/// Loads the program and its interpreter into a new guest address space, builds the initial
/// stack, and returns the main thread's dispatcher, ready to run.
fn start(
    opts: &RunOptions,
    program: &Path,
    argv: &[Vec<u8>],
    execfn: &[u8],
    cache: Option<PathBuf>,
) -> anyhow::Result<Engine> {
    let name = program.display().to_string();
    let mut mem = mem::Memory::reserve()?;
    let image = loader::ImageFile::open(&name)?;
    let img = loader::load_elf(&name, image.bytes(), Some(&image.file), &mut mem, mem::layout::PIE_BASE)?;
    mem.set_brk_start(img.hi);
    let hash = module_hash(cache.as_ref(), program, image.bytes());
    drop(image);
    let (mut entry, mut interp_base, mut interp) = (img.entry, 0, None);
    if let Some(path) = &img.interp {
        let iimage = loader::ImageFile::open(path)?;
        let idata = iimage.bytes();
        let ii = loader::load_elf(path, idata, Some(&iimage.file), &mut mem, mem::layout::INTERP_BASE)?;
        entry = ii.entry;
        interp_base = ii.load_bias;
        let m = Module {
            hash: module_hash(cache.as_ref(), Path::new(path), idata),
            load_bias: ii.load_bias,
            lo: ii.lo,
            hi: ii.hi,
        };
        interp = Some((m, path.clone(), ii.code));
    }
    let envp: Vec<Vec<u8>> = std::env::vars_os()
        .filter(|(k, _)| !is_kiln_setting(k.as_bytes()))
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .collect();
    let info = loader::StackInfo {
        execfn,
        hwcap: semantics::slow::hwcap(),
        interp_base,
    };
    let (sp, auxv) = loader::build_stack(&mut mem, &img, argv, &envp, &info)?;
    let mut cpu = cpu::Cpu::new();
    cpu.rip = entry;
    cpu.gpr[4] = sp;
    let exe = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    let mut proc = linux::Process::new(mem, exe.display().to_string());
    proc.auxv = auxv;
    proc.inherit_signals(opts.signals);
    let module = Module {
        hash,
        load_bias: img.load_bias,
        lo: img.lo,
        hi: img.hi,
    };
    let extra: Vec<Module> = interp.iter().map(|(m, ..)| *m).collect();
    let mut engine = Engine::new(cpu, std::sync::Arc::new(proc), opts.tier, module, extra, cache)?;
    engine.name_module(hash, program);
    engine.record_module_file(module, &exe, &img.code);
    if let Some((m, path, code)) = interp {
        engine.name_module(m.hash, Path::new(&path));
        let path = std::fs::canonicalize(&path).unwrap_or_else(|_| path.into());
        engine.record_module_file(m, &path, &code);
    }
    Ok(engine)
}

/// Replaces this process with Kiln running the program a guest execve asked for, with the same
/// tier and cache settings.
fn exec_under_kiln(opts: &RunOptions, req: linux::ExecRequest) -> ! {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let cs = linux::host::c_string;
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
    let e = linux::host::reexec_self(&args, &with_kiln_settings(req.envp));
    eprintln!("kiln: cannot re-execute {} for the guest's execve: {}", me.display(), e);
    std::process::exit(127)
}

/// Whether an environment variable (name, or `NAME=value`) is one of Kiln's own settings
/// (`KILN_*`: cache directory, statistics, logs...). These are Kiln's, not the guest's, and are
/// left out of the guest's environment: they would move the guest's strings, and with them the
/// paths libc's string functions take (page-crossing and alignment checks), so that turning
/// statistics or logs on would make a warm run meet code the cold run never cached.
fn is_kiln_setting(var: &[u8]) -> bool {
    var.starts_with(b"KILN_")
}

/// The environment of Kiln re-executed for a guest's execve: the guest's, plus Kiln's own
/// settings (hidden from the guest) unless the guest set one itself.
fn with_kiln_settings(mut envp: Vec<std::ffi::CString>) -> Vec<std::ffi::CString> {
    let name = |v: &[u8]| v.split(|&b| b == b'=').next().map(<[u8]>::to_vec).unwrap_or_default();
    let guest: std::collections::HashSet<Vec<u8>> = envp.iter().map(|v| name(v.as_bytes())).collect();
    for (k, v) in std::env::vars_os() {
        let k = k.as_bytes();
        if !is_kiln_setting(k) || guest.contains(k) {
            continue;
        }
        if let Ok(c) = std::ffi::CString::new([k, b"=", v.as_bytes()].concat()) {
            envp.push(c);
        }
    }
    envp
}
