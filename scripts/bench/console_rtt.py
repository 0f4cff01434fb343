#!/usr/bin/env python3
"""Console keystroke round trips: one byte in, its echo out, timed N times.

Two paths to the same guest shell:
  --virtctl CMD...  runs `virtctl console VM` in a pseudo-terminal (the whole stack:
                    virtctl -> localkube -> virt-api -> virt-handler -> launcher -> guest);
  --socket PATH     connects straight to the launcher's serial socket (the guest's TCG echo
                    and QEMU's chardev only).
Logs in as cirros/gocubsgo when the console shows a login prompt, then types `x` and waits for
the echo, erasing it again with a backspace. Prints one round trip per line in milliseconds.
"""
import argparse
import os
import pty
import select
import socket
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--socket")
p.add_argument("--count", type=int, default=300)
p.add_argument("--timeout", type=float, default=60)
p.add_argument("virtctl", nargs="*")
a = p.parse_args()


class Conn:
    def __init__(self):
        if a.socket:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            # Pod directories are deeper than a unix socket address allows: connect relative.
            here = os.getcwd()
            os.chdir(os.path.dirname(os.path.abspath(a.socket)))
            s.connect(os.path.basename(a.socket))
            os.chdir(here)
            self.fd, self.sock, self.pid = s.fileno(), s, None
        else:
            pid, fd = pty.fork()
            if pid == 0:
                os.execvp(a.virtctl[0], a.virtctl)
            self.fd, self.sock, self.pid = fd, None, pid
        self.buf = b""

    def write(self, data):
        os.write(self.fd, data)

    def read_until(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                sys.exit(f"timed out waiting for {marker!r}; last output {self.buf[-300:]!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    sys.exit(f"the console closed; last output {self.buf[-300:]!r}")
                self.buf += chunk
        out, self.buf = self.buf, self.buf[self.buf.index(marker) + len(marker):]
        return out

    def drain(self, quiet=0.05):
        while select.select([self.fd], [], [], quiet)[0]:
            if not os.read(self.fd, 4096):
                return
        self.buf = b""


c = Conn()
if not a.socket:
    c.read_until(b"to exit console.", a.timeout)
# A shell prompt, logging in first when the console is at the login prompt.
c.drain(0.3)
c.write(b"\r")
seen = c.read_until(b" ", a.timeout)
seen += c.buf
c.drain(0.5)
if b"login:" in seen or b"Password" in seen:
    if b"Password" in seen:
        c.write(b"\r")
        c.read_until(b"login: ", a.timeout)
    c.write(b"cirros\r")
    c.read_until(b"Password: ", a.timeout)
    c.write(b"gocubsgo\r")
    c.read_until(b"$ ", a.timeout)
c.drain(0.3)
for _ in range(a.count):
    t0 = time.perf_counter()
    c.write(b"x")
    c.read_until(b"x", 10)
    print(f"{(time.perf_counter() - t0) * 1000:.3f}", flush=True)
    c.write(b"\x7f")
    c.drain(0.02)
if c.pid:
    c.write(b"\x1d")
    _, status = os.waitpid(c.pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
