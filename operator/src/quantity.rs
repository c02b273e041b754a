//! Kubernetes quantities as users write them (`500m`, `1.5`, `512Mi`,
//! `2G`), parsed exactly (no floats) into millicores and bytes.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    #[error("{field}={value:?} is not a quantity (expected e.g. 500m, 2, 512Mi, 1Gi)")]
    Syntax { field: String, value: String },
    #[error("{field}={value:?} is too large")]
    Overflow { field: String, value: String },
    #[error("{field}={value:?} must be above zero")]
    Zero { field: String, value: String },
}

/// A parsed quantity as the exact fraction `num / den`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exact {
    num: u128,
    den: u128,
}

fn parse_exact(raw: &str) -> Option<Exact> {
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
        _ => return None,
    };
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 9 {
        return None;
    }
    if number.ends_with('.') {
        return None;
    }
    let digits = format!("{int}{frac}");
    let mantissa: u128 = digits.parse().ok()?;
    let scale = 10u128.pow(frac.len() as u32);
    Some(Exact {
        num: mantissa.checked_mul(mul)?,
        den: scale.checked_mul(div)?,
    })
}

fn parse_scaled(field: &str, raw: &str, unit: u128) -> Result<u64, QuantityError> {
    let e = parse_exact(raw).ok_or_else(|| QuantityError::Syntax {
        field: field.to_owned(),
        value: raw.to_owned(),
    })?;
    let overflow = || QuantityError::Overflow {
        field: field.to_owned(),
        value: raw.to_owned(),
    };
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
}
