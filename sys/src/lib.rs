//! # corefit-sys — the launcher's calls into the C library
//!
//! The launcher forbids `unsafe`; the few C library calls it needs that no
//! safe wrapper offers live here, one function each, with the reason each
//! `unsafe` block is sound.
//!
//! - [`trim_heap`]: give freed heap memory back to the kernel. glibc's
//!   allocator keeps what a burst of proxied connections freed (5,000
//!   connections left corefit at ~19 MiB after they closed, against 4 MiB
//!   idle; `malloc_trim(0)` brought it back to 4.2 MiB). musl's allocator
//!   returns memory by itself: there it does nothing.

/// Returns freed heap pages to the kernel (glibc's `malloc_trim(0)`).
/// True when memory was released. A no-op returning false elsewhere.
pub fn trim_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a plain size (0: keep no padding),
        // touches only the allocator's own state under its own lock, and
        // is safe to call at any time from any thread (glibc manual,
        // "Memory Allocation Tunables"; MT-Safe in malloc_trim(3)).
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_after_freeing_releases_memory_on_glibc() {
        // Many small blocks freed: glibc keeps them until trimmed.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 3000]).collect();
        drop(blocks);
        let released = trim_heap();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(
                released,
                "malloc_trim released nothing after 60 MB were freed"
            );
        } else {
            assert!(!released);
        }
    }
}
