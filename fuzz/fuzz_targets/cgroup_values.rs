//! Every parser of a cgroup value file, on arbitrary bytes: no panic, and
//! what parses is within the documented ranges.
#![no_main]

use corefit::probe::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some((q, p))) = parse::cpu_max(s) {
        assert!(q > 0 && p > 0);
    }
    let _ = parse::cfs_quota(s);
    if let Ok(p) = parse::cfs_period(s) {
        assert!(p > 0);
    }
    let _ = parse::memory_v2(s);
    if let Ok(Some(v)) = parse::memory_v1(s) {
        assert!(v < parse::V1_UNLIMITED_THRESHOLD);
    }
    if let Ok(n) = parse::cpu_list(s) {
        assert!(n as u64 <= parse::MAX_CPU_ID + 1);
    }
    let _ = parse::meminfo_total(s);
});
