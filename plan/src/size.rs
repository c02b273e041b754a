//! Memory sizes as users write them: `512Mi`, `1Gi`, `768MiB`, `1G`,
//! `1000000k`, or a plain number of MiB.
//!
//! `B` means bytes (what the operator writes for a size that is no whole
//! number of KiB). Binary suffixes (`Ki Mi Gi Ti`, also with a trailing `B`) are powers of
//! 1024; decimal ones (`k K M G T`, also `KB MB GB TB`) are powers of 1000,
//! as in Kubernetes quantities. A plain number is MiB, as in PM2's and
//! Nomad's settings.

use thiserror::Error;

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    #[error("not a size; expected a number with an optional unit such as 512Mi, 1Gi, 768MB (a plain number means MiB)")]
    Malformed,
    #[error("unknown unit {0:?}; use Ki, Mi, Gi, Ti (binary) or K, M, G, T (decimal)")]
    UnknownUnit(String),
    #[error("too large")]
    Overflow,
}

const MIB: u64 = 1024 * 1024;

/// Parses a size into bytes.
pub fn parse_size(raw: &str) -> Result<u64, SizeError> {
    let t = raw.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(SizeError::Malformed);
    }
    let n: u64 = digits.parse().map_err(|_| SizeError::Overflow)?;
    let factor: u64 = match unit.trim() {
        "" => MIB,
        "B" => 1,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        "k" | "K" | "KB" | "kB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        u if u.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            return Err(SizeError::UnknownUnit(u.to_owned()))
        }
        _ => return Err(SizeError::Malformed),
    };
    n.checked_mul(factor).ok_or(SizeError::Overflow)
}

/// Formats bytes for people: `768 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if (value - value.round()).abs() < 0.05 {
        format!("{} {}", value.round() as u64, UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("512Mi"), Ok(512 * MIB));
        assert_eq!(parse_size("512"), Ok(512 * MIB));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size(" 768MiB "), Ok(768 * MIB));
        assert_eq!(parse_size("402653185B"), Ok(402_653_185));
        assert_eq!(parse_size("abc"), Err(SizeError::Malformed));
        assert_eq!(parse_size("-5Mi"), Err(SizeError::Malformed));
        assert_eq!(
            parse_size("5 parsecs"),
            Err(SizeError::UnknownUnit("parsecs".into()))
        );
        assert_eq!(
            parse_size("99999999999999999999Mi"),
            Err(SizeError::Overflow)
        );
        assert_eq!(parse_size("9999999999999Ti"), Err(SizeError::Overflow));
        assert_eq!(parse_size("1.5Gi"), Err(SizeError::Malformed));
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(768 * MIB), "768 MiB");
        assert_eq!(human_bytes(3 * MIB / 2 * 1024), "1.5 GiB");
        assert_eq!(human_bytes(100), "100 B");
    }
}
