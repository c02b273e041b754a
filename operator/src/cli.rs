//! Settings: flags with environment fallbacks, destructured into a typed
//! [`Config`].

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};

use crate::decide::ClusterInfo;
use crate::leader::LeaseConfig;

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

    /// Elect one leader among the operator's replicas with a
    /// coordination.k8s.io/v1 Lease; only the leader reconciles.
    #[arg(long, env = "COREFIT_OPERATOR_LEADER_ELECTION", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the Lease.
    #[arg(
        long,
        env = "COREFIT_OPERATOR_LEASE_NAME",
        default_value = "corefit-operator"
    )]
    pub lease_name: String,

    /// Namespace of the Lease (the operator's own, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// Seconds a Lease stays valid after its holder's last renewal: a
    /// leader that dies is replaced within this time.
    #[arg(long, env = "COREFIT_OPERATOR_LEASE_DURATION", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_duration: u64,

    /// This candidate's identity in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

/// The operator's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub namespace: Option<String>,
    pub metrics_addr: SocketAddr,
    pub log_format: LogFormat,
    pub info: ClusterInfo,
    /// The Lease to campaign for; `None` runs without leader election.
    pub lease: Option<LeaseConfig>,
}

impl From<Cli> for Config {
    fn from(cli: Cli) -> Self {
        let Cli {
            namespace,
            metrics_addr,
            log_format,
            node_cpus,
            launcher_image,
            leader_election,
            lease_name,
            lease_namespace,
            lease_duration,
            identity,
        } = cli;
        Config {
            namespace: namespace.filter(|n| !n.trim().is_empty()),
            metrics_addr,
            log_format,
            info: ClusterInfo {
                node_cpus,
                launcher_image: launcher_image.filter(|i| !i.trim().is_empty()),
            },
            lease: leader_election.then(|| LeaseConfig {
                name: lease_name,
                namespace: lease_namespace,
                identity: identity
                    .filter(|i| !i.trim().is_empty())
                    .unwrap_or_else(|| "corefit-operator".to_owned()),
                duration_secs: lease_duration,
            }),
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
        assert_eq!(c.lease, None);
    }

    #[test]
    fn leader_election_flags() {
        let cli = Cli::try_parse_from([
            "corefit-operator",
            "--leader-election",
            "true",
            "--lease-name",
            "l",
            "--lease-namespace",
            "ops",
            "--lease-duration",
            "9",
            "--identity",
            "pod-a",
        ])
        .unwrap();
        assert_eq!(
            Config::from(cli).lease,
            Some(LeaseConfig {
                name: "l".into(),
                namespace: "ops".into(),
                identity: "pod-a".into(),
                duration_secs: 9,
            })
        );
        let e = Cli::try_parse_from(["corefit-operator", "--lease-duration", "1"]).unwrap_err();
        assert!(e.to_string().contains("--lease-duration"), "{e}");
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
