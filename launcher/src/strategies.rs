//! Which socket strategies a command can use, for `corefit plan -- CMD`:
//! `proxy` and `none` work with every app, `shared` and `reuseport` need
//! the app's cooperation (corefit cannot tell from outside), and `inject`
//! needs a dynamically linked, non-setuid program that binds through libc
//! (not Go), checked here by reading its ELF headers through `#!`
//! interpreters with the same `inject::check_executable` that start uses.

use serde::Serialize;

use crate::inject::{check_executable, InjectError};
use crate::probe::executable::{inspect, Executable, Linkage};

/// Whether a strategy can serve the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Support {
    Yes,
    /// Only if the app does its part (an inherited fd 3, SO_REUSEPORT).
    IfTheAppSupportsIt,
    No,
}

/// One strategy's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StrategySupport {
    pub strategy: &'static str,
    pub support: Support,
    pub note: String,
    /// What a rolling reload costs the clients, and what would make it
    /// cost nothing (empty for `none`, where something else balances).
    pub reloads: String,
}

/// What `corefit plan -- CMD` reports about the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandReport {
    pub command: Vec<String>,
    /// The program that really runs (after PATH and `#!`), if found.
    pub program: Option<String>,
    /// `dynamic`, `static`, or null when it could not be inspected.
    pub linkage: Option<&'static str>,
    pub strategies: Vec<StrategySupport>,
    /// The strategy corefit would use (the `--socket` setting, default proxy).
    pub chosen: String,
}

/// What a reload costs in `shared`/`inject`, given whether the shim can
/// load into the program and whether `net.ipv4.tcp_migrate_req` is on in
/// this network namespace (`None`: unknown).
pub fn reload_cost(shim_loads: bool, migrate_req: Option<bool>) -> String {
    let closes = if shim_loads {
        "connections a stopping worker closes between requests are handed to corefit, which relays their next request to a live worker"
    } else {
        "the idle keep-alive connections a stopping worker closes fail their next request (the shim cannot load into this program; answer with `connection: close` for a moment before closing them, or use proxy)"
    };
    let queued = match migrate_req {
        Some(true) => "connections queued on its closing listener move to another worker (net.ipv4.tcp_migrate_req=1 here)".to_owned(),
        _ => "connections queued on its closing listener are reset: set net.ipv4.tcp_migrate_req=1 in the container's network namespace".to_owned(),
    };
    let verdict = if shim_loads && migrate_req == Some(true) {
        "no request fails"
    } else {
        "a few requests may fail"
    };
    format!("{verdict}: {closes}; {queued}")
}

/// Inspects `command` and lists every strategy; `migrate_req` is this
/// network namespace's `net.ipv4.tcp_migrate_req`, read by the caller.
pub fn report(
    command: &[String],
    path_var: Option<&str>,
    chosen: &str,
    migrate_req: Option<bool>,
) -> CommandReport {
    let program_name = command.first().map(String::as_str).unwrap_or("");
    let inspected = inspect(program_name, path_var).map_err(InjectError::from);
    let (program, linkage) = match &inspected {
        Ok(exe) => (
            Some(exe.path.display().to_string()),
            Some(match exe.linkage {
                Linkage::Dynamic => "dynamic",
                Linkage::Static => "static",
            }),
        ),
        Err(_) => (None, None),
    };
    let shim_loads = inspected
        .as_ref()
        .is_ok_and(|exe| check_executable(exe).is_ok());
    let reloads = reload_cost(shim_loads, migrate_req);
    let inject = match inspected.and_then(|exe| check_executable(&exe).map(|()| exe)) {
        Ok(exe) => StrategySupport {
            strategy: "inject",
            support: Support::Yes,
            note: inject_note(&exe),
            reloads: reloads.clone(),
        },
        Err(e) => StrategySupport {
            strategy: "inject",
            support: Support::No,
            note: e.to_string(),
            reloads: String::new(),
        },
    };
    let strategies = vec![
        StrategySupport {
            strategy: "proxy",
            support: Support::Yes,
            note: "works with every app: corefit balances connections to workers on private ports".to_owned(),
            reloads: "no request fails: corefit resends what a stopping worker drops unanswered and keeps the client's connection".to_owned(),
        },
        StrategySupport {
            strategy: "shared",
            support: Support::IfTheAppSupportsIt,
            note: "the app must serve an inherited socket on fd 3 (LISTEN_FDS): gunicorn, uvicorn --fd 3, Node listen({fd: 3}), Go net.FileListener, Rust listenfd".to_owned(),
            reloads: reloads.clone(),
        },
        StrategySupport {
            strategy: "reuseport",
            support: Support::IfTheAppSupportsIt,
            note: "the app must bind PORT with SO_REUSEPORT itself".to_owned(),
            reloads: format!(
                "a few requests may fail: give --ready notify or ipc (else replacements count as ready at start); {}",
                if migrate_req == Some(true) {
                    "queued connections move on (net.ipv4.tcp_migrate_req=1 here)"
                } else {
                    "connections queued on a closing listener are reset unless net.ipv4.tcp_migrate_req=1"
                }
            ),
        },
        inject,
        StrategySupport {
            strategy: "none",
            support: Support::Yes,
            note: "each worker gets its own PORT (base + worker id); something in front must balance".to_owned(),
            reloads: String::new(),
        },
    ];
    CommandReport {
        command: command.to_vec(),
        program,
        linkage,
        strategies,
        chosen: chosen.to_owned(),
    }
}

/// What `inject` does for a program it can serve; for a shell or a
/// script, what the programs it runs must be as well.
fn inject_note(exe: &Executable) -> String {
    let mut note = "dynamically linked: the preload shim turns the app's own bind(PORT) into the shared socket".to_owned();
    let shell = exe
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| SHELLS.contains(&n));
    if shell || !exe.via_scripts.is_empty() {
        note.push_str(
            "; a program it execs must load the shim too (dynamically linked, not Go, not setuid): another is stopped at its exec with a message",
        );
    }
    note
}

/// Interpreters whose commands plan cannot see (`sh -c "exec ./app"`).
const SHELLS: &[&str] = &["sh", "dash", "bash", "ash", "ksh", "mksh", "zsh", "busybox"];

#[cfg(test)]
mod tests {
    use super::*;

    /// The report's verdict on strategy `s`.
    fn row<'a>(r: &'a CommandReport, s: &str) -> &'a StrategySupport {
        r.strategies
            .iter()
            .find(|x| x.strategy == s)
            .unwrap_or_else(|| panic!("no row for {s}"))
    }

    fn support(r: &CommandReport, s: &str) -> Support {
        row(r, s).support
    }

    #[test]
    fn node_supports_inject_and_busybox_does_not() {
        let r = report(
            &["node".into(), "server.js".into()],
            Some("/usr/bin:/bin"),
            "proxy",
            None,
        );
        assert_eq!(r.linkage, Some("dynamic"));
        assert_eq!(support(&r, "inject"), Support::Yes);
        assert_eq!(support(&r, "proxy"), Support::Yes);
        assert_eq!(support(&r, "shared"), Support::IfTheAppSupportsIt);
        let r = report(&["/bin/busybox".into()], None, "inject", None);
        assert_eq!(r.linkage, Some("static"));
        assert_eq!(support(&r, "inject"), Support::No);
        assert_eq!(r.chosen, "inject");
        let r = report(
            &["no-such-prog-xyz".into()],
            Some("/usr/bin"),
            "proxy",
            None,
        );
        assert_eq!((r.program, r.linkage), (None, None));
        assert!(r.strategies[3].note.contains("not found"));
    }

    #[test]
    fn go_programs_are_refused_for_inject_and_shells_carry_the_exec_caveat() {
        for (name, linkage) in [("hello-dynamic", "dynamic"), ("hello-static", "static")] {
            let path = corefit_test_support::apps::go_app(name);
            let r = report(&[path.display().to_string()], None, "inject", Some(true));
            assert_eq!(r.linkage, Some(linkage), "{name}");
            assert_eq!(support(&r, "inject"), Support::No, "{name}");
            let note = &row(&r, "inject").note;
            assert!(
                note.contains("Go program") && note.contains("--socket proxy"),
                "{note}"
            );
        }
        let r = report(
            &["sh".into(), "-c".into(), "exec ./app".into()],
            None,
            "inject",
            None,
        );
        assert_eq!(support(&r, "inject"), Support::Yes);
        let note = &row(&r, "inject").note;
        assert!(note.contains("stopped at its exec"), "{note}");
        let r = report(
            &["node".into()],
            Some("/usr/bin:/bin"),
            "inject",
            Some(true),
        );
        let note = &row(&r, "inject").note;
        assert!(!note.contains("stopped at its exec"), "{note}");
    }

    fn reloads<'a>(r: &'a CommandReport, s: &str) -> &'a str {
        &row(r, s).reloads
    }

    #[test]
    fn plan_says_what_a_reload_costs_and_what_would_make_it_free() {
        let node = |m| report(&["node".into()], Some("/usr/bin:/bin"), "shared", m);
        let r = node(Some(true));
        assert!(reloads(&r, "shared").starts_with("no request fails"));
        assert!(reloads(&r, "inject").starts_with("no request fails"));
        assert!(reloads(&r, "proxy").starts_with("no request fails"));
        let r = node(Some(false));
        let shared = reloads(&r, "shared");
        assert!(shared.starts_with("a few requests may fail"), "{shared}");
        assert!(shared.contains("tcp_migrate_req=1"), "{shared}");
        assert!(reloads(&r, "reuseport").contains("--ready notify"));
        // Go: no shim, so shared cannot hand over what it closes.
        let go = corefit_test_support::apps::go_app("hello-static");
        let r = report(&[go.display().to_string()], None, "shared", Some(true));
        let shared = reloads(&r, "shared");
        assert!(
            shared.starts_with("a few requests may fail") && shared.contains("connection: close"),
            "{shared}"
        );
    }
}
