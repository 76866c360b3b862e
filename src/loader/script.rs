//! `#!` scripts, resolved the way the kernel's binfmt_script does.

use super::LoadError;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Resolves `#!` scripts the way the kernel does: returns the program to load and its argv.
pub fn resolve_script(program: PathBuf, argv: Vec<Vec<u8>>) -> anyhow::Result<(PathBuf, Vec<Vec<u8>>)> {
    let (mut program, mut argv) = (program, argv);
    for _ in 0..4 {
        let name = program.display().to_string();
        let mut head = [0u8; 256];
        let n = {
            use std::io::Read;
            let mut f = std::fs::File::open(&program).map_err(|e| LoadError::Io(name.clone(), e))?;
            f.read(&mut head).map_err(|e| LoadError::Io(name.clone(), e))?
        };
        if n < 2 || &head[..2] != b"#!" {
            return Ok((program, argv));
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
