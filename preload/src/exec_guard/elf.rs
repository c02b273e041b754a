//! What the exec guard reads from a program file before it runs: the `#!`
//! line, and from an ELF file whether it has a program interpreter (only
//! then does the dynamic loader read `LD_PRELOAD`) and whether it is a Go
//! program (Go makes its system calls itself, `bind` included).
//!
//! It runs inside the app, possibly in a `vfork` child (dash execs its
//! commands from one), so it allocates nothing: every read goes through
//! [`ReadAt`] into a small buffer on the stack, every offset is checked,
//! and any header that does not make sense ends the reading with "not an
//! ELF file I understand" (the guard then lets the kernel decide).
//!
//! The Go signs are the ones the launcher's probe reads with the `object`
//! crate (`launcher/src/probe/executable.rs`): the Go build-id note in a
//! `PT_NOTE` segment, Go's build-info magic at the start of the first
//! writable `PT_LOAD` segment, or a section named `.go.buildinfo`.

/// Reads bytes at an offset: how many were read (0 at the end or on error).
pub trait ReadAt {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> usize;
}

impl ReadAt for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> usize {
        let Ok(start) = usize::try_from(offset) else {
            return 0;
        };
        let Some(rest) = self.get(start..) else {
            return 0;
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        n
    }
}

/// What an ELF file's headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfFacts {
    /// A `PT_INTERP` segment: the dynamic loader runs and reads `LD_PRELOAD`.
    pub dynamic: bool,
    /// Go's build-id note, build-info magic or `.go.buildinfo` section.
    pub go: bool,
}

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
/// Program headers read at most (real programs have about a dozen).
const MAX_PHDRS: u16 = 256;
/// Section headers read at most.
const MAX_SHDRS: u16 = 1024;
/// The note type of Go's build id, owner "Go".
const GO_NOTE_BUILDID: u32 = 4;
/// The magic that opens Go's build information.
pub const GO_BUILDINFO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const GO_BUILDINFO_SECTION: &[u8; 14] = b".go.buildinfo\0";

/// Field layout of one ELF class, and the byte order.
#[derive(Clone, Copy)]
struct Layout {
    wide: bool,
    big: bool,
}

impl Layout {
    /// An unsigned field of `n` bytes (at most 8) at `at`, in this byte
    /// order; `None` past the end of `b`.
    fn uint(self, b: &[u8], at: usize, n: usize) -> Option<u64> {
        let bytes = b.get(at..at.checked_add(n)?)?;
        let digit = |v: u64, &x: &u8| (v << 8) | u64::from(x);
        Some(if self.big {
            bytes.iter().fold(0, digit)
        } else {
            bytes.iter().rev().fold(0, digit)
        })
    }

    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        u16::try_from(self.uint(b, at, 2)?).ok()
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        u32::try_from(self.uint(b, at, 4)?).ok()
    }

    /// An address-sized field: 8 bytes in ELF64, 4 in ELF32.
    fn word(self, b: &[u8], at: usize) -> Option<u64> {
        self.uint(b, at, if self.wide { 8 } else { 4 })
    }

    fn phentsize(self) -> u16 {
        if self.wide {
            56
        } else {
            32
        }
    }

    fn shentsize(self) -> u16 {
        if self.wide {
            64
        } else {
            40
        }
    }
}

/// One program header's fields the guard uses.
#[derive(Clone, Copy)]
struct Segment {
    kind: u32,
    flags: u32,
    offset: u64,
    filesz: u64,
    align: u64,
}

/// The `#!` interpreter's path in `head` (the file's first bytes), if
/// the file is a script: the first word after `#!`, as the kernel reads it.
pub fn shebang(head: &[u8]) -> Option<&[u8]> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    let line = match line.iter().position(|&b| b != b' ' && b != b'\t') {
        Some(start) => &line[start..],
        None => return None,
    };
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == 0 || b == b'\r')
        .unwrap_or(line.len());
    Some(&line[..end]).filter(|p| !p.is_empty())
}

/// Reads the ELF headers of `file`: `None` when it is not an ELF file or
/// its headers point outside it or make no sense.
pub fn elf_facts(file: &mut impl ReadAt) -> Option<ElfFacts> {
    let mut h = [0u8; 64];
    let n = file.read_at(0, &mut h);
    if n < 52 || h[..4] != *b"\x7fELF" {
        return None;
    }
    let l = Layout {
        wide: match h[4] {
            1 => false,
            2 => true,
            _ => return None,
        },
        big: match h[5] {
            1 => false,
            2 => true,
            _ => return None,
        },
    };
    if l.wide && n < 64 {
        return None;
    }
    let (phoff, shoff) = if l.wide {
        (l.word(&h, 32)?, l.word(&h, 40)?)
    } else {
        (l.word(&h, 28)?, l.word(&h, 32)?)
    };
    let at = if l.wide { 54 } else { 42 };
    let (phentsize, phnum) = (l.u16(&h, at)?, l.u16(&h, at + 2)?);
    let (shentsize, shnum, shstrndx) = (l.u16(&h, at + 4)?, l.u16(&h, at + 6)?, l.u16(&h, at + 8)?);
    if phnum > MAX_PHDRS || (phnum > 0 && phentsize != l.phentsize()) {
        return None;
    }
    let mut facts = ElfFacts {
        dynamic: false,
        go: false,
    };
    let mut data_start = None;
    for i in 0..u64::from(phnum) {
        let seg = segment(file, l, phoff.checked_add(i * u64::from(phentsize))?)?;
        match seg.kind {
            PT_INTERP => facts.dynamic = true,
            PT_NOTE if !facts.go => facts.go = go_note(file, l, seg),
            PT_LOAD if data_start.is_none() && seg.flags & (PF_X | PF_W) == PF_W => {
                data_start = Some(seg.offset);
            }
            _ => {}
        }
    }
    if !facts.go {
        facts.go = data_start.is_some_and(|at| {
            let mut magic = [0u8; 14];
            file.read_at(at, &mut magic) == magic.len() && magic == *GO_BUILDINFO_MAGIC
        });
    }
    if !facts.go && shentsize == l.shentsize() && shnum <= MAX_SHDRS {
        facts.go = go_section(file, l, shoff, shnum, shstrndx);
    }
    Some(facts)
}

fn segment(file: &mut impl ReadAt, l: Layout, at: u64) -> Option<Segment> {
    let mut b = [0u8; 56];
    let len = usize::from(l.phentsize());
    if file.read_at(at, &mut b[..len]) != len {
        return None;
    }
    // Where p_flags, p_offset, p_filesz and p_align lie (p_type is at 0):
    // ELF64 moved p_flags up beside p_type.
    let [flags, offset, filesz, align] = if l.wide {
        [4, 8, 32, 48]
    } else {
        [24, 4, 16, 28]
    };
    Some(Segment {
        kind: l.u32(&b, 0)?,
        flags: l.u32(&b, flags)?,
        offset: l.word(&b, offset)?,
        filesz: l.word(&b, filesz)?,
        align: l.word(&b, align)?,
    })
}

/// Whether a `PT_NOTE` segment holds a note of owner "Go", type 4 (only
/// its first 1 KiB is read: Go's note segment is about 100 bytes).
fn go_note(file: &mut impl ReadAt, l: Layout, seg: Segment) -> bool {
    let mut buf = [0u8; 1024];
    let want = usize::try_from(seg.filesz).map_or(buf.len(), |s| s.min(buf.len()));
    let n = file.read_at(seg.offset, &mut buf[..want]);
    let notes = &buf[..n];
    let align = if seg.align == 8 { 8 } else { 4 };
    let mut at = 0usize;
    while let (Some(namesz), Some(descsz), Some(kind)) =
        (l.u32(notes, at), l.u32(notes, at + 4), l.u32(notes, at + 8))
    {
        let name_at = at + 12;
        let (Ok(namesz), Ok(descsz)) = (usize::try_from(namesz), usize::try_from(descsz)) else {
            return false;
        };
        let Some(name) = name_at
            .checked_add(namesz)
            .and_then(|end| notes.get(name_at..end))
        else {
            return false;
        };
        let owner = name.split(|&b| b == 0).next().unwrap_or_default();
        if owner == b"Go" && kind == GO_NOTE_BUILDID {
            return true;
        }
        let next = align_up(name_at + namesz, align)
            .and_then(|desc| desc.checked_add(descsz))
            .and_then(|end| align_up(end, align));
        match next {
            Some(next) if next > at => at = next,
            _ => return false,
        }
    }
    false
}

fn align_up(v: usize, align: usize) -> Option<usize> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// Whether a section is named `.go.buildinfo`.
fn go_section(file: &mut impl ReadAt, l: Layout, shoff: u64, shnum: u16, shstrndx: u16) -> bool {
    if shoff == 0 || shstrndx >= shnum {
        return false;
    }
    let entsize = u64::from(l.shentsize());
    let mut sh = [0u8; 64];
    let sh = &mut sh[..usize::from(l.shentsize())];
    // The section names' string table: offset and size.
    let strtab = shoff
        .checked_add(u64::from(shstrndx) * entsize)
        .filter(|&at| file.read_at(at, sh) == sh.len())
        .and_then(|_| {
            if l.wide {
                Some((l.word(sh, 24)?, l.word(sh, 32)?))
            } else {
                Some((l.word(sh, 16)?, l.word(sh, 20)?))
            }
        });
    let Some((str_off, str_size)) = strtab else {
        return false;
    };
    let mut name = [0u8; 14];
    (0..u64::from(shnum)).any(|i| {
        let Some(at) = shoff.checked_add(i * entsize) else {
            return false;
        };
        let mut field = [0u8; 4];
        if file.read_at(at, &mut field) != 4 {
            return false;
        }
        let Some(off) = l.u32(&field, 0).map(u64::from) else {
            return false;
        };
        off.checked_add(name.len() as u64)
            .is_some_and(|end| end <= str_size)
            && str_off
                .checked_add(off)
                .is_some_and(|at| file.read_at(at, &mut name) == name.len())
            && name == *GO_BUILDINFO_SECTION
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use corefit_test_support::apps::go_app;
    use std::path::PathBuf;

    fn facts(bytes: &[u8]) -> Option<ElfFacts> {
        elf_facts(&mut &bytes[..])
    }

    /// Counts the reads, to show the guard reads headers, not programs.
    struct Counting<'a>(&'a [u8], usize, usize);

    impl ReadAt for Counting<'_> {
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> usize {
            self.1 += 1;
            let n = (&self.0[..]).read_at(offset, buf);
            self.2 += n;
            n
        }
    }

    #[test]
    fn fields_in_either_byte_order_and_class() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8];
        let (le, be) = (
            Layout {
                wide: true,
                big: false,
            },
            Layout {
                wide: true,
                big: true,
            },
        );
        assert_eq!((le.u16(&b, 0), be.u16(&b, 0)), (Some(0x0201), Some(0x0102)));
        assert_eq!(
            (le.u32(&b, 4), be.u32(&b, 4)),
            (Some(0x0807_0605), Some(0x0506_0708))
        );
        assert_eq!(be.word(&b, 0), Some(0x0102_0304_0506_0708));
        assert_eq!(
            Layout {
                wide: false,
                big: true
            }
            .word(&b, 0),
            Some(0x0102_0304)
        );
        assert_eq!(
            (le.u16(&b, 7), le.u32(&b, 5), le.word(&b, 1)),
            (None, None, None)
        );
        assert_eq!(le.u16(&b, usize::MAX), None);
    }

    #[test]
    fn go_programs_dynamic_or_static_and_c_programs() {
        let go = |dynamic| ElfFacts { dynamic, go: true };
        let c = |dynamic| ElfFacts { dynamic, go: false };
        for (path, want) in [
            (go_app("hello-dynamic"), go(true)),
            (go_app("hello-static"), go(false)),
            (PathBuf::from("/bin/dash"), c(true)),
            (PathBuf::from("/bin/bash"), c(true)),
            (PathBuf::from("/bin/busybox"), c(false)),
        ] {
            let bytes = std::fs::read(&path).unwrap();
            let mut file = Counting(&bytes, 0, 0);
            assert_eq!(elf_facts(&mut file), Some(want), "{}", path.display());
            // A C program costs its program headers and section names:
            // a few hundred reads of a few bytes, never the file.
            assert!(
                file.1 < 400 && file.2 < 16 * 1024,
                "{} reads, {} bytes",
                file.1,
                file.2
            );
        }
    }

    #[test]
    fn each_go_sign_alone_is_enough() {
        let mut bytes = std::fs::read(go_app("hello-static")).unwrap();
        // Section headers gone (e_shoff = 0): the note.
        bytes[0x28..0x30].fill(0);
        assert_eq!(facts(&bytes).map(|f| f.go), Some(true), "note");
        // The note's owner renamed: the magic at the data segment's start.
        let name = (12..bytes.len() - 4)
            .find(|&i| bytes[i..i + 4] == *b"Go\0\0" && bytes[i - 4..i] == [4, 0, 0, 0])
            .unwrap();
        bytes[name + 1] = b'x';
        assert_eq!(facts(&bytes).map(|f| f.go), Some(true), "magic");
        let magic = bytes
            .windows(14)
            .position(|w| w == GO_BUILDINFO_MAGIC)
            .unwrap();
        bytes[magic] = 0;
        assert_eq!(facts(&bytes).map(|f| f.go), Some(false), "nothing left");
        // The section alone.
        let mut bytes = std::fs::read(go_app("hello-static")).unwrap();
        bytes[name + 1] = b'x';
        bytes[magic] = 0;
        assert_eq!(facts(&bytes).map(|f| f.go), Some(true), "section");
    }

    #[test]
    fn garbage_truncated_and_garbled_files_are_never_a_crash() {
        assert_eq!(facts(b""), None);
        assert_eq!(facts(b"\x7fELF"), None);
        assert_eq!(facts(&[0u8; 4096]), None);
        assert_eq!(facts(b"#!/bin/sh\n"), None);
        let bytes = std::fs::read(go_app("hello-static")).unwrap();
        for cut in (0..4096).chain((4096..bytes.len()).step_by(4093)) {
            let _ = facts(&bytes[..cut]);
        }
        // Random header fields, random note segments, random garbage.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let head = &bytes[..8192];
        for round in 0..4000 {
            let mut b = head.to_vec();
            let edits = 1 + next() % 6;
            for _ in 0..edits {
                let r = next();
                // Mostly the ELF header and program headers (the first 0x270 bytes).
                let span = if round % 2 == 0 {
                    0x270
                } else {
                    b.len() as u64
                };
                let at = (r % span) as usize;
                for (k, v) in (r >> 16)
                    .to_le_bytes()
                    .iter()
                    .enumerate()
                    .take(1 + (r >> 60) as usize % 8)
                {
                    if let Some(x) = b.get_mut(at + k) {
                        *x = *v;
                    }
                }
            }
            let _ = facts(&b);
            let garbage: Vec<u8> = (0..(next() % 512)).map(|_| next() as u8).collect();
            let mut elfish = b"\x7fELF\x02\x01\x01".to_vec();
            elfish.extend_from_slice(&garbage);
            let _ = facts(&garbage);
            let _ = facts(&elfish);
        }
    }

    #[test]
    fn elf32_and_big_endian_headers_are_read() {
        // A minimal ELF32 big-endian file: one PT_INTERP program header.
        let mut b = vec![0u8; 52 + 32];
        b[..7].copy_from_slice(b"\x7fELF\x01\x02\x01");
        b[28..32].copy_from_slice(&52u32.to_be_bytes()); // e_phoff
        b[42..44].copy_from_slice(&32u16.to_be_bytes()); // e_phentsize
        b[44..46].copy_from_slice(&1u16.to_be_bytes()); // e_phnum
        b[52..56].copy_from_slice(&PT_INTERP.to_be_bytes());
        assert_eq!(
            facts(&b),
            Some(ElfFacts {
                dynamic: true,
                go: false
            })
        );
        b[52..56].copy_from_slice(&PT_LOAD.to_be_bytes());
        assert_eq!(facts(&b).map(|f| f.dynamic), Some(false));
        // A wrong program header size is not guessed at.
        b[42..44].copy_from_slice(&56u16.to_be_bytes());
        assert_eq!(facts(&b), None);
    }

    #[test]
    fn shebang_reads_the_interpreter_as_the_kernel_does() {
        assert_eq!(shebang(b"#!/bin/sh\necho"), Some(&b"/bin/sh"[..]));
        assert_eq!(
            shebang(b"#! /usr/bin/env node\n"),
            Some(&b"/usr/bin/env"[..])
        );
        assert_eq!(shebang(b"#!/bin/bash -e\r\n"), Some(&b"/bin/bash"[..]));
        assert_eq!(shebang(b"#!/x"), Some(&b"/x"[..]));
        assert_eq!(shebang(b"#!   \n"), None);
        assert_eq!(shebang(b"#!"), None);
        assert_eq!(shebang(b"\x7fELF"), None);
        assert_eq!(shebang(b""), None);
    }
}
