//! `/proc/self/mountinfo`, `/proc/self/cgroup` and `/proc/<pid>/stat` on
//! arbitrary text: no panic; path translation never climbs out of the mount.
#![no_main]

use corefit::probe::{mountinfo, procstat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let (mounts, _) = mountinfo::cgroup_mounts(&s);
    let (members, _) = mountinfo::memberships(&s);
    for m in &mounts {
        for c in &members {
            if let Some(rel) = mountinfo::path_below_mount(&c.path, &m.root) {
                assert!(!rel.split('/').any(|part| part == ".."), "{rel:?}");
            }
        }
    }
    let _ = procstat::parse_stat(&s);
});
