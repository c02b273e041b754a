// An Express app as its users write it (expressjs.com's "Hello world" and
// "Health checks and graceful shutdown"), for the reload tests and
// bench/launcher/reload.sh:
//
//   NODE_PATH=$(tests/apps/setup-node-apps.sh) PORT=3000 node tests/apps/express_app.js
//
// GET / answers {"pid": N}. Listens on PORT (default 3000), or on fd 3 when
// corefit --socket shared hands it a socket (LISTEN_FDS: the one line a
// user adds for socket activation). START_DELAY (seconds, "3" or "3s")
// waits that long before listening, as a slow boot would. On SIGTERM (and
// SIGINT, PM2's stop signal) the server closes as the Express docs show.

'use strict';

const express = require('express');

const app = express();

app.get('/', (req, res) => {
  res.json({ pid: process.pid });
});

function start() {
  const where = process.env.LISTEN_FDS ? { fd: 3 } : Number(process.env.PORT || 3000);
  const server = app.listen(where, () => {
    console.log(`express_app.js: pid ${process.pid} listening on ${JSON.stringify(where)}`);
  });
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      console.log(`express_app.js: ${signal} signal received: closing HTTP server`);
      server.close(() => {
        console.log('express_app.js: HTTP server closed');
      });
    });
  }
}

setTimeout(start, parseFloat(process.env.START_DELAY || '0') * 1000);
