//! What a run decides before it starts anything: [`Settings::resolve`]
//! turns the typed [`RunConfig`] and the [`Plan`] into the socket
//! strategy actually used, the readiness check, the restart policy and the
//! machine's [`Policy`]. Pure (no I/O): the runtime's set-up executes the
//! result one step at a time.

use std::net::SocketAddr;

use thiserror::Error;

use super::config::{human_duration, ReadyCheck, RestartPolicy, RunConfig, SocketStrategy};
use super::machine::{Backoff, Policy};
use super::net::proxy::Affinity;
use super::net::sockets::SharedSockets;
use crate::exit;
use crate::plan::{Mode, Plan};

/// A run's decisions.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Workers to start (the plan's, at least 1).
    pub workers: u32,
    /// The strategy in force: `proxy` falls back to `none` for one worker
    /// that cannot grow (nothing to balance).
    pub strategy: SocketStrategy,
    /// `auto` resolved: `port` for `proxy` and for `none` with several
    /// workers, else `none`.
    pub ready: ReadyCheck,
    /// Exited workers are restarted (`auto`: in cluster mode, with more
    /// than one worker, or when live resize may add workers).
    pub restart: bool,
    /// Liveness probes run: asked for, and each worker has a port of its
    /// own (`proxy`, `none`).
    pub liveness: bool,
    /// The public address (proxy, shared, inject bind it).
    pub public: SocketAddr,
    /// Relay socket.io's cluster adapter between Node workers (with
    /// `--affinity`).
    pub relay: bool,
    /// The machine's parameters.
    pub policy: Policy,
    /// Settings given but ignored, in words.
    pub warnings: Vec<String>,
}

/// Settings that cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SettingsError {
    #[error("PORT {port} + {workers} workers runs past port 65535")]
    PortRange { port: u16, workers: u32 },
    #[error("--ready listen needs a socket per worker that the app listens on: --socket shared or inject with --shared-sockets per-worker (here: --socket {strategy}{one})")]
    ListenNeedsOwnSocket {
        strategy: &'static str,
        one: &'static str,
    },
    #[error("{}", affinity_refusal(*.affinity, *.strategy))]
    AffinityNeedsProxy {
        affinity: Affinity,
        strategy: SocketStrategy,
    },
}

/// For `corefit plan`: the refusal a run would meet with these values of
/// `--socket` (default proxy) and `COREFIT_AFFINITY` (default none);
/// values that do not parse are left to the run to report.
pub fn affinity_conflict(socket: Option<&str>, affinity: Option<&str>) -> Option<String> {
    use clap::ValueEnum;
    let affinity = Affinity::from_str(affinity?.trim(), true).ok()?;
    let strategy = match socket {
        Some(s) => SocketStrategy::from_str(s.trim(), true).ok()?,
        None => SocketStrategy::Proxy,
    };
    (affinity != Affinity::None && strategy != SocketStrategy::Proxy)
        .then(|| affinity_refusal(affinity, strategy))
}

/// Why `--affinity` cannot be had with `--socket strategy`, and what can.
pub fn affinity_refusal(affinity: Affinity, strategy: SocketStrategy) -> String {
    format!(
        "--affinity {} needs --socket proxy: with --socket {}, the kernel or the app picks the worker for each connection, not corefit (use --socket proxy to keep clients on their worker, or --affinity none)",
        affinity.as_str(),
        strategy.as_str()
    )
}

impl SettingsError {
    /// Invalid input.
    pub fn exit_code(&self) -> u8 {
        exit::USAGE
    }
}

impl Settings {
    /// Decides from `cfg` and `plan`; `may_grow` is true when a live
    /// resize may add workers (resize on, the count not given explicitly).
    pub fn resolve(
        cfg: &RunConfig,
        plan: &Plan,
        may_grow: bool,
    ) -> Result<Settings, SettingsError> {
        let workers = plan.workers.max(1);
        let affinity = cfg.proxy.affinity;
        if affinity != Affinity::None && cfg.socket != SocketStrategy::Proxy {
            return Err(SettingsError::AffinityNeedsProxy {
                affinity,
                strategy: cfg.socket,
            });
        }
        // One worker has nothing to balance: it takes the public port
        // itself, unless the pool may grow (keep the proxy and restarts)
        // or a setting only the proxy honours was given.
        let strategy = if workers == 1
            && cfg.socket == SocketStrategy::Proxy
            && !may_grow
            && !cfg.proxy.asks_for_proxy()
        {
            SocketStrategy::None
        } else {
            cfg.socket
        };
        let own_socket = matches!(strategy, SocketStrategy::Shared | SocketStrategy::Inject)
            && cfg.shared_sockets == SharedSockets::PerWorker;
        let ready = match cfg.ready {
            ReadyCheck::Auto => match strategy {
                SocketStrategy::Proxy => ReadyCheck::Port,
                SocketStrategy::None if workers > 1 => ReadyCheck::Port,
                _ if own_socket => ReadyCheck::Listen,
                _ => ReadyCheck::None,
            },
            ReadyCheck::Listen if !own_socket => {
                return Err(SettingsError::ListenNeedsOwnSocket {
                    strategy: strategy.as_str(),
                    one: if cfg.shared_sockets == SharedSockets::One {
                        " --shared-sockets one"
                    } else {
                        ""
                    },
                })
            }
            other => other,
        };
        let restart = match cfg.restart {
            RestartPolicy::Always => true,
            RestartPolicy::Never => false,
            RestartPolicy::Auto => plan.mode == Mode::Cluster || workers > 1 || may_grow,
        };
        if strategy == SocketStrategy::None && u32::from(cfg.port) + workers - 1 > 65535 {
            return Err(SettingsError::PortRange {
                port: cfg.port,
                workers,
            });
        }
        let own_ports = matches!(strategy, SocketStrategy::Proxy | SocketStrategy::None);
        let mut warnings = Vec::new();
        if cfg.liveness.is_some() && !own_ports {
            warnings.push(format!(
                "--liveness-path ignored with --socket {}: workers have no port of their own to probe (use proxy or none)",
                strategy.as_str()
            ));
        }
        let policy = Policy {
            workers,
            restart,
            respawn_limit: cfg.respawn_limit,
            min_uptime: cfg.min_uptime,
            backoff: Backoff {
                initial: cfg.backoff_initial,
                max: cfg.backoff_max,
            },
            grace: cfg.grace,
            ready_timeout: (ready != ReadyCheck::None).then_some(cfg.ready_timeout),
            reload_parallelism: cfg.reload_parallelism,
            replace_in_place: strategy == SocketStrategy::None,
            probe_failures: match &cfg.liveness {
                Some(l) if own_ports => l.failures,
                _ => 0,
            },
        };
        Ok(Settings {
            workers,
            strategy,
            ready,
            restart,
            liveness: cfg.liveness.is_some() && own_ports,
            public: SocketAddr::new(cfg.host, cfg.port),
            // Other strategies were refused above; a lone worker that took
            // the port itself still needs the adapter's cluster.worker.
            relay: affinity != Affinity::None,
            policy,
            warnings,
        })
    }

    /// The line corefit starts with: mode, workers, sockets, readiness,
    /// restarts, grace, and the plan's last reason.
    pub fn announcement(&self, cfg: &RunConfig, plan: &Plan) -> String {
        let n = self.workers as usize;
        let public = self.public;
        let shared = match cfg.shared_sockets {
            SharedSockets::One => "one shared socket",
            SharedSockets::PerWorker => "a SO_REUSEPORT socket per worker",
        };
        let socket = match self.strategy {
            SocketStrategy::Proxy => format!("proxy on {public}"),
            SocketStrategy::Shared => format!("{shared} on {public} as fd 3"),
            SocketStrategy::Reuseport => {
                format!("each binds port {} with SO_REUSEPORT", public.port())
            }
            SocketStrategy::Inject => format!(
                "{shared} on {public}, taken by each app's own bind() through the preload shim"
            ),
            SocketStrategy::None if n == 1 && !cfg.port_given => {
                "PORT as the app's environment has it".to_owned()
            }
            SocketStrategy::None if n == 1 => format!("PORT={}", public.port()),
            SocketStrategy::None => {
                format!("PORT={}..{}", public.port(), public.port() as usize + n - 1)
            }
        };
        let why = plan.reasons.last().map(String::as_str).unwrap_or("");
        format!(
            "{} mode, {n} worker(s) ({socket}; readiness {}; restarts {}; grace {}): {why}",
            plan.mode.as_str(),
            match self.ready {
                ReadyCheck::Port => "by port",
                ReadyCheck::Notify => "by NOTIFY_SOCKET",
                ReadyCheck::Ipc => "by process.send('ready')",
                ReadyCheck::Listen => "when it listens",
                _ => "at start",
            },
            if self.restart { "on" } else { "off" },
            human_duration(cfg.grace),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cli::{RunArgs, RunEnv};

    /// A test case's variables.
    pub(crate) type Vars = &'static [(&'static str, &'static str)];

    /// The config from these variables (the flags' own variables).
    pub(crate) fn config(vars: &[(&str, &str)]) -> RunConfig {
        let env: RunEnv = vars.iter().copied().collect();
        RunArgs::default()
            .config_with(vec!["app".into()], &env)
            .unwrap()
    }

    /// A plan for `workers` workers (cluster mode from 2).
    pub(crate) fn plan(workers: u32) -> Plan {
        use crate::plan::facts::{Hint, Platform, PlatformKind, PodResources};
        let env: crate::plan::Env = [("COREFIT_WORKERS".to_owned(), workers.to_string())].into();
        let o = crate::plan::resolve(&crate::plan::FlagValues::default(), &env).unwrap();
        let pod = PodResources {
            node_cpus: 64,
            cpus: Some(Hint {
                value: 16.0,
                variable: "test".into(),
            }),
            memory: None,
        };
        crate::plan::plan_for_pod(&pod, &Platform::new(PlatformKind::Vps, "test"), &o)
    }

    #[test]
    fn strategy_readiness_and_restarts_follow_the_run() {
        use ReadyCheck as R;
        use SocketStrategy as S;
        // (variables, workers, may grow) -> (strategy, readiness, restarts)
        type Case = (Vars, u32, bool, (S, R, bool));
        let cases: [Case; 15] = [
            (&[], 4, false, (S::Proxy, R::Port, true)),
            // One worker that cannot grow: nothing to balance.
            (&[], 1, false, (S::None, R::None, false)),
            (&[], 1, true, (S::Proxy, R::Port, true)),
            // A proxy-only setting keeps the proxy in front of one worker.
            (
                &[("COREFIT_FORWARDED", "x-forwarded")],
                1,
                false,
                (S::Proxy, R::Port, false),
            ),
            (
                &[("COREFIT_HEADER_TIMEOUT", "10s")],
                1,
                false,
                (S::Proxy, R::Port, false),
            ),
            (
                &[("COREFIT_SOCKET", "none")],
                3,
                false,
                (S::None, R::Port, true),
            ),
            (
                &[("COREFIT_SOCKET", "shared")],
                2,
                false,
                (S::Shared, R::Listen, true),
            ),
            (
                &[("COREFIT_SOCKET", "inject")],
                2,
                false,
                (S::Inject, R::Listen, true),
            ),
            // One socket for all: listening before any worker, so the
            // app's listen() says nothing.
            (
                &[
                    ("COREFIT_SOCKET", "shared"),
                    ("COREFIT_SHARED_SOCKETS", "one"),
                ],
                2,
                false,
                (S::Shared, R::None, true),
            ),
            (
                &[("COREFIT_SOCKET", "inject"), ("COREFIT_READY", "ipc")],
                2,
                false,
                (S::Inject, R::Ipc, true),
            ),
            (
                &[("COREFIT_SOCKET", "reuseport")],
                2,
                false,
                (S::Reuseport, R::None, true),
            ),
            (
                &[("COREFIT_READY", "notify")],
                2,
                false,
                (S::Proxy, R::Notify, true),
            ),
            (
                &[("COREFIT_RESTART", "never")],
                2,
                false,
                (S::Proxy, R::Port, false),
            ),
            (
                &[("COREFIT_RESTART", "always")],
                1,
                false,
                (S::None, R::None, true),
            ),
            (
                &[("COREFIT_READY", "ipc")],
                1,
                false,
                (S::None, R::Ipc, false),
            ),
        ];
        for vars in [
            &[("COREFIT_READY", "listen")][..],
            &[("COREFIT_READY", "listen"), ("COREFIT_SOCKET", "reuseport")],
            &[
                ("COREFIT_READY", "listen"),
                ("COREFIT_SOCKET", "shared"),
                ("COREFIT_SHARED_SOCKETS", "one"),
            ],
        ] {
            let e = Settings::resolve(&config(vars), &plan(2), false).unwrap_err();
            assert!(e.to_string().contains("--ready listen needs"), "{e}");
        }
        for (vars, workers, may_grow, want) in cases {
            let s = Settings::resolve(&config(vars), &plan(workers), may_grow).unwrap();
            assert_eq!((s.strategy, s.ready, s.restart), want, "{vars:?} {workers}");
            assert_eq!(s.policy.workers, workers);
            assert_eq!(s.policy.restart, s.restart);
            assert_eq!(s.policy.replace_in_place, s.strategy == S::None);
            assert_eq!(s.policy.ready_timeout.is_some(), s.ready != R::None);
        }
    }

    #[test]
    fn liveness_needs_a_port_of_each_workers_own() {
        let probe = [("COREFIT_LIVENESS_PATH", "/healthz")];
        let s = Settings::resolve(&config(&probe), &plan(2), false).unwrap();
        assert!(s.liveness && s.policy.probe_failures > 0 && s.warnings.is_empty());
        let shared = [probe[0], ("COREFIT_SOCKET", "shared")];
        let s = Settings::resolve(&config(&shared), &plan(2), false).unwrap();
        assert!(!s.liveness && s.policy.probe_failures == 0);
        assert!(s.warnings[0].contains("--liveness-path ignored with --socket shared"));
    }

    #[test]
    fn own_ports_past_65535_are_invalid_input() {
        let vars = [("COREFIT_SOCKET", "none"), ("PORT", "65534")];
        let e = Settings::resolve(&config(&vars), &plan(4), false).unwrap_err();
        assert_eq!(e.to_string(), "PORT 65534 + 4 workers runs past port 65535");
        assert_eq!(e.exit_code(), 2);
        assert!(Settings::resolve(&config(&vars), &plan(2), false).is_ok());
    }

    #[test]
    fn affinity_needs_the_proxy_and_brings_the_relay() {
        for strategy in ["shared", "inject", "reuseport", "none"] {
            let vars = [
                ("COREFIT_SOCKET", strategy),
                ("COREFIT_AFFINITY", "client-ip"),
            ];
            let e = Settings::resolve(&config(&vars), &plan(2), false).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let text = e.to_string();
            let start =
                format!("--affinity client-ip needs --socket proxy: with --socket {strategy},");
            assert!(text.starts_with(&start), "{text}");
        }
        let cookie = [("COREFIT_AFFINITY", "cookie")];
        let s = Settings::resolve(&config(&cookie), &plan(2), false).unwrap();
        assert!(s.relay && s.strategy == SocketStrategy::Proxy);
        // One worker that cannot grow takes the port itself; its adapter
        // still needs cluster.worker (an app that runs on 2 CPUs runs on 1).
        let s = Settings::resolve(&config(&cookie), &plan(1), false).unwrap();
        assert!(s.relay && s.strategy == SocketStrategy::None);
        let s = Settings::resolve(&config(&[]), &plan(2), false).unwrap();
        assert!(!s.relay); // `corefit plan` says the same.
        let said = affinity_conflict(Some("Shared"), Some("cookie")).unwrap();
        assert!(said.starts_with("--affinity cookie needs --socket proxy: with --socket shared,"));
        for (socket, affinity) in [
            (None, Some("client-ip")),
            (Some("proxy"), Some("cookie")),
            (Some("shared"), None),
            (Some("shared"), Some("none")),
            (Some("shared"), Some("bogus")),
            (Some("bogus"), Some("cookie")),
        ] {
            assert_eq!(
                affinity_conflict(socket, affinity),
                None,
                "{socket:?} {affinity:?}"
            );
        }
    }

    #[test]
    fn the_announcement_names_sockets_readiness_and_restarts() {
        let s = Settings::resolve(&config(&[]), &plan(4), false).unwrap();
        let line = s.announcement(&config(&[]), &plan(4));
        assert!(
            line.starts_with("cluster mode, 4 worker(s) (proxy on 0.0.0.0:3000; readiness by port; restarts on; grace "),
            "{line}"
        );
        let vars = [("COREFIT_SOCKET", "none"), ("PORT", "8000")];
        let s = Settings::resolve(&config(&vars), &plan(3), false).unwrap();
        assert!(s
            .announcement(&config(&vars), &plan(3))
            .contains("(PORT=8000..8002;"));
        let s = Settings::resolve(&config(&[]), &plan(1), false).unwrap();
        assert!(s
            .announcement(&config(&[]), &plan(1))
            .contains("(PORT as the app's environment has it; readiness at start; restarts off;"));
    }
}
