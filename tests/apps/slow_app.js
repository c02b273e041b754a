// A plain Node `http` app that boots slowly: START_DELAY seconds ("3" or
// "3s"; default 3) before it listens, as an app that first connects to a
// database would. Then it is tests/apps/server.js (GET / answers its pid as
// JSON; fd 3 under corefit --socket shared; graceful stop on SIGTERM).
//
//   START_DELAY=3 PORT=3000 node tests/apps/slow_app.js

'use strict';

const delay = parseFloat(process.env.START_DELAY || '3');
console.log(`slow_app.js: pid ${process.pid} booting for ${delay}s`);
setTimeout(() => require('./server.js'), delay * 1000);
