//! cgroup v1 directories a test makes below its own (as root), removed
//! when dropped, and a shell wrapper that runs a command inside one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// This process's cgroup v1 directory of `controller` ("cpu", "memory"),
/// from /proc/self/mountinfo and /proc/self/cgroup.
pub fn own_v1_dir(controller: &str) -> PathBuf {
    let has = |list: &str| list.split(',').any(|c| c == controller);
    let (root, mount_point) = read("/proc/self/mountinfo")
        .lines()
        .find_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let fs: Vec<&str> = fs.split_whitespace().collect();
            let mount: Vec<&str> = mount.split_whitespace().collect();
            (fs.first() == Some(&"cgroup") && has(fs.get(2)?))
                .then(|| (mount[3].to_owned(), mount[4].to_owned()))
        })
        .unwrap_or_else(|| {
            panic!("no cgroup v1 {controller} controller mounted (this test needs one)")
        });
    let member = read("/proc/self/cgroup")
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            has(controllers).then(|| path.to_owned())
        })
        .unwrap_or_else(|| panic!("no {controller} line in /proc/self/cgroup"));
    let rel = if root == "/" {
        member.as_str()
    } else {
        member
            .strip_prefix(&root)
            .expect("cgroup path below its mount")
    };
    Path::new(&mount_point).join(rel.trim_start_matches('/'))
}

/// A cgroup directory the test made, removed (rmdir) on drop: whatever
/// is still in it (only after a failed test: processes the test started
/// there) is killed first, by pid, and the removal waits (bounded) for
/// them to leave.
#[derive(Debug)]
pub struct CgroupDir(pub PathBuf);

impl CgroupDir {
    /// `NAME-PID` below this process's `controller` directory.
    pub fn below_own(controller: &str, name: &str) -> CgroupDir {
        let dir = own_v1_dir(controller).join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!("cannot create cgroup {} (run as root): {e}", dir.display())
        });
        CgroupDir(dir)
    }

    /// Writes `value` to the control file `file`.
    pub fn write(&self, file: &str, value: &str) {
        let path = self.0.join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("cannot write {value:?} to {}: {e}", path.display()));
    }

    /// A script for `sh -c SCRIPT sh CMD...` that moves the shell into
    /// this cgroup, runs `then` (shell words, may be empty) and execs CMD.
    pub fn enter_script(&self, then: &str) -> String {
        let then = if then.is_empty() {
            String::new()
        } else {
            format!("{then} && ")
        };
        format!(
            "echo $$ > '{}' && {then}exec \"$@\"",
            self.0.join("cgroup.procs").display()
        )
    }
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let procs = std::fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if std::fs::remove_dir(&self.0).is_ok()
                || !self.0.exists()
                || Instant::now() >= deadline
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
