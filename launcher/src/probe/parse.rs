//! Parsers for the values the kernel writes into cgroup and proc files.
//! Pure functions over strings: fuzzed and property-tested, never panic.

use thiserror::Error;

/// Why a file's contents were rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("the file is empty")]
    Empty,
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{0:?} is too large")]
    Overflow(String),
    #[error("{0:?} is zero")]
    Zero(String),
    #[error("{0:?} is not in the expected format: {1}")]
    Format(String, &'static str),
}

/// cgroup v1 `memory.limit_in_bytes` values at or above this mean "no
/// limit" (the kernel writes 2^63 rounded down to a page).
pub const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// The largest CPU number accepted in a cpuset list.
pub const MAX_CPU_ID: u64 = 1 << 20;

fn first_token(s: &str) -> Result<&str, ValueError> {
    s.split_whitespace().next().ok_or(ValueError::Empty)
}

fn unsigned(tok: &str) -> Result<u64, ValueError> {
    if let Some(rest) = tok.strip_prefix('-') {
        if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
            return Err(ValueError::Negative(tok.to_owned()));
        }
    }
    if tok.is_empty() || !tok.chars().all(|c| c.is_ascii_digit()) {
        return Err(ValueError::NotANumber(clip(tok)));
    }
    tok.parse::<u64>()
        .map_err(|_| ValueError::Overflow(clip(tok)))
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// cgroup v2 `cpu.max`: `"max 100000"` (no limit) or `"150000 100000"`.
/// Returns `(quota, period)`.
pub fn cpu_max(s: &str) -> Result<Option<(u64, u64)>, ValueError> {
    let mut it = s.split_whitespace();
    let quota = it.next().ok_or(ValueError::Empty)?;
    let period = match it.next() {
        Some(p) => unsigned(p)?,
        None => 100_000,
    };
    if it.next().is_some() {
        return Err(ValueError::Format(
            clip(s.trim()),
            "expected \"QUOTA PERIOD\"",
        ));
    }
    if period == 0 {
        return Err(ValueError::Zero("period".to_owned()));
    }
    if quota == "max" {
        return Ok(None);
    }
    let quota = unsigned(quota)?;
    if quota == 0 {
        return Err(ValueError::Zero(quota.to_string()));
    }
    Ok(Some((quota, period)))
}

/// cgroup v1 `cpu.cfs_quota_us`: -1 (or 0) means no limit.
pub fn cfs_quota(s: &str) -> Result<Option<u64>, ValueError> {
    let tok = first_token(s)?;
    if tok == "-1" {
        return Ok(None);
    }
    match unsigned(tok)? {
        0 => Ok(None),
        q => Ok(Some(q)),
    }
}

/// cgroup v1 `cpu.cfs_period_us`: a positive number of microseconds.
pub fn cfs_period(s: &str) -> Result<u64, ValueError> {
    match unsigned(first_token(s)?)? {
        0 => Err(ValueError::Zero("0".to_owned())),
        p => Ok(p),
    }
}

/// cgroup v2 `memory.max` / `memory.high`: `max` or bytes.
pub fn memory_v2(s: &str) -> Result<Option<u64>, ValueError> {
    let tok = first_token(s)?;
    if tok == "max" {
        return Ok(None);
    }
    unsigned(tok).map(Some)
}

/// cgroup v1 `memory.limit_in_bytes`: bytes; a page-rounded 2^63 means none.
pub fn memory_v1(s: &str) -> Result<Option<u64>, ValueError> {
    let tok = first_token(s)?;
    if tok == "-1" {
        return Ok(None);
    }
    match unsigned(tok) {
        Ok(v) if v >= V1_UNLIMITED_THRESHOLD => Ok(None),
        Ok(v) => Ok(Some(v)),
        // Larger than u64: certainly "unlimited" in spirit, but the kernel
        // never writes that; report it rather than guess.
        Err(e) => Err(e),
    }
}

/// A CPU list (`0-3,8,10-11`): the number of distinct CPUs.
pub fn cpu_list(s: &str) -> Result<u32, ValueError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ValueError::Empty);
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for part in t.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (unsigned(a.trim())?, unsigned(b.trim())?),
            None => {
                let v = unsigned(part)?;
                (v, v)
            }
        };
        if a > b {
            return Err(ValueError::Format(clip(part), "range start after its end"));
        }
        if b > MAX_CPU_ID {
            return Err(ValueError::Overflow(clip(part)));
        }
        ranges.push((a, b));
        if ranges.len() > 65_536 {
            return Err(ValueError::Format(clip(t), "too many ranges"));
        }
    }
    ranges.sort_unstable();
    let mut count: u64 = 0;
    let mut covered_to: Option<u64> = None;
    for (a, b) in ranges {
        let start = match covered_to {
            Some(c) if a <= c => c + 1,
            _ => a,
        };
        if start <= b {
            count += b - start + 1;
        }
        covered_to = Some(covered_to.map_or(b, |c| c.max(b)));
    }
    Ok(count as u32)
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn meminfo_total(s: &str) -> Result<u64, ValueError> {
    let line = s
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .ok_or(ValueError::Format(String::new(), "no MemTotal line"))?;
    let mut it = line["MemTotal:".len()..].split_whitespace();
    let kb = unsigned(it.next().ok_or(ValueError::Empty)?)?;
    match it.next() {
        Some("kB") | None => kb
            .checked_mul(1024)
            .ok_or(ValueError::Overflow(kb.to_string())),
        Some(_) => Err(ValueError::Format(clip(line), "expected kB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_values() {
        assert_eq!(cpu_max("150000 100000\n"), Ok(Some((150000, 100000))));
        assert_eq!(cpu_max("max 100000\n"), Ok(None));
        assert_eq!(cpu_max(""), Err(ValueError::Empty));
        assert!(matches!(
            cpu_max("abc 100000"),
            Err(ValueError::NotANumber(_))
        ));
        assert!(matches!(cpu_max("-5 100000"), Err(ValueError::Negative(_))));
        assert!(matches!(
            cpu_max("99999999999999999999999 100000"),
            Err(ValueError::Overflow(_))
        ));
        assert!(matches!(cpu_max("100 0"), Err(ValueError::Zero(_))));
        assert!(matches!(cpu_max("0 100000"), Err(ValueError::Zero(_))));
    }

    #[test]
    fn v1_values() {
        assert_eq!(cfs_quota("-1\n"), Ok(None));
        assert_eq!(cfs_quota("0"), Ok(None));
        assert_eq!(cfs_quota("150000"), Ok(Some(150000)));
        assert!(matches!(cfs_quota("-7"), Err(ValueError::Negative(_))));
        assert_eq!(cfs_period("100000"), Ok(100000));
        assert!(cfs_period("0").is_err());
        assert_eq!(memory_v1("9223372036854771712\n"), Ok(None));
        assert_eq!(memory_v1("805306368"), Ok(Some(805306368)));
        assert!(memory_v1("184467440737095516150").is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0-3,8,10-11\n"), Ok(7));
        assert_eq!(cpu_list("0"), Ok(1));
        assert_eq!(cpu_list("0-3,2-5"), Ok(6));
        assert_eq!(cpu_list(""), Err(ValueError::Empty));
        assert!(cpu_list("3-1").is_err());
        assert!(cpu_list("0-99999999999").is_err());
        assert!(cpu_list("a-b").is_err());
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            meminfo_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Ok(16384 * 1024)
        );
        assert!(meminfo_total("MemFree: 1 kB").is_err());
    }
}
