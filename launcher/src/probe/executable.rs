//! What kind of program a command is: resolved through `PATH`, followed
//! through `#!` interpreters (and `/usr/bin/env NAME`), then read as ELF to
//! see whether it is dynamically linked (has a `PT_INTERP` program header,
//! so the dynamic loader will honour `LD_PRELOAD`) and whether it is setuid
//! or setgid (the loader ignores `LD_PRELOAD` for those).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use object::elf::{FileHeader32, FileHeader64};
use object::read::elf::{ElfFile, FileHeader, ProgramHeader};
use object::{elf::PT_INTERP, Endianness, FileKind, ReadCache, ReadRef};
use std::io::Read as _;
use thiserror::Error;

/// The longest `#!` line read.
const SHEBANG_MAX: usize = 512;

/// How deep `#!` chains are followed.
const MAX_SCRIPT_DEPTH: usize = 4;

/// How a program is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    /// Has a program interpreter (the dynamic loader).
    Dynamic,
    /// No program interpreter: the loader never runs, preloads are ignored.
    Static,
}

/// The program that will really run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    /// The ELF file finally executed (after `#!` and `env`).
    pub path: PathBuf,
    pub linkage: Linkage,
    pub setuid_or_setgid: bool,
    /// The scripts followed to reach it, outermost first.
    pub via_scripts: Vec<PathBuf>,
}

/// Why a command could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExecutableError {
    #[error("{0}: command not found in PATH")]
    NotFound(String),
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: not an ELF executable or a #! script")]
    NotElf { path: PathBuf },
    #[error("{path}: #! interpreters nested more than {MAX_SCRIPT_DEPTH} deep")]
    TooDeep { path: PathBuf },
}

/// Finds `command` as execvp(3) would: a name with a slash is a path;
/// otherwise each `PATH` entry in turn.
pub fn resolve(command: &str, path_var: Option<&str>) -> Result<PathBuf, ExecutableError> {
    if command.contains('/') {
        return Ok(PathBuf::from(command));
    }
    let path_var = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(command);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(ExecutableError::NotFound(command.to_owned()))
}

/// Inspects what `command` will run.
pub fn inspect(command: &str, path_var: Option<&str>) -> Result<Executable, ExecutableError> {
    let mut path = resolve(command, path_var)?;
    let mut via_scripts = Vec::new();
    for _ in 0..=MAX_SCRIPT_DEPTH {
        let unreadable = |e: std::io::Error| ExecutableError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(&path).map_err(unreadable)?;
        let file = std::fs::File::open(&path).map_err(unreadable)?;
        // Only the first line and the ELF headers are read, never the whole
        // program (node is ~100 MB).
        let mut head = Vec::with_capacity(SHEBANG_MAX);
        std::io::Read::take(&file, SHEBANG_MAX as u64)
            .read_to_end(&mut head)
            .map_err(unreadable)?;
        if let Some(next) = shebang_target(&head, path_var)? {
            via_scripts.push(path);
            path = next;
            continue;
        }
        let cache = ReadCache::new(file);
        let data = &cache;
        let linkage =
            linkage(data).ok_or_else(|| ExecutableError::NotElf { path: path.clone() })?;
        return Ok(Executable {
            setuid_or_setgid: meta.permissions().mode() & 0o6000 != 0,
            path,
            linkage,
            via_scripts,
        });
    }
    Err(ExecutableError::TooDeep { path })
}

/// The program a `#!` line runs (`#!/usr/bin/env node` -> node in PATH).
fn shebang_target(data: &[u8], path_var: Option<&str>) -> Result<Option<PathBuf>, ExecutableError> {
    let Some(rest) = data.strip_prefix(b"#!") else {
        return Ok(None);
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let Some(interpreter) = words.next() else {
        return Ok(None);
    };
    if Path::new(interpreter)
        .file_name()
        .is_some_and(|n| n == "env")
    {
        // `env -S prog args` or `env prog`: the first word not an option.
        if let Some(prog) = words.find(|w| !w.starts_with('-')) {
            return resolve(prog, path_var).map(Some);
        }
    }
    Ok(Some(PathBuf::from(interpreter)))
}

/// `Some(linkage)` for an ELF file, `None` for anything else. Reads only
/// the ranges it needs from `data` (bytes, or a `ReadCache` over a file).
pub fn linkage<'d, R: ReadRef<'d>>(data: R) -> Option<Linkage> {
    let has_interp = match FileKind::parse(data).ok()? {
        FileKind::Elf64 => has_interp::<FileHeader64<Endianness>, R>(data)?,
        FileKind::Elf32 => has_interp::<FileHeader32<Endianness>, R>(data)?,
        _ => return None,
    };
    Some(if has_interp {
        Linkage::Dynamic
    } else {
        Linkage::Static
    })
}

/// Whether an ELF file of class `Elf` has a program interpreter.
fn has_interp<'d, Elf, R>(data: R) -> Option<bool>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let f = ElfFile::<Elf, R>::parse(data).ok()?;
    let e = f.endian();
    Some(
        f.elf_program_headers()
            .iter()
            .any(|ph| ph.p_type(e) == PT_INTERP),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_sh_are_dynamic() {
        let node = inspect("node", Some("/usr/bin:/bin")).unwrap();
        assert_eq!(node.linkage, Linkage::Dynamic);
        assert!(!node.setuid_or_setgid);
        assert_eq!(inspect("/bin/sh", None).unwrap().linkage, Linkage::Dynamic);
    }

    #[test]
    fn garbage_is_not_elf() {
        assert_eq!(linkage(&b""[..]), None);
        assert_eq!(linkage(&b"\x7fELF"[..]), None);
        assert_eq!(linkage(&[0u8; 4096][..]), None);
        assert_eq!(linkage(&b"MZ\x90\x00"[..]), None);
    }

    #[test]
    fn scripts_are_followed_through_env() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("app");
        std::fs::write(&script, "#!/usr/bin/env node\nconsole.log(1)\n").unwrap();
        let e = inspect(script.to_str().unwrap(), Some("/usr/bin:/bin")).unwrap();
        assert_eq!(e.via_scripts, vec![script]);
        assert!(e.path.ends_with("node"), "{:?}", e.path);
        assert_eq!(e.linkage, Linkage::Dynamic);
    }

    #[test]
    fn missing_commands_and_loops_are_errors() {
        assert_eq!(
            inspect("no-such-command-xyz", Some("/usr/bin")),
            Err(ExecutableError::NotFound("no-such-command-xyz".into()))
        );
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, format!("#!{}\n", a.display())).unwrap();
        assert!(matches!(
            inspect(a.to_str().unwrap(), None),
            Err(ExecutableError::TooDeep { .. })
        ));
        let text = dir.path().join("t");
        std::fs::write(&text, "hello").unwrap();
        assert!(matches!(
            inspect(text.to_str().unwrap(), None),
            Err(ExecutableError::NotElf { .. })
        ));
    }
}
