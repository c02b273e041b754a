//! The command line: its shape, each run setting's parse, default and
//! error, and the help derived from the declarations.

use clap::{CommandFactory, Parser};

use super::*;
use crate::supervise::config::MemoryCeiling;
use crate::supervise::proxy::{ForwardedHeaders, MaxConnections, ProxyProtocol};
use crate::supervise::{LogFormat, ReadyCheck, RestartPolicy, SocketStrategy};

/// Only `COREFIT_LOG_PREFIX` set.
fn log_prefix(value: &str) -> RunEnv {
    [("COREFIT_LOG_PREFIX", value)].into_iter().collect()
}

#[test]
fn cli_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn run_form_takes_flags_and_the_command() {
    let cli = Cli::try_parse_from([
        "corefit",
        "--workers",
        "2",
        "--socket",
        "shared",
        "--grace-period",
        "3s",
        "--",
        "node",
        "server.js",
        "--port",
        "9",
    ])
    .unwrap();
    assert!(cli.command.is_none());
    assert_eq!(cli.plan.workers.as_deref(), Some("2"));
    assert_eq!(cli.cmd, ["node", "server.js", "--port", "9"]);
    let cfg = cli
        .run
        .config_with(cli.cmd.clone(), &RunEnv::default())
        .unwrap();
    assert_eq!(cfg.socket, SocketStrategy::Shared);
    assert_eq!(cfg.grace, std::time::Duration::from_secs(3));
}

fn run_error(args: &[&str]) -> String {
    let mut argv = vec!["corefit"];
    argv.extend_from_slice(args);
    argv.extend(["--", "x"]);
    let cli = Cli::try_parse_from(argv).unwrap();
    cli.run
        .config_with(cli.cmd, &RunEnv::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn proxy_settings_parse_and_bad_ones_name_their_flag() {
    let cli = Cli::try_parse_from([
        "corefit",
        "--header-timeout",
        "2s",
        "--idle-timeout",
        "500ms",
        "--max-connections",
        "300",
        "--forwarded",
        "both",
        "--trust-forwarded",
        "10.0.0.0/8, ::1",
        "--proxy-protocol",
        "v2",
        "--",
        "x",
    ])
    .unwrap();
    let p = cli
        .run
        .config_with(cli.cmd, &RunEnv::default())
        .unwrap()
        .proxy;
    assert_eq!(p.header_timeout, std::time::Duration::from_secs(2));
    assert_eq!(p.idle_timeout, std::time::Duration::from_millis(500));
    assert_eq!(p.max_connections, MaxConnections::Limit(300));
    assert_eq!(p.forwarding.headers, ForwardedHeaders::Both);
    assert_eq!(p.forwarding.trusted.len(), 2);
    assert_eq!(p.forwarding.proxy_protocol, ProxyProtocol::V2);
    for (flag, value, var) in [
        ("--header-timeout", "0", "COREFIT_HEADER_TIMEOUT"),
        ("--idle-timeout", "soon", "COREFIT_IDLE_TIMEOUT"),
        ("--max-connections", "0", "COREFIT_MAX_CONNECTIONS"),
        ("--max-connections", "1e9", "COREFIT_MAX_CONNECTIONS"),
        ("--forwarded", "yes", "COREFIT_FORWARDED"),
        (
            "--trust-forwarded",
            "10.0.0.0/33",
            "COREFIT_TRUST_FORWARDED",
        ),
        ("--proxy-protocol", "v3", "COREFIT_PROXY_PROTOCOL"),
    ] {
        let err = run_error(&[flag, value]);
        assert!(
            err.contains(flag) && err.contains(var),
            "{flag} {value}: {err}"
        );
    }
}

#[test]
fn bad_run_values_are_errors_naming_the_flag_and_variable() {
    let err = run_error(&["--grace-period", "abc"]);
    assert!(
        err.contains("--grace-period") && err.contains("COREFIT_GRACE_PERIOD"),
        "{err}"
    );
    assert!(err.contains("\"abc\""), "{err}");
    let err = run_error(&["--socket", "udp"]);
    assert!(
        err.contains("--socket") && err.contains("expected one of proxy, shared, reuseport"),
        "{err}"
    );
    assert!(run_error(&["--port", "0"]).contains("PORT"));
    assert!(run_error(&["--port", "70000"]).contains("1-65535"));
    assert!(run_error(&["--respawn-limit=-1"]).contains("--respawn-limit"));
    assert!(run_error(&["--host", "localhost:80"]).contains("--host"));
}

#[test]
fn defaults_and_env_log_prefix() {
    let cli = Cli::try_parse_from(["corefit", "--", "x"]).unwrap();
    let cfg = cli
        .run
        .config_with(cli.cmd.clone(), &log_prefix("1"))
        .unwrap();
    assert!(cfg.log_prefix);
    assert_eq!(cfg.respawn_limit, 15);
    assert_eq!(cfg.ready, ReadyCheck::Auto);
    assert_eq!(cfg.restart, RestartPolicy::Auto);
    assert_eq!(cfg.log_format, LogFormat::Text);
    let err = cli
        .run
        .config_with(cli.cmd.clone(), &log_prefix("maybe"))
        .unwrap_err();
    assert!(err.to_string().contains("COREFIT_LOG_PREFIX"));
}

#[test]
fn operation_settings_name_their_flag_or_variable() {
    assert!(run_error(&["--reload-parallelism", "0"]).contains("--reload-parallelism"));
    assert!(run_error(&["--admin-addr", "nope"]).contains("--admin-addr"));
    assert!(run_error(&["--memory-threshold", "lots"]).contains("--memory-threshold"));
    assert!(run_error(&["--max-memory-per-worker=-5"]).contains("--max-memory-per-worker"));
    assert!(run_error(&["--memory-interval", "1ms"]).contains("at least 50ms"));
    assert!(run_error(&["--resize-interval", "10ms"]).contains("--resize-interval"));
    assert!(run_error(&["--liveness-path", "health"]).contains("--liveness-path"));
    assert!(
        run_error(&["--liveness-path", "/h", "--liveness-failures", "0"])
            .contains("--liveness-failures")
    );
    assert!(
        run_error(&["--liveness-path", "/h", "--liveness-timeout", "0s"])
            .contains("--liveness-timeout")
    );
    assert!(
        run_error(&["--liveness-path", "/h", "--liveness-interval", "1ms"])
            .contains("--liveness-interval")
    );
    let cli = Cli::try_parse_from(["corefit", "--", "x"]).unwrap();
    let config = |pairs: &[(&str, &str)]| {
        let env = pairs.iter().copied().collect::<RunEnv>();
        cli.run.config_with(cli.cmd.clone(), &env)
    };
    let cfg = config(&[]).unwrap();
    assert_eq!(cfg.admin_addr, None);
    assert_eq!(cfg.memory.ceiling, MemoryCeiling::Off);
    assert_eq!(cfg.reload_parallelism, 1);
    let cfg = config(&[
        ("COREFIT_ADMIN_PORT", "9100"),
        ("ENABLE_MEMORY_MONITORING", "1"),
        ("MEMORY_THRESHOLD_MB", "300"),
    ])
    .unwrap();
    assert_eq!(cfg.admin_addr, Some("0.0.0.0:9100".parse().unwrap()));
    assert!(cfg.memory.report);
    assert_eq!(cfg.memory.threshold_bytes, Some(300 << 20));
    // COREFIT_ADMIN_ADDR wins over COREFIT_ADMIN_PORT.
    let cfg = config(&[
        ("COREFIT_ADMIN_PORT", "9100"),
        ("COREFIT_ADMIN_ADDR", "127.0.0.1:9200"),
    ])
    .unwrap();
    assert_eq!(cfg.admin_addr, Some("127.0.0.1:9200".parse().unwrap()));
    let err = config(&[("COREFIT_ADMIN_PORT", "x")]).unwrap_err();
    assert!(err.to_string().contains("COREFIT_ADMIN_PORT"), "{err}");
    let cli =
        Cli::try_parse_from(["corefit", "--max-memory-per-worker", "auto", "--", "x"]).unwrap();
    let cfg = cli
        .run
        .config_with(cli.cmd.clone(), &RunEnv::default())
        .unwrap();
    assert_eq!(cfg.memory.ceiling, MemoryCeiling::Plan);
}

#[test]
fn control_subcommands_parse() {
    let cli = Cli::try_parse_from([
        "corefit",
        "scale",
        "-1",
        "--force",
        "--control-socket",
        "/x.sock",
    ])
    .unwrap();
    match cli.command {
        Some(Command::Scale(c)) => {
            assert_eq!(c.target, "-1");
            assert!(c.force);
            assert_eq!(c.control.path(), std::path::PathBuf::from("/x.sock"));
        }
        other => panic!("{other:?}"),
    }
    let cli = Cli::try_parse_from(["corefit", "status", "--json"]).unwrap();
    assert!(matches!(
        cli.command,
        Some(Command::Status(StatusCommand { json: true, .. }))
    ));
}

#[test]
fn plan_subcommand_still_parses() {
    let cli = Cli::try_parse_from(["corefit", "plan", "--json", "--workers", "3"]).unwrap();
    match cli.command {
        Some(Command::Plan(p)) => {
            assert!(p.json);
            assert_eq!(p.plan.workers.as_deref(), Some("3"));
        }
        other => panic!("{other:?}"),
    }
}

/// Every declared setting, given a value it cannot take by its flag and
/// by each of its variables: the error names the flag and that variable.
#[test]
fn every_setting_names_its_flag_and_the_variable_that_gave_the_value() {
    let liveness_on = |spec: &spec::Spec| spec.flag != "--liveness-path";
    for spec in settings::ALL {
        let mut sources: Vec<(RunArgs, RunEnv, &str)> = Vec::new();
        let mut args = RunArgs::default();
        assert!(args.set(spec.flag, "nonsense!"));
        sources.push((args, RunEnv::default(), spec.vars[0]));
        for var in spec.vars {
            let env: RunEnv = [(*var, "nonsense!")].into_iter().collect();
            sources.push((RunArgs::default(), env, var));
        }
        if spec.value_name.is_none() {
            sources.remove(0); // a switch's flag takes no value
        }
        for (mut args, env, var) in sources {
            if liveness_on(spec) {
                args.set("--liveness-path", "/h");
            }
            let err = args
                .config_with(vec!["x".into()], &env)
                .expect_err(spec.flag)
                .to_string();
            assert!(
                err.contains(&format!("for {} (or {var})", spec.flag)),
                "{}: {err}",
                spec.flag
            );
        }
    }
}

/// The flag beats every variable; the variables go in declared order.
#[test]
fn flags_win_then_variables_in_their_order() {
    for spec in settings::ALL {
        let lookup = |var: &str| spec.vars.iter().find(|v| **v == var).copied();
        let s = spec::Setting::new(spec, None, lookup);
        assert_eq!(s.given(), Some(spec.vars[0]), "{}", spec.flag);
        assert_eq!(s.var(), spec.vars[0]);
        let s = spec::Setting::new(spec, Some("flag"), lookup);
        assert_eq!(s.given(), Some("flag"));
        let last = spec.vars[spec.vars.len() - 1];
        let s = spec::Setting::new(spec, None, |v| (v == last).then_some("late"));
        assert_eq!((s.given(), s.var()), (Some("late"), last));
    }
}

/// `corefit --help` shows each run setting's flag on one line, and each
/// of its variables once, in an `[env: ...]`.
#[test]
fn help_lists_every_flag_and_variable_once() {
    let help = Cli::command().render_help().to_string();
    let mut env_names: Vec<String> = Vec::new();
    for line in help.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("[env: ") {
            let end = rest[i..].find(']').expect("closed [env: ...]") + i;
            env_names.extend(
                rest[i + 6..end]
                    .split([',', ' ', '='])
                    .filter(|w| {
                        !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    })
                    .map(str::to_owned),
            );
            rest = &rest[end..];
        }
    }
    for spec in settings::ALL {
        let lines = help
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{} ", spec.flag)))
            .count();
        assert_eq!(lines, 1, "{}", spec.flag);
        for var in spec.vars {
            let n = env_names.iter().filter(|n| n == var).count();
            assert_eq!(n, 1, "{var} in [env: ...]:\n{help}");
        }
    }
    let mut unique = env_names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), env_names.len(), "{env_names:?}");
}
