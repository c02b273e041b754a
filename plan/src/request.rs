//! A Kubernetes CPU request read back from the figure the kubelet wrote
//! into the container's cgroup: the pure conversions, both ways.
//!
//! ```text
//! kubelet    shares = max(2, millicores * 1024 / 1000)          (cgroup v1 cpu.shares)
//! runc       weight = 1 + ((shares - 2) * 9999) / 262142         (cgroup v2 cpu.weight)
//! corefit    weight -> the shares it can come from -> the millicores they can
//!            come from -> the roundest of them (a multiple of 1000m, else
//!            500m, 250m, 100m, 50m, 10m, else the smallest)
//! ```
//!
//! The integer divisions lose a little: one weight stands for about 26
//! shares (25 millicores), so the roundest request in that range is taken
//! (whole CPUs are found exactly: `2` -> weight 79 -> 2000m).
//!
//! Some values say no request, or cannot be told from a default:
//!
//! | value | reads as | why |
//! |---|---|---|
//! | `cpu.shares` 2 | no request | the kubelet's floor: a container with no CPU request |
//! | `cpu.shares` 1024 | no request | the default of a cgroup nobody configured, and also `1000m`; either way one process |
//! | `cpu.weight` 1 | no request | shares 2 (or a request below ~27m) |
//! | `cpu.weight` 100 | no request | the default of a cgroup nobody configured (and a request near 2.55 CPUs with the linear formula, 1 CPU with runc >= 1.3.2's) |
//!
//! runc >= 1.3.2 and crun >= 1.23 convert shares to a weight by another
//! (non-linear) formula, which a weight alone cannot be told from: the
//! request the operator hands over by the downward API
//! (`COREFIT_CPU_REQUEST`) is read first for that reason.

/// The kubelet's floor for `cpu.shares`: what a container with no CPU
/// request gets.
pub const MIN_SHARES: u64 = 2;
/// The kernel's ceiling for `cpu.shares` (`1 << 18`).
pub const MAX_SHARES: u64 = 262_144;
/// `cpu.shares` of a cgroup nobody configured.
pub const DEFAULT_SHARES: u64 = 1024;
/// The range of `cpu.weight`.
pub const MIN_WEIGHT: u64 = 1;
pub const MAX_WEIGHT: u64 = 10_000;
/// `cpu.weight` of a cgroup nobody configured.
pub const DEFAULT_WEIGHT: u64 = 100;

/// A value out of the kernel's range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} is outside {min}..={max}")]
pub struct OutOfRange {
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

/// The `cpu.shares` the kubelet writes for a request of `millis`
/// (`MilliCPUToShares`).
pub fn shares_of_millis(millis: u64) -> u64 {
    (millis.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// The `cpu.weight` runc writes for `shares` (the linear formula of
/// runc < 1.3.2 and the kubelet).
pub fn weight_of_shares(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - MIN_SHARES) * 9999) / 262_142
}

/// The request (millicores) a `cpu.shares` value says, `None` for the
/// values that say none (see the module's table).
pub fn millis_from_shares(shares: u64) -> Result<Option<u64>, OutOfRange> {
    if !(MIN_SHARES..=MAX_SHARES).contains(&shares) {
        return Err(OutOfRange {
            value: shares,
            min: MIN_SHARES,
            max: MAX_SHARES,
        });
    }
    if shares == MIN_SHARES || shares == DEFAULT_SHARES {
        return Ok(None);
    }
    Ok(Some(roundest(millis_range(shares, shares))))
}

/// The request (millicores) a `cpu.weight` value says with the linear
/// formula, `None` for the values that say none (see the module's table).
pub fn millis_from_weight(weight: u64) -> Result<Option<u64>, OutOfRange> {
    if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) {
        return Err(OutOfRange {
            value: weight,
            min: MIN_WEIGHT,
            max: MAX_WEIGHT,
        });
    }
    if weight == MIN_WEIGHT || weight == DEFAULT_WEIGHT {
        return Ok(None);
    }
    // weight(s) = w  <=>  (w-1)*262142 <= (s-2)*9999 < w*262142
    let lo = MIN_SHARES + ((weight - 1) * 262_142).div_ceil(9999);
    let hi = (MIN_SHARES + (weight * 262_142).div_ceil(9999) - 1).min(MAX_SHARES);
    Ok(Some(roundest(millis_range(lo, hi))))
}

/// The millicores whose shares (`m * 1024 / 1000`) fall in `lo..=hi`.
fn millis_range(lo: u64, hi: u64) -> (u64, u64) {
    let first = (lo * 1000).div_ceil(1024);
    let last = ((hi + 1) * 1000 - 1) / 1024;
    (first, last.max(first))
}

/// The roundest number in `lo..=hi`: a multiple of 1000, else of 500, 250,
/// 100, 50, 10, else `lo`.
fn roundest((lo, hi): (u64, u64)) -> u64 {
    [1000, 500, 250, 100, 50, 10]
        .into_iter()
        .map(|step| lo.div_ceil(step) * step)
        .find(|&m| m <= hi)
        .unwrap_or(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The requests people write come back exactly through shares and
    /// through the weight, and a whole count of CPUs never loses one.
    #[test]
    fn common_requests_round_trip() {
        let common = [
            100, 250, 300, 500, 750, 1500, 2000, 3000, 3500, 4000, 6000, 8000, 16000, 64000,
        ];
        for m in common {
            let shares = shares_of_millis(m);
            assert_eq!(
                millis_from_shares(shares),
                Ok(Some(m)),
                "{m}m shares {shares}"
            );
            let weight = weight_of_shares(shares);
            assert_eq!(
                millis_from_weight(weight),
                Ok(Some(m)),
                "{m}m weight {weight}"
            );
        }
        assert_eq!(shares_of_millis(1500), 1536);
        assert_eq!(weight_of_shares(2048), 79);
        for cpus in 2..=200u64 {
            let w = weight_of_shares(shares_of_millis(cpus * 1000));
            let back = millis_from_weight(w).unwrap().unwrap();
            assert_eq!(back, cpus * 1000, "{cpus} CPUs, weight {w}");
        }
    }

    /// Every request from 30m to 64 CPUs reads back within one weight
    /// step (~26 shares), and never from a value the kubelet would not
    /// write for it.
    #[test]
    fn any_request_reads_back_near_itself() {
        for m in (30..64_000).step_by(7) {
            let shares = shares_of_millis(m);
            let back = millis_from_shares(shares).unwrap();
            if shares == DEFAULT_SHARES {
                assert_eq!(back, None);
                continue;
            }
            let back = back.unwrap();
            assert_eq!(shares_of_millis(back), shares, "{m}m -> {back}m");
            let w = weight_of_shares(shares);
            if w == DEFAULT_WEIGHT || w == MIN_WEIGHT {
                assert_eq!(millis_from_weight(w), Ok(None));
                continue;
            }
            let back = millis_from_weight(w).unwrap().unwrap();
            assert_eq!(
                weight_of_shares(shares_of_millis(back)),
                w,
                "{m}m -> {back}m"
            );
            assert!(back.abs_diff(m) <= 26, "{m}m -> {back}m");
        }
    }

    /// The floors, the defaults and the out-of-range values.
    #[test]
    fn no_request_defaults_and_bad_values() {
        assert_eq!(millis_from_shares(2), Ok(None));
        assert_eq!(millis_from_shares(1024), Ok(None));
        assert_eq!(millis_from_weight(1), Ok(None));
        assert_eq!(millis_from_weight(100), Ok(None));
        assert_eq!(shares_of_millis(0), 2);
        assert_eq!(shares_of_millis(1), 2);
        assert_eq!(weight_of_shares(2), 1);
        assert_eq!(weight_of_shares(MAX_SHARES), MAX_WEIGHT);
        for bad in [0, 1, MAX_SHARES + 1, u64::MAX] {
            assert!(millis_from_shares(bad).is_err(), "shares {bad}");
        }
        for bad in [0, MAX_WEIGHT + 1, u64::MAX] {
            assert!(millis_from_weight(bad).is_err(), "weight {bad}");
        }
        assert_eq!(millis_from_shares(MAX_SHARES), Ok(Some(256_000)));
        assert_eq!(millis_from_weight(MAX_WEIGHT), Ok(Some(256_000)));
        assert_eq!(
            millis_from_weight(0).unwrap_err().to_string(),
            "0 is outside 1..=10000"
        );
    }
}
