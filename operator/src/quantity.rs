//! Kubernetes quantities as users write them (`500m`, `1.5`, `512Mi`,
//! `2G`), parsed exactly (no floats) into millicores and bytes.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    #[error("{field}={} is not a quantity (expected e.g. 500m, 2, 512Mi, 1Gi)", quoted(.value))]
    Syntax { field: String, value: String },
    #[error("{field}={} is too large", quoted(.value))]
    Overflow { field: String, value: String },
    #[error("{field}={} must be above zero", quoted(.value))]
    Zero { field: String, value: String },
}

/// The most characters of a user's value quoted in a message (a condition
/// or an event should not carry a megabyte of someone's input).
const SHOWN_CHARS: usize = 64;

/// `value` for a message, cut after [`SHOWN_CHARS`] characters with its
/// full length in bytes: `12345…(1048576 bytes)`.
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => value.to_owned(),
        Some((cut, _)) => format!("{}…({} bytes)", &value[..cut], value.len()),
    }
}

/// As [`shown`], in quotes (`{:?}`, so control characters show as escapes).
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}…({} bytes)", &value[..cut], value.len()),
    }
}

/// A parsed quantity as the exact fraction `num / den`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exact {
    num: u128,
    den: u128,
}

/// Why a quantity did not parse.
enum Bad {
    Syntax,
    /// Well formed, but beyond what 128 bits hold.
    Overflow,
}

fn parse_exact(raw: &str) -> Result<Exact, Bad> {
    let s = raw.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (mul, div): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        _ => return Err(Bad::Syntax),
    };
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 9 {
        return Err(Bad::Syntax);
    }
    if number.ends_with('.') {
        return Err(Bad::Syntax);
    }
    // Only ASCII digits are left: a failed parse is a number too long.
    let digits = format!("{int}{frac}");
    let mantissa: u128 = digits.parse().map_err(|_| Bad::Overflow)?;
    let scale = 10u128.pow(frac.len() as u32);
    Ok(Exact {
        num: mantissa.checked_mul(mul).ok_or(Bad::Overflow)?,
        den: scale.checked_mul(div).ok_or(Bad::Overflow)?,
    })
}

fn parse_scaled(field: &str, raw: &str, unit: u128) -> Result<u64, QuantityError> {
    let overflow = || QuantityError::Overflow {
        field: field.to_owned(),
        value: raw.to_owned(),
    };
    let e = parse_exact(raw).map_err(|bad| match bad {
        Bad::Syntax => QuantityError::Syntax {
            field: field.to_owned(),
            value: raw.to_owned(),
        },
        Bad::Overflow => overflow(),
    })?;
    let scaled = e.num.checked_mul(unit).ok_or_else(overflow)?;
    // Kubernetes rounds up to the smallest unit.
    let v = scaled.div_ceil(e.den);
    let v = u64::try_from(v).map_err(|_| overflow())?;
    if v == 0 {
        return Err(QuantityError::Zero {
            field: field.to_owned(),
            value: raw.to_owned(),
        });
    }
    Ok(v)
}

/// CPUs in millicores: `1.5` -> 1500, `250m` -> 250.
pub fn cpu_millis(field: &str, raw: &str) -> Result<u64, QuantityError> {
    parse_scaled(field, raw, 1000)
}

/// Bytes: `512Mi` -> 536870912, `1G` -> 1000000000.
pub fn bytes(field: &str, raw: &str) -> Result<u64, QuantityError> {
    parse_scaled(field, raw, 1)
}

/// The form the API server stores a CPU quantity in: whole CPUs as a
/// number, anything else in millicores (`1.5` -> `1500m`).
pub fn canonical_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// The form the API server stores a memory quantity in: the largest
/// suffix that states it exactly, binary when the user wrote a binary
/// suffix (`1024Mi` -> `1Gi`), decimal otherwise (`1000M` -> `1G`).
pub fn canonical_bytes(raw: &str, bytes: u64) -> String {
    let binary = raw.trim().ends_with('i');
    let (base, suffixes): (u64, [&str; 7]) = if binary {
        (1024, ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
    } else {
        (1000, ["", "k", "M", "G", "T", "P", "E"])
    };
    let mut n = bytes;
    let mut i = 0;
    while i + 1 < suffixes.len() && n >= base && n.is_multiple_of(base) {
        n /= base;
        i += 1;
    }
    format!("{n}{}", suffixes[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_cpu(1500), "1500m");
        assert_eq!(canonical_cpu(2000), "2");
        assert_eq!(canonical_cpu(250), "250m");
        assert_eq!(canonical_bytes("1024Mi", 1 << 30), "1Gi");
        assert_eq!(canonical_bytes("1.5Gi", 3 << 29), "1536Mi");
        assert_eq!(canonical_bytes("1000M", 1_000_000_000), "1G");
        assert_eq!(canonical_bytes("128974848", 128_974_848), "128974848");
    }

    #[test]
    fn cpu() {
        for (raw, want) in [
            ("1", 1000),
            ("1.5", 1500),
            ("250m", 250),
            ("0.1", 100),
            (".5", 500),
            ("2000m", 2000),
            ("1k", 1_000_000),
        ] {
            assert_eq!(cpu_millis("cpu", raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn memory() {
        for (raw, want) in [
            ("512Mi", 512 << 20),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("1G", 1_000_000_000),
            ("128974848", 128_974_848),
            ("1500m", 2),
        ] {
            assert_eq!(bytes("memory", raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn bad() {
        for raw in ["", "abc", "1.2.3", "1Q", "-1", "1.", "1 Gi", "0.0000000001"] {
            let e = bytes("spec.resources.memory", raw).unwrap_err();
            assert!(
                e.to_string().contains("spec.resources.memory"),
                "{raw}: {e}"
            );
        }
        assert!(matches!(
            cpu_millis("c", "0"),
            Err(QuantityError::Zero { .. })
        ));
        assert!(matches!(
            bytes("m", "1000000Ei"),
            Err(QuantityError::Overflow { .. })
        ));
    }

    /// Absurd inputs: huge, negative, not numbers, other scripts' digits.
    /// Each is an error naming the field; none panics.
    #[test]
    fn absurd() {
        let long = "9".repeat(1 << 20);
        for raw in [
            "999999999Ei",
            "99999999999999999999999999999999999999999",
            "340282366920938463463374607431768211456",
            "18446744073709551616",
            "9999999999999999999E",
            long.as_str(),
        ] {
            let e = bytes("spec.resources.memory", raw).unwrap_err();
            assert!(matches!(e, QuantityError::Overflow { .. }), "{raw}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("spec.resources.memory") && msg.contains("too large"),
                "{msg}"
            );
            assert!(
                msg.len() < 200,
                "the message quotes a megabyte: {}",
                msg.len()
            );
        }
        assert!(cpu_millis("c", "18446744073709552").is_err());
        assert_eq!(
            cpu_millis("c", "18446744073709551"),
            Ok(18_446_744_073_709_551_000)
        );
        for raw in [
            "1e30", "-1", "NaN", "Infinity", "1.5.5", "\u{663}", "\u{ff12}", "0x10", "+1", "", ".",
        ] {
            let e = cpu_millis("spec.resources.cpu", raw).unwrap_err();
            assert!(matches!(e, QuantityError::Syntax { .. }), "{raw:?}: {e}");
        }
    }

    #[test]
    fn shown_values_are_cut() {
        assert_eq!(shown("512Mi"), "512Mi");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let long = "é".repeat(100);
        let s = shown(&long);
        assert!(
            s.starts_with(&"é".repeat(64)) && s.ends_with("…(200 bytes)"),
            "{s}"
        );
        assert_eq!(quoted(&"x".repeat(64)), format!("{:?}", "x".repeat(64)));
    }
}
