// The container tier's HTTP client. It runs inside a container (the
// containers have no network but their own loopback), passed to
// `podman exec CONTAINER node -e "$(cat client.js)"` so that it needs nothing
// in the image but node; settings come from the environment:
//
//   URL        what to GET, e.g. http://127.0.0.1:8080/
//   WANT       distinct answering pids to wait for (default 1)
//   DEADLINE_S give up after this many seconds (default 20)
//
// Each request goes on a fresh connection (no keep-alive), so that the
// kernel's SO_REUSEPORT hashing (shared, inject) and corefit's proxy each
// pick a worker anew. A refused or reset connection (the app not listening
// yet) is retried after 100 ms until the deadline. It prints one JSON line:
//   {"pids":[6,7],"ok":N,"failed":N,"last":"<last body or error>"}
// and exits 0 once WANT pids answered, 1 at the deadline.
'use strict';

const http = require('http');

const url = process.env.URL || 'http://127.0.0.1:8080/';
const want = Number(process.env.WANT || 1);
const deadline = Date.now() + 1000 * Number(process.env.DEADLINE_S || 20);
const pids = new Set();
let ok = 0;
let failed = 0;
let last = '';

function pidOf(body) {
  try {
    const pid = JSON.parse(body).pid;
    if (pid !== undefined) return Number(pid);
  } catch (_) {
    // Not JSON: the example app says "hello from worker N of M (pid P)".
  }
  const m = /\(pid (\d+)\)/.exec(body);
  return m ? Number(m[1]) : null;
}

function done(code) {
  console.log(JSON.stringify({ pids: [...pids].sort((a, b) => a - b), ok, failed, last }));
  process.exit(code);
}

function once() {
  if (pids.size >= want) return done(0);
  if (Date.now() > deadline) return done(1);
  const req = http.get(url, { agent: false, timeout: 5000 }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => (body += chunk));
    res.on('end', () => {
      last = body.trim();
      const pid = pidOf(body);
      if (res.statusCode === 200 && pid !== null) {
        ok += 1;
        pids.add(pid);
        setImmediate(once);
      } else {
        failed += 1;
        setTimeout(once, 100);
      }
    });
  });
  req.on('timeout', () => req.destroy(new Error('timed out')));
  req.on('error', (err) => {
    failed += 1;
    last = err.message;
    setTimeout(once, 100);
  });
}

once();
