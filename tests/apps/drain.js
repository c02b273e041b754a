// The graceful stop chaos_app.js and ops_app.js share. On SIGTERM or SIGINT
// (PM2 stops workers with SIGINT): `draining()` turns true (the apps then
// answer with `connection: close`), `first()` runs once, and after DRAIN_MS
// (default 100) the server stops accepting, closes idle keep-alive
// connections, finishes in-flight requests and the process exits 0.

'use strict';

function drainOnStop(server, first = () => {}) {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    first();
    setTimeout(() => {
      server.close(() => process.exit(0));
      server.closeIdleConnections();
    }, Number(process.env.DRAIN_MS || 100));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return { draining: () => stopping };
}

module.exports = { drainOnStop };
