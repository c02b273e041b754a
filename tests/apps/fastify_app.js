// A Fastify app as its users write it (fastify.dev's "Getting started"),
// for the reload tests and bench/launcher/reload.sh:
//
//   NODE_PATH=$(tests/apps/setup-node-apps.sh) PORT=3000 node tests/apps/fastify_app.js
//
// GET / answers {"pid": N}. Listens on PORT (default 3000) on all
// addresses, or on fd 3 when corefit --socket shared hands it a socket
// (LISTEN_FDS: Node's listen() takes `fd` before `port`). START_DELAY
// (seconds, "3" or "3s") waits that long before listening, as a slow boot
// would. On SIGTERM (and SIGINT, PM2's stop signal) it calls
// fastify.close().

'use strict';

const fastify = require('fastify')({ logger: false });

fastify.get('/', async () => ({ pid: process.pid }));

const start = async () => {
  const options = { port: Number(process.env.PORT || 3000), host: '0.0.0.0' };
  if (process.env.LISTEN_FDS) options.fd = 3;
  try {
    const address = await fastify.listen(options);
    console.log(`fastify_app.js: pid ${process.pid} listening on ${address}`);
  } catch (err) {
    console.error(`fastify_app.js: ${err.message}`);
    process.exit(1);
  }
};

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    console.log(`fastify_app.js: ${signal} received, closing`);
    await fastify.close();
  });
}

setTimeout(start, parseFloat(process.env.START_DELAY || '0') * 1000);
