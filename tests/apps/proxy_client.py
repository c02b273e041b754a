"""Clients for bench/launcher/proxy.sh (the proxy's cost): hold many idle
connections, stream a body through POST /echo, time new requests.

    proxy_client.py hold PORT N [--request]   open N connections (each makes one
                                              keep-alive GET /hello with --request),
                                              print "held N", hold them until SIGTERM
    proxy_client.py echo PORT MIB             POST /echo MIB MiB, writing and reading
                                              at once; print seconds; exit 1 unless
                                              the sha256 of what came back matches
    proxy_client.py latency PORT COUNT        COUNT GETs of /hello, each on a new
                                              connection; print median and max ms

Raises its own soft RLIMIT_NOFILE to the hard limit.
"""
import hashlib
import resource
import signal
import socket
import statistics
import sys
import threading
import time

TIMEOUT = 10.0


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def read_response(sock):
    """Reads one response with a Content-Length; returns (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        body += chunk
    return status, body


def hold(port, n, request):
    socks = []
    batch = 250
    for start in range(0, n, batch):
        group = []
        for _ in range(min(batch, n - start)):
            s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            group.append(s)
        if request:
            for s in group:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n")
            for s in group:
                status, _ = read_response(s)
                if status != 200:
                    raise SystemExit(f"status {status}")
        socks.extend(group)
    print(f"held {len(socks)}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def pattern(mib):
    block = hashlib.sha256(b"corefit").digest() * 2048  # 64 KiB
    return block, mib * 1024 * 1024 // len(block)


def echo(port, mib):
    block, blocks = pattern(mib)
    size = len(block) * blocks
    sent_hash = hashlib.sha256()
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.monotonic()
    s.sendall(f"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: {size}\r\n\r\n".encode())
    error = []

    def writer():
        try:
            for i in range(blocks):
                # Vary each block so a misplaced block shows in the hash.
                chunk = i.to_bytes(8, "big") + block[8:]
                sent_hash.update(chunk)
                s.sendall(chunk)
        except OSError as e:
            error.append(e)

    t = threading.Thread(target=writer)
    t.start()
    got_hash = hashlib.sha256()
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("closed before the response head")
        buf += chunk
    _, _, body = buf.partition(b"\r\n\r\n")
    got_hash.update(body)
    received = len(body)
    while received < size:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit(f"closed after {received} of {size} bytes")
        got_hash.update(chunk)
        received += len(chunk)
    elapsed = time.monotonic() - started
    t.join()
    if error or got_hash.digest() != sent_hash.digest():
        raise SystemExit(f"echo mismatch (writer error: {error})")
    print(f"{elapsed:.3f}")


def latency(port, count):
    times = []
    for _ in range(count):
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        status, _ = read_response(s)
        s.close()
        if status != 200:
            raise SystemExit(f"status {status}")
        times.append((time.monotonic() - t0) * 1000)
    print(f"{statistics.median(times):.2f} {max(times):.2f}")


def main():
    raise_nofile()
    cmd, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if cmd == "hold":
        hold(port, n, "--request" in sys.argv[4:])
    elif cmd == "echo":
        echo(port, n)
    elif cmd == "latency":
        latency(port, n)
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
