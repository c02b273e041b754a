//! What a run setting is: its declaration ([`Spec`], [`Decl`]), the clap
//! argument and help line derived from it, a value as given ([`Setting`])
//! and the parsers many settings share.
//!
//! Resolution: the flag's value wins, then the first of the variables that
//! is set, in the declared order, then the default. A switch is on when
//! its flag is given or any of its variables is 1/true/yes/on. An error
//! names the flag and the variable that gave the value (the first declared
//! one when the flag did), as `ConfigError::Invalid` prints.

use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, ValueEnum};

use super::{RunArgs, RunEnv};
use crate::supervise::config::{parse_duration, ConfigError};

/// One run setting, declared once (see the table in [`super::settings`]).
#[derive(Debug)]
pub struct Spec {
    /// The flag, e.g. `--grace-period`.
    pub flag: &'static str,
    /// Environment variables, in precedence order (the flag beats them all).
    pub vars: &'static [&'static str],
    /// The placeholder in help (`DURATION`); `None` for a switch, which
    /// takes no value on the command line and 1/0 in its variables.
    pub value_name: Option<&'static str>,
    /// What applies when nothing is given: parsed as if given, and shown
    /// in help as `[default: ...]`.
    pub default: Option<&'static str>,
    /// The help sentence (the default and the variables are appended).
    pub help: &'static str,
    /// What help says of the variables, where their list alone would not
    /// say what each means.
    pub env_help: Option<&'static str>,
}

/// A [`Spec`] with the parser that makes its typed value.
#[derive(Debug)]
pub struct Decl<T: 'static> {
    pub spec: Spec,
    pub parse: fn(&Setting<'_>) -> Result<T, ConfigError>,
}

impl<T> Decl<T> {
    /// The typed value from the command line (`args`) and `env`.
    pub fn get(&self, args: &RunArgs, env: &RunEnv) -> Result<T, ConfigError> {
        (self.parse)(&self.setting(args, env))
    }

    /// The raw values given for this setting.
    pub fn setting<'a>(&'a self, args: &'a RunArgs, env: &'a RunEnv) -> Setting<'a> {
        Setting::new(&self.spec, args.flag_value(self.spec.flag), |var| {
            env.get(var)
        })
    }
}

impl Spec {
    /// The flag without its dashes (also the clap id).
    pub fn long(&self) -> &'static str {
        self.flag.trim_start_matches("--")
    }

    /// Whether clap itself shows the variable (`[env: NAME=value]`): a
    /// setting with a value and one variable. Clap reads that variable
    /// too, but only a value from the command line is used: every
    /// variable is read in [`Decl::get`], from the `RunEnv` given.
    fn clap_shows_env(&self) -> bool {
        self.value_name.is_some() && self.vars.len() == 1 && self.env_help.is_none()
    }

    /// The clap argument.
    pub fn arg(&self) -> Arg {
        let arg = Arg::new(self.long())
            .long(self.long())
            .help(self.help_line());
        match self.value_name {
            None => arg.action(ArgAction::SetTrue),
            Some(name) => {
                let arg = arg
                    .value_name(name)
                    .action(ArgAction::Set)
                    .value_parser(value_parser!(String));
                if self.clap_shows_env() {
                    arg.env(self.vars[0])
                } else {
                    arg
                }
            }
        }
    }

    /// The help line: the sentence, `[default: ...]`, `[env: ...]`.
    pub fn help_line(&self) -> String {
        let mut line = self.help.trim().to_owned();
        if let Some(default) = self.default {
            line.push_str(&format!(" [default: {default}]"));
        }
        let vars = match (self.env_help, self.value_name) {
            (Some(text), _) => text.to_owned(),
            _ if self.clap_shows_env() => return line,
            (None, Some(_)) => self.vars.join(", "),
            (None, None) => self
                .vars
                .iter()
                .map(|v| format!("{v}=1"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        line.push_str(&format!(" [env: {vars}]"));
        line
    }
}

/// One setting's raw values: the flag's, then each variable set, in
/// precedence order.
#[derive(Debug, Clone)]
pub struct Setting<'a> {
    spec: &'a Spec,
    /// `(None, value)` for the flag, `(Some(var), value)` for a variable.
    given: Vec<(Option<&'static str>, &'a str)>,
}

impl<'a> Setting<'a> {
    pub fn new(
        spec: &'a Spec,
        flag: Option<&'a str>,
        var: impl Fn(&str) -> Option<&'a str>,
    ) -> Setting<'a> {
        let vars = spec
            .vars
            .iter()
            .filter_map(|&name| var(name).map(|v| (Some(name), v)));
        Setting {
            spec,
            given: flag.map(|v| (None, v)).into_iter().chain(vars).collect(),
        }
    }

    /// The value that wins: the flag's, else the first variable's.
    pub fn given(&self) -> Option<&'a str> {
        self.given.first().map(|&(_, v)| v)
    }

    /// The given value, else the default.
    pub fn value(&self) -> Option<&'a str> {
        self.given().or(self.spec.default)
    }

    /// The variable that gave the value (the first declared one when the
    /// flag did, or nothing was given).
    pub fn var(&self) -> &'static str {
        match self.given.first() {
            Some(&(Some(var), _)) => var,
            _ => self.spec.vars[0],
        }
    }

    /// `value` is not what this setting takes.
    pub fn invalid(&self, value: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            flag: self.spec.flag,
            var: self.var(),
            value: value.to_owned(),
            expected: expected.into(),
        }
    }

    /// One of a [`ValueEnum`]'s names (case-insensitive).
    pub fn choice<T: ValueEnum>(&self) -> Result<T, ConfigError> {
        let v = self.value().unwrap_or_default();
        T::from_str(v.trim(), true).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_owned()))
                .collect();
            self.invalid(v, format!("one of {}", names.join(", ")))
        })
    }

    /// A duration (see [`parse_duration`]).
    pub fn duration(&self) -> Result<Duration, ConfigError> {
        let v = self.value().unwrap_or_default();
        parse_duration(v).map_err(|e| self.invalid(v, e.to_string()))
    }

    /// A duration of at least `min`; `expected` says so in an error.
    pub fn duration_from(&self, min: Duration, expected: &str) -> Result<Duration, ConfigError> {
        let d = self.duration()?;
        if d < min {
            return Err(self.invalid(self.value().unwrap_or_default(), expected));
        }
        Ok(d)
    }

    /// Anything with `FromStr`; `expected` says what in an error.
    pub fn parsed<T: std::str::FromStr>(&self, expected: &str) -> Result<T, ConfigError> {
        let v = self.value().unwrap_or_default();
        v.trim().parse().map_err(|_| self.invalid(v, expected))
    }

    /// A whole number from 1 to `max`.
    pub fn count(&self, max: u32) -> Result<u32, ConfigError> {
        let v = self.value().unwrap_or_default();
        match v.trim().parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(v, format!("a whole number from 1 to {max}"))),
        }
    }

    /// A TCP port, 1-65535.
    pub fn port(&self) -> Result<u16, ConfigError> {
        let v = self.value().unwrap_or_default();
        match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(self.invalid(v, "a port number 1-65535")),
        }
    }

    /// A switch: on when its flag is given or any variable is
    /// 1/true/yes/on; a variable that is not a boolean is an error.
    pub fn switch(&self) -> Result<bool, ConfigError> {
        let mut on = false;
        for &(var, v) in &self.given {
            let Some(var) = var else { return Ok(true) };
            match v.trim().to_ascii_lowercase().as_str() {
                "" | "0" | "false" | "no" | "off" => {}
                "1" | "true" | "yes" | "on" => on = true,
                _ => {
                    return Err(ConfigError::Invalid {
                        flag: self.spec.flag,
                        var,
                        value: v.to_owned(),
                        expected: "1 or 0 (true/false)".into(),
                    })
                }
            }
        }
        Ok(on)
    }
}

/// Declares run settings: each becomes a `pub static NAME: Decl<T>`, and
/// [`ALL`](super::settings::ALL) lists them in help order. The doc comment
/// is the help sentence.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty {
            flag: $flag:literal,
            env: [$($var:literal),+ $(,)?],
            $(value: $value_name:literal,)?
            $(default: $default:literal,)?
            $(env_help: $env_help:literal,)?
            parse: $parse:expr $(,)?
        }
    )+) => {
        $(
            $(#[doc = $doc])+
            pub static $name: Decl<$ty> = Decl {
                spec: Spec {
                    flag: $flag,
                    vars: &[$($var),+],
                    value_name: settings!(@opt $($value_name)?),
                    default: settings!(@opt $($default)?),
                    help: concat!($($doc),+),
                    env_help: settings!(@opt $($env_help)?),
                },
                parse: $parse,
            };
        )+
        /// Every run setting, in help order.
        pub static ALL: &[&Spec] = &[$(&$name.spec),+];
    };
    (@opt) => { None };
    (@opt $v:literal) => { Some($v) };
}
pub(crate) use settings;
