//! The share table: what each runtime is told about its worker's share of
//! the CPUs and the memory, so N workers do not each size themselves for
//! the whole container. Pure: the decision's numbers and the user's own
//! values in, [`Share`] rows out (each with its reason); `worker_env`
//! puts the values into the workers' environment.
//!
//! | variable | runtime | value | when |
//! |---|---|---|---|
//! | `GOMAXPROCS` | Go | CPUs per worker (whole, >= 1) | always |
//! | `GOMEMLIMIT` | Go | [`GO_MEMLIMIT_PERCENT`] % of the memory share, `MiB` | memory limited |
//! | `UV_THREADPOOL_SIZE` | Node (libuv) | CPUs per worker clamped to 2..=4 | always |
//! | `PYTHON_CPU_COUNT` | Python >= 3.13 | CPUs per worker | always |
//! | `JAVA_TOOL_OPTIONS` | JVM | `-XX:ActiveProcessorCount=N` (+ `-XX:MaxRAM=<share>m` when memory limited) | the command is `java` |
//! | `DOTNET_PROCESSOR_COUNT` | .NET | CPUs per worker | the command is `dotnet` |
//! | `DOTNET_GCHeapHardLimit` | .NET | [`DOTNET_HEAP_PERCENT`] % of the share, hex | the command is `dotnet`, memory limited |
//!
//! A variable the user set is kept as it is (the row says so), except
//! `JAVA_TOOL_OPTIONS`, which is extended like `NODE_OPTIONS`: corefit's
//! flags are appended to the user's unless the user's value already has
//! that flag (`-XX:ActiveProcessorCount`; any of `-Xmx`, `-XX:MaxHeapSize`,
//! `-XX:MaxRAM=` for the memory bound). The JVM prints "Picked up
//! JAVA_TOOL_OPTIONS" and .NET reads its variables in every process, so
//! those two are given only to a command known to be that runtime.

use std::collections::BTreeMap;

use serde::Serialize;

/// Share of a Go worker's memory given as its soft limit (`GOMEMLIMIT`):
/// the rest covers what the Go runtime does not count (cgo, thread stacks
/// outside the heap's accounting, the kernel's page cache charged to the
/// cgroup).
pub const GO_MEMLIMIT_PERCENT: u64 = 90;

/// Share of a .NET worker's memory given as `DOTNET_GCHeapHardLimit`
/// (.NET's own default in a container is 75 % of the limit).
pub const DOTNET_HEAP_PERCENT: u64 = 75;

/// libuv's default thread pool size, which corefit never raises.
pub const UV_THREADPOOL_DEFAULT: u32 = 4;

/// The smallest libuv pool corefit sets: one slow DNS lookup or disk read
/// must not stall every other fs, DNS and crypto call of the worker.
pub const UV_THREADPOOL_FLOOR: u32 = 2;

/// The variables of the table, which the user may set themselves
/// (`GOMAXPROCS` and `NODE_OPTIONS` have their own fields in
/// `Overrides`).
pub const USER_VARIABLES: [&str; 6] = [
    "GOMEMLIMIT",
    "UV_THREADPOOL_SIZE",
    "PYTHON_CPU_COUNT",
    "JAVA_TOOL_OPTIONS",
    "DOTNET_PROCESSOR_COUNT",
    "DOTNET_GCHeapHardLimit",
];

/// Who reads a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Go,
    Node,
    Python,
    Jvm,
    Dotnet,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Go => "go",
            Runtime::Node => "node",
            Runtime::Python => "python",
            Runtime::Jvm => "jvm",
            Runtime::Dotnet => "dotnet",
        }
    }

    /// Whether the variable is given only to a command of this runtime
    /// (the others are harmless to any process and given to all).
    pub fn only_to_its_command(self) -> bool {
        matches!(self, Runtime::Jvm | Runtime::Dotnet)
    }
}

/// One row of the table, as decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Share {
    pub variable: String,
    pub runtime: Runtime,
    /// The value corefit sets; `None` when the user's value is kept.
    pub value: Option<String>,
    /// True when the user set the variable (kept, or extended for
    /// `JAVA_TOOL_OPTIONS`).
    pub user_set: bool,
    /// Given only when the command is this runtime.
    pub only_for_command: bool,
    /// Why this value, in words.
    pub reason: String,
}

/// The decision's numbers the table reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    pub workers: u32,
    /// Whole CPUs per worker, at least 1.
    pub cpus_per_worker: u32,
    /// Each worker's share of a *limited* memory, in bytes.
    pub memory_share: Option<u64>,
}

/// The rows for `sizes`, keeping what `user` (the user's values of
/// [`USER_VARIABLES`] and `GOMAXPROCS`) set.
pub fn shares(sizes: Sizes, user: &BTreeMap<String, String>) -> Vec<Share> {
    let n = sizes.cpus_per_worker.max(1);
    let per = if sizes.workers > 1 {
        format!(
            "{n} whole CPU{} per worker ({} workers)",
            plural(n),
            sizes.workers
        )
    } else {
        format!("{n} whole CPU{}", plural(n))
    };
    let mib = sizes.memory_share.map(|b| (b >> 20).max(1));
    let mut rows = Vec::new();

    rows.push(row(
        user,
        "GOMAXPROCS",
        Runtime::Go,
        Some((
            n.to_string(),
            format!("{per}; Go would run one thread per host CPU"),
        )),
    ));
    rows.push(row(
        user,
        "GOMEMLIMIT",
        Runtime::Go,
        mib.map(|m| {
            let limit = (m * GO_MEMLIMIT_PERCENT / 100).max(1);
            (
                format!("{limit}MiB"),
                format!("{GO_MEMLIMIT_PERCENT} % of the worker's {m} MiB; without it Go's GC ignores the limit until the kernel kills the process"),
            )
        }),
    ));
    let uv = n.clamp(UV_THREADPOOL_FLOOR, UV_THREADPOOL_DEFAULT);
    rows.push(row(
        user,
        "UV_THREADPOOL_SIZE",
        Runtime::Node,
        Some((
            uv.to_string(),
            format!("{per}, within {UV_THREADPOOL_FLOOR}..={UV_THREADPOOL_DEFAULT} (libuv's default of {UV_THREADPOOL_DEFAULT} threads per process, never raised)"),
        )),
    ));
    rows.push(row(
        user,
        "PYTHON_CPU_COUNT",
        Runtime::Python,
        Some((
            n.to_string(),
            format!("{per}; os.cpu_count() in Python 3.13+"),
        )),
    ));
    rows.push(java_row(user, n, &per, mib));
    rows.push(row(
        user,
        "DOTNET_PROCESSOR_COUNT",
        Runtime::Dotnet,
        Some((n.to_string(), per.clone())),
    ));
    rows.push(row(
        user,
        "DOTNET_GCHeapHardLimit",
        Runtime::Dotnet,
        sizes.memory_share.map(|b| {
            let limit = ((b as u128 * DOTNET_HEAP_PERCENT as u128 / 100) as u64).max(1 << 20);
            (
                format!("0x{limit:X}"),
                format!(
                    "{DOTNET_HEAP_PERCENT} % of the worker's {} MiB, in hex as .NET reads it",
                    b >> 20
                ),
            )
        }),
    ));
    rows.retain(|r| r.value.is_some() || r.user_set);
    rows
}

/// A row for a variable corefit sets only when the user did not.
fn row(
    user: &BTreeMap<String, String>,
    variable: &str,
    runtime: Runtime,
    decided: Option<(String, String)>,
) -> Share {
    let only_for_command = runtime.only_to_its_command();
    match user.get(variable).filter(|v| !v.trim().is_empty()) {
        Some(v) => Share {
            variable: variable.to_owned(),
            runtime,
            value: None,
            user_set: true,
            only_for_command,
            reason: format!(
                "kept: set by the user ({})",
                super::redact::quoted(variable, v)
            ),
        },
        None => {
            let (value, reason) = match decided {
                Some(d) => (Some(d.0), d.1),
                None => (None, String::new()),
            };
            Share {
                variable: variable.to_owned(),
                runtime,
                value,
                user_set: false,
                only_for_command,
                reason,
            }
        }
    }
}

/// `JAVA_TOOL_OPTIONS`: corefit's flags appended to the user's, each only
/// when the user's value does not already have it.
fn java_row(user: &BTreeMap<String, String>, n: u32, per: &str, mib: Option<u64>) -> Share {
    let mine = user
        .get("JAVA_TOOL_OPTIONS")
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let mut flags = Vec::new();
    let mut why = Vec::new();
    let mut kept = Vec::new();
    if mine.contains("-XX:ActiveProcessorCount") {
        kept.push("-XX:ActiveProcessorCount");
    } else {
        flags.push(format!("-XX:ActiveProcessorCount={n}"));
        why.push(per.to_owned());
    }
    if let Some(m) = mib {
        if ["-Xmx", "-XX:MaxHeapSize", "-XX:MaxRAM="]
            .iter()
            .any(|f| mine.contains(f))
        {
            kept.push("the user's heap bound");
        } else {
            flags.push(format!("-XX:MaxRAM={m}m"));
            why.push(format!(
                "the JVM sizes its heap from the worker's {m} MiB instead of the container's"
            ));
        }
    }
    if !kept.is_empty() {
        why.push(format!("kept: {}", kept.join(", ")));
    }
    if !mine.is_empty() && !flags.is_empty() {
        why.push("appended to the user's value".to_owned());
    }
    let value = if flags.is_empty() {
        None
    } else if mine.is_empty() {
        Some(flags.join(" "))
    } else {
        Some(format!("{mine} {}", flags.join(" ")))
    };
    Share {
        variable: "JAVA_TOOL_OPTIONS".to_owned(),
        runtime: Runtime::Jvm,
        value,
        user_set: !mine.is_empty(),
        only_for_command: true,
        reason: why.join("; "),
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn user(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn value(rows: &[Share], var: &str) -> Option<String> {
        rows.iter()
            .find(|r| r.variable == var)
            .and_then(|r| r.value.clone())
    }

    fn two_workers_of_512() -> Sizes {
        Sizes {
            workers: 2,
            cpus_per_worker: 1,
            memory_share: Some(512 * MIB),
        }
    }

    #[test]
    fn go_gets_procs_and_ninety_percent_of_its_share() {
        let rows = shares(two_workers_of_512(), &BTreeMap::new());
        assert_eq!(value(&rows, "GOMAXPROCS").as_deref(), Some("1"));
        assert_eq!(value(&rows, "GOMEMLIMIT").as_deref(), Some("460MiB"));
        let r = rows.iter().find(|r| r.variable == "GOMEMLIMIT").unwrap();
        assert!(
            r.reason.contains("90 % of the worker's 512 MiB"),
            "{}",
            r.reason
        );
        assert!(!r.only_for_command);
    }

    #[test]
    fn node_pool_follows_cpus_within_two_to_four() {
        for (cpus, want) in [(1, "2"), (2, "2"), (3, "3"), (4, "4"), (16, "4")] {
            let s = Sizes {
                workers: 1,
                cpus_per_worker: cpus,
                memory_share: None,
            };
            let rows = shares(s, &BTreeMap::new());
            assert_eq!(
                value(&rows, "UV_THREADPOOL_SIZE").as_deref(),
                Some(want),
                "{cpus}"
            );
        }
    }

    #[test]
    fn python_gets_its_cpus() {
        let s = Sizes {
            workers: 2,
            cpus_per_worker: 3,
            memory_share: None,
        };
        let rows = shares(s, &BTreeMap::new());
        assert_eq!(value(&rows, "PYTHON_CPU_COUNT").as_deref(), Some("3"));
        let r = rows
            .iter()
            .find(|r| r.variable == "PYTHON_CPU_COUNT")
            .unwrap();
        assert!(r.reason.starts_with("3 whole CPUs per worker (2 workers)"));
    }

    #[test]
    fn jvm_gets_processors_and_max_ram_only_for_its_command() {
        let rows = shares(two_workers_of_512(), &BTreeMap::new());
        let r = rows
            .iter()
            .find(|r| r.variable == "JAVA_TOOL_OPTIONS")
            .unwrap();
        assert_eq!(
            r.value.as_deref(),
            Some("-XX:ActiveProcessorCount=1 -XX:MaxRAM=512m")
        );
        assert!(r.only_for_command);
        assert!(!r.user_set);
    }

    #[test]
    fn jvm_user_options_are_extended_not_replaced() {
        let u = user(&[("JAVA_TOOL_OPTIONS", "-Dapp=1 -Xmx300m")]);
        let rows = shares(two_workers_of_512(), &u);
        assert_eq!(
            value(&rows, "JAVA_TOOL_OPTIONS").as_deref(),
            Some("-Dapp=1 -Xmx300m -XX:ActiveProcessorCount=1")
        );
        let u = user(&[(
            "JAVA_TOOL_OPTIONS",
            "-XX:ActiveProcessorCount=3 -XX:MaxRAM=1g",
        )]);
        let rows = shares(two_workers_of_512(), &u);
        let r = rows
            .iter()
            .find(|r| r.variable == "JAVA_TOOL_OPTIONS")
            .unwrap();
        assert_eq!(r.value, None);
        assert!(r.user_set);
        assert!(r.reason.contains("kept"), "{}", r.reason);
    }

    #[test]
    fn dotnet_gets_processors_and_a_hex_heap_limit() {
        let rows = shares(two_workers_of_512(), &BTreeMap::new());
        assert_eq!(value(&rows, "DOTNET_PROCESSOR_COUNT").as_deref(), Some("1"));
        // 75 % of 512 MiB = 384 MiB = 0x18000000.
        assert_eq!(
            value(&rows, "DOTNET_GCHeapHardLimit").as_deref(),
            Some("0x18000000")
        );
        assert!(rows
            .iter()
            .filter(|r| r.runtime == Runtime::Dotnet)
            .all(|r| r.only_for_command));
    }

    #[test]
    fn no_memory_bounds_without_a_memory_limit() {
        let s = Sizes {
            workers: 4,
            cpus_per_worker: 1,
            memory_share: None,
        };
        let rows = shares(s, &BTreeMap::new());
        assert_eq!(value(&rows, "GOMEMLIMIT"), None);
        assert_eq!(value(&rows, "DOTNET_GCHeapHardLimit"), None);
        assert_eq!(
            value(&rows, "JAVA_TOOL_OPTIONS").as_deref(),
            Some("-XX:ActiveProcessorCount=1")
        );
        assert!(rows.iter().all(|r| r.variable != "GOMEMLIMIT"));
    }

    #[test]
    fn a_value_the_user_set_is_kept_and_said_so() {
        for var in USER_VARIABLES.iter().chain(&["GOMAXPROCS"]) {
            if *var == "JAVA_TOOL_OPTIONS" {
                continue;
            }
            let rows = shares(two_workers_of_512(), &user(&[(var, "7")]));
            let r = rows.iter().find(|r| r.variable == *var).unwrap();
            assert_eq!(r.value, None, "{var}");
            assert!(r.user_set, "{var}");
            assert_eq!(r.reason, "kept: set by the user (\"7\")", "{var}");
        }
    }

    #[test]
    fn tiny_shares_never_give_zero() {
        let s = Sizes {
            workers: 64,
            cpus_per_worker: 0,
            memory_share: Some(1),
        };
        let rows = shares(s, &BTreeMap::new());
        assert_eq!(value(&rows, "GOMAXPROCS").as_deref(), Some("1"));
        assert_eq!(value(&rows, "GOMEMLIMIT").as_deref(), Some("1MiB"));
        assert_eq!(
            value(&rows, "DOTNET_GCHeapHardLimit").as_deref(),
            Some("0x100000")
        );
    }
}
