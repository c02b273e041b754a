//! Processes as `/proc` shows them: parents, states, descendants,
//! zombies; the run mark that finds every process of one corefit run, and
//! the orphans it left. Signals go only to pids a test picked or started.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A process as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
}

/// Reads /proc/<pid>/stat.
pub fn proc_info(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Proc { pid, ppid, state })
}

pub fn all_procs() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_info)
        .collect()
}

pub fn descendants_of(root: i32) -> Vec<i32> {
    let procs = all_procs();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent) {
            out.push(p.pid);
            frontier.push(p.pid);
        }
    }
    out
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    proc_info(pid).is_some_and(|p| p.state != 'Z')
}

/// True once `pid` is gone from the process table entirely (reaped).
pub fn gone(pid: i32) -> bool {
    proc_info(pid).is_none()
}

/// Socket inodes a process holds (none when its fds cannot be read).
pub fn socket_inodes(pid: i32) -> BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?.to_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Inodes of every TCP socket listening on `port` (state 0A), at any
/// address, IPv4 or IPv6.
pub fn listening_inodes(port: u16) -> BTreeSet<u64> {
    let listener = |line: &str| -> Option<u64> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        (local == port && f.get(3) == Some(&"0A")).then(|| f.get(9)?.parse().ok())?
    };
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|table| {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            text.lines()
                .skip(1)
                .filter_map(listener)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The pid written after `marker` in a log line, up to the next space
/// ("pid 42 ready" with marker "pid "); panics naming the line when
/// there is none.
pub fn pid_after(line: &str, marker: &str) -> i32 {
    line.split(marker)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid after {marker:?} in {line:?}"))
}

/// Descendants of `root` in state Z right now.
pub fn zombies_under(root: i32) -> Vec<i32> {
    descendants_of(root)
        .into_iter()
        .filter(|p| proc_info(*p).is_some_and(|i| i.state == 'Z'))
        .collect()
}

/// Zombies that stay: waits (bounded) for corefit to reap every zombie
/// under it; returns those still there at the deadline. A worker that
/// just died is a zombie for the moment it takes corefit to reap it.
pub fn lasting_zombies(root: i32, limit: Duration) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let z = zombies_under(root);
        if z.is_empty() || Instant::now() >= deadline {
            return z;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The variable marking every process of one run (corefit passes its
/// environment on to workers, and they to theirs).
pub const RUN_MARK: &str = "COREFIT_CHAOS_RUN";

/// A unique value for [`RUN_MARK`].
pub fn new_mark(scenario: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{scenario}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Live (non-zombie) processes whose environment carries `RUN_MARK=mark`.
pub fn marked(mark: &str) -> Vec<i32> {
    let needle = format!("{RUN_MARK}={mark}");
    all_procs()
        .into_iter()
        .filter(|p| p.state != 'Z')
        .filter(|p| {
            std::fs::read(format!("/proc/{}/environ", p.pid))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .map(|p| p.pid)
        .collect()
}

/// Orphans of a run that has ended: processes still carrying its mark a
/// moment after corefit exited (bounded wait for ones already dying).
/// They are killed (by pid) after being counted, so nothing outlives the
/// test.
pub fn orphans_after_exit(mark: &str) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = marked(mark);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = marked(mark);
    }
    for pid in &left {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    left
}

/// Sends SIGKILL to `pid` (a worker the test picked).
pub fn sigkill(pid: i32) {
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap_or_else(|e| panic!("SIGKILL {pid}: {e}"));
}

/// Every chaos scenario runs alone: they measure gaps and failures under
/// load on a 2-core machine, where two at once would disturb each other.
pub fn serialize() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}
