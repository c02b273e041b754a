//! What kind of program a command is: resolved through `PATH`, followed
//! through `#!` interpreters (and `/usr/bin/env NAME`), then read as ELF to
//! see whether it is dynamically linked (has a `PT_INTERP` program header,
//! so the dynamic loader will honour `LD_PRELOAD`), whether it is setuid
//! or setgid (the loader ignores `LD_PRELOAD` for those), and whether it is
//! a Go program (Go makes its system calls itself, `bind` included, so a
//! preloaded `bind()` never sees them, even in a dynamically linked Go
//! binary).
//!
//! A Go program is known by what Go's linker always writes and `strip`
//! keeps: the Go build-id note (`PT_NOTE` owner `Go`, type 4), the
//! `.go.buildinfo` section, or, with the section headers stripped too, the
//! build info's magic `\xff Go buildinf:` at the start of the first
//! writable `PT_LOAD` segment (where Go's linker places it). Each is read
//! by range: a few hundred bytes, never the whole program.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use object::elf::{FileHeader32, FileHeader64};
use object::elf::{PF_W, PF_X, PT_INTERP, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind, ReadCache, ReadRef};
use std::io::Read as _;
use thiserror::Error;

/// The longest `#!` line read.
const SHEBANG_MAX: usize = 512;

/// How deep `#!` chains are followed.
const MAX_SCRIPT_DEPTH: usize = 4;

/// The owner and type of the note Go's linker writes (`.note.go.buildid`).
const GO_NOTE_NAME: &[u8] = b"Go";
const GO_NOTE_BUILDID: u32 = 4;

/// The section that holds Go's build information.
const GO_BUILDINFO_SECTION: &[u8] = b".go.buildinfo";

/// The magic that opens Go's build information (16-byte aligned).
pub const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// How a program is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Go's build information is in the file: the program binds with raw
    /// system calls, not through libc.
    pub go: bool,
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
        let facts =
            elf_facts(data).ok_or_else(|| ExecutableError::NotElf { path: path.clone() })?;
        return Ok(Executable {
            setuid_or_setgid: meta.permissions().mode() & 0o6000 != 0,
            path,
            linkage: facts.linkage,
            go: facts.go,
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

/// What an ELF file's headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfFacts {
    pub linkage: Linkage,
    /// Go's build-id note, `.go.buildinfo` section or build-info magic.
    pub go: bool,
}

/// `Some(linkage)` for an ELF file, `None` for anything else. Reads only
/// the ranges it needs from `data` (bytes, or a `ReadCache` over a file).
pub fn linkage<'d, R: ReadRef<'d>>(data: R) -> Option<Linkage> {
    elf_facts(data).map(|f| f.linkage)
}

/// `Some(facts)` for an ELF file, `None` for anything else (or headers
/// that point outside the file). Reads only the ranges it needs.
pub fn elf_facts<'d, R: ReadRef<'d>>(data: R) -> Option<ElfFacts> {
    match FileKind::parse(data).ok()? {
        FileKind::Elf64 => facts_of::<FileHeader64<Endianness>, R>(data),
        FileKind::Elf32 => facts_of::<FileHeader32<Endianness>, R>(data),
        _ => None,
    }
}

/// [`elf_facts`] for an ELF file of class `Elf`.
fn facts_of<'d, Elf, R>(data: R) -> Option<ElfFacts>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let header = Elf::parse(data).ok()?;
    let e = header.endian().ok()?;
    let phdrs = header.program_headers(e, data).ok()?;
    let linkage = if phdrs.iter().any(|ph| ph.p_type(e) == PT_INTERP) {
        Linkage::Dynamic
    } else {
        Linkage::Static
    };
    let go = go_note(phdrs, e, data)
        || go_section(header, e, data)
        || go_magic_at_data_start(phdrs, e, data);
    Some(ElfFacts { linkage, go })
}

/// A `PT_NOTE` segment holds Go's build-id note.
fn go_note<'d, P, R>(phdrs: &[P], e: Endianness, data: R) -> bool
where
    P: ProgramHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    phdrs.iter().any(|ph| {
        let Ok(Some(mut notes)) = ph.notes(e, data) else {
            return false;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == GO_NOTE_NAME && note.n_type(e) == GO_NOTE_BUILDID {
                return true;
            }
        }
        false
    })
}

/// A section named `.go.buildinfo` (section headers not stripped).
fn go_section<'d, Elf, R>(header: &Elf, e: Endianness, data: R) -> bool
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    header
        .sections(e, data)
        .is_ok_and(|s| s.section_by_name(e, GO_BUILDINFO_SECTION).is_some())
}

/// Go's build-info magic opens the first writable, non-executable
/// `PT_LOAD` segment (where Go's own `debug/buildinfo` looks when the
/// section headers are gone).
fn go_magic_at_data_start<'d, P, R>(phdrs: &[P], e: Endianness, data: R) -> bool
where
    P: ProgramHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    phdrs
        .iter()
        .find(|ph| ph.p_type(e) == PT_LOAD && ph.p_flags(e) & (PF_X | PF_W) == PF_W)
        .and_then(|ph| {
            let offset: u64 = ph.p_offset(e).into();
            data.read_bytes_at(offset, GO_BUILDINFO_MAGIC.len() as u64)
                .ok()
        })
        .is_some_and(|bytes| bytes == GO_BUILDINFO_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corefit_test_support::apps::go_app;

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

    /// `bytes` with the ELF64 little-endian field at `at` set to `value`.
    fn patched(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    }

    #[test]
    fn go_programs_are_known_by_their_build_info_dynamic_or_static() {
        for (name, linkage) in [
            ("hello-dynamic", Linkage::Dynamic),
            ("hello-static", Linkage::Static),
        ] {
            let path = go_app(name);
            let e = inspect(path.to_str().unwrap(), None).unwrap();
            assert_eq!((e.linkage, e.go), (linkage, true), "{name}");

            // Each sign alone is enough: the note with the section headers
            // gone (e_shoff = 0, e_shnum = 0, as a thorough strip leaves
            // it), then the magic at the data segment's start with the note
            // renamed too.
            let bytes = std::fs::read(&path).unwrap();
            let no_sections = patched(patched(bytes.clone(), 0x28, &[0; 8]), 0x3c, &[0; 2]);
            let f = elf_facts(&no_sections[..]).unwrap();
            assert_eq!((f.linkage, f.go), (linkage, true), "{name}: note");
            // The note: namesz 4, descsz, type 4, then the name "Go\0\0".
            let name = (12..no_sections.len() - 4)
                .find(|&i| {
                    no_sections[i..i + 4] == *b"Go\0\0"
                        && no_sections[i - 4..i] == [4, 0, 0, 0]
                        && no_sections[i - 12..i - 8] == [4, 0, 0, 0]
                })
                .expect("the Go note");
            let mut magic_only = no_sections.clone();
            magic_only[name + 1] = b'x';
            let f = elf_facts(&magic_only[..]).unwrap();
            assert_eq!((f.linkage, f.go), (linkage, true), "{name}: magic");
            // And with the magic gone as well, it is just a program.
            let at = magic_only
                .windows(GO_BUILDINFO_MAGIC.len())
                .position(|w| w == GO_BUILDINFO_MAGIC)
                .unwrap();
            magic_only[at] = 0;
            let f = elf_facts(&magic_only[..]).unwrap();
            assert_eq!((f.linkage, f.go), (linkage, false), "{name}: no sign left");
            // The section alone (note and magic gone, section headers kept).
            let mut section_only = bytes.clone();
            section_only[name + 1] = b'x';
            section_only[at] = 0;
            let f = elf_facts(&section_only[..]).unwrap();
            assert_eq!((f.linkage, f.go), (linkage, true), "{name}: section");
        }
    }

    #[test]
    fn c_programs_are_not_go() {
        for p in ["/bin/sh", "/bin/busybox", "/usr/bin/python3"] {
            assert!(!inspect(p, None).unwrap().go, "{p}");
        }
    }

    #[test]
    fn truncated_and_garbled_elf_files_never_panic() {
        let bytes = std::fs::read(go_app("hello-static")).unwrap();
        // Every prefix up to past the headers, then every 64th.
        let cuts = (0..4096).chain((4096..bytes.len()).step_by(4093));
        for cut in cuts {
            let _ = elf_facts(&bytes[..cut]);
        }
        // Header fields overwritten with extreme values.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % 64) as usize;
            let value = (seed >> 8).to_le_bytes();
            let len = 1 + (seed >> 40) as usize % 8;
            let end = (at + len).min(64);
            let _ = elf_facts(&patched(bytes[..8192].to_vec(), at, &value[..end - at])[..]);
        }
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
