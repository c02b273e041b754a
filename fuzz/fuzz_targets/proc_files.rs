//! The files under `/proc` corefit parses, on arbitrary text:
//! `/proc/self/mountinfo` (`mountinfo::cgroup_mounts`), `/proc/self/cgroup`
//! (`mountinfo::memberships`), the cgroup layout and directory chains built
//! from both (`cgroup::layout`, `cgroup::read_limits`, walked under a root
//! that does not exist so no file is found), and `/proc/<pid>/stat` lines
//! (`procstat::parse_stat`) summed over a process tree (`procstat::tree_usage`).
//!
//! Invariants: no panic; every non-blank line is either parsed or counted
//! as malformed; what parses, written back in the kernel's format, parses
//! to the same value; path translation never climbs out of the mount; a
//! process tree holds each process once, whatever the ppids say.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use corefit::probe::cgroup::{self, CgroupLimits};
use corefit::probe::mountinfo::{self, CgroupMembership, CgroupMount};
use corefit::probe::procstat::{self, Stat};
use libfuzzer_sys::fuzz_target;

/// mountinfo's octal escapes for space, tab, newline and backslash.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

fn mount_line(m: &CgroupMount) -> String {
    format!(
        "36 25 0:31 {} {} rw,nosuid - {} cgroup {}",
        escape(&m.root),
        escape(&m.mount_point),
        m.fs_type,
        m.super_options.join(",")
    )
}

fn membership_line(c: &CgroupMembership) -> String {
    format!("{}:{}:{}", c.hierarchy_id, c.controllers.join(","), c.path)
}

fn stat_line(s: &Stat) -> String {
    format!(
        "{} ({}) {} {} {} 0 -1 4194560 0 0 0 0 0 {} {} 0 0 20 0 1 0 1 1000 {} 1 1",
        s.pid, s.comm, s.state, s.ppid, s.pgrp, s.utime, s.stime, s.rss_pages
    )
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let nonblank = text.lines().filter(|l| !l.trim().is_empty()).count();

    let (mounts, bad_mounts) = mountinfo::cgroup_mounts(&text);
    assert!(mounts.len() + bad_mounts <= nonblank);
    for m in &mounts {
        assert!(m.fs_type == "cgroup" || m.fs_type == "cgroup2");
        let again = mountinfo::cgroup_mounts(&mount_line(m));
        assert_eq!(again, (vec![m.clone()], 0), "{:?}", mount_line(m));
    }

    let (members, bad_members) = mountinfo::memberships(&text);
    assert_eq!(members.len() + bad_members, nonblank);
    for c in &members {
        assert!(c.path.starts_with('/') && !c.hierarchy_id.contains(':'));
        assert!(c
            .controllers
            .iter()
            .all(|k| !k.is_empty() && !k.contains(',')));
        let again = mountinfo::memberships(&membership_line(c));
        assert_eq!(again, (vec![c.clone()], 0), "{:?}", membership_line(c));
    }

    for m in &mounts {
        for c in &members {
            if let Some(rel) = mountinfo::path_below_mount(&c.path, &m.root) {
                assert!(!rel.split('/').any(|part| part == ".."), "{rel:?}");
                assert!(rel.len() <= c.path.len());
            }
        }
    }

    let _ = cgroup::layout(&mounts);
    if mounts.len() <= 16 {
        let mut warnings = Vec::new();
        let limits = cgroup::read_limits(
            Path::new("/nonexistent-corefit-fuzz"),
            &mounts,
            &members,
            &mut warnings,
        );
        assert_eq!(limits, CgroupLimits::default());
    }

    let stats: Vec<Stat> = text
        .lines()
        .filter_map(|l| procstat::parse_stat(l).ok())
        .collect();
    for s in &stats {
        if s.state != ')' && s.state != '(' {
            assert_eq!(procstat::parse_stat(&stat_line(s)).as_ref(), Ok(s));
        }
    }
    if let Ok(s) = procstat::parse_stat(&text) {
        assert!(text.contains(&s.comm));
    }
    for s in stats.iter().take(8) {
        let tree = procstat::tree(&stats, s.pid);
        // Each process entry at most once, even when ppids form a cycle.
        let entries: BTreeSet<*const Stat> = tree.iter().map(|p| *p as *const Stat).collect();
        assert_eq!(entries.len(), tree.len());
        assert!(tree.len() <= stats.len());
        let usage = procstat::tree_usage(&stats, s.pid, 4096, 100);
        assert_eq!(usage.processes as usize, tree.len());
    }
});
