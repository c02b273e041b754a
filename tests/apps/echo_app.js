// A plain Node.js `http` app for the proxy's differential test
// (launcher/tests/proxy_differential.rs): every response is unique to the
// request that caused it and the same byte for byte on every run, so a
// response seen through corefit can be compared with the one seen directly,
// and a response spliced from another request cannot pass for it.
//
//   any path          200, JSON {method, url, version, headers (sha256 of the
//                     raw header lines), body (sha256 and length), trailers}
//                     with content-length
//   /chunked          the same JSON, chunked, in two chunks
//   /stream?n=K&ms=M  the same JSON, then K chunks M ms apart (K <= 200,
//                     M <= 200), each naming the request's hash: long enough
//                     for a fault to land in the middle of the response
//   /echo             the request body streamed back as it arrives (with the
//                     request's content-length; a body of unknown length is
//                     read whole first, so the framing never depends on how
//                     the bytes were segmented on the way)
//   Upgrade: websocket (with a key): 101, then every byte echoed raw until
//                     the client closes; any other upgrade (h2c...) is
//                     refused with a 200 JSON answer and a close.
//
// No Date header (res.sendDate = false): outputs compare byte for byte.
// REQUEST_LOG=PATH: one line per request *received* ("pid METHOD URL") and
// one per SIGTERM ("pid SIGTERM"), appended synchronously, so the test can
// check that bytes sent as a body never reached the app as a request.
// ON_STOP (on SIGTERM): `exit` (default) exits at once, in-flight responses
// truncated; `close` calls server.close() and server.closeIdleConnections()
// (keep-alive connections whose next request is unread are dropped) and
// exits when the last connection is gone.
// Listens on PORT (127.0.0.1).

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const log = process.env.REQUEST_LOG;
const onStop = process.env.ON_STOP || 'exit';

function note(line) {
  if (log) fs.appendFileSync(log, `${process.pid} ${line}\n`);
}

function sha(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function describe(req, body) {
  return {
    method: req.method,
    url: req.url,
    version: req.httpVersion,
    headers: sha(JSON.stringify(req.rawHeaders)),
    body: sha(body),
    length: body.length,
    trailers: sha(JSON.stringify(req.rawTrailers)),
  };
}

function readBody(req, done) {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => done(Buffer.concat(parts)));
}

function handle(req, res) {
  res.sendDate = false;
  note(`${req.method} ${req.url}`);
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/echo' && req.headers['content-length'] !== undefined) {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': req.headers['content-length'],
    });
    req.pipe(res);
    return;
  }
  readBody(req, (body) => {
    if (url.pathname === '/echo') {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': body.length,
      });
      res.end(body);
      return;
    }
    const text = JSON.stringify(describe(req, body)) + '\n';
    if (url.pathname === '/chunked') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(text.slice(0, 20));
      res.end(text.slice(20));
      return;
    }
    if (url.pathname === '/stream') {
      const n = Math.min(Number(url.searchParams.get('n') || 10), 200);
      const ms = Math.min(Number(url.searchParams.get('ms') || 10), 200);
      const id = sha(text).slice(0, 16);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(text);
      let i = 0;
      const timer = setInterval(() => {
        i += 1;
        if (i > n) {
          clearInterval(timer);
          res.end(`end ${id}\n`);
        } else {
          res.write(`chunk ${i} of ${n} for ${id}\n`);
        }
      }, ms);
      res.on('close', () => clearInterval(timer));
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
}

// A request without Host is answered like any other (Node's own 400 would
// carry a Date header); an unknown Expect gets a 417 without one.
const server = http.createServer({ requireHostHeader: false }, handle);
server.on('checkExpectation', (req, res) => {
  res.sendDate = false;
  note(`${req.method} ${req.url} expectation-failed`);
  res.writeHead(417, { 'content-length': 0, connection: 'close' });
  res.end();
});

server.on('upgrade', (req, socket, head) => {
  note(`${req.method} ${req.url} upgrade`);
  const key = req.headers['sec-websocket-key'];
  if (String(req.headers.upgrade).toLowerCase() === 'websocket' && key) {
    const accept = crypto
      .createHash('sha1')
      .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
      .digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    if (head.length) socket.write(head);
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => socket.end());
    socket.on('error', () => socket.destroy());
    return;
  }
  // Refused: answered as a plain request, then closed (what follows the
  // request on this connection is never read, nor described: `head` holds
  // whatever arrived with the request, which depends on segmentation).
  const text = JSON.stringify(describe(req, Buffer.alloc(0))) + '\n';
  socket.on('error', () => socket.destroy());
  socket.end(
    'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
});

server.listen({ port: Number(process.env.PORT || 3000), host: '127.0.0.1' }, () => {
  console.log(`echo_app.js: pid ${process.pid} listening`);
});

process.on('SIGTERM', () => {
  note('SIGTERM');
  if (onStop === 'close') {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  } else {
    process.exit(0);
  }
});
