//! `/proc/self/mountinfo` and `/proc/self/cgroup`, parsed into the few
//! fields the cgroup probe needs.
//!
//! mountinfo (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`.
//! cgroup (cgroups(7)): `HIERARCHY-ID:CONTROLLER-LIST:PATH`; `0::PATH` is v2.

/// One cgroup filesystem mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The cgroup directory mounted there, relative to the hierarchy root
    /// (not `/` when a subtree is bind-mounted into a container).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// `cgroup` (v1) or `cgroup2`.
    pub fs_type: String,
    /// Super options: v1 controllers appear here (`rw,cpu,cpuacct`).
    pub super_options: Vec<String>,
}

impl CgroupMount {
    /// Whether this v1 mount carries `controller`.
    pub fn has_controller(&self, controller: &str) -> bool {
        self.fs_type == "cgroup" && self.super_options.iter().any(|o| o == controller)
    }
}

/// Parses mountinfo, keeping cgroup and cgroup2 mounts. Malformed lines are
/// skipped and counted.
pub fn cgroup_mounts(text: &str) -> (Vec<CgroupMount>, usize) {
    let mut mounts = Vec::new();
    let mut malformed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(line) {
            Some(m) if m.fs_type == "cgroup" || m.fs_type == "cgroup2" => mounts.push(m),
            Some(_) => {}
            None => malformed += 1,
        }
    }
    (mounts, malformed)
}

fn parse_line(line: &str) -> Option<CgroupMount> {
    let (pre, post) = line.split_once(" - ")?;
    let pre: Vec<&str> = pre.split(' ').collect();
    if pre.len() < 6 {
        return None;
    }
    let mut post = post.split(' ');
    let fs_type = post.next()?.to_owned();
    let _source = post.next()?;
    let super_options = post
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::to_owned)
        .collect();
    Some(CgroupMount {
        root: unescape(pre[3]),
        mount_point: unescape(pre[4]),
        fs_type,
        super_options,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/self/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMembership {
    pub hierarchy_id: String,
    /// Empty for the v2 line (`0::/path`).
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parses `/proc/self/cgroup`. Malformed lines are skipped and counted.
pub fn memberships(text: &str) -> (Vec<CgroupMembership>, usize) {
    let mut out = Vec::new();
    let mut malformed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.splitn(3, ':');
        match (it.next(), it.next(), it.next()) {
            (Some(id), Some(ctrl), Some(path)) if path.starts_with('/') => {
                out.push(CgroupMembership {
                    hierarchy_id: id.to_owned(),
                    controllers: ctrl
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    path: path.to_owned(),
                })
            }
            _ => malformed += 1,
        }
    }
    (out, malformed)
}

/// Where a cgroup path from `/proc/self/cgroup` lies relative to a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// This directory below the mount point (`""`: the mount point).
    Below(String),
    /// `depth` directories below the mount point whose names the process
    /// cannot see, then `rest`: a private cgroup namespace with the host's
    /// cgroupfs mounted as is shows the mount's root as `/..` repeated and
    /// the process's own cgroup as `/`. The probe finds the directory by
    /// the `cgroup.procs` that lists the process.
    Hidden { depth: usize, rest: String },
    /// Not below what is mounted.
    Outside,
}

/// The components of a path relative to the cgroup namespace's root,
/// `.`/`..` resolved: the leading `..` counted, then the names.
fn normalize(path: &str) -> (usize, Vec<&str>) {
    let mut up = 0;
    let mut names = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            if names.pop().is_none() {
                up += 1;
            }
        } else {
            names.push(c);
        }
    }
    (up, names)
}

/// Where `cgroup_path` (from `/proc/self/cgroup`) lies below a mount whose
/// root (from mountinfo) is `mount_root`. Both are relative to the reader's
/// cgroup namespace root, so either may start with `..`.
pub fn locate(cgroup_path: &str, mount_root: &str) -> Located {
    let (mount_up, mount_names) = normalize(mount_root);
    let (own_up, own_names) = normalize(cgroup_path);
    if mount_up == own_up {
        if let Some(rest) = own_names.strip_prefix(mount_names.as_slice()) {
            return Located::Below(rest.join("/"));
        }
        // Inside a cgroup namespace the process sees its own cgroup as
        // "/"; a mount of a subtree may still show that subtree's path.
        if own_up == 0 && own_names.is_empty() {
            return Located::Below(String::new());
        }
        return Located::Outside;
    }
    // The kernel shows the mount's root by the shortest path from the
    // namespace's root: `..` then names means a directory beside it, of
    // which nothing of ours is part; `..` alone, an ancestor, whose
    // descendants `mount_up - own_up` levels down the process cannot name.
    if mount_up > own_up && mount_names.is_empty() {
        return Located::Hidden {
            depth: mount_up - own_up,
            rest: own_names.join("/"),
        };
    }
    Located::Outside
}

/// Translates a cgroup path from `/proc/self/cgroup` into a path below the
/// mount point, given the mount's root. `None` when the path lies outside
/// what is mounted or below directories the process cannot name (see
/// [`locate`]).
pub fn path_below_mount(cgroup_path: &str, mount_root: &str) -> Option<String> {
    match locate(cgroup_path, mount_root) {
        Located::Below(rel) => Some(rel),
        Located::Hidden { .. } | Located::Outside => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_cgroup_mounts() {
        let (m, bad) = cgroup_mounts(HYBRID);
        assert_eq!(bad, 0);
        assert_eq!(m.len(), 3);
        assert!(m[0].has_controller("cpu") && m[0].has_controller("cpuacct"));
        assert!(!m[0].has_controller("cpuset"));
        assert_eq!(m[2].fs_type, "cgroup2");
    }

    #[test]
    fn unescapes_mount_points() {
        let (m, _) = cgroup_mounts("1 2 0:1 / /a\\040b rw - cgroup2 none rw\n");
        assert_eq!(m[0].mount_point, "/a b");
    }

    #[test]
    fn garbage_lines_are_counted() {
        let (m, bad) = cgroup_mounts("garbage\n1 2 3\n\\\\\\\n");
        assert!(m.is_empty());
        assert_eq!(bad, 3);
        let (m, bad) = memberships("nonsense\n0::/a\n4:memory:relative\n");
        assert_eq!(m.len(), 1);
        assert_eq!(bad, 2);
    }

    #[test]
    fn translates_paths() {
        assert_eq!(path_below_mount("/a/b", "/"), Some("a/b".into()));
        assert_eq!(
            path_below_mount("/kubepods/pod1/ctr", "/kubepods/pod1/ctr"),
            Some("".into())
        );
        assert_eq!(
            path_below_mount("/kubepods/pod1/ctr/app", "/kubepods/pod1/ctr"),
            Some("app".into())
        );
        assert_eq!(path_below_mount("/", "/docker/abc"), Some("".into()));
        assert_eq!(path_below_mount("/other", "/docker/abc"), None);
        assert_eq!(path_below_mount("/../x", "/"), None);
        assert_eq!(path_below_mount("/docker/abcdef", "/docker/abc"), None);
    }

    #[test]
    fn a_namespace_root_the_mount_does_not_show_is_hidden() {
        let hidden = |depth, rest: &str| Located::Hidden {
            depth,
            rest: rest.to_owned(),
        };
        // unshare -C with the host's mount: root "/../..", own cgroup "/".
        assert_eq!(locate("/", "/../.."), hidden(2, ""));
        assert_eq!(locate("/", "/.."), hidden(1, ""));
        // Moved to a child after the unshare, or to a sibling.
        assert_eq!(locate("/app", "/../.."), hidden(2, "app"));
        assert_eq!(locate("/../b", "/../.."), hidden(1, "b"));
        // The mount's root is beside the namespace's root (the kernel
        // would show an ancestor as "/.." alone): nothing of ours is mounted.
        assert_eq!(locate("/", "/../../kubepods"), Located::Outside);
        assert_eq!(locate("/", "/../kubepods"), Located::Outside);
        assert_eq!(locate("/../../x", "/.."), Located::Outside);
        assert_eq!(path_below_mount("/", "/../.."), None);
        // Equal depths compare names.
        assert_eq!(locate("/../b/c", "/../b"), Located::Below("c".into()));
        assert_eq!(locate("/../c", "/../b"), Located::Outside);
    }
}
