//! Which socket strategies a command can use, for `corefit plan -- CMD`:
//! `proxy` and `none` work with every app, `shared` and `reuseport` need
//! the app's cooperation (corefit cannot tell from outside), and `inject`
//! needs a dynamically linked, non-setuid program (checked here by reading
//! its ELF headers through `#!` interpreters).

use serde::Serialize;

use crate::inject::{check_command, InjectError};

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
    let (program, linkage, inject) = match check_command(program_name, path_var) {
        Ok(exe) => (
            Some(exe.path.display().to_string()),
            Some("dynamic"),
            StrategySupport {
                strategy: "inject",
                support: Support::Yes,
                note: "dynamically linked: the preload shim turns the app's own bind(PORT) into the shared socket".to_owned(),
            },
        ),
        Err(e) => {
            let (program, linkage) = match &e {
                InjectError::Static { path } => (Some(path.clone()), Some("static")),
                InjectError::Setuid { path } => (Some(path.clone()), Some("dynamic")),
                _ => (None, None),
            };
            (
                program,
                linkage,
                StrategySupport {
                    strategy: "inject",
                    support: Support::No,
                    note: e.to_string(),
                },
            )
        }
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
}
