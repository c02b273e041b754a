// N socket.io clients (socket.io-client from NODE_PATH) with the default
// transports against URL: each connects, waits for its WebSocket upgrade,
// sends an acknowledged echo; then one shouts and every client must get
// the broadcast, and one asks for the count of sockets on all workers.
// Prints one JSON summary line; exits 0 when everything arrived.
//
//   node socketio_clients.js URL N MODE
//   MODE: client-ip  each client from its own 127.0.0.x (corefit hashes it)
//         cookie     a cookie jar per client (withCredentials)
//         plain      neither
// Bounded: gives up after 10 s.
'use strict';
const http = require('http');
const { io } = require('socket.io-client');

const [url, nArg, mode] = process.argv.slice(2);
const n = Number(nArg || 20);
const summary = { clients: n, connected: 0, upgraded: 0, acked: 0, news: 0, count: null, workers: [], errors: [] };
const workers = new Set();
const sockets = [];

const deadline = setTimeout(() => finish('timed out'), 10000);

function finish(why) {
  clearTimeout(deadline);
  if (why) summary.errors.push(why);
  summary.workers = [...workers].sort();
  for (const s of sockets) s.close();
  console.log(JSON.stringify(summary));
  process.exit(summary.errors.length === 0 ? 0 : 1);
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, resolve));
}

async function client(i) {
  const opts = { reconnection: false, forceNew: true, timeout: 5000 };
  if (mode === 'client-ip') {
    const localAddress = `127.0.0.${10 + i}`;
    opts.agent = new http.Agent({ keepAlive: true, localAddress });
    opts.localAddress = localAddress;
  } else if (mode === 'cookie') {
    opts.withCredentials = true;
    opts.agent = new http.Agent({ keepAlive: true });
  }
  const socket = io(url, opts);
  sockets.push(socket);
  socket.on('news', () => { summary.news += 1; });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', (e) => reject(new Error(`client ${i}: connect_error: ${e.message}`)));
  });
  summary.connected += 1;
  if (socket.io.engine.transport.name !== 'websocket') {
    await Promise.race([
      once(socket.io.engine, 'upgrade'),
      once(socket.io.engine, 'upgradeError').then((e) => { throw new Error(`client ${i}: upgradeError: ${e.message}`); }),
    ]);
  }
  summary.upgraded += 1;
  const reply = await socket.timeout(5000).emitWithAck('echo', i);
  if (reply.msg !== i || reply.transport !== 'websocket') {
    throw new Error(`client ${i}: bad echo ${JSON.stringify(reply)}`);
  }
  summary.acked += 1;
  workers.add(reply.worker);
  return socket;
}

(async () => {
  const results = await Promise.allSettled([...Array(n).keys()].map(client));
  for (const r of results) if (r.status === 'rejected') summary.errors.push(r.reason.message);
  if (summary.errors.length) return finish();
  // Every client must hear one shout, wherever its worker.
  const heard = Promise.all(sockets.map((s) => once(s, 'news')));
  sockets[0].emit('shout', 'hello');
  await heard;
  summary.count = await sockets[n - 1].timeout(5000).emitWithAck('count');
  if (summary.count !== n) summary.errors.push(`count says ${summary.count}, not ${n}`);
  finish();
})().catch((e) => finish(e.message));
