# The client side of the idle-session measurement (scripts/bench_idle.ts), run as its own process so its
# sockets do not count in the MTA's memory, in Debian's python3 so the benchmark need not be allowed to
# start deno (a deno child could take any permission): opens N SMTP connections to 127.0.0.1:PORT, 50 at
# a time, reads each greeting, prints `ready N` (or `failed: ...`), keeps them open and idle until its
# stdin closes, then sends QUIT on each and exits. Usage: python3 bench_idle_client.py PORT N.
import resource
import socket
import sys

port, count = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < count + 64:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))

conns = []
try:
    while len(conns) < count:
        batch = [socket.create_connection(("127.0.0.1", port)) for _ in range(min(50, count - len(conns)))]
        for s in batch:
            text = b""
            while b"\r\n" not in text:
                part = s.recv(512)
                if not part:
                    break
                text += part
            if not text.startswith(b"220"):
                raise RuntimeError("greeting %r" % text.strip())
        conns.extend(batch)
    print("ready %d" % len(conns), flush=True)
except Exception as e:  # noqa: BLE001 - any failure is reported to the parent
    print("failed: %s after %d connections" % (e, len(conns)), flush=True)

sys.stdin.read()  # the parent closes it when it is done measuring
for s in conns:
    try:
        s.sendall(b"QUIT\r\n")
    except OSError:
        pass
    s.close()
