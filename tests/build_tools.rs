//! The distribution's own dynamically linked tools under Kiln, with native runs as the oracle:
//! coreutils, shells with pipelines and subshells, gcc producing identical objects, python3
//! and perl one-liners.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Runs `argv` natively and under Kiln in the given tiers (auto: cold, then warm), comparing.
fn same_everywhere(what: &str, argv: &[&str], tiers: &[&str]) {
    let bin = Path::new(argv[0]);
    let want = native(bin, &argv[1..], b"");
    assert!(
        want.status == Some(0) || want.status.is_some(),
        "{what}: native run failed: {}",
        show(&want)
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    for tier in tiers {
        let got = kiln(bin, tier, &cache, &argv[1..], b"", &[]);
        assert_same(&format!("{what} --tier {tier}"), &want, &got);
    }
}

const ALL: &[&str] = &["interp", "jit", "auto", "auto"];

#[test]
fn dynamic_coreutils_match_native() {
    let dir = root().join("tests").join("guest");
    let d = dir.to_str().unwrap();
    same_everywhere("echo", &["/bin/echo", "dynamic", "echo", "-n"], ALL);
    same_everywhere("ls", &["/bin/ls", "-l", "--time-style=+", d], ALL);
    same_everywhere(
        "sort",
        &["/usr/bin/sort", "-r", &format!("{d}/hello.c"), &format!("{d}/crc32.c")],
        &["interp", "auto", "auto"],
    );
    same_everywhere(
        "md5sum",
        &["/usr/bin/md5sum", &format!("{d}/sha256.c")],
        &["interp", "auto", "auto"],
    );
}

const SCRIPT: &str = r#"
set -e
echo "start $0 $#"
for i in 3 1 2; do echo "item $i"; done | sort | tr a-z A-Z
x=$(echo inner | sed 's/in/out/')
echo "substituted: $x"
( cd /; pwd; exit 0 )
y=$( (echo nested; echo subshell) | wc -l )
echo "lines: $y"
f() { return 4; }
f || echo "function returned $?"
case "$x" in out*) echo matched ;; *) echo nope ;; esac
printf '%s-%d\n' word 42
echo done >&2
exit 5
"#;

#[test]
fn shell_scripts_with_pipelines_and_subshells() {
    for sh in ["/bin/sh", "/bin/bash"] {
        same_everywhere(
            sh,
            &[sh, "-c", SCRIPT, "scriptname", "a1", "a2"],
            &["interp", "auto", "auto"],
        );
    }
}

#[test]
fn gcc_compiles_identical_objects_and_links_a_working_program() {
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("kiln");
    let src = root().join("tests").join("guest");
    for name in ["hello.c", "sha256.c", "bitops.c"] {
        let c = src.join(name);
        let native_o = out.path().join(format!("{name}.native.o"));
        let kiln_o = out.path().join(format!("{name}.kiln.o"));
        let st = Command::new("gcc")
            .args(["-O2", "-c"])
            .arg(&c)
            .arg("-o")
            .arg(&native_o)
            .status()
            .unwrap();
        assert!(st.success());
        let r = kiln(
            Path::new("/usr/bin/gcc"),
            "auto",
            &cache,
            &["-O2", "-c", c.to_str().unwrap(), "-o", kiln_o.to_str().unwrap()],
            b"",
            &[],
        );
        assert_eq!(r.status, Some(0), "gcc under kiln: {}", show(&r));
        assert_eq!(
            std::fs::read(&native_o).unwrap(),
            std::fs::read(&kiln_o).unwrap(),
            "{name}: objects differ"
        );
    }
    let obj = out.path().join("hello.c.kiln.o");
    let exe = out.path().join("hello-linked");
    let r = kiln(
        Path::new("/usr/bin/gcc"),
        "auto",
        &cache,
        &[obj.to_str().unwrap(), "-o", exe.to_str().unwrap()],
        b"",
        &[],
    );
    assert_eq!(r.status, Some(0), "link under kiln: {}", show(&r));
    let ran = native(&exe, &["linked"], b"");
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "hello, world: 1 argument(s), first is \"linked\"\n"
    );
}

#[test]
fn python3_and_perl_one_liners() {
    let py = "import json, re, hashlib, math\n\
              d = {'k': [1, 2.5, None, 'x'], 'n': re.sub(r'(\\d+)', r'<\\1>', 'a1b22c333')}\n\
              print(json.dumps(d, sort_keys=True))\n\
              print(hashlib.sha256(b'kiln' * 1000).hexdigest(), math.sqrt(2), 10**30 // 7)\n\
              print(sorted({3, 1, 2}), '%.6e' % (1/3))\n\
              import threading\n\
              out = [0] * 8\n\
              def work(i): out[i] = sum(k * k for k in range(20000 * (i + 1)))\n\
              ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]\n\
              [t.start() for t in ts]; [t.join() for t in ts]\n\
              print(out)";
    same_everywhere("python3", &["/usr/bin/python3", "-c", py], &["interp", "auto", "auto"]);
    let pl = "my %h = map { $_ => length $_ } qw(alpha beta gamma); print join(',', map {\"$_=$h{$_}\"} sort keys %h), \"\\n\"; printf(\"%.5f %s\\n\", atan2(1,1)*4, scalar reverse 'kiln');";
    same_everywhere("perl", &["/usr/bin/perl", "-e", pl], &["interp", "auto", "auto"]);
}

/// `make -j2` of a small C project, run under Kiln with a cold and then a warm cache: the same
/// objects and programs as a native build, and a cache that verifies afterwards.
#[test]
fn make_j2_builds_a_project_with_cold_and_warm_cache() {
    let src = root().join("tests").join("guest");
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("kiln");
    let makefile =
        ".SECONDARY:\nall: hello sha256 crc32 bitops\n%.o: %.c\n\tgcc -O2 -c $< -o $@\n%: %.o\n\tgcc $< -o $@\n";
    let mut built = Vec::new();
    for who in ["native", "cold", "warm"] {
        let d = work.path().join(who);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["hello.c", "sha256.c", "crc32.c", "bitops.c"] {
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
        std::fs::write(d.join("Makefile"), makefile).unwrap();
        let mut cmd = if who == "native" {
            Command::new("make")
        } else {
            let mut c = Command::new(KILN);
            c.args(["run", "/usr/bin/make"])
                .env("KILN_CACHE_DIR", &cache)
                .env("KILN_CACHE_SYNC", "1");
            c
        };
        let o = cmd.args(["-r", "-j2", "-s"]).current_dir(&d).output().unwrap();
        assert!(
            o.status.success(),
            "{who} make failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut files = Vec::new();
        for f in [
            "hello.o", "sha256.o", "crc32.o", "bitops.o", "hello", "sha256", "crc32", "bitops",
        ] {
            files.push(std::fs::read(d.join(f)).unwrap_or_else(|_| panic!("{who}: {f} was not built")));
        }
        built.push(files);
        let run = Command::new(d.join("sha256")).arg("1000").output().unwrap();
        assert!(String::from_utf8_lossy(&run.stdout).starts_with("sha256 of 1000 generated bytes"));
    }
    assert!(
        built[1] == built[0],
        "cold build under Kiln differs from the native build"
    );
    assert!(
        built[2] == built[0],
        "warm build under Kiln differs from the native build"
    );
    let verify = Command::new(KILN)
        .args(["cache", "verify"])
        .env("KILN_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// A real project: `make -j2` of Lua (the 32 C files shipped in the lua-src crate, then the
/// link) with every gcc, cc1, as, collect2 and ld run under Kiln, first with an empty cache and
/// then with the cache that build left (filled the default way: the compile service merging
/// the runs' journals while the build goes on). Objects and program are byte-identical to the native
/// build's, the program runs a script identically, and the shared cache verifies afterwards.
#[test]
fn make_j2_builds_lua_under_kiln_identically_cold_and_warm() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("kiln");
    let native_dir = work.path().join("native");
    let o = make_lua(&native_dir, &[], &[], &[]);
    assert!(
        o.status.success(),
        "native make: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&native_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".o") || n == "lua")
        .collect();
    names.sort();
    assert!(names.len() >= 30, "native build made only {names:?}");
    for who in ["cold", "warm"] {
        let d = work.path().join(who);
        let o = make_lua(&d, &[KILN, "run"], &[("KILN_CACHE_DIR", &cache)], &[]);
        assert!(
            o.status.success(),
            "{who} make under Kiln: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for n in &names {
            let want = std::fs::read(native_dir.join(n)).unwrap();
            let got = std::fs::read(d.join(n)).unwrap_or_else(|_| panic!("{who}: {n} was not built"));
            assert!(want == got, "{who}: {n} differs from the native build");
        }
    }
    let script = root().join("tests/lua/float_heavy.lua");
    let lua = work.path().join("warm/lua");
    same_everywhere(
        "lua built under Kiln",
        &[lua.to_str().unwrap(), script.to_str().unwrap()],
        &["jit", "auto", "auto"],
    );
    let verify = Command::new(KILN)
        .args(["cache", "verify"])
        .env("KILN_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Lua built statically with musl runs a floating-point heavy script (series, libm, formatting
/// and parsing of doubles, sorting) exactly as natively, in every tier.
#[test]
fn static_musl_lua_runs_a_float_heavy_script_in_every_tier() {
    let work = tempfile::tempdir().unwrap();
    let o = make_lua(work.path(), &[], &[], &["CC=musl-gcc", "LDFLAGS=-static"]);
    assert!(o.status.success(), "musl make: {}", String::from_utf8_lossy(&o.stderr));
    let lua = work.path().join("lua");
    let script = root().join("tests/lua/float_heavy.lua");
    same_everywhere(
        "static musl lua",
        &[lua.to_str().unwrap(), script.to_str().unwrap()],
        ALL,
    );
}

/// A 117-line Python program (json, re, hashlib, zlib, threads with a queue, locks and a
/// condition variable, a subprocess) and a busybox shell script using its own sort, sed, awk,
/// md5sum, gzip and friends (busybox re-executes itself through /proc/self/exe).
#[test]
fn python3_script_and_busybox_script_match_native() {
    let py = root().join("tests/scripts/workload.py");
    same_everywhere(
        "python3 workload.py",
        &["/usr/bin/python3", py.to_str().unwrap()],
        &["jit", "auto", "auto"],
    );
    let sh = root().join("tests/scripts/busybox.sh");
    for tier in ["interp", "jit", "auto", "auto"] {
        // Each run writes into its own directory; the outputs are compared, then the files.
        let n = tempfile::tempdir().unwrap();
        let k = tempfile::tempdir().unwrap();
        let want = native(
            Path::new("/bin/busybox"),
            &["sh", sh.to_str().unwrap(), n.path().to_str().unwrap()],
            b"",
        );
        assert_eq!(want.status, Some(7), "native busybox: {}", show(&want));
        let cache = k.path().join("kiln");
        let got = kiln(
            Path::new("/bin/busybox"),
            tier,
            &cache,
            &["sh", sh.to_str().unwrap(), k.path().to_str().unwrap()],
            b"",
            &[],
        );
        assert_same(&format!("busybox sh busybox.sh --tier {tier}"), &want, &got);
        for f in ["data.txt", "data.gz"] {
            assert!(
                std::fs::read(n.path().join(f)).unwrap() == std::fs::read(k.path().join(f)).unwrap(),
                "busybox --tier {tier}: {f} differs"
            );
        }
    }
}

/// A program that is not position independent (gcc's cc1) has its units at the same offsets
/// whether the kernel maps it or the dynamic loader, run as the program, does: with a cache
/// filled by direct runs, cc1 through ld.so writes what it writes natively (its units were
/// looked up at file offsets instead of virtual addresses, and ran where another unit's code
/// belonged).
#[test]
fn a_program_run_through_the_dynamic_loader_uses_its_own_units() {
    let Some(cc1) = Command::new("gcc")
        .arg("-print-prog-name=cc1")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| Path::new(p).exists())
    else {
        eprintln!("skipped: no cc1");
        return;
    };
    let ld_so = Path::new("/lib64/ld-linux-x86-64.so.2");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let src = dir.path().join("t.i");
    std::fs::write(
        &src,
        "int square(int x) { return x * x; }\nint main(void) { return square(3); }\n",
    )
    .unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let args = |o: &str| {
        vec![
            "-quiet".to_string(),
            "-O2".into(),
            src.to_str().unwrap().into(),
            "-o".into(),
            o.into(),
        ]
    };
    let want = native(
        Path::new(&cc1),
        &args(&out("native.s")).iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
    );
    assert_eq!(want.status, Some(0), "native cc1: {}", show(&want));
    let expected = std::fs::read(out("native.s")).unwrap();
    let run = |bin: &Path, a: &[String]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        kiln(bin, "auto", &cache, &a, b"", &[])
    };
    for _ in 0..2 {
        let r = run(Path::new(&cc1), &args(&out("direct.s")));
        assert_eq!(r.status, Some(0), "cc1 under kiln: {}", show(&r));
        settle(&cache);
    }
    for round in 0..2 {
        let mut a = vec![cc1.clone()];
        a.extend(args(&out("via-ld.s")));
        let r = run(ld_so, &a);
        assert_eq!(r.status, Some(0), "cc1 through ld.so, run {round}: {}", show(&r));
        assert_eq!(
            std::fs::read(out("via-ld.s")).unwrap(),
            expected,
            "run {round}: output differs"
        );
        settle(&cache);
    }
}
