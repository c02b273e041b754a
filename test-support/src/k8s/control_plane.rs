//! Stopping one component of the test control plane and starting it again
//! (`tests/k8s/control-plane.sh stop-component` / `start-component`): the
//! same ports, arguments and data directory, so the operator sees the
//! apiserver or etcd go away and come back as in a cluster.
//!
//! [`ControlPlane::stop`] returns a [`Down`] guard: [`Down::start`] brings
//! the component back; a guard dropped without it (an assertion failed
//! while the component was down) starts it in `Drop`, so the control plane
//! every later test shares is always restored.
//!
//! The state directory is the one the tests' kubeconfig lives in (the
//! script writes it as `$STATE/kubeconfig`, `$STATE` being
//! `COREFIT_K8S_STATE` or `${TMPDIR:-/tmp}/corefit-k8s-$UID`), and it is
//! handed to the script as `COREFIT_K8S_STATE`: whatever `TMPDIR` the test
//! process sees, the script acts on the control plane the tests talk to.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{kubeconfig_path, repo_root};

/// How to stop a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM (SIGKILL after 15 s): a clean stop.
    Term,
    /// SIGKILL at once: a crash.
    Kill,
}

/// The running test control plane.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    script: PathBuf,
    state: PathBuf,
}

impl ControlPlane {
    /// The control plane of `COREFIT_TEST_KUBECONFIG`.
    pub fn from_env() -> ControlPlane {
        let kubeconfig = kubeconfig_path();
        let state = kubeconfig
            .parent()
            .expect("the kubeconfig lies in the control plane's state directory")
            .to_owned();
        for f in ["etcd.port", "etcd-peer.port", "kube-apiserver.port"] {
            assert!(
                state.join(f).is_file(),
                "{} has no {f}: this control plane was started by an older \
                 tests/k8s/control-plane.sh; stop it and start it again",
                state.display()
            );
        }
        ControlPlane {
            script: repo_root().join("tests/k8s/control-plane.sh"),
            state,
        }
    }

    /// Runs the script (blocking); Err carries its stderr.
    fn run(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new(&self.script)
            .args(args)
            .env("COREFIT_K8S_STATE", &self.state)
            .output()
            .map_err(|e| format!("{}: {e}", self.script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "control-plane.sh {} failed ({}):\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    async fn run_blocking(&self, args: Vec<String>) -> Result<(), String> {
        let cp = self.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cp.run(&args)
        })
        .await
        .map_err(|e| format!("control-plane.sh task: {e}"))?
    }

    /// Stops `component` (etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler); the guard starts it again.
    pub async fn stop(&self, component: &'static str, how: Stop) -> Down {
        let mut args = vec!["stop-component".to_owned(), component.to_owned()];
        if how == Stop::Kill {
            args.push("--kill".to_owned());
        }
        let stopped_at = Instant::now();
        // A guard from before the attempt: whatever the script managed to
        // stop is started again.
        let down = Down {
            cp: self.clone(),
            component,
            up: false,
            stopped_at,
        };
        if let Err(e) = self.run_blocking(args).await {
            panic!("{e}");
        }
        down
    }

    /// The component's log (the script appends across restarts).
    pub fn log(&self, component: &str) -> PathBuf {
        self.state.join("logs").join(format!("{component}.log"))
    }
}

/// A stopped component; started again by [`Down::start`] or on drop.
#[derive(Debug)]
pub struct Down {
    cp: ControlPlane,
    component: &'static str,
    up: bool,
    /// When the stop was asked for (the outage begins there: the component
    /// stops serving at once, even when its process lingers).
    pub stopped_at: Instant,
}

impl Down {
    /// Starts the component again and waits until it is ready (etcd
    /// healthy, the apiserver's /readyz ok); returns how long that took.
    pub async fn start(mut self) -> Duration {
        let t = Instant::now();
        let r = self
            .cp
            .run_blocking(vec![
                "start-component".to_owned(),
                self.component.to_owned(),
            ])
            .await;
        // Even when the script failed, a second try in Drop would not do
        // better; say what happened.
        self.up = true;
        if let Err(e) = r {
            panic!("{e}");
        }
        t.elapsed()
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        if self.up {
            return;
        }
        eprintln!(
            "restoring the control plane: starting {} again",
            self.component
        );
        if let Err(e) = self.cp.run(&["start-component", self.component]) {
            eprintln!("{e}");
        }
    }
}
