//! The shape `docs/ARCHITECTURE.md` promises, checked on the source: modules import only the
//! modules below them in the layering, and no function grows past 150 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and the modules it may import (the layering drawn in
/// `docs/ARCHITECTURE.md`; `log`'s macro and `stats` may be used everywhere).
const LAYERS: &[(&str, &[&str])] = &[
    ("log", &[]),
    ("allocator", &[]),
    ("stats", &[]),
    ("mem", &[]),
    ("cpu", &["mem"]),
    ("decode", &["cpu"]),
    ("loader", &["cpu", "mem"]),
    ("cache", &["mem"]),
    ("semantics", &["cpu", "mem", "decode"]),
    ("interp", &["semantics", "decode", "cpu", "mem"]),
    ("jit", &["semantics", "decode", "cpu", "mem", "allocator"]),
    ("linux", &["loader", "cpu", "mem"]),
    (
        "service",
        &["jit", "semantics", "decode", "linux", "cache", "cpu", "mem"],
    ),
    ("bake", &["service", "jit", "decode", "cache"]),
    (
        "dispatch",
        &[
            "allocator",
            "service",
            "interp",
            "jit",
            "semantics",
            "decode",
            "linux",
            "cache",
            "loader",
            "cpu",
            "mem",
        ],
    ),
    (
        "fuzz",
        &[
            "dispatch",
            "interp",
            "jit",
            "semantics",
            "decode",
            "linux",
            "cpu",
            "mem",
        ],
    ),
    (
        "cli",
        &[
            "bake",
            "service",
            "dispatch",
            "fuzz",
            "cache",
            "jit",
            "loader",
            "linux",
            "semantics",
            "cpu",
            "mem",
        ],
    ),
];

const EVERYWHERE: &[&str] = &["log", "stats", "klog"];

/// Functions longer than the limit, with the reason they stay whole.
const LONG_FUNCTIONS: &[(&str, &str)] = &[];

const MAX_FUNCTION_LINES: usize = 150;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (None for lib.rs and main.rs).
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The code of a file without comments and string contents (so that neither can hold an
/// import or a brace).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                out.push('"');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    } else if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
                out.push('"');
                i += 1;
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'')) => {
                out.push_str("' '");
                i += if b[i + 1] == b'\\' { 4 } else { 3 };
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// The top-level modules a file's code names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

#[test]
fn no_module_imports_a_module_above_it() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let Some(module) = top_module(f) else { continue };
        let may = allowed
            .get(module.as_str())
            .unwrap_or_else(|| panic!("{module} is not in the layering table"));
        let code = code_only(&std::fs::read_to_string(f).expect("read"));
        for used in imports(&code) {
            if used != module && !may.contains(&used.as_str()) && !EVERYWHERE.contains(&used.as_str()) {
                wrong.push(format!("{} imports {used}", f.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

/// (file, first line, name, length) of every function in a file's code.
fn functions(file: &Path, code: &str) -> Vec<(String, usize, String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else { continue };
        let before = line[..at].trim();
        let keywords = ["", "pub", "const", "unsafe", "extern \"\"", "async"];
        let is_item = before
            .split_whitespace()
            .all(|w| keywords.contains(&w) || w.starts_with("pub(") || w == "\"\"");
        if !is_item {
            continue;
        }
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut started) = (0i64, false);
        for (j, l) in lines.iter().enumerate().skip(i) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        started = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if !started && l.trim_end().ends_with(';') {
                break;
            }
            if started && depth <= 0 {
                out.push((file.display().to_string(), i + 1, name.clone(), j - i + 1));
                break;
            }
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_150_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for f in &files {
        let code = code_only(&std::fs::read_to_string(f).expect("read"));
        for (file, line, name, len) in functions(f, &code) {
            let excused = LONG_FUNCTIONS.iter().any(|(n, _)| *n == name);
            if len > MAX_FUNCTION_LINES && !excused {
                long.push(format!("{file}:{line} {name}: {len} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_see_imports_and_lengths() {
    let code = code_only("use crate::{cpu, mem::X};\n// crate::jit in a comment\nlet s = \"crate::linux\";\n");
    assert_eq!(imports(&code), ["cpu", "mem"].iter().map(|s| s.to_string()).collect());
    let body = format!("pub fn f() {{\n{}}}\n", "    x();\n".repeat(10));
    let fns = functions(Path::new("f.rs"), &code_only(&body));
    assert_eq!(fns, vec![("f.rs".to_string(), 1, "f".to_string(), 12)]);
}
