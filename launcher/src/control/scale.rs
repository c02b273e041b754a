//! `corefit scale N|+N|-N`, SIGTTIN and SIGTTOU: the new worker count,
//! decided purely from the current count and the plan's caps.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::plan::Cap;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleTarget {
    /// `N`
    Absolute(u32),
    /// `+N` / `-N`
    Delta(i32),
}

/// Why a scale request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScaleError {
    #[error("invalid scale target {0:?}: expected N, +N or -N (N a whole number)")]
    Malformed(String),
    #[error("cannot scale to {0} workers: at least 1 is needed (use `corefit stop` to stop)")]
    BelowOne(i64),
    #[error(
        "cannot scale to {wanted} workers: the cap is {cap} ({why}); pass --force to exceed it"
    )]
    AboveCap { wanted: i64, cap: u32, why: String },
}

impl std::str::FromStr for ScaleTarget {
    type Err = ScaleError;

    fn from_str(raw: &str) -> Result<ScaleTarget, ScaleError> {
        let t = raw.trim();
        let bad = || ScaleError::Malformed(raw.to_owned());
        let digits = |s: &str| -> Result<u32, ScaleError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 6 {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        if let Some(rest) = t.strip_prefix('+') {
            Ok(ScaleTarget::Delta(digits(rest)? as i32))
        } else if let Some(rest) = t.strip_prefix('-') {
            Ok(ScaleTarget::Delta(-(digits(rest)? as i32)))
        } else {
            Ok(ScaleTarget::Absolute(digits(t)?))
        }
    }
}

impl fmt::Display for ScaleTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaleTarget::Absolute(n) => write!(f, "{n}"),
            ScaleTarget::Delta(d) => write!(f, "{d:+}"),
        }
    }
}

impl Serialize for ScaleTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ScaleTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ScaleTarget, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The limit scaling stays within unless forced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleCap {
    pub max: u32,
    /// "2 CPU(s)", "memory for 3 worker(s)", "a maximum of 4 worker(s)".
    pub why: String,
}

impl ScaleCap {
    /// The cap `cap` of the plan at `max`, in words.
    pub fn of(cap: Cap, max: u32) -> ScaleCap {
        let why = match cap {
            Cap::Cpu => format!("{max} CPU(s)"),
            Cap::Memory => format!("memory for {max} worker(s)"),
            Cap::MaxWorkers => format!("a maximum of {max} worker(s)"),
        };
        ScaleCap { max, why }
    }

    /// No cap: the hard limit even `--force` cannot pass.
    pub fn absolute() -> ScaleCap {
        ScaleCap {
            max: ABSOLUTE_MAX_WORKERS,
            why: "the absolute maximum".to_owned(),
        }
    }
}

/// The hard limit even `--force` cannot pass.
pub const ABSOLUTE_MAX_WORKERS: u32 = 4096;

/// The new count.
pub fn resolve(
    current: u32,
    target: ScaleTarget,
    cap: &ScaleCap,
    force: bool,
) -> Result<u32, ScaleError> {
    let wanted: i64 = match target {
        ScaleTarget::Absolute(n) => n as i64,
        ScaleTarget::Delta(d) => current as i64 + d as i64,
    };
    if wanted < 1 {
        return Err(ScaleError::BelowOne(wanted));
    }
    let absolute = ScaleCap::absolute();
    let cap = if force { &absolute } else { cap };
    let limit = cap.max.max(1);
    if wanted > limit as i64 {
        return Err(ScaleError::AboveCap {
            wanted,
            cap: limit,
            why: cap.why.clone(),
        });
    }
    Ok(wanted as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!("3".parse(), Ok(ScaleTarget::Absolute(3)));
        assert_eq!("+1".parse(), Ok(ScaleTarget::Delta(1)));
        assert_eq!("-2".parse(), Ok(ScaleTarget::Delta(-2)));
        for bad in ["", "+", "-", "abc", "1.5", "++1", "9999999", " - 1"] {
            assert!(bad.parse::<ScaleTarget>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stays_within_caps_unless_forced() {
        let cap = |max| ScaleCap::of(Cap::Cpu, max);
        assert_eq!(resolve(2, ScaleTarget::Delta(1), &cap(4), false), Ok(3));
        assert_eq!(resolve(2, ScaleTarget::Delta(-1), &cap(4), false), Ok(1));
        assert_eq!(
            resolve(1, ScaleTarget::Delta(-1), &cap(4), false),
            Err(ScaleError::BelowOne(0))
        );
        assert!(matches!(
            resolve(2, ScaleTarget::Absolute(8), &cap(4), false),
            Err(ScaleError::AboveCap { cap: 4, .. })
        ));
        assert_eq!(resolve(2, ScaleTarget::Absolute(8), &cap(4), true), Ok(8));
        assert!(resolve(2, ScaleTarget::Absolute(5000), &cap(4), true).is_err());
        let e = resolve(4, ScaleTarget::Delta(1), &cap(4), false).unwrap_err();
        assert!(
            e.to_string().contains("4 CPU(s)") && e.to_string().contains("--force"),
            "{e}"
        );
    }
}
