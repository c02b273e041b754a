"""Stands in for corefit in the shim's own tests: binds one listening
socket on 127.0.0.1, starts N copies of an unmodified server with the shim
in LD_PRELOAD and the socket on fd 3, prints what it did, and on SIGTERM
stops them. (The real launcher does the same in `corefit --socket inject`;
its own tests go through the corefit binary.)

usage: harness.py SHIM N CMD [ARGS...]   ({port} in ARGS is replaced)
"""
import os
import signal
import socket
import sys

shim, n, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(128)
port = listener.getsockname()[1]
inode = os.fstat(listener.fileno()).st_ino

pids = []
for i in range(n):
    pid = os.fork()
    if pid == 0:
        if listener.fileno() != 3:
            os.dup2(listener.fileno(), 3)
        os.set_inheritable(3, True)  # dup2(3, 3) would not clear close-on-exec
        env = dict(os.environ, COREFIT_INJECT_FD="3", COREFIT_INJECT_PORT=str(port), LD_PRELOAD=shim, PORT=str(port))
        args = [a.replace("{port}", str(port)) for a in cmd]
        os.execvpe(args[0], args, env)
    pids.append(pid)

print(f"PORT {port}", flush=True)
print(f"INODE {inode}", flush=True)
print("PIDS " + " ".join(map(str, pids)), flush=True)


def stop(*_):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in pids:
        try:
            os.waitpid(p, 0)
        except ChildProcessError:
            pass
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
while True:
    signal.pause()
