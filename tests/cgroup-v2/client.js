// The cgroup v2 guest's HTTP client (busybox's static wget crashes in the
// guest), run by tests/cgroup-v2/guest.sh with the guest's node:
//
//   node client.js pids URL N
//       N GETs of URL, 6 at a time; prints each distinct "pid" of the
//       answers on a line of its own.
//   node client.js load URL STOP_FILE SECONDS MAX
//       2 keep-alive clients GET URL in a loop (20 ms apart) until STOP_FILE
//       exists, SECONDS have passed or MAX requests were made; prints
//       "OK FAILED" and the first failures on stderr; creates
//       STOP_FILE.started after the first answer.

'use strict';

const http = require('http');
const fs = require('fs');

const [mode, url] = process.argv.slice(2, 4);

function get(agent) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 15000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? { body } : { error: `status ${res.statusCode}` }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 15 s')));
    req.on('error', (e) => resolve({ error: e.message }));
  });
}

async function pids(n) {
  // 6 at a time, each on a connection of its own: corefit's proxy sends a
  // new connection to the worker with the fewest open ones, and the load's
  // keep-alive connections may hold one worker's.
  const seen = new Set();
  for (let i = 0; i < n; i += 6) {
    const batch = Array.from({ length: Math.min(6, n - i) }, () => get(false));
    for (const r of await Promise.all(batch)) {
      if (r.body) seen.add(JSON.parse(r.body).pid);
      else console.error(`client: ${url}: ${r.error}`);
    }
  }
  for (const p of seen) console.log(p);
}

async function load(stopFile, seconds, max) {
  const end = Date.now() + seconds * 1000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  let ok = 0;
  let failed = 0;
  const loop = async () => {
    while (!fs.existsSync(stopFile) && Date.now() < end && ok + failed < max) {
      const r = await get(agent);
      if (r.body !== undefined) {
        if (ok++ === 0) fs.writeFileSync(`${stopFile}.started`, '');
      } else {
        failed++;
        if (failed <= 5) console.error(`client: request ${ok + failed} at ${fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]} s: ${r.error}`);
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  };
  await Promise.all([loop(), loop()]);
  agent.destroy();
  console.log(`${ok} ${failed}`);
}

if (mode === 'pids') pids(Number(process.argv[4]));
else if (mode === 'load') load(process.argv[4], Number(process.argv[5]), Number(process.argv[6]));
else {
  console.error('usage: node client.js pids URL N | load URL STOP_FILE SECONDS MAX');
  process.exit(2);
}
