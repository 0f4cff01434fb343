#!/usr/bin/env python3
"""A stand-in virt-launcher for benchmarks only: no QEMU, a host-side sink and source instead.

It speaks the launcher's command socket (newline-delimited JSON, docs/data-plane.md; types in
crates/reconciler/src/launcher_api.rs) on `var/run/kubevirt/sockets/<uid>.sock`, relative to
its working directory as the real launcher does. `sync` makes the "domain" Running at once;
`status` and `watch` report it; `forward` answers the address of a listener this process runs:

  guest port 5000  sink:   reads an 8-byte big-endian length N, then N bytes it discards, and
                           answers the 8-byte count once it has them all (an upload's end);
  guest port 5001  source: reads an 8-byte length N and sends N zero bytes, then ends.

Any other port is refused. With `--serve-only IP` it runs just those two listeners on
IP:5000 and IP:5001 (a process pod for `kubectl port-forward`), and no command socket.
"""
import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

SINK_PORT = 5000
SOURCE_PORT = 5001
CHUNK = 1 << 20


def log(message):
    print(f"fake-launcher: {message}", file=sys.stderr, flush=True)


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def sink(conn):
    header = read_exact(conn, 8)
    if header is None:
        return
    want = struct.unpack(">Q", header)[0]
    buf = memoryview(bytearray(CHUNK))
    got = 0
    while got < want:
        n = conn.recv_into(buf, min(CHUNK, want - got))
        if n == 0:
            break
        got += n
    conn.sendall(struct.pack(">Q", got))


def source(conn):
    header = read_exact(conn, 8)
    if header is None:
        return
    left = struct.unpack(">Q", header)[0]
    zeros = memoryview(bytes(CHUNK))
    while left > 0:
        n = min(CHUNK, left)
        conn.sendall(zeros[:n])
        left -= n
    conn.shutdown(socket.SHUT_WR)
    # Let the reader take the last bytes before the close.
    conn.settimeout(30)
    try:
        while conn.recv(CHUNK):
            pass
    except OSError:
        pass


def serve_tcp(listener, handler):
    def one(conn):
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                handler(conn)
            except OSError as e:
                log(f"{handler.__name__}: {e}")

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def listen(ip, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ip, port))
    listener.listen(64)
    return listener


def start_listeners(ip, sink_port, source_port):
    """Starts the sink and the source; returns their addresses by guest port."""
    addresses = {}
    for guest_port, port, handler in ((SINK_PORT, sink_port, sink), (SOURCE_PORT, source_port, source)):
        listener = listen(ip, port)
        host, bound = listener.getsockname()
        addresses[guest_port] = f"{host}:{bound}"
        threading.Thread(target=serve_tcp, args=(listener, handler), daemon=True).start()
    return addresses


class Domain:
    """The pretend domain's state, and a condition that wakes watchers on each change."""

    def __init__(self):
        self.cond = threading.Condition()
        self.status = {"state": "NoState"}
        self.version = 0
        self.synced = False
        self.final = False

    def set(self, **status):
        with self.cond:
            self.status = {k: v for k, v in status.items() if v is not None}
            self.version += 1
            self.final = status.get("state") in ("Shutoff", "Crashed")
            self.cond.notify_all()

    def now(self):
        with self.cond:
            return dict(self.status), self.version


def answer(conn, response):
    conn.sendall((json.dumps(response, separators=(",", ":")) + "\n").encode())


def handle_command(conn, request, domain, addresses, stop):
    op = request.get("op")
    if op == "sync":
        if not domain.synced:
            domain.synced = True
            domain.set(state="Running", qemuPid=os.getpid(), guestIp="10.0.2.2")
            log("sync: the domain is Running (no QEMU)")
        answer(conn, {"ok": True, "status": domain.now()[0]})
    elif op == "status":
        answer(conn, {"ok": True, "status": domain.now()[0]})
    elif op == "watch":
        status, seen = domain.now()
        answer(conn, {"ok": True, "status": status})
        while not (domain.final and seen == domain.version):
            with domain.cond:
                domain.cond.wait_for(lambda: domain.version != seen, timeout=1)
            status, version = domain.now()
            if version != seen:
                seen = version
                answer(conn, {"ok": True, "status": status})
    elif op in ("pause", "unpause", "reset"):
        if not domain.synced:
            answer(conn, {"ok": False, "error": "the domain has not started (no sync yet)"})
            return
        if op == "pause":
            domain.set(state="Paused", reason="Paused by user", qemuPid=os.getpid())
        elif op == "unpause":
            domain.set(state="Running", qemuPid=os.getpid())
        answer(conn, {"ok": True, "status": domain.now()[0]})
    elif op in ("shutdown", "kill"):
        reason = "guest powered off" if op == "shutdown" else "killed"
        domain.set(state="Shutoff", reason=reason)
        answer(conn, {"ok": True, "status": domain.now()[0]})
        stop.set()
    elif op == "forward":
        port, protocol = request.get("port"), request.get("protocol")
        if not domain.synced:
            answer(conn, {"ok": False, "error": "the domain has not started (no sync yet)"})
        elif protocol != "tcp" or port not in addresses:
            answer(conn, {"ok": False, "error": f"the fake launcher forwards only tcp/{SINK_PORT} "
                          f"(sink) and tcp/{SOURCE_PORT} (source), not {protocol}/{port}"})
        else:
            answer(conn, {"ok": True, "address": addresses[port]})
    elif op == "publish":
        answer(conn, {"ok": False, "error": "the fake launcher does not publish ports"})
    else:
        answer(conn, {"ok": False, "error": f"unknown op {op!r}"})


def serve_commands(listener, domain, addresses, stop):
    def one(conn):
        with conn:
            try:
                for line in conn.makefile("rb"):
                    try:
                        request = json.loads(line)
                    except ValueError as e:
                        answer(conn, {"ok": False, "error": f"not JSON: {e}"})
                        continue
                    handle_command(conn, request, domain, addresses, stop)
            except OSError:
                pass  # the client hung up (virt-tail's probes do so at once)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--namespace")
    p.add_argument("--name")
    p.add_argument("--uid")
    p.add_argument("--grace-period-seconds", type=int, default=30)
    p.add_argument("--accel")
    p.add_argument("--qemu")
    p.add_argument("--serve-only", metavar="IP", help="run only the sink and source on IP:5000 and IP:5001")
    a = p.parse_args()
    # Before any thread starts, so that every thread inherits the mask and sigwait gets them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

    if a.serve_only:
        start_listeners(a.serve_only, SINK_PORT, SOURCE_PORT)
        log(f"sink on {a.serve_only}:{SINK_PORT}, source on {a.serve_only}:{SOURCE_PORT}")
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        return 0
    if not a.uid or not all(c.isalnum() or c == "-" for c in a.uid):
        p.error("--uid must hold only letters, digits and '-'")

    addresses = start_listeners("127.0.0.1", 0, 0)
    private = "var/run/kubevirt-private"
    os.makedirs(private, exist_ok=True)
    # virt-tail follows the serial log: there is none, so an empty one.
    open(os.path.join(private, "virt-serial0-log"), "ab").close()
    path = f"var/run/kubevirt/sockets/{a.uid}.sock"
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    domain = Domain()
    stop = threading.Event()
    threading.Thread(target=serve_commands, args=(listener, domain, addresses, stop), daemon=True).start()
    log(f"VMI {a.namespace}/{a.name} (uid {a.uid}): listening on {path}; forwards {addresses}")

    def on_signal():
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        domain.set(state="Shutoff", reason="guest powered off")
        stop.set()

    threading.Thread(target=on_signal, daemon=True).start()
    stop.wait()
    # Let watchers see the final state, as the real launcher does.
    time.sleep(0.5)
    os.unlink(path)
    with open(os.path.join(private, "launcher-exited"), "w") as f:
        f.write("0\n")
    log("exiting with status 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
