//! What a Node worker needs to run socket.io's cluster adapter without
//! being a Node cluster worker: the adapter reads `cluster.worker.id`
//! when it is created, which exists only in cluster workers. A small
//! module, preloaded with `--require` in `NODE_OPTIONS`, gives
//! `cluster.worker` an id (the process id: unique among live workers,
//! new for each replacement, as Node's cluster ids are) when corefit's
//! IPC channel is open and the app has no `cluster.worker` of its own.
//! Pure: the text and the `NODE_OPTIONS` value; the runtime writes the
//! file.
//!
//! `cluster.isWorker` stays false and `listen()` is Node's own (a real
//! cluster worker would ask the primary for its socket).

use std::path::Path;

/// The preloaded module.
pub const PRELOAD_JS: &str = r#"'use strict';
// corefit: socket.io's cluster adapter reads cluster.worker.id; corefit's
// workers are plain Node processes with an IPC channel (process.send), so
// corefit names each one by its pid and relays the adapter's messages.
const cluster = require('cluster');
if (cluster.worker === undefined && typeof process.send === 'function'
    && process.env.COREFIT_WORKER_ID !== undefined) {
  cluster.worker = {
    id: process.pid,
    process,
    send: (...args) => process.send(...args),
    isConnected: () => process.connected,
    isDead: () => false,
  };
}
"#;

/// The file's name in corefit's private directory.
pub const PRELOAD_FILE: &str = "cluster-worker.js";

/// A path `NODE_OPTIONS` cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the path {0:?} cannot be written in NODE_OPTIONS (it holds a quote or a backslash)")]
pub struct Unquotable(String);

/// `NODE_OPTIONS` for a worker: the one it would get (the plan's, else
/// corefit's own environment's), then `--require preload`.
pub fn node_options(
    planned: Option<&str>,
    inherited: Option<&str>,
    preload: &Path,
) -> Result<String, Unquotable> {
    let path = preload.display().to_string();
    if path.contains(['"', '\\']) {
        return Err(Unquotable(path));
    }
    let path = if path.contains(char::is_whitespace) {
        format!("\"{path}\"")
    } else {
        path
    };
    let require = format!("--require {path}");
    Ok(match planned.or(inherited).map(str::trim) {
        Some(before) if !before.is_empty() => format!("{before} {require}"),
        _ => require,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preload_is_added_to_what_the_worker_would_get() {
        let p = Path::new("/tmp/corefit-x/cluster-worker.js");
        let req = "--require /tmp/corefit-x/cluster-worker.js";
        assert_eq!(node_options(None, None, p).unwrap(), req);
        assert_eq!(node_options(None, Some("  "), p).unwrap(), req);
        assert_eq!(
            node_options(
                Some("--max-old-space-size=512"),
                Some("--trace-warnings"),
                p
            )
            .unwrap(),
            format!("--max-old-space-size=512 {req}")
        );
        assert_eq!(
            node_options(None, Some("--trace-warnings"), p).unwrap(),
            format!("--trace-warnings {req}")
        );
        let spaced = Path::new("/tmp/my dir/cluster-worker.js");
        assert_eq!(
            node_options(None, None, spaced).unwrap(),
            "--require \"/tmp/my dir/cluster-worker.js\""
        );
        assert!(node_options(None, None, Path::new("/tmp/a\"b.js")).is_err());
    }
}
