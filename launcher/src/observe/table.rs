//! `corefit status`: a table like `pm2 status`.

use std::fmt::Write as _;

use super::snapshot::ClusterSnapshot;
use crate::plan::size::human_bytes;

/// Renders the table, with a one-line summary on top.
pub fn status_table(s: &ClusterSnapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} mode, {} of {} workers ready, socket {}, platform {}{}",
        s.mode,
        s.ready(),
        s.desired,
        s.socket,
        s.platform,
        if s.reloading { ", reloading" } else { "" }
    );
    let _ = writeln!(
        out,
        "{:>3}  {:>8}  {:<9} {:>9}  {:>8}  {:>6}  {:>10}",
        "id", "pid", "state", "uptime", "restarts", "cpu", "memory"
    );
    for w in &s.workers {
        let pid = w.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let cpu = w
            .cpu_percent
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}%"));
        let _ = writeln!(
            out,
            "{:>3}  {:>8}  {:<9} {:>9}  {:>8}  {:>6}  {:>10}",
            w.id,
            pid,
            w.phase.as_str(),
            duration(w.uptime_seconds),
            w.restarts,
            cpu,
            human_bytes(w.rss_bytes)
        );
    }
    if let Some(c) = &s.cgroup {
        cgroup_lines(&mut out, c);
    }
    out
}

/// Throttling and pressure, when corefit could read them.
fn cgroup_lines(out: &mut String, c: &super::throttle::CgroupSnapshot) {
    if let Some(t) = &c.stats.throttling {
        let recent = c
            .throttled_percent
            .map(|p| format!(", {p:.0}% of the last periods"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "cpu throttled: {} of {} periods ({:.1}s){recent}{}",
            t.throttled_periods,
            t.periods,
            t.throttled_seconds,
            match c.throttling_episodes {
                0 => String::new(),
                n => format!(", {n} episode(s) warned"),
            }
        );
    }
    if let Some(psi) = c.stats.pressure_summary() {
        let _ = writeln!(out, "pressure (some, avg10/60/300): {psi}");
    }
}

/// `3s`, `4m`, `2h`, `5d`, as pm2 shows uptime.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::snapshot::example;

    #[test]
    fn renders_like_pm2_status() {
        let t = status_table(&example());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6, "{t}");
        assert_eq!(
            lines[4],
            "cpu throttled: 30 of 120 periods (2.5s), 25% of the last periods, 1 episode(s) warned"
        );
        assert_eq!(lines[5], "pressure (some, avg10/60/300): cpu 12.5/3.0/1.0%");
        assert!(
            lines[0].starts_with("cluster mode, 1 of 2 workers ready"),
            "{t}"
        );
        assert!(
            lines[2].contains("101")
                && lines[2].contains("ready")
                && lines[2].contains("1h")
                && lines[2].contains("12.5%")
                && lines[2].contains("50 MiB"),
            "{t}"
        );
        assert!(
            lines[3].contains("starting") && lines[3].contains(" 3 ") && lines[3].contains(" - "),
            "{t}"
        );
    }
}
