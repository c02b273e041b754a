//! Settings: flags with environment fallbacks, destructured into a typed
//! [`Config`].

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};

use crate::decide::ClusterInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// corefit-operator: reconciles ClusterApp resources into Deployments and
/// Services, choosing replicas or workers per pod.
#[derive(Debug, Parser)]
#[command(name = "corefit-operator", version)]
pub struct Cli {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, short = 'n', env = "COREFIT_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "COREFIT_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "COREFIT_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The CPUs of the largest node: a pod never gets more workers than
    /// this, whatever its CPU limit says.
    #[arg(long, env = "COREFIT_OPERATOR_NODE_CPUS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub node_cpus: u32,

    /// The image holding `/corefit`, copied into pods of apps with
    /// `launcher.mode: InitContainer` that name no `launcher.image`.
    #[arg(long, env = "COREFIT_OPERATOR_LAUNCHER_IMAGE")]
    pub launcher_image: Option<String>,
}

/// The operator's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub namespace: Option<String>,
    pub metrics_addr: SocketAddr,
    pub log_format: LogFormat,
    pub info: ClusterInfo,
}

impl From<Cli> for Config {
    fn from(cli: Cli) -> Self {
        let Cli {
            namespace,
            metrics_addr,
            log_format,
            node_cpus,
            launcher_image,
        } = cli;
        Config {
            namespace: namespace.filter(|n| !n.trim().is_empty()),
            metrics_addr,
            log_format,
            info: ClusterInfo {
                node_cpus,
                launcher_image: launcher_image.filter(|i| !i.trim().is_empty()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_into_config() {
        let cli = Cli::try_parse_from([
            "corefit-operator",
            "-n",
            "apps",
            "--metrics-addr",
            "127.0.0.1:9000",
            "--log-format",
            "json",
            "--node-cpus",
            "8",
        ])
        .unwrap();
        let c = Config::from(cli);
        assert_eq!(c.namespace.as_deref(), Some("apps"));
        assert_eq!(c.metrics_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.info.node_cpus, 8);
    }

    #[test]
    fn bad_values_are_errors_naming_the_flag() {
        for args in [
            ["--node-cpus", "0"],
            ["--metrics-addr", "nowhere"],
            ["--log-format", "xml"],
        ] {
            let e = Cli::try_parse_from(["corefit-operator", args[0], args[1]]).unwrap_err();
            assert!(e.to_string().contains(args[0]), "{e}");
        }
    }
}
