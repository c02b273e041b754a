// A CPU-bound app for launcher/tests/throttling.rs: listens on $PORT
// (answers "ok"), and at start runs BUSY_THREADS worker threads (default
// 4) that each spin for BUSY_MS milliseconds (default 2000, bounded), then
// prints "busy done".
'use strict';
const http = require('http');
const { Worker } = require('worker_threads');

const threads = Math.min(Number(process.env.BUSY_THREADS ?? 4), 16);
const ms = Math.min(Number(process.env.BUSY_MS ?? 2000), 10000);
const spin = `const end = Date.now() + ${ms}; let x = 0; while (Date.now() < end) { x++; }`;

http.createServer((req, res) => res.end('ok\n')).listen(Number(process.env.PORT || 3000), () => {
  let left = threads;
  if (left === 0) {
    console.log('busy done');
    return;
  }
  for (let i = 0; i < threads; i++) {
    new Worker(spin, { eval: true }).on('exit', () => {
      if (--left === 0) console.log('busy done');
    });
  }
});
