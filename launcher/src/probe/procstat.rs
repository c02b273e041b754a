//! Per-process facts from `/proc/<pid>/stat`: state, parent, CPU time and
//! resident memory, summed over a worker's whole process tree (a worker
//! that forks helpers is charged for them, as the kernel's OOM killer would).
//!
//! Parsing is pure; reading takes a root path like every probe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use thiserror::Error;

use super::cgroup::join;

/// Why a stat line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatError {
    #[error("no command name in parentheses")]
    NoComm,
    #[error("field {0} is missing or not a number")]
    Field(usize),
}

/// The fields corefit uses from `/proc/<pid>/stat` (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub comm: String,
    /// R, S, D, Z, T...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// User and system CPU time, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Parses one stat line. The command name may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Result<Stat, StatError> {
    let open = line.find('(').ok_or(StatError::NoComm)?;
    let close = line.rfind(')').ok_or(StatError::NoComm)?;
    if close < open {
        return Err(StatError::NoComm);
    }
    let pid = line[..open]
        .trim()
        .parse()
        .map_err(|_| StatError::Field(1))?;
    let comm = line[open + 1..close].to_owned();
    // Fields after the name, numbered as in proc(5): 3 = state, 4 = ppid ...
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64, StatError> {
        rest.get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or(StatError::Field(n))
    };
    let state = rest
        .first()
        .and_then(|s| s.chars().next())
        .ok_or(StatError::Field(3))?;
    Ok(Stat {
        pid,
        comm,
        state,
        ppid: field(4)? as u32,
        pgrp: field(5)? as u32,
        utime: field(14)?,
        stime: field(15)?,
        rss_pages: field(24)?,
    })
}

/// Every readable process under `root/proc`. Processes that vanish while
/// being read are skipped.
pub fn all_processes(root: &Path) -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir(join(root, "/proc")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|text| parse_stat(&text).ok())
        .collect()
}

/// `pid` and all its descendants, from a process list.
pub fn tree(processes: &[Stat], pid: u32) -> Vec<&Stat> {
    let mut children: BTreeMap<u32, Vec<&Stat>> = BTreeMap::new();
    for p in processes {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out: Vec<&Stat> = processes.iter().filter(|p| p.pid == pid).collect();
    let mut seen: BTreeSet<u32> = out.iter().map(|p| p.pid).collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].pid;
        for c in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(c.pid) {
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

/// What a process tree uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub processes: u32,
}

/// Sums RSS and CPU time over `pid`'s tree. `page_size` in bytes and
/// `ticks_per_second` come from sysconf (live) or a test.
pub fn tree_usage(processes: &[Stat], pid: u32, page_size: u64, ticks_per_second: u64) -> Usage {
    let t = tree(processes, pid);
    // Saturating: the fields are whatever u64 a stat line held, and a sum
    // that overflowed would panic (debug) or wrap to a tiny figure.
    Usage {
        rss_bytes: t.iter().fold(0u64, |sum, p| {
            sum.saturating_add(p.rss_pages.saturating_mul(page_size))
        }),
        cpu_seconds: t
            .iter()
            .map(|p| p.utime as f64 + p.stime as f64)
            .sum::<f64>()
            / ticks_per_second.max(1) as f64,
        processes: t.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "4242 (node server.js (x)) S 4200 4242 4242 0 -1 4194560 2000 0 0 0 150 50 0 0 20 0 11 0 99999 1000000000 12800 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let s = parse_stat(LINE).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, "node server.js (x)");
        assert_eq!(s.state, 'S');
        assert_eq!((s.ppid, s.pgrp), (4200, 4242));
        assert_eq!((s.utime, s.stime), (150, 50));
        assert_eq!(s.rss_pages, 12800);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_stat(""), Err(StatError::NoComm));
        assert_eq!(parse_stat(") 1 (x"), Err(StatError::NoComm));
        assert_eq!(parse_stat("1 (x) S"), Err(StatError::Field(4)));
        assert!(parse_stat("abc (x) S 1 1 1").is_err());
    }

    #[test]
    fn sums_a_tree() {
        let mk = |pid, ppid, rss| Stat {
            pid,
            comm: "x".into(),
            state: 'S',
            ppid,
            pgrp: 1,
            utime: 100,
            stime: 0,
            rss_pages: rss,
        };
        let ps = vec![
            mk(1, 0, 1),
            mk(10, 1, 2),
            mk(11, 10, 3),
            mk(12, 11, 4),
            mk(20, 1, 100),
        ];
        let u = tree_usage(&ps, 10, 4096, 100);
        assert_eq!(u.processes, 3);
        assert_eq!(u.rss_bytes, (2 + 3 + 4) * 4096);
        assert_eq!(u.cpu_seconds, 3.0);
        assert_eq!(tree_usage(&ps, 999, 4096, 100), Usage::default());
    }

    /// Found by fuzzing (fuzz/fuzz_targets/proc_files.rs): utime + stime
    /// near u64::MAX overflowed (a panic with overflow checks), and so did
    /// the RSS sum over a tree.
    #[test]
    fn huge_counters_saturate_instead_of_overflowing() {
        let line = |pid: u32, ppid: u32| {
            format!(
                "{pid} (x) S {ppid} 1 1 0 -1 0 0 0 0 0 {max} {max} 0 0 20 0 1 0 1 1 {max} 1 1",
                max = u64::MAX
            )
        };
        let ps = vec![
            parse_stat(&line(1, 0)).unwrap(),
            parse_stat(&line(2, 1)).unwrap(),
        ];
        let u = tree_usage(&ps, 1, 4096, 100);
        assert_eq!(u.processes, 2);
        assert_eq!(u.rss_bytes, u64::MAX);
        assert!(u.cpu_seconds > 3.6e17, "{u:?}");
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let ps = all_processes(Path::new("/"));
        let u = tree_usage(&ps, me, 4096, 100);
        assert!(u.processes >= 1 && u.rss_bytes > 0, "{u:?}");
    }
}
