//! A network namespace of a test's own: the calling thread (and every
//! process and thread it starts afterwards) moves into a new one with
//! loopback up, where kernel settings such as `net.ipv4.tcp_migrate_req`
//! can be set without touching the host's. Needs root (the test command
//! runs as root); the namespace goes away with the last task in it.

use std::process::Command;

/// Moves this thread into a new network namespace with `lo` up and
/// `tcp_migrate_req` set as asked (the kernel moves connections queued on
/// a closing SO_REUSEPORT listener to another listener instead of
/// resetting them).
pub fn private_network(migrate_req: bool) {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET): the test needs root");
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2) runs");
    assert!(up.success(), "ip link set lo up");
    // A child runs in this thread's namespace, so sysctl sets the new one.
    let set = Command::new("sysctl")
        .arg("-qw")
        .arg(format!(
            "net.ipv4.tcp_migrate_req={}",
            u8::from(migrate_req)
        ))
        .status()
        .expect("sysctl (procps) runs");
    assert!(
        set.success(),
        "tcp_migrate_req is writable in the new namespace"
    );
}
