//! Which runtime a command is (Go, Node, Python, a JVM, .NET), from what
//! [`super::executable::inspect`] found: Go by its ELF build info, the
//! others by the name of the program finally run (after `#!` and `env`:
//! `java`, `dotnet`, `node*`, `python*`). The share table gives the JVM's
//! and .NET's variables only to a command known to be that runtime; a
//! launcher script that `exec`s `java` from a shell is not recognised (set
//! `JAVA_TOOL_OPTIONS` yourself there).

use std::path::Path;

use crate::plan::shares::Runtime;
use crate::plan::Plan;

use super::executable::{inspect, Executable};

/// The runtime of an inspected program (pure).
pub fn runtime_of(exe: &Executable) -> Option<Runtime> {
    if exe.go {
        return Some(Runtime::Go);
    }
    runtime_named(&exe.path)
}

/// The runtime a program's file name says (pure).
pub fn runtime_named(path: &Path) -> Option<Runtime> {
    let name = path.file_name()?.to_str()?;
    match name {
        "java" => Some(Runtime::Jvm),
        "dotnet" => Some(Runtime::Dotnet),
        n if n == "node" || n == "nodejs" || n.starts_with("node-") => Some(Runtime::Node),
        n if n.starts_with("python") || n.starts_with("pypy") => Some(Runtime::Python),
        _ => None,
    }
}

/// The runtime of `cmd` (its first word resolved through `path_var`);
/// `None` when it cannot be inspected or is none of the table's.
pub fn of_command(cmd: &[String], path_var: Option<&str>) -> Option<Runtime> {
    let first = cmd.first()?;
    inspect(first, path_var).ok().as_ref().and_then(runtime_of)
}

/// Tells the plan's worker environment which runtime the command is, so
/// the variables given only to that runtime reach its workers.
pub fn tell(plan: &mut Plan, runtime: Option<Runtime>) {
    plan.worker_env.command_runtime = runtime;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_the_runtime() {
        for (p, want) in [
            (
                "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
                Some(Runtime::Jvm),
            ),
            ("/usr/bin/dotnet", Some(Runtime::Dotnet)),
            ("/usr/bin/node", Some(Runtime::Node)),
            ("/usr/bin/python3.11", Some(Runtime::Python)),
            ("/bin/sh", None),
            ("/usr/bin/javac", None),
        ] {
            assert_eq!(runtime_named(Path::new(p)), want, "{p}");
        }
    }

    #[test]
    fn a_real_shell_is_no_runtime() {
        assert_eq!(of_command(&["sh".to_owned()], Some("/bin:/usr/bin")), None);
        assert_eq!(of_command(&[], None), None);
    }
}
