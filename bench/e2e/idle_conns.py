#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, makes one GET / on each, keeps them open and
reports the summed VmRSS (kB) of the given PIDs before and after.

Usage: idle_conns.py PORT N PID [PID...]   -> prints "rss_before_kb rss_after_kb opened"
"""
import resource
import socket
import sys
import time


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def read_response(sock):
    """Reads one response with a Content-Length body; returns False on a short read."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def main():
    port, count, pids = int(sys.argv[1]), int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))

    time.sleep(1.0)
    before = rss_kb(pids)
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    socks = []
    ok = 0
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    # One request per connection, one at a time: each proxy can serve them all over one upstream connection.
    for s in socks:
        s.sendall(request)
        if read_response(s):
            ok += 1
    time.sleep(2.0)
    after = rss_kb(pids)
    print(before, after, ok)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
