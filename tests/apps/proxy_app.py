"""A small asyncio HTTP/1.1 server for corefit's proxy tests and benchmark
(launcher/tests/proxy_limits.rs, bench/launcher/proxy.sh): keep-alive
connections held as long as the client wants (no idle timeout of its own),
so thousands of idle connections can stay open through the proxy.

    PORT=3000 python3 tests/apps/proxy_app.py

Routes:
    GET /          {"pid", "worker"} as JSON
    GET /hello     "hello\\n"
    GET /headers   {"pid", "headers": [[name, value], ...]} as received
    POST /echo     the request body streamed back as it arrives (needs
                   Content-Length; the response has the same length)

SMALL_BUFFERS=1: small socket buffers (see below). At start it raises its soft RLIMIT_NOFILE to the hard limit, as Node does.
"""
import asyncio
import json
import os
import resource
import socket

PORT = int(os.environ.get("PORT", "3000"))
HOST = os.environ.get("HOST_BIND", "127.0.0.1")
CHUNK = 64 * 1024
# SMALL_BUFFERS=1: 64 KiB kernel buffers on each connection and asyncio's
# default 64 KiB stream limit, so a body echoed back fills both directions
# of the path after a few hundred KiB rather than many MiB.
SMALL_BUFFERS = os.environ.get("SMALL_BUFFERS") == "1"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def head(status, reason, length, content_type="text/plain", close=False):
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def handle(reader, writer):
    if SMALL_BUFFERS:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    try:
        while True:
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = raw.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                writer.write(head(400, "Bad Request", 0, close=True))
                await writer.drain()
                return
            method, target, version = parts
            headers = []
            for line in lines[1:]:
                if not line:
                    continue
                name, _, value = line.partition(":")
                headers.append([name.strip(), value.strip()])
            fields = {n.lower(): v for n, v in headers}
            close = fields.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            length = int(fields.get("content-length", "0") or 0)
            path = target.split("?", 1)[0]
            if method == "POST" and path == "/echo":
                if "transfer-encoding" in fields:
                    writer.write(head(411, "Length Required", 0, close=True))
                    await writer.drain()
                    return
                writer.write(head(200, "OK", length, "application/octet-stream", close))
                remaining = length
                while remaining:
                    chunk = await reader.read(min(CHUNK, remaining))
                    if not chunk:
                        return
                    writer.write(chunk)
                    await writer.drain()
                    remaining -= len(chunk)
            else:
                if length:
                    await reader.readexactly(length)
                if path == "/":
                    body = json.dumps({"pid": os.getpid(), "worker": os.environ.get("COREFIT_WORKER_ID", "")})
                    ctype = "application/json"
                elif path == "/hello":
                    body, ctype = "hello\n", "text/plain"
                elif path == "/headers":
                    body = json.dumps({"pid": os.getpid(), "headers": headers})
                    ctype = "application/json"
                else:
                    data = b"not found\n"
                    writer.write(head(404, "Not Found", len(data), close=close) + data)
                    await writer.drain()
                    if close:
                        return
                    continue
                data = body.encode()
                writer.write(head(200, "OK", len(data), ctype, close) + data)
            await writer.drain()
            if close:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def main():
    raise_nofile()
    limit = 64 * 1024 if SMALL_BUFFERS else 256 * 1024
    server = await asyncio.start_server(handle, HOST, PORT, backlog=4096, limit=limit)
    print(f"proxy_app.py: pid {os.getpid()} listening on {HOST}:{PORT}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
