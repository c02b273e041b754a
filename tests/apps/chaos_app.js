// A plain Node.js `http` server with faults on demand, for corefit's chaos
// tests (launcher/tests/chaos.rs).
//
//   GET /          {"pid", "worker"} as JSON
//   GET /health    "ok"
//
// Faults (all off unless set):
//   LEAK_WORKER=N  worker N (COREFIT_WORKER_ID) leaks: every LEAK_EVERY_MS
//                  (default 100) it keeps LEAK_MB (default 8) more MiB of
//                  filled buffers, starting LEAK_AFTER_MS (default 0) after
//                  listening, up to LEAK_LIMIT_MB (default 4096), until
//                  told to stop. A replacement with the same id leaks again.
//   LEAK_FLAG=PATH every 50 ms each worker tries to delete PATH; the one
//                  that succeeds starts leaking as LEAK_WORKER does (the
//                  test decides when: once it holds its connections).
//   HANG_FLAG=PATH every 50 ms each worker tries to delete PATH; the one
//                  that succeeds blocks its event loop for HANG_MS (default
//                  60000): one hung worker each time the test creates PATH.
//
// Listens on fd 3 under socket activation, else on PORT. SIGTERM or SIGINT:
// answer further requests with `connection: close` for DRAIN_MS (default
// 100), then stop accepting, close idle keep-alive connections, finish
// in-flight requests and exit 0 (as tests/apps/ops_app.js: an app that
// drains, so a graceful replacement loses no request).

'use strict';

const fs = require('fs');
const http = require('http');
const { drainOnStop } = require('./drain');

const me = process.env.COREFIT_WORKER_ID ?? null;

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  let text;
  let type = 'application/json';
  if (path === '/health') {
    text = 'ok\n';
    type = 'text/plain';
  } else {
    text = JSON.stringify({ pid: process.pid, worker: me }) + '\n';
  }
  res.writeHead(200, {
    'content-type': type,
    'content-length': Buffer.byteLength(text),
    ...(drain.draining() ? { connection: 'close' } : {}),
  });
  res.end(text);
});

const socketActivated =
  process.env.LISTEN_FDS === '1' && Number(process.env.LISTEN_PID) === process.pid;
server.listen(socketActivated ? { fd: 3 } : { port: Number(process.env.PORT || 3000) }, () => {
  console.log(`chaos_app.js: pid ${process.pid} worker ${me} listening`);
  if (process.env.LEAK_WORKER !== undefined && process.env.LEAK_WORKER === me) {
    setTimeout(leak, Number(process.env.LEAK_AFTER_MS || 0));
  }
});

const kept = [];
let leaking = null;
function leak() {
  const mb = Number(process.env.LEAK_MB || 8);
  const limit = Number(process.env.LEAK_LIMIT_MB || 4096);
  console.log(`chaos_app.js: pid ${process.pid} worker ${me} starts leaking ${mb} MiB at a time`);
  leaking = setInterval(() => {
    for (let i = 0; i < mb && kept.length < limit; i++) {
      kept.push(Buffer.alloc(1024 * 1024, 1));
    }
  }, Number(process.env.LEAK_EVERY_MS || 100));
}

if (process.env.LEAK_FLAG) {
  const poll = setInterval(() => {
    try {
      fs.unlinkSync(process.env.LEAK_FLAG);
    } catch {
      return; // not there, or another worker took it
    }
    clearInterval(poll);
    leak();
  }, 50);
}

if (process.env.HANG_FLAG) {
  setInterval(() => {
    try {
      fs.unlinkSync(process.env.HANG_FLAG);
    } catch {
      return; // not there, or another worker took it
    }
    console.log(`chaos_app.js: pid ${process.pid} worker ${me} hangs its event loop`);
    const until = Date.now() + Number(process.env.HANG_MS || 60000);
    while (Date.now() < until) {}
  }, 50);
}

const drain = drainOnStop(server, () => clearInterval(leaking));
