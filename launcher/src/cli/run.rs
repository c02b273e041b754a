//! The run settings as given ([`RunArgs`] from the command line, [`RunEnv`]
//! from the environment) and their resolution into the typed
//! [`RunConfig`]: each setting by its declaration, then the rules that
//! join several (the liveness group, `--backoff-max` at least `--backoff`).

use std::collections::BTreeMap;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};

use super::settings::*;
use super::ControlArgs;
use crate::plan::Env;
use crate::supervise::config::{ConfigError, Liveness, MemorySettings};
use crate::supervise::proxy::{Forwarding, ProxySettings};
use crate::supervise::RunConfig;

/// How the workers are run, as given on the command line (each setting
/// is also settable by environment: see [`super::settings`]). Values are
/// kept as text and validated by [`RunArgs::config_with`], so a bad value
/// only matters when corefit runs a command (`corefit plan` ignores them)
/// and the error names the flag and the variable.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    /// Values given on the command line, by flag (a switch's is empty).
    given: BTreeMap<&'static str, String>,
    pub control: ControlArgs,
}

/// The variables the run settings are read from.
#[derive(Debug, Clone, Default)]
pub struct RunEnv(Env);

impl RunEnv {
    /// From the process environment.
    pub fn from_process() -> RunEnv {
        RunEnv(crate::decision::process_env())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl From<Env> for RunEnv {
    fn from(env: Env) -> RunEnv {
        RunEnv(env)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for RunEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> RunEnv {
        RunEnv(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl RunArgs {
    /// Records `flag` (e.g. `--port`) as given on the command line with
    /// `value` (any value for a switch); false when no run setting has
    /// that flag.
    pub fn set(&mut self, flag: &str, value: impl Into<String>) -> bool {
        match ALL.iter().find(|s| s.flag == flag) {
            Some(spec) => {
                self.given.insert(spec.flag, value.into());
                true
            }
            None => false,
        }
    }

    /// The value `flag` was given on the command line.
    pub fn flag_value(&self, flag: &str) -> Option<&str> {
        self.given.get(flag).map(String::as_str)
    }

    /// The typed settings for running `command`, from these flags and
    /// the variables in `env`.
    pub fn config_with(
        &self,
        command: Vec<String>,
        env: &RunEnv,
    ) -> Result<RunConfig, ConfigError> {
        let backoff = BACKOFF.get(self, env)?;
        Ok(RunConfig {
            command,
            socket: SOCKET.get(self, env)?,
            host: HOST.get(self, env)?,
            port: PORT.get(self, env)?,
            port_given: PORT.setting(self, env).given().is_some(),
            grace: GRACE_PERIOD.get(self, env)?,
            respawn_limit: RESPAWN_LIMIT.get(self, env)?,
            min_uptime: MIN_UPTIME.get(self, env)?,
            backoff_initial: backoff,
            backoff_max: BACKOFF_MAX.get(self, env)?.max(backoff),
            restart: RESTART.get(self, env)?,
            ready: READY.get(self, env)?,
            ready_timeout: READY_TIMEOUT.get(self, env)?,
            log_prefix: LOG_PREFIX.get(self, env)?,
            log_format: LOG_FORMAT.get(self, env)?,
            shared_sockets: SHARED_SOCKETS.get(self, env)?,
            handover: HANDOVER.get(self, env)?,
            reload_parallelism: RELOAD_PARALLELISM.get(self, env)?,
            liveness: self.liveness(env)?,
            resize_interval: RESIZE_INTERVAL.get(self, env)?,
            control_socket: self.control.path(),
            admin_addr: ADMIN_ADDR.get(self, env)?,
            memory: MemorySettings {
                interval: MEMORY_INTERVAL.get(self, env)?,
                report: MEMORY_MONITORING.get(self, env)?,
                threshold_bytes: MEMORY_THRESHOLD.get(self, env)?,
                ceiling: MAX_MEMORY_PER_WORKER.get(self, env)?,
            },
            proxy: self.proxy_settings(env)?,
        })
    }

    /// Probes only with `--liveness-path`; the other liveness settings
    /// are not read without it.
    fn liveness(&self, env: &RunEnv) -> Result<Option<Liveness>, ConfigError> {
        let Some(path) = LIVENESS_PATH.get(self, env)? else {
            return Ok(None);
        };
        let failures = LIVENESS_FAILURES.get(self, env)?;
        let interval = LIVENESS_INTERVAL.get(self, env)?;
        let timeout = LIVENESS_TIMEOUT.get(self, env)?;
        Ok(Some(Liveness {
            path,
            interval,
            timeout,
            failures,
        }))
    }

    fn proxy_settings(&self, env: &RunEnv) -> Result<ProxySettings, ConfigError> {
        let max_connections = MAX_CONNECTIONS.get(self, env)?;
        let trusted = TRUST_FORWARDED.get(self, env)?;
        Ok(ProxySettings {
            header_timeout: HEADER_TIMEOUT.get(self, env)?,
            idle_timeout: IDLE_TIMEOUT.get(self, env)?,
            max_connections,
            max_head: crate::supervise::proxy::settings::MAX_HEAD,
            forwarding: Forwarding {
                headers: FORWARDED.get(self, env)?,
                trusted,
                proxy_protocol: PROXY_PROTOCOL.get(self, env)?,
            },
            affinity: AFFINITY.get(self, env)?,
        })
    }
}

/// Clap's side: one argument per declared setting, then the control socket.
impl Args for RunArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = ALL.iter().fold(cmd, |cmd, spec| cmd.arg(spec.arg()));
        ControlArgs::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RunArgs::augment_args(cmd)
    }
}

impl FromArgMatches for RunArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<RunArgs, clap::Error> {
        let mut given = BTreeMap::new();
        for spec in ALL {
            let id = spec.long();
            // Clap also reads a single variable to show it in help; only
            // the command line counts here (variables: `RunEnv`).
            if m.value_source(id) != Some(ValueSource::CommandLine) {
                continue;
            }
            let value = match spec.value_name {
                None => String::new(),
                Some(_) => m.get_one::<String>(id).cloned().unwrap_or_default(),
            };
            given.insert(spec.flag, value);
        }
        Ok(RunArgs {
            given,
            control: ControlArgs::from_arg_matches(m)?,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = RunArgs::from_arg_matches(m)?;
        Ok(())
    }
}
