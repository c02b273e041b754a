//! Finds the process's own cgroup below a mount when a private cgroup
//! namespace hides its path: with the host's cgroupfs mounted as is
//! (`-v /sys/fs/cgroup:/sys/fs/cgroup`, `unshare -C`), mountinfo shows the
//! mount's root as `/../..` and `/proc/self/cgroup` says `/`, so the
//! directory names between the mount point and the process's cgroup are
//! unknown ([`super::mountinfo::Located::Hidden`]). The depth is known: the
//! search lists the directories that many levels down (at most
//! [`MAX_DIRS`]) and takes the one whose `cgroup.procs` lists this
//! process's pid (from `/proc/self/stat` under the probe's root).

use std::path::{Path, PathBuf};

use super::cgroup::join;

/// The most directories the search lists before it gives up.
pub const MAX_DIRS: usize = 4096;

/// Why the search did not find the process's cgroup: the end of a
/// sentence "...hides this process's cgroup below M and {Missed}".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missed {
    #[error("this process's pid is unknown ({file}: {why})")]
    NoPid { file: String, why: String },
    #[error("no cgroup.procs {depth} level(s) below it (of {candidates}) lists pid {pid}")]
    NotListed {
        depth: usize,
        candidates: usize,
        pid: u32,
    },
    #[error("the search for pid {pid} stopped after {max} directories")]
    TooMany { pid: u32, max: usize },
}

/// This process's pid, the first field of `/proc/self/stat` under `root`.
pub fn own_pid(root: &Path) -> Result<u32, Missed> {
    let path = join(root, "/proc/self/stat");
    let no_pid = |why: String| Missed::NoPid {
        file: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| no_pid(e.to_string()))?;
    let first = text.split_whitespace().next().unwrap_or("");
    first
        .parse()
        .map_err(|_| no_pid(format!("{first:?} is not a pid")))
}

/// The directory, relative to `mount_dir`, `depth` levels down and then
/// `rest`, whose `cgroup.procs` lists `pid`; at most `max_dirs` listed.
pub fn search(
    mount_dir: &Path,
    depth: usize,
    rest: &str,
    pid: u32,
    max_dirs: usize,
) -> Result<String, Missed> {
    let mut level = vec![PathBuf::new()];
    let mut listed = 0;
    for _ in 0..depth {
        let mut next = Vec::new();
        for rel in &level {
            let Ok(entries) = std::fs::read_dir(mount_dir.join(rel)) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                listed += 1;
                if listed > max_dirs {
                    return Err(Missed::TooMany { pid, max: max_dirs });
                }
                next.push(rel.join(entry.file_name()));
            }
        }
        level = next;
    }
    let candidates = level.len();
    level
        .into_iter()
        .map(|rel| if rest.is_empty() { rel } else { rel.join(rest) })
        .find(|rel| lists(&mount_dir.join(rel).join("cgroup.procs"), pid))
        .map(|rel| rel.to_string_lossy().into_owned())
        .ok_or(Missed::NotListed {
            depth,
            candidates,
            pid,
        })
}

/// Whether the `cgroup.procs` file at `path` lists `pid`.
fn lists(path: &Path, pid: u32) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim().parse::<u32>().is_ok_and(|p| p == pid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dirs: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (dir, procs) in dirs {
            let d = t.path().join(dir);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cgroup.procs"), procs).unwrap();
        }
        t
    }

    #[test]
    fn finds_the_directory_listing_the_pid_at_the_depth() {
        let t = tree(&[("a/b", "1\n4242\n"), ("a/c", "42\n"), ("d/e", "424\n")]);
        assert_eq!(search(t.path(), 2, "", 42, MAX_DIRS), Ok("a/c".into()));
        assert_eq!(search(t.path(), 2, "", 4242, MAX_DIRS), Ok("a/b".into()));
        // A pid only above the depth does not count.
        let t = tree(&[("a", "7\n"), ("a/b", "8\n")]);
        assert_eq!(
            search(t.path(), 2, "", 7, MAX_DIRS),
            Err(Missed::NotListed {
                depth: 2,
                candidates: 1,
                pid: 7
            })
        );
    }

    #[test]
    fn then_follows_the_known_rest() {
        let t = tree(&[("x/app", "5\n"), ("y/app", "6\n")]);
        assert_eq!(search(t.path(), 1, "app", 6, MAX_DIRS), Ok("y/app".into()));
        assert_eq!(
            search(t.path(), 0, "x/app", 5, MAX_DIRS),
            Ok("x/app".into())
        );
    }

    #[test]
    fn the_search_is_bounded() {
        let dirs: Vec<(String, &str)> = (0..20).map(|i| (format!("d{i}/e"), "1\n")).collect();
        let dirs: Vec<(&str, &str)> = dirs.iter().map(|(d, p)| (d.as_str(), *p)).collect();
        let t = tree(&dirs);
        assert_eq!(
            search(t.path(), 2, "", 9, 10),
            Err(Missed::TooMany { pid: 9, max: 10 })
        );
        assert!(search(t.path(), 2, "", 1, 40).is_ok());
    }

    #[test]
    fn the_pid_comes_from_proc_self_stat_under_the_root() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(own_pid(t.path()), Err(Missed::NoPid { .. })));
        std::fs::create_dir_all(t.path().join("proc/self")).unwrap();
        std::fs::write(t.path().join("proc/self/stat"), "4242 (corefit) R 1 ...").unwrap();
        assert_eq!(own_pid(t.path()), Ok(4242));
        assert_eq!(own_pid(Path::new("/")), Ok(std::process::id()));
    }
}
