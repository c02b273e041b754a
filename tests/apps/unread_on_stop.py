"""A keep-alive HTTP/1.1 server (standard library only) that, when told to
stop, reads nothing more: it lets STOP_DELAY_MS (default 2000) pass and
closes every connection, with whatever a client sent still unread, so the
kernel resets those connections. This is what a Node server does in the
race where its SIGTERM handler's `server.close()` closes a keep-alive
connection whose next request has arrived but is not read yet (a busy or
slow event loop): launcher/tests/proxy_resend.rs.

Listens on PORT; answers every GET with {"pid": ...}; SIGTERM stops it.
While the file PAUSE_DIR/<its pid> exists it reads nothing (a busy loop)."""
import json
import os
import selectors
import signal
import socket
import time

stopping = False


def on_term(_signum, _frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_term)

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(os.environ.get("PORT", "3000"))))
listener.listen(64)
listener.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ)
pending = {}  # connection -> bytes received, not answered yet
body = (json.dumps({"pid": os.getpid()}) + "\n").encode()
answer = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n" % len(body)
) + body
print(f"unread_on_stop.py: pid {os.getpid()} listening", flush=True)

pause = os.path.join(os.environ.get("PAUSE_DIR", "/nonexistent"), str(os.getpid()))
paused = False
while not stopping:
    if os.path.exists(pause):
        if not paused:
            print(f"unread_on_stop.py: pid {os.getpid()} paused", flush=True)
            paused = True
        time.sleep(0.02)
        continue
    for key, _ in sel.select(timeout=0.05):
        if stopping:
            break
        if key.fileobj is listener:
            conn, _ = listener.accept()
            conn.setblocking(True)
            pending[conn] = b""
            sel.register(conn, selectors.EVENT_READ)
            continue
        conn = key.fileobj
        data = conn.recv(65536)
        if not data:
            sel.unregister(conn)
            conn.close()
            del pending[conn]
            continue
        buf = pending[conn] + data
        while b"\r\n\r\n" in buf:
            _, buf = buf.split(b"\r\n\r\n", 1)
            conn.sendall(answer)
        pending[conn] = buf

print(f"unread_on_stop.py: pid {os.getpid()} got SIGTERM; reading nothing more", flush=True)
listener.close()
time.sleep(int(os.environ.get("STOP_DELAY_MS", "2000")) / 1000)
for conn in pending:
    conn.close()
print(f"unread_on_stop.py: pid {os.getpid()} closed {len(pending)} connection(s)", flush=True)
