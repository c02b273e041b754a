//! Traffic to a Service on the real node, as kube-proxy would send it
//! (there is none here): [`Follower`] keeps a file of the Service's ready
//! endpoints as the Endpoints object changes, and [`Load`] runs the bounded
//! client `load.py` inside the node's network namespace, round-robin over
//! that file, every failed request counted (no retry).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corefit_test_support::k8s::*;
use k8s_openapi::api::core::v1::Endpoints;
use kube::{Api, Client};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::node::RealNode;

/// How often the Endpoints object is read. kube-proxy's own lag is larger
/// (its iptables sync runs at most once a second by default), so this
/// client stops sending to a leaving pod sooner than a Service would.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Seen {
    current: Vec<String>,
    /// The fewest ready endpoints since the last [`Follower::mark`].
    fewest: Option<usize>,
    changes: usize,
}

/// Writes the ready `ip:port` endpoints of Service `name`'s `http` port to
/// a file, one a line (rewritten atomically on each change).
pub struct Follower {
    task: JoinHandle<()>,
    seen: Arc<Mutex<Seen>>,
    pub file: PathBuf,
}

impl Follower {
    pub fn start(client: &Client, ns: &str, name: &str, dir: &Path) -> Follower {
        let eps: Api<Endpoints> = Api::namespaced(client.clone(), ns);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let file = dir.join("endpoints");
        let (s, f, name) = (seen.clone(), file.clone(), name.to_owned());
        let task = tokio::spawn(async move {
            loop {
                if let Ok(e) = eps.get(&name).await {
                    let now = ready_addresses(&e);
                    let mut seen = s.lock().unwrap();
                    if now != seen.current || seen.changes == 0 {
                        let tmp = f.with_extension("tmp");
                        std::fs::write(&tmp, now.join("\n") + "\n").expect("endpoints file");
                        std::fs::rename(&tmp, &f).expect("endpoints file");
                        seen.changes += 1;
                        seen.current = now;
                    }
                    let n = seen.current.len();
                    seen.fewest = Some(seen.fewest.map_or(n, |m| m.min(n)));
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Follower { task, seen, file }
    }

    pub fn current(&self) -> Vec<String> {
        self.seen.lock().unwrap().current.clone()
    }

    /// The fewest ready endpoints seen since the last mark (or the start).
    pub fn fewest(&self) -> usize {
        self.seen.lock().unwrap().fewest.unwrap_or(0)
    }

    /// Starts counting the fewest endpoints afresh.
    pub fn mark(&self) {
        let mut s = self.seen.lock().unwrap();
        s.fewest = Some(s.current.len());
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ready_addresses(e: &Endpoints) -> Vec<String> {
    let mut out = Vec::new();
    for s in e.subsets.iter().flatten() {
        let Some(port) = s
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("http"))
        else {
            continue;
        };
        for a in s.addresses.iter().flatten() {
            out.push(format!("{}:{}", a.ip, port.port));
        }
    }
    out.sort();
    out
}

/// The load client, running inside the node's network.
pub struct Load {
    child: Option<Child>,
    stop: PathBuf,
    progress: PathBuf,
}

/// The most requests and seconds any load runs, whatever the test does.
const MAX_REQUESTS: u32 = 20_000;
const MAX_SECONDS: u32 = 180;

impl Load {
    /// `threads` clients, each about 40 requests a second.
    pub fn start(node: &RealNode, follower: &Follower, dir: &Path, threads: u32) -> Load {
        let script = repo_root().join("operator/tests/real_node/load.py");
        let (stop, progress) = (dir.join("stop"), dir.join("progress"));
        let _ = std::fs::remove_file(&stop);
        let args = [
            "python3".to_owned(),
            script.display().to_string(),
            follower.file.display().to_string(),
            stop.display().to_string(),
            progress.display().to_string(),
            MAX_REQUESTS.to_string(),
            MAX_SECONDS.to_string(),
            threads.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = node
            .inside_command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ip netns exec python3 load.py");
        Load {
            child: Some(child),
            stop,
            progress,
        }
    }

    /// (answered, failed) so far.
    pub fn progress(&self) -> (u64, u64) {
        let text = std::fs::read_to_string(&self.progress).unwrap_or_default();
        let mut n = text.split_whitespace().map(|w| w.parse().unwrap_or(0));
        (n.next().unwrap_or(0), n.next().unwrap_or(0))
    }

    /// Waits until `more` more requests have been answered.
    pub async fn wait_more(&self, more: u64) {
        let from = self.progress().0;
        wait_until(
            &format!("{more} more answers to the load"),
            Duration::from_secs(30),
            || async { self.progress().0 >= from + more },
        )
        .await;
    }

    /// Stops the client and returns its summary (ok, failed, failures,
    /// by_addr, seconds).
    pub async fn finish(mut self) -> Value {
        std::fs::write(&self.stop, "").expect("stop file");
        let mut child = self.child.take().expect("running");
        let t0 = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the load client did not stop"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = child.wait_with_output().expect("load output");
        assert!(
            out.status.success(),
            "load.py: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "load.py's summary: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::fs::write(&self.stop, "");
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
