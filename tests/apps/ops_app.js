// A plain Node.js `http` server for corefit's operation tests (reload,
// scaling, health, memory ceilings).
//
//   GET /          {"pid", "worker", "workers"} as JSON
//   GET /grow?mb=N keeps N more MiB of filled buffers (a leak on demand)
//   GET /block     blocks the event loop for 60 s (a hung worker)
//
// SEND_READY_AFTER_MS=N: N ms after listening, process.send('ready')
// (when started with an IPC channel). HANG_IF_EXISTS=PATH: when PATH exists at start, never listen (a
// replacement that never becomes ready). HANG_WORKER=N: worker N never
// listens. Listens on fd 3 under socket activation, else on PORT.
// SIGTERM or SIGINT: answer every further request with `connection: close` for
// DRAIN_MS (default 100), then stop accepting, close idle keep-alive
// connections, finish in-flight requests and exit 0. (Node 20's
// server.close() destroys idle keep-alive sockets at once, including those
// whose next request already sits unread in the kernel: an app that closes
// at once drops about one request per busy keep-alive connection under
// any launcher. The short drain lets each connection's next request be
// read and answered with `connection: close` first.)

'use strict';

const fs = require('fs');
const http = require('http');
const { drainOnStop } = require('./drain');

const hang =
  (process.env.HANG_IF_EXISTS && fs.existsSync(process.env.HANG_IF_EXISTS)) ||
  (process.env.HANG_WORKER !== undefined &&
    process.env.HANG_WORKER === process.env.COREFIT_WORKER_ID);

const kept = [];

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  let body;
  if (url.pathname === '/block') {
    // A hung worker: the event loop never turns again (60 s at most).
    console.log(`ops_app.js: pid ${process.pid} blocking its event loop`);
    const until = Date.now() + 60000;
    while (Date.now() < until) {}
  }
  if (url.pathname === '/grow') {
    const mb = Math.min(Math.max(Number(url.searchParams.get('mb') || 10), 1), 2048);
    for (let i = 0; i < mb; i++) kept.push(Buffer.alloc(1024 * 1024, 1));
    body = { pid: process.pid, kept_mb: kept.length };
  } else {
    body = {
      pid: process.pid,
      worker: process.env.COREFIT_WORKER_ID ?? null,
      workers: process.env.COREFIT_WORKERS ?? null,
    };
  }
  const text = JSON.stringify(body) + '\n';
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(drain.draining() ? { connection: 'close' } : {}),
  });
  res.end(text);
});

if (hang) {
  console.log(`ops_app.js: pid ${process.pid} will never listen`);
  setInterval(() => {}, 1 << 30);
} else {
  const socketActivated =
    process.env.LISTEN_FDS === '1' && Number(process.env.LISTEN_PID) === process.pid;
  server.listen(socketActivated ? { fd: 3 } : { port: Number(process.env.PORT || 3000) }, () => {
    console.log(`ops_app.js: pid ${process.pid} listening`);
    // PM2's wait_ready protocol: tell the launcher over Node's IPC channel.
    const after = process.env.SEND_READY_AFTER_MS;
    if (after !== undefined && process.send) {
      setTimeout(() => process.send('ready'), Number(after));
    }
  });
}

// A hung worker never listened: it exits at once.
const drain = drainOnStop(server, () => hang && process.exit(0));
