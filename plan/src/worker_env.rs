//! The environment each worker gets, computed from the decision.
//!
//! Common to all workers: `COREFIT_MODE`, `COREFIT_WORKERS`,
//! `WEB_CONCURRENCY=1` in cluster mode (so an app that forks on its own
//! does not multiply the count), a Node heap ceiling appended to the user's
//! `NODE_OPTIONS` when memory is limited (unless the user set
//! `--max-old-space-size` already), and the runtimes' shares of
//! [`super::shares`] (`GOMAXPROCS`, `GOMEMLIMIT`, `UV_THREADPOOL_SIZE`,
//! `PYTHON_CPU_COUNT`, each unless set). The JVM's and .NET's shares go
//! only to a command known to be that runtime: the launcher names it in
//! [`WorkerEnv::command_runtime`] after inspecting the command.
//! Per worker: `COREFIT_WORKER_ID` and `NODE_APP_INSTANCE` (0..N-1, as PM2).

use std::collections::BTreeMap;

use serde::Serialize;

use super::decide::{whole_cpus, Mode};
use super::overrides::Overrides;
use super::shares::{shares, Runtime, Share, Sizes};

/// Share of a worker's memory budget given to V8's old space; the rest is
/// left for buffers, code, stacks and native memory.
pub const NODE_HEAP_SHARE_PERCENT: u64 = 75;

/// The smallest heap ceiling corefit will set, in MiB.
pub const NODE_HEAP_FLOOR_MIB: u64 = 32;

/// The environment the plan hands to workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerEnv {
    /// Variables every worker gets (printed with secret-looking values
    /// redacted; the workers get the real ones).
    #[serde(serialize_with = "super::redact::serialize_env")]
    pub common: BTreeMap<String, String>,
    /// The Node heap ceiling set, in MiB, if any.
    pub node_max_old_space_mib: Option<u64>,
    /// Variables given only to a command of that runtime (the JVM's,
    /// .NET's), by runtime.
    #[serde(serialize_with = "serialize_by_runtime")]
    pub by_runtime: BTreeMap<Runtime, BTreeMap<String, String>>,
    /// The runtime the command was found to be (`None` until the launcher
    /// inspected it, or when it is none of the table's): selects
    /// [`WorkerEnv::by_runtime`].
    pub command_runtime: Option<Runtime>,
    /// The share table's rows, each with its reason (`corefit plan`).
    pub shares: Vec<Share>,
}

fn serialize_by_runtime<S: serde::Serializer>(
    by: &BTreeMap<Runtime, BTreeMap<String, String>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    struct Redacted<'a>(&'a BTreeMap<String, String>);
    impl Serialize for Redacted<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::redact::serialize_env(self.0, s)
        }
    }
    let mut map = serializer.serialize_map(Some(by.len()))?;
    for (k, v) in by {
        map.serialize_entry(k.as_str(), &Redacted(v))?;
    }
    map.end()
}

impl WorkerEnv {
    /// The full set for worker `id` (0-based).
    pub fn for_worker(&self, id: u32) -> BTreeMap<String, String> {
        let mut env = self.common.clone();
        if let Some(only) = self.command_runtime.and_then(|r| self.by_runtime.get(&r)) {
            env.extend(only.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        env.insert("COREFIT_WORKER_ID".to_owned(), id.to_string());
        env.insert("NODE_APP_INSTANCE".to_owned(), id.to_string());
        env
    }
}

/// Computes the worker environment. `memory_share` is each worker's share
/// of a *limited* memory (None when only the host's size is known).
pub fn worker_env(
    mode: Mode,
    workers: u32,
    cpus: f64,
    memory_share: Option<u64>,
    overrides: &Overrides,
) -> WorkerEnv {
    let mut common = BTreeMap::new();
    common.insert("COREFIT_MODE".to_owned(), mode.as_str().to_owned());
    common.insert("COREFIT_WORKERS".to_owned(), workers.to_string());
    if mode == Mode::Cluster {
        common.insert("WEB_CONCURRENCY".to_owned(), "1".to_owned());
    }

    let user_node_options = overrides.node_options.clone().unwrap_or_default();
    let user_set_heap = user_node_options.contains("--max-old-space-size");
    let node_max_old_space_mib = match memory_share {
        Some(share) if !user_set_heap => {
            Some((share / (1024 * 1024) * NODE_HEAP_SHARE_PERCENT / 100).max(NODE_HEAP_FLOOR_MIB))
        }
        _ => None,
    };
    if let Some(mib) = node_max_old_space_mib {
        let flag = format!("--max-old-space-size={mib}");
        let value = if user_node_options.trim().is_empty() {
            flag
        } else {
            format!("{} {flag}", user_node_options.trim())
        };
        common.insert("NODE_OPTIONS".to_owned(), value);
    }

    let mut user = overrides.runtime_env.clone();
    if let Some(g) = &overrides.gomaxprocs {
        user.insert("GOMAXPROCS".to_owned(), g.clone());
    }
    let sizes = Sizes {
        workers,
        cpus_per_worker: whole_cpus(cpus / workers.max(1) as f64),
        memory_share,
    };
    let shares = shares(sizes, &user);
    let mut by_runtime: BTreeMap<Runtime, BTreeMap<String, String>> = BTreeMap::new();
    for s in &shares {
        let Some(value) = &s.value else { continue };
        let into = if s.only_for_command {
            by_runtime.entry(s.runtime).or_default()
        } else {
            &mut common
        };
        into.insert(s.variable.clone(), value.clone());
    }
    WorkerEnv {
        common,
        node_max_old_space_mib,
        by_runtime,
        command_runtime: None,
        shares,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_is_appended_to_user_node_options() {
        let o = Overrides {
            node_options: Some("--enable-source-maps".into()),
            ..Default::default()
        };
        let env = worker_env(Mode::Cluster, 2, 2.0, Some(512 * 1024 * 1024), &o);
        assert_eq!(
            env.common["NODE_OPTIONS"],
            "--enable-source-maps --max-old-space-size=384"
        );
        assert_eq!(env.common["WEB_CONCURRENCY"], "1");
        assert_eq!(env.common["GOMAXPROCS"], "1");
        let w1 = env.for_worker(1);
        assert_eq!(w1["COREFIT_WORKER_ID"], "1");
        assert_eq!(w1["NODE_APP_INSTANCE"], "1");
    }

    #[test]
    fn user_heap_and_gomaxprocs_win() {
        let o = Overrides {
            node_options: Some("--max-old-space-size=100".into()),
            gomaxprocs: Some("7".into()),
            ..Default::default()
        };
        let env = worker_env(Mode::Single, 1, 4.0, Some(1 << 30), &o);
        assert!(!env.common.contains_key("NODE_OPTIONS"));
        assert!(!env.common.contains_key("GOMAXPROCS"));
        assert!(!env.common.contains_key("WEB_CONCURRENCY"));
        assert_eq!(env.common["GOMEMLIMIT"], "921MiB");
        assert_eq!(env.node_max_old_space_mib, None);
    }

    #[test]
    fn no_heap_ceiling_without_a_memory_limit() {
        let env = worker_env(Mode::Single, 1, 1.5, None, &Overrides::default());
        assert!(!env.common.contains_key("NODE_OPTIONS"));
        assert_eq!(env.common["GOMAXPROCS"], "1");
        assert!(!env.common.contains_key("GOMEMLIMIT"));
    }

    #[test]
    fn jvm_and_dotnet_shares_go_only_to_their_command() {
        let mut env = worker_env(
            Mode::Cluster,
            2,
            2.0,
            Some(512 << 20),
            &Overrides::default(),
        );
        assert_eq!(env.common["GOMEMLIMIT"], "460MiB");
        assert_eq!(env.common["UV_THREADPOOL_SIZE"], "2");
        assert_eq!(env.common["PYTHON_CPU_COUNT"], "1");
        assert!(!env.for_worker(0).contains_key("JAVA_TOOL_OPTIONS"));
        assert!(!env.for_worker(0).contains_key("DOTNET_PROCESSOR_COUNT"));
        env.command_runtime = Some(Runtime::Jvm);
        let w = env.for_worker(1);
        assert_eq!(
            w["JAVA_TOOL_OPTIONS"],
            "-XX:ActiveProcessorCount=1 -XX:MaxRAM=512m"
        );
        assert!(!w.contains_key("DOTNET_PROCESSOR_COUNT"));
        env.command_runtime = Some(Runtime::Dotnet);
        let w = env.for_worker(1);
        assert_eq!(w["DOTNET_PROCESSOR_COUNT"], "1");
        assert_eq!(w["DOTNET_GCHeapHardLimit"], "0x18000000");
        assert!(!w.contains_key("JAVA_TOOL_OPTIONS"));
    }

    #[test]
    fn user_runtime_values_are_kept() {
        let mut o = Overrides::default();
        o.runtime_env
            .insert("UV_THREADPOOL_SIZE".to_owned(), "16".to_owned());
        o.runtime_env
            .insert("GOMEMLIMIT".to_owned(), "1GiB".to_owned());
        let env = worker_env(Mode::Cluster, 2, 2.0, Some(1 << 30), &o);
        // The user's value reaches the worker through its inherited
        // environment: corefit sets nothing over it.
        assert!(!env.common.contains_key("UV_THREADPOOL_SIZE"));
        assert!(!env.common.contains_key("GOMEMLIMIT"));
        let kept: Vec<_> = env.shares.iter().filter(|s| s.user_set).collect();
        assert_eq!(kept.len(), 2);
    }
}
