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

/// Inspects `command` and lists every strategy.
pub fn report(command: &[String], path_var: Option<&str>, chosen: &str) -> CommandReport {
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
    let inject = match inspected.and_then(|exe| check_executable(&exe).map(|()| exe)) {
        Ok(exe) => StrategySupport {
            strategy: "inject",
            support: Support::Yes,
            note: inject_note(&exe),
        },
        Err(e) => StrategySupport {
            strategy: "inject",
            support: Support::No,
            note: e.to_string(),
        },
    };
    let strategies = vec![
        StrategySupport {
            strategy: "proxy",
            support: Support::Yes,
            note: "works with every app: corefit balances connections to workers on private ports".to_owned(),
        },
        StrategySupport {
            strategy: "shared",
            support: Support::IfTheAppSupportsIt,
            note: "the app must serve an inherited socket on fd 3 (LISTEN_FDS): gunicorn, uvicorn --fd 3, Node listen({fd: 3}), Rust listenfd".to_owned(),
        },
        StrategySupport {
            strategy: "reuseport",
            support: Support::IfTheAppSupportsIt,
            note: "the app must bind PORT with SO_REUSEPORT itself".to_owned(),
        },
        inject,
        StrategySupport {
            strategy: "none",
            support: Support::Yes,
            note: "each worker gets its own PORT (base + worker id); something in front must balance".to_owned(),
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

    fn support(r: &CommandReport, s: &str) -> Support {
        r.strategies
            .iter()
            .find(|x| x.strategy == s)
            .unwrap()
            .support
    }

    #[test]
    fn node_supports_inject_and_busybox_does_not() {
        let r = report(
            &["node".into(), "server.js".into()],
            Some("/usr/bin:/bin"),
            "proxy",
        );
        assert_eq!(r.linkage, Some("dynamic"));
        assert_eq!(support(&r, "inject"), Support::Yes);
        assert_eq!(support(&r, "proxy"), Support::Yes);
        assert_eq!(support(&r, "shared"), Support::IfTheAppSupportsIt);
        let r = report(&["/bin/busybox".into()], None, "inject");
        assert_eq!(r.linkage, Some("static"));
        assert_eq!(support(&r, "inject"), Support::No);
        assert_eq!(r.chosen, "inject");
        let r = report(&["no-such-prog-xyz".into()], Some("/usr/bin"), "proxy");
        assert_eq!((r.program, r.linkage), (None, None));
        assert!(r.strategies[3].note.contains("not found"));
    }

    #[test]
    fn go_programs_are_refused_for_inject_and_shells_carry_the_exec_caveat() {
        for (name, linkage) in [("hello-dynamic", "dynamic"), ("hello-static", "static")] {
            let path = crate::probe::executable::go_app(name);
            let r = report(&[path.display().to_string()], None, "inject");
            assert_eq!(r.linkage, Some(linkage), "{name}");
            assert_eq!(support(&r, "inject"), Support::No, "{name}");
            let note = &r
                .strategies
                .iter()
                .find(|s| s.strategy == "inject")
                .unwrap()
                .note;
            assert!(
                note.contains("Go program") && note.contains("--socket proxy"),
                "{note}"
            );
        }
        let r = report(
            &["sh".into(), "-c".into(), "exec ./app".into()],
            None,
            "inject",
        );
        assert_eq!(support(&r, "inject"), Support::Yes);
        let note = &r
            .strategies
            .iter()
            .find(|s| s.strategy == "inject")
            .unwrap()
            .note;
        assert!(note.contains("stopped at its exec"), "{note}");
        let r = report(&["node".into()], Some("/usr/bin:/bin"), "inject");
        let note = &r
            .strategies
            .iter()
            .find(|s| s.strategy == "inject")
            .unwrap()
            .note;
        assert!(!note.contains("stopped at its exec"), "{note}");
    }
}
