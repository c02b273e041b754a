// The benchmark's "Node cluster" configuration: Node's own `cluster`
// module with WORKERS workers (default 2) running tests/apps/server.js.
// The primary forwards SIGTERM/SIGINT to the workers and exits when they
// are gone.

'use strict';

const cluster = require('cluster');
const path = require('path');

if (cluster.isPrimary) {
  const n = Number(process.env.WORKERS || 2);
  for (let i = 0; i < n; i += 1) {
    cluster.fork({ COREFIT_WORKER_ID: String(i) });
  }
  let stopping = false;
  const stop = (signal) => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  cluster.on('exit', (worker) => {
    if (!stopping) {
      cluster.fork({ COREFIT_WORKER_ID: worker.process.env?.COREFIT_WORKER_ID ?? '' });
    } else if (Object.keys(cluster.workers).length === 0) {
      process.exit(0);
    }
  });
} else {
  require(path.join(__dirname, '../../tests/apps/server.js'));
}
