// corefit's sample app: a plain Node.js `http` server, run under the
// launcher by the README, the launcher's real-process tests and the
// benchmark.
//
//   PORT=3000 node tests/apps/server.js
//   corefit -- node tests/apps/server.js
//
// Listens on fd 3 when handed a socket by systemd-style socket activation
// (LISTEN_FDS=1 and LISTEN_PID equal to its own pid: corefit --socket
// shared), with SO_REUSEPORT when REUSE_PORT=1 (Node >= 22.12 only), else
// on PORT (default 3000).
//
// Routes:
//   GET /          {"pid", "worker", "workers", "mode", "listen_pid", "listen"} as JSON
//   GET /hello     "hello\n" (trivial)
//   GET /cpu       ~2 ms of CPU work (pbkdf2, CPU_ITERATIONS, default 10000)
//   GET /slow?ms=N answers after N ms (default 2000, at most 60000)
//   GET /env       the worker's environment as JSON
//
// START_DELAY_MS=N: listens only after N ms.
//
// SIGTERM / SIGINT: stop accepting, close idle keep-alive connections,
// finish in-flight requests, exit 0. IGNORE_SIGTERM=1 ignores them (for
// the grace-period test).

'use strict';

const http = require('http');
const crypto = require('crypto');

const iterations = Number(process.env.CPU_ITERATIONS || 10000);
const port = Number(process.env.PORT || 3000);
const socketActivated =
  process.env.LISTEN_FDS === '1' && Number(process.env.LISTEN_PID) === process.pid;

let listen;
if (socketActivated) {
  listen = { fd: 3 };
} else if (process.env.REUSE_PORT === '1') {
  listen = { port, reusePort: true };
} else {
  listen = { port };
}

let stopping = false;

function json(res, status, body) {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    // While stopping, no connection is kept for another request.
    ...(stopping ? { connection: 'close' } : {}),
  });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  switch (url.pathname) {
    case '/':
      return json(res, 200, {
        pid: process.pid,
        worker: process.env.COREFIT_WORKER_ID ?? null,
        workers: process.env.COREFIT_WORKERS ?? null,
        mode: process.env.COREFIT_MODE ?? null,
        listen_pid: process.env.LISTEN_PID ?? null,
        listen: socketActivated ? 'fd:3' : listen.reusePort ? 'reuseport' : `port:${port}`,
      });
    case '/hello':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 6 });
      return res.end('hello\n');
    case '/cpu': {
      const key = crypto.pbkdf2Sync('corefit', 'salt', iterations, 32, 'sha256');
      return json(res, 200, { pid: process.pid, key: key.toString('hex').slice(0, 16) });
    }
    case '/slow': {
      const ms = Math.min(Math.max(Number(url.searchParams.get('ms') || 2000), 0), 60000);
      console.log(`server.js: pid ${process.pid} slow request ${ms}ms`);
      setTimeout(() => json(res, 200, { pid: process.pid, slept: ms }), ms);
      return undefined;
    }
    case '/env':
      return json(res, 200, process.env);
    default:
      return json(res, 404, { error: 'not found', path: url.pathname });
  }
});

server.on('error', (err) => {
  console.error(`server.js: cannot listen (${JSON.stringify(listen)}): ${err.message}`);
  process.exit(1);
});

// START_DELAY_MS=N: boot for N ms before listening (a database
// connection, a framework's start), to model a slow-starting app.
setTimeout(() => {
  server.listen(listen, () => {
    console.log(`server.js: pid ${process.pid} worker ${process.env.COREFIT_WORKER_ID ?? '-'} listening on ${JSON.stringify(listen)}`);
  });
}, Number(process.env.START_DELAY_MS || 0));

function stop(signal) {
  if (process.env.IGNORE_SIGTERM === '1') {
    console.log(`server.js: pid ${process.pid} ignoring ${signal}`);
    return;
  }
  console.log(`server.js: pid ${process.pid} got ${signal}, finishing in-flight requests`);
  stopping = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
