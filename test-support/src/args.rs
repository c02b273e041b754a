//! A chained builder for `corefit` command lines.
//!
//! ```
//! use corefit_test_support::args::Args;
//! let args = Args::cluster(2).socket("proxy").port(8080).grace("5s").command(["node", "app.js"]);
//! assert_eq!(
//!     args.build().join(" "),
//!     "--mode cluster --workers 2 --allow-oversubscribe --socket proxy \
//!      --host 127.0.0.1 --port 8080 --grace-period 5s -- node app.js"
//! );
//! ```

use std::path::Path;

/// Options before `--`, then the command after it.
#[derive(Debug, Clone, Default)]
pub struct Args {
    options: Vec<String>,
    command: Vec<String>,
}

impl Args {
    /// No options yet.
    pub fn new() -> Args {
        Args::default()
    }

    /// `--mode cluster --workers N --allow-oversubscribe` (the tests run
    /// more workers than a small machine has CPUs).
    pub fn cluster(workers: impl ToString) -> Args {
        Args::new()
            .opt("--mode", "cluster")
            .opt("--workers", workers)
            .arg("--allow-oversubscribe")
    }

    /// One word.
    pub fn arg(mut self, word: impl Into<String>) -> Args {
        self.options.push(word.into());
        self
    }

    /// Several words, in order.
    pub fn args<S: AsRef<str>>(mut self, words: impl IntoIterator<Item = S>) -> Args {
        self.options
            .extend(words.into_iter().map(|w| w.as_ref().to_owned()));
        self
    }

    /// `NAME VALUE`.
    pub fn opt(self, name: &str, value: impl ToString) -> Args {
        self.arg(name).arg(value.to_string())
    }

    /// `--workers N`.
    pub fn workers(self, n: impl ToString) -> Args {
        self.opt("--workers", n)
    }

    /// `--socket KIND`.
    pub fn socket(self, kind: &str) -> Args {
        self.opt("--socket", kind)
    }

    /// `--host 127.0.0.1 --port PORT`.
    pub fn port(self, port: u16) -> Args {
        self.opt("--host", "127.0.0.1").opt("--port", port)
    }

    /// `--admin-addr 127.0.0.1:PORT`.
    pub fn admin(self, port: u16) -> Args {
        self.opt("--admin-addr", format!("127.0.0.1:{port}"))
    }

    /// `--control-socket PATH`.
    pub fn control(self, path: &Path) -> Args {
        self.opt("--control-socket", path.display())
    }

    /// `--grace-period DURATION`.
    pub fn grace(self, duration: &str) -> Args {
        self.opt("--grace-period", duration)
    }

    /// `--ready KIND`.
    pub fn ready(self, kind: &str) -> Args {
        self.opt("--ready", kind)
    }

    /// The command after `--`.
    pub fn command<S: AsRef<str>>(mut self, words: impl IntoIterator<Item = S>) -> Args {
        self.command = words.into_iter().map(|w| w.as_ref().to_owned()).collect();
        self
    }

    /// `-- node tests/apps/NAME`.
    pub fn node(self, app: &str) -> Args {
        self.command(["node".to_owned(), crate::app(app)])
    }

    /// The words: the options, then `--` and the command when there is one.
    pub fn build(&self) -> Vec<String> {
        let mut all = self.options.clone();
        if !self.command.is_empty() {
            all.push("--".to_owned());
            all.extend(self.command.iter().cloned());
        }
        all
    }
}
