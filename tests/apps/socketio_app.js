// A socket.io app as users write it for Node's cluster or PM2: the cluster
// adapter (io.adapter(createAdapter())), default transports (long-polling,
// then the WebSocket upgrade), listen(PORT). Under corefit --affinity the
// adapter's messages go through corefit (supervise/ipc).
//
//   echo(msg, ack)   -> ack({worker, pid, msg, transport})
//   shout(msg)       -> io.emit('news', {from, msg}) to every client on every worker
//   count(ack)       -> ack(number of sockets on all workers) (fetchSockets)
//
//   NODE_PATH=$(tests/apps/setup-node-apps.sh) PORT=3000 node tests/apps/socketio_app.js
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/cluster-adapter');

const worker = process.env.COREFIT_WORKER_ID || '0';
const server = http.createServer((req, res) => {
  res.end(`worker ${worker} pid ${process.pid}\n`);
});
const io = new Server(server);
io.adapter(createAdapter());
io.on('connection', (socket) => {
  socket.on('echo', (msg, ack) => {
    if (typeof ack === 'function') {
      ack({ worker, pid: process.pid, msg, transport: socket.conn.transport.name });
    }
  });
  socket.on('shout', (msg) => io.emit('news', { from: worker, msg }));
  socket.on('count', async (ack) => {
    if (typeof ack !== 'function') return;
    try {
      ack((await io.fetchSockets()).length);
    } catch (e) {
      ack(`error: ${e.message}`);
    }
  });
});
server.listen(Number(process.env.PORT || 3000), () => {
  console.log(`socketio_app: worker ${worker} pid ${process.pid} listening`);
});
