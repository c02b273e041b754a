//! The test apps under `tests/apps/`: their absolute paths, and the paths
//! their set-up scripts print (node_modules, the Python venv, the Go
//! builds), each script run once per test binary.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// An app under `tests/apps/`, as an absolute path.
pub fn app(name: &str) -> String {
    let p = crate::repo_root().join("tests/apps").join(name);
    p.canonicalize()
        .unwrap_or_else(|e| panic!("test app {}: {e}", p.display()))
        .display()
        .to_string()
}

/// What the set-up script `tests/apps/<script>` printed (a path, e.g.
/// `setup_script("setup-node-apps.sh")` is a node_modules), run once per
/// test binary: the scripts are idempotent and fast when warm, and one
/// script never runs twice at the same time. Panics naming the script
/// when it cannot run or fails.
pub fn setup_script(script: &'static str) -> String {
    static DONE: OnceLock<Mutex<BTreeMap<&'static str, String>>> = OnceLock::new();
    let mut done = DONE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    done.entry(script)
        .or_insert_with(|| {
            let path = app(script);
            let out = Command::new(&path)
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(out.status.success(), "{path} failed: {:?}", out.status);
            String::from_utf8(out.stdout)
                .unwrap_or_else(|_| panic!("{path} printed no UTF-8 path"))
                .trim()
                .to_owned()
        })
        .clone()
}

/// A Go test app (`hello-dynamic`, `hello-static`) built by
/// `tests/apps/setup-go-apps.sh`.
pub fn go_app(name: &str) -> std::path::PathBuf {
    std::path::Path::new(&setup_script("setup-go-apps.sh")).join(name)
}
