// The reload benchmark's "Node cluster" configuration: Node's own
// `cluster` module with WORKERS workers (default 2) running BENCH_APP (a
// Node app path), and the rolling restart such a primary is written with:
// on SIGHUP, for each old worker in turn, fork its replacement, wait for
// the replacement's 'listening', then disconnect the old one (it stops
// accepting, its servers close, and it exits when its connections end;
// killed after GRACE_MS, default 10000). Logs "reload complete" when every
// old worker is replaced. SIGTERM/SIGINT stop the workers and the primary.
//
//   WORKERS=2 BENCH_APP=tests/apps/express_app.js PORT=3000 node bench/launcher/node_cluster_reload.js
//   kill -HUP <primary pid>

'use strict';

const cluster = require('cluster');
const path = require('path');

if (!cluster.isPrimary) {
  require(path.resolve(process.env.BENCH_APP));
} else {
  const n = Number(process.env.WORKERS || 2);
  const graceMs = Number(process.env.GRACE_MS || 10000);
  let stopping = false;
  let reloading = false;
  let again = false;

  const fork = (id) => {
    const w = cluster.fork({ COREFIT_WORKER_ID: String(id) });
    w.slot = id;
    return w;
  };

  // A worker that dies outside a reload is replaced (as PM2 and corefit do).
  cluster.on('exit', (worker) => {
    if (stopping) {
      if (Object.keys(cluster.workers).length === 0) process.exit(0);
    } else if (!worker.retiring) {
      fork(worker.slot);
    }
  });

  const replace = (old) =>
    new Promise((resolve) => {
      const fresh = fork(old.slot);
      fresh.once('listening', () => {
        old.retiring = true;
        const timer = setTimeout(() => old.process.kill('SIGKILL'), graceMs);
        old.once('exit', () => clearTimeout(timer));
        old.disconnect();
        resolve();
      });
    });

  const reload = async () => {
    if (reloading) {
      again = true;
      return;
    }
    reloading = true;
    do {
      again = false;
      const old = Object.values(cluster.workers).filter((w) => !w.retiring);
      console.log(`node_cluster_reload: rolling reload of ${old.length} worker(s)`);
      for (const w of old) {
        await replace(w);
      }
      console.log(`node_cluster_reload: reload complete: ${old.length} worker(s) replaced`);
    } while (again && !stopping);
    reloading = false;
  };

  const stop = (signal) => {
    stopping = true;
    const workers = Object.values(cluster.workers);
    if (workers.length === 0) process.exit(0);
    for (const w of workers) w.process.kill(signal);
  };

  for (let i = 0; i < n; i += 1) fork(i);
  process.on('SIGHUP', reload);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
