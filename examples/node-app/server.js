'use strict';
const http = require('node:http');
const port = Number(process.env.PORT || 8080);
const worker = process.env.COREFIT_WORKER_ID ?? '0';
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`hello from worker ${worker} of ${process.env.COREFIT_WORKERS ?? 1} (pid ${process.pid})\n`);
});
server.listen(port, () => {
  // PM2-style readiness over Node's IPC channel, when corefit provides one.
  if (process.send) process.send('ready');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
